package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupported is returned by a target that cannot do what a scenario
// asks (an external relay cannot be killed by the suite).
var ErrUnsupported = errors.New("bench: not supported by this target")

// Target is a running relay under load.
type Target interface {
	Name() string
	// Submission is the "host:port" the generator submits to.
	Submission() string
	// Senders returns the generator's senders for tenants, each sending to
	// rcpts: with AUTH where the target has tenants, plain otherwise.
	Senders(tenants []TenantSpec, rcpts func(TenantSpec) []string) []Sender
	StartTLS() bool
	// Usage is the relay's CPU seconds and peak RSS so far.
	Usage() (ProcUsage, error)
	// Kill ends the relay with SIGKILL; Restart starts it on the same
	// spool.
	Kill() error
	Restart(ctx context.Context) error
	Stop()
}

// TargetFactory starts a fresh target relaying to the given routes, with
// tenants provisioned where the target knows tenants.
type TargetFactory interface {
	Name() string
	Start(ctx context.Context, routes []Route, tenants []TenantSpec) (Target, error)
	// Notes are caveats printed under every report of this target.
	Notes() []string
}

// FairwayFactory starts fairway binaries in temp dirs under WorkDir.
type FairwayFactory struct {
	Bin     string
	WorkDir string
	Pools   []string // source IPs of the one pool; empty: the system's choice
}

func (FairwayFactory) Name() string { return "fairway" }

func (FairwayFactory) Notes() []string {
	return []string{"fairway sends UNSIGNED here: DKIM keys stay pending without a DNS server to publish them in",
		"submission is STARTTLS + AUTH PLAIN, one tenant per sender, one AUTH per connection"}
}

func (f FairwayFactory) Start(ctx context.Context, routes []Route, tenants []TenantSpec) (Target, error) {
	dir, err := os.MkdirTemp(f.WorkDir, "fairway-")
	if err != nil {
		return nil, err
	}
	fw, err := StartFairway(ctx, f.Bin, dir, routes, f.Pools)
	if err != nil {
		return nil, err
	}
	for _, t := range tenants {
		if err := fw.AddTenant(ctx, t); err != nil {
			fw.Stop()
			return nil, fmt.Errorf("provision tenant %s: %w", t.Name, err)
		}
	}
	return &fairwayTarget{fw: fw}, nil
}

type fairwayTarget struct{ fw *Fairway }

func (t *fairwayTarget) Name() string       { return "fairway" }
func (t *fairwayTarget) Submission() string { return t.fw.Submission }
func (t *fairwayTarget) StartTLS() bool     { return true }
func (t *fairwayTarget) Senders(ts []TenantSpec, rcpts func(TenantSpec) []string) []Sender {
	out := make([]Sender, len(ts))
	for i, s := range ts {
		out[i] = Sender{Tenant: s.Name, From: s.User, Username: s.User, Password: s.Password, To: rcpts(s)}
	}
	return out
}
func (t *fairwayTarget) Usage() (ProcUsage, error)         { return t.fw.Usage() }
func (t *fairwayTarget) Kill() error                       { return t.fw.Kill() }
func (t *fairwayTarget) Restart(ctx context.Context) error { return t.fw.Restart(ctx) }
func (t *fairwayTarget) Stop() {
	t.fw.Stop()
	_ = os.RemoveAll(t.fw.Dir)
}

// plainSenders are senders of different domains with no AUTH: the load for
// relays without tenants, which trust the loopback network.
func plainSenders(ts []TenantSpec, rcpts func(TenantSpec) []string) []Sender {
	out := make([]Sender, len(ts))
	for i, s := range ts {
		out[i] = Sender{Tenant: s.Name, From: s.User, To: rcpts(s)}
	}
	return out
}

// PostfixFactory starts a private Postfix instance with Script (bench/
// postfix.sh) in temp dirs under WorkDir.
type PostfixFactory struct {
	Script  string
	WorkDir string
}

func (PostfixFactory) Name() string { return "postfix" }

func (PostfixFactory) Notes() []string {
	return []string{"Postfix has no tenants: the same load comes from senders of different domains, plain SMTP from mynetworks (no TLS, no AUTH), no per-tenant weights or limits",
		"Postfix CPU is the master with its reaped children plus the live ones; peak RSS is the sum of their VmHWM (shared pages counted in each)"}
}

func (p PostfixFactory) Start(ctx context.Context, routes []Route, _ []TenantSpec) (Target, error) {
	// Postfix's daemons run as user postfix: the way to the queue must be
	// searchable by it.
	if err := os.Chmod(p.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("postfix work dir: %w", err)
	}
	dir, err := os.MkdirTemp(p.WorkDir, "postfix-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	var rs []string
	for _, r := range routes {
		rs = append(rs, r.Domain+"="+r.To)
	}
	t := &postfixTarget{script: p.Script, dir: dir, addr: port, routes: strings.Join(rs, ",")}
	if err := t.run(ctx, "start"); err != nil {
		_ = t.run(ctx, "stop")
		return nil, err
	}
	return t, nil
}

type postfixTarget struct {
	script, dir, addr, routes string
	base                      ProcUsage // usage of instances killed before
}

func (t *postfixTarget) run(ctx context.Context, verb string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, port, _ := strings.Cut(t.addr, ":")
	cmd := exec.CommandContext(ctx, t.script, verb, t.dir, port, t.routes)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("postfix %s: %w: %s", verb, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (t *postfixTarget) Name() string       { return "postfix" }
func (t *postfixTarget) Submission() string { return t.addr }
func (t *postfixTarget) StartTLS() bool     { return false }
func (t *postfixTarget) Senders(ts []TenantSpec, rcpts func(TenantSpec) []string) []Sender {
	return plainSenders(ts, rcpts)
}

// pids returns the master's pid and its children's.
func (t *postfixTarget) pids() (master int, children []int, err error) {
	b, err := os.ReadFile(filepath.Join(t.dir, "queue", "pid", "master.pid"))
	if err != nil {
		return 0, nil, fmt.Errorf("postfix master pid: %w", err)
	}
	master, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, nil, fmt.Errorf("postfix master pid: %w", err)
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", master, master))
	if err == nil {
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				children = append(children, n)
			}
		}
	}
	return master, children, nil
}

// Usage sums the master's CPU (with its reaped children's) and its live
// children's, and the peak RSS of all of them together.
func (t *postfixTarget) Usage() (ProcUsage, error) {
	master, children, err := t.pids()
	if err != nil {
		return ProcUsage{}, err
	}
	u, err := readProcUsage(master, true)
	if err != nil {
		return ProcUsage{}, err
	}
	for _, c := range children {
		if cu, err := readProcUsage(c, false); err == nil {
			u.CPUSeconds += cu.CPUSeconds
			u.PeakRSSKiB += cu.PeakRSSKiB
		}
	}
	u.CPUSeconds += t.base.CPUSeconds
	return u, nil
}

func (t *postfixTarget) Kill() error {
	if u, err := t.Usage(); err == nil {
		t.base.CPUSeconds = u.CPUSeconds
	}
	return t.run(context.Background(), "kill")
}
func (t *postfixTarget) Restart(ctx context.Context) error { return t.run(ctx, "start") }
func (t *postfixTarget) Stop() {
	_ = t.run(context.Background(), "stop")
	_ = os.RemoveAll(t.dir)
}

// ExternalFactory aims the load at a relay the suite does not run: it must
// already relay every domain to the sinks, which listen on fixed ports
// (see Options.SinkBasePort).
type ExternalFactory struct {
	Addr     string
	UseTLS   bool
	Username string // optional AUTH for every sender
	Password string
}

func (e ExternalFactory) Name() string { return "external-" + e.Addr }
func (ExternalFactory) Notes() []string {
	return []string{"external relay: no tenants, CPU and RSS not measured"}
}

func (e ExternalFactory) Start(context.Context, []Route, []TenantSpec) (Target, error) {
	return &externalTarget{e}, nil
}

type externalTarget struct{ e ExternalFactory }

func (t *externalTarget) Name() string       { return t.e.Name() }
func (t *externalTarget) Submission() string { return t.e.Addr }
func (t *externalTarget) StartTLS() bool     { return t.e.UseTLS }
func (t *externalTarget) Senders(ts []TenantSpec, rcpts func(TenantSpec) []string) []Sender {
	out := plainSenders(ts, rcpts)
	for i := range out {
		out[i].Username, out[i].Password = t.e.Username, t.e.Password
	}
	return out
}
func (t *externalTarget) Usage() (ProcUsage, error)     { return ProcUsage{}, ErrUnsupported }
func (t *externalTarget) Kill() error                   { return ErrUnsupported }
func (t *externalTarget) Restart(context.Context) error { return ErrUnsupported }
func (t *externalTarget) Stop()                         {}

// CheckPostfix reports whether script's Postfix can run on this machine.
func CheckPostfix(ctx context.Context, script string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, script, "check").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s check: %w: %s", script, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Flusher is a target that can make every queued delivery due now, as an
// operator would after a crash deferred the deliveries in flight.
type Flusher interface {
	// Flush returns how many queued messages it made due.
	Flush(ctx context.Context) (int, error)
}

// Flush runs `fairway queue retry` for every queued message.
func (t *fairwayTarget) Flush(ctx context.Context) (int, error) {
	seen := map[string]bool{}
	after := ""
	for range 100 { // at most 100 pages of 1,000
		args := []string{"queue", "list", "--limit", "1000", "--json"}
		if after != "" {
			args = append(args, "--after", after)
		}
		out, err := t.fw.CLI(ctx, args...)
		if err != nil {
			return len(seen), err
		}
		var page []struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			return len(seen), fmt.Errorf("queue list: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if !seen[e.ID] {
				seen[e.ID] = true
				if _, err := t.fw.CLI(ctx, "queue", "retry", e.ID); err != nil {
					return len(seen), err
				}
			}
		}
		after = page[len(page)-1].ID
	}
	return len(seen), nil
}

// Flush runs `postqueue -f` on the instance.
func (t *postfixTarget) Flush(ctx context.Context) (int, error) {
	return -1, t.run(ctx, "flush")
}

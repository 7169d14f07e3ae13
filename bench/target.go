package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Route is one static next hop given to the target relay.
type Route struct {
	Domain string // "*", "example.com" or ".example.com"
	To     string // "host:port" of a sink
}

// TenantSpec is a tenant provisioned on fairway.
type TenantSpec struct {
	Name          string
	Weight        int
	MailboxHourly int // 0: fairway's default
	AccountDaily  int
	Domain        string // its sender domain
	User          string // full address of its mailbox
	Password      string
}

// Fairway drives a fairway binary from outside: a config in a temp dir,
// `fairway serve` as a child process, and the admin CLI for provisioning.
type Fairway struct {
	Bin        string
	Dir        string // holds fairway.toml and data/
	Submission string // "127.0.0.1:port", STARTTLS + AUTH
	config     string
	cmd        *exec.Cmd
	exited     chan struct{}
	logFile    *os.File
}

// FreePort returns a free TCP "127.0.0.1:port".
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// BuildFairway builds ./cmd/fairway from the module at moduleDir into dir.
func BuildFairway(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "fairway")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fairway")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build fairway: %w: %s", err, out)
	}
	return bin, nil
}

// StartFairway writes a config in dir with every listener but submission
// and admin disabled and the given routes, and starts `fairway serve`.
// pools, if non-empty, are source IPs (127.0.0.x) of one "standard" pool.
func StartFairway(ctx context.Context, bin, dir string, routes []Route, pools []string) (*Fairway, error) {
	sub, err := FreePort()
	if err != nil {
		return nil, err
	}
	admin, err := FreePort()
	if err != nil {
		return nil, err
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "hostname = \"relay.bench.invalid\"\ndata_dir = %q\n", filepath.Join(dir, "data"))
	fmt.Fprintf(&cfg, "[listen]\nmx = \"\"\nsubmission = %q\nsubmissions = \"\"\nimap = \"\"\nimaps = \"\"\nadmin = %q\n", sub, admin)
	for _, r := range routes {
		fmt.Fprintf(&cfg, "[[route]]\ndomain = %q\nto = %q\n", r.Domain, r.To)
	}
	if len(pools) > 0 {
		cfg.WriteString("[[pool]]\nname = \"standard\"\nsources = [")
		for i, ip := range pools {
			if i > 0 {
				cfg.WriteString(", ")
			}
			fmt.Fprintf(&cfg, "{ ip = %q, ehlo = \"out%d.bench.invalid\" }", ip, i+1)
		}
		cfg.WriteString("]\n")
	}
	config := filepath.Join(dir, "fairway.toml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write fairway config: %w", err)
	}
	f := &Fairway{Bin: bin, Dir: dir, Submission: sub, config: config}
	return f, f.start(ctx)
}

// start runs `fairway serve` and waits for its admin socket to answer.
func (f *Fairway) start(ctx context.Context) error {
	lf, err := os.OpenFile(filepath.Join(f.Dir, "fairway.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("fairway log: %w", err)
	}
	f.logFile = lf
	cmd := exec.Command(f.Bin, "serve", "--config", f.config)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start fairway: %w", err)
	}
	f.cmd = cmd
	f.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(f.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-f.exited:
			return fmt.Errorf("fairway exited at start; see %s", lf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := f.CLI(ctx, "queue", "stats", "--json"); err == nil {
			if c, err := net.DialTimeout("tcp", f.Submission, time.Second); err == nil {
				c.Close()
				return nil
			}
		}
	}
	return fmt.Errorf("fairway did not come up in 30 s; see %s", lf.Name())
}

// CLI runs one admin command against the running daemon.
func (f *Fairway) CLI(ctx context.Context, args ...string) (string, error) {
	return f.cliStdin(ctx, "", args...)
}

func (f *Fairway) cliStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Bin, append([]string{"--config", f.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("fairway %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// AddTenant provisions t: tenant, domain (with DKIM keys, which stay
// pending with no DNS, so mail leaves unsigned) and mailbox.
func (f *Fairway) AddTenant(ctx context.Context, t TenantSpec) error {
	args := []string{"tenant", "add", t.Name}
	if t.Weight > 0 {
		args = append(args, "--weight", strconv.Itoa(t.Weight))
	}
	if t.MailboxHourly > 0 {
		args = append(args, "--mailbox-hourly", strconv.Itoa(t.MailboxHourly))
	}
	if t.AccountDaily > 0 {
		args = append(args, "--account-daily", strconv.Itoa(t.AccountDaily))
	}
	if _, err := f.CLI(ctx, args...); err != nil {
		return err
	}
	if _, err := f.CLI(ctx, "domain", "add", t.Domain, "--tenant", t.Name); err != nil {
		return err
	}
	_, err := f.cliStdin(ctx, t.Password+"\n", "mailbox", "add", t.User, "--password-stdin")
	return err
}

// Pid is the running daemon's process id.
func (f *Fairway) Pid() int { return f.cmd.Process.Pid }

// Usage returns the daemon's CPU seconds (user+system) and peak RSS in KiB
// so far, from /proc.
func (f *Fairway) Usage() (ProcUsage, error) { return ReadProcUsage(f.Pid()) }

// Kill sends SIGKILL and waits for the process to be gone.
func (f *Fairway) Kill() error {
	if err := f.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill fairway: %w", err)
	}
	select {
	case <-f.exited:
	case <-time.After(30 * time.Second):
		return errors.New("fairway did not exit 30 s after SIGKILL")
	}
	f.logFile.Close()
	return nil
}

// Restart starts the daemon again on the same config and data directory.
func (f *Fairway) Restart(ctx context.Context) error { return f.start(ctx) }

// Stop ends the daemon with SIGTERM, then SIGKILL after 10 s.
func (f *Fairway) Stop() {
	if f.cmd == nil {
		return
	}
	select {
	case <-f.exited:
		return
	default:
	}
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		_ = f.Kill()
	}
	f.logFile.Close()
}

// ProcUsage is a process's resource use read from /proc.
type ProcUsage struct {
	CPUSeconds float64 // utime+stime (+ reaped children's, where asked)
	PeakRSSKiB int64   // VmHWM
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ReadProcUsage reads pid's CPU time and peak RSS.
func ReadProcUsage(pid int) (ProcUsage, error) {
	return readProcUsage(pid, false)
}

func readProcUsage(pid int, withChildren bool) (ProcUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcUsage{}, fmt.Errorf("read proc stat: %w", err)
	}
	cpu, err := parseProcStatCPU(string(stat), withChildren)
	if err != nil {
		return ProcUsage{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcUsage{}, fmt.Errorf("read proc status: %w", err)
	}
	return ProcUsage{CPUSeconds: cpu, PeakRSSKiB: parseVmHWM(string(status))}, nil
}

// parseProcStatCPU returns utime+stime (fields 14, 15), plus cutime+cstime
// (16, 17) if withChildren, in seconds, from a /proc/PID/stat line.
func parseProcStatCPU(stat string, withChildren bool) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no ')' after the command name")
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); field N is fields[N-3].
	if len(fields) < 15 {
		return 0, fmt.Errorf("proc stat: %d fields, want at least 17", len(fields)+2)
	}
	last := 15
	if withChildren {
		last = 17
	}
	var ticks int64
	for n := 14; n <= last; n++ {
		v, err := strconv.ParseInt(fields[n-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat field %d: %w", n, err)
		}
		ticks += v
	}
	return float64(ticks) / clockTicks, nil
}

// parseVmHWM returns the VmHWM line of /proc/PID/status in KiB, 0 if absent.
func parseVmHWM(status string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

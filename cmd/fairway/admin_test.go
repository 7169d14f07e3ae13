package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fairway/cmd/fairway/adminapi"
	"fairway/reputation"
	"fairway/tenant"
)

// daemon is a running `fairway serve` started by a test.
type daemon struct {
	bin, config, socket, adminAddr string
	log                            func() string
	cmd                            *exec.Cmd
	exited                         chan error
}

// freePort returns a 127.0.0.1 address with a port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startDaemon writes a config with every listener off but the admin API on
// a free 127.0.0.1 port, starts serve and waits (at most 10 s) for its
// admin socket.
func startDaemon(t *testing.T, bin string) *daemon {
	t.Helper()
	dir := t.TempDir()
	d := &daemon{bin: bin, config: filepath.Join(dir, "fairway.toml"), adminAddr: freePort(t)}
	dataDir := filepath.Join(dir, "data")
	d.socket = filepath.Join(dataDir, "admin.sock")
	config := fmt.Sprintf(`hostname = "mx.example.net"
data_dir = %q
[listen]
mx          = ""
submission  = ""
submissions = ""
imap        = ""
imaps       = ""
admin       = %q
[[pool]]
name = "standard"
sources = [{ ip = "127.0.0.2" }, { ip = "::1" }]
`, dataDir, d.adminAddr)
	if err := os.WriteFile(d.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	d.log = func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	d.cmd = exec.Command(bin, "serve", "--config", d.config)
	d.cmd.Stderr = logFile
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		err := <-d.exited
		d.exited <- err
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return d
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("serve exited before creating %s: %v\n%s", d.socket, err, d.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not created within 10s\n%s", d.socket, d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits (at most 10 s) for exit 0.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, d.log())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("serve still running 10s after SIGTERM\n%s", d.log())
	}
}

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary with --config and stdin; it fails the test if the
// command does not finish within 30 s.
func (d *daemon) cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, append([]string{"--config", d.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("fairway %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return r
}

// must runs a command that must succeed.
func (d *daemon) must(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := d.cli(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("fairway %s: exit %d\nstdout: %s\nstderr: %s\ndaemon log:\n%s",
			strings.Join(args, " "), r.code, r.stdout, r.stderr, d.log())
	}
	return r.stdout
}

// refused runs a command that must exit with code and print every want on
// stderr.
func (d *daemon) refused(t *testing.T, code int, stdin string, args []string, want ...string) result {
	t.Helper()
	r := d.cli(t, stdin, args...)
	if r.code != code {
		t.Fatalf("fairway %s: exit %d, want %d\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("fairway %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, w)
		}
	}
	return r
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

// testAdminCLI runs the admin commands against a real daemon, as an
// operator would. TestServeBinary calls it with the binary it built.
func testAdminCLI(t *testing.T, bin string) {
	d := startDaemon(t, bin)

	fi, err := os.Lstat(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode %v, want a socket with 0600", fi.Mode())
	}

	// Tenants.
	if out := d.must(t, "", "tenant", "add", "acme", "--weight", "3", "--mailbox-hourly", "100",
		"--network", "192.0.2.0/24"); !strings.Contains(out, "tenant acme added") {
		t.Errorf("tenant add printed %q", out)
	}
	d.must(t, "", "tenant", "add", "other")
	ts := decode[[]tenant.Tenant](t, d.must(t, "", "tenant", "list", "--json"))
	if len(ts) != 2 || ts[0].Name != "acme" || ts[0].Policy.Weight != 3 || ts[0].Policy.MailboxHourly != 100 ||
		len(ts[0].Policy.Networks) != 1 || ts[0].Policy.Networks[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("tenant list --json = %+v", ts)
	}
	if out := d.must(t, "", "tenant", "list"); !strings.Contains(out, "TENANT") || !strings.Contains(out, "acme") {
		t.Errorf("tenant list printed %q", out)
	}
	d.refused(t, 1, "", []string{"tenant", "add", "acme"}, "acme", "already exists")
	d.refused(t, 1, "", []string{"tenant", "show", "ghost"}, "ghost", "not found")

	// Domains: one tenant each.
	d.must(t, "", "domain", "add", "acme.example", "--tenant", "acme")
	d.refused(t, 1, "", []string{"domain", "add", "ACME.example", "--tenant", "other"}, "acme.example", "another tenant")
	show := decode[adminapi.TenantDetail](t, d.must(t, "", "tenant", "show", "acme", "--json"))
	if len(show.Domains) != 1 || show.Domains[0] != "acme.example" {
		t.Errorf("tenant show acme: domains %v", show.Domains)
	}

	// Inbound rules and quotas.
	d.must(t, "", "tenant", "rule", "add", "acme", "--check", "dmarc", "--result", "fail", "--action", "quarantine")
	if out := d.must(t, "", "tenant", "rule", "add", "acme", "--check", "sender", "--value", "@partner.example",
		"--action", "accept", "--position", "1"); !strings.Contains(out, "@partner.example") {
		t.Errorf("rule add printed %q", out)
	}
	d.refused(t, 1, "", []string{"tenant", "rule", "add", "acme", "--check", "virus", "--action", "reject"}, "virus")
	d.refused(t, 2, "", []string{"tenant", "rule", "add", "acme", "--check", "noauth"}, "--action")
	if out := d.must(t, "", "tenant", "rule", "list", "acme"); !strings.Contains(out, "1  sender") || !strings.Contains(out, "2  dmarc") {
		t.Errorf("rule list printed %q", out)
	}
	d.must(t, "", "tenant", "rule", "remove", "acme", "1")
	d.must(t, "", "tenant", "update", "acme", "--mailbox-quota", "2G", "--tenant-quota", "50G")
	d.refused(t, 2, "", []string{"tenant", "update", "acme", "--mailbox-quota", "lots"}, "lots")
	show = decode[adminapi.TenantDetail](t, d.must(t, "", "tenant", "show", "acme", "--json"))
	if q := show.Policy.Quarantine; len(q) != 1 || q[0].Check != "dmarc" || show.Policy.MailboxQuota != 2<<30 || show.Policy.TenantQuota != 50<<30 {
		t.Errorf("tenant show after rule and quota edits: %+v", show.Policy)
	}
	if out := d.must(t, "", "tenant", "show", "acme"); !strings.Contains(out, "2G") || !strings.Contains(out, "1. dmarc fail → quarantine") {
		t.Errorf("tenant show printed %q", out)
	}

	// Reputation: a new tenant starts standard, in the default pool.
	rr := decode[reputation.Report](t, d.must(t, "", "reputation", "show", "acme", "--json"))
	if len(rr.Tenants) != 1 || rr.Tenants[0].Tenant != "acme" || rr.Tenants[0].Tier != reputation.Standard {
		t.Errorf("reputation show acme: %+v", rr)
	}
	if out := d.must(t, "", "reputation", "show"); !strings.Contains(out, "acme") || !strings.Contains(out, "standard") {
		t.Errorf("reputation show printed %q", out)
	}
	d.refused(t, 1, "", []string{"reputation", "show", "ghost"}, "not found")

	// Mailboxes: the password comes from stdin and is never echoed.
	const password = "correct horse battery staple"
	if out := d.must(t, password+"\n", "mailbox", "add", "bob@acme.example", "--password-stdin"); strings.Contains(out, password) {
		t.Errorf("mailbox add echoed the password: %q", out)
	}
	ms := decode[[]adminapi.Mailbox](t, d.must(t, "", "mailbox", "list", "acme.example", "--json"))
	if len(ms) != 1 || ms[0].Address != "bob@acme.example" || ms[0].Tenant != "acme" {
		t.Errorf("mailbox list = %+v", ms)
	}
	r := d.refused(t, 1, "abc123\n", []string{"mailbox", "add", "eve@acme.example", "--password-stdin"},
		"password too short")
	if strings.Contains(r.stdout+r.stderr, "abc123") {
		t.Errorf("weak password echoed: %+v", r)
	}
	d.must(t, "another good password\n", "mailbox", "passwd", "bob@acme.example", "--password-stdin")
	if strings.Contains(d.log(), password) || strings.Contains(d.log(), "another good password") {
		t.Error("a password reached the daemon's log")
	}

	// Import: every bad line reported, nothing written; then a good one.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	writeFile(t, bad, "tenant,domain,mailbox,password\n"+
		"t1,one.example,a@one.example,a long enough password\n"+
		"t1,two.example,b@one.example,a long enough password\n"+
		"t2,three.example,c@three.example,weak\n")
	d.refused(t, 1, "", []string{"import", bad}, "line 3", "line 4", "nothing imported")
	if ts := decode[[]tenant.Tenant](t, d.must(t, "", "tenant", "list", "--json")); len(ts) != 2 {
		t.Errorf("refused import changed the tenants: %+v", ts)
	}
	good := "t1,one.example,a@one.example,a long enough password\nt2,three.example\n"
	if out := d.must(t, good, "import", "-"); !strings.Contains(out, "imported 2 tenant(s), 2 domain(s), 1 mailbox(es)") {
		t.Errorf("import printed %q", out)
	}

	// DNS records: zone-file lines from the config's hostname and pools.
	recs := d.must(t, "", "dns", "records", "acme.example")
	for _, want := range []string{
		"acme.example. IN MX 10 mx.example.net.",
		`acme.example. IN TXT "v=spf1 ip4:127.0.0.2 ip6:::1 -all"`,
		"._domainkey.acme.example. IN TXT \"v=DKIM1;",
		"rua=mailto:dmarc-reports@mx.example.net",
	} {
		if !strings.Contains(recs, want) {
			t.Errorf("dns records lack %q:\n%s", want, recs)
		}
	}

	// Usage errors: exit 2.
	d.refused(t, 2, "", []string{"tenant", "add"}, "accepts 1 arg")
	d.refused(t, 2, "", []string{"tenant", "add", "x", "--weight", "many"}, "--weight")
	d.refused(t, 2, "", []string{"tenant", "add", "x", "--network", "10.0.0.0/33"}, "10.0.0.0/33")
	d.refused(t, 2, "", []string{"mailbox", "add", "x@acme.example"}, "--password-stdin")
	d.refused(t, 2, "", []string{"domain", "add", "x.example"}, "--tenant")
	d.refused(t, 2, "", []string{"tenant", "frobnicate"}, "unknown command")
	d.refused(t, 2, "", []string{"frobnicate"}, "unknown command")
	d.refused(t, 2, "", []string{"queue", "list", "--bogus"}, "unknown flag")

	// The HTTP API on the admin port wants a token.
	url := "http://" + d.adminAddr + "/v1/tenants"
	if code := httpGet(t, url, ""); code != http.StatusUnauthorized {
		t.Errorf("GET without token: %d, want 401", code)
	}
	tok := decode[adminapi.Token](t, d.must(t, "", "token", "create", "--name", "ci", "--json"))
	if !strings.HasPrefix(tok.Secret, "fwt_") {
		t.Fatalf("token create: %+v", tok)
	}
	if code := httpGet(t, url, tok.Secret); code != http.StatusOK {
		t.Errorf("GET with token: %d, want 200", code)
	}
	if code := httpGet(t, url, tok.Secret+"x"); code != http.StatusUnauthorized {
		t.Errorf("GET with a wrong token: %d, want 401", code)
	}

	// Metrics: Prometheus text on the admin port, per-tenant queue gauges.
	resp, err := http.Get("http://" + d.adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `fairway_queue_depth{state="ready",tenant="acme"} 0`) ||
		!strings.Contains(string(body), `fairway_queue_tenant_weight{tenant="acme"} 3`) {
		t.Errorf("GET /metrics: %d\n%.2000s", resp.StatusCode, body)
	}

	// Queue: the tenants are known to the queue with their weights.
	st := decode[adminapi.QueueStats](t, d.must(t, "", "queue", "stats", "--json"))
	weights := map[string]int{}
	for _, qt := range st.Tenants {
		weights[qt.Tenant] = qt.Weight
	}
	if weights["acme"] != 3 || weights["t1"] != 1 {
		t.Errorf("queue stats tenants %+v, want acme with weight 3 and t1 with 1", st.Tenants)
	}
	d.must(t, "", "tenant", "suspend", "acme")
	if ts := decode[adminapi.TenantDetail](t, d.must(t, "", "tenant", "show", "acme", "--json")); !ts.Policy.Suspended {
		t.Error("tenant suspend did not suspend")
	}
	if es := decode[[]adminapi.QueueEntry](t, d.must(t, "", "queue", "list", "--json")); len(es) != 0 {
		t.Errorf("queue list = %+v, want empty", es)
	}
	d.refused(t, 1, "", []string{"queue", "retry", "00000000000000ff"}, "not in the queue")

	// With the daemon stopped, commands say so.
	d.stop(t)
	if _, err := os.Lstat(d.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin socket left after shutdown (%v)", err)
	}
	d.refused(t, 1, "", []string{"tenant", "list"}, "is `fairway serve` running?", d.socket)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// httpGet returns the status of a GET with an optional bearer token.
func httpGet(t *testing.T, url, token string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

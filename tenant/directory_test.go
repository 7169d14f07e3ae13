package tenant

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type testDir struct {
	*Directory
	t    testing.TB
	dir  string
	opts Options
}

func openTestDir(t testing.TB) *testDir {
	td := &testDir{t: t, dir: t.TempDir(), opts: Options{Logger: quietLogger(), Clock: newFakeClock()}}
	td.reopen()
	t.Cleanup(func() { td.Close() })
	return td
}

func (td *testDir) reopen() {
	td.t.Helper()
	if td.Directory != nil {
		if err := td.Close(); err != nil {
			td.t.Fatal(err)
		}
	}
	d, err := Open(td.dir, td.opts)
	if err != nil {
		td.t.Fatal(err)
	}
	td.Directory = d
}

func (td *testDir) must(err error) {
	td.t.Helper()
	if err != nil {
		td.t.Fatal(err)
	}
}

const goodPassword = "correct horse battery"

func TestNormalizeDomain(t *testing.T) {
	good := map[string]string{
		"Example.COM":           "example.com",
		"example.com.":          "example.com",
		"bücher.example":        "xn--bcher-kva.example",
		"XN--BCHER-KVA.example": "xn--bcher-kva.example",
		" mail.example.org ":    "mail.example.org",
	}
	for in, want := range good {
		if got, err := NormalizeDomain(in); err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "localhost", "a..example", "-a.example", "a_b.example",
		strings.Repeat("a", 64) + ".example", strings.Repeat("abcdefghi.", 26) + "com", "exa mple.com", "a@b.example"} {
		if got, err := NormalizeDomain(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want ErrInvalid", bad, got, err)
		}
	}
}

func TestNormalizeAddress(t *testing.T) {
	good := map[string]string{
		"Alice@Example.COM":      "alice@example.com",
		"a.b+tag@bücher.example": "a.b+tag@xn--bcher-kva.example",
	}
	for in, want := range good {
		if got, err := NormalizeAddress(in); err != nil || got != want {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"alice", "@example.com", "alice@", "\"a b\"@example.com", ".a@example.com",
		"a.@example.com", "a..b@example.com", strings.Repeat("a", 65) + "@example.com", "a@localhost", "a%b@c.example"} {
		if got, err := NormalizeAddress(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want ErrInvalid", bad, got, err)
		}
	}
}

func TestDomainBelongsToOneTenant(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("acme", Policy{}))
	d.must(d.AddTenant("other", Policy{}))
	d.must(d.AddDomain("Bücher.Example", "acme"))
	for _, name := range []string{"bücher.example", "XN--BCHER-KVA.EXAMPLE.", "bücher.example"} {
		if err := d.AddDomain(name, "other"); !errors.Is(err, ErrExists) {
			t.Errorf("AddDomain(%q, other) = %v, want ErrExists", name, err)
		}
	}
	if err := d.AddDomain("new.example", "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("domain for unknown tenant: %v", err)
	}
	if ten, ok := d.DomainTenant("xn--bcher-kva.example"); !ok || ten != "acme" {
		t.Fatalf("DomainTenant = %q, %v", ten, ok)
	}
	if ten, ok := d.DomainTenant("BÜCHER.example"); !ok || ten != "acme" {
		t.Fatalf("DomainTenant of a U-label = %q, %v", ten, ok)
	}
	d.reopen()
	if ten, _ := d.DomainTenant("xn--bcher-kva.example"); ten != "acme" {
		t.Fatal("domain lost on reopen")
	}
}

func TestAuthenticateFullAddressOnly(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{}))
	d.must(d.AddTenant("b", Policy{}))
	d.must(d.AddDomain("a.example", "a"))
	d.must(d.AddDomain("b.example", "b"))
	d.must(d.AddMailbox("info@a.example", goodPassword))
	d.must(d.AddMailbox("info@b.example", "another long password"))

	id, err := d.Authenticate("Info@A.example", goodPassword)
	if err != nil || id.Address != "info@a.example" || id.Tenant != "a" {
		t.Fatalf("Authenticate = %+v, %v", id, err)
	}
	for _, c := range []struct{ user, pass string }{
		{"info", goodPassword},                      // bare local part
		{"info@b.example", goodPassword},            // a's password on b's user: no fall-through
		{"info@a.example", "another long password"}, // b's password on a's user
		{"info@c.example", goodPassword},            // unhosted
		{"info@a.example", ""},
		{"info@a.example", strings.Repeat("x", 2000)},
	} {
		if _, err := d.Authenticate(c.user, c.pass); !errors.Is(err, ErrAuth) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrAuth", c.user, c.pass, err)
		}
	}
}

func TestWeakPasswordsRefused(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{}))
	d.must(d.AddDomain("a.example", "a"))
	for _, p := range []string{"short", "elevenchars", "longuser@a.example", "LONGUSER@A.EXAMPLE", "longuser", "ünïcödé"} {
		err := d.AddMailbox("longuser@a.example", p)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "password") {
			t.Errorf("password %q: %v", p, err)
		}
	}
	d.must(d.AddMailbox("longuser@a.example", "twelve chars"))
	if err := d.SetPassword("longuser@a.example", "tooshort"); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetPassword weak: %v", err)
	}
	d.must(d.SetPassword("longuser@a.example", "a new password"))
	if _, err := d.Authenticate("longuser@a.example", "twelve chars"); !errors.Is(err, ErrAuth) {
		t.Error("old password still works")
	}
	if _, err := d.Authenticate("longuser@a.example", "a new password"); err != nil {
		t.Error(err)
	}
}

// Removing a domain removes its accounts in the same commit: no stale
// account authenticates, before or after a restart.
func TestRemoveDomainLeavesNoStaleAccount(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{}))
	d.must(d.AddDomain("gone.example", "a"))
	d.must(d.AddDomain("stays.example", "a"))
	d.must(d.AddMailbox("u@gone.example", goodPassword))
	d.must(d.AddMailbox("v@stays.example", goodPassword))
	d.must(d.AddAlias("sales@gone.example", "v@stays.example"))
	d.must(d.AddAlias("team@stays.example", "u@gone.example"))
	d.must(d.AddAlias("team@stays.example", "v@stays.example"))
	d.must(d.AddAlias("fwd@stays.example", "u@gone.example"))

	id, err := d.Authenticate("u@gone.example", goodPassword)
	d.must(err)
	d.must(d.RemoveDomain("gone.example"))
	for round := range 2 {
		if _, err := d.Authenticate("u@gone.example", goodPassword); !errors.Is(err, ErrAuth) {
			t.Fatalf("round %d: removed user authenticates: %v", round, err)
		}
		if d.MaySendAs(id, "u@gone.example") {
			t.Fatalf("round %d: session of removed user may still send", round)
		}
		if _, ok := d.MailboxTenant("u@gone.example"); ok {
			t.Fatalf("round %d: mailbox still found", round)
		}
		if _, ok := d.AliasTargets("sales@gone.example"); ok {
			t.Fatalf("round %d: alias of removed domain kept", round)
		}
		if got, _ := d.AliasTargets("team@stays.example"); len(got) != 1 || got[0] != "v@stays.example" {
			t.Fatalf("round %d: alias targets %v, want only v@stays.example", round, got)
		}
		if _, ok := d.AliasTargets("fwd@stays.example"); ok {
			t.Fatalf("round %d: alias left with no targets", round)
		}
		if _, err := d.Authenticate("v@stays.example", goodPassword); err != nil {
			t.Fatalf("round %d: other domain's user: %v", round, err)
		}
		d.reopen() // the removal was one durable commit
	}
}

// Removing a tenant removes its domains; an alias of one removed domain
// pointing into another removed domain must not be written back.
func TestRemoveTenantRemovesDomains(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}))
	d.must(d.AddTenant("b", Policy{}))
	for _, dom := range []string{"x.example", "y.example"} {
		d.must(d.AddDomain(dom, "a"))
		d.must(d.AddMailbox("u@"+dom, goodPassword))
	}
	d.must(d.AddAlias("al@x.example", "u@y.example"))
	d.must(d.AddAlias("al@x.example", "ext@elsewhere.example"))
	d.must(d.AddDomain("b.example", "b"))
	d.must(d.AddMailbox("u@b.example", goodPassword))

	d.must(d.RemoveTenant("a"))
	for round := range 2 {
		if len(d.Domains("a")) != 0 || len(d.Tenants()) != 1 {
			t.Fatalf("round %d: left %v / %v", round, d.Domains("a"), d.Tenants())
		}
		for _, u := range []string{"u@x.example", "u@y.example"} {
			if _, err := d.Authenticate(u, goodPassword); !errors.Is(err, ErrAuth) {
				t.Fatalf("round %d: %s authenticates after its tenant was removed", round, u)
			}
		}
		if _, ok := d.AliasTargets("al@x.example"); ok {
			t.Fatalf("round %d: alias resurrected", round)
		}
		if _, ok := d.NetworkTenant(netip.MustParseAddr("192.0.2.7")); ok {
			t.Fatalf("round %d: removed tenant's network still maps", round)
		}
		if _, err := d.Authenticate("u@b.example", goodPassword); err != nil {
			t.Fatalf("round %d: other tenant hurt: %v", round, err)
		}
		d.reopen()
	}
	// The names are free again.
	d.must(d.AddTenant("a", Policy{}))
	d.must(d.AddDomain("x.example", "b"))
}

func TestAliasesNeverCrossTenants(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{}))
	d.must(d.AddTenant("b", Policy{}))
	d.must(d.AddDomain("a.example", "a"))
	d.must(d.AddDomain("a2.example", "a"))
	d.must(d.AddDomain("b.example", "b"))
	d.must(d.AddMailbox("boss@b.example", goodPassword))
	d.must(d.AddMailbox("me@a.example", goodPassword))
	d.must(d.AddMailbox("colleague@a.example", goodPassword))

	if err := d.AddAlias("ceo@a.example", "boss@b.example"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("alias to another tenant's mailbox: %v", err)
	}
	if err := d.AddAlias("x@b.example", "me@a.example"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("alias in b's domain to a's mailbox: %v", err)
	}
	if err := d.AddAlias("x@unhosted.example", "me@a.example"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("alias in unhosted domain: %v", err)
	}
	if err := d.AddAlias("me@a.example", "colleague@a.example"); !errors.Is(err, ErrExists) {
		t.Fatalf("alias over a mailbox: %v", err)
	}
	if err := d.AddAlias("nobody@a.example", "ghost@a.example"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("alias to missing mailbox: %v", err)
	}
	d.must(d.AddAlias("sales@a2.example", "me@a.example"))
	d.must(d.AddAlias("fwd@a.example", "someone@gmail.example"))
	if err := d.AddAlias("sales@a2.example", "me@a.example"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate target: %v", err)
	}

	me := Identity{Address: "me@a.example", Tenant: "a"}
	for sender, want := range map[string]bool{
		"me@a.example":        true,
		"ME@A.EXAMPLE":        true,
		"sales@a2.example":    true,  // an alias that delivers to me
		"fwd@a.example":       false, // an alias, but not mine
		"colleague@a.example": false,
		"boss@b.example":      false,
		"me":                  false,
		"":                    false,
	} {
		if got := d.MaySendAs(me, sender); got != want {
			t.Errorf("MaySendAs(me, %q) = %v, want %v", sender, got, want)
		}
	}
	d.must(d.UpdateTenant("a", func(p *Policy) { p.AnySender = true }))
	if !d.MaySendAs(me, "colleague@a.example") || !d.MaySendAs(me, "anything@a2.example") {
		t.Error("any-sender tenant cannot use its own domains")
	}
	if d.MaySendAs(me, "boss@b.example") || d.MaySendAs(me, "x@unhosted.example") {
		t.Error("any-sender reaches outside its tenant")
	}
	if d.MaySendAs(Identity{Address: "boss@b.example", Tenant: "a"}, "me@a.example") {
		t.Error("forged identity (wrong tenant) accepted")
	}
	d.must(d.RemoveAlias("sales@a2.example", ""))
	if _, ok := d.AliasTargets("sales@a2.example"); ok {
		t.Error("alias not removed")
	}
}

func TestNetworksBelongToOneTenant(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{Networks: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}))
	if err := d.AddTenant("b", Policy{Networks: []netip.Prefix{netip.MustParsePrefix("198.51.100.128/25")}}); !errors.Is(err, ErrExists) {
		t.Fatalf("overlapping network: %v", err)
	}
	d.must(d.AddTenant("b", Policy{Networks: []netip.Prefix{netip.MustParsePrefix("2001:db8::/48")}}))
	for ip, want := range map[string]string{"198.51.100.9": "a", "::ffff:198.51.100.9": "a", "2001:db8::1": "b", "203.0.113.1": ""} {
		got, _ := d.NetworkTenant(netip.MustParseAddr(ip))
		if got != want {
			t.Errorf("NetworkTenant(%s) = %q, want %q", ip, got, want)
		}
	}
	if err := d.UpdateTenant("b", func(p *Policy) {
		p.Networks = append(p.Networks, netip.MustParsePrefix("198.51.0.0/16"))
	}); !errors.Is(err, ErrExists) {
		t.Fatalf("update to overlapping network: %v", err)
	}
}

func TestPolicyPersistsAndValidates(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{Weight: 4, MailboxHourly: 100, AccountDaily: 5000, Pool: "premium",
		Quarantine: []QuarantineRule{{Check: "dmarc", Result: "fail", Action: "quarantine"}}}))
	d.must(d.SuspendTenant("a"))
	d.reopen()
	p, ok := d.TenantPolicy("a")
	if !ok || !p.Suspended || p.Weight != 4 || p.MailboxHourly != 100 || p.AccountDaily != 5000 || p.Pool != "premium" || len(p.Quarantine) != 1 {
		t.Fatalf("policy after reopen %+v", p)
	}
	d.must(d.ResumeTenant("a"))
	if p, _ := d.TenantPolicy("a"); p.Suspended {
		t.Fatal("still suspended")
	}
	for name, pol := range map[string]Policy{
		"weight":     {Weight: 5000},
		"negative":   {MailboxHourly: -1},
		"quarantine": {Quarantine: []QuarantineRule{{Check: "spam", Result: "fail", Action: "quarantine"}}},
	} {
		if err := d.AddTenant("t-"+name, pol); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, bad := range []string{"", "Upper", "has space", strings.Repeat("x", 65), "slash/"} {
		if err := d.AddTenant(bad, Policy{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("tenant name %q: %v", bad, err)
		}
	}
	if err := d.AddTenant("a", Policy{}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate tenant: %v", err)
	}
}

func TestImportValidatesWholeFileFirst(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("held", Policy{}))
	d.must(d.AddDomain("taken.example", "held"))
	csv := strings.Join([]string{
		"tenant,domain,mailbox,password",
		"acme,acme.example,info@acme.example,a long enough password",
		"acme,acme.example",
		"acme,taken.example",                                         // 4: held by another tenant
		"acme,acme.example,x@other.example,password long enough",     // 5: mailbox not in domain
		"beta,acme.example",                                          // 6: given to acme above
		"acme,acme.example,info@acme.example,a long enough password", // 7: duplicate
		"acme,acme.example,weak@acme.example,short",                  // 8: weak
		"Bad Name,b.example",                                         // 9
		"acme",                                                       // 10: columns
		"beta,beta.example,sales@beta.example,yet another good one",
	}, "\n")
	_, err := d.Import(strings.NewReader(csv))
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("Import = %v, want *ImportError", err)
	}
	var lines []int
	for _, l := range ie.Lines {
		lines = append(lines, l.Line)
	}
	want := []int{4, 5, 6, 7, 8, 9, 10}
	if len(lines) != len(want) {
		t.Fatalf("bad lines %v (%v), want %v", lines, err, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("bad lines %v, want %v", lines, want)
		}
	}
	if len(d.Tenants()) != 1 || len(d.Domains("")) != 1 {
		t.Fatalf("a failed import wrote something: %v %v", d.Tenants(), d.Domains(""))
	}

	good := "acme,acme.example,info@acme.example,a long enough password\nacme,acme2.example\n\nbeta,beta.example,sales@beta.example,yet another good one\n"
	res, err := d.Import(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if res != (ImportResult{Tenants: 2, Domains: 3, Mailboxes: 2}) {
		t.Fatalf("result %+v", res)
	}
	d.reopen()
	if _, err := d.Authenticate("sales@beta.example", "yet another good one"); err != nil {
		t.Fatal(err)
	}
	if ten, _ := d.DomainTenant("acme2.example"); ten != "acme" {
		t.Fatal("imported domain missing after reopen")
	}
	// Importing the same mailbox again is refused whole.
	if _, err := d.Import(strings.NewReader(good)); !errors.As(err, &ie) || ie.Lines[0].Line != 1 {
		t.Fatalf("re-import: %v", err)
	}
	if _, err := d.Import(strings.NewReader("")); err == nil {
		t.Fatal("empty import accepted")
	}
	if _, err := d.Import(strings.NewReader("a,\"unterminated\n")); !errors.As(err, &ie) {
		t.Fatalf("broken CSV: %v", err)
	}
}

func TestAdminTokens(t *testing.T) {
	d := openTestDir(t)
	secret, tok, err := d.CreateToken("ci")
	d.must(err)
	if !d.VerifyToken(secret) {
		t.Fatal("fresh token refused")
	}
	for _, bad := range []string{"", "fwt_", secret + "x", strings.Replace(secret, "fwt_", "fwx_", 1),
		"fwt_" + tok.ID + "_AAAA", "fwt_000000000000_" + strings.SplitN(secret, "_", 3)[2]} {
		if d.VerifyToken(bad) {
			t.Errorf("token %q accepted", bad)
		}
	}
	d.reopen()
	if !d.VerifyToken(secret) {
		t.Fatal("token lost on reopen")
	}
	list, err := d.Tokens()
	if err != nil || len(list) != 1 || list[0].Hash != "" || list[0].Name != "ci" {
		t.Fatalf("Tokens = %+v, %v", list, err)
	}
	d.must(d.RevokeToken(tok.ID))
	if d.VerifyToken(secret) {
		t.Fatal("revoked token accepted")
	}
	if err := d.RevokeToken(tok.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n--
		return copy(p, "acme,acme.example\n"), nil
	}
	return 0, errors.New("disk on fire")
}

type endlessReader struct{}

func (endlessReader) Read(p []byte) (int, error) {
	line := "acme," + strings.Repeat("x", 60) + ".example\n"
	n := 0
	for n+len(line) <= len(p) {
		n += copy(p[n:], line)
	}
	return n, nil
}

func TestImportReadFailures(t *testing.T) {
	d := openTestDir(t)
	_, err := d.Import(&failingReader{n: 3})
	var ie *ImportError
	if !errors.As(err, &ie) || len(ie.Lines) != 1 || !strings.Contains(ie.Error(), "disk on fire") {
		t.Fatalf("Import of a failing reader = %v", err)
	}
	if _, err := d.Import(endlessReader{}); err == nil || !strings.Contains(err.Error(), "lines") && !strings.Contains(err.Error(), "larger") {
		t.Fatalf("Import of an endless reader = %v", err)
	}
	if len(d.Domains("")) != 0 {
		t.Fatal("failed imports wrote something")
	}
}

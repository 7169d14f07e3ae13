package tenant

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// exportFixture fills a directory with tenant "acme": policy, two domains
// (example.com with active keys and a rotation pending, example.org with
// pending keys), a mailbox, an alias with a local and an external target;
// and tenant "other" with a domain of its own, which must not travel.
func exportFixture(t *testing.T, e *dkimEnv) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.d.AddTenant("acme", Policy{Weight: 3, MailboxHourly: 50, AnySender: true,
		Networks:   []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		Quarantine: []QuarantineRule{{Check: "dmarc", Result: "fail", Action: "quarantine"}}}))
	must(e.d.AddDomain(testDomain, "acme"))
	e.activate(testDomain, selR, selE)
	must(e.d.RotateDKIM(testDomain))
	must(e.d.AddDomain("example.org", "acme"))
	must(e.d.AddMailbox("alice@example.com", goodPassword))
	must(e.d.AddMailbox("bob@example.org", goodPassword+"2"))
	must(e.d.AddAlias("sales@example.com", "alice@example.com"))
	must(e.d.AddAlias("sales@example.com", "partner@elsewhere.example"))
	must(e.d.AddTenant("other", Policy{}))
	must(e.d.AddDomain("other.example", "other"))
	must(e.d.AddMailbox("carol@other.example", goodPassword))
}

// viaJSON is what crosses the wire: the archive encoded and decoded.
func viaJSON(t *testing.T, a *TenantArchive) *TenantArchive {
	t.Helper()
	buf, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var out TenantArchive
	if err := json.Unmarshal(buf, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestExportImportRoundTrip(t *testing.T) {
	src := newDKIMEnv(t)
	exportFixture(t, src)
	a, err := src.d.ExportTenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.DomainNames(); !slices.Equal(got, []string{"example.com", "example.org"}) {
		t.Errorf("exported domains %v", got)
	}
	for _, m := range a.Mailboxes {
		if m.Address == "carol@other.example" {
			t.Error("another tenant's mailbox exported")
		}
	}
	if len(a.DKIMKeys) != 6 {
		t.Errorf("exported %d dkim keys, want 6 (2 active + 2 pending on example.com, 2 pending on example.org)", len(a.DKIMKeys))
	}

	dst := newDKIMEnv(t)
	if err := dst.d.ImportTenant(viaJSON(t, a)); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		id, err := dst.d.Authenticate("alice@example.com", goodPassword)
		if err != nil || id.Tenant != "acme" {
			t.Errorf("%s: alice with her old password: %+v %v", when, id, err)
		}
		if _, err := dst.d.Authenticate("bob@example.org", goodPassword+"2"); err != nil {
			t.Errorf("%s: bob: %v", when, err)
		}
		if _, err := dst.d.Authenticate("alice@example.com", goodPassword+"x"); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: wrong password: %v", when, err)
		}
		if _, ok := dst.d.MailboxTenant("carol@other.example"); ok {
			t.Errorf("%s: another tenant's mailbox came along", when)
		}
		targets, ok := dst.d.AliasTargets("sales@example.com")
		if !ok || !slices.Equal(targets, []string{"alice@example.com", "partner@elsewhere.example"}) {
			t.Errorf("%s: alias: %v %v", when, targets, ok)
		}
		want, _ := src.d.Tenant("acme")
		got, err := dst.d.Tenant("acme")
		if err != nil || !jsonEqual(t, got, want) {
			t.Errorf("%s: tenant %+v, want %+v (%v)", when, got, want, err)
		}
		if tn, ok := dst.d.NetworkTenant(netip.MustParseAddr("192.0.2.7")); !ok || tn != "acme" {
			t.Errorf("%s: client network: %q %v", when, tn, ok)
		}
		for _, dom := range []string{testDomain, "example.org"} {
			ws, gs := src.d.DKIMSigners(dom), dst.d.DKIMSigners(dom)
			if len(ws) != len(gs) {
				t.Errorf("%s: %s: %d signers, want %d", when, dom, len(gs), len(ws))
				continue
			}
			for i := range ws {
				wp, _ := x509.MarshalPKIXPublicKey(ws[i].Signer.Public())
				gp, _ := x509.MarshalPKIXPublicKey(gs[i].Signer.Public())
				if ws[i].Selector != gs[i].Selector || string(wp) != string(gp) {
					t.Errorf("%s: %s: signer %d is %s, want %s with the same key", when, dom, i, gs[i].Selector, ws[i].Selector)
				}
			}
			if w, g := src.status(dom), dst.status(dom); !jsonEqual(t, g, w) {
				t.Errorf("%s: %s: dkim status\n got %+v\nwant %+v", when, dom, g, w)
			}
		}
		if n := len(dst.d.DKIMSigners(testDomain)); n != 2 {
			t.Errorf("%s: %d active signers on %s, want 2", when, n, testDomain)
		}
	}
	check("after import")
	for _, k := range a.DKIMKeys {
		fi, err := os.Stat(filepath.Join(dst.dir, "dkim", k.Domain, k.Selector+".pem"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key file %s/%s: %v %v", k.Domain, k.Selector, fi, err)
		}
	}
	dst.reopen() // from Pebble and the key files alone
	check("after restart")

	// Export again from the new server: the same archive, but for the time.
	again, err := dst.d.ExportTenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	again.Exported = a.Exported
	if !jsonEqual(t, again, a) {
		t.Error("re-export differs from the original export")
	}
	// A second import of the same archive is a conflict, and changes nothing.
	if err := dst.d.ImportTenant(viaJSON(t, a)); !errors.Is(err, ErrExists) {
		t.Errorf("second import: %v, want ErrExists", err)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return string(x) == string(y)
}

// assertNothingImported checks that the destination holds no trace of acme.
func assertNothingImported(t *testing.T, e *dkimEnv, keepTenants ...string) {
	t.Helper()
	var names []string
	for _, tn := range e.d.Tenants() {
		names = append(names, tn.Name)
	}
	if !slices.Equal(names, keepTenants) {
		t.Errorf("tenants after a refused import: %v, want %v", names, keepTenants)
	}
	for _, dom := range []string{testDomain, "example.org"} {
		if tn, ok := e.d.DomainTenant(dom); ok && tn == "acme" {
			t.Errorf("domain %s imported", dom)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "dkim", dom)); err == nil && !slices.Contains(keepTenants, "holder") {
			t.Errorf("key directory of %s left behind", dom)
		}
	}
	if _, ok := e.d.MailboxTenant("alice@example.com"); ok {
		t.Error("mailbox imported")
	}
}

func TestImportRefusesConflicts(t *testing.T) {
	src := newDKIMEnv(t)
	exportFixture(t, src)
	a, err := src.d.ExportTenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func(d *Directory) error
		keep  []string
		want  error
	}{
		{"tenant exists", func(d *Directory) error { return d.AddTenant("acme", Policy{}) }, []string{"acme"}, ErrExists},
		{"domain held here", func(d *Directory) error {
			if err := d.AddTenant("holder", Policy{}); err != nil {
				return err
			}
			return d.AddDomain("example.org", "holder")
		}, []string{"holder"}, ErrExists},
		{"network held here", func(d *Directory) error {
			return d.AddTenant("netco", Policy{Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}})
		}, []string{"netco"}, ErrExists},
		{"alias target is another tenant's here", func(d *Directory) error {
			if err := d.AddTenant("partner", Policy{}); err != nil {
				return err
			}
			return d.AddDomain("elsewhere.example", "partner")
		}, []string{"partner"}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newDKIMEnv(t)
			if err := tc.setup(dst.d); err != nil {
				t.Fatal(err)
			}
			if err := dst.d.CheckImport(viaJSON(t, a)); !errors.Is(err, tc.want) {
				t.Errorf("CheckImport: %v, want %v", err, tc.want)
			}
			if err := dst.d.ImportTenant(viaJSON(t, a)); !errors.Is(err, tc.want) {
				t.Errorf("ImportTenant: %v, want %v", err, tc.want)
			}
			assertNothingImported(t, dst, tc.keep...)
		})
	}
}

func TestImportRefusesTamperedArchives(t *testing.T) {
	src := newDKIMEnv(t)
	exportFixture(t, src)
	orig, err := src.d.ExportTenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	keyIndex := func(a *TenantArchive, state KeyState, alg string) int {
		for i, k := range a.DKIMKeys {
			if k.State == state && k.Algorithm == alg {
				return i
			}
		}
		t.Fatalf("no %s %s key in the fixture", state, alg)
		return -1
	}
	for _, tc := range []struct {
		name   string
		tamper func(a *TenantArchive)
	}{
		{"unknown version", func(a *TenantArchive) { a.Version = 2 }},
		{"no version", func(a *TenantArchive) { a.Version = 0 }},
		{"bad tenant name", func(a *TenantArchive) { a.Tenant.Name = "../acme" }},
		{"weight out of range", func(a *TenantArchive) { a.Tenant.Policy.Weight = 5000 }},
		{"bad quarantine rule", func(a *TenantArchive) { a.Tenant.Policy.Quarantine[0].Action = "delete" }},
		{"domain not normalized", func(a *TenantArchive) { a.Domains[0].Name = "Example.COM" }},
		{"domain path trick", func(a *TenantArchive) { a.Domains[1].Name = "../etc" }},
		{"domain of another tenant", func(a *TenantArchive) { a.Domains[0].Tenant = "other" }},
		{"domain twice", func(a *TenantArchive) { a.Domains[1] = a.Domains[0] }},
		{"mailbox outside the domains", func(a *TenantArchive) { a.Mailboxes[0].Address = "alice@other.example" }},
		{"mailbox of another tenant", func(a *TenantArchive) { a.Mailboxes[0].Tenant = "other" }},
		{"bare local part", func(a *TenantArchive) { a.Mailboxes[0].Address = "alice" }},
		{"hash not argon2id", func(a *TenantArchive) { a.Mailboxes[0].Hash = "$2y$10$abcdefghijklmnopqrstuv" }},
		{"hash with absurd memory", func(a *TenantArchive) {
			a.Mailboxes[0].Hash = strings.Replace(a.Mailboxes[0].Hash, "m=19456", "m=99999999", 1)
		}},
		{"empty hash", func(a *TenantArchive) { a.Mailboxes[0].Hash = "" }},
		{"alias that is a mailbox", func(a *TenantArchive) { a.Aliases[0].Address = "alice@example.com" }},
		{"alias target not a mailbox", func(a *TenantArchive) { a.Aliases[0].Targets[0] = "nobody@example.org" }},
		{"alias without targets", func(a *TenantArchive) { a.Aliases[0].Targets = nil }},
		{"alias to itself", func(a *TenantArchive) { a.Aliases[0].Targets[0] = a.Aliases[0].Address }},
		{"key of another domain", func(a *TenantArchive) { a.DKIMKeys[0].Domain = "other.example" }},
		{"selector path trick", func(a *TenantArchive) { a.DKIMKeys[0].Selector = "../../directory/x" }},
		{"unknown algorithm", func(a *TenantArchive) { a.DKIMKeys[0].Algorithm = "dsa" }},
		{"removed key", func(a *TenantArchive) { a.DKIMKeys[0].State = KeyRemoved }},
		{"active key without private key", func(a *TenantArchive) {
			a.DKIMKeys[keyIndex(a, KeyActive, AlgorithmRSA)].PrivateKeyPEM = ""
		}},
		{"private key not the published one", func(a *TenantArchive) {
			act, pend := keyIndex(a, KeyActive, AlgorithmEd25519), keyIndex(a, KeyPending, AlgorithmEd25519)
			a.DKIMKeys[act].PrivateKeyPEM = a.DKIMKeys[pend].PrivateKeyPEM
		}},
		{"published record swapped", func(a *TenantArchive) {
			act, pend := keyIndex(a, KeyActive, AlgorithmRSA), keyIndex(a, KeyPending, AlgorithmRSA)
			a.DKIMKeys[act].TXT = a.DKIMKeys[pend].TXT
		}},
		{"selector twice", func(a *TenantArchive) {
			a.DKIMKeys[1].Selector, a.DKIMKeys[1].Domain = a.DKIMKeys[0].Selector, a.DKIMKeys[0].Domain
		}},
		{"generating key with a private key", func(a *TenantArchive) {
			a.DKIMKeys[keyIndex(a, KeyActive, AlgorithmRSA)].State = KeyGenerating
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := viaJSON(t, orig)
			tc.tamper(a)
			if err := ValidateArchive(viaJSON(t, a)); !errors.Is(err, ErrInvalid) {
				t.Errorf("ValidateArchive: %v, want ErrInvalid", err)
			}
			dst := newDKIMEnv(t)
			if err := dst.d.ImportTenant(a); !errors.Is(err, ErrInvalid) {
				t.Errorf("ImportTenant: %v, want ErrInvalid", err)
			}
			assertNothingImported(t, dst)
			if _, err := os.Stat(filepath.Join(dst.dir, "dkim")); err == nil {
				entries, _ := os.ReadDir(filepath.Join(dst.dir, "dkim"))
				if len(entries) > 0 {
					t.Errorf("key files written for a refused archive: %v", entries)
				}
			}
		})
	}
	// The untampered archive is fine: the refusals above are the tampering's.
	if err := ValidateArchive(viaJSON(t, orig)); err != nil {
		t.Fatal(err)
	}
}

// TestImportAbortRemovesKeyFiles makes the key file of the second domain
// impossible to write: the first domain's key files, already written, must
// go, and nothing be committed.
func TestImportAbortRemovesKeyFiles(t *testing.T) {
	src := newDKIMEnv(t)
	exportFixture(t, src)
	a, err := src.d.ExportTenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	dst := newDKIMEnv(t)
	if err := os.MkdirAll(filepath.Join(dst.dir, "dkim"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A file where example.org's key directory must go.
	if err := os.WriteFile(filepath.Join(dst.dir, "dkim", "example.org"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := dst.d.ImportTenant(a); err == nil {
		t.Fatal("import succeeded with an unwritable key directory")
	}
	if _, err := os.Stat(filepath.Join(dst.dir, "dkim", testDomain)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key directory of %s left behind by the aborted import: %v", testDomain, err)
	}
	if len(dst.d.Tenants()) != 0 || len(dst.d.DKIMSigners(testDomain)) != 0 || len(dst.storedKeys(testDomain)) != 0 {
		t.Error("aborted import left directory state")
	}
}

// TestImportGeneratingKey: a key still being generated when the tenant was
// exported is generated on the new server.
func TestImportGeneratingKey(t *testing.T) {
	src := newDKIMEnv(t)
	addTestDomain(t, src.d, testDomain, true)
	src.d.closeDKIM() // keep the RSA key generating
	a, err := src.d.ExportTenant("t")
	if err != nil {
		t.Fatal(err)
	}
	states := map[KeyState]int{}
	for _, k := range a.DKIMKeys {
		states[k.State]++
	}
	if states[KeyGenerating] != 1 || states[KeyPending] != 1 {
		t.Fatalf("exported key states %v", states)
	}
	dst := newDKIMEnv(t)
	if err := dst.d.ImportTenant(viaJSON(t, a)); err != nil {
		t.Fatal(err)
	}
	dst.d.dkim.gen.wait()
	if got := dst.states(testDomain); got[selR] != KeyPending || got[selE] != KeyPending {
		t.Errorf("after import: %v, want both pending (RSA generated here)", got)
	}
	if !dst.keyFileExists(testDomain, selR) {
		t.Error("generated RSA key has no file")
	}
}

func TestValidHash(t *testing.T) {
	h, err := hashPassword(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !validHash(h) || !verifyPassword(h, goodPassword) {
		t.Fatal("a fresh hash is refused")
	}
	for _, bad := range []string{"", h + "$", strings.Replace(h, "argon2id", "argon2i", 1),
		strings.Replace(h, "t=2", "t=0", 1), strings.Replace(h, "p=1", "p=1x", 1), h[:len(h)-4],
		strings.Replace(h, "v=19", "v=16", 1), "x" + h} {
		if validHash(bad) {
			t.Errorf("validHash(%q) = true", bad)
		}
	}
}

// FuzzValidateArchive feeds ValidateArchive any JSON: it must not panic, and
// an archive it accepts must be one ImportTenant's checks accept as well.
func FuzzValidateArchive(f *testing.F) {
	f.Add([]byte(`{"version":1,"tenant":{"name":"acme","policy":{"weight":1}},"domains":[{"name":"example.com","tenant":"acme"}]}`))
	f.Add([]byte(`{"version":1,"tenant":{"name":"acme"},"domains":[{"name":"example.com","tenant":"acme"}],"aliases":[{"address":"a@example.com","tenant":"acme","targets":["x@y.example"]}]}`))
	f.Add([]byte(`{"version":1,"tenant":{"name":"acme"},"domains":[{"name":"example.com","tenant":"acme"}],"dkim_keys":[{"domain":"example.com","selector":"s1","algorithm":"rsa","state":"generating"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a TenantArchive
		if json.Unmarshal(data, &a) != nil {
			return
		}
		if err := ValidateArchive(&a); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal not ErrInvalid: %v", err)
			}
			return
		}
		// Accepted: every name is in stored form and safe in a path.
		for _, d := range a.Domains {
			if strings.ContainsAny(d.Name, "/\\") || strings.HasPrefix(d.Name, ".") {
				t.Fatalf("accepted domain %q", d.Name)
			}
		}
		for _, k := range a.DKIMKeys {
			if strings.ContainsAny(k.Selector, "/\\") || strings.HasPrefix(k.Selector, ".") {
				t.Fatalf("accepted selector %q", k.Selector)
			}
		}
	})
}

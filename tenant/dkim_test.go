package tenant

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

const testDomain = "example.com"

// Selectors of the keys made at testStart (November 2026).
const (
	selR = "fw202611r"
	selE = "fw202611e"
)

func TestDKIMAddDomainKeys(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)

	st := e.status(testDomain)
	if len(st) != 2 {
		t.Fatalf("got %d keys, want 2: %+v", len(st), st)
	}
	for _, s := range st {
		if s.State != KeyPending {
			t.Errorf("%s: state %s, want pending", s.Selector, s.State)
		}
		if !strings.HasPrefix(s.Action, "publish TXT "+s.Selector+"._domainkey.example.com. \"v=DKIM1; k="+s.Algorithm+"; p=") {
			t.Errorf("%s: action %q", s.Selector, s.Action)
		}
	}
	if st[0].Selector != selR || st[0].Algorithm != AlgorithmRSA || st[1].Selector != selE || st[1].Algorithm != AlgorithmEd25519 {
		t.Fatalf("selectors/algorithms: %+v", st)
	}

	dir := filepath.Join(e.dir, "dkim", testDomain)
	for _, d := range []string{filepath.Join(e.dir, "dkim"), dir} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	for _, s := range st {
		path := filepath.Join(dir, s.Selector+".pem")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
		}
		buf, _ := os.ReadFile(path)
		block, _ := pem.Decode(buf)
		if block == nil || block.Type != "PRIVATE KEY" {
			t.Fatalf("%s: not a PKCS#8 PEM file", path)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if s.Algorithm != AlgorithmRSA || k.N.BitLen() != 2048 {
				t.Errorf("%s: %s key of %d bits", path, s.Algorithm, k.N.BitLen())
			}
			txt, _ := keyRecordValue(AlgorithmRSA, &k.PublicKey)
			if txt != s.Record.Value {
				t.Errorf("%s: record %q does not match the key file", s.Selector, s.Record.Value)
			}
		case ed25519.PrivateKey:
			if s.Algorithm != AlgorithmEd25519 {
				t.Errorf("%s: ed25519 key for %s", path, s.Algorithm)
			}
			txt, _ := keyRecordValue(AlgorithmEd25519, k.Public())
			if txt != s.Record.Value {
				t.Errorf("%s: record %q does not match the key file", s.Selector, s.Record.Value)
			}
		default:
			t.Fatalf("%s: %T", path, key)
		}
	}
	if got := e.d.DKIMSigners(testDomain); len(got) != 0 {
		t.Errorf("pending keys sign: %+v", got)
	}
	if got := e.storedKeys(testDomain); !slices.Equal(got, []string{selE, selR}) {
		t.Errorf("stored records %v", got)
	}

	// The state survives a restart, keys included.
	e.reopen()
	if got := e.states(testDomain); got[selR] != KeyPending || got[selE] != KeyPending || len(got) != 2 {
		t.Errorf("after reopen: %v", got)
	}
	if _, err := e.d.DKIMStatus("nowhere.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown domain: %v, want ErrNotFound", err)
	}
}

// activate publishes the keys and lets the publish delay pass.
func (e *dkimEnv) activate(domain string, selectors ...string) {
	e.t.Helper()
	e.publish(domain, selectors...)
	e.tick()
	e.clk.Advance(e.d.opts.DKIM.PublishDelay)
	e.tick()
	for _, sel := range selectors {
		if s := e.key(domain, sel); s.State != KeyActive {
			e.t.Fatalf("%s: %s after publication and delay", sel, s.State)
		}
	}
}

func TestDKIMSignaturesVerifyAgainstPublishedRecord(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	e.activate(testDomain, selR, selE)

	signers := e.d.DKIMSigners(testDomain)
	if len(signers) != 2 {
		t.Fatalf("signers: %+v", signers)
	}
	msg := "From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
	for _, s := range signers {
		var signed bytes.Buffer
		err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{
			Domain: testDomain, Selector: s.Selector, Signer: s.Signer,
			HeaderKeys: []string{"From", "To", "Subject"},
		})
		if err != nil {
			t.Fatalf("%s: sign: %v", s.Algorithm, err)
		}
		// Verify with the key record as the loopback DNS serves it, through
		// the same resolver the directory uses.
		lookups := 0
		vs, err := dkim.VerifyWithOptions(&signed, &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
			lookups++
			return e.d.dkim.resolver.LookupTXT(context.Background(), name)
		}})
		if err != nil || len(vs) != 1 || lookups != 1 {
			t.Fatalf("%s: verify: %v (%d results, %d lookups)", s.Algorithm, err, len(vs), lookups)
		}
		if vs[0].Err != nil {
			t.Errorf("%s (%s): signature does not verify: %v", s.Selector, s.Algorithm, vs[0].Err)
		}
	}

	// A signature by a key whose record holds another key fails: the
	// check above is not vacuous.
	other, _ := newPrivateKey(AlgorithmEd25519)
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: testDomain, Selector: selE, Signer: other}); err != nil {
		t.Fatal(err)
	}
	vs, err := dkim.VerifyWithOptions(&signed, &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		return e.d.dkim.resolver.LookupTXT(context.Background(), name)
	}})
	if err != nil || len(vs) != 1 || vs[0].Err == nil {
		t.Errorf("foreign key verified: %v %+v", err, vs)
	}
}

func TestDKIMRotationEndToEnd(t *testing.T) {
	e := newDKIMEnv(t)
	p := e.d.opts.DKIM
	addTestDomain(t, e.d, testDomain, false)

	// Unpublished: stays pending however long we wait.
	e.tick()
	e.clk.Advance(10 * p.PublishDelay)
	e.tick()
	if s := e.key(testDomain, selR); s.State != KeyPending || !s.FirstSeen.IsZero() {
		t.Fatalf("unpublished key: %+v", s)
	}

	// Published: first seen now, active PublishDelay later, not a second before.
	e.publish(testDomain, selR, selE)
	e.tick()
	seen := e.clk.Now()
	s := e.key(testDomain, selR)
	if s.State != KeyPending || !s.FirstSeen.Equal(seen) {
		t.Fatalf("after first sight: %+v", s)
	}
	if want := "waiting for publication delay until " + seen.Add(p.PublishDelay).Format(time.RFC3339); !strings.HasPrefix(s.Action, want) {
		t.Errorf("action %q, want prefix %q", s.Action, want)
	}
	e.clk.Advance(p.PublishDelay - time.Second)
	e.tick()
	if got := e.states(testDomain); got[selR] != KeyPending || got[selE] != KeyPending {
		t.Fatalf("a second before the delay: %v", got)
	}
	e.clk.Advance(time.Second)
	e.tick()
	if got := e.states(testDomain); got[selR] != KeyActive || got[selE] != KeyActive {
		t.Fatalf("after the delay: %v", got)
	}
	activated := e.clk.Now()
	if s := e.key(testDomain, selR); s.Action != "nothing to do" || !s.Next.Equal(activated.Add(p.Interval)) {
		t.Errorf("active key status: %+v", s)
	}

	// The schedule: nothing before Interval, a rotation at Interval.
	e.clk.Advance(p.Interval - time.Second)
	e.tick()
	if got := e.status(testDomain); len(got) != 2 {
		t.Fatalf("rotation before the interval: %+v", got)
	}
	e.clk.Advance(time.Second)
	e.tick() // starts the rotation; waits for the background RSA key
	month := e.clk.Now().UTC().Format("200601")
	newR, newE := "fw"+month+"r", "fw"+month+"e"
	got := e.states(testDomain)
	if len(got) != 4 || got[newR] != KeyPending || got[newE] != KeyPending || got[selR] != KeyActive {
		t.Fatalf("after the interval: %v", got)
	}
	if !e.keyFileExists(testDomain, newR) || !e.keyFileExists(testDomain, newE) {
		t.Fatal("new key files missing")
	}
	if sel := signerSelectors(e.d.DKIMSigners(testDomain)); !slices.Equal(sel, []string{selR, selE}) {
		t.Errorf("signers during rotation: %v", sel)
	}
	// One rotation at a time: later ticks start no other.
	e.clk.Advance(p.Interval)
	e.tick()
	if n := len(e.status(testDomain)); n != 4 {
		t.Fatalf("a second rotation started while one is in progress: %d keys", n)
	}

	// The new keys activate; the old ones retire but stay published.
	e.activate(testDomain, newR, newE)
	retired := e.clk.Now()
	got = e.states(testDomain)
	if got[selR] != KeyRetiring || got[selE] != KeyRetiring {
		t.Fatalf("old keys after the new ones activated: %v", got)
	}
	if sel := signerSelectors(e.d.DKIMSigners(testDomain)); !slices.Equal(sel, []string{newR, newE}) {
		t.Errorf("signers after rotation: %v", sel)
	}
	s = e.key(testDomain, selR)
	if want := "remove TXT " + selR + "._domainkey.example.com. after " + retired.Add(p.RetireDelay).Format(time.RFC3339); !strings.HasPrefix(s.Action, want) {
		t.Errorf("retiring action %q, want prefix %q", s.Action, want)
	}
	recs, err := e.d.DNSRecords(testDomain, RecordParams{Hostname: "mx.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	if n := countKind(recs, RecordDKIM); n != 4 {
		t.Errorf("%d DKIM records to publish while retiring, want 4", n)
	}

	// Removed RetireDelay later, not a second before.
	e.clk.Advance(p.RetireDelay - time.Second)
	e.tick()
	if got := e.states(testDomain); got[selR] != KeyRetiring {
		t.Fatalf("a second before the retire delay: %v", got)
	}
	e.clk.Advance(time.Second)
	e.tick()
	if got := e.states(testDomain); len(got) != 2 || got[newR] != KeyActive || got[newE] != KeyActive {
		t.Fatalf("after the retire delay: %v", got)
	}
	if e.keyFileExists(testDomain, selR) || e.keyFileExists(testDomain, selE) {
		t.Error("retired key files still there")
	}
	if got := e.storedKeys(testDomain); !slices.Equal(got, []string{newE, newR}) {
		t.Errorf("stored records after removal: %v", got)
	}
	recs, _ = e.d.DNSRecords(testDomain, RecordParams{Hostname: "mx.example.net"})
	if n := countKind(recs, RecordDKIM); n != 2 {
		t.Errorf("%d DKIM records after removal, want 2", n)
	}
	e.reopen()
	if got := e.states(testDomain); len(got) != 2 || got[newR] != KeyActive {
		t.Errorf("after reopen: %v", got)
	}
	if sel := signerSelectors(e.d.DKIMSigners(testDomain)); !slices.Equal(sel, []string{newR, newE}) {
		t.Errorf("signers after reopen: %v", sel)
	}
}

func TestRotateDKIM(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	if err := e.d.RotateDKIM(testDomain); !errors.Is(err, ErrExists) {
		t.Errorf("rotate while the first keys are pending: %v, want ErrExists", err)
	}
	e.activate(testDomain, selR, selE)

	if err := e.d.RotateDKIM("EXAMPLE.com."); err != nil {
		t.Fatal(err)
	}
	// Same month: the selectors get a number.
	got := e.states(testDomain)
	if len(got) != 4 || got[selR+"2"] != KeyPending || got[selE+"2"] != KeyPending || got[selR] != KeyActive {
		t.Fatalf("after rotate: %v", got)
	}
	if err := e.d.RotateDKIM(testDomain); !errors.Is(err, ErrExists) {
		t.Errorf("second rotate: %v, want ErrExists", err)
	}
	if err := e.d.RotateDKIM("nowhere.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotate unknown domain: %v, want ErrNotFound", err)
	}
	e.activate(testDomain, selR+"2", selE+"2")
	if got := e.states(testDomain); got[selR] != KeyRetiring || got[selE] != KeyRetiring {
		t.Errorf("old keys: %v", got)
	}
}

func TestDKIMMismatchedRecordNeverActivates(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	addTestDomain(t, e.d, "example.org", false)
	// example.com's RSA selector serves example.org's RSA key; its Ed25519
	// selector a record with the right key but whitespace and other tags
	// around it (which must be accepted).
	other := e.key("example.org", selR)
	e.dns.SetTXT(selR+"._domainkey.example.com.", other.Record.Value)
	ed := e.key(testDomain, selE)
	p, _ := keyRecordP(ed.Record.Value)
	e.dns.SetTXT(ed.Record.Name, "v=DKIM1; t=s; k=ed25519;\tp="+p[:20]+" "+p[20:]+" ; n=hello")
	for range 10 {
		e.tick()
		e.clk.Advance(e.d.opts.DKIM.PublishDelay)
	}
	e.tick()
	if s := e.key(testDomain, selR); s.State != KeyPending || !s.FirstSeen.IsZero() {
		t.Errorf("key with a mismatched record: %+v", s)
	}
	if s := e.key(testDomain, selE); s.State != KeyActive {
		t.Errorf("key with a reformatted record: %+v", s)
	}
	// Two records at the name: verifiers fail that, so the key waits.
	e.dns.SetTXT(selR+"._domainkey.example.com.", other.Record.Value, e.key(testDomain, selR).Record.Value)
	e.tick()
	e.clk.Advance(e.d.opts.DKIM.PublishDelay)
	e.tick()
	if s := e.key(testDomain, selR); s.State != KeyPending || !s.FirstSeen.IsZero() {
		t.Errorf("key with two records at its name: %+v", s)
	}
	// A record that changes to another key after being seen is no longer
	// seen, and the delay starts over when it comes back.
	e.publish(testDomain, selR)
	e.tick()
	e.dns.SetTXT(selR+"._domainkey.example.com.", other.Record.Value)
	e.tick()
	if s := e.key(testDomain, selR); !s.FirstSeen.IsZero() {
		t.Errorf("first seen kept after the record changed: %+v", s)
	}
}

func TestDKIMTickSurvivesDNSFailures(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, "a.example", false)
	addTestDomain(t, e.d, "b.example", false)
	e.publish("a.example", selR, selE)
	e.publish("b.example", selR, selE)
	e.tick()
	e.clk.Advance(e.d.opts.DKIM.PublishDelay)
	// a.example's server fails: its keys wait (first seen is kept), b.example's go on.
	e.dns.SetFail(selR+"._domainkey.a.example.", true)
	e.dns.SetFail(selE+"._domainkey.a.example.", true)
	e.tick()
	if got := e.states("a.example"); got[selR] != KeyPending || e.key("a.example", selR).FirstSeen.IsZero() {
		t.Errorf("a.example during DNS failure: %v", got)
	}
	if got := e.states("b.example"); got[selR] != KeyActive || got[selE] != KeyActive {
		t.Errorf("b.example: %v", got)
	}
	e.dns.SetFail(selR+"._domainkey.a.example.", false)
	e.dns.SetFail(selE+"._domainkey.a.example.", false)
	e.tick()
	if got := e.states("a.example"); got[selR] != KeyActive {
		t.Errorf("a.example after DNS recovered: %v", got)
	}
}

func TestDKIMDeferredRSA(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, true)
	e.d.dkim.gen.wait()
	s := e.key(testDomain, selR)
	if s.State != KeyPending || s.Record.Value == "" || !e.keyFileExists(testDomain, selR) {
		t.Fatalf("after background generation: %+v", s)
	}
	if e.key(testDomain, selE).State != KeyPending {
		t.Fatal("ed25519 key not made at once")
	}
	e.activate(testDomain, selR, selE)
}

func TestDKIMDeferredRSASurvivesRestart(t *testing.T) {
	e := newDKIMEnv(t)
	// Stop the background work first: the process "dies" right after the
	// import commits, before any RSA key is made.
	e.d.closeDKIM()
	addTestDomain(t, e.d, testDomain, true)
	s := e.key(testDomain, selR)
	if s.State != KeyGenerating || s.Record.Value != "" || e.keyFileExists(testDomain, selR) {
		t.Fatalf("staged: %+v", s)
	}
	if !strings.HasPrefix(s.Action, "wait") {
		t.Errorf("generating action %q", s.Action)
	}
	recs, err := e.d.DNSRecords(testDomain, RecordParams{Hostname: "mx.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	if n := countKind(recs, RecordDKIM); n != 1 {
		t.Errorf("%d DKIM records while RSA is generating, want 1 (ed25519)", n)
	}

	e.reopen() // loadDKIM resumes the generation
	e.d.dkim.gen.wait()
	s = e.key(testDomain, selR)
	if s.State != KeyPending || s.Record.Value == "" || !e.keyFileExists(testDomain, selR) {
		t.Fatalf("after restart: %+v", s)
	}
	e.activate(testDomain, selR, selE)
	if n := len(e.d.DKIMSigners(testDomain)); n != 2 {
		t.Errorf("%d signers", n)
	}
}

func TestDKIMRemoveDomain(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	addTestDomain(t, e.d, "example.org", false)
	e.activate(testDomain, selR, selE)
	removeTestDomain(t, e.d, testDomain)

	if _, err := e.d.DKIMStatus(testDomain); !errors.Is(err, ErrNotFound) {
		t.Errorf("status of a removed domain: %v", err)
	}
	if n := len(e.d.DKIMSigners(testDomain)); n != 0 {
		t.Errorf("%d signers for a removed domain", n)
	}
	if got := e.storedKeys(testDomain); len(got) != 0 {
		t.Errorf("records left: %v", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "dkim", testDomain)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key directory left: %v", err)
	}
	if len(e.storedKeys("example.org")) != 2 || !e.keyFileExists("example.org", selR) {
		t.Error("the other domain's keys went too")
	}
	e.tick() // nothing to do for the removed domain, nothing brought back
	e.reopen()
	if got := e.storedKeys(testDomain); len(got) != 0 {
		t.Errorf("records after reopen: %v", got)
	}
}

// A background generation or a tick that reaches its transaction after the
// domain was removed writes nothing.
func TestDKIMNoResurrectionAfterRemoval(t *testing.T) {
	e := newDKIMEnv(t)
	e.d.closeDKIM()
	addTestDomain(t, e.d, testDomain, true)
	removeTestDomain(t, e.d, testDomain)

	e.d.finishGenerating(context.Background(), keyRef{testDomain, selR})
	obs := map[string]observation{selE: obsPublished}
	if err := e.d.applyDKIM(testDomain, obs, e.clk.Now().Add(100*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := e.storedKeys(testDomain); len(got) != 0 {
		t.Errorf("records brought back: %v", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "dkim", testDomain)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key files brought back: %v", err)
	}
}

func TestDKIMAbortedAddRemovesKeyFiles(t *testing.T) {
	e := newDKIMEnv(t)
	boom := errors.New("validation failed later in the transaction")
	err := e.d.update(func(tx *txn) error {
		if err := e.d.dkimAddDomain(tx, testDomain, false); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if e.keyFileExists(testDomain, selR) || e.keyFileExists(testDomain, selE) {
		t.Error("key files of an aborted transaction left behind")
	}
	if len(e.storedKeys(testDomain)) != 0 || len(e.d.dkim.domains[testDomain]) != 0 {
		t.Error("keys of an aborted transaction stored")
	}
}

func TestDKIMLoadSweepsOrphanFiles(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	// Left by crashes: a removed domain's directory, a removed key's file,
	// a temporary file.
	orphanDir := filepath.Join(e.dir, "dkim", "gone.example")
	if err := os.MkdirAll(orphanDir, 0o700); err != nil {
		t.Fatal(err)
	}
	stray := []string{
		filepath.Join(orphanDir, selR+".pem"),
		filepath.Join(e.dir, "dkim", testDomain, "fw202601r.pem"),
		filepath.Join(e.dir, "dkim", testDomain, selR+".pem.tmp"),
	}
	for _, f := range stray {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.reopen()
	for _, f := range append(stray, orphanDir) {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the sweep: %v", f, err)
		}
	}
	if !e.keyFileExists(testDomain, selR) || !e.keyFileExists(testDomain, selE) {
		t.Error("the sweep removed live keys")
	}
}

func TestDKIMUnreadableKeyFile(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	e.activate(testDomain, selR, selE)
	e.close()
	// Replace the RSA key with another one: the file no longer matches the record.
	other, _ := newPrivateKey(AlgorithmRSA)
	if err := writeKeyFile(filepath.Join(e.dir, "dkim", testDomain, selR+".pem"), other); err != nil {
		t.Fatal(err)
	}
	e.open()
	if sel := signerSelectors(e.d.DKIMSigners(testDomain)); !slices.Equal(sel, []string{selE}) {
		t.Errorf("signers with a mismatched key file: %v", sel)
	}
	if s := e.key(testDomain, selR); !strings.Contains(s.Action, "fairway dkim rotate example.com") {
		t.Errorf("action %q", s.Action)
	}
}

func signerSelectors(ss []DKIMSigner) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Selector)
	}
	return out
}

func countKind(recs []DNSRecord, kind RecordKind) int {
	n := 0
	for _, r := range recs {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

// Closing the directory without closeDKIM (the caller forgot) must not
// crash the workers or lose the keys: they stop, and the next Open resumes.
func TestDKIMCloseDuringBackgroundGeneration(t *testing.T) {
	e := newDKIMEnv(t)
	for i := range 4 {
		addTestDomain(t, e.d, fmt.Sprintf("d%d.example", i), true)
	}
	d := e.d
	e.d = nil
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d.dkim.gen.wait()
	e.open()
	e.d.dkim.gen.wait()
	for i := range 4 {
		dom := fmt.Sprintf("d%d.example", i)
		if s := e.key(dom, selR); s.State != KeyPending || !e.keyFileExists(dom, selR) {
			t.Errorf("%s: %+v", dom, s)
		}
	}
}

package tenant

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"fairway/tenant/dnstest"
)

// dkimEnv is a directory on a temp dir with a fake clock and a loopback
// DNS server, reopenable.
type dkimEnv struct {
	t   *testing.T
	dir string
	clk *fakeClock
	dns *dnstest.Server
	d   *Directory
}

var testStart = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

func newDKIMEnv(t *testing.T) *dkimEnv {
	t.Helper()
	e := &dkimEnv{t: t, dir: t.TempDir(), clk: &fakeClock{now: testStart}, dns: dnstest.Start(t)}
	e.open()
	t.Cleanup(func() { e.close() })
	return e
}

func (e *dkimEnv) open() {
	e.t.Helper()
	d, err := Open(e.dir, Options{Logger: quietLogger(), Clock: e.clk, Resolver: NewDNSResolver(e.dns.Addr)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.d = d
}

func (e *dkimEnv) close() {
	if e.d == nil {
		return
	}
	e.d.closeDKIM()
	if err := e.d.Close(); err != nil {
		e.t.Error(err)
	}
	e.d = nil
}

func (e *dkimEnv) reopen() {
	e.t.Helper()
	e.close()
	e.open()
}

// tick runs TickDKIM and waits for the background key generation it starts.
func (e *dkimEnv) tick() {
	e.t.Helper()
	if err := e.d.TickDKIM(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.d.dkim.gen.wait()
}

func (e *dkimEnv) status(domain string) []DKIMKeyStatus {
	e.t.Helper()
	st, err := e.d.DKIMStatus(domain)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// key returns the status of the key with the selector.
func (e *dkimEnv) key(domain, selector string) DKIMKeyStatus {
	e.t.Helper()
	for _, s := range e.status(domain) {
		if s.Selector == selector {
			return s
		}
	}
	e.t.Fatalf("%s: no key %s", domain, selector)
	return DKIMKeyStatus{}
}

// publish serves the key records of the domain's keys with these selectors.
func (e *dkimEnv) publish(domain string, selectors ...string) {
	e.t.Helper()
	for _, sel := range selectors {
		k := e.key(domain, sel)
		if k.Record.Value == "" {
			e.t.Fatalf("%s: key %s has no record yet (%s)", domain, sel, k.State)
		}
		e.dns.SetTXT(k.Record.Name, k.Record.Value)
	}
}

// states returns selector → state.
func (e *dkimEnv) states(domain string) map[string]KeyState {
	e.t.Helper()
	out := map[string]KeyState{}
	for _, s := range e.status(domain) {
		out[s.Selector] = s.State
	}
	return out
}

// storedKeys returns the selectors of the domain's key records in Pebble.
func (e *dkimEnv) storedKeys(domain string) []string {
	e.t.Helper()
	prefix := pfxDKIM + domain + "\x00"
	iter, err := e.d.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: []byte(pfxDKIM + domain + "\x01")})
	if err != nil {
		e.t.Fatal(err)
	}
	defer iter.Close()
	var out []string
	for ok := iter.First(); ok; ok = iter.Next() {
		out = append(out, strings.TrimPrefix(string(iter.Key()), prefix))
	}
	return out
}

func (e *dkimEnv) keyFileExists(domain, selector string) bool {
	_, err := os.Stat(filepath.Join(e.dir, "dkim", domain, selector+".pem"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	return err == nil
}

// addTestDomain adds a domain of tenant "t" with its DKIM keys in one
// transaction, as AddDomain does.
func addTestDomain(t *testing.T, d *Directory, name string, deferRSA bool) {
	t.Helper()
	if _, ok := d.TenantPolicy("t"); !ok {
		if err := d.AddTenant("t", Policy{}); err != nil {
			t.Fatal(err)
		}
	}
	// AddDomain's own staging, with the import path's deferred RSA key when
	// asked for.
	if err := d.update(func(tx *txn) error { return d.stageAddDomain(tx, name, "t", deferRSA) }); err != nil {
		t.Fatal(err)
	}
}

// removeTestDomain removes a domain and its keys in one transaction, as
// RemoveDomain does.
func removeTestDomain(t *testing.T, d *Directory, name string) {
	t.Helper()
	if err := d.RemoveDomain(name); err != nil {
		t.Fatal(err)
	}
}

package tenant

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/miekg/dns"
)

// testDNS is a real DNS server on 127.0.0.1 (UDP) whose answers the test
// sets. Names are absolute and lower case.
type testDNS struct {
	addr string

	mu   sync.Mutex
	txt  map[string][]string // name → TXT records, each served as 255-byte strings
	mx   map[string][]*net.MX
	ips  map[string][]netip.Addr // A and AAAA
	fail map[string]bool         // answer SERVFAIL
}

func startTestDNS(t *testing.T) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testDNS{addr: pc.LocalAddr().String(), txt: map[string][]string{}, mx: map[string][]*net.MX{}, ips: map[string][]netip.Addr{}, fail: map[string]bool{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return s
}

func (s *testDNS) setTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	if len(values) == 0 {
		delete(s.txt, name)
		return
	}
	s.txt[name] = values
}

func (s *testDNS) setMX(name string, mxs ...*net.MX) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mx[strings.ToLower(dns.Fqdn(name))] = mxs
}

func (s *testDNS) setIPs(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ip := range ips {
		k := strings.ToLower(dns.Fqdn(name))
		s.ips[k] = append(s.ips[k], netip.MustParseAddr(ip))
	}
}

func (s *testDNS) setFail(name string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[strings.ToLower(dns.Fqdn(name))] = fail
}

func (s *testDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	_, hasTXT := s.txt[name]
	_, hasMX := s.mx[name]
	_, hasIP := s.ips[name]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	switch {
	case s.fail[name]:
		m.Rcode = dns.RcodeServerFailure
	case q.Qtype == dns.TypeTXT && hasTXT:
		for _, v := range s.txt[name] {
			hdr.Rrtype = dns.TypeTXT
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: splitTXT(v)})
		}
	case q.Qtype == dns.TypeMX && hasMX:
		for _, mx := range s.mx[name] {
			hdr.Rrtype = dns.TypeMX
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr, Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
		}
	case (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) && hasIP:
		for _, ip := range s.ips[name] {
			switch {
			case ip.Is4() && q.Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip.AsSlice()})
			case ip.Is6() && q.Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
			}
		}
	case hasTXT || hasMX || hasIP:
		// the name exists, without records of this type: NOERROR, no data
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// splitTXT splits a value into character-strings as a zone would hold it:
// 255 bytes at most, and here deliberately at odd places, to check that
// lookups join them.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 100 {
		out = append(out, escapeTXT(v[:100]))
		v = v[100:]
	}
	return append(out, escapeTXT(v))
}

// escapeTXT puts a string in the presentation format miekg/dns packs TXT
// strings from.
func escapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// dkimEnv is a directory on a temp dir with a fake clock and a loopback
// DNS server, reopenable.
type dkimEnv struct {
	t   *testing.T
	dir string
	clk *fakeClock
	dns *testDNS
	d   *Directory
}

var testStart = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

func newDKIMEnv(t *testing.T) *dkimEnv {
	t.Helper()
	e := &dkimEnv{t: t, dir: t.TempDir(), clk: &fakeClock{now: testStart}, dns: startTestDNS(t)}
	e.open()
	t.Cleanup(func() { e.close() })
	return e
}

func (e *dkimEnv) open() {
	e.t.Helper()
	d, err := Open(e.dir, Options{Logger: quietLogger(), Clock: e.clk, Resolver: NewDNSResolver(e.dns.addr)})
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
		e.dns.setTXT(k.Record.Name, k.Record.Value)
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

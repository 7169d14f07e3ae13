package tenant

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"fairway/tenant/dnstest"
)

func TestDNSResolver(t *testing.T) {
	s := dnstest.Start(t)
	r := NewDNSResolver(s.Addr)
	ctx := context.Background()
	long := strings.Repeat("x", 600) + "\t\"quoted\" back\\slash \x00\xff"
	s.SetTXT("a.example", "one", long)
	s.SetMX("a.example", &net.MX{Host: "mx2.a.example", Pref: 20}, &net.MX{Host: "mx1.a.example", Pref: 10})
	s.SetFail("broken.example", true)

	txts, err := r.LookupTXT(ctx, "A.example")
	if err != nil || len(txts) != 2 || txts[0] != "one" || txts[1] != long {
		t.Errorf("TXT: %q %v (split strings must be joined)", txts, err)
	}
	mxs, err := r.LookupMX(ctx, "a.example.")
	if err != nil || len(mxs) != 2 || mxs[0].Host != "mx1.a.example." || mxs[1].Pref != 20 {
		t.Errorf("MX: %v %v", mxs, err)
	}
	if _, err := r.LookupTXT(ctx, "nowhere.example"); !errors.Is(err, ErrDNSNotFound) {
		t.Errorf("NXDOMAIN: %v, want ErrDNSNotFound", err)
	}
	s.SetTXT("mxonly.example")
	s.SetMX("mxonly.example", &net.MX{Host: "mx.example", Pref: 10})
	if _, err := r.LookupTXT(ctx, "mxonly.example"); !errors.Is(err, ErrDNSNotFound) {
		t.Errorf("no data: %v, want ErrDNSNotFound", err)
	}
	s.SetIPs("host.example", "192.0.2.1", "2001:db8::1")
	s.SetIPs("v4only.example", "192.0.2.2")
	if ips, err := r.LookupNetIP(ctx, "host.example"); err != nil || len(ips) != 2 || ips[0].String() != "192.0.2.1" || ips[1].String() != "2001:db8::1" {
		t.Errorf("A/AAAA: %v %v", ips, err)
	}
	if ips, err := r.LookupNetIP(ctx, "v4only.example"); err != nil || len(ips) != 1 {
		t.Errorf("A only: %v %v", ips, err)
	}
	if _, err := r.LookupNetIP(ctx, "nowhere.example"); !errors.Is(err, ErrDNSNotFound) {
		t.Errorf("A/AAAA NXDOMAIN: %v, want ErrDNSNotFound", err)
	}
	_, err = r.LookupTXT(ctx, "broken.example")
	if err == nil || errors.Is(err, ErrDNSNotFound) || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("SERVFAIL: %v, want a failure that is not ErrDNSNotFound", err)
	}
}

// A server that never answers: the lookup fails within the timeout, and
// the failure is not "not found".
func TestDNSResolverTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	r := NewDNSResolver(pc.LocalAddr().String()).(*DNSResolver)
	r.Timeout = 200 * time.Millisecond

	start := time.Now()
	_, err = r.LookupTXT(context.Background(), "a.example")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("lookup took %v with a 200ms timeout", took)
	}
	if err == nil || errors.Is(err, ErrDNSNotFound) {
		t.Errorf("silent server: %v, want a timeout error", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a timeout", err)
	}

	// The caller's deadline bounds it too, under the default timeout.
	r.Timeout = 0
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := r.LookupMX(ctx, "a.example"); err == nil {
		t.Error("no error from a silent server")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("lookup took %v with a 100ms deadline", took)
	}
}

// A truncated UDP answer is asked again over TCP.
func TestDNSResolverTCPFallback(t *testing.T) {
	var pc net.PacketConn
	var ln net.Listener
	for range 20 { // the TCP port of the same number may be taken; try others
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	value := strings.Repeat("k", 3000)
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		if w.LocalAddr().Network() == "udp" {
			m.Truncated = true
		} else {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: dnstest.SplitTXT(value)})
		}
		w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	r := NewDNSResolver(pc.LocalAddr().String())
	txts, err := r.LookupTXT(context.Background(), "big.example")
	if err != nil || len(txts) != 1 || txts[0] != value {
		t.Errorf("TCP fallback: %d records, %v", len(txts), err)
	}
}

func TestSystemResolverNotFound(t *testing.T) {
	if err := systemDNSError("TXT", "x.invalid", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}); !errors.Is(err, ErrDNSNotFound) {
		t.Errorf("not found: %v", err)
	}
	if err := systemDNSError("TXT", "x.example", &net.DNSError{Err: "timeout", Name: "x.example", IsTimeout: true}); errors.Is(err, ErrDNSNotFound) || err == nil {
		t.Errorf("timeout: %v", err)
	}
	if _, ok := NewDNSResolver("").(systemResolver); !ok {
		t.Error("empty server: not the system resolver")
	}
}

func TestDNSResolverPTR(t *testing.T) {
	s := dnstest.Start(t)
	r := NewDNSResolver(s.Addr).(*DNSResolver)
	ctx := context.Background()
	s.SetPTR("127.0.0.5", "host.example")
	s.SetPTR("2001:db8::1", "six.example.", "other.example")
	if names, err := r.LookupAddr(ctx, "127.0.0.5"); err != nil || len(names) != 1 || names[0] != "host.example." {
		t.Errorf("PTR v4: %q %v", names, err)
	}
	if names, err := r.LookupAddr(ctx, "2001:db8::1"); err != nil || len(names) != 2 || names[1] != "other.example." {
		t.Errorf("PTR v6: %q %v", names, err)
	}
	if _, err := r.LookupAddr(ctx, "127.0.0.6"); !errors.Is(err, ErrDNSNotFound) {
		t.Errorf("no PTR: %v, want ErrDNSNotFound", err)
	}
	if _, err := r.LookupAddr(ctx, "not an address"); err == nil || errors.Is(err, ErrDNSNotFound) {
		t.Errorf("bad address: %v", err)
	}
}

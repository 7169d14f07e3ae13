package relay

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// dlvDNS is a real DNS server on 127.0.0.1 (UDP) answering MX and A/AAAA as
// the test sets them; other names are NXDOMAIN.
type dlvDNS struct {
	addr string

	mu   sync.Mutex
	mx   map[string][]*net.MX // host "." is a null MX
	ips  map[string][]netip.Addr
	fail map[string]bool // answer SERVFAIL
}

func startDlvDNS(t *testing.T) *dlvDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dlvDNS{addr: pc.LocalAddr().String(), mx: map[string][]*net.MX{}, ips: map[string][]netip.Addr{}, fail: map[string]bool{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return s
}

func dlvName(n string) string { return strings.ToLower(dns.Fqdn(n)) }

func (s *dlvDNS) setMX(name string, mxs ...*net.MX) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mx[dlvName(name)] = mxs
}

func (s *dlvDNS) setIPs(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := dlvName(name)
	s.ips[k] = nil
	for _, ip := range ips {
		s.ips[k] = append(s.ips[k], netip.MustParseAddr(ip))
	}
}

func (s *dlvDNS) setFail(name string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[dlvName(name)] = fail
}

func (s *dlvDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	mxs, hasMX := s.mx[name]
	ips, hasIP := s.ips[name]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	switch {
	case s.fail[name]:
		m.Rcode = dns.RcodeServerFailure
	case q.Qtype == dns.TypeMX && hasMX:
		hdr.Rrtype = dns.TypeMX
		for _, mx := range mxs {
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr, Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
		}
	case (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) && hasIP:
		for _, ip := range ips {
			switch {
			case ip.Is4() && q.Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip.AsSlice()})
			case ip.Is6() && q.Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
			}
		}
	case hasMX || hasIP:
		// the name exists without records of this type: NOERROR, no data
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

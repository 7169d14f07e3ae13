// Package dnstest is a real DNS server on 127.0.0.1 for fairway's tests:
// TXT, MX, A/AAAA, PTR and SERVFAIL answers the test sets, NXDOMAIN for names it
// has nothing for, and NOERROR with no data for a known name asked another
// type. TXT values are served split into character-strings at odd places
// and escaped, as zones hold them, so lookups must join and unescape them.
// Tests point tenant.NewDNSResolver at Server.Addr.
package dnstest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	// Addr is the server's "127.0.0.1:port", for tenant.NewDNSResolver.
	Addr string

	mu   sync.Mutex
	txt  map[string][]string // name → TXT records, each served as 255-byte strings
	mx   map[string][]*net.MX
	ips  map[string][]netip.Addr // A and AAAA
	ptr  map[string][]string     // reverse name (in-addr.arpa, ip6.arpa) → host names
	fail map[string]bool         // answer SERVFAIL
}

// Start runs a server on 127.0.0.1 (UDP) until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), txt: map[string][]string{}, mx: map[string][]*net.MX{}, ips: map[string][]netip.Addr{}, ptr: map[string][]string{}, fail: map[string]bool{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return s
}

// SetTXT sets name's TXT records (none: the name has no TXT records).
func (s *Server) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ToLower(dns.Fqdn(name))
	if len(values) == 0 {
		delete(s.txt, name)
		return
	}
	s.txt[name] = values
}

// SetMX sets name's MX records; a host "." makes a null MX (RFC 7505).
func (s *Server) SetMX(name string, mxs ...*net.MX) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mx[strings.ToLower(dns.Fqdn(name))] = mxs
}

// SetIPs adds A and AAAA records for name.
func (s *Server) SetIPs(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ip := range ips {
		k := strings.ToLower(dns.Fqdn(name))
		s.ips[k] = append(s.ips[k], netip.MustParseAddr(ip))
	}
}

// SetPTR sets the PTR records (host names) of an IP address.
func (s *Server) SetPTR(ip string, names ...string) {
	arpa, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(fmt.Sprintf("dnstest: SetPTR(%q): %v", ip, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ptr[strings.ToLower(arpa)] = names
}

// SetFail makes every query for name answer SERVFAIL (or stop doing so).
func (s *Server) SetFail(name string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[strings.ToLower(dns.Fqdn(name))] = fail
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	_, hasTXT := s.txt[name]
	_, hasMX := s.mx[name]
	_, hasIP := s.ips[name]
	_, hasPTR := s.ptr[name]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
	switch {
	case s.fail[name]:
		m.Rcode = dns.RcodeServerFailure
	case q.Qtype == dns.TypeTXT && hasTXT:
		for _, v := range s.txt[name] {
			hdr.Rrtype = dns.TypeTXT
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: SplitTXT(v)})
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
	case q.Qtype == dns.TypePTR && hasPTR:
		for _, n := range s.ptr[name] {
			hdr.Rrtype = dns.TypePTR
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr, Ptr: dns.Fqdn(n)})
		}
	case hasTXT || hasMX || hasIP || hasPTR:
		// the name exists, without records of this type: NOERROR, no data
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// SplitTXT splits a value into character-strings as a zone would hold it:
// 255 bytes at most, and here deliberately at odd places, to check that
// lookups join them.
func SplitTXT(v string) []string {
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

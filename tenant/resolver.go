package tenant

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ErrDNSNotFound is matched (errors.Is) by lookup errors that mean the
// record is not there: the name does not exist (NXDOMAIN) or has no record
// of the type asked. Other lookup errors mean the answer is unknown.
var ErrDNSNotFound = errors.New("no such DNS record")

// defaultDNSTimeout bounds each DNS exchange.
const defaultDNSTimeout = 5 * time.Second

// DNSResolver asks one DNS server ("host:port") directly, over UDP with
// EDNS0, again over TCP when the answer is truncated.
type DNSResolver struct {
	Server  string
	Timeout time.Duration // per exchange; 0 means 5 s
}

// DNS is the client fairway's servers share: the directory's lookups plus
// address lookups for relay's next hop.
type DNS interface {
	Resolver
	// LookupNetIP returns host's IPv4 and IPv6 addresses (A and AAAA).
	LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewDNSResolver returns a DNS client that asks server ("host:port"), or the
// system's resolver if server is empty. Every lookup is bounded in time.
func NewDNSResolver(server string) DNS {
	if server == "" {
		return systemResolver{r: net.DefaultResolver, timeout: defaultDNSTimeout}
	}
	return &DNSResolver{Server: server, Timeout: defaultDNSTimeout}
}

// LookupTXT returns one string per TXT record, the record's strings joined
// (as net.Resolver does).
func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		var b strings.Builder
		for _, s := range rr.(*dns.TXT).Txt {
			b.WriteString(unescapeTXT(s))
		}
		out = append(out, b.String())
	}
	return out, nil
}

// unescapeTXT undoes miekg/dns's presentation format of a TXT string:
// a backslash before a character stands for that character (\\, \"), and
// \DDD (decimal) for any byte.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		if i+2 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]) {
			if n := int(s[i]-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0'); n <= 255 {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// LookupMX returns the MX records sorted by preference, hosts absolute.
func (r *DNSResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	return out, nil
}

// LookupNetIP returns the A and AAAA addresses of host, IPv4 first. It
// fails only when neither lookup found an address.
func (r *DNSResolver) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, host, qtype)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	if len(out) == 0 {
		if len(errs) == 2 && errors.Is(errs[0], ErrDNSNotFound) && errors.Is(errs[1], ErrDNSNotFound) {
			return nil, fmt.Errorf("dns: no address for %s: %w", host, ErrDNSNotFound)
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// LookupAddr returns the names of addr's PTR records (a reverse lookup,
// for SPF's "ptr" mechanism), absolute as net.Resolver gives them.
func (r *DNSResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("dns: PTR of %q: %w", addr, err)
	}
	rrs, err := r.query(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}

// query returns the answer records of type qtype for name.
func (r *DNSResolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	qname := dns.Fqdn(name)
	what := dns.TypeToString[qtype] + " " + qname
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.SetEdns0(1232, false)
	resp, err := r.exchange(ctx, m, "udp")
	if err == nil && resp.Truncated {
		resp, err = r.exchange(ctx, m, "tcp")
	}
	if err != nil {
		return nil, fmt.Errorf("dns: %s via %s: %w", what, r.Server, err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, fmt.Errorf("dns: %s: %w (NXDOMAIN)", what, ErrDNSNotFound)
	default:
		return nil, fmt.Errorf("dns: %s via %s: server answered %s", what, r.Server, dns.RcodeToString[resp.Rcode])
	}
	var out []dns.RR
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dns: %s: %w", what, ErrDNSNotFound)
	}
	return out, nil
}

// exchange sends m over network ("udp" or "tcp") with its own timeout.
func (r *DNSResolver) exchange(ctx context.Context, m *dns.Msg, network string) (*dns.Msg, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = defaultDNSTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: timeout}
	resp, _, err := c.ExchangeContext(ctx, m, r.Server)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", network, err)
	}
	return resp, nil
}

// systemResolver adapts net.Resolver: a time bound on each lookup, and
// "not found" answers reported as ErrDNSNotFound.
type systemResolver struct {
	r       *net.Resolver
	timeout time.Duration
}

func (s systemResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	txts, err := s.r.LookupTXT(ctx, name)
	return txts, systemDNSError("TXT", name, err)
}

func (s systemResolver) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	addrs, err := s.r.LookupNetIP(ctx, "ip", host)
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, systemDNSError("A/AAAA", host, err)
}

func (s systemResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	mxs, err := s.r.LookupMX(ctx, name)
	return mxs, systemDNSError("MX", name, err)
}

func (s systemResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	names, err := s.r.LookupAddr(ctx, addr)
	return names, systemDNSError("PTR", addr, err)
}

func systemDNSError(qtype, name string, err error) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return fmt.Errorf("dns: %s %s: %w: %w", qtype, name, ErrDNSNotFound, err)
	}
	return fmt.Errorf("dns: %s %s: %w", qtype, name, err)
}

package reputation

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"fairway/tenant"
)

// dnsblName is the name to look up for ip in zone: the IPv4 octets
// reversed, or the IPv6 nibbles reversed (RFC 5782 section 2.4), then the
// zone.
func dnsblName(ip netip.Addr, zone string) string {
	zone = strings.TrimSuffix(strings.TrimPrefix(zone, "."), ".")
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.", a[3], a[2], a[1], a[0])
	} else {
		a := ip.As16()
		const hexd = "0123456789abcdef"
		for i := len(a) - 1; i >= 0; i-- {
			b.WriteByte(hexd[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hexd[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(zone)
	return b.String()
}

// listingAnswer reads a DNSBL's A answers: listed if one is in 127.0.0.0/8
// (RFC 5782 section 2.1), except 127.255.255.0/24, which Spamhaus and
// others return to say the query itself was refused (an open resolver, a
// quota): that is an error, not a listing.
func listingAnswer(addrs []netip.Addr) (listed bool, answer string, err error) {
	var codes []string
	for _, a := range addrs {
		a = a.Unmap()
		if !a.Is4() || a.As4()[0] != 127 {
			continue
		}
		if v := a.As4(); v[1] == 255 && v[2] == 255 {
			return false, a.String(), fmt.Errorf("blocklist refused the query (answer %s)", a)
		}
		codes = append(codes, a.String())
	}
	if len(codes) == 0 {
		return false, "", nil
	}
	return true, strings.Join(codes, ","), nil
}

// CheckBlocklists looks every configured source address up on every
// DNSBL zone (a few lookups at a time) and updates its listings: a listed
// address leaves rotation until a later check finds it clear. A lookup
// that fails leaves the listing as it was and records the error. cmd calls
// it on a schedule (every 15 minutes or so: the lists' own TTLs).
func (s *Service) CheckBlocklists(ctx context.Context) {
	if s.opts.Resolver == nil || len(s.opts.DNSBLZones) == 0 {
		return
	}
	type job struct {
		ip   netip.Addr
		zone string
	}
	seen := map[netip.Addr]bool{}
	var jobs []job
	for _, srcs := range s.opts.Pools {
		for _, src := range srcs {
			if seen[src.IP] {
				continue
			}
			seen[src.IP] = true
			for _, z := range s.opts.DNSBLZones {
				jobs = append(jobs, job{src.IP, z})
			}
		}
	}
	slices.SortFunc(jobs, func(a, b job) int {
		if c := a.ip.Compare(b.ip); c != 0 {
			return c
		}
		return strings.Compare(a.zone, b.zone)
	})
	results := make([]Listing, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(dnsblWorkers, len(jobs)) {
		wg.Go(func() {
			for i := range next {
				results[i] = s.safeLookup(ctx, jobs[i].ip, jobs[i].zone)
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	now := s.clock.Now()
	type logLine struct {
		ip  netip.Addr
		l   Listing
		was bool
	}
	var changed []logLine
	s.mu.Lock()
	for i, j := range jobs {
		r := results[i]
		if r.Zone == "" {
			continue // the worker panicked
		}
		st := s.source(j.ip)
		if st == nil {
			continue
		}
		cur := st.listings[j.zone]
		if cur == nil {
			cur = &Listing{Zone: j.zone}
			st.listings[j.zone] = cur
		}
		st.dirty = true
		cur.Checked = now
		if r.Error != "" {
			cur.Error = r.Error
			continue
		}
		was := cur.Listed
		if r.Listed && !was {
			cur.Since = now
		}
		if !r.Listed {
			cur.Since = time.Time{}
		}
		cur.Listed, cur.Answer, cur.Reason, cur.Error = r.Listed, r.Answer, r.Reason, ""
		s.m.listed.WithLabelValues(j.ip.String(), j.zone).Set(boolGauge(r.Listed))
		if was != r.Listed {
			changed = append(changed, logLine{j.ip, *cur, was})
		}
	}
	s.mu.Unlock()
	for _, c := range changed {
		if c.l.Listed {
			s.log.Warn("source address listed on a blocklist: out of rotation", "source", c.ip, "zone", c.l.Zone, "answer", c.l.Answer, "reason", c.l.Reason)
		} else {
			s.log.Info("source address delisted: back in rotation", "source", c.ip, "zone", c.l.Zone)
		}
	}
}

// safeLookup is lookupListing with a panic recovered, logged and counted:
// the result is then empty and the listing stays as it was.
func (s *Service) safeLookup(ctx context.Context, ip netip.Addr, zone string) (l Listing) {
	defer func() {
		if r := recover(); r != nil {
			s.m.panics.Inc()
			s.log.Error("panic in blocklist check", "source", ip, "zone", zone, "panic", r, "stack", string(debug.Stack()))
			l = Listing{}
		}
	}()
	return s.lookupListing(ctx, ip, zone)
}

// lookupListing asks one zone about one address.
func (s *Service) lookupListing(ctx context.Context, ip netip.Addr, zone string) Listing {
	l := Listing{Zone: zone}
	name := dnsblName(ip, zone)
	addrs, err := s.opts.Resolver.LookupNetIP(ctx, name)
	if errors.Is(err, tenant.ErrDNSNotFound) {
		return l
	}
	if err != nil {
		l.Error = err.Error()
		return l
	}
	listed, answer, err := listingAnswer(addrs)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Listed, l.Answer = listed, answer
	if listed {
		if txt, err := s.opts.Resolver.LookupTXT(ctx, name); err == nil {
			l.Reason = truncate(strings.Join(txt, "; "), 500)
		}
	}
	return l
}

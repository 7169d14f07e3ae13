package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"fairway/tenant"
)

// Route is a static next hop, checked before MX lookup (like Postfix's
// transport_maps). Domain is "*" (every domain), "example.com" (that domain)
// or ".example.com" (its subdomains, not itself); the most specific match
// wins. To is "host:port"; a host name there is resolved with A/AAAA.
type Route struct {
	Domain string
	To     string
}

// routeTable finds the route for a domain: an exact match, else the longest
// matching ".suffix", else "*".
type routeTable struct {
	exact    map[string]string
	suffixes []Route // longest Domain first
	wildcard string  // "" if none
}

func newRouteTable(routes []Route) (routeTable, error) {
	t := routeTable{exact: map[string]string{}}
	for _, r := range routes {
		dom := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(r.Domain)), ".")
		to := strings.ToLower(strings.TrimSpace(r.To))
		host, port, err := net.SplitHostPort(to)
		if err != nil || host == "" {
			return routeTable{}, fmt.Errorf("relay: route for %q: to %q is not host:port", r.Domain, r.To)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return routeTable{}, fmt.Errorf("relay: route for %q: bad port in %q", r.Domain, r.To)
		}
		switch {
		case dom == "*":
			if t.wildcard != "" {
				return routeTable{}, errors.New(`relay: two routes for "*"`)
			}
			t.wildcard = to
		case dom == "" || dom == "." || strings.Contains(dom, "*") || strings.Contains(dom[1:], ".."):
			return routeTable{}, fmt.Errorf("relay: route domain %q: want \"*\", \"example.com\" or \".example.com\"", r.Domain)
		case dom[0] == '.':
			if slices.ContainsFunc(t.suffixes, func(s Route) bool { return s.Domain == dom }) {
				return routeTable{}, fmt.Errorf("relay: two routes for %q", dom)
			}
			t.suffixes = append(t.suffixes, Route{Domain: dom, To: to})
		default:
			if _, dup := t.exact[dom]; dup {
				return routeTable{}, fmt.Errorf("relay: two routes for %q", dom)
			}
			t.exact[dom] = to
		}
	}
	slices.SortStableFunc(t.suffixes, func(a, b Route) int { return cmp.Compare(len(b.Domain), len(a.Domain)) })
	return t, nil
}

// lookup returns the route target for domain (lower case, no trailing dot).
func (t routeTable) lookup(domain string) (string, bool) {
	if to, ok := t.exact[domain]; ok {
		return to, true
	}
	for _, s := range t.suffixes {
		if strings.HasSuffix(domain, s.Domain) {
			return s.To, true
		}
	}
	return t.wildcard, t.wildcard != ""
}

// hopHost is one host to try: an MX host, the domain itself (no MX), or a
// route target.
type hopHost struct {
	name  string       // lower case, no trailing dot
	port  int          //
	addrs []netip.Addr // known addresses; nil means resolve name when reached
	route bool         // a configured route: a name that does not resolve is a local fault, retried
}

// nextHop is where a destination domain's mail goes.
type nextHop struct {
	// site is a stable name for the destination's servers, reported to fairq
	// with SetSite so that domains on the same servers share one lane: the
	// route target, the lowest-preference MX host (the smallest name among
	// equals), or the domain itself when it has no MX.
	site  string
	hosts []hopHost // in the order to try
}

// resolveNextHop finds the next hop for domain: a route, else the MX hosts in
// preference order, else (no MX) the domain's own address. A null MX (RFC
// 7505) and a domain that does not exist are permanent failures; a DNS
// failure is temporary.
func (d *Delivery) resolveNextHop(ctx context.Context, domain string) (nextHop, *DeliveryError) {
	if to, ok := d.routes.lookup(domain); ok {
		host, portStr, _ := net.SplitHostPort(to) // validated in newRouteTable
		port, _ := strconv.Atoi(portStr)
		h := hopHost{name: host, port: port, route: true}
		if ip, err := netip.ParseAddr(host); err == nil {
			h.addrs = []netip.Addr{ip.Unmap()}
		}
		return nextHop{site: to, hosts: []hopHost{h}}, nil
	}
	mxs, err := d.resolver.LookupMX(ctx, domain)
	switch {
	case errors.Is(err, tenant.ErrDNSNotFound):
		// RFC 5321 section 5.1: no MX, the domain itself is the implicit MX.
		addrs, aerr := d.resolver.LookupNetIP(ctx, domain)
		switch {
		case errors.Is(aerr, tenant.ErrDNSNotFound):
			return nextHop{}, localError(true, StageDNS, domain, esBadDestSystem,
				"no MX and no A/AAAA record for "+domain, aerr)
		case aerr != nil:
			return nextHop{}, localError(false, StageDNS, domain, esDNSTemp, aerr.Error(), aerr)
		}
		return nextHop{site: domain, hosts: []hopHost{{name: domain, port: d.port, addrs: addrs}}}, nil
	case err != nil:
		return nextHop{}, localError(false, StageDNS, domain, esDNSTemp, err.Error(), err)
	}
	if isNullMX(mxs) {
		return nextHop{}, localError(true, StageDNS, domain, esNullMX,
			"null MX: "+domain+" does not accept mail (RFC 7505)", nil)
	}
	names := orderMX(mxs, rand.Shuffle)
	if len(names) == 0 {
		return nextHop{}, localError(true, StageDNS, domain, esBadDestSystem, "no usable MX host for "+domain, nil)
	}
	hop := nextHop{site: mxSite(mxs)}
	for _, n := range names {
		h := hopHost{name: n, port: d.port}
		if ip, err := netip.ParseAddr(n); err == nil {
			h.addrs = []netip.Addr{ip.Unmap()} // not valid DNS, but seen in the wild
		}
		hop.hosts = append(hop.hosts, h)
	}
	return hop, nil
}

// isNullMX reports a null MX: a single MX record whose host is "." (RFC 7505).
func isNullMX(mxs []*net.MX) bool {
	return len(mxs) == 1 && normalizeHost(mxs[0].Host) == ""
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// orderMX returns the MX host names in preference order (lowest first),
// hosts of equal preference in random order (RFC 5321 section 5.1), without
// duplicates and without "." entries. shuffle has rand.Shuffle's signature.
func orderMX(mxs []*net.MX, shuffle func(n int, swap func(i, j int))) []string {
	sorted := slices.Clone(mxs)
	slices.SortStableFunc(sorted, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].Pref == sorted[i].Pref {
			j++
		}
		if j-i > 1 {
			group := sorted[i:j]
			shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		}
		i = j
	}
	seen := map[string]bool{}
	var out []string
	for _, mx := range sorted {
		n := normalizeHost(mx.Host)
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

// mxSite names the MX host set stably: the smallest host name among those of
// the lowest preference.
func mxSite(mxs []*net.MX) string {
	site := ""
	var best uint16
	for _, mx := range mxs {
		n := normalizeHost(mx.Host)
		if n == "" {
			continue
		}
		if site == "" || mx.Pref < best || (mx.Pref == best && n < site) {
			site, best = n, mx.Pref
		}
	}
	return site
}

// hostAddrs returns the addresses to dial for h, resolving its name when
// they are not known yet.
func (d *Delivery) hostAddrs(ctx context.Context, h hopHost) ([]netip.Addr, *DeliveryError) {
	if h.addrs != nil {
		return h.addrs, nil
	}
	addrs, err := d.resolver.LookupNetIP(ctx, h.name)
	switch {
	case errors.Is(err, tenant.ErrDNSNotFound) && h.route:
		return nil, localError(false, StageDNS, h.name, esDNSTemp, "route target "+h.name+" has no A/AAAA record", err)
	case errors.Is(err, tenant.ErrDNSNotFound):
		return nil, localError(true, StageDNS, h.name, esUnroutable, "no A/AAAA record for "+h.name, err)
	case err != nil:
		return nil, localError(false, StageDNS, h.name, esDNSTemp, err.Error(), err)
	case len(addrs) == 0:
		return nil, localError(!h.route, StageDNS, h.name, esUnroutable, "no address for "+h.name, nil)
	}
	return addrs, nil
}

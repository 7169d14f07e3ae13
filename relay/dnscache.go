package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"fairway/tenant"
)

// DNSCache answers delivery's MX and address lookups from memory for a
// while, so a busy destination costs one DNS query per TTL rather than one
// per delivery. Answers are kept for TTL and "no such record" answers for
// NegativeTTL; failures (timeouts, SERVFAIL) are never kept, so a retry asks
// again. The resolver interface carries no DNS TTLs, so the times are fixed
// and short. Only delivery uses it: the directory must see DKIM records as
// soon as they are published.
type DNSCache struct {
	next   Resolver
	clock  Clock
	ttl    time.Duration
	negTTL time.Duration
	max    int

	mu      sync.Mutex
	entries map[dnsCacheKey]dnsCacheEntry
}

// DNSCacheOptions size a DNSCache; zero fields take the defaults.
type DNSCacheOptions struct {
	TTL         time.Duration // default 5 min
	NegativeTTL time.Duration // default 1 min
	MaxEntries  int           // default 100,000
	Clock       Clock
}

type dnsCacheKey struct {
	mx   bool // MX, else A/AAAA
	name string
}

type dnsCacheEntry struct {
	mxs     []*net.MX
	addrs   []netip.Addr
	err     error // only a "not found" error is kept
	expires time.Time
}

// NewDNSCache wraps next.
func NewDNSCache(next Resolver, o DNSCacheOptions) *DNSCache {
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = time.Minute
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100000
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	return &DNSCache{next: next, clock: o.Clock, ttl: o.TTL, negTTL: o.NegativeTTL, max: o.MaxEntries,
		entries: map[dnsCacheKey]dnsCacheEntry{}}
}

// LookupMX returns name's MX records, from the cache when fresh.
func (c *DNSCache) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	k := dnsCacheKey{mx: true, name: normalizeHost(name)}
	if e, ok := c.get(k); ok {
		return slices.Clone(e.mxs), e.err
	}
	mxs, err := c.next.LookupMX(ctx, name)
	c.put(k, dnsCacheEntry{mxs: slices.Clone(mxs), err: err})
	return mxs, err
}

// LookupNetIP returns host's addresses, from the cache when fresh.
func (c *DNSCache) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	k := dnsCacheKey{name: normalizeHost(host)}
	if e, ok := c.get(k); ok {
		return slices.Clone(e.addrs), e.err
	}
	addrs, err := c.next.LookupNetIP(ctx, host)
	c.put(k, dnsCacheEntry{addrs: slices.Clone(addrs), err: err})
	return addrs, err
}

func (c *DNSCache) get(k dnsCacheKey) (dnsCacheEntry, bool) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || !now.Before(e.expires) {
		return dnsCacheEntry{}, false
	}
	return e, true
}

func (c *DNSCache) put(k dnsCacheKey, e dnsCacheEntry) {
	now := c.clock.Now()
	switch {
	case e.err == nil:
		e.expires = now.Add(c.ttl)
	case errors.Is(e.err, tenant.ErrDNSNotFound):
		e.expires = now.Add(c.negTTL)
	default:
		return // a failure: ask again next time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Full: shed a tenth at once (expired entries and then any), so
		// the walk is paid once per max/10 inserts, not on each.
		low := c.max * 9 / 10
		for key, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, key)
			}
		}
		for key := range c.entries {
			if len(c.entries) < low {
				break
			}
			delete(c.entries, key)
		}
	}
	c.entries[k] = e
}

package tenant

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// AuthLimiter slows password guessing: every failed login from a client
// address takes a token from that address's bucket, and once the bucket is
// empty further attempts are refused before any password is checked (so a
// guessing client also cannot make the server burn argon2id time). Buckets
// refill slowly; a success does not reset them. IPv6 clients are counted
// per /64, as one host usually holds the whole /64.
//
// One AuthLimiter is meant to be shared by every server that checks
// passwords (submission and IMAP), so guesses on one port count on the
// other. It is safe for concurrent use and bounded in memory (MaxClients
// addresses; see makeRoom).
type AuthLimiter struct {
	burst int
	every rate.Limit
	max   int

	mu      sync.Mutex
	clients map[netip.Addr]*authBucket
}

type authBucket struct {
	lim *rate.Limiter
}

// AuthLimiterOptions tune an AuthLimiter; zero values take the defaults.
type AuthLimiterOptions struct {
	// Failures is how many failures an address may have in a row before it
	// is refused (default 10), and Refill how long one more takes to come
	// back (default 1 minute).
	Failures int
	Refill   time.Duration
	// MaxClients bounds the addresses tracked (default 100,000).
	MaxClients int
}

// NewAuthLimiter returns a limiter with o's settings.
func NewAuthLimiter(o AuthLimiterOptions) *AuthLimiter {
	if o.Failures <= 0 {
		o.Failures = 10
	}
	if o.Refill <= 0 {
		o.Refill = time.Minute
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 100000
	}
	return &AuthLimiter{burst: o.Failures, every: rate.Every(o.Refill), max: o.MaxClients,
		clients: make(map[netip.Addr]*authBucket)}
}

// authKey is the address a client is counted under.
func authKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Allow reports whether ip may try a password at now.
func (a *AuthLimiter) Allow(ip netip.Addr, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.clients[authKey(ip)]
	return b == nil || b.lim.TokensAt(now) >= 1
}

// Failed records a failed attempt from ip at now.
func (a *AuthLimiter) Failed(ip netip.Addr, now time.Time) {
	key := authKey(ip)
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.clients[key]
	if b == nil {
		if len(a.clients) >= a.max {
			a.makeRoom(now)
		}
		b = &authBucket{lim: rate.NewLimiter(a.every, a.burst)}
		a.clients[key] = b
	}
	b.lim.AllowN(now, 1)
}

// makeRoom frees entries when the table is full: first every address whose
// bucket has refilled (it would be recreated identical), and if none has,
// an arbitrary hundredth of the table. Either way the O(n) sweep is paid
// once per many insertions.
func (a *AuthLimiter) makeRoom(now time.Time) {
	for k, b := range a.clients {
		if b.lim.TokensAt(now) >= float64(a.burst) {
			delete(a.clients, k)
		}
	}
	for k := range a.clients {
		if len(a.clients) < a.max-a.max/100 {
			break
		}
		delete(a.clients, k)
	}
}

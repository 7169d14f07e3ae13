package relay

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Send limits: per mailbox per hour and per tenant ("account") per day,
// counted per recipient and checked at RCPT. Each is a token bucket of
// Count tokens refilling continuously at Count per Per, so a mailbox with
// an hourly limit of 100 that used it all may send one more recipient every
// 36 seconds, not 100 more at the top of the hour.
//
// Only mail that comes through submission is counted: bounces (DSNs) and
// fairway's own mail are enqueued in fairq directly by the delivery side
// and never reach a Limiter.

// Limit is one send limit: at most Count recipients per Per. A Count of 0
// or less means no limit.
type Limit struct {
	Name  string // as it appears in replies: "mailbox hourly", "account daily"
	Count int
	Per   time.Duration
}

// The two limits of the contract, named as in replies and metrics.
const (
	limitMailboxHourly = "mailbox hourly"
	limitAccountDaily  = "account daily"
)

// LimitError is a refused recipient: the bucket of Limit is empty, and Next
// is when the next recipient will be allowed. Its text is the reply text.
type LimitError struct {
	Limit Limit
	Next  time.Time
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s limit of %d recipients reached, next recipient allowed at %s",
		e.Limit.Name, e.Limit.Count, refillTime(e.Next))
}

// Limiter counts recipients against send limits. Implementations are safe
// for concurrent use and take the time as an argument (never a clock of
// their own), so that limits are testable and several nodes can share one
// backend (a Redis-backed Limiter slots in here).
type Limiter interface {
	// Take takes one recipient from the bucket named key under limit l at
	// now. If the bucket is empty it takes nothing and returns a
	// *LimitError; other errors are failures of the limiter itself.
	Take(key string, l Limit, now time.Time) (Reservation, error)
}

// Reservation is one recipient taken from a bucket. Cancel gives it back:
// the submission session cancels the reservations of a transaction that
// does not end in 250. Cancelling twice is harmless.
type Reservation interface {
	Cancel(now time.Time)
}

// RateLimiter is the in-process Limiter: one golang.org/x/time/rate
// bucket per key, created on first use and dropped once full again. No
// goroutine per bucket; a sweep every sweepEvery takes drops full buckets
// (a full bucket is the same as no bucket).
//
// Giving a recipient back does not use rate.Reservation.CancelAt: CancelAt
// restores only what no later reservation may have depended on, which by
// the end of a transaction (later recipients, other sessions of the same
// tenant, time passed) is usually nothing. A given-back recipient becomes
// a credit on its bucket instead, used before the bucket's own tokens, and
// never more than the room left below the bucket's size.
type RateLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	takes   int
}

type bucket struct {
	lim    *rate.Limiter
	limit  Limit
	credit int // recipients given back and not yet taken again
}

// room is how many given-back recipients fit in b at now: the tokens
// missing from a full bucket, rounded up (so a bucket holds less than one
// token more than its size at worst, never loses a given-back recipient to
// rounding).
func (b *bucket) room(now time.Time) int {
	return max(0, int(math.Ceil(float64(b.lim.Burst())-b.lim.TokensAt(now))))
}

// sweepEvery is how many takes pass between sweeps of full buckets.
const sweepEvery = 4096

// NewRateLimiter returns an empty in-process limiter.
func NewRateLimiter() *RateLimiter {
	return &RateLimiter{buckets: map[string]*bucket{}}
}

type noReservation struct{}

func (noReservation) Cancel(time.Time) {}

type rateReservation struct {
	l         *RateLimiter
	b         *bucket
	cancelled bool // guarded by l.mu
}

func (r *rateReservation) Cancel(now time.Time) {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.cancelled {
		return
	}
	r.cancelled = true
	if r.b.credit < r.b.room(now) {
		r.b.credit++
	}
}

// Take implements Limiter.
func (l *RateLimiter) Take(key string, lim Limit, now time.Time) (Reservation, error) {
	if lim.Count <= 0 || lim.Per <= 0 {
		return noReservation{}, nil
	}
	every := rate.Limit(float64(lim.Count) / lim.Per.Seconds())
	l.mu.Lock()
	defer l.mu.Unlock()
	l.takes++
	if l.takes%sweepEvery == 0 {
		l.sweep(now)
	}
	b := l.buckets[key]
	switch {
	case b == nil:
		b = &bucket{lim: rate.NewLimiter(every, lim.Count), limit: lim}
		l.buckets[key] = b
	case b.limit != lim: // the operator changed the policy: keep the tokens, change the rate
		b.lim.SetLimitAt(now, every)
		b.lim.SetBurstAt(now, lim.Count)
		b.limit = lim
	}
	if b.credit = min(b.credit, b.room(now)); b.credit > 0 {
		b.credit--
		return &rateReservation{l: l, b: b}, nil
	}
	res := b.lim.ReserveN(now, 1)
	if !res.OK() { // cannot happen with Count ≥ 1; refuse rather than wait forever
		return nil, &LimitError{Limit: lim, Next: now.Add(lim.Per)}
	}
	if d := res.DelayFrom(now); d > 0 {
		// Nothing was reserved after this one (l.mu is held), so CancelAt
		// at the same instant restores the token exactly.
		res.CancelAt(now)
		return nil, &LimitError{Limit: lim, Next: now.Add(d)}
	}
	return &rateReservation{l: l, b: b}, nil
}

// sweep drops buckets that are full at now. Called with l.mu held.
func (l *RateLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.room(now)-b.credit <= 0 {
			delete(l.buckets, k)
		}
	}
}

// size is the number of buckets held (tests).
func (l *RateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

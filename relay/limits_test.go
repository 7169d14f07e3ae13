package relay

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var limitStart = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

// take takes n recipients from key and fails the test if any is refused.
func take(t *testing.T, l Limiter, key string, lim Limit, now time.Time, n int) []Reservation {
	t.Helper()
	var out []Reservation
	for i := range n {
		r, err := l.Take(key, lim, now)
		if err != nil {
			t.Fatalf("take %d of %d: %v", i+1, n, err)
		}
		out = append(out, r)
	}
	return out
}

func refusedAt(t *testing.T, l Limiter, key string, lim Limit, now time.Time) time.Time {
	t.Helper()
	_, err := l.Take(key, lim, now)
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("want a LimitError, got %v", err)
	}
	if le.Limit != lim {
		t.Fatalf("limit %+v, want %+v", le.Limit, lim)
	}
	return le.Next
}

func TestRateLimiterBucket(t *testing.T) {
	hourly := Limit{Name: limitMailboxHourly, Count: 100, Per: time.Hour}
	for _, tc := range []struct {
		name    string
		used    int           // taken at limitStart
		later   time.Duration // then asked at limitStart+later
		allowed int           // how many more are allowed then
		next    time.Duration // and when the one after is, from limitStart
	}{
		{"full bucket", 0, 0, 100, 36 * time.Second},
		{"all used", 100, 0, 0, 36 * time.Second},
		{"refill of one", 100, 36 * time.Second, 1, 72 * time.Second},
		{"partial refill", 100, 30 * time.Minute, 50, 30*time.Minute + 36*time.Second},
		{"never more than full", 100, 5 * time.Hour, 100, 5*time.Hour + 36*time.Second},
		{"half used", 50, 0, 50, 36 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewRateLimiter()
			take(t, l, "k", hourly, limitStart, tc.used)
			now := limitStart.Add(tc.later)
			take(t, l, "k", hourly, now, tc.allowed)
			if next := refusedAt(t, l, "k", hourly, now); !next.Equal(limitStart.Add(tc.next)) {
				t.Fatalf("next at %v, want %v", next.Sub(limitStart), tc.next)
			}
		})
	}
}

func TestRateLimiterKeysAndZero(t *testing.T) {
	l := NewRateLimiter()
	daily := Limit{Name: limitAccountDaily, Count: 2, Per: 24 * time.Hour}
	take(t, l, "a", daily, limitStart, 2)
	refusedAt(t, l, "a", daily, limitStart)
	take(t, l, "b", daily, limitStart, 2) // another key, its own bucket
	// Zero means no limit and keeps no bucket.
	take(t, l, "z", Limit{Name: limitAccountDaily}, limitStart, 10000)
	if n := l.size(); n != 2 {
		t.Fatalf("%d buckets, want 2", n)
	}
}

func TestRateLimiterGiveBack(t *testing.T) {
	hourly := Limit{Name: limitMailboxHourly, Count: 3, Per: time.Hour}
	l := NewRateLimiter()
	rs := take(t, l, "k", hourly, limitStart, 3)
	refusedAt(t, l, "k", hourly, limitStart)
	// Given back a minute later, after other takes in between: all three
	// come back (CancelAt alone would give back nothing here).
	later := limitStart.Add(time.Minute)
	for _, r := range rs {
		r.Cancel(later)
		r.Cancel(later) // twice is once
	}
	take(t, l, "k", hourly, later, 3)
	refusedAt(t, l, "k", hourly, later)

	// Never more than the bucket holds: given back into a refilled bucket.
	l = NewRateLimiter()
	rs = take(t, l, "k", hourly, limitStart, 1)
	full := limitStart.Add(time.Hour)
	rs[0].Cancel(full)
	take(t, l, "k", hourly, full, 3)
	refusedAt(t, l, "k", hourly, full)

	// A credit shrinks as the bucket refills under it.
	l = NewRateLimiter()
	rs = take(t, l, "k", hourly, limitStart, 3)
	rs[0].Cancel(limitStart) // one credit, bucket empty
	at := limitStart.Add(40 * time.Minute)
	take(t, l, "k", hourly, at, 3) // 2 refilled + the credit
	refusedAt(t, l, "k", hourly, at)
}

func TestRateLimiterPolicyChange(t *testing.T) {
	l := NewRateLimiter()
	small := Limit{Name: limitMailboxHourly, Count: 2, Per: time.Hour}
	big := Limit{Name: limitMailboxHourly, Count: 10, Per: time.Hour}
	take(t, l, "k", small, limitStart, 2)
	refusedAt(t, l, "k", small, limitStart)
	// Raised: the tokens left stay (none), the rate is the new one.
	if next := refusedAt(t, l, "k", big, limitStart); !next.Equal(limitStart.Add(6 * time.Minute)) {
		t.Fatalf("next %v", next.Sub(limitStart))
	}
	take(t, l, "k", big, limitStart.Add(time.Hour), 10)
}

func TestRateLimiterSweep(t *testing.T) {
	l := NewRateLimiter()
	hourly := Limit{Name: limitMailboxHourly, Count: 5, Per: time.Hour}
	for i := range sweepEvery - 1 {
		take(t, l, fmt.Sprintf("k%d", i), hourly, limitStart, 1)
	}
	if n := l.size(); n != sweepEvery-1 {
		t.Fatalf("%d buckets", n)
	}
	// An hour later every bucket is full again: the next take sweeps them.
	take(t, l, "fresh", hourly, limitStart.Add(time.Hour), 1)
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}

package fairq

import (
	"math"
	"time"
)

// Retry schedule for a delivery that failed temporarily: 5 minutes, doubling per
// attempt, capped at 4 hours, each delay jittered by ±20% so deliveries that
// failed together do not come back together.
const (
	RetryBase   = 5 * time.Minute
	RetryCap    = 4 * time.Hour
	RetryJitter = 0.2
)

// Lane backoff for a (pool, site) pair that keeps failing: 30 seconds, doubling
// per consecutive failure, capped at 30 minutes, jittered by ±20%.
const (
	LaneBackoffBase   = 30 * time.Second
	LaneBackoffCap    = 30 * time.Minute
	LaneBackoffJitter = 0.2
)

// RetryDelay is the wait before the next attempt after attempt number attempts
// (1 for the first attempt) failed temporarily. u is a uniform random number in
// [0, 1) that picks the jitter.
func RetryDelay(attempts int, u float64) time.Duration {
	return expDelay(RetryBase, RetryCap, RetryJitter, attempts, u)
}

// LaneBackoff is how long a lane pauses after failures consecutive failures
// (1 for the first). u in [0, 1) picks the jitter.
func LaneBackoff(failures int, u float64) time.Duration {
	return expDelay(LaneBackoffBase, LaneBackoffCap, LaneBackoffJitter, failures, u)
}

// expDelay computes base·2^(n-1), capped, then scaled by a factor in
// [1-jitter, 1+jitter). Computed in float so no step truncates to zero; the
// result is never below base·(1-jitter) nor above cap·(1+jitter).
func expDelay(base, maxDelay time.Duration, jitter float64, n int, u float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if u < 0 || u >= 1 || math.IsNaN(u) {
		u = 0.5
	}
	d := float64(base) * math.Pow(2, float64(n-1))
	if d > float64(maxDelay) || math.IsInf(d, 1) {
		d = float64(maxDelay)
	}
	d *= 1 - jitter + 2*jitter*u
	return time.Duration(d)
}

package reputation

import (
	"math"
	"strings"
	"time"
)

// Feedback is what a receiver's reply says about the source IP it came
// from (as opposed to the message or the recipient).
type Feedback int

// Kinds of receiver feedback.
const (
	NoFeedback Feedback = iota // nothing about the source: delivered, unknown user, greylisting
	Throttled                  // "slow down": rate limited, too many connections or messages
	Blocked                    // "go away": the IP is blocked or listed, or its reputation is poor
)

func (f Feedback) String() string {
	switch f {
	case Throttled:
		return "throttled"
	case Blocked:
		return "blocked"
	}
	return "none"
}

// Phrases receivers use, lower case. Blocked wins over throttled: Yahoo's
// "temporarily deferred due to user complaints" is a block, not a rate.
var (
	ignorePhrases  = []string{"greylist", "graylist", "grey-list", "gray-list"}
	blockedPhrases = []string{"blocked", "block list", "blocklist", "blacklist", "denylist", "spamhaus", "spamcop",
		"barracuda", "listed", "reputation", "banned", "rbl", "dnsbl", "poor ip", "user complaints", "unsolicited", "not allowed to send"}
	throttlePhrases = []string{"rate limit", "ratelimit", "rate-limit", "too many", "throttl", "try again later", "try later",
		"slow down", "unexpected volume", "exceeded", "temporarily deferred", "temporarily rate", "[ts0", "[tss0", "excessive"}
)

// Classify reads a reply for what it says about the source IP. Delivered
// and per-recipient replies (x.1.x address, x.2.x mailbox) say nothing; a 421 or a 4.7.x
// deferral without a known phrase still means "slow down"; a 5.7.x
// rejection that names a list or a block means "blocked".
func Classify(code int, enhanced, line string) Feedback {
	if code/100 == 2 || len(enhanced) > 2 && (enhanced[1:3] == ".1" || enhanced[1:3] == ".2") {
		return NoFeedback // delivered, or about the recipient's address or mailbox
	}
	l := strings.ToLower(line)
	for _, p := range ignorePhrases {
		if strings.Contains(l, p) {
			return NoFeedback
		}
	}
	for _, p := range blockedPhrases {
		if strings.Contains(l, p) {
			return Blocked
		}
	}
	for _, p := range throttlePhrases {
		if strings.Contains(l, p) {
			return Throttled
		}
	}
	switch {
	case code == 421, code/100 == 4 && strings.HasPrefix(enhanced, "4.7."):
		return Throttled
	case code == 554 && strings.HasPrefix(enhanced, "5.7.") && strings.Contains(l, "ip"):
		return Blocked
	}
	return NoFeedback
}

// Backoff settings for receiver feedback on an (IP, site) pair.
const (
	throttleBase = time.Minute
	throttleCap  = time.Hour
	blockedBase  = 15 * time.Minute
	blockedCap   = 6 * time.Hour
	backoffJit   = 0.25 // the delay is cut by up to this fraction, at random
	// minRate is the lowest rate (messages per minute) a throttled pair is
	// cut to; restoreStep the fraction of itself a pair's rate grows per
	// delivered message; a pair whose rate reaches maxRate is unlimited
	// again.
	minRate     = 1.0
	maxRate     = 600.0
	restoreStep = 0.05
)

// backoffDelay is how long an (IP, site) pair rests after its strikes-th
// consecutive feedback of kind f: the kind's base doubled per strike, capped,
// then cut by up to a quarter at random (rnd in [0, 1)) so that pairs hit at
// once do not all come back at once.
func backoffDelay(f Feedback, strikes int, rnd float64) time.Duration {
	base, ceiling := throttleBase, throttleCap
	if f == Blocked {
		base, ceiling = blockedBase, blockedCap
	}
	d := float64(base) * math.Pow(2, float64(max(strikes, 1)-1))
	d = min(d, float64(ceiling))
	d *= 1 - backoffJit*min(max(rnd, 0), 1)
	return time.Duration(d)
}

// cutRate is a throttled pair's new rate (messages per minute): half its
// current rate, or half the rate it was just sending at when it had no
// limit, never below minRate.
func cutRate(limit, observedPerMinute float64) float64 {
	if limit <= 0 {
		limit = max(observedPerMinute, 2*minRate)
	}
	return max(limit/2, minRate)
}

// restoreRate grows a limited pair's rate after n delivered messages; it
// returns 0 (unlimited) once the rate reaches maxRate.
func restoreRate(limit float64, n int) float64 {
	if limit <= 0 {
		return 0
	}
	limit *= math.Pow(1+restoreStep, float64(n))
	if limit >= maxRate {
		return 0
	}
	return limit
}

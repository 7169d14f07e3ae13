package reputation

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code     int
		enhanced string
		line     string
		want     Feedback
	}{
		{250, "2.0.0", "OK blocked", NoFeedback},
		{421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints", Blocked},
		{421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail originating from your IP address", Blocked},
		{451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]", Throttled},
		{450, "4.7.0", "Too many concurrent SMTP connections from this IP address; please try again later", Throttled},
		{421, "4.3.2", "Service not available, closing transmission channel", Throttled},
		{452, "4.5.3", "Rate limit exceeded for this sender", Throttled},
		{451, "4.7.1", "Message throttled due to sending rate", Throttled},
		{450, "4.7.1", "Please slow down", Throttled},
		{451, "4.7.1", "Greylisted, please try again later", NoFeedback},
		{450, "4.7.1", "unverified sender", Throttled}, // 4.7.x without a known phrase: slow down
		{550, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using Spamhaus", Blocked},
		{421, "4.7.0", "Connection from 192.0.2.1 blocked", Blocked},
		{554, "5.7.1", "Message rejected: 192.0.2.1 is listed on zen.spamhaus.org", Blocked},
		{550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]", Blocked},
		{554, "5.7.1", "rejected because your IP has a poor reputation", Blocked},
		{554, "5.7.1", "Rejected by policy for this IP", Blocked},
		{550, "5.7.1", "Message rejected due to content restrictions", NoFeedback},
		{550, "5.1.1", "The email account that you tried to reach does not exist; not listed", NoFeedback},
		{452, "4.2.2", "The email account is over quota: rate exceeded", NoFeedback},
		{450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages", NoFeedback},
		{451, "4.3.0", "Temporary local problem", NoFeedback},
		{0, "4.4.1", "connection refused", NoFeedback},
	} {
		if got := Classify(tc.code, tc.enhanced, tc.line); got != tc.want {
			t.Errorf("Classify(%d %s %q) = %s, want %s", tc.code, tc.enhanced, tc.line, got, tc.want)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	for _, tc := range []struct {
		f       Feedback
		strikes int
		rnd     float64
		want    time.Duration
	}{
		{Throttled, 1, 0, time.Minute},
		{Throttled, 0, 0, time.Minute}, // no strike counts as the first
		{Throttled, 2, 0, 2 * time.Minute},
		{Throttled, 3, 0, 4 * time.Minute},
		{Throttled, 6, 0, 32 * time.Minute},
		{Throttled, 7, 0, time.Hour}, // 64 min capped
		{Throttled, 60, 0, time.Hour},
		{Throttled, 1, 0.999999, 45*time.Second + 15*time.Microsecond}, // jitter cuts at most a quarter
		{Throttled, 7, 0.5, 52*time.Minute + 30*time.Second},
		{Throttled, 1, 2, 45 * time.Second}, // out-of-range randomness is clamped
		{Blocked, 1, 0, 15 * time.Minute},
		{Blocked, 5, 0, 4 * time.Hour},
		{Blocked, 6, 0, 6 * time.Hour},
		{Blocked, 1000, 1, 4*time.Hour + 30*time.Minute},
	} {
		got := backoffDelay(tc.f, tc.strikes, tc.rnd)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("backoffDelay(%s, %d, %v) = %v, want %v", tc.f, tc.strikes, tc.rnd, got, tc.want)
		}
	}
}

func TestCutAndRestoreRate(t *testing.T) {
	for _, tc := range []struct{ limit, observed, want float64 }{
		{0, 100, 50},    // unlimited: half the rate it was sending at
		{0, 0, minRate}, // unlimited and idle: the floor
		{40, 100, 20},   // limited: half the limit
		{1.5, 0, minRate},
		{minRate, 0, minRate},
	} {
		if got := cutRate(tc.limit, tc.observed); got != tc.want {
			t.Errorf("cutRate(%v, %v) = %v, want %v", tc.limit, tc.observed, got, tc.want)
		}
	}
	if got := restoreRate(0, 10); got != 0 {
		t.Errorf("restoring an unlimited pair: %v", got)
	}
	if got := restoreRate(10, 1); got != 10.5 {
		t.Errorf("restoreRate(10, 1) = %v, want 10.5", got)
	}
	r := 1.0
	n := 0
	for r > 0 && n < 1000 {
		r = restoreRate(r, 1)
		n++
	}
	if r != 0 || n < 100 || n > 200 {
		t.Errorf("from 1/min, unlimited again after %d deliveries (rate %v); want gradually, 100-200", n, r)
	}
}

// FuzzClassify: remote reply lines are outside input; no reply panics the
// classifiers, and a delivered reply is never feedback.
func FuzzClassify(f *testing.F) {
	f.Add(421, "4.7.0", "[TSS04] Messages temporarily deferred due to user complaints")
	f.Add(550, "5.7.1", "blocked using Spamhaus")
	f.Add(0, "", "")
	f.Add(250, "2", "x")
	f.Add(-1, "\xff.1", "GREYLISTED")
	f.Fuzz(func(t *testing.T, code int, enhanced, line string) {
		fb := Classify(code, enhanced, line)
		o := OutcomeOf(code, enhanced)
		if o < 0 || o >= numOutcomes {
			t.Errorf("OutcomeOf(%d, %q) = %d", code, enhanced, o)
		}
		if code >= 200 && code < 300 && (fb != NoFeedback || o != Delivered) {
			t.Errorf("delivered reply %d: %s, %s", code, fb, o)
		}
	})
}

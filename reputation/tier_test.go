package reputation

import (
	"strings"
	"testing"
	"time"
)

// sent builds counts of n messages sent of which hb hard bounced and pr
// were rejected by policy; the rest were delivered.
func sent(n, hb, pr int) Counts {
	return Counts{Delivered: n - hb - pr, HardBounce: hb, PolicyRejection: pr}
}

func TestNextTier(t *testing.T) {
	th := DefaultThresholds()
	day := 24 * time.Hour
	week := 7 * day
	// a long, clean, voluminous record: promotion only waits for the tier's age
	clean := Windows{Hour: sent(20, 0, 0), Day: sent(100, 0, 0), Week: sent(1000, 0, 0), InTier: week}
	// demotion cases start in the tier an hour ago: no promotion is due
	withDay := func(c Counts) Windows { w := clean; w.Day, w.InTier = c, time.Hour; return w }
	withHour := func(c Counts) Windows { w := clean; w.Hour, w.InTier = c, time.Hour; return w }
	withWeek := func(c Counts) Windows { w := clean; w.Week, w.InTier = c, time.Hour; return w }
	inTier := func(w Windows, d time.Duration) Windows { w.InTier = d; return w }
	complaints := func(delivered, n int) Counts { return Counts{Delivered: delivered, Complaint: n} }
	deferrals := func(s, d int) Counts { return Counts{Delivered: s, Deferral: d} }

	for _, tc := range []struct {
		name string
		cur  Tier
		w    Windows
		want Tier
		why  string // a substring of the reason, when the tier changes
	}{
		// hard bounces: demotion limits 3 % (trusted), 5 %, 10 %, 20 %
		{"standard at 5% bounce stays", Standard, withDay(sent(100, 5, 0)), Standard, ""},
		{"standard over 5% bounce to probation", Standard, withDay(sent(100, 6, 0)), Probation, "24h hard bounce rate 6.00% (6 of 100 sent) over the probation limit 5.00%"},
		{"hour at 10% bounce: probation", Standard, withHour(sent(100, 10, 0)), Probation, "1h hard bounce"},
		{"hour over 10% bounce: quarantine", Standard, withHour(sent(100, 11, 0)), Quarantine, "quarantine limit"},
		{"day at 20% bounce: quarantine", Standard, withDay(sent(100, 20, 0)), Quarantine, ""},
		{"day over 20% bounce: suspended", Standard, withDay(sent(100, 21, 0)), Suspended, "suspended limit 20.00%"},
		{"too little volume: rates ignored", Standard, withHour(sent(19, 19, 0)), Standard, ""},
		{"just enough volume: rates count", Standard, withHour(sent(20, 20, 0)), Suspended, ""},
		// policy rejections: 2 %, 5 %, 10 %, never suspended
		{"policy at 5% stays", Standard, withDay(sent(100, 0, 5)), Standard, ""},
		{"policy over 5%: probation", Standard, withDay(sent(100, 0, 6)), Probation, "policy rejection"},
		{"policy at 10%: probation", Standard, withDay(sent(100, 0, 10)), Probation, ""},
		{"policy over 10%: quarantine", Standard, withDay(sent(100, 0, 11)), Quarantine, ""},
		{"all blocked: quarantine, not suspended", Standard, withHour(sent(50, 0, 50)), Quarantine, "1h policy rejection rate 100.00%"},
		// complaints per delivered: 0.2 %, 0.3 %, 0.5 %, 1 %; from 100 delivered
		{"complaints at 0.3% stay", Standard, withDay(complaints(1000, 3)), Standard, ""},
		{"complaints over 0.3%: probation", Standard, withDay(complaints(1000, 4)), Probation, "complaint rate 0.40% (4 of 1000 delivered)"},
		{"complaints at 0.5%: probation", Standard, withDay(complaints(1000, 5)), Probation, ""},
		{"complaints over 0.5%: quarantine", Standard, withDay(complaints(1000, 6)), Quarantine, ""},
		{"complaints at 1%: quarantine", Standard, withDay(complaints(1000, 10)), Quarantine, ""},
		{"complaints over 1%: suspended", Standard, withDay(complaints(1000, 11)), Suspended, ""},
		{"complaints under complaint volume ignored", Standard, withDay(complaints(99, 50)), Standard, ""},
		{"complaints at complaint volume count", Standard, withDay(complaints(100, 2)), Suspended, ""},
		// deferrals per attempt: 50 % for probation
		{"deferrals at 50% stay", Standard, withDay(deferrals(50, 50)), Standard, ""},
		{"deferrals over 50%: probation", Standard, withDay(deferrals(49, 51)), Probation, "deferral rate"},
		{"deferrals with too few sent ignored", Standard, withDay(deferrals(19, 1000)), Standard, ""},
		// trusted leaves at the standard limits, and can skip tiers
		{"trusted at 3% stays", Trusted, withDay(sent(100, 3, 0)), Trusted, ""},
		{"trusted over 3%: standard", Trusted, withDay(sent(100, 4, 0)), Standard, "standard limit"},
		{"trusted over 5%: probation", Trusted, withDay(sent(100, 6, 0)), Probation, ""},
		{"trusted with policy over 2%: standard", Trusted, withDay(sent(100, 0, 3)), Standard, ""},
		{"trusted with complaints over 0.2%: standard", Trusted, withDay(complaints(1000, 3)), Standard, ""},
		// a demoted tenant at its own tier's level neither falls nor rises
		{"probation at probation level stays", Probation, inTier(withDay(sent(100, 6, 0)), week), Probation, ""},
		{"quarantine at quarantine level stays", Quarantine, withDay(sent(100, 15, 0)), Quarantine, ""},
		{"quarantine over suspend: suspended", Quarantine, withDay(sent(100, 25, 0)), Suspended, ""},
		// the week alone does not demote
		{"bad week, clean hour and day: stays", Standard, withWeek(sent(1000, 300, 0)), Standard, ""},
		// promotion from probation: clean (<= 2 % bounce, 1 % policy, 0.1 % complaints, 20 % deferrals) for a day with 100 sent
		{"probation clean at the limits: standard", Probation, inTier(withDay(Counts{Delivered: 1940, HardBounce: 40, PolicyRejection: 20, Complaint: 1, Deferral: 500}), day), Standard, "clean for 24h0m0s in probation"},
		{"probation at 3% bounce: hysteresis keeps it", Probation, inTier(withDay(sent(100, 3, 0)), week), Probation, ""},
		{"probation at 2% bounce: standard", Probation, inTier(withDay(sent(100, 2, 0)), week), Standard, ""},
		{"probation with policy over 1%: stays", Probation, inTier(withDay(sent(100, 0, 2)), week), Probation, ""},
		{"probation with complaints over 0.1%: stays", Probation, inTier(withDay(complaints(1000, 2)), week), Probation, ""},
		{"probation with complaints at 0.1%: standard", Probation, inTier(withDay(complaints(1000, 1)), week), Standard, ""},
		{"probation with deferrals over 20%: stays", Probation, inTier(withDay(deferrals(100, 26)), week), Probation, ""},
		{"probation with deferrals at 20%: standard", Probation, inTier(withDay(deferrals(100, 25)), week), Standard, ""},
		{"probation with 99 sent: stays", Probation, inTier(withDay(sent(99, 0, 0)), week), Probation, ""},
		{"probation for a day less a second: stays", Probation, inTier(clean, day-time.Second), Probation, ""},
		{"probation for a day: standard", Probation, inTier(clean, day), Standard, ""},
		{"probation with an unclean hour: stays", Probation, inTier(withHour(sent(20, 1, 0)), week), Probation, ""},
		{"probation with a bad hour of little volume: standard", Probation, inTier(withHour(sent(19, 5, 0)), week), Standard, ""},
		{"quarantine clean: one step to probation", Quarantine, clean, Probation, "in quarantine"},
		// trusted: a clean week with 1000 sent, 7 days in standard
		{"standard clean week: trusted", Standard, inTier(clean, week), Trusted, "7d sent 1000"},
		{"standard with 999 sent in the week: stays", Standard, inTier(withWeek(sent(999, 0, 0)), week), Standard, ""},
		{"standard for a week less a second: stays", Standard, inTier(clean, week-time.Second), Standard, ""},
		{"standard with an unclean week: stays", Standard, inTier(withWeek(sent(1000, 21, 0)), week), Standard, ""},
		{"standard with an unclean day: stays", Standard, inTier(withDay(sent(100, 3, 0)), week), Standard, ""},
		{"trusted stays trusted", Trusted, clean, Trusted, ""},
		// suspended is left only by an operator
		{"suspended stays with a clean record", Suspended, clean, Suspended, ""},
		{"an unknown tier counts as standard", Tier(0), withDay(sent(100, 6, 0)), Probation, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := nextTier(tc.cur, tc.w, th)
			if got != tc.want {
				t.Fatalf("nextTier(%s) = %s (%q), want %s", tc.cur, got, why, tc.want)
			}
			if (got == tc.cur) != (why == "") && tc.cur != Tier(0) {
				t.Errorf("reason %q with tier %s -> %s", why, tc.cur, got)
			}
			if !strings.Contains(why, tc.why) {
				t.Errorf("reason %q does not say %q", why, tc.why)
			}
		})
	}
}

// TestTierHysteresis walks one tenant down and up: the rate that demotes it
// is not the rate that promotes it back.
func TestTierHysteresis(t *testing.T) {
	th := DefaultThresholds()
	w := Windows{Hour: sent(10, 0, 0), Week: sent(2000, 0, 0), InTier: 48 * time.Hour}
	steps := []struct {
		bounces int
		want    Tier
	}{
		{4, Standard},    // 4 %: under the probation limit
		{6, Probation},   // 6 %: over it
		{4, Probation},   // back to 4 %: not clean, stays
		{3, Probation},   // 3 %: still not clean
		{2, Standard},    // 2 %: clean, promoted
		{4, Standard},    // 4 % again: under the demotion limit
		{11, Quarantine}, // straight down two tiers
		{0, Probation},   // up one step at a time
		{0, Standard},
	}
	cur := Standard
	for i, s := range steps {
		w.Day = sent(100, s.bounces, 0)
		next, _ := nextTier(cur, w, th)
		if next != s.want {
			t.Fatalf("step %d (%d%% bounces from %s): %s, want %s", i, s.bounces, cur, next, s.want)
		}
		cur = next
	}
}

func TestSpike(t *testing.T) {
	th := DefaultThresholds() // factor 10, floor 20/h, at least 100
	for _, tc := range []struct {
		hour     int
		baseline float64
		want     bool
	}{
		{199, 5, false}, // the floor: 10 × 20
		{200, 5, true},
		{499, 50, false}, // 10 × the baseline
		{500, 50, true},
		{5000, 600, false},
		{6000, 600, true},
		{99, 0, false}, // under the minimum volume whatever the baseline
	} {
		th := th
		if tc.hour == 99 {
			th.SpikeFloor = 1
		}
		got, why := spike(tc.hour, tc.baseline, th)
		if got != tc.want {
			t.Errorf("spike(%d, %.0f) = %v (%s), want %v", tc.hour, tc.baseline, got, why, tc.want)
		}
		if got && !strings.Contains(why, "baseline") {
			t.Errorf("reason %q lacks the baseline", why)
		}
	}
	th.SpikeFloor = 1
	if got, _ := spike(100, 0, th); !got {
		t.Errorf("100 attempts against a floor of 1/h is a spike")
	}
}

func TestThresholdDefaults(t *testing.T) {
	if got := (Thresholds{}).withDefaults(); got != DefaultThresholds() {
		t.Errorf("zero thresholds = %+v, want the defaults", got)
	}
	got := Thresholds{MinVolume: 5, Probation: Limits{HardBounce: 0.5}}.withDefaults()
	if got.MinVolume != 5 || got.SpikeFactor != 10 || got.Probation.HardBounce != 0.5 || got.Suspend != (Limits{}) {
		t.Errorf("partial thresholds = %+v", got)
	}
}

func TestParseTier(t *testing.T) {
	for tier := Trusted; tier <= Suspended; tier++ {
		got, err := ParseTier(strings.ToUpper(tier.String()))
		if err != nil || got != tier {
			t.Errorf("ParseTier(%s) = %v, %v", tier, got, err)
		}
	}
	if _, err := ParseTier("gold"); err == nil {
		t.Error("ParseTier(gold) did not fail")
	}
}

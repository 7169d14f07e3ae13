package reputation

import (
	"fmt"
	"strings"
	"time"
)

// Tier is a tenant's standing; each tier sends from its own IP pool.
// Higher values are worse; the metric fairway_reputation_tier reports the
// number.
type Tier int

// The tiers, best first.
const (
	Trusted    Tier = 1 + iota // long clean record with volume
	Standard                   // where tenants start
	Probation                  // rates over the receivers' comfort limits
	Quarantine                 // rates well over them: sends from the quarantine pool
	Suspended                  // held; only an operator's resume releases it
)

var tierNames = map[Tier]string{Trusted: "trusted", Standard: "standard", Probation: "probation", Quarantine: "quarantine", Suspended: "suspended"}

// String returns the tier's name as written in config and reports.
func (t Tier) String() string {
	if n, ok := tierNames[t]; ok {
		return n
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// ParseTier reads a tier name.
func ParseTier(s string) (Tier, error) {
	for t, n := range tierNames {
		if strings.EqualFold(s, n) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("reputation: unknown tier %q: want trusted, standard, probation, quarantine or suspended", s)
}

// MarshalText writes the tier's name (JSON reports, config).
func (t Tier) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a tier's name.
func (t *Tier) UnmarshalText(b []byte) error {
	v, err := ParseTier(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Limits are rates (fractions: 0.05 is 5 %) over which a window counts as
// bad. A zero field is not checked.
type Limits struct {
	HardBounce      float64 `json:"hard_bounce"`      // hard bounces per message sent
	PolicyRejection float64 `json:"policy_rejection"` // 5.7.x rejections per message sent
	Deferral        float64 `json:"deferral"`         // deferrals per attempt
	Complaint       float64 `json:"complaint"`        // complaints per message delivered
}

// Thresholds configure the tier function and spike detection. Demotion
// limits are higher than the Clean limits promotion needs, so a tenant
// near a limit does not flap (hysteresis).
type Thresholds struct {
	// MinVolume is the number of messages sent in a window before its
	// bounce, policy and deferral rates count; ComplaintMinVolume the
	// number delivered before its complaint rate counts.
	MinVolume          int
	ComplaintMinVolume int
	// A window (the hour or the day) over a tier's limits demotes the
	// tenant to at least that tier, several steps at once if need be.
	// Standard only demotes trusted tenants.
	Standard, Probation, Quarantine, Suspend Limits
	// Promotion is one step at a time: from quarantine or probation when
	// the tenant has been in its tier PromoteAfter, sent PromoteVolume in
	// the day, and the hour and the day are within Clean; from standard to
	// trusted after TrustAfter with TrustVolume sent in the week and the
	// hour, day and week within Clean. Suspended is left only by an
	// operator's resume.
	Clean         Limits
	PromoteVolume int
	PromoteAfter  time.Duration
	TrustVolume   int
	TrustAfter    time.Duration
	// Spike detection: a tenant whose attempts in the last hour reach
	// SpikeFactor times its baseline (its average hourly attempts over the
	// week before, at least SpikeFloor) and at least SpikeMinVolume is held
	// for review.
	SpikeFactor    float64
	SpikeFloor     float64
	SpikeMinVolume int
}

// DefaultThresholds follow receivers' published guidance: Gmail's bulk
// sender rules keep the spam complaint rate under 0.1 % and never at
// 0.3 %; a hard bounce rate over 2 % is a list-hygiene problem and over
// 5 % gets mail blocked. Policy rejections (blocks) quarantine a tenant but
// never suspend it: suspension is for its own list's bounces and
// complaints.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MinVolume:          20,
		ComplaintMinVolume: 100,
		Clean:              Limits{HardBounce: 0.02, PolicyRejection: 0.01, Deferral: 0.20, Complaint: 0.001},
		Standard:           Limits{HardBounce: 0.03, PolicyRejection: 0.02, Complaint: 0.002},
		Probation:          Limits{HardBounce: 0.05, PolicyRejection: 0.05, Deferral: 0.50, Complaint: 0.003},
		Quarantine:         Limits{HardBounce: 0.10, PolicyRejection: 0.10, Complaint: 0.005},
		Suspend:            Limits{HardBounce: 0.20, Complaint: 0.01},
		PromoteVolume:      100,
		PromoteAfter:       24 * time.Hour,
		TrustVolume:        1000,
		TrustAfter:         7 * 24 * time.Hour,
		SpikeFactor:        10,
		SpikeFloor:         20,
		SpikeMinVolume:     100,
	}
}

// withDefaults returns t, or the defaults when t is zero; scalar fields left
// zero take their default.
func (t Thresholds) withDefaults() Thresholds {
	d := DefaultThresholds()
	if t == (Thresholds{}) {
		return d
	}
	setDefault(&t.MinVolume, d.MinVolume)
	setDefault(&t.ComplaintMinVolume, d.ComplaintMinVolume)
	setDefault(&t.PromoteVolume, d.PromoteVolume)
	setDefault(&t.PromoteAfter, d.PromoteAfter)
	setDefault(&t.TrustVolume, d.TrustVolume)
	setDefault(&t.TrustAfter, d.TrustAfter)
	setDefault(&t.SpikeFactor, d.SpikeFactor)
	setDefault(&t.SpikeFloor, d.SpikeFloor)
	setDefault(&t.SpikeMinVolume, d.SpikeMinVolume)
	return t
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// over reports the first rate of c over l, as a reason with its figures,
// or "" when none is (or the window has too little volume to tell).
func over(window string, c Counts, l Limits, t Thresholds, tier string) string {
	if c.Sent() >= t.MinVolume {
		if l.HardBounce > 0 && c.HardBounceRate() > l.HardBounce {
			return fmt.Sprintf("%s hard bounce rate %s (%d of %d sent) over the %s limit %s", window, pct(c.HardBounceRate()), c.HardBounce, c.Sent(), tier, pct(l.HardBounce))
		}
		if l.PolicyRejection > 0 && c.PolicyRate() > l.PolicyRejection {
			return fmt.Sprintf("%s policy rejection rate %s (%d of %d sent) over the %s limit %s", window, pct(c.PolicyRate()), c.PolicyRejection, c.Sent(), tier, pct(l.PolicyRejection))
		}
		if l.Deferral > 0 && c.DeferralRate() > l.Deferral {
			return fmt.Sprintf("%s deferral rate %s (%d of %d attempts) over the %s limit %s", window, pct(c.DeferralRate()), c.Deferral, c.Attempts(), tier, pct(l.Deferral))
		}
	}
	if c.Delivered >= t.ComplaintMinVolume && l.Complaint > 0 && c.ComplaintRate() > l.Complaint {
		return fmt.Sprintf("%s complaint rate %s (%d of %d delivered) over the %s limit %s", window, pct(c.ComplaintRate()), c.Complaint, c.Delivered, tier, pct(l.Complaint))
	}
	return ""
}

func pct(r float64) string { return fmt.Sprintf("%.2f%%", r*100) }

// nextTier decides a tenant's tier from its current tier and windows. It
// returns the tier and, when that differs from cur, the reason with the
// figures that decided it. Demotion reads the hour and the day and may skip
// tiers; promotion is one step and needs a clean record (see Thresholds).
func nextTier(cur Tier, w Windows, t Thresholds) (Tier, string) {
	if cur == Suspended {
		return Suspended, ""
	}
	if _, ok := tierNames[cur]; !ok {
		cur = Standard
	}
	// Demotion: the worst tier whose limits the hour or the day exceeds.
	for _, d := range []struct {
		tier Tier
		l    Limits
	}{{Suspended, t.Suspend}, {Quarantine, t.Quarantine}, {Probation, t.Probation}, {Standard, t.Standard}} {
		if d.tier <= cur {
			break
		}
		for _, win := range []struct {
			name string
			c    Counts
		}{{"1h", w.Hour}, {"24h", w.Day}} {
			if why := over(win.name, win.c, d.l, t, d.tier.String()); why != "" {
				return d.tier, why
			}
		}
	}
	// Promotion, one step.
	switch cur {
	case Quarantine, Probation:
		if w.InTier < t.PromoteAfter || w.Day.Sent() < t.PromoteVolume {
			return cur, ""
		}
		if over("1h", w.Hour, t.Clean, t, "clean") != "" || over("24h", w.Day, t.Clean, t, "clean") != "" {
			return cur, ""
		}
		return cur - 1, fmt.Sprintf("clean for %s in %s: 24h sent %d, hard bounce %s, policy rejection %s, complaint %s",
			w.InTier.Round(time.Minute), cur, w.Day.Sent(), pct(w.Day.HardBounceRate()), pct(w.Day.PolicyRate()), pct(w.Day.ComplaintRate()))
	case Standard:
		if w.InTier < t.TrustAfter || w.Week.Sent() < t.TrustVolume {
			return cur, ""
		}
		if over("1h", w.Hour, t.Clean, t, "clean") != "" || over("24h", w.Day, t.Clean, t, "clean") != "" || over("7d", w.Week, t.Clean, t, "clean") != "" {
			return cur, ""
		}
		return Trusted, fmt.Sprintf("clean for %s in standard: 7d sent %d, hard bounce %s, policy rejection %s, complaint %s",
			w.InTier.Round(time.Minute), w.Week.Sent(), pct(w.Week.HardBounceRate()), pct(w.Week.PolicyRate()), pct(w.Week.ComplaintRate()))
	}
	return cur, ""
}

// spike reports whether a tenant's last hour is a spike: attempts at least
// factor times its baseline (its average hourly attempts before this hour,
// but no less than the floor) and at least the minimum volume. The reason
// gives the figures.
func spike(hourAttempts int, baselinePerHour float64, t Thresholds) (bool, string) {
	base := max(baselinePerHour, t.SpikeFloor)
	limit := t.SpikeFactor * base
	if hourAttempts < t.SpikeMinVolume || float64(hourAttempts) < limit {
		return false, ""
	}
	return true, fmt.Sprintf("%d attempts in the last hour, %.1f× the baseline of %.1f/h (hold at %.0f× = %.0f)",
		hourAttempts, float64(hourAttempts)/base, base, t.SpikeFactor, limit)
}

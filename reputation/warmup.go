package reputation

import (
	"math"
	"time"
)

// Warmup is a new source IP's schedule: on day 1 (the day of Start, UTC) it
// may send Day1 messages to each site, each following day Factor times the
// day before, until after Days days it is established and uncapped. The
// zero Warmup is an established source.
type Warmup struct {
	Start  time.Time `json:"start"`
	Day1   int       `json:"day1"`   // default 50
	Factor float64   `json:"factor"` // default 2
	Days   int       `json:"days"`   // default 14
}

// Warm-up defaults.
const (
	DefaultWarmupDay1   = 50
	DefaultWarmupFactor = 2.0
	DefaultWarmupDays   = 14
)

// day returns the day number (0 before Start, 1 on Start's day) of t.
func warmupDay(start, t time.Time) int {
	s := start.UTC().Truncate(24 * time.Hour)
	if t.Before(s) {
		return 0
	}
	return int(t.Sub(s)/(24*time.Hour)) + 1
}

// Cap returns the number of messages the source may send to one site on
// the day of now, and whether it is still warming up. Before Start the cap
// is zero: the source is not in service yet.
func (w Warmup) Cap(now time.Time) (limit int, warming bool) {
	if w.Start.IsZero() {
		return 0, false
	}
	day1, factor, days := w.Day1, w.Factor, w.Days
	setDefault(&day1, DefaultWarmupDay1)
	setDefault(&factor, DefaultWarmupFactor)
	setDefault(&days, DefaultWarmupDays)
	d := warmupDay(w.Start, now)
	if d == 0 {
		return 0, true
	}
	if d > days {
		return 0, false
	}
	c := float64(day1) * math.Pow(factor, float64(d-1))
	if c >= math.MaxInt32 {
		return 0, false
	}
	return int(c), true
}

// dayNumber is the UTC day of t since the epoch: warm-up counts reset when
// it changes.
func dayNumber(t time.Time) int64 { return t.Unix() / 86400 }

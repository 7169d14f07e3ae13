package reputation

import (
	"math"
	"time"
)

// Counts are the outcomes counted in one window.
type Counts struct {
	Delivered       int `json:"delivered"`
	HardBounce      int `json:"hard_bounce"`
	PolicyRejection int `json:"policy_rejection"`
	Deferral        int `json:"deferral"`
	Complaint       int `json:"complaint"`
}

// Sent is the number of final outcomes: delivered, bounced or rejected.
// Deferrals are retried and so not counted; complaints follow a delivery.
func (c Counts) Sent() int { return c.Delivered + c.HardBounce + c.PolicyRejection }

// Attempts is every delivery attempt, deferrals included: the sending rate
// that spike detection watches.
func (c Counts) Attempts() int { return c.Sent() + c.Deferral }

// HardBounceRate is hard bounces per message sent.
func (c Counts) HardBounceRate() float64 { return ratio(c.HardBounce, c.Sent()) }

// PolicyRate is policy rejections per message sent.
func (c Counts) PolicyRate() float64 { return ratio(c.PolicyRejection, c.Sent()) }

// DeferralRate is deferrals per attempt.
func (c Counts) DeferralRate() float64 { return ratio(c.Deferral, c.Attempts()) }

// ComplaintRate is complaints per message delivered.
func (c Counts) ComplaintRate() float64 { return ratio(c.Complaint, c.Delivered) }

func ratio(n, d int) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func (c *Counts) add(o Outcome, n int) {
	switch o {
	case Delivered:
		c.Delivered += n
	case HardBounce:
		c.HardBounce += n
	case PolicyRejection:
		c.PolicyRejection += n
	case Deferral:
		c.Deferral += n
	case Complaint:
		c.Complaint += n
	}
}

// Windows are a tenant's counts over the sliding windows the tier function
// reads, and how long the tenant has been in its current tier.
type Windows struct {
	Hour   Counts        `json:"1h"`
	Day    Counts        `json:"24h"`
	Week   Counts        `json:"7d"`
	InTier time.Duration `json:"-"`
}

// Bucket widths and ring lengths. The hour is kept in 5-minute buckets; the
// day and the week in hourly buckets. A source's per-site rings keep a day.
const (
	fineWidth   = 5 * 60 // seconds
	fineSlots   = 12     // one hour
	coarseWidth = 3600
	daySlots    = 24
	weekSlots   = 168
)

// bucket is one time slot's counts; slot is the Unix time divided by the
// ring's width, so a bucket left from an earlier turn of the ring is
// recognised and reset.
type bucket struct {
	slot int64
	n    [numOutcomes]uint32
}

// ring is a fixed number of time buckets: memory does not grow with
// volume, only with the number of rings.
type ring struct {
	width int64 // seconds
	b     []bucket
}

func newRing(width int64, slots int) ring { return ring{width: width, b: make([]bucket, slots)} }

func (r *ring) add(unix int64, o Outcome, n int) {
	slot := unix / r.width
	i := int(slot % int64(len(r.b)))
	if i < 0 {
		i += len(r.b)
	}
	bk := &r.b[i]
	if bk.slot != slot {
		*bk = bucket{slot: slot}
	}
	v := uint64(bk.n[o]) + uint64(n)
	if v > math.MaxUint32 {
		v = math.MaxUint32
	}
	bk.n[o] = uint32(v)
}

// sum adds the buckets of the last slots slots up to unix (the current one
// included) that began at or after since (Unix seconds).
func (r *ring) sum(unix int64, slots int, since int64) Counts {
	cur := unix / r.width
	var c Counts
	for i := range r.b {
		bk := &r.b[i]
		if bk.slot > cur || bk.slot <= cur-int64(slots) || bk.slot*r.width < since {
			continue
		}
		for o := range numOutcomes {
			c.add(o, int(bk.n[o]))
		}
	}
	return c
}

// counters are the rings of one tenant or one (source, site).
type counters struct {
	fine   ring // the hour
	coarse ring // the day, or the week
}

func newCounters(coarseSlots int) *counters {
	return &counters{fine: newRing(fineWidth, fineSlots), coarse: newRing(coarseWidth, coarseSlots)}
}

func (c *counters) add(unix int64, o Outcome, n int) {
	c.fine.add(unix, o, n)
	c.coarse.add(unix, o, n)
}

// windows sums the rings, counting only buckets that began at or after
// since (a tenant's scores restart when an operator releases it).
func (c *counters) windows(now time.Time, since time.Time) Windows {
	unix, s := now.Unix(), int64(math.MinInt64)
	if !since.IsZero() {
		s = since.Unix()
	}
	w := Windows{Hour: c.fine.sum(unix, fineSlots, s)}
	// the day and the week in one pass over the hourly buckets
	cur := unix / c.coarse.width
	for i := range c.coarse.b {
		bk := &c.coarse.b[i]
		if bk.slot > cur || bk.slot <= cur-weekSlots || bk.slot*c.coarse.width < s {
			continue
		}
		inDay := bk.slot > cur-daySlots
		for o := range numOutcomes {
			if n := int(bk.n[o]); n != 0 {
				w.Week.add(o, n)
				if inDay {
					w.Day.add(o, n)
				}
			}
		}
	}
	if len(c.coarse.b) < weekSlots {
		w.Week = Counts{} // a day ring has no week
	}
	return w
}

// persistedBucket is a non-empty bucket on disk: the slot and the counts in
// Outcome order.
type persistedBucket [1 + numOutcomes]int64

func (r *ring) export() []persistedBucket {
	var out []persistedBucket
	for _, bk := range r.b {
		if bk.n == ([numOutcomes]uint32{}) {
			continue
		}
		var p persistedBucket
		p[0] = bk.slot
		for o := range numOutcomes {
			p[1+o] = int64(bk.n[o])
		}
		out = append(out, p)
	}
	return out
}

func (r *ring) load(ps []persistedBucket) {
	for _, p := range ps {
		slot := p[0]
		i := int(slot % int64(len(r.b)))
		if i < 0 {
			i += len(r.b)
		}
		if r.b[i].slot > slot {
			continue // a newer bucket holds the place
		}
		bk := bucket{slot: slot}
		for o := range numOutcomes {
			bk.n[o] = uint32(min(max(p[1+o], 0), math.MaxUint32))
		}
		r.b[i] = bk
	}
}

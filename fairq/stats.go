package fairq

import (
	"sort"
	"time"
)

// TenantStats is one tenant's queue depth. A held tenant's queued deliveries
// count under Held only.
type TenantStats struct {
	Tenant   string
	Weight   int
	Pool     string
	Ready    int // due, waiting for a dispatch slot
	Deferred int // waiting for a retry
	Held     int
	InFlight int
	// Oldest is the creation time, to the minute, of the tenant's oldest
	// queued message; zero when it has none.
	Oldest time.Time
}

// LaneStats is the state of one (pool, site) lane.
type LaneStats struct {
	Pool, Site   string
	InFlight     int
	Limit        int
	Parked       int // destination queues waiting for the lane
	Failures     int // consecutive
	BackoffUntil time.Time
}

// Stats is a snapshot of the queue, cheap enough for every metrics scrape:
// its cost grows with tenants and lanes, never with queued deliveries.
type Stats struct {
	Tenants     []TenantStats // sorted by tenant
	Lanes       []LaneStats   // sorted by pool, site
	Quarantined int64         // entries moved aside as unreadable
}

// Stats returns the current depths.
func (q *Queue) Stats() Stats {
	now := q.clock.Now().UnixNano()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.s.promote(now)
	st := Stats{Quarantined: q.quarantined.Load()}
	for _, t := range q.s.tenants {
		ts := TenantStats{Tenant: t.name, Weight: t.weight, Pool: t.pool, InFlight: t.inflight}
		if t.hold.held() {
			ts.Held = t.ready + t.deferred
		} else {
			ts.Ready, ts.Deferred = t.ready, t.deferred
		}
		if m, ok := t.ages.oldestMinute(); ok {
			ts.Oldest = time.UnixMicro(m * 60e6)
		}
		st.Tenants = append(st.Tenants, ts)
	}
	for _, l := range q.s.lanes {
		ls := LaneStats{Pool: l.key.pool, Site: l.key.site, InFlight: l.inflight, Limit: l.limit,
			Parked: l.nparked, Failures: l.failures}
		if l.backoffUntil > now {
			ls.BackoffUntil = time.Unix(0, l.backoffUntil)
		}
		st.Lanes = append(st.Lanes, ls)
	}
	sort.Slice(st.Tenants, func(i, j int) bool { return st.Tenants[i].Tenant < st.Tenants[j].Tenant })
	sort.Slice(st.Lanes, func(i, j int) bool {
		if st.Lanes[i].Pool != st.Lanes[j].Pool {
			return st.Lanes[i].Pool < st.Lanes[j].Pool
		}
		return st.Lanes[i].Site < st.Lanes[j].Site
	})
	return st
}

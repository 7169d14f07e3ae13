package reputation

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrUnknownTenant: Report was asked about a tenant neither the scores nor
// the directory know.
var ErrUnknownTenant = errors.New("unknown tenant")

// Report is what `fairway reputation show` prints (or encodes with --json).
type Report struct {
	Tenants []TenantReport `json:"tenants"`
	Sources []SourceReport `json:"sources,omitempty"`
}

// TenantReport is one tenant's standing.
type TenantReport struct {
	Tenant    string         `json:"tenant"`
	Tier      Tier           `json:"tier"`
	TierSince time.Time      `json:"tier_since,omitzero"`
	Pool      string         `json:"pool"`
	FixedPool bool           `json:"fixed_pool"` // the pool is the tenant's policy, not its tier's
	Windows   []WindowReport `json:"windows"`
	Changes   []TierChange   `json:"changes"` // newest first
	Hold      *Hold          `json:"hold,omitempty"`
}

// WindowReport is one window's counts and rates.
type WindowReport struct {
	Window string `json:"window"` // 1h, 24h, 7d
	Counts
	Sent           int     `json:"sent"`
	HardBounceRate float64 `json:"hard_bounce_rate"`
	PolicyRate     float64 `json:"policy_rejection_rate"`
	DeferralRate   float64 `json:"deferral_rate"`
	ComplaintRate  float64 `json:"complaint_rate"`
}

// SourceReport is one source address's state.
type SourceReport struct {
	IP       netip.Addr     `json:"ip"`
	EHLO     string         `json:"ehlo"`
	Pools    []string       `json:"pools"`
	Listings []Listing      `json:"listings,omitempty"` // every zone checked
	Warmup   *WarmupState   `json:"warmup,omitempty"`
	Backoffs []SiteBackoff  `json:"backoffs,omitempty"` // sites it is backing off from or slowed for
	Windows  []WindowReport `json:"windows"`
}

// WarmupState is a warming source's day and cap.
type WarmupState struct {
	Day        int `json:"day"`
	CapPerSite int `json:"cap_per_site"`
}

// SiteBackoff is an (IP, site) pair slowed by receiver feedback.
type SiteBackoff struct {
	Site          string    `json:"site"`
	Feedback      string    `json:"feedback"`
	Until         time.Time `json:"until"`
	RatePerMinute float64   `json:"rate_per_minute"` // 0: no limit
	Strikes       int       `json:"strikes"`
	Reply         string    `json:"reply"`
}

func windowReports(w Windows) []WindowReport {
	mk := func(name string, c Counts) WindowReport {
		return WindowReport{Window: name, Counts: c, Sent: c.Sent(), HardBounceRate: c.HardBounceRate(), PolicyRate: c.PolicyRate(),
			DeferralRate: c.DeferralRate(), ComplaintRate: c.ComplaintRate()}
	}
	return []WindowReport{mk("1h", w.Hour), mk("24h", w.Day), mk("7d", w.Week)}
}

// Report returns one tenant's standing, or every tenant's ("") with the
// source addresses' listings, warm-up and backoffs.
func (s *Service) Report(name string) (Report, error) {
	now := s.clock.Now()
	var r Report
	s.mu.Lock()
	if name != "" {
		ts := s.tenants[name]
		if ts == nil {
			s.mu.Unlock()
			if d := s.opts.Directory; d != nil {
				if _, ok := d.TenantPolicy(name); ok {
					tr := TenantReport{Tenant: name, Tier: Standard, Windows: windowReports(Windows{}), Changes: []TierChange{}}
					tr.Pool, tr.FixedPool = s.poolOf(name, Standard)
					return Report{Tenants: []TenantReport{tr}}, nil
				}
			}
			return r, fmt.Errorf("reputation: %w %q", ErrUnknownTenant, name)
		}
		r.Tenants = append(r.Tenants, s.tenantReport(ts, now))
	} else {
		for _, ts := range s.tenants {
			r.Tenants = append(r.Tenants, s.tenantReport(ts, now))
		}
		r.Sources = s.sourceReports(now)
	}
	s.mu.Unlock()
	for i := range r.Tenants {
		r.Tenants[i].Pool, r.Tenants[i].FixedPool = s.poolOf(r.Tenants[i].Tenant, r.Tenants[i].Tier)
	}
	slices.SortFunc(r.Tenants, func(a, b TenantReport) int { return strings.Compare(a.Tenant, b.Tenant) })
	return r, nil
}

// poolOf is TenantPool for a tier already read.
func (s *Service) poolOf(name string, t Tier) (string, bool) {
	if d := s.opts.Directory; d != nil {
		if p, ok := d.TenantPolicy(name); ok && p.Pool != "" {
			return p.Pool, true
		}
	}
	return s.opts.TierPools[t], false
}

// tenantReport is called with s.mu held.
func (s *Service) tenantReport(ts *tenantState, now time.Time) TenantReport {
	tr := TenantReport{Tenant: ts.name, Tier: ts.tier, TierSince: ts.tierSince, Windows: windowReports(ts.c.windows(now, time.Time{})),
		Changes: make([]TierChange, 0, len(ts.history))}
	for i := len(ts.history) - 1; i >= 0; i-- {
		tr.Changes = append(tr.Changes, ts.history[i])
	}
	if ts.hold != nil {
		h := *ts.hold
		tr.Hold = &h
	}
	return tr
}

// sourceReports is called with s.mu held.
func (s *Service) sourceReports(now time.Time) []SourceReport {
	byIP := map[netip.Addr]*SourceReport{}
	var order []netip.Addr
	for pool, srcs := range s.opts.Pools {
		for _, src := range srcs {
			sr := byIP[src.IP]
			if sr == nil {
				sr = &SourceReport{IP: src.IP, EHLO: src.EHLO, Windows: windowReports(Windows{})}
				if c, warming := src.Warmup.Cap(now); warming {
					sr.Warmup = &WarmupState{Day: warmupDay(src.Warmup.Start, now), CapPerSite: c}
				}
				byIP[src.IP] = sr
				order = append(order, src.IP)
			}
			sr.Pools = append(sr.Pools, pool)
		}
	}
	slices.SortFunc(order, func(a, b netip.Addr) int { return a.Compare(b) })
	out := make([]SourceReport, 0, len(order))
	for _, ip := range order {
		sr := byIP[ip]
		slices.Sort(sr.Pools)
		if st := s.sources[ip]; st != nil {
			sr.Windows = windowReports(st.c.windows(now, time.Time{}))
			for _, l := range st.listings {
				sr.Listings = append(sr.Listings, *l)
			}
			slices.SortFunc(sr.Listings, func(a, b Listing) int { return strings.Compare(a.Zone, b.Zone) })
			for site, ss := range st.sites {
				if ss.limit > 0 || now.Before(ss.until) {
					sr.Backoffs = append(sr.Backoffs, SiteBackoff{Site: site, Feedback: ss.feedback.String(), Until: ss.until,
						RatePerMinute: ss.limit, Strikes: ss.strikes, Reply: ss.line})
				}
			}
			slices.SortFunc(sr.Backoffs, func(a, b SiteBackoff) int { return strings.Compare(a.Site, b.Site) })
		}
		out = append(out, *sr)
	}
	return out
}

// WriteText writes the report for a terminal.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for i, t := range r.Tenants {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		pool := t.Pool
		if pool == "" {
			pool = "(default)"
		}
		if t.FixedPool {
			pool += " (fixed)"
		}
		fmt.Fprintf(tw, "tenant %s  tier %s  pool %s\n", t.Tenant, t.Tier, pool)
		if t.Hold != nil {
			fmt.Fprintf(tw, "  HELD since %s (%s): %s\n", t.Hold.Since.UTC().Format(time.RFC3339), t.Hold.Kind, t.Hold.Reason)
		}
		fmt.Fprintln(tw, "  window\tsent\tdelivered\thard bounce\tpolicy\tdeferral\tcomplaint")
		for _, wr := range t.Windows {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d (%s)\t%d (%s)\t%d (%s)\t%d (%s)\n", wr.Window, wr.Sent, wr.Delivered,
				wr.HardBounce, pct(wr.HardBounceRate), wr.PolicyRejection, pct(wr.PolicyRate),
				wr.Deferral, pct(wr.DeferralRate), wr.Complaint, pct(wr.ComplaintRate))
		}
		for j, c := range t.Changes {
			if j == 0 {
				fmt.Fprintln(tw, "  tier changes:")
			}
			fmt.Fprintf(tw, "    %s  %s -> %s: %s\n", c.At.UTC().Format(time.RFC3339), c.From, c.To, c.Reason)
		}
	}
	for i, s := range r.Sources {
		if i == 0 {
			fmt.Fprintln(tw, "\nsources:")
		}
		state := "in rotation"
		for _, l := range s.Listings {
			if l.Listed {
				state = "OUT OF ROTATION"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\tpools %s\t%s\n", s.IP, s.EHLO, strings.Join(s.Pools, ","), state)
		for _, l := range s.Listings {
			switch {
			case l.Listed:
				fmt.Fprintf(tw, "    listed on %s since %s: %s %s\n", l.Zone, l.Since.UTC().Format(time.RFC3339), l.Answer, l.Reason)
			case l.Error != "":
				fmt.Fprintf(tw, "    %s: lookup failed: %s\n", l.Zone, l.Error)
			}
		}
		if s.Warmup != nil {
			fmt.Fprintf(tw, "    warming up: day %d, %d per site today\n", s.Warmup.Day, s.Warmup.CapPerSite)
		}
		for _, b := range s.Backoffs {
			rate := "unlimited"
			if b.RatePerMinute > 0 {
				rate = fmt.Sprintf("%.2f/min", b.RatePerMinute)
			}
			fmt.Fprintf(tw, "    %s %s: until %s, rate %s: %s\n", b.Site, b.Feedback, b.Until.UTC().Format(time.RFC3339), rate, b.Reply)
		}
	}
	return tw.Flush()
}

package dmarcreport

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"fairway/tenant"
)

// Summary is the roll-up of a domain's reports over a window; see the
// package doc for what each signal means.
type Summary struct {
	Domain string    `json:"domain"`
	Tenant string    `json:"tenant"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Reports counts the reports in the window; Reporters names their
	// senders (org_name).
	Reports   int      `json:"reports"`
	Reporters []string `json:"reporters"`
	Totals    Counts   `json:"totals"`
	Days      []DayRow `json:"days"`
	// Sources are the source IPs by volume, at most Limits.MaxSources;
	// SourcesOmitted counts the rest.
	Sources        []SourceRow `json:"sources"`
	SourcesOmitted int         `json:"sources_omitted"`
	Signals        Signals     `json:"signals"`
}

// Counts are message volumes and what passed. SPF and DKIM pass are the
// reporter's policy evaluation, i.e. aligned passes; DMARC passes when
// either does.
type Counts struct {
	Messages      int64        `json:"messages"`
	SPFPass       int64        `json:"spf_pass"`
	DKIMPass      int64        `json:"dkim_pass"`
	DMARCPass     int64        `json:"dmarc_pass"`
	SPFPassRate   float64      `json:"spf_pass_rate"` // 0 to 1; 0 when there are no messages
	DKIMPassRate  float64      `json:"dkim_pass_rate"`
	DMARCPassRate float64      `json:"dmarc_pass_rate"`
	Disposition   Dispositions `json:"disposition"`
}

// Dispositions count messages by what the receiver did with them.
type Dispositions struct {
	None       int64 `json:"none"`
	Quarantine int64 `json:"quarantine"`
	Reject     int64 `json:"reject"`
}

func (c *Counts) add(r *Record) {
	c.Messages += r.Count
	if r.SPF == "pass" {
		c.SPFPass += r.Count
	}
	if r.DKIM == "pass" {
		c.DKIMPass += r.Count
	}
	if r.DMARCPass() {
		c.DMARCPass += r.Count
	}
	switch r.Disposition {
	case "quarantine":
		c.Disposition.Quarantine += r.Count
	case "reject":
		c.Disposition.Reject += r.Count
	default:
		c.Disposition.None += r.Count
	}
}

func (c *Counts) rates() {
	if c.Messages == 0 {
		return
	}
	m := float64(c.Messages)
	c.SPFPassRate, c.DKIMPassRate, c.DMARCPassRate = float64(c.SPFPass)/m, float64(c.DKIMPass)/m, float64(c.DMARCPass)/m
}

// DayRow is one UTC day (YYYY-MM-DD) of the window.
type DayRow struct {
	Day string `json:"day"`
	Counts
}

// SourceRow is one source IP over the window.
type SourceRow struct {
	IP netip.Addr `json:"ip"`
	// Known: among the operator's own sending addresses.
	Known bool `json:"known"`
	Counts
	HeaderFrom []string `json:"header_from"`
	Reporters  []string `json:"reporters"`
}

// Signals are what an operator acts on.
type Signals struct {
	UnknownSources      []UnknownSource `json:"unknown_sources"`
	FailingKnownSources []FailingSource `json:"failing_known_sources"`
	NewSources          []NewSource     `json:"new_sources"`
	// NewSourcesBaseline: some report began in the week before last, so
	// NewSources compares with something.
	NewSourcesBaseline bool `json:"new_sources_baseline"`
}

// UnknownSource is a source sending as the domain that is not ours and
// never passed DMARC in the window: likely spoofing.
type UnknownSource struct {
	IP           netip.Addr   `json:"ip"`
	Messages     int64        `json:"messages"` // all failing DMARC
	Disposition  Dispositions `json:"disposition"`
	HeaderFrom   []string     `json:"header_from"`
	EnvelopeFrom []string     `json:"envelope_from"`
	Reporters    []string     `json:"reporters"`
}

// FailingSource is a legitimate source (known, or passing DMARC at other
// times) with messages failing DMARC, and why they failed.
type FailingSource struct {
	IP      netip.Addr `json:"ip"`
	Known   bool       `json:"known"`
	Failing int64      `json:"failing"`
	Passing int64      `json:"passing"`
	Causes  []Cause    `json:"causes"`
}

// Cause is one reason a source's messages failed DMARC, from the records'
// auth_results.
type Cause struct {
	Mechanism string `json:"mechanism"` // "spf" or "dkim"
	// Problem: "unaligned" (passed for another domain), "fail" (the check
	// itself did not pass; Result says how), "missing" (no result at all),
	// or "reported_fail" (passed and aligned by our reading, yet the
	// reporter's evaluation failed it).
	Problem  string `json:"problem"`
	Domain   string `json:"domain,omitempty"` // the SPF envelope domain or DKIM d=
	Selector string `json:"selector,omitempty"`
	Result   string `json:"result,omitempty"`
	Messages int64  `json:"messages"`
	Text     string `json:"text"` // the cause in plain words
}

// NewSource is a source seen in the last 7 days and not in the 7 before.
type NewSource struct {
	IP        netip.Addr `json:"ip"`
	Known     bool       `json:"known"`
	Messages  int64      `json:"messages"` // in the last 7 days
	DMARCPass int64      `json:"dmarc_pass"`
	FirstSeen time.Time  `json:"first_seen"` // begin of the first report naming it
}

// newSourceWeek is the comparison period of new sources.
const newSourceWeek = 7 * 24 * time.Hour

// Since reads a summary's start: a duration back from now ("7d", "24h",
// "30d", "90m") or a time (RFC 3339, or a date YYYY-MM-DD in UTC).
func (s *Store) Since(spec string) (time.Time, error) { return ParseSince(spec, s.clock.Now()) }

// ParseSince is Since at now.
func ParseSince(spec string, now time.Time) (time.Time, error) {
	spec = strings.TrimSpace(spec)
	if t, err := time.Parse(time.RFC3339, spec); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, spec); err == nil {
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(spec, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100_000 {
			return time.Time{}, fmt.Errorf("%w: since %q: want a number of days such as 7d", tenant.ErrInvalid, spec)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(spec); err != nil || d <= 0 {
			return time.Time{}, fmt.Errorf("%w: since %q: want a duration (7d, 24h) or a time (RFC 3339)", tenant.ErrInvalid, spec)
		}
	}
	return now.Add(-d), nil
}

// Summary rolls up domain's reports beginning in [since, now]; since is
// clamped to the retention period. A domain no tenant hosts is
// ErrNotHosted.
func (s *Store) Summary(domain string, since time.Time) (Summary, error) {
	d, err := tenant.NormalizeDomain(domain)
	if err != nil {
		return Summary{}, err
	}
	owner, ok := s.dir.DomainTenant(d)
	if !ok {
		return Summary{}, fmt.Errorf("%w: %s", ErrNotHosted, d)
	}
	now := s.clock.Now().UTC()
	if since.After(now) {
		return Summary{}, fmt.Errorf("%w: since %s is in the future", tenant.ErrInvalid, since.UTC().Format(time.RFC3339))
	}
	since = maxTime(since, now.Add(-s.lim.Retention)).UTC()
	var reports []*Report
	from := minTime(since, now.Add(-2*newSourceWeek))
	if err := s.reports(d, from, now, func(r *Report) { reports = append(reports, r) }); err != nil {
		return Summary{}, err
	}
	sum := Summarize(reports, SummaryParams{
		Domain: d, Tenant: owner, Since: since, Now: now,
		Known: s.known(d), MaxSources: s.lim.MaxSources,
	})
	return sum, nil
}

// ErrNotHosted is Summary's answer for a domain no tenant hosts; it is a
// tenant.ErrNotFound.
var ErrNotHosted = fmt.Errorf("domain not hosted here: %w", tenant.ErrNotFound)

// SummaryParams are Summarize's inputs besides the reports.
type SummaryParams struct {
	Domain, Tenant string
	Since, Now     time.Time
	Known          []netip.Prefix
	MaxSources     int
}

// source accumulates one IP over the window.
type source struct {
	row          SourceRow
	failing      Counts
	headerFrom   set
	envelopeFrom set
	reporters    set
	causes       map[string]*Cause
}

// set is a small bounded set of names, listed sorted.
type set map[string]struct{}

const maxSetNames = 20

func (s set) add(v string) {
	if v != "" && len(s) < maxSetNames {
		s[v] = struct{}{}
	}
}

func (s set) list() []string {
	out := make([]string, 0, len(s))
	for v := range s {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// Summarize computes a summary from reports (those beginning from
// min(Since, Now-14d) on; the older ones only feed the new-source signal).
// It is pure: Store.Summary feeds it from storage.
func Summarize(reports []*Report, p SummaryParams) Summary {
	if p.MaxSources <= 0 {
		p.MaxSources = DefaultMaxSources
	}
	sum := Summary{Domain: p.Domain, Tenant: p.Tenant, Since: p.Since, Until: p.Now,
		Reporters: []string{}, Days: []DayRow{}, Sources: []SourceRow{}}
	sum.Signals = Signals{UnknownSources: []UnknownSource{}, FailingKnownSources: []FailingSource{}, NewSources: []NewSource{}}
	known := func(ip netip.Addr) bool {
		for _, pfx := range p.Known {
			if pfx.Contains(ip) {
				return true
			}
		}
		return false
	}
	reporters := set{}
	days := map[string]*DayRow{}
	sources := map[netip.Addr]*source{}
	lastWeek, weekBefore := p.Now.Add(-newSourceWeek), p.Now.Add(-2*newSourceWeek)
	type recent struct {
		messages, pass int64
		first          time.Time
	}
	thisWeek := map[netip.Addr]*recent{}
	prevWeek := map[netip.Addr]bool{}

	for _, rep := range reports {
		switch {
		case rep.Begin.After(lastWeek) && !rep.Begin.After(p.Now):
			for i := range rep.Records {
				r := &rep.Records[i]
				w := thisWeek[r.SourceIP]
				if w == nil {
					w = &recent{first: rep.Begin}
					thisWeek[r.SourceIP] = w
				}
				w.messages += r.Count
				if r.DMARCPass() {
					w.pass += r.Count
				}
				if rep.Begin.Before(w.first) {
					w.first = rep.Begin
				}
			}
		case rep.Begin.After(weekBefore) && !rep.Begin.After(lastWeek):
			sum.Signals.NewSourcesBaseline = true
			for i := range rep.Records {
				prevWeek[rep.Records[i].SourceIP] = true
			}
		}
		if rep.Begin.Before(p.Since) || rep.Begin.After(p.Now) {
			continue
		}
		sum.Reports++
		reporters.add(rep.Org)
		dayName := rep.Begin.UTC().Format(time.DateOnly)
		day := days[dayName]
		if day == nil {
			day = &DayRow{Day: dayName}
			days[dayName] = day
		}
		for i := range rep.Records {
			r := &rep.Records[i]
			sum.Totals.add(r)
			day.add(r)
			src := sources[r.SourceIP]
			if src == nil {
				src = &source{row: SourceRow{IP: r.SourceIP, Known: known(r.SourceIP)},
					headerFrom: set{}, envelopeFrom: set{}, reporters: set{}, causes: map[string]*Cause{}}
				sources[r.SourceIP] = src
			}
			src.row.add(r)
			src.headerFrom.add(r.HeaderFrom)
			src.reporters.add(rep.Org)
			if !r.DMARCPass() && r.Count > 0 {
				src.failing.add(r)
				src.envelopeFrom.add(r.EnvelopeFrom)
				for _, c := range failureCauses(r, rep) {
					if have := src.causes[c.Text]; have != nil {
						have.Messages += c.Messages
					} else if len(src.causes) < maxSetNames {
						src.causes[c.Text] = &c
					}
				}
			}
		}
	}

	sum.Totals.rates()
	sum.Reporters = reporters.list()
	for _, d := range days {
		d.rates()
		sum.Days = append(sum.Days, *d)
	}
	slices.SortFunc(sum.Days, func(a, b DayRow) int { return strings.Compare(a.Day, b.Day) })

	all := make([]*source, 0, len(sources))
	for _, src := range sources {
		all = append(all, src)
	}
	slices.SortFunc(all, func(a, b *source) int {
		return cmp.Or(cmp.Compare(b.row.Messages, a.row.Messages), a.row.IP.Compare(b.row.IP))
	})
	for _, src := range all {
		src.row.rates()
		if len(sum.Sources) < p.MaxSources {
			row := src.row
			row.HeaderFrom, row.Reporters = src.headerFrom.list(), src.reporters.list()
			sum.Sources = append(sum.Sources, row)
		} else {
			sum.SourcesOmitted++
		}
		failing := src.failing.Messages
		if failing == 0 {
			continue
		}
		switch {
		case !src.row.Known && src.row.DMARCPass == 0:
			if len(sum.Signals.UnknownSources) < p.MaxSources {
				sum.Signals.UnknownSources = append(sum.Signals.UnknownSources, UnknownSource{
					IP: src.row.IP, Messages: failing, Disposition: src.failing.Disposition,
					HeaderFrom: src.headerFrom.list(), EnvelopeFrom: src.envelopeFrom.list(), Reporters: src.reporters.list()})
			}
		default: // known, or passing at other times
			if len(sum.Signals.FailingKnownSources) < p.MaxSources {
				causes := make([]Cause, 0, len(src.causes))
				for _, c := range src.causes {
					causes = append(causes, *c)
				}
				slices.SortFunc(causes, func(a, b Cause) int {
					return cmp.Or(cmp.Compare(b.Messages, a.Messages), strings.Compare(a.Text, b.Text))
				})
				sum.Signals.FailingKnownSources = append(sum.Signals.FailingKnownSources, FailingSource{
					IP: src.row.IP, Known: src.row.Known, Failing: failing, Passing: src.row.DMARCPass, Causes: causes})
			}
		}
	}

	if sum.Signals.NewSourcesBaseline {
		for ip, w := range thisWeek {
			if !prevWeek[ip] && w.messages > 0 {
				sum.Signals.NewSources = append(sum.Signals.NewSources, NewSource{
					IP: ip, Known: known(ip), Messages: w.messages, DMARCPass: w.pass, FirstSeen: w.first})
			}
		}
		slices.SortFunc(sum.Signals.NewSources, func(a, b NewSource) int {
			return cmp.Or(cmp.Compare(b.Messages, a.Messages), a.IP.Compare(b.IP))
		})
		if len(sum.Signals.NewSources) > p.MaxSources {
			sum.Signals.NewSources = sum.Signals.NewSources[:p.MaxSources]
		}
	}
	return sum
}

// failureCauses explains why a record failed DMARC, from its auth_results:
// one SPF cause and one DKIM cause per result (or for the lack of one).
func failureCauses(r *Record, rep *Report) []Cause {
	from := r.HeaderFrom
	if from == "" {
		from = rep.Domain
	}
	var out []Cause
	spf := r.SPFResults
	if len(spf) > 1 { // prefer the MAIL FROM check to the HELO one
		mfrom := slices.DeleteFunc(slices.Clone(spf), func(a SPFAuth) bool { return a.Scope == "helo" })
		if len(mfrom) > 0 {
			spf = mfrom
		}
	}
	if len(spf) == 0 {
		out = append(out, Cause{Mechanism: "spf", Problem: "missing", Messages: r.Count, Text: "no SPF result"})
	}
	for _, a := range spf {
		c := Cause{Mechanism: "spf", Domain: a.Domain, Result: a.Result, Messages: r.Count}
		switch {
		case a.Result != "pass":
			c.Problem = "fail"
			c.Text = fmt.Sprintf("SPF %s for %s", orNone(a.Result), orNone(a.Domain))
		case !aligned(a.Domain, from, rep.Policy.ASPF == "s"):
			c.Problem = "unaligned"
			c.Text = fmt.Sprintf("SPF pass for %s, not aligned with %s", orNone(a.Domain), from)
		default:
			c.Problem = "reported_fail"
			c.Text = fmt.Sprintf("SPF pass for %s, aligned, yet evaluated as fail by the reporter", a.Domain)
		}
		out = append(out, c)
	}
	if len(r.DKIMResults) == 0 {
		out = append(out, Cause{Mechanism: "dkim", Problem: "missing", Messages: r.Count, Text: "no DKIM signature"})
	}
	for _, a := range r.DKIMResults {
		c := Cause{Mechanism: "dkim", Domain: a.Domain, Selector: a.Selector, Result: a.Result, Messages: r.Count}
		sel := ""
		if a.Selector != "" {
			sel = " (s=" + a.Selector + ")"
		}
		switch {
		case a.Result != "pass":
			c.Problem = "fail"
			c.Text = fmt.Sprintf("DKIM %s for d=%s%s", orNone(a.Result), orNone(a.Domain), sel)
		case !aligned(a.Domain, from, rep.Policy.ADKIM == "s"):
			c.Problem = "unaligned"
			c.Text = fmt.Sprintf("DKIM pass for d=%s%s, not aligned with %s", orNone(a.Domain), sel, from)
		default:
			c.Problem = "reported_fail"
			c.Text = fmt.Sprintf("DKIM pass for d=%s%s, aligned, yet evaluated as fail by the reporter", a.Domain, sel)
		}
		out = append(out, c)
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// aligned reports whether an authenticated domain aligns with the
// header_from domain (RFC 7489 §3.1): equal under strict mode, the same
// organizational domain under relaxed.
func aligned(authDomain, fromDomain string, strict bool) bool {
	if authDomain == "" || fromDomain == "" {
		return false
	}
	if strings.EqualFold(authDomain, fromDomain) {
		return true
	}
	if strict {
		return false
	}
	return orgDomain(authDomain) == orgDomain(fromDomain)
}

// orgDomain is a domain's organizational domain: the public suffix plus
// one label; the domain itself when it has none.
func orgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if org, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return org
	}
	return d
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

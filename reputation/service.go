package reputation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"fairway/tenant"
)

// Clock is the service's source of time; tests move it by hand.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Resolver is the DNS the blocklist watch needs (tenant.DNS has it).
// Lookup errors matching tenant.ErrDNSNotFound mean "not listed".
type Resolver interface {
	LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Directory is what the service asks the tenant directory
// (tenant.Directory has it): a tenant's fixed pool, ARF attribution, and
// the suspension that holds a tenant (refusing its submissions with 451
// and holding its queue) until an operator resumes it.
type Directory interface {
	TenantPolicy(tenant string) (tenant.Policy, bool)
	DomainTenant(domain string) (string, bool)
	SuspendTenant(name string) error
}

// Source is one outbound address of a pool, with its EHLO name and, for a
// new address, its warm-up schedule.
type Source struct {
	IP     netip.Addr
	EHLO   string
	Warmup Warmup
}

// Change is a tenant's tier or hold changing, as passed to
// Options.OnChange: the queue should now schedule the tenant from Pool,
// and hold it while Held.
type Change struct {
	Tenant   string
	At       time.Time
	From, To Tier
	Held     bool
	Pool     string
	Reason   string
}

// Defaults for Options fields left zero.
const (
	DefaultMaxSitesPerSource = 512
	DefaultMaxTenants        = 20_000 // about 6 KB each
	DefaultMaxSources        = 256    // up to about 600 KB each with every site tracked
	DefaultHistory           = 20
	// acceptedRateFor is how long an operator's release of a spike hold
	// raises the tenant's baseline to the rate it was held at.
	acceptedRateFor = 7 * 24 * time.Hour
	dnsblWorkers    = 4
)

// Options configure a Service. Zero values take defaults.
type Options struct {
	Clock      Clock        // default: the wall clock
	Logger     *slog.Logger // default: slog.Default()
	Registerer prometheus.Registerer
	Thresholds Thresholds // zero: DefaultThresholds()
	// TierPools names each tier's pool; a tier without one sends from ""
	// (relay's default pool).
	TierPools map[Tier]string
	// Pools are the outbound pools by name, as relay binds them.
	Pools      map[string][]Source
	DNSBLZones []string // e.g. "zen.spamhaus.org"
	Resolver   Resolver // for DNSBLZones; nil: no blocklist watch
	Directory  Directory
	// OnChange is called (from Tick or Release, without locks held) after a
	// tenant's tier or hold changed.
	OnChange func(Change)
	// Rand returns a number in [0, 1) for backoff jitter; default math/rand.
	Rand func() float64
	// Bounds on memory: sites tracked per source (the least recently
	// used is dropped), tenants and source addresses tracked, and tier
	// changes kept per tenant.
	MaxSitesPerSource int
	MaxTenants        int
	MaxSources        int
	History           int
}

// Service keeps the scores. It is safe for concurrent use.
type Service struct {
	opts   Options
	th     Thresholds
	clock  Clock
	log    *slog.Logger
	m      *metrics
	db     *pebble.DB
	pmu    sync.Mutex // serialises persist and Close
	closed bool       // under mu

	mu       sync.Mutex
	tenants  map[string]*tenantState
	sources  map[netip.Addr]*sourceState
	rr       map[string]int // per pool: round-robin position
	warnedTC bool           // the MaxTenants warning was logged
	warnedSC bool
}

// Hold is why reputation holds a tenant.
type Hold struct {
	Since  time.Time `json:"since"`
	Kind   string    `json:"kind"` // "spike" or "tier"
	Reason string    `json:"reason"`
	// Suspended is true when the directory suspension succeeded; the hold
	// then ends when an operator resumes the tenant.
	Suspended bool `json:"suspended"`
}

// TierChange is one entry of a tenant's tier history.
type TierChange struct {
	At     time.Time `json:"at"`
	From   Tier      `json:"from"`
	To     Tier      `json:"to"`
	Reason string    `json:"reason"`
}

type tenantState struct {
	name      string
	c         *counters
	tier      Tier
	tierSince time.Time
	firstSeen time.Time
	lastSeen  time.Time
	scoreFrom time.Time // tier and spike windows count from here
	accepted  float64   // hourly rate an operator accepted by releasing a spike hold
	acceptedT time.Time // until when
	hold      *Hold
	history   []TierChange
	dirty     bool
}

type sourceState struct {
	ip       netip.Addr
	c        *counters
	sites    map[string]*siteState
	listings map[string]*Listing // by zone
	dirty    bool
}

type siteState struct {
	c         *counters
	lastUsed  int64
	limit     float64 // messages per minute; 0: unlimited
	limiter   *rate.Limiter
	strikes   int
	until     time.Time
	feedback  Feedback
	line      string
	day       int64
	sentToday int
}

// Listing is a source address's state on one blocklist zone.
type Listing struct {
	Zone    string    `json:"zone"`
	Listed  bool      `json:"listed"`
	Answer  string    `json:"answer,omitempty"` // the A records (127.0.0.x)
	Reason  string    `json:"reason,omitempty"` // the TXT record
	Since   time.Time `json:"since,omitzero"`   // listed since
	Checked time.Time `json:"checked"`
	Error   string    `json:"error,omitempty"` // the last lookup failed: state unchanged
}

// Open opens (creating) the store at dir and loads the persisted scores.
func Open(dir string, o Options) (*Service, error) {
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	setDefault(&o.MaxSitesPerSource, DefaultMaxSitesPerSource)
	setDefault(&o.MaxTenants, DefaultMaxTenants)
	setDefault(&o.MaxSources, DefaultMaxSources)
	setDefault(&o.History, DefaultHistory)
	pools := make(map[string][]Source, len(o.Pools))
	for name, srcs := range o.Pools {
		out := make([]Source, 0, len(srcs))
		for _, s := range srcs {
			if !s.IP.IsValid() {
				return nil, fmt.Errorf("reputation: pool %q: a source without an IP address", name)
			}
			s.IP = s.IP.Unmap()
			out = append(out, s)
		}
		pools[name] = out
	}
	o.Pools = pools
	if len(pools) > 0 {
		for tier, pool := range o.TierPools {
			if _, ok := pools[pool]; !ok && pool != "" {
				return nil, fmt.Errorf("reputation: tier %s: pool %q is not configured", tier, pool)
			}
		}
	}
	zones := make([]string, 0, len(o.DNSBLZones))
	for _, z := range o.DNSBLZones {
		if z = strings.Trim(strings.ToLower(strings.TrimSpace(z)), "."); z != "" {
			zones = append(zones, z)
		}
	}
	o.DNSBLZones = zones
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("component", "reputation")
	db, err := openStore(dir, log)
	if err != nil {
		return nil, err
	}
	s := &Service{
		opts: o, th: o.Thresholds.withDefaults(), clock: o.Clock, log: log,
		m: m, db: db,
		tenants: map[string]*tenantState{}, sources: map[netip.Addr]*sourceState{}, rr: map[string]int{},
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close persists the scores and closes the store.
func (s *Service) Close() error {
	err := s.persist(true)
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return err
	}
	s.closed = true
	s.mu.Unlock()
	return errors.Join(err, s.db.Close())
}

// tenant returns t's state, creating it; nil when MaxTenants are tracked.
// Called with s.mu held.
func (s *Service) tenant(name string, now time.Time) *tenantState {
	ts := s.tenants[name]
	if ts != nil {
		return ts
	}
	if len(s.tenants) >= s.opts.MaxTenants {
		if !s.warnedTC {
			s.warnedTC = true
			s.log.Warn("too many tenants tracked; new tenants are not scored", "max", s.opts.MaxTenants)
		}
		return nil
	}
	ts = &tenantState{name: name, c: newCounters(weekSlots), tier: Standard, tierSince: now, firstSeen: now, dirty: true}
	s.tenants[name] = ts
	s.m.tier.WithLabelValues(name).Set(float64(Standard))
	return ts
}

// source returns ip's state, creating it; nil when MaxSources are tracked.
// Called with s.mu held.
func (s *Service) source(ip netip.Addr) *sourceState {
	st := s.sources[ip]
	if st != nil {
		return st
	}
	if len(s.sources) >= s.opts.MaxSources {
		if !s.warnedSC {
			s.warnedSC = true
			s.log.Warn("too many source addresses tracked; new ones are not scored", "max", s.opts.MaxSources)
		}
		return nil
	}
	st = &sourceState{ip: ip, c: newCounters(weekSlots), sites: map[string]*siteState{}, listings: map[string]*Listing{}}
	s.sources[ip] = st
	return st
}

// site returns the (source, site) state, creating it and dropping the
// least recently used site when the source tracks too many.
func (st *sourceState) site(name string, unix int64, maxSites int) *siteState {
	ss := st.sites[name]
	if ss == nil {
		if len(st.sites) >= maxSites {
			var oldest string
			var at int64
			for n, o := range st.sites {
				if oldest == "" || o.lastUsed < at {
					oldest, at = n, o.lastUsed
				}
			}
			delete(st.sites, oldest)
		}
		ss = &siteState{c: newCounters(daySlots)}
		st.sites[name] = ss
	}
	ss.lastUsed = unix
	return ss
}

// Record counts one delivery outcome (or complaint) for its tenant, its
// source address and the (source, site) pair, and reads a deferral's reply
// for receiver feedback. It does no I/O; relay calls it after every
// transaction.
func (s *Service) Record(ev Event) {
	if ev.Outcome < 0 || ev.Outcome >= numOutcomes {
		return
	}
	n := max(ev.Count, 1)
	now := s.clock.Now()
	unix := now.Unix()
	// Only deferrals back a source off: a 4xx refuses the source for now,
	// while a 5xx rejects the one message, which the tenant's tier answers
	// for (so that one tenant's rejected mail does not slow the others'
	// on a shared source).
	fb := NoFeedback
	if ev.Outcome == Deferral {
		fb = Classify(ev.Code, ev.Enhanced, ev.Line)
	}
	var logFeedback func()
	s.mu.Lock()
	if ev.Tenant != "" {
		if ts := s.tenant(ev.Tenant, now); ts != nil {
			ts.c.add(unix, ev.Outcome, n)
			ts.lastSeen = now
			ts.dirty = true
		}
	}
	if ev.Source.IsValid() {
		ip := ev.Source.Unmap()
		if st := s.source(ip); st != nil {
			st.c.add(unix, ev.Outcome, n)
			st.dirty = true
			if ev.Site != "" && ev.Outcome != Complaint {
				ss := st.site(strings.ToLower(ev.Site), unix, s.opts.MaxSitesPerSource)
				ss.c.add(unix, ev.Outcome, n)
				logFeedback = s.feedback(ss, fb, ev, n, now)
			}
		}
	}
	s.mu.Unlock()
	if ev.Tenant != "" {
		s.m.outcome(ev.Tenant, ev.Outcome).Add(float64(n))
	}
	if logFeedback != nil {
		logFeedback()
	}
}

// feedback applies a reply's feedback to an (IP, site) pair: a throttle or
// a block cuts its rate and backs it off; a delivery restores the rate
// step by step. Called with s.mu held; returns the logging to do after.
func (s *Service) feedback(ss *siteState, fb Feedback, ev Event, n int, now time.Time) func() {
	switch {
	case fb == Throttled || fb == Blocked:
		ss.strikes++
		// the pair's recent rate: attempts in the last two 5-minute buckets
		recent := ss.c.fine.sum(now.Unix(), 2, 0).Attempts()
		ss.limit = cutRate(ss.limit, float64(recent)/10)
		if fb == Blocked {
			ss.limit = cutRate(ss.limit, 0)
		}
		ss.until = now.Add(backoffDelay(fb, ss.strikes, s.opts.Rand()))
		ss.feedback, ss.line = fb, truncate(ev.Line, 200)
		ss.setLimiter(now)
		limit, until, strikes := ss.limit, ss.until, ss.strikes
		return func() {
			s.m.feedback.WithLabelValues(ev.Source.Unmap().String(), fb.String()).Inc()
			s.log.Info("receiver feedback: source backs off from site", "source", ev.Source.Unmap(), "site", ev.Site,
				"tenant", ev.Tenant, "feedback", fb.String(), "strikes", strikes, "until", until,
				"rate_per_minute", limit, "code", ev.Code, "enhanced", ev.Enhanced, "reply", truncate(ev.Line, 200))
		}
	case ev.Outcome == Delivered:
		ss.strikes = 0
		if ss.limit > 0 {
			ss.limit = restoreRate(ss.limit, n)
			ss.setLimiter(now)
			if ss.limit == 0 {
				ss.feedback, ss.line = NoFeedback, ""
			}
		}
	}
	return nil
}

// setLimiter makes the pair's token bucket follow its rate.
func (ss *siteState) setLimiter(now time.Time) {
	if ss.limit <= 0 {
		ss.limiter = nil
		return
	}
	perSecond := rate.Limit(ss.limit / 60)
	if ss.limiter == nil {
		ss.limiter = rate.NewLimiter(perSecond, 1)
		return
	}
	ss.limiter.SetLimitAt(now, perSecond)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// TenantPool is the pool the tenant sends from: its fixed pool (tenant
// policy), else its tier's pool.
func (s *Service) TenantPool(name string) string {
	if d := s.opts.Directory; d != nil {
		if p, ok := d.TenantPolicy(name); ok && p.Pool != "" {
			return p.Pool
		}
	}
	return s.opts.TierPools[s.Tier(name)]
}

// Tier is the tenant's tier (Standard for a tenant without a record).
func (s *Service) Tier(name string) Tier {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tenants[name]; ts != nil {
		return ts.tier
	}
	return Standard
}

// Held reports whether reputation holds the tenant, and why.
func (s *Service) Held(name string) (Hold, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tenants[name]; ts != nil && ts.hold != nil {
		return *ts.hold, true
	}
	return Hold{}, false
}

// PickSource chooses the source address of pool to send the next
// transaction to site from, and counts it against the source's warm-up cap
// and the (source, site) rate; relay calls it before each transaction (and
// may reuse an idle connection from that source). dst, if valid, is the
// address to be dialled: only sources of its family qualify. Sources are
// taken round-robin, skipping those backing off from the site after
// receiver feedback, over their rate, at their warm-up cap for the day, or
// listed on a blocklist; listed sources are used only when every other
// source of the pool is listed. An unknown or empty pool gives the zero
// Source and true: no binding. false means no source can take mail for
// the site now; relay defers the lane.
func (s *Service) PickSource(pool, site string, dst netip.Addr) (Source, bool) {
	srcs := s.opts.Pools[pool]
	if len(srcs) == 0 {
		return Source{}, true
	}
	now := s.clock.Now()
	unix, day := now.Unix(), dayNumber(now)
	site = strings.ToLower(site)
	dst = dst.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.rr[pool]
	s.rr[pool] = (start + 1) % len(srcs)
	var fallback *Source
	var fallbackSite *siteState
	for i := range srcs {
		src := &srcs[(start+i)%len(srcs)]
		if dst.IsValid() && src.IP.Is4() != dst.Is4() {
			continue
		}
		st := s.source(src.IP)
		if st == nil {
			return *src, true
		}
		ss := st.site(site, unix, s.opts.MaxSitesPerSource)
		if ss.day != day {
			ss.day, ss.sentToday = day, 0
		}
		if now.Before(ss.until) {
			continue
		}
		if limit, warming := src.Warmup.Cap(now); warming && ss.sentToday >= limit {
			continue
		}
		if st.listed() {
			if fallback == nil {
				fallback, fallbackSite = src, ss
			}
			continue
		}
		if ss.limiter != nil && !ss.limiter.AllowN(now, 1) {
			continue
		}
		ss.sentToday++
		st.dirty = true
		return *src, true
	}
	if fallback != nil && (fallbackSite.limiter == nil || fallbackSite.limiter.AllowN(now, 1)) {
		fallbackSite.sentToday++
		return *fallback, true
	}
	return Source{}, false
}

func (st *sourceState) listed() bool {
	for _, l := range st.listings {
		if l.Listed {
			return true
		}
	}
	return false
}

// Tick re-evaluates every tenant's tier, looks for spikes, notices holds an
// operator released, and persists what changed. cmd calls it periodically
// (every minute is plenty); its cost is a pass over the tenants' buckets.
func (s *Service) Tick(ctx context.Context) {
	now := s.clock.Now()
	s.noticeReleases(ctx)
	var changes []Change
	var suspend []string
	s.mu.Lock()
	for _, ts := range s.tenants {
		w := ts.c.windows(now, ts.scoreFrom)
		w.InTier = now.Sub(ts.tierSince)
		if next, why := nextTier(ts.tier, w, s.th); next != ts.tier {
			from := ts.tier
			s.setTier(ts, next, why, now)
			if next == Suspended && ts.hold == nil {
				ts.hold = &Hold{Since: now, Kind: "tier", Reason: why}
				suspend = append(suspend, ts.name)
			}
			changes = append(changes, Change{Tenant: ts.name, At: now, From: from, To: next, Held: ts.hold != nil, Reason: why})
		}
		if ts.hold == nil {
			if held, why := spike(w.Hour.Attempts(), s.baseline(ts, w, now), s.th); held {
				ts.hold = &Hold{Since: now, Kind: "spike", Reason: why}
				ts.dirty = true
				suspend = append(suspend, ts.name)
				changes = append(changes, Change{Tenant: ts.name, At: now, From: ts.tier, To: ts.tier, Held: true, Reason: "spike: " + why})
			}
		}
		s.m.held.WithLabelValues(ts.name).Set(boolGauge(ts.hold != nil))
	}
	s.mu.Unlock()
	for _, name := range suspend {
		s.suspend(name)
	}
	if err := s.persist(false); err != nil {
		s.log.Error("persisting reputation scores", "err", err)
	}
	s.notify(changes)
}

// baseline is the tenant's average hourly attempts over the week before
// the last hour (or since it was first seen or its scores restarted), at
// least the rate an operator accepted by releasing a spike hold.
func (s *Service) baseline(ts *tenantState, w Windows, now time.Time) float64 {
	from := now.Add(-weekSlots * time.Hour)
	if ts.firstSeen.After(from) {
		from = ts.firstSeen
	}
	if ts.scoreFrom.After(from) {
		from = ts.scoreFrom
	}
	prior := now.Sub(from).Hours() - 1
	var b float64
	if prior >= 1 {
		b = float64(w.Week.Attempts()-w.Hour.Attempts()) / prior
	}
	if now.Before(ts.acceptedT) {
		b = max(b, ts.accepted)
	}
	return b
}

// setTier moves a tenant to a tier and logs the event. Called with s.mu held.
func (s *Service) setTier(ts *tenantState, to Tier, why string, now time.Time) {
	from := ts.tier
	ts.tier, ts.tierSince, ts.dirty = to, now, true
	ts.history = append(ts.history, TierChange{At: now, From: from, To: to, Reason: why})
	if len(ts.history) > s.opts.History {
		ts.history = slices.Delete(ts.history, 0, len(ts.history)-s.opts.History)
	}
	s.m.tier.WithLabelValues(ts.name).Set(float64(to))
	s.log.Warn("tenant tier changed", "tenant", ts.name, "from", from.String(), "to", to.String(), "reason", why,
		"pool", s.opts.TierPools[to])
}

// suspend holds a tenant through the directory (submissions refused with
// 451, queue held) and records whether that worked.
func (s *Service) suspend(name string) {
	ok := false
	if d := s.opts.Directory; d != nil {
		if err := d.SuspendTenant(name); err != nil {
			s.log.Error("suspending tenant in the directory; held by reputation only", "tenant", name, "err", err)
		} else {
			ok = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tenants[name]; ts != nil && ts.hold != nil {
		ts.hold.Suspended = ok
		ts.dirty = true
		s.log.Warn("tenant held for review", "tenant", name, "kind", ts.hold.Kind, "reason", ts.hold.Reason, "directory_suspended", ok)
	}
}

// noticeReleases ends the holds of tenants an operator resumed in the
// directory.
func (s *Service) noticeReleases(ctx context.Context) {
	d := s.opts.Directory
	if d == nil {
		return
	}
	s.mu.Lock()
	var held []string
	for _, ts := range s.tenants {
		if ts.hold != nil && ts.hold.Suspended {
			held = append(held, ts.name)
		}
	}
	s.mu.Unlock()
	for _, name := range held {
		if ctx.Err() != nil {
			return
		}
		if p, ok := d.TenantPolicy(name); ok && !p.Suspended {
			if err := s.Release(name); err != nil {
				s.log.Error("releasing a resumed tenant", "tenant", name, "err", err)
			}
		}
	}
}

// Release ends reputation's hold on a tenant; cmd calls it when an operator
// resumes the tenant (Tick also notices the resume by itself). A tenant
// held for a spike keeps its tier and its baseline is raised to the rate it
// was held at, for a week; a suspended tenant goes to quarantine with its
// scores restarted, so the figures that suspended it do not suspend it
// again.
func (s *Service) Release(name string) error {
	now := s.clock.Now()
	s.mu.Lock()
	ts := s.tenants[name]
	if ts == nil || ts.hold == nil && ts.tier != Suspended {
		s.mu.Unlock()
		return nil
	}
	ch := Change{Tenant: name, At: now, From: ts.tier, To: ts.tier}
	if ts.hold != nil && ts.hold.Kind == "spike" {
		w := ts.c.windows(now, ts.scoreFrom)
		ts.accepted = float64(w.Hour.Attempts())
		ts.acceptedT = now.Add(acceptedRateFor)
		ch.Reason = "spike hold released by operator"
	}
	if ts.tier == Suspended {
		ts.scoreFrom = now
		s.setTier(ts, Quarantine, "released by operator", now)
		ch.To, ch.Reason = Quarantine, "released by operator"
	}
	ts.hold = nil
	ts.dirty = true
	s.m.held.WithLabelValues(name).Set(0)
	s.mu.Unlock()
	s.log.Info("tenant hold released", "tenant", name, "tier", ch.To.String())
	s.notify([]Change{ch})
	return nil
}

// notify fills in each change's pool and calls OnChange.
func (s *Service) notify(changes []Change) {
	for _, c := range changes {
		c.Pool = s.TenantPool(c.Tenant)
		if s.opts.OnChange != nil {
			s.opts.OnChange(c)
		}
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

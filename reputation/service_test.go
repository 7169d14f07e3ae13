package reputation

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"fairway/tenant"
)

// TestBlockedTenantMovesToQuarantinePool is the reputation side of the
// shared-IP scenario: alpha's mail gets "blocked" replies, alpha moves to
// the quarantine pool and sends from its source, while beta keeps its
// tier, its pool and its sources; the scores survive a restart.
func TestBlockedTenantMovesToQuarantinePool(t *testing.T) {
	e := newEnv(t, nil)
	for range 40 {
		e.svc.Record(Event{Tenant: "alpha", Source: ipStd1, Site: siteMX, Outcome: OutcomeOf(550, "5.7.1"),
			Code: 550, Enhanced: "5.7.1", Line: "Service unavailable; Client host [127.0.0.2] blocked using Spamhaus"})
		e.svc.Record(Event{Tenant: "beta", Source: ipStd2, Site: siteMX, Outcome: Delivered, Code: 250, Enhanced: "2.0.0"})
	}
	if got := e.svc.TenantPool("alpha"); got != "standard" {
		t.Fatalf("before Tick alpha's pool is %q", got)
	}
	e.tick()

	if got := e.svc.Tier("alpha"); got != Quarantine {
		t.Fatalf("alpha is %s, want quarantine", got)
	}
	if got := e.svc.TenantPool("alpha"); got != "quarantine" {
		t.Errorf("alpha's pool %q, want quarantine", got)
	}
	if got, pool := e.svc.Tier("beta"), e.svc.TenantPool("beta"); got != Standard || pool != "standard" {
		t.Errorf("beta is %s in %q, want standard in standard", got, pool)
	}
	changes := e.takeChanges()
	if len(changes) != 1 || changes[0].Tenant != "alpha" || changes[0].From != Standard || changes[0].To != Quarantine ||
		changes[0].Pool != "quarantine" || changes[0].Held || !strings.Contains(changes[0].Reason, "policy rejection rate 100.00% (40 of 40 sent)") {
		t.Fatalf("changes %+v", changes)
	}
	if !strings.Contains(e.logs.String(), "tenant tier changed") {
		t.Error("no tier change event in the log")
	}
	// alpha's next transaction leaves from the quarantine source
	if src, ok := e.svc.PickSource(e.svc.TenantPool("alpha"), siteMX, netip.Addr{}); !ok || src.IP != ipQuar || src.EHLO != "quar.test" {
		t.Errorf("alpha's source %v %v, want %v", src, ok, ipQuar)
	}
	// a 5xx is about alpha's message, not the source: beta keeps both
	// standard sources for the site, so its delivery rate
	got, refused := e.picks("standard", siteMX, 10)
	if refused != 0 || got[ipStd1] != 5 || got[ipStd2] != 5 {
		t.Errorf("beta's picks to the rejecting site: %v, %d refused; want 5 from each source", got, refused)
	}
	got, _ = e.picks("standard", siteAlt, 10)
	if got[ipStd1] != 5 || got[ipStd2] != 5 {
		t.Errorf("picks to another site: %v, want 5 each", got)
	}
	if v := metricValue(t, e.svc.m.tier.WithLabelValues("alpha")); v != float64(Quarantine) {
		t.Errorf("tier gauge %v", v)
	}
	if v := metricValue(t, e.svc.m.outcomes.WithLabelValues("alpha", "policy_rejection")); v != 40 {
		t.Errorf("outcome counter %v", v)
	}

	// the scores and the history survive a restart
	e.restart()
	if got := e.svc.Tier("alpha"); got != Quarantine {
		t.Fatalf("after restart alpha is %s", got)
	}
	r, err := e.svc.Report("alpha")
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Tenants[0]
	if tr.Pool != "quarantine" || tr.FixedPool || len(tr.Changes) != 1 || tr.Windows[0].PolicyRejection != 40 || tr.Windows[2].Sent != 40 {
		t.Errorf("report after restart: %+v", tr)
	}
	if v := metricValue(t, e.svc.m.tier.WithLabelValues("alpha")); v != float64(Quarantine) {
		t.Errorf("tier gauge after restart %v", v)
	}

	// a clean day later (the bad hour out of the day window), one step up
	e.clk.Advance(24 * time.Hour)
	e.send("alpha", ipQuar, siteMX, Delivered, 100)
	e.tick()
	if got := e.svc.Tier("alpha"); got != Probation {
		t.Fatalf("after a clean day alpha is %s, want probation", got)
	}
	e.tick()
	if got := e.svc.Tier("alpha"); got != Probation {
		t.Errorf("a second Tick promoted again: %s", got)
	}

	// a fixed pool wins over the tier, and the tenant is still scored
	if err := e.dir.UpdateTenant("beta", func(p *tenant.Policy) { p.Pool = "dedicated" }); err != nil {
		t.Fatal(err)
	}
	e.send("beta", ipStd2, siteMX, HardBounce, 30)
	e.tick()
	if got, pool := e.svc.Tier("beta"), e.svc.TenantPool("beta"); got != Suspended || pool != "dedicated" {
		t.Errorf("beta with a fixed pool: %s in %q, want suspended in dedicated", got, pool)
	}
}

// TestSpikeHoldAndRelease: a tenant sending 10× its baseline is held
// through the directory; an operator's resume releases it, and the same
// rate does not hold it again.
func TestSpikeHoldAndRelease(t *testing.T) {
	e := newEnv(t, nil)
	// a day at 30 an hour: the baseline
	for range 24 {
		e.send("alpha", ipStd1, siteMX, Delivered, 30)
		e.send("beta", ipStd2, siteMX, Delivered, 30)
		e.clk.Advance(time.Hour)
		e.tick()
	}
	if _, held := e.svc.Held("alpha"); held {
		t.Fatal("held at its baseline")
	}
	e.takeChanges()
	// 720 attempts in the 23 hours before the last one: a baseline of 31.3/h
	e.send("alpha", ipStd1, siteMX, Delivered, 313)
	e.tick()
	if _, held := e.svc.Held("alpha"); held {
		t.Fatal("held under 10× the baseline (313.04)")
	}
	e.send("alpha", ipStd1, siteMX, Deferral, 1) // attempts count, deferrals too
	e.tick()
	h, held := e.svc.Held("alpha")
	if !held || h.Kind != "spike" || !h.Suspended || !strings.Contains(h.Reason, "314 attempts in the last hour") {
		t.Fatalf("hold %+v %v", h, held)
	}
	if p, _ := e.dir.TenantPolicy("alpha"); !p.Suspended {
		t.Error("the directory does not hold alpha")
	}
	if p, _ := e.dir.TenantPolicy("beta"); p.Suspended {
		t.Error("beta suspended too")
	}
	changes := e.takeChanges()
	if len(changes) != 1 || !changes[0].Held || changes[0].Tenant != "alpha" || !strings.Contains(changes[0].Reason, "spike") {
		t.Fatalf("changes %+v", changes)
	}
	r, _ := e.svc.Report("alpha")
	if r.Tenants[0].Hold == nil || !strings.Contains(r.Tenants[0].Hold.Reason, "baseline of 31.3/h") {
		t.Errorf("report does not say why: %+v", r.Tenants[0].Hold)
	}
	if v := metricValue(t, e.svc.m.held.WithLabelValues("alpha")); v != 1 {
		t.Errorf("held gauge %v", v)
	}
	// more Ticks keep the hold and do not suspend again
	e.tick()
	if c := e.takeChanges(); len(c) != 0 {
		t.Errorf("changes while held: %+v", c)
	}

	// held across a restart
	e.restart()
	if _, held := e.svc.Held("alpha"); !held {
		t.Fatal("hold lost in a restart")
	}

	// the operator resumes alpha; Tick notices
	if err := e.dir.ResumeTenant("alpha"); err != nil {
		t.Fatal(err)
	}
	e.tick()
	if _, held := e.svc.Held("alpha"); held {
		t.Fatal("still held after resume")
	}
	changes = e.takeChanges()
	if len(changes) != 1 || changes[0].Held || changes[0].Pool != "standard" {
		t.Fatalf("release changes %+v", changes)
	}
	// the reviewed rate is now accepted: the same again is no spike
	e.clk.Advance(time.Hour)
	e.send("alpha", ipStd1, siteMX, Delivered, 626)
	e.tick()
	if _, held := e.svc.Held("alpha"); held {
		t.Fatal("held again at the rate the operator accepted")
	}
	// but 10× that is
	e.clk.Advance(time.Hour)
	e.send("alpha", ipStd1, siteMX, Delivered, 3140)
	e.tick()
	if _, held := e.svc.Held("alpha"); !held {
		t.Fatal("not held at 10× the accepted rate")
	}
	// Release (as cmd calls it on resume) works without waiting for Tick
	if err := e.svc.Release("alpha"); err != nil {
		t.Fatal(err)
	}
	if _, held := e.svc.Held("alpha"); held {
		t.Fatal("still held after Release")
	}
}

// TestSuspendedTierReleasedToQuarantine: a tenant suspended by its figures
// is released by an operator into quarantine and not suspended again by
// the figures already reviewed.
func TestSuspendedTierReleasedToQuarantine(t *testing.T) {
	e := newEnv(t, nil)
	e.send("alpha", ipStd1, siteMX, Delivered, 70)
	e.send("alpha", ipStd1, siteMX, HardBounce, 30)
	e.tick()
	h, held := e.svc.Held("alpha")
	if e.svc.Tier("alpha") != Suspended || !held || h.Kind != "tier" || !strings.Contains(h.Reason, "hard bounce rate 30.00%") {
		t.Fatalf("tier %s, hold %+v %v", e.svc.Tier("alpha"), h, held)
	}
	if p, _ := e.dir.TenantPolicy("alpha"); !p.Suspended {
		t.Fatal("not suspended in the directory")
	}
	if err := e.dir.ResumeTenant("alpha"); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	e.tick()
	if got := e.svc.Tier("alpha"); got != Quarantine {
		t.Fatalf("after resume alpha is %s, want quarantine", got)
	}
	e.clk.Advance(time.Minute)
	e.tick()
	if got := e.svc.Tier("alpha"); got != Quarantine {
		t.Fatalf("the reviewed figures suspended alpha again: %s", got)
	}
	// new bad figures do
	e.clk.Advance(5 * time.Minute)
	e.send("alpha", ipQuar, siteMX, HardBounce, 30)
	e.tick()
	if got := e.svc.Tier("alpha"); got != Suspended {
		t.Fatalf("new bounces after release: %s, want suspended", got)
	}
	r, _ := e.svc.Report("alpha")
	want := []Tier{Suspended, Quarantine, Suspended}
	if len(r.Tenants[0].Changes) != 3 {
		t.Fatalf("history %+v", r.Tenants[0].Changes)
	}
	for i, c := range r.Tenants[0].Changes {
		if c.To != want[i] {
			t.Errorf("change %d (newest first) to %s, want %s", i, c.To, want[i])
		}
	}
}

// TestFeedbackBacksOffOnePair: a throttle from one site against one IP
// rests that pair, then slows it, and deliveries restore it; the other IP
// and other sites are untouched.
func TestFeedbackBacksOffOnePair(t *testing.T) {
	e := newEnv(t, nil)
	e.send("alpha", ipStd1, siteMX, Delivered, 100) // 10/min over the last 10 minutes
	e.svc.Record(Event{Tenant: "alpha", Source: ipStd1, Site: siteMX, Outcome: Deferral, Code: 421, Enhanced: "4.7.0",
		Line: "Too many messages from your IP, rate limited, try again later"})
	// backing off for a minute (Rand 0: no jitter)
	if got, _ := e.picks("standard", siteMX, 6); got[ipStd2] != 6 {
		t.Fatalf("picks during backoff %v", got)
	}
	if got, _ := e.picks("standard", siteAlt, 6); got[ipStd1] != 3 || got[ipStd2] != 3 {
		t.Fatalf("other site affected: %v", got)
	}
	e.clk.Advance(time.Minute)
	// after the backoff: one message per 1/5.05 minutes (101 attempts / 10 min, halved)
	got, _ := e.picks("standard", siteMX, 10)
	if got[ipStd1] != 1 || got[ipStd2] != 9 {
		t.Fatalf("picks after backoff %v, want one from the slowed pair", got)
	}
	e.clk.Advance(12 * time.Second)
	if got, _ := e.picks("standard", siteMX, 2); got[ipStd1] != 1 {
		t.Fatalf("the slowed pair did not refill after 12 s: %v", got)
	}
	r, _ := e.svc.Report("")
	var found bool
	for _, s := range r.Sources {
		for _, b := range s.Backoffs {
			if s.IP == ipStd1 && b.Site == siteMX && b.Feedback == "throttled" && b.RatePerMinute > 5 && b.RatePerMinute < 5.1 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("report lacks the backoff: %+v", r.Sources)
	}
	// a second throttle doubles the rest and halves the rate again
	e.svc.Record(Event{Source: ipStd1, Site: siteMX, Outcome: Deferral, Code: 421, Enhanced: "4.7.0", Line: "throttled"})
	e.clk.Advance(time.Minute + 59*time.Second)
	if got, _ := e.picks("standard", siteMX, 4); got[ipStd1] != 0 {
		t.Fatalf("second backoff shorter than 2 minutes: %v", got)
	}
	// the rest survives a restart
	e.tick()
	e.restart()
	if got, _ := e.picks("standard", siteMX, 4); got[ipStd1] != 0 {
		t.Fatalf("backoff lost in a restart: %v", got)
	}
	e.clk.Advance(time.Second)
	// deliveries restore the rate; enough of them lift the limit
	e.send("alpha", ipStd1, siteMX, Delivered, 200)
	r, _ = e.svc.Report("")
	for _, s := range r.Sources {
		if s.IP == ipStd1 && len(s.Backoffs) != 0 && s.Backoffs[0].RatePerMinute > 0 {
			t.Errorf("rate not restored after 200 deliveries: %+v", s.Backoffs)
		}
	}
	// deliveries also reset the strikes: the next throttle rests a minute again
	e.svc.Record(Event{Source: ipStd1, Site: siteMX, Outcome: Deferral, Code: 421, Enhanced: "4.7.0", Line: "throttled"})
	e.clk.Advance(time.Minute)
	if got, _ := e.picks("standard", siteMX, 2); got[ipStd1] != 1 {
		t.Fatalf("backoff after the strikes were reset is not a minute: %v", got)
	}
	if v := metricValue(t, e.svc.m.feedback.WithLabelValues(ipStd1.String(), "throttled")); v != 1 { // since the restart
		t.Errorf("feedback counter %v", v)
	}
}

// TestBlockedDeferral: a 4xx that names a block rests the pair for 15
// minutes (not one), and a 5xx policy rejection does not rest it at all.
func TestBlockedDeferral(t *testing.T) {
	e := newEnv(t, nil)
	e.svc.Record(Event{Tenant: "alpha", Source: ipStd1, Site: siteMX, Outcome: PolicyRejection, Code: 554, Enhanced: "5.7.1",
		Line: "Client host [127.0.0.2] blocked using zen.spamhaus.org"})
	if got, _ := e.picks("standard", siteMX, 4); got[ipStd1] != 2 {
		t.Fatalf("a 5xx rested the pair: %v", got)
	}
	e.svc.Record(Event{Tenant: "alpha", Source: ipStd1, Site: siteMX, Outcome: Deferral, Code: 421, Enhanced: "4.7.0",
		Line: "[TSS04] Messages from 127.0.0.2 temporarily deferred due to unexpected volume or user complaints"})
	e.clk.Advance(15*time.Minute - time.Second)
	if got, _ := e.picks("standard", siteMX, 4); got[ipStd1] != 0 {
		t.Fatalf("blocked pair back before 15 minutes: %v", got)
	}
	e.clk.Advance(time.Second)
	if got, _ := e.picks("standard", siteMX, 2); got[ipStd1] != 1 {
		t.Fatalf("blocked pair not back after 15 minutes: %v", got)
	}
	if v := metricValue(t, e.svc.m.feedback.WithLabelValues(ipStd1.String(), "blocked")); v != 1 {
		t.Errorf("blocked counter %v", v)
	}
}

// TestRecordBounds: sites per source are capped, least recently used
// dropped; unknown outcomes are ignored.
func TestRecordBounds(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxSitesPerSource = 3; o.MaxTenants = 3 })
	for i, site := range []string{"a", "b", "c", "a", "d"} {
		e.clk.Advance(time.Second)
		e.svc.Record(Event{Tenant: "alpha", Source: ipStd1, Site: site, Outcome: Delivered, Count: i})
	}
	e.svc.mu.Lock()
	var sites []string
	for s := range e.svc.sources[ipStd1].sites {
		sites = append(sites, s)
	}
	e.svc.mu.Unlock()
	if len(sites) != 3 || strings.Contains(strings.Join(sites, ","), "b") {
		t.Errorf("sites kept %v, want a, c, d", sites)
	}
	e.svc.Record(Event{Tenant: "alpha", Outcome: Outcome(99)})
	for _, name := range []string{"beta", "gamma", "delta"} {
		e.svc.Record(Event{Tenant: name, Outcome: Delivered})
	}
	e.svc.mu.Lock()
	n := len(e.svc.tenants)
	e.svc.mu.Unlock()
	if n != 3 {
		t.Errorf("%d tenants tracked, cap 3", n)
	}
	r, err := e.svc.Report("alpha")
	if err != nil || r.Tenants[0].Windows[0].Delivered != 1+1+2+3+4 {
		t.Errorf("alpha's report %+v %v", r, err)
	}
	if _, err := e.svc.Report("nobody"); err == nil {
		t.Error("report of an unknown tenant")
	}
}

// TestForget: a removed tenant's scores go, from memory and from disk.
func TestForget(t *testing.T) {
	e := newEnv(t, nil)
	e.send("alpha", ipStd1, siteMX, HardBounce, 30)
	e.send("beta", ipStd1, siteMX, Delivered, 30)
	e.tick()
	if err := e.svc.Forget("alpha"); err != nil {
		t.Fatal(err)
	}
	e.restart()
	r, err := e.svc.Report("")
	if err != nil || len(r.Tenants) != 1 || r.Tenants[0].Tenant != "beta" {
		t.Fatalf("after Forget and restart: %+v %v", r.Tenants, err)
	}
	if got := e.svc.Tier("alpha"); got != Standard {
		t.Errorf("forgotten tenant is %s", got)
	}
}

// TestConcurrentUse: relay's workers record and pick while cmd ticks,
// checks blocklists and reports (run with -race).
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, nil)
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 500 {
				o := Outcome(i % int(numOutcomes))
				e.svc.Record(Event{Tenant: []string{"alpha", "beta"}[w%2], Source: ipStd1, Site: siteMX, Outcome: o, Code: 421, Line: "throttled"})
				e.svc.PickSource(e.svc.TenantPool("alpha"), siteMX, netip.Addr{})
			}
		}()
	}
	for range 20 {
		e.tick()
		e.svc.CheckBlocklists(t.Context())
		if _, err := e.svc.Report(""); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("workers did not finish")
		}
	}
	e.tick()
	r, _ := e.svc.Report("")
	total := 0
	for _, tr := range r.Tenants {
		w := tr.Windows[2]
		total += w.Attempts() + w.Complaint
	}
	if total != 2000 {
		t.Errorf("%d events counted, want 2000", total)
	}
}

func TestOpenValidates(t *testing.T) {
	_, err := Open(t.TempDir(), Options{Pools: testPools(), TierPools: map[Tier]string{Quarantine: "jail"}})
	if err == nil || !strings.Contains(err.Error(), `"jail"`) {
		t.Errorf("a tier pool that is not configured: %v", err)
	}
	_, err = Open(t.TempDir(), Options{Pools: map[string][]Source{"p": {{EHLO: "x"}}}})
	if err == nil {
		t.Error("a source without an address opened")
	}
}

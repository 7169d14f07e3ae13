package bench

import (
	"context"
	"fmt"
	"math"
	"time"
)

// NoisyNeighborDetails are noisy-neighbor's raw figures.
type NoisyNeighborDetails struct {
	Solo           map[string]LatencySummary `json:"solo"`
	WithNewsletter map[string]LatencySummary `json:"with_newsletter"`
	NewsletterSize int                       `json:"newsletter_size"`
	AAccepted      int                       `json:"a_accepted"`
	ADelivered     int                       `json:"a_delivered_during_run"`
	AAcceptedPerS  float64                   `json:"a_accepted_per_sec"`
	ADeliveredPerS float64                   `json:"a_delivered_per_sec"`
	SlowSinkDelay  string                    `json:"slow_sink_delay"`
}

// NoisyNeighbor: tenant a submits a newsletter (closed loop) to a slow
// destination while tenants b..e send transactional mail at a steady rate
// to a normal one; b..e's delivery latency is compared with their solo
// baseline on the same target, and a's throughput reported.
func NoisyNeighbor(ctx context.Context, o Options) (*Report, error) {
	const slowDelay = 200 * time.Millisecond
	newsletter := o.size(3000, 100000)
	phase := time.Duration(o.size(15, 60)) * time.Second
	const txRate = 5.0 // per transactional tenant, msgs/s
	tenants := tenantSpecs("a", "b", "c", "d", "e")
	e, err := o.setup(ctx, []sinkSpec{
		{name: "slow", behavior: Behavior{Delay: slowDelay}, domains: []string{"news.bench.test"}},
		{name: "mx", domains: []string{"*"}},
	}, tenants)
	if err != nil {
		return nil, err
	}
	defer e.close()
	txSenders := e.target.Senders(tenants[1:], func(t TenantSpec) []string { return []string{"user@" + t.Name + "-customer.bench.test"} })
	txLoad := func(run string) Load {
		l := e.load(run, txSenders)
		l.Conns, l.Rate, l.Duration = 2, txRate, phase
		return l
	}
	wait := func(res Result) {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		e.rec.WaitFor(wctx, res.Accepted(""), 20*time.Second)
	}
	solo, err := Generate(ctx, txLoad("nn-solo"))
	if err != nil {
		return nil, err
	}
	if len(solo.Accepted("")) == 0 {
		return nil, errNothingAccepted
	}
	wait(solo)

	// The newsletter starts first and keeps submitting through the
	// transactional phase.
	aLoad := e.load("nn-news", e.target.Senders(tenants[:1], rcptsTo("subscriber@news.bench.test")))
	aLoad.Conns, aLoad.Count = 4, newsletter
	aLoad.Duration = phase + 5*time.Second
	if o.Full {
		aLoad.Duration = 20 * time.Minute
	}
	aDone := make(chan Result, 1)
	aStart := time.Now()
	go func() {
		defer recoverLog(o.Log, "newsletter load")
		res, _ := Generate(ctx, aLoad)
		aDone <- res
	}()
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mixed, err := Generate(ctx, txLoad("nn-mixed"))
	if err != nil {
		return nil, err
	}
	wait(mixed)
	aRes := <-aDone
	measured := time.Now()

	first := e.rec.First()
	d := NoisyNeighborDetails{Solo: map[string]LatencySummary{}, WithNewsletter: map[string]LatencySummary{},
		NewsletterSize: newsletter, SlowSinkDelay: slowDelay.String()}
	r := o.newReport("noisy-neighbor", "solo_p50_ms", "solo_p99_ms", "solo_max_ms", "mixed_p50_ms", "mixed_p99_ms", "mixed_max_ms", "delivered", "accepted")
	for _, t := range tenants[1:] {
		s, m := Summarize(latencies(solo, first, t.Name)), Summarize(latencies(mixed, first, t.Name))
		d.Solo[t.Name], d.WithNewsletter[t.Name] = s, m
		r.Rows = append(r.Rows, Row{Label: t.Name, Cells: []float64{s.P50ms, s.P99ms, s.MaxMs, m.P50ms, m.P99ms, m.MaxMs,
			float64(m.Count), float64(len(mixed.Accepted(t.Name)))}})
	}
	aIDs := aRes.Accepted("")
	for _, id := range aIDs {
		if a, ok := first[id]; ok && a.At.Before(measured) {
			d.ADelivered++
		}
	}
	d.AAccepted = len(aIDs)
	d.AAcceptedPerS = rate(len(aIDs), secondsSince(aStart, lastAccepted(aRes)))
	d.ADeliveredPerS = rate(d.ADelivered, secondsSince(aStart, measured))
	nan := math.NaN()
	r.Rows = append(r.Rows, Row{Label: "a (newsletter)", Cells: []float64{nan, nan, nan, nan, nan, nan, float64(d.ADelivered), float64(d.AAccepted)}})
	r.Notes = append(r.Notes,
		fmt.Sprintf("b..e: %.0f msgs/s each for %s, solo and then with a's newsletter running; latency is submit 250 -> arrival at the sink", txRate, phase),
		fmt.Sprintf("a: %d-message newsletter, 4 connections closed loop, to a sink that takes %s per message; a accepted %.1f msgs/s, delivered %.1f msgs/s while measured",
			newsletter, slowDelay, d.AAcceptedPerS, d.ADeliveredPerS))
	r.Details = d
	return r, nil
}

// FairnessDetails are fairness's raw figures.
type FairnessDetails struct {
	Weights       map[string]int     `json:"weights"`
	Share         map[string]float64 `json:"mean_share"`
	PerSecond     map[string]float64 `json:"mean_delivered_per_sec"`
	Windows       int                `json:"windows"`
	JainWeighted  float64            `json:"jain_weighted_mean"`
	JainWeightMin float64            `json:"jain_weighted_min"`
	JainRaw       float64            `json:"jain_raw_mean"`
	PerWindow     []map[string]int   `json:"per_window"`
}

// Fairness: tenants of weights 1, 2 and 4 all backlogged towards one slow
// destination; their delivered shares per 1-second window while all are
// backlogged, and Jain's index over those windows, raw and of the shares
// divided by the weights (1 when the shares follow the weights).
func Fairness(ctx context.Context, o Options) (*Report, error) {
	tenants := tenantSpecs("w1", "w2", "w4")
	weights := []int{1, 2, 4}
	for i := range tenants {
		tenants[i].Weight = weights[i]
	}
	// While the tenants submit, the destination is very slow, so all three
	// build a backlog; then it speeds up to delay per message and the
	// shares are measured until the first tenant runs dry.
	const delay, fillDelay = 250 * time.Millisecond, 3 * time.Second
	e, err := o.setup(ctx, []sinkSpec{{name: "mx", behavior: Behavior{Delay: fillDelay}, domains: []string{"*"}}}, tenants)
	if err != nil {
		return nil, err
	}
	defer e.close()
	l := e.load("fair", e.target.Senders(tenants, rcptsTo("rcpt@dest.bench.test")))
	l.Conns, l.Count, l.Duration = 3, o.size(800, 10000), 10*time.Minute
	res, err := Generate(ctx, l)
	if err != nil {
		return nil, err
	}
	if len(res.Accepted("")) == 0 {
		return nil, errNothingAccepted
	}
	start := time.Now()
	e.sinks["mx"].SetBehavior(Behavior{Delay: delay})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	e.rec.WaitFor(wctx, res.Accepted(""), 20*time.Second)
	cancel()

	first := e.rec.First()
	var events []Event
	lastBy := map[string]time.Time{}
	for _, s := range res.Submissions {
		a, ok := first[s.ID]
		if !s.OK() || !ok {
			continue
		}
		events = append(events, Event{Key: s.Tenant, At: a.At})
		if a.At.After(lastBy[s.Tenant]) {
			lastBy[s.Tenant] = a.At
		}
	}
	end := time.Time{}
	for _, t := range tenants {
		if lt := lastBy[t.Name]; end.IsZero() || lt.Before(end) {
			end = lt
		}
	}
	// Skip the first window: deliveries started at the slow pace are still
	// finishing in it.
	start = start.Add(fillDelay)
	wins := Windows(events, start, end, time.Second)
	d := FairnessDetails{Weights: map[string]int{}, Share: map[string]float64{}, PerSecond: map[string]float64{}, Windows: len(wins), PerWindow: wins}
	var jw, jr []float64
	for _, w := range wins {
		var raw, norm []float64
		total := 0
		for i, t := range tenants {
			raw = append(raw, float64(w[t.Name]))
			norm = append(norm, float64(w[t.Name])/float64(weights[i]))
			total += w[t.Name]
		}
		if total == 0 {
			continue
		}
		jw = append(jw, Jain(norm))
		jr = append(jr, Jain(raw))
		for _, t := range tenants {
			d.Share[t.Name] += float64(w[t.Name]) / float64(total)
			d.PerSecond[t.Name] += float64(w[t.Name])
		}
	}
	sumW := 0
	for _, w := range weights {
		sumW += w
	}
	r := o.newReport("fairness", "weight", "expected_share", "share", "msgs/s", "jain_weighted", "jain_weighted_min", "jain_raw")
	nan := math.NaN()
	round := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	for i, t := range tenants {
		d.Weights[t.Name] = weights[i]
		if len(jw) > 0 {
			d.Share[t.Name] = round(d.Share[t.Name] / float64(len(jw)))
			d.PerSecond[t.Name] = round(d.PerSecond[t.Name] / float64(len(jw)))
		}
		r.Rows = append(r.Rows, Row{Label: t.Name, Cells: []float64{float64(weights[i]), round(float64(weights[i]) / float64(sumW)),
			d.Share[t.Name], d.PerSecond[t.Name], nan, nan, nan}})
	}
	d.JainWeighted, d.JainRaw, d.JainWeightMin = round(mean(jw)), round(mean(jr)), round(minOf(jw))
	r.Rows = append(r.Rows, Row{Label: "all", Cells: []float64{nan, 1, 1, nan, d.JainWeighted, d.JainWeightMin, d.JainRaw}})
	r.Notes = append(r.Notes, fmt.Sprintf("each tenant submits %d messages (3 connections, %.0f msgs/s in all) while the destination takes %s per message; then it takes %s and the shares are counted in %d one-second windows until the first tenant runs dry",
		l.Count, rate(len(res.Accepted("")), secondsSince(res.Start, lastAccepted(res))), fillDelay, delay, len(jw)),
		"jain_weighted is Jain's index of share/weight per window (1 = shares follow the weights); jain_raw of the raw shares (1 = equal)")
	r.Details = d
	return r, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	m := xs[0]
	for _, x := range xs[1:] {
		m = min(m, x)
	}
	return m
}

// BackoffDetails are backoff's raw figures.
type BackoffDetails struct {
	WallMessages    int            `json:"wall_messages"`
	WallAttempts    int            `json:"wall_attempts"`
	WallConnections int            `json:"wall_connections"`
	Minutes         float64        `json:"minutes_observed"`
	AttemptsPerMin  float64        `json:"attempts_per_minute"`
	PeakPerMinute   int            `json:"peak_attempts_in_a_minute"`
	OtherLatency    LatencySummary `json:"other_latency"`
	OtherAccepted   int            `json:"other_accepted"`
}

// Backoff: one destination answers 421 to every MAIL FROM while two
// tenants send at a steady rate to it and to others: attempts per minute
// against it, and the other destinations' delivery latency.
func Backoff(ctx context.Context, o Options) (*Report, error) {
	tenants := tenantSpecs("t1", "t2")
	e, err := o.setup(ctx, []sinkSpec{
		{name: "wall", behavior: Behavior{MailCode: 421}, domains: []string{"wall.bench.test"}},
		{name: "mx", domains: []string{"*"}},
	}, tenants)
	if err != nil {
		return nil, err
	}
	defer e.close()
	l := e.load("backoff", e.target.Senders(tenants, rcptsTo("rcpt@wall.bench.test", "rcpt@ok1.bench.test", "rcpt@ok2.bench.test")))
	l.Conns, l.Rate, l.Duration = 2, 6, time.Duration(o.size(40, 300))*time.Second
	res, err := Generate(ctx, l)
	if err != nil {
		return nil, err
	}
	var wallIDs, otherIDs []string
	for _, s := range res.Submissions {
		if !s.OK() {
			continue
		}
		// Every third message (1, 4, 7...) goes to the wall.
		if seqOf(s.ID)%3 == 1 {
			wallIDs = append(wallIDs, s.ID)
		} else {
			otherIDs = append(otherIDs, s.ID)
		}
	}
	if len(otherIDs) == 0 {
		return nil, errNothingAccepted
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	e.rec.WaitFor(wctx, otherIDs, 15*time.Second)
	cancel()
	end := time.Now()
	attempts := e.rec.Attempts("wall")
	d := BackoffDetails{WallMessages: len(wallIDs), WallAttempts: len(attempts), WallConnections: e.rec.Conns("wall"),
		Minutes: math.Round(end.Sub(res.Start).Minutes()*100) / 100}
	d.AttemptsPerMin = math.Round(float64(len(attempts))/d.Minutes*10) / 10
	perMin := map[int]int{}
	for _, a := range attempts {
		perMin[int(a.Sub(res.Start)/time.Minute)]++
	}
	for _, n := range perMin {
		d.PeakPerMinute = max(d.PeakPerMinute, n)
	}
	first := e.rec.First()
	var lat []time.Duration
	accepted := map[string]Submission{}
	for _, s := range res.Submissions {
		accepted[s.ID] = s
	}
	for _, id := range otherIDs {
		if a, ok := first[id]; ok {
			lat = append(lat, max(0, a.At.Sub(accepted[id].Accepted)))
		}
	}
	d.OtherLatency, d.OtherAccepted = Summarize(lat), len(otherIDs)
	nan := math.NaN()
	r := o.newReport("backoff", "messages", "attempts", "attempts/min", "peak_per_min", "connections", "p50_ms", "p99_ms", "max_ms", "delivered")
	r.Rows = []Row{
		{Label: "421 wall", Cells: []float64{float64(d.WallMessages), float64(d.WallAttempts), d.AttemptsPerMin, float64(d.PeakPerMinute), float64(d.WallConnections), nan, nan, nan, nan}},
		{Label: "others", Cells: []float64{float64(d.OtherAccepted), nan, nan, nan, nan, d.OtherLatency.P50ms, d.OtherLatency.P99ms, d.OtherLatency.MaxMs, float64(d.OtherLatency.Count)}},
	}
	r.Notes = append(r.Notes, fmt.Sprintf("2 tenants x %.0f msgs/s for %s, every third message to a destination answering 421 to every MAIL FROM; attempts are MAIL commands it saw over %.2f min",
		l.Rate, l.Duration, d.Minutes))
	r.Details = d
	return r, nil
}

// seqOf returns the sequence number at the end of a generated id.
func seqOf(id string) int {
	i := len(id)
	for i > 0 && id[i-1] >= '0' && id[i-1] <= '9' {
		i--
	}
	n := 0
	for _, c := range id[i:] {
		n = n*10 + int(c-'0')
	}
	return n
}

// LimitsDetails are limits' raw figures.
type LimitsDetails struct {
	Tried         int         `json:"tried"`
	Accepted      int         `json:"accepted"`
	Deferred450   int         `json:"deferred_450"`
	Other         int         `json:"other_replies"`
	Left          int         `json:"left"`
	MailboxHourly int         `json:"mailbox_hourly_limit"`
	AccountDaily  int         `json:"account_daily_limit"`
	Codes         map[int]int `json:"reply_codes"`
}

// Limits: a compromised mailbox tries to send many messages as fast as it
// can; how many are accepted, refused with 450 4.7.1, and how many leave.
func Limits(ctx context.Context, o Options) (*Report, error) {
	tenants := tenantSpecs("victim")
	tenants[0].MailboxHourly, tenants[0].AccountDaily = 100, 1000
	e, err := o.setup(ctx, []sinkSpec{{name: "mx", domains: []string{"*"}}}, tenants)
	if err != nil {
		return nil, err
	}
	defer e.close()
	l := e.load("limits", e.target.Senders(tenants, rcptsTo("target@spam-victims.bench.test")))
	l.Conns, l.Count, l.Duration = 2, o.size(2000, 10000), 5*time.Minute
	res, err := Generate(ctx, l)
	if err != nil {
		return nil, err
	}
	ids := res.Accepted("")
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	e.rec.WaitFor(wctx, ids, 10*time.Second)
	cancel()
	codes := res.CodeCounts("")
	d := LimitsDetails{Tried: len(res.Submissions), Accepted: len(ids), Deferred450: codes[450],
		MailboxHourly: tenants[0].MailboxHourly, AccountDaily: tenants[0].AccountDaily, Codes: codes}
	d.Other = d.Tried - d.Accepted - d.Deferred450
	first := e.rec.First()
	for _, s := range res.Submissions {
		if _, ok := first[s.ID]; ok {
			d.Left++
		}
	}
	r := o.newReport("limits", "tried", "accepted_250", "refused_450", "other", "left")
	r.Rows = []Row{{Label: "compromised", Cells: []float64{float64(d.Tried), float64(d.Accepted), float64(d.Deferred450), float64(d.Other), float64(d.Left)}}}
	r.Notes = append(r.Notes, fmt.Sprintf("one mailbox, 2 connections closed loop; tenant policy where the target has one: %d/hour per mailbox, %d/day per account",
		d.MailboxHourly, d.AccountDaily))
	r.Details = d
	return r, nil
}

// CrashDetails are crash's raw figures.
type CrashDetails struct {
	Submitted      int      `json:"submitted"`
	Acknowledged   int      `json:"acknowledged"`
	ArrivedOfAcked int      `json:"arrived_of_acknowledged"`
	Lost           int      `json:"lost"`
	LostIDs        []string `json:"lost_ids,omitempty"`
	DuplicatedIDs  int      `json:"duplicated_ids"`
	ExtraCopies    int      `json:"extra_copies"`
	UnackedArrived int      `json:"unacknowledged_but_arrived"`
	KilledAfterS   float64  `json:"killed_after_s"`
	RestartTookS   float64  `json:"restart_took_s"`
	NetworkErrors  int      `json:"network_errors"`
	// MissingBeforeFlush acknowledged messages had not arrived 30 s after
	// the last arrival; Flushed queued messages were then made due
	// (-1: the whole queue, count unknown).
	MissingBeforeFlush int `json:"missing_before_flush"`
	Flushed            int `json:"flushed"`
}

// Crash: four tenants submit closed loop; the target is SIGKILLed mid
// load and restarted on the same spool while the generator reconnects.
// Every message acknowledged with 250 must arrive at least once; lost and
// duplicated ones are counted.
func Crash(ctx context.Context, o Options) (*Report, error) {
	tenants := tenantSpecs(names("t", 4)...)
	e, err := o.setup(ctx, []sinkSpec{{name: "mx", domains: []string{"*"}}}, tenants)
	if err != nil {
		return nil, err
	}
	defer e.close()
	l := e.load("crash", e.target.Senders(tenants, rcptsTo("rcpt@dest.bench.test")))
	l.Conns, l.Duration = 2, time.Duration(o.size(16, 60))*time.Second
	killAfter := l.Duration / 3
	done := make(chan Result, 1)
	go func() {
		defer recoverLog(o.Log, "crash load")
		res, _ := Generate(ctx, l)
		done <- res
	}()
	d := CrashDetails{KilledAfterS: killAfter.Seconds()}
	select {
	case <-time.After(killAfter):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := e.target.Kill(); err != nil {
		<-done
		return nil, fmt.Errorf("kill: %w", err)
	}
	restartStart := time.Now()
	if err := e.target.Restart(ctx); err != nil {
		<-done
		return nil, fmt.Errorf("restart: %w", err)
	}
	d.RestartTookS = math.Round(time.Since(restartStart).Seconds()*100) / 100
	res := <-done
	ids := res.Accepted("")
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	missing := e.rec.WaitFor(wctx, ids, 30*time.Second)
	cancel()
	d.MissingBeforeFlush = missing
	if f, ok := e.target.(Flusher); ok && missing > 0 {
		// Deliveries in flight at the kill were given a retry time before
		// they were tried (minutes away); make them due, as an operator
		// would, rather than wait out the schedule.
		d.Flushed, err = f.Flush(ctx)
		if err != nil {
			return nil, fmt.Errorf("flush after restart: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		e.rec.WaitFor(wctx, ids, 30*time.Second)
		cancel()
	}
	counts := e.rec.Counts()
	d.Submitted, d.Acknowledged = len(res.Submissions), len(ids)
	for _, s := range res.Submissions {
		n := counts[s.ID]
		switch {
		case s.OK() && n == 0:
			d.Lost++
			if len(d.LostIDs) < 20 {
				d.LostIDs = append(d.LostIDs, s.ID)
			}
		case s.OK():
			d.ArrivedOfAcked++
		case n > 0:
			d.UnackedArrived++
		}
		if s.OK() && n > 1 {
			d.DuplicatedIDs++
			d.ExtraCopies += n - 1
		}
		if s.Code == 0 {
			d.NetworkErrors++
		}
	}
	r := o.newReport("crash", "acknowledged", "arrived", "lost", "duplicated", "extra_copies", "unacked_arrived", "restart_s")
	r.Rows = []Row{{Label: "SIGKILL+restart", Cells: []float64{float64(d.Acknowledged), float64(d.ArrivedOfAcked), float64(d.Lost),
		float64(d.DuplicatedIDs), float64(d.ExtraCopies), float64(d.UnackedArrived), d.RestartTookS}}}
	r.Notes = append(r.Notes, fmt.Sprintf("4 tenants x 2 connections closed loop for %s; SIGKILL at %.1fs, restarted on the same spool; %d submissions saw a network error (unacknowledged)",
		l.Duration, killAfter.Seconds(), d.NetworkErrors))
	if d.MissingBeforeFlush > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d acknowledged messages had not arrived 30 s after the last arrival (deferred by the crash); the suite then flushed the queue (%d messages) and waited again",
			d.MissingBeforeFlush, d.Flushed))
	}
	if d.Lost > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("LOST acknowledged messages, e.g. %v", d.LostIDs))
	}
	r.Details = d
	return r, nil
}

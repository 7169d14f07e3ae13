package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"time"
)

// Options configure a scenario run.
type Options struct {
	Factory TargetFactory
	// Full runs the sizes (a 100,000-message newsletter, 10,000
	// messages from a compromised mailbox...); otherwise short sizes that
	// keep `make bench` under five minutes.
	Full bool
	// SinkBasePort, if set, makes the sinks listen on 127.0.0.1 at this
	// port and the next ones in order (for an external target whose routes
	// are fixed); 0 picks free ports.
	SinkBasePort int
	Out          io.Writer
	Log          *slog.Logger
}

// Scenario is one named measurement.
type Scenario struct {
	Name string
	Run  func(ctx context.Context, o Options) (*Report, error)
}

// Scenarios lists every scenario in the order `make bench` runs them.
var Scenarios = []Scenario{
	{"throughput", Throughput},
	{"noisy-neighbor", NoisyNeighbor},
	{"fairness", Fairness},
	{"backoff", Backoff},
	{"limits", Limits},
	{"crash", Crash},
}

// sinkSpec is one destination of a scenario: a sink and the recipient
// domains routed to it.
type sinkSpec struct {
	name     string
	behavior Behavior
	domains  []string
}

// env is a scenario's running world: sinks, a recorder and the target.
type env struct {
	rec    *Recorder
	sinks  map[string]*Sink
	target Target
	order  []*Sink
}

func (e *env) close() {
	if e.target != nil {
		e.target.Stop()
	}
	for _, s := range e.order {
		_ = s.Close()
	}
}

func (o *Options) setup(ctx context.Context, specs []sinkSpec, tenants []TenantSpec) (*env, error) {
	e := &env{rec: NewRecorder(), sinks: map[string]*Sink{}}
	var routes []Route
	for i, sp := range specs {
		addr := "127.0.0.1:0"
		if o.SinkBasePort > 0 {
			addr = "127.0.0.1:" + strconv.Itoa(o.SinkBasePort+i)
		}
		s, err := StartSink(sp.name, addr, sp.behavior, e.rec, o.Log)
		if err != nil {
			e.close()
			return nil, err
		}
		e.sinks[sp.name] = s
		e.order = append(e.order, s)
		for _, d := range sp.domains {
			routes = append(routes, Route{Domain: d, To: s.Addr()})
		}
	}
	if o.SinkBasePort > 0 {
		for _, r := range routes {
			fmt.Fprintf(o.Out, "  route %s -> %s\n", r.Domain, r.To)
		}
	}
	t, err := o.Factory.Start(ctx, routes, tenants)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("start %s: %w", o.Factory.Name(), err)
	}
	e.target = t
	return e, nil
}

func (e *env) load(runID string, senders []Sender) Load {
	return Load{Target: e.target.Submission(), StartTLS: e.target.StartTLS(), RunID: runID, Senders: senders, Size: 4096}
}

// tenantSpecs names n tenants t1..tn (or with the given names), each with
// its domain and one mailbox.
func tenantSpecs(names ...string) []TenantSpec {
	out := make([]TenantSpec, len(names))
	for i, n := range names {
		d := n + ".bench.test"
		out[i] = TenantSpec{Name: n, Weight: 1, Domain: d, User: "sender@" + d, Password: "bench-" + n + "-passphrase-0123"}
	}
	return out
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i+1)
	}
	return out
}

func rcptsTo(addrs ...string) func(TenantSpec) []string {
	return func(TenantSpec) []string { return addrs }
}

func (o *Options) newReport(scenario string, cols ...string) *Report {
	return &Report{Scenario: scenario, Target: o.Factory.Name(), Machine: Machine(), Time: time.Now().UTC(),
		Columns: cols, Notes: append([]string(nil), o.Factory.Notes()...)}
}

func (o *Options) size(short, full int) int {
	if o.Full {
		return full
	}
	return short
}

// latencies returns the submit-250-to-first-arrival latencies of res's
// accepted messages of tenant ("" for all) that arrived.
func latencies(res Result, first map[string]Arrival, tenant string) []time.Duration {
	var ds []time.Duration
	for _, s := range res.Submissions {
		if !s.OK() || (tenant != "" && s.Tenant != tenant) {
			continue
		}
		if a, ok := first[s.ID]; ok {
			ds = append(ds, max(0, a.At.Sub(s.Accepted)))
		}
	}
	return ds
}

func secondsSince(start, end time.Time) float64 { return end.Sub(start).Seconds() }

func rate(n int, d float64) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return math.Round(float64(n)/d*10) / 10
}

func lastAccepted(res Result) time.Time {
	var t time.Time
	for _, s := range res.Submissions {
		if s.OK() && s.Accepted.After(t) {
			t = s.Accepted
		}
	}
	return t
}

// ThroughputDetails are throughput's raw figures per message size.
type ThroughputDetails struct {
	Size               int            `json:"size_bytes"`
	Submitted          int            `json:"submitted"`
	Accepted           int            `json:"accepted"`
	Delivered          int            `json:"delivered"`
	AcceptedPerSec     float64        `json:"accepted_per_sec"`
	DeliveredPerSec    float64        `json:"delivered_per_sec"`
	CPUSecondsPer1000  float64        `json:"cpu_seconds_per_1000"`
	PeakRSSMiB         float64        `json:"peak_rss_mib"`
	DeliveryLatency    LatencySummary `json:"delivery_latency"`
	ReplyCodes         map[int]int    `json:"reply_codes"`
	ConnectionsPerTent int            `json:"connections_per_tenant"`
}

// Throughput submits closed-loop from 4 tenants, 4 connections each, with
// 4 KB and then 100 KB messages, each size on a fresh target: accepted and
// delivered messages per second, target CPU seconds per 1,000 messages and
// its peak RSS.
func Throughput(ctx context.Context, o Options) (*Report, error) {
	r := o.newReport("throughput", "accepted/s", "delivered/s", "cpu_s/1000msg", "peak_rss_MiB", "lat_p50_ms", "lat_p99_ms", "delivered", "accepted")
	var details []ThroughputDetails
	for _, c := range []struct{ size, count int }{{4 << 10, o.size(600, 5000)}, {100 << 10, o.size(120, 1000)}} {
		tenants := tenantSpecs(names("t", 4)...)
		e, err := o.setup(ctx, []sinkSpec{{name: "mx", domains: []string{"*"}}}, tenants)
		if err != nil {
			return nil, err
		}
		d, err := throughputRun(ctx, o, e, tenants, c.size, c.count)
		e.close()
		if err != nil {
			return nil, err
		}
		details = append(details, d)
		cpu, rss := d.CPUSecondsPer1000, d.PeakRSSMiB
		if rss == 0 { // not measured
			cpu, rss = math.NaN(), math.NaN()
		}
		r.Rows = append(r.Rows, Row{Label: fmt.Sprintf("%dKB", c.size>>10), Cells: []float64{d.AcceptedPerSec, d.DeliveredPerSec,
			cpu, rss, d.DeliveryLatency.P50ms, d.DeliveryLatency.P99ms, float64(d.Delivered), float64(d.Accepted)}})
	}
	r.Notes = append(r.Notes, "closed loop: 4 tenants x 4 connections, one recipient per message, one sink on loopback answering at once")
	r.Details = details
	return r, nil
}

func throughputRun(ctx context.Context, o Options, e *env, tenants []TenantSpec, size, perTenant int) (ThroughputDetails, error) {
	const conns = 4
	before, uerr := e.target.Usage()
	l := e.load("tp"+strconv.Itoa(size), e.target.Senders(tenants, rcptsTo("rcpt@dest.bench.test")))
	l.Size, l.Conns, l.Count, l.Duration = size, conns, perTenant, 3*time.Minute
	res, err := Generate(ctx, l)
	if err != nil {
		return ThroughputDetails{}, err
	}
	ids := res.Accepted("")
	if len(ids) == 0 {
		return ThroughputDetails{}, fmt.Errorf("%w (replies: %v)", errNothingAccepted, res.CodeCounts(""))
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	e.rec.WaitFor(wctx, ids, 30*time.Second)
	cancel()
	first := e.rec.First()
	var lastArrival time.Time
	delivered := 0
	for _, id := range ids {
		if a, ok := first[id]; ok {
			delivered++
			if a.At.After(lastArrival) {
				lastArrival = a.At
			}
		}
	}
	d := ThroughputDetails{Size: size, Submitted: len(res.Submissions), Accepted: len(ids), Delivered: delivered,
		AcceptedPerSec:  rate(len(ids), secondsSince(res.Start, lastAccepted(res))),
		DeliveredPerSec: rate(delivered, secondsSince(res.Start, lastArrival)),
		DeliveryLatency: Summarize(latencies(res, first, "")), ReplyCodes: res.CodeCounts(""), ConnectionsPerTent: conns,
		CPUSecondsPer1000: math.NaN(), PeakRSSMiB: math.NaN()}
	if after, err := e.target.Usage(); err == nil && uerr == nil && len(ids) > 0 {
		d.CPUSecondsPer1000 = math.Round((after.CPUSeconds-before.CPUSeconds)/float64(len(ids))*1000*100) / 100
		d.PeakRSSMiB = math.Round(float64(after.PeakRSSKiB)/1024*10) / 10
	}
	return d, nil
}

// errNothingAccepted is returned when a scenario's target took no mail at
// all, which makes every other figure meaningless.
var errNothingAccepted = errors.New("bench: the target accepted no message; see its log")

package reputation

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"fairway/tenant"
)

// t0 is when every test starts: a Friday morning, mid-hour.
var t0 = time.Date(2026, 11, 20, 9, 7, 0, 0, time.UTC)

// testClock is moved only by Advance.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The test pools: two established standard sources, one each for
// probation and quarantine.
var (
	ipStd1  = netip.MustParseAddr("127.0.0.2")
	ipStd2  = netip.MustParseAddr("127.0.0.3")
	ipProb  = netip.MustParseAddr("127.0.0.8")
	ipQuar  = netip.MustParseAddr("127.0.0.9")
	ipWarm  = netip.MustParseAddr("127.0.0.5")
	ipSolo  = netip.MustParseAddr("127.0.0.6")
	siteMX  = "mx.sink.test"
	siteAlt = "mx.other.test"
)

func testPools() map[string][]Source {
	return map[string][]Source{
		"standard":   {{IP: ipStd1, EHLO: "out1.test"}, {IP: ipStd2, EHLO: "out2.test"}},
		"probation":  {{IP: ipProb, EHLO: "prob.test"}},
		"quarantine": {{IP: ipQuar, EHLO: "quar.test"}},
	}
}

func testTierPools() map[Tier]string {
	return map[Tier]string{Trusted: "standard", Standard: "standard", Probation: "probation", Quarantine: "quarantine", Suspended: "quarantine"}
}

// env is a service over a real directory (tenants alpha and beta) with a
// fake clock; every change it reports is kept.
type env struct {
	t       testing.TB
	clk     *testClock
	dir     *tenant.Directory
	svc     *Service
	opts    Options
	dataDir string
	logs    *syncBuffer
	reg     *prometheus.Registry

	mu      sync.Mutex
	changes []Change
}

func newEnv(t testing.TB, edit func(*Options)) *env {
	t.Helper()
	e := &env{t: t, clk: &testClock{now: t0}, logs: &syncBuffer{}, dataDir: filepath.Join(t.TempDir(), "reputation")}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir, err := tenant.Open(t.TempDir(), tenant.Options{Logger: log, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	for _, err := range []error{
		dir.AddTenant("alpha", tenant.Policy{}),
		dir.AddDomain("alpha.example", "alpha"),
		dir.AddTenant("beta", tenant.Policy{}),
		dir.AddDomain("beta.example", "beta"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.dir = dir
	e.opts = Options{
		Clock: e.clk, Logger: log, Pools: testPools(), TierPools: testTierPools(), Directory: dir,
		Rand: func() float64 { return 0 },
		OnChange: func(c Change) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.changes = append(e.changes, c)
		},
	}
	if edit != nil {
		edit(&e.opts)
	}
	e.open()
	t.Cleanup(func() {
		if err := e.svc.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	o := e.opts
	o.Registerer = e.reg
	svc, err := Open(e.dataDir, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
}

// restart closes the service and opens it again on the same store.
func (e *env) restart() {
	e.t.Helper()
	if err := e.svc.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) tick() { e.svc.Tick(context.Background()) }

func (e *env) takeChanges() []Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.changes
	e.changes = nil
	return c
}

// send records n transactions of one outcome for a tenant.
func (e *env) send(tenantName string, src netip.Addr, site string, o Outcome, n int) {
	for range n {
		e.svc.Record(Event{Tenant: tenantName, Source: src, Site: site, Outcome: o, Count: 1})
	}
}

// picks asks PickSource n times and counts the sources it gave.
func (e *env) picks(pool, site string, n int) (map[netip.Addr]int, int) {
	got := map[netip.Addr]int{}
	refused := 0
	for range n {
		src, ok := e.svc.PickSource(pool, site, netip.Addr{})
		if !ok {
			refused++
			continue
		}
		got[src.IP]++
	}
	return got, refused
}

// metricValue reads a gauge's or a counter's value.
func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	switch {
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	}
	t.Fatalf("metric %v is neither a gauge nor a counter", m.Desc())
	return 0
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fairway/fairq"
)

// newMetrics makes the registry every component registers into, with the
// queue's per-tenant depths read at scrape time (fairq.Stats costs
// O(tenants + lanes), not O(queued deliveries)).
func newMetrics(q *fairq.Queue) (*prometheus.Registry, http.Handler) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		queueCollector{q: q, now: time.Now})
	return reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

var (
	queueDepthDesc = prometheus.NewDesc("fairway_queue_depth",
		"Queued deliveries per tenant by state (ready, deferred, held, in_flight).", []string{"tenant", "state"}, nil)
	queueOldestDesc = prometheus.NewDesc("fairway_queue_oldest_age_seconds",
		"Age of the tenant's oldest queued message.", []string{"tenant"}, nil)
	tenantWeightDesc = prometheus.NewDesc("fairway_queue_tenant_weight",
		"The tenant's fair-queue weight.", []string{"tenant"}, nil)
	poolAssignmentDesc = prometheus.NewDesc("fairway_pool_assignment",
		"1 for the outbound IP pool the tenant's queue uses (\"\" is the default pool).", []string{"tenant", "pool"}, nil)
	laneInFlightDesc = prometheus.NewDesc("fairway_lane_in_flight",
		"Deliveries in flight per (pool, site) lane.", []string{"pool", "site"}, nil)
	laneBackoffDesc = prometheus.NewDesc("fairway_lane_backoff_seconds",
		"Seconds until the lane's backoff ends (0 when not backing off).", []string{"pool", "site"}, nil)
	quarantinedDesc = prometheus.NewDesc("fairway_queue_quarantined",
		"Queue entries set aside as unreadable.", nil, nil)
)

// queueCollector exports fairq.Stats.
type queueCollector struct {
	q   *fairq.Queue
	now func() time.Time
}

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueDepthDesc, queueOldestDesc, tenantWeightDesc, poolAssignmentDesc,
		laneInFlightDesc, laneBackoffDesc, quarantinedDesc} {
		ch <- d
	}
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.q.Stats()
	now := c.now()
	for _, t := range st.Tenants {
		for state, n := range map[string]int{"ready": t.Ready, "deferred": t.Deferred, "held": t.Held, "in_flight": t.InFlight} {
			ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), t.Tenant, state)
		}
		age := 0.0
		if !t.Oldest.IsZero() {
			age = now.Sub(t.Oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, age, t.Tenant)
		ch <- prometheus.MustNewConstMetric(tenantWeightDesc, prometheus.GaugeValue, float64(t.Weight), t.Tenant)
		ch <- prometheus.MustNewConstMetric(poolAssignmentDesc, prometheus.GaugeValue, 1, t.Tenant, t.Pool)
	}
	for _, l := range st.Lanes {
		ch <- prometheus.MustNewConstMetric(laneInFlightDesc, prometheus.GaugeValue, float64(l.InFlight), l.Pool, l.Site)
		backoff := 0.0
		if !l.BackoffUntil.IsZero() {
			backoff = l.BackoffUntil.Sub(now).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(laneBackoffDesc, prometheus.GaugeValue, backoff, l.Pool, l.Site)
	}
	ch <- prometheus.MustNewConstMetric(quarantinedDesc, prometheus.GaugeValue, float64(st.Quarantined))
}

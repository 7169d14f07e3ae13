package reputation

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	tier     *prometheus.GaugeVec
	held     *prometheus.GaugeVec
	outcomes *prometheus.CounterVec
	listed   *prometheus.GaugeVec
	feedback *prometheus.CounterVec
	panics   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tier: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fairway_reputation_tier",
			Help: "Tenant's reputation tier: 1 trusted, 2 standard, 3 probation, 4 quarantine, 5 suspended."}, []string{"tenant"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fairway_reputation_held",
			Help: "1 while reputation holds the tenant for review (spike or suspension)."}, []string{"tenant"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fairway_reputation_outcomes_total",
			Help: "Delivery outcomes and complaints recorded, by tenant."}, []string{"tenant", "outcome"}),
		listed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fairway_reputation_source_listed",
			Help: "1 while the source address is listed on the blocklist zone."}, []string{"source", "zone"}),
		feedback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fairway_reputation_feedback_total",
			Help: "Receiver replies that backed a source off a site, by kind (throttled, blocked)."}, []string{"source", "kind"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "fairway_reputation_panics_total",
			Help: "Panics recovered in reputation's goroutines."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.tier, m.held, m.outcomes, m.listed, m.feedback, m.panics} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("reputation: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) outcome(tenant string, o Outcome) prometheus.Counter {
	return m.outcomes.WithLabelValues(tenant, o.String())
}

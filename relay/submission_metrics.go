package relay

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// submissionMetrics are the submission server's Prometheus counters. The
// tenant label is empty where no tenant is known yet (before AUTH,
// connection caps).
type submissionMetrics struct {
	submissions *prometheus.CounterVec // messages at the end of DATA: accepted, rejected (5xx), tempfail (4xx)
	rejections  *prometheus.CounterVec // every refusal, by reason (replies.go)
	rateHits    *prometheus.CounterVec // recipients refused by a send limit
	panics      prometheus.Counter
}

func newSubmissionMetrics(reg prometheus.Registerer) (*submissionMetrics, error) {
	m := &submissionMetrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_submissions_total",
			Help: "Messages that reached the end of DATA, by tenant and result (accepted; rejected: 5xx; tempfail: 4xx).",
		}, []string{"tenant", "result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_submission_rejections_total",
			Help: "Submission commands and connections refused, by tenant and reason.",
		}, []string{"tenant", "reason"}),
		rateHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_rate_limit_hits_total",
			Help: "Recipients refused by a send limit, by tenant and limit (mailbox_hourly, account_daily).",
		}, []string{"tenant", "limit"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fairway_submission_panics_total",
			Help: "Panics recovered in the submission server.",
		}),
	}
	for _, c := range []prometheus.Collector{m.submissions, m.rejections, m.rateHits, m.panics} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("submission metrics: %w", err)
		}
	}
	return m, nil
}

// smtpErrorLog takes go-smtp's ErrorLog lines into slog. go-smtp recovers
// panics in command handlers and reports them here ("panic serving ..."),
// so they are counted too.
type smtpErrorLog struct {
	log    *slog.Logger
	panics prometheus.Counter
}

func (l smtpErrorLog) Printf(format string, v ...any) { l.report(fmt.Sprintf(format, v...)) }

func (l smtpErrorLog) Println(v ...any) { l.report(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l smtpErrorLog) report(msg string) {
	switch {
	case bdatRacePanic(msg):
		first, _, _ := strings.Cut(msg, "\n")
		l.log.Info("BDAT transfer abandoned by the client before it began", "detail", first)
	case strings.HasPrefix(msg, "panic"):
		l.panics.Inc()
		l.log.Error("panic in SMTP session", "detail", msg)
	default:
		l.log.Info("smtp connection error", "detail", msg)
	}
}

// bdatRacePanic recognizes a panic go-smtp v0.25.1 recovers when a client
// sends "BDAT 0" (no LAST) and then closes the connection or starts TLS:
// the goroutine that runs Data for BDAT asks the connection for its
// session after the connection dropped it, and calls Data on nil. Nothing
// of fairway is on that stack and nothing is lost (the transfer had not
// begun), but any client can cause it at will: it is logged as one line,
// without the stack, and not counted as a panic
// (FuzzSubmissionSession found it).
func bdatRacePanic(msg string) bool {
	return strings.HasPrefix(msg, "panic") &&
		strings.Contains(msg, "nil pointer dereference") &&
		strings.Contains(msg, "go-smtp.(*Conn).handleBdat.func1()") &&
		!strings.Contains(msg, "fairway/")
}

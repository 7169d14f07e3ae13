package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"fairway/fairq"
	"fairway/tenant"
	"fairway/tenant/conncap"
)

// Defaults of MXOptions.
const (
	DefaultMaxMessageBytes = 25 << 20
	DefaultMaxRecipients   = 100
	DefaultMaxConnsPerIP   = 10
	DefaultMaxConns        = 1000
	DefaultReadTimeout     = 5 * time.Minute
	DefaultWriteTimeout    = 5 * time.Minute
	DefaultDataTimeout     = 10 * time.Minute
)

// headerRoom is what inbound may add to a message (Received,
// Authentication-Results): MaxMessageBytes must leave it below
// fairq.MaxBodySize, since a message may wait in the queue.
const headerRoom = 1 << 20

// MXOptions configure the MX server.
type MXOptions struct {
	Hostname  string    // banner, EHLO, Received, Authentication-Results (required)
	Directory Directory // tenant.Directory (required)
	// Store is mailstore (required unless LMTP is set).
	Store LocalStore
	// Spool is fairq: external alias targets and retries (required).
	Spool Spool
	// Reports takes mail to ReportAddress (DMARC aggregate reports), which
	// is accepted although it is not in a hosted domain. Nil: the address
	// is not special.
	Reports       ReportSink
	ReportAddress string
	// Complaints takes ARF feedback mail to ComplaintAddress. Nil: the
	// address is not special.
	Complaints       ComplaintSink
	ComplaintAddress string
	Resolver         Resolver    // DNS of SPF, DKIM and DMARC (required)
	TLS              *tls.Config // STARTTLS certificate; nil: no STARTTLS
	Clock            Clock       // default the system clock
	Logger           *slog.Logger
	// Registerer receives the fairway_inbound_ metrics; default a private
	// registry (nothing exported).
	Registerer prometheus.Registerer

	MaxMessageBytes int64 // default 25 MB
	MaxRecipients   int   // per message; default 100
	MaxConnsPerIP   int   // per IPv4 address or IPv6 /64; default 10
	MaxConns        int   // in total; default 1000
	// ReadTimeout is the idle time allowed per command line; WriteTimeout
	// per reply. DataTimeout bounds the whole DATA transfer (default
	// 10 min). Defaults 5 min.
	ReadTimeout, WriteTimeout, DataTimeout time.Duration
	// LMTP, if set, delivers to an external LMTP server instead of Store:
	// "unix:/path" or "host:port".
	LMTP string
}

// MX is the inbound MX server.
type MX struct {
	opts    MXOptions
	log     *slog.Logger
	metrics *mxMetrics
	srv     *smtp.Server
	conns   *conncap.Tracker
	auth    *authChecker

	reportAddr, complaintAddr string

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener

	refuser *conncap.Refuser
}

// NewMX checks the options and makes the server.
func NewMX(o MXOptions) (*MX, error) {
	switch {
	case o.Hostname == "":
		return nil, errors.New("inbound: no hostname")
	case o.Directory == nil:
		return nil, errors.New("inbound: no directory")
	case o.Store == nil && o.LMTP == "":
		return nil, errors.New("inbound: no mail store and no LMTP server")
	case o.Spool == nil:
		return nil, errors.New("inbound: no spool")
	case o.Resolver == nil:
		return nil, errors.New("inbound: no DNS resolver")
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	setDefault(&o.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&o.MaxRecipients, DefaultMaxRecipients)
	setDefault(&o.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setDefault(&o.MaxConns, DefaultMaxConns)
	setDefault(&o.ReadTimeout, DefaultReadTimeout)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
	setDefault(&o.DataTimeout, DefaultDataTimeout)
	if o.MaxMessageBytes > fairq.MaxBodySize-headerRoom {
		return nil, fmt.Errorf("inbound: message size limit %d over the queue's %d less %d for added headers",
			o.MaxMessageBytes, fairq.MaxBodySize, headerRoom)
	}
	if o.LMTP != "" {
		if _, _, err := lmtpTarget(o.LMTP); err != nil {
			return nil, err
		}
	}
	m := &MX{opts: o, log: o.Logger.With("component", "inbound"), auth: &authChecker{res: o.Resolver},
		conns: conncap.New(o.MaxConnsPerIP, o.MaxConns, "mx")}
	var err error
	if o.Reports != nil {
		if m.reportAddr, err = tenant.NormalizeAddress(o.ReportAddress); err != nil {
			return nil, fmt.Errorf("inbound: report address: %w", err)
		}
	}
	if o.Complaints != nil {
		if m.complaintAddr, err = tenant.NormalizeAddress(o.ComplaintAddress); err != nil {
			return nil, fmt.Errorf("inbound: complaint address: %w", err)
		}
	}
	if m.metrics, err = newMXMetrics(o.Registerer); err != nil {
		return nil, err
	}
	m.refuser = conncap.NewRefuser(maxRefusing, refuseTimeout, func(v any) {
		m.metrics.panics.Inc()
		m.log.Error("panic", "where", "refuse connection", "panic", fmt.Sprint(v))
	})
	srv := smtp.NewServer(smtp.BackendFunc(m.newSession))
	srv.Domain = o.Hostname
	srv.TLSConfig = o.TLS
	// AUTH must reach the session to get the contract's 503 5.5.1 (go-smtp
	// would answer 523 before TLS); it is never advertised.
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = o.MaxMessageBytes
	srv.MaxRecipients = 0 // the session enforces it, counted and logged
	srv.ReadTimeout = o.ReadTimeout
	srv.WriteTimeout = o.WriteTimeout
	srv.ErrorLog = smtpErrorLog{log: m.log, panics: m.metrics.panics}
	m.srv = srv
	return m, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Serve serves the MX protocol on ln (plain text, STARTTLS offered). It
// returns nil once the server is shut down, or ln's error.
func (m *MX) Serve(ln net.Listener) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		ln.Close()
		return nil
	}
	cl := &capListener{Listener: ln, m: m}
	m.listeners = append(m.listeners, cl)
	m.mu.Unlock()
	err := m.srv.Serve(cl)
	if m.isClosed() || errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

func (m *MX) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *MX) markClosed() []net.Listener {
	m.refuser.Stop() // connections over a cap are closed without a word from now on
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return m.listeners
}

// Shutdown stops accepting connections and waits for the open ones to end
// until ctx is done, then closes those left: a transaction cut off gets no
// reply, so its client retries, and nothing half-received is stored.
func (m *MX) Shutdown(ctx context.Context) error {
	lns := m.markClosed()
	err := m.srv.Shutdown(ctx)
	for _, ln := range lns {
		ln.Close()
	}
	if ctx.Err() != nil {
		m.conns.CloseAll()
	}
	m.refuser.Wait(ctx) // each refusal ends within refuseTimeout
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
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
	if bdatRacePanic(msg) {
		first, _, _ := strings.Cut(msg, "\n")
		l.log.Info("BDAT transfer abandoned by the client before it began", "detail", first)
		return
	}
	if strings.HasPrefix(msg, "panic") {
		l.panics.Inc()
		l.log.Error("panic in SMTP session", "detail", msg)
		return
	}
	l.log.Info("smtp connection error", "detail", msg)
}

// bdatRacePanic recognizes a panic go-smtp v0.25.1 recovers when a client
// sends "BDAT 0" (no LAST) and then closes the connection: the goroutine
// that runs Data for BDAT calls it on the session the connection already
// dropped. Nothing of fairway is on that stack and nothing is lost (the
// transfer had not begun), but any client can cause it at will: it is
// logged as one line and not counted as a panic (relay found it first;
// FuzzMXSession has it as a seed).
func bdatRacePanic(msg string) bool {
	return strings.HasPrefix(msg, "panic") &&
		strings.Contains(msg, "nil pointer dereference") &&
		strings.Contains(msg, "go-smtp.(*Conn).handleBdat.func1()") &&
		!strings.Contains(msg, "fairway/")
}

// mxMetrics are inbound's Prometheus metrics.
type mxMetrics struct {
	messages   *prometheus.CounterVec // result
	checks     *prometheus.CounterVec // check, result
	rejections *prometheus.CounterVec // reason
	deliveries *prometheus.CounterVec // tenant, result
	panics     prometheus.Counter
}

func newMXMetrics(reg prometheus.Registerer) (*mxMetrics, error) {
	m := &mxMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fairway_inbound_messages_total",
			Help: "Messages received on the MX port by outcome: accepted, rejected (5xx), tempfail (4xx)."}, []string{"result"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fairway_inbound_checks_total",
			Help: "Sender authentication results of MX messages, by check (spf, dkim, dmarc) and result."}, []string{"check", "result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fairway_inbound_rejections_total",
			Help: "MX commands and connections refused, by reason."}, []string{"reason"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fairway_inbound_deliveries_total",
			Help: "Copies handed on per receiving tenant, by result: inbox, quarantine, forwarded, deferred, failed, withheld."}, []string{"tenant", "result"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "fairway_inbound_panics_total",
			Help: "Panics recovered in MX sessions and inbound goroutines."}),
	}
	for _, c := range []prometheus.Collector{m.messages, m.checks, m.rejections, m.deliveries, m.panics} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("inbound: register metrics: %w", err)
		}
	}
	return m, nil
}

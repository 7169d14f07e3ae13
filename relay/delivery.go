package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"fairway/fairq"
	"fairway/reputation"
)

// Delivery, the outbound half, one lease at a time:
//
//  1. A worker takes a lease from fairq (Next): one message's recipients at
//     one destination domain. fairq has already recorded the attempt, so a
//     crash from here on never becomes a hot retry loop.
//  2. Next hop (nexthop.go): a static route, else the MX hosts in preference
//     order, else the domain's own A/AAAA; a null MX is a permanent failure.
//     The hop's site (route target or MX host set) is told to fairq with
//     SetSite, so domains on the same servers share one (pool, site) lane:
//     one concurrency limit, which is the connection cap, and one backoff.
//  3. Connection: an idle connection to the site from the same source pool
//     is reset (RSET) and reused; else hosts are dialed in order, each
//     address in order, bound to a source IP of the lease's pool, greeted
//     with that source's EHLO name, with opportunistic STARTTLS.
//  4. One transaction for all recipients: MAIL, one RCPT each (per-recipient
//     replies), DATA, the body; the reply to the final dot applies to every
//     accepted recipient. 2xx delivered, 4xx temporary, 5xx permanent.
//  5. Connection-level failures (no connection, 4xx at greeting, EHLO or
//     MAIL, 421 anywhere, a broken or timed-out session) defer the whole
//     delivery and report LaneFailed; a working session reports
//     LaneSucceeded. The connection goes back to the idle pool if healthy.
//  6. Complete hands the per-recipient results to fairq, which removes,
//     retries or bounces them; bounces come back to Bounce (dsn.go), which
//     queues an RFC 3464 report to the sender.

// Source is one outbound address of an IP pool and the name it gives in EHLO.
type Source struct {
	IP   netip.Addr
	EHLO string
}

// Defaults for DeliveryOptions fields left zero.
const (
	// DefaultDeliveryWorkers matches Postfix's default_process_limit: a
	// worker mostly waits on a remote server, and fairq's lane limit (20 per
	// site by default) keeps any one receiver from getting them all.
	DefaultDeliveryWorkers = 100
	DefaultDeliveryPort    = 25
	DefaultDialTimeout     = 30 * time.Second
	DefaultCommandTimeout  = 5 * time.Minute  // RFC 5321 section 4.5.3.2: MAIL, RCPT, greeting
	DefaultDataTimeout     = 10 * time.Minute // RFC 5321 section 4.5.3.2.6: reply after the final dot
	DefaultIdleTimeout     = 10 * time.Second
	DefaultMaxIdlePerSite  = 20
	DefaultMaxConnMessages = 100
)

// DeliveryOptions configure the delivery workers.
type DeliveryOptions struct {
	// Hostname is the EHLO name when no pool source applies, the DSN
	// Reporting-MTA and the MAILER-DAEMON domain. Required.
	Hostname string
	// Queue is where work comes from and results go: fairq. Required.
	Queue DeliveryQueue
	// Spool is where DSNs are enqueued; default Queue.
	Spool Spool
	// Resolver answers MX and A/AAAA lookups. Required.
	Resolver Resolver
	// Routes are static next hops, checked before MX.
	Routes []Route
	// Pools are the outbound IP pools by name. A lease's pool "" means
	// DefaultPool. A pool that is not configured (or no pools at all) means
	// no source binding and EHLO as Hostname.
	Pools       map[string][]Source
	DefaultPool string
	// Local, if set, takes deliveries to hosted domains (Local.Hosted)
	// instead of the network.
	Local LocalDelivery
	// DisablePipelining makes delivery wait for each reply even when the
	// server offers PIPELINING (RFC 2920); by default MAIL, every RCPT and
	// DATA go out in one write.
	DisablePipelining bool
	// Reputation, if set, is told every outcome and picks the source of
	// each transaction among its pool's; else sources go round-robin.
	Reputation Reputation
	// Workers is the number of concurrent deliveries; default 100.
	Workers int
	// Port is the port MX hosts are dialed on; default 25.
	Port int
	// DialTimeout bounds each TCP connect (default 30 s), CommandTimeout
	// each command's reply (default 5 min), DataTimeout the body and the
	// reply to the final dot (default 10 min).
	DialTimeout, CommandTimeout, DataTimeout time.Duration
	// IdleTimeout is how long an idle connection is kept for reuse (default
	// 10 s), MaxIdlePerSite how many per (pool, site) (default 20, fairq's
	// default lane concurrency, so a busy lane keeps all its connections),
	// and MaxConnMessages how many transactions one connection runs before
	// it is closed (default 100).
	IdleTimeout     time.Duration
	MaxIdlePerSite  int
	MaxConnMessages int

	Logger     *slog.Logger
	Clock      Clock
	Registerer prometheus.Registerer // metrics are registered here if set
}

// Delivery runs the delivery workers. Create it with NewDelivery, run it
// with Run, and give its Bounce method to fairq as the bounce callback.
type Delivery struct {
	opts     DeliveryOptions
	q        DeliveryQueue
	spool    Spool
	resolver Resolver
	routes   routeTable
	port     int
	log      *slog.Logger
	clock    Clock
	idle     *idlePool
	metrics  deliveryMetrics
	running  atomic.Bool

	rr           map[string]*atomic.Uint64 // per configured pool: round-robin over its sources
	warnedPools  sync.Map                  // unknown pool names already logged
	janitorEvery time.Duration
}

// NewDelivery checks the options and makes the workers' shared state.
func NewDelivery(o DeliveryOptions) (*Delivery, error) {
	if o.Hostname == "" {
		return nil, errors.New("relay: delivery needs a hostname")
	}
	if o.Queue == nil || o.Resolver == nil {
		return nil, errors.New("relay: delivery needs a queue and a resolver")
	}
	if o.Spool == nil {
		o.Spool = o.Queue
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	setDefault(&o.Workers, DefaultDeliveryWorkers)
	setDefault(&o.Port, DefaultDeliveryPort)
	setDefault(&o.DialTimeout, DefaultDialTimeout)
	setDefault(&o.CommandTimeout, DefaultCommandTimeout)
	setDefault(&o.DataTimeout, DefaultDataTimeout)
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.MaxIdlePerSite, DefaultMaxIdlePerSite)
	setDefault(&o.MaxConnMessages, DefaultMaxConnMessages)
	if o.Port > 65535 {
		return nil, fmt.Errorf("relay: delivery port %d out of range", o.Port)
	}
	routes, err := newRouteTable(o.Routes)
	if err != nil {
		return nil, err
	}
	pools := make(map[string][]Source, len(o.Pools))
	rr := make(map[string]*atomic.Uint64, len(o.Pools))
	for name, srcs := range o.Pools {
		out := make([]Source, 0, len(srcs))
		for _, s := range srcs {
			if !s.IP.IsValid() {
				return nil, fmt.Errorf("relay: pool %q: a source without an IP address", name)
			}
			if s.EHLO == "" {
				s.EHLO = o.Hostname
			}
			out = append(out, Source{IP: s.IP.Unmap(), EHLO: s.EHLO})
		}
		pools[name] = out
		rr[name] = new(atomic.Uint64)
	}
	o.Pools = pools
	if o.DefaultPool != "" && len(pools) > 0 {
		if _, ok := pools[o.DefaultPool]; !ok {
			return nil, fmt.Errorf("relay: default pool %q is not configured", o.DefaultPool)
		}
	}
	m, err := newDeliveryMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Delivery{
		opts:         o,
		q:            o.Queue,
		spool:        o.Spool,
		resolver:     o.Resolver,
		routes:       routes,
		port:         o.Port,
		log:          o.Logger.With("component", "delivery"),
		clock:        o.Clock,
		idle:         newIdlePool(o.MaxIdlePerSite, o.IdleTimeout),
		metrics:      m,
		rr:           rr,
		janitorEvery: max(o.IdleTimeout/2, 100*time.Millisecond),
	}, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Run starts the workers and returns once ctx is done and every worker has
// finished its current delivery (a delivery in progress is not cut short),
// or once the queue is closed. Idle connections are closed on the way out.
func (d *Delivery) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("relay: delivery is already running")
	}
	defer d.running.Store(false)
	var wg sync.WaitGroup
	for i := range d.opts.Workers {
		wg.Go(func() { d.worker(ctx, i) })
	}
	janitorDone := make(chan struct{})
	go func() {
		defer close(janitorDone)
		t := time.NewTicker(d.janitorEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d.idle.sweep(d.clock.Now())
			}
		}
	}()
	wg.Wait()
	d.idle.closeAll()
	<-janitorDone
	return nil
}

// worker takes leases until ctx is done or the queue closes.
func (d *Delivery) worker(ctx context.Context, id int) {
	for ctx.Err() == nil {
		l, err := d.q.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, fairq.ErrClosed) {
				return
			}
			d.log.Error("taking the next delivery", "worker", id, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		// The delivery runs to its end even when ctx is cancelled meanwhile;
		// its own timeouts bound it.
		d.deliverSafe(context.WithoutCancel(ctx), l)
	}
}

// deliverSafe delivers one lease; a panic is logged, counted, and turned
// into a temporary failure so the lease is still completed.
func (d *Delivery) deliverSafe(ctx context.Context, l *fairq.Lease) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		d.metrics.panics.Inc()
		d.log.Error("delivery panic", "tenant", l.Record.Tenant, "msgid", l.ID.String(),
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		de := localError(false, StageLocal, d.opts.Hostname, esLocalTemp, "internal error", nil)
		res := make([]fairq.RecipientResult, len(l.Record.Recipients))
		for i, rc := range l.Record.Recipients {
			res[i] = fairq.RecipientResult{Recipient: rc, Status: fairq.Temporary, Detail: de.Detail()}
		}
		if err := d.q.Complete(ctx, l, res); err != nil && !errors.Is(err, fairq.ErrLeaseDone) {
			d.log.Error("completing after a panic", "tenant", l.Record.Tenant, "msgid", l.ID.String(), "err", err)
		}
	}()
	d.deliver(ctx, l)
}

// laneVerdict is what one attempt says about its (pool, site) lane.
type laneVerdict uint8

const (
	laneUnknown laneVerdict = iota // never reached the site (DNS, local failure)
	laneOK                         // the site held a working session
	laneFailed                     // connection-level failure
)

// attemptOutcome is the result of one delivery attempt.
type attemptOutcome struct {
	results  []fairq.RecipientResult // one per recipient, in record order; Status 0 = undecided
	site     string
	lane     laneVerdict
	host     string // the host that answered
	tls      string // its TLS version, "" if none
	reused   bool
	source   netip.Addr // the source address the attempt left from, if bound
	noSource bool       // reputation let no source send: our throttle, not the tenant's doing
	replies  []reply    // per recipient, for reputation
}

// reply is what a recipient's result was decided by.
type reply struct {
	code     int
	enhanced string
	line     string
}

func (o *attemptOutcome) set(i int, e *DeliveryError) {
	st := fairq.Temporary
	if e.Permanent {
		st = fairq.Permanent
	}
	o.results[i].Status = st
	o.results[i].Detail = e.Detail()
	o.replies[i] = reply{code: e.Code, enhanced: e.Enhanced, line: e.Line}
}

// fill decides every undecided recipient among idx (all if idx is nil).
func (o *attemptOutcome) fill(idx []int, e *DeliveryError) {
	if idx == nil {
		for i := range o.results {
			if o.results[i].Status == 0 {
				o.set(i, e)
			}
		}
		return
	}
	for _, i := range idx {
		if o.results[i].Status == 0 {
			o.set(i, e)
		}
	}
}

// deliver runs one attempt and reports it: lane health, events, metrics,
// and the per-recipient results to fairq.
func (d *Delivery) deliver(ctx context.Context, l *fairq.Lease) {
	start := d.clock.Now()
	rec := l.Record
	log := d.log.With("tenant", rec.Tenant, "msgid", l.ID.String())
	log.Info("attempt", "domain", rec.Domain, "attempt", rec.Attempts, "recipients", len(rec.Recipients),
		"pool", l.Pool, "from", rec.From)
	out := d.attempt(ctx, l)
	switch out.lane {
	case laneFailed:
		until := d.q.LaneFailed(l.Pool, out.site)
		log.Info("site backing off", "pool", l.Pool, "site", out.site, "until", until)
	case laneOK:
		d.q.LaneSucceeded(l.Pool, out.site)
	}
	d.report(log, l, &out, d.clock.Now().Sub(start))
	d.tellReputation(l, &out)
	if err := d.q.Complete(ctx, l, out.results); err != nil {
		log.Error("completing the delivery", "err", err)
	}
}

// attempt delivers the lease's recipients in one transaction.
func (d *Delivery) attempt(ctx context.Context, l *fairq.Lease) attemptOutcome {
	rec := l.Record
	out := attemptOutcome{results: make([]fairq.RecipientResult, len(rec.Recipients)),
		replies: make([]reply, len(rec.Recipients))}
	for i, r := range rec.Recipients {
		out.results[i].Recipient = r
	}
	if d.opts.Local != nil && d.opts.Local.Hosted(rec.Domain) {
		d.deliverLocal(ctx, l, &out)
		return out
	}
	hop, derr := d.resolveNextHop(ctx, rec.Domain)
	if derr != nil {
		out.fill(nil, derr)
		return out
	}
	out.site = hop.site
	if l.Site != hop.site {
		d.q.SetSite(rec.Domain, hop.site)
	}
	if !validAddress(rec.From) {
		out.fill(nil, localError(true, StageLocal, d.opts.Hostname, esBadSender,
			fmt.Sprintf("sender address %q cannot be sent in MAIL FROM", rec.From), nil))
		return out
	}
	idx := make([]int, 0, len(rec.Recipients))
	for i, r := range rec.Recipients {
		if !validAddress(r) {
			out.set(i, localError(true, StageLocal, d.opts.Hostname, esBadAddress,
				fmt.Sprintf("recipient address %q cannot be sent in RCPT TO", r), nil))
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return out
	}
	body, err := d.q.Body(l.ID)
	if err != nil {
		out.fill(nil, localError(false, StageLocal, d.opts.Hostname, esLocalTemp, "reading the message body: "+err.Error(), err))
		return out
	}
	pool, srcs := d.poolSources(l.Pool)
	key := idleKey{pool: pool, site: hop.site}
	if d.opts.Reputation != nil {
		src, ok := d.opts.Reputation.PickSource(pool, hop.site, netip.Addr{})
		if !ok {
			out.fill(idx, localError(false, StageConnect, hop.site, esNoAnswer,
				fmt.Sprintf("no source of pool %q may send to %s now (warm-up cap, receiver feedback or blocklist)", pool, hop.site), nil))
			out.lane, out.noSource = laneFailed, true
			return out
		}
		srcs = nil
		if src.IP.IsValid() {
			ehlo := src.EHLO
			if ehlo == "" {
				ehlo = d.opts.Hostname
			}
			srcs = []Source{{IP: src.IP, EHLO: ehlo}}
			key.source, out.source = src.IP, src.IP
		}
	}
	sc, reused, derr := d.connect(ctx, key, hop, srcs)
	if derr != nil {
		out.fill(idx, derr)
		if derr.connectionLevel() {
			out.lane = laneFailed
		}
		return out
	}
	out.host, out.tls, out.reused, out.source = sc.host, sc.tls, reused, sc.source.IP
	reusable, connErr := d.transact(sc, rec.From, rec.Recipients, idx, body, rec.Extra, &out)
	switch {
	case connErr != nil:
		out.lane = laneFailed
		sc.abort()
	case reusable && sc.uses < d.opts.MaxConnMessages && d.idle.put(key, sc, d.clock.Now()):
		out.lane = laneOK
	default:
		out.lane = laneOK
		sc.close()
	}
	return out
}

// localHost names the local path in results and logs.
const localHost = "local"

// deliverLocal hands a delivery to a hosted domain to the local path. Its
// outcome says nothing about any lane: the lane stays as it was.
func (d *Delivery) deliverLocal(ctx context.Context, l *fairq.Lease, out *attemptOutcome) {
	out.host = localHost
	body, err := d.q.Body(l.ID)
	if err != nil {
		out.fill(nil, localError(false, StageLocal, localHost, esLocalTemp, "reading the message body: "+err.Error(), err))
		return
	}
	rec := l.Record
	errs := d.opts.Local.DeliverLocal(ctx, rec.From, rec.Recipients, body, rec.Extra)
	for i := range out.results {
		var e error
		if i < len(errs) {
			e = errs[i]
		} else {
			e = errors.New("local delivery returned no result")
		}
		if e == nil {
			out.results[i].Status = fairq.Delivered
			continue
		}
		var se *smtp.SMTPError
		if errors.As(e, &se) {
			out.set(i, replyError(se, StageLocal, localHost))
			continue
		}
		out.set(i, localError(false, StageLocal, localHost, esLocalTemp, e.Error(), e))
	}
}

// poolSources maps a lease's pool to a configured pool and its sources.
func (d *Delivery) poolSources(pool string) (string, []Source) {
	if pool == "" {
		pool = d.opts.DefaultPool
	}
	if srcs, ok := d.opts.Pools[pool]; ok || pool == d.opts.DefaultPool {
		return pool, srcs
	}
	if _, warned := d.warnedPools.LoadOrStore(pool, true); !warned {
		d.log.Warn("pool not configured, using the default pool", "pool", pool, "default", d.opts.DefaultPool)
	}
	return d.opts.DefaultPool, d.opts.Pools[d.opts.DefaultPool]
}

// pickSource chooses the source to dial addr from: round-robin over the
// pool's sources of addr's family. With no sources there is no binding.
func (d *Delivery) pickSource(pool string, srcs []Source, addr netip.Addr) (Source, bool) {
	if len(srcs) == 0 {
		return Source{EHLO: d.opts.Hostname}, true
	}
	n := int(d.rr[pool].Add(1))
	for i := range srcs {
		s := srcs[(n+i)%len(srcs)]
		if s.IP.Is4() == addr.Is4() {
			return s, true
		}
	}
	return Source{}, false
}

// connect returns a connection to the hop: an idle one for key (reset
// first), else a new one, trying each host in order and each of its
// addresses in order until one accepts. The error, if all fail, is
// temporary unless every host failed permanently.
func (d *Delivery) connect(ctx context.Context, key idleKey, hop nextHop, srcs []Source) (*smtpConn, bool, *DeliveryError) {
	for range d.opts.MaxIdlePerSite {
		sc := d.idle.get(key, d.clock.Now())
		if sc == nil {
			break
		}
		if err := sc.c.Reset(); err != nil {
			d.log.Debug("idle connection unusable", "host", sc.host, "err", err)
			sc.abort()
			continue
		}
		d.metrics.connections.WithLabelValues("reused").Inc()
		return sc, true, nil
	}
	var lastTemp, lastPerm *DeliveryError
	note := func(e *DeliveryError) {
		if e.Permanent {
			lastPerm = e
		} else {
			lastTemp = e
		}
	}
	for _, h := range hop.hosts {
		addrs, derr := d.hostAddrs(ctx, h)
		if derr != nil {
			note(derr)
			continue
		}
		for _, a := range addrs {
			src, ok := d.pickSource(key.pool, srcs, a)
			if !ok {
				note(localError(false, StageConnect, h.name, esNoAnswer,
					fmt.Sprintf("pool %q has no source address for %s", key.pool, a), nil))
				continue
			}
			ap := netip.AddrPortFrom(a, uint16(h.port))
			sc, derr := d.dial(ctx, h.name, ap, src, true)
			if derr != nil && errors.Is(derr.Err, errTLSHandshake) {
				d.log.Info("TLS handshake failed, retrying in plaintext", "host", h.name, "addr", ap.String(), "err", derr.Line)
				sc, derr = d.dial(ctx, h.name, ap, src, false)
			}
			if derr == nil {
				d.metrics.connections.WithLabelValues("new").Inc()
				return sc, false, nil
			}
			d.log.Debug("connection failed", "host", h.name, "addr", ap.String(), "source", src.IP, "err", derr.Detail())
			note(derr)
			if derr.Stage != StageConnect {
				break // the host answered and refused: go on with the next host
			}
		}
	}
	switch {
	case lastTemp != nil:
		return nil, false, lastTemp
	case lastPerm != nil:
		return nil, false, lastPerm
	}
	return nil, false, localError(false, StageConnect, hop.site, esNoAnswer, "no address to connect to", nil)
}

// transact runs one mail transaction on sc for the recipients at idx. It
// reports whether the connection may be reused, and the connection-level
// failure that ended it, if any. Per-recipient results go into out.
func (d *Delivery) transact(sc *smtpConn, from string, rcpts []string, idx []int, body, extra []byte, out *attemptOutcome) (reusable bool, connErr *DeliveryError) {
	sc.uses++
	c := sc.c
	utf8 := needsUTF8(from)
	for _, i := range idx {
		utf8 = utf8 || needsUTF8(rcpts[i])
	}
	if utf8 {
		if ok, _ := c.Extension("SMTPUTF8"); !ok {
			out.fill(idx, localError(true, StageMail, sc.host, esNonASCIINotAllow,
				"the server does not support SMTPUTF8, needed for a non-ASCII address", nil))
			return true, nil
		}
	}
	if limit, ok := c.MaxMessageSize(); ok && limit > 0 && len(body) > limit {
		out.fill(idx, localError(true, StageMail, sc.host, esTooBig,
			fmt.Sprintf("message of %d bytes exceeds the server's limit of %d", len(body), limit), nil))
		return true, nil
	}
	// DSN parameters travel on to a next hop that speaks DSN (RFC 3461
	// section 4); without it they stay with us, and Bounce honours them.
	var dsn *dsnParams
	if ok, _ := c.Extension("DSN"); ok {
		dsn, _ = decodeDSNParams(extra) // a bad record only loses the pass-on
	}
	if ok, _ := c.Extension("PIPELINING"); ok && !d.opts.DisablePipelining {
		return d.transactPipelined(sc, from, rcpts, idx, body, utf8, dsn, out)
	}
	ret, envid := dsn.mailOptions()
	if err := c.Mail(from, &smtp.MailOptions{Size: int64(len(body)), UTF8: utf8, Return: ret, EnvelopeID: envid}); err != nil {
		de := replyError(err, StageMail, sc.host)
		out.fill(idx, de)
		if de.connectionLevel() {
			return false, de
		}
		return true, nil
	}
	accepted := make([]int, 0, len(idx))
	for n, i := range idx {
		err := c.Rcpt(rcpts[i], dsn.rcptOptions(rcpts[i]))
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		de := replyError(err, StageRcpt, sc.host)
		if de.connectionLevel() {
			out.fill(idx[:n+1], de)
			out.fill(idx, localError(false, StageRcpt, sc.host, esBadConnection, "not tried: the session ended", nil))
			return false, de
		}
		out.set(i, de)
	}
	if len(accepted) == 0 {
		return true, nil // the open transaction is reset before reuse
	}
	w, err := c.Data()
	if err != nil {
		de := replyError(err, StageData, sc.host)
		out.fill(accepted, de)
		if de.connectionLevel() {
			return false, de
		}
		return true, nil
	}
	// go-smtp bounds the replies but not the writing of the body.
	_ = sc.raw.SetWriteDeadline(time.Now().Add(d.opts.DataTimeout))
	_, err = w.Write(body)
	var resp *smtp.DataResponse
	if err == nil {
		resp, err = w.CloseWithResponse()
	}
	_ = sc.raw.SetWriteDeadline(time.Time{})
	if err != nil {
		de := replyError(err, StageData, sc.host)
		out.fill(accepted, de)
		if de.connectionLevel() {
			return false, de
		}
		return true, nil
	}
	enhanced, text := "2.0.0", oneLine(resp.StatusText)
	if es, rest, ok := strings.Cut(text, " "); ok && len(es) >= 5 && es[0] == '2' && es[1] == '.' {
		enhanced, text = es, rest
	}
	detail := formatDetail(StageData, sc.host, 250, enhanced, text)
	for _, i := range accepted {
		out.results[i].Status = fairq.Delivered
		out.results[i].Detail = detail
		out.replies[i] = reply{code: 250, enhanced: enhanced, line: text}
	}
	return true, nil
}

// report writes the attempt's event lines (delivered, deferred, bounced; one
// per outcome and reason) and counts the results.
func (d *Delivery) report(log *slog.Logger, l *fairq.Lease, out *attemptOutcome, took time.Duration) {
	d.metrics.duration.Observe(took.Seconds())
	type group struct {
		event  string
		detail string
		rcpts  []string
	}
	var groups []*group
	for _, r := range out.results {
		event := "deferred"
		switch r.Status {
		case fairq.Delivered:
			event = "delivered"
		case fairq.Permanent:
			event = "bounced"
		}
		d.metrics.deliveries.WithLabelValues(l.Record.Tenant, event).Inc()
		var g *group
		for _, x := range groups {
			if x.event == event && x.detail == r.Detail {
				g = x
				break
			}
		}
		if g == nil {
			g = &group{event: event, detail: r.Detail}
			groups = append(groups, g)
		}
		g.rcpts = append(g.rcpts, r.Recipient)
	}
	for _, g := range groups {
		attrs := []any{"domain", l.Record.Domain, "recipients", g.rcpts, "attempt", l.Record.Attempts, "reason", g.detail}
		if out.host != "" {
			attrs = append(attrs, "host", out.host, "tls", out.tls, "reused", out.reused)
		}
		if g.event == "delivered" {
			attrs = append(attrs, "took", took)
		}
		log.Info(g.event, attrs...)
	}
}

// tellReputation records the attempt's outcomes with reputation: one event
// per distinct reply. Attempts that never reached the network (DNS, local
// reasons, the local path) say nothing about the tenant's sending and are
// not recorded.
func (d *Delivery) tellReputation(l *fairq.Lease, out *attemptOutcome) {
	if d.opts.Reputation == nil || out.noSource || out.site == "" || out.host == localHost || out.host == "" && out.lane != laneFailed {
		return
	}
	type group struct {
		r reply
		n int
	}
	var groups []group
next:
	for i, r := range out.replies {
		if out.results[i].Status == 0 {
			continue
		}
		for g := range groups {
			if groups[g].r == r {
				groups[g].n++
				continue next
			}
		}
		groups = append(groups, group{r: r, n: 1})
	}
	for _, g := range groups {
		d.opts.Reputation.Record(reputation.Event{Tenant: l.Record.Tenant, Source: out.source, Site: out.site,
			Outcome: reputation.OutcomeOf(g.r.code, g.r.enhanced), Count: g.n,
			Code: g.r.code, Enhanced: g.r.enhanced, Line: g.r.line})
	}
}

// deliveryMetrics are delivery's Prometheus series.
type deliveryMetrics struct {
	deliveries  *prometheus.CounterVec
	duration    prometheus.Histogram
	connections *prometheus.CounterVec
	panics      prometheus.Counter
	dsns        *prometheus.CounterVec
}

func newDeliveryMetrics(reg prometheus.Registerer) (deliveryMetrics, error) {
	m := deliveryMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_deliveries_total",
			Help: "Recipient delivery attempts by tenant and result (delivered, deferred, bounced).",
		}, []string{"tenant", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fairway_delivery_duration_seconds",
			Help:    "Duration of one delivery attempt, next-hop lookup to last reply.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 11),
		}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_delivery_connections_total",
			Help: "Outbound SMTP connections used for a transaction, new or reused.",
		}, []string{"kind"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fairway_delivery_panics_total",
			Help: "Panics recovered in delivery workers.",
		}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_dsn_total",
			Help: "Delivery status notifications queued to senders, by tenant.",
		}, []string{"tenant"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.connections, m.panics, m.dsns} {
			if err := reg.Register(c); err != nil {
				return deliveryMetrics{}, fmt.Errorf("relay: register delivery metrics: %w", err)
			}
		}
	}
	return m, nil
}

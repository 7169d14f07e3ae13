package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"fairway/fairq"
	"fairway/tenant"
	"fairway/tenant/conncap"
)

// The submission server: tenant users (and registered client networks)
// hand mail to fairway here, on 587 (STARTTLS) and 465 (implicit TLS).
// One transaction, in order:
//
//  1. Connect: the per-address and total connection caps (421 4.7.0 /
//     421 4.3.2), then go-smtp greets.
//  2. STARTTLS (587). AUTH is advertised and accepted only over TLS; before
//     it AUTH gets 530 5.7.0.
//  3. AUTH PLAIN or LOGIN with the full address (tenant.Directory
//     Authenticate; any failure, bare local part included, is 535 5.7.8).
//     A client in a tenant's registered networks may skip AUTH and submits
//     as that tenant (over TLS unless it connects from loopback).
//  4. MAIL FROM: authenticated or a client network, else 530 5.7.0; tenant
//     not suspended (451 4.7.1); the sender is owned (553 5.7.1), never
//     the null sender.
//  5. RCPT TO: at most MaxRecipients (452 4.5.3); one recipient from the
//     mailbox's hourly and the tenant's daily bucket (450 4.7.1 naming the
//     limit and the refill time). Taken recipients are given back if the
//     transaction does not end in 250.
//  6. DATA: at most MaxMessageBytes (552 5.3.4); CRLF lines, no NUL
//     (550 5.6.0); exactly one From: field whose addresses are owned
//     (553 5.7.1); Received added, Message-ID and Date if missing;
//     DKIM-signed with the From: domain's active keys; enqueued in fairq,
//     and only once that write is durable: "250 2.0.0 queued as <id>"
//     (a failed write is 451 4.3.0).
//
// Every reply other than go-smtp's protocol replies comes from
// submissionReply (replies.go). Each accepted message is logged as one
// "accepted" line, each refusal as one "refused" line with its reason,
// and both are counted in Prometheus.

// Defaults of SubmissionOptions.
const (
	DefaultSubmissionMaxMessageBytes = 25 << 20
	DefaultSubmissionMaxRecipients   = 100
	DefaultSubmissionCommandTimeout  = 5 * time.Minute
	DefaultSubmissionDataTimeout     = 10 * time.Minute
	DefaultSubmissionMaxConnsPerIP   = 20
	DefaultSubmissionMaxConns        = 1000
)

// sigRoom is the room reserved in front of a message per DKIM signature
// (an RSA-2048 DKIM-Signature field is about 600 bytes).
const sigRoom = 2048

// headerRoom is what submission may add to a message (trace fields and
// signatures): MaxMessageBytes must leave it below fairq.MaxBodySize.
const headerRoom = 1 << 20

// SubmissionOptions configure a Submission server.
type SubmissionOptions struct {
	Hostname  string      // banner, EHLO, Received, Message-ID (required)
	Directory Directory   // tenant.Directory (required)
	Spool     Spool       // fairq.Queue (required)
	TLS       *tls.Config // certificate for STARTTLS and implicit TLS (required)
	Clock     Clock       // time of limits, Received and Date; default the system clock
	Logger    *slog.Logger
	// Limiter counts recipients against the send limits; default
	// NewRateLimiter() (in process).
	Limiter Limiter
	// AuthLimiter refuses AUTH (454 4.7.0) from an address with too many
	// failed logins, before checking the password; default
	// tenant.NewAuthLimiter with its defaults. Share one with IMAP.
	AuthLimiter AuthLimiter
	// Registerer receives the submission metrics; default a private
	// registry (nothing exported).
	Registerer prometheus.Registerer

	MaxMessageBytes int64         // default 25 MB
	MaxRecipients   int           // per message; default 100
	CommandTimeout  time.Duration // idle time allowed per command; default 5 min
	DataTimeout     time.Duration // time allowed for the whole DATA transfer; default 10 min
	MaxConnsPerIP   int           // per client IPv4 address or IPv6 /64; default 20
	MaxConns        int           // in total; default 1000
}

// Submission is the submission server. Serve it on any number of
// listeners, in either mode; Close or Shutdown stops them all.
type Submission struct {
	opts    SubmissionOptions
	log     *slog.Logger
	metrics *submissionMetrics
	srv     *smtp.Server
	conns   *conncap.Tracker

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener

	refuser *conncap.Refuser
}

// NewSubmission checks the options and makes the server.
func NewSubmission(o SubmissionOptions) (*Submission, error) {
	switch {
	case o.Hostname == "":
		return nil, errors.New("submission: no hostname")
	case o.Directory == nil:
		return nil, errors.New("submission: no directory")
	case o.Spool == nil:
		return nil, errors.New("submission: no spool")
	case o.TLS == nil:
		return nil, errors.New("submission: no TLS configuration")
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AuthLimiter == nil {
		o.AuthLimiter = tenant.NewAuthLimiter(tenant.AuthLimiterOptions{})
	}
	if o.Limiter == nil {
		o.Limiter = NewRateLimiter()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	subDefault(&o.MaxMessageBytes, DefaultSubmissionMaxMessageBytes)
	subDefault(&o.MaxRecipients, DefaultSubmissionMaxRecipients)
	subDefault(&o.CommandTimeout, DefaultSubmissionCommandTimeout)
	subDefault(&o.DataTimeout, DefaultSubmissionDataTimeout)
	subDefault(&o.MaxConnsPerIP, DefaultSubmissionMaxConnsPerIP)
	subDefault(&o.MaxConns, DefaultSubmissionMaxConns)
	if o.MaxMessageBytes > fairq.MaxBodySize-headerRoom {
		return nil, fmt.Errorf("submission: message size limit %d over the queue's %d less %d for added headers",
			o.MaxMessageBytes, fairq.MaxBodySize, headerRoom)
	}
	m, err := newSubmissionMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Submission{
		opts:    o,
		log:     o.Logger.With("component", "submission"),
		metrics: m,
		conns:   conncap.New(o.MaxConnsPerIP, o.MaxConns, ""),
	}
	s.refuser = conncap.NewRefuser(maxRefusing, refuseTimeout, func(v any) {
		m.panics.Inc()
		s.log.Error("panic", "where", "refuse connection", "panic", fmt.Sprint(v))
	})
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = o.Hostname
	srv.TLSConfig = o.TLS
	// go-smtp would answer AUTH before TLS with 523 5.7.10; with insecure
	// AUTH "allowed" the session sees the command and gives the
	// contract's 530 5.7.0. AUTH is still only advertised over TLS
	// (AuthMechanisms).
	srv.AllowInsecureAuth = true
	srv.EnableDSN = true // RFC 3461: kept with the message, honoured by Bounce
	srv.MaxMessageBytes = o.MaxMessageBytes
	srv.MaxRecipients = 0 // the session enforces it, so that refusals are counted and logged
	srv.ReadTimeout = o.CommandTimeout
	srv.WriteTimeout = o.CommandTimeout
	srv.ErrorLog = smtpErrorLog{log: s.log, panics: m.panics}
	s.srv = srv
	return s, nil
}

func subDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ServeSTARTTLS serves submission on ln in the 587 style: plain text until
// STARTTLS. It returns when the server is closed (nil) or ln fails.
func (s *Submission) ServeSTARTTLS(ln net.Listener) error {
	return s.serve(&capListener{Listener: ln, s: s})
}

// ServeImplicitTLS serves submission on ln in the 465 style: TLS from the
// first byte.
func (s *Submission) ServeImplicitTLS(ln net.Listener) error {
	return s.serve(tls.NewListener(&capListener{Listener: ln, s: s, implicitTLS: true}, s.opts.TLS))
}

func (s *Submission) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return smtp.ErrServerClosed
	}
	// Kept here too: a Serve that starts while Close runs may register
	// with go-smtp after go-smtp closed its listeners.
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	err := s.srv.Serve(ln)
	if s.isClosed() {
		return nil
	}
	return err
}

func (s *Submission) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// markClosed refuses further Serve calls and returns the listeners served.
func (s *Submission) markClosed() []net.Listener {
	s.refuser.Stop() // connections over a cap are closed without a word from now on
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.listeners
}

// Close closes the listeners and every connection at once; transactions
// in progress get no reply (clients retry), and nothing half-received is
// queued.
func (s *Submission) Close() error {
	lns := s.markClosed()
	err := s.srv.Close()
	for _, ln := range lns {
		ln.Close() // already closed by go-smtp, unless its Serve raced with Close
	}
	s.conns.CloseAll()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

// Shutdown stops accepting connections and waits for the open ones to end
// until ctx is done, then closes those left (as Close).
func (s *Submission) Shutdown(ctx context.Context) error {
	lns := s.markClosed()
	err := s.srv.Shutdown(ctx)
	for _, ln := range lns {
		ln.Close()
	}
	if ctx.Err() != nil {
		s.conns.CloseAll()
	}
	s.refuser.Wait(ctx) // each refusal ends within refuseTimeout
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

// newSession is go-smtp's Backend: called at the first EHLO/HELO, and again
// after STARTTLS (the session before TLS is logged out).
func (s *Submission) newSession(c *smtp.Conn) (smtp.Session, error) {
	conn := c.Conn()
	_, isTLS := c.TLSConnectionState()
	ss := &subSession{s: s, c: c, ip: conncap.RemoteIP(conn), tls: isTLS}
	id := "-"
	if tc := conncap.Of(conn); tc != nil {
		id = tc.ID
	}
	ss.log = s.log.With("conn", id, "remote", ss.ip.String())
	return ss, nil
}

// subSession is one SMTP session. go-smtp calls its methods from the
// connection's goroutine, except Data under BDAT (a goroutine of its own,
// while RSET may come) and Logout when the server closes the connection:
// mu guards the transaction.
type subSession struct {
	s   *Submission
	c   *smtp.Conn
	log *slog.Logger
	ip  netip.Addr
	tls bool

	// user is set by a successful AUTH; read by Data, which runs in a
	// goroutine of its own under BDAT.
	user atomic.Pointer[tenant.Identity]

	mu sync.Mutex
	tx *subTx
}

// subTx is the state from MAIL to the end of DATA (or RSET).
type subTx struct {
	id     string // in Received and the logs; the queue id is only known after the write
	tenant string
	from   string
	rcpts  []string
	held   []Reservation // recipients taken from the send limits
	dsn    dsnParams     // RET, ENVID, NOTIFY, ORCPT (RFC 3461)
}

var (
	_ smtp.Session     = (*subSession)(nil)
	_ smtp.AuthSession = (*subSession)(nil)
)

// refuse turns err into the reply the client gets (submissionReply), and
// counts and logs it. Every error a session returns to go-smtp goes through
// here.
func (ss *subSession) refuse(err error, tenantName string, attrs ...any) *smtp.SMTPError {
	r, reason := submissionReply(err)
	ss.s.metrics.rejections.WithLabelValues(tenantName, reason).Inc()
	attrs = append(attrs, "reason", reason, "reply", fmt.Sprintf("%d %d.%d.%d", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2]),
		"tenant", tenantName, "user", ss.userAddress(), "error", err.Error())
	level := slog.LevelInfo
	if reason == reasonInternal || reason == reasonQueue {
		level = slog.LevelWarn
	}
	ss.log.Log(context.Background(), level, "refused", attrs...)
	return r
}

func (ss *subSession) userAddress() string {
	if u := ss.user.Load(); u != nil {
		return u.Address
	}
	return ""
}

// AuthMechanisms offers AUTH over TLS only.
func (ss *subSession) AuthMechanisms() []string {
	if !ss.tls {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts a SASL exchange; before TLS it refuses with 530 5.7.0.
func (ss *subSession) Auth(mech string) (sasl.Server, error) {
	if !ss.tls {
		return nil, ss.refuse(errTLSRequired, "")
	}
	// A client network may have started a transaction without AUTH; the
	// identity must not change under it.
	ss.mu.Lock()
	inTx := ss.tx != nil
	ss.mu.Unlock()
	if inTx {
		return nil, ss.refuse(errAuthInTx, "")
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &plainServer{ss: ss}, nil
	case sasl.Login:
		return &loginServer{ss: ss}, nil
	}
	return nil, ss.refuse(errAuthMechanism, "", "mechanism", echoSafe(mech))
}

// authenticate checks a full address and password. The password is never
// logged; the address tried is.
func (ss *subSession) authenticate(address, password string) error {
	if !ss.s.opts.AuthLimiter.Allow(ss.ip, ss.s.opts.Clock.Now()) {
		return ss.refuse(errAuthThrottled, "", "tried", echoSafe(address))
	}
	id, err := ss.s.opts.Directory.Authenticate(address, password)
	switch {
	case errors.Is(err, tenant.ErrAuth):
		ss.s.opts.AuthLimiter.Failed(ss.ip, ss.s.opts.Clock.Now())
		return ss.refuse(errAuthFailed, "", "tried", echoSafe(address))
	case err != nil:
		return ss.refuse(fmt.Errorf("authenticate: %w", err), "", "tried", echoSafe(address))
	}
	ss.user.Store(&id)
	ss.log.Info("authenticated", "user", id.Address, "tenant", id.Tenant)
	return nil
}

// principal is the tenant the session submits for: the authenticated
// user's, or the tenant whose client networks hold the client's address.
func (ss *subSession) principal() (string, error) {
	if u := ss.user.Load(); u != nil {
		return u.Tenant, nil
	}
	if !ss.tls && !ss.ip.IsLoopback() {
		return "", errTLSRequired
	}
	if t, ok := ss.s.opts.Directory.NetworkTenant(ss.ip); ok {
		return t, nil
	}
	if !ss.tls {
		return "", errTLSRequired
	}
	return "", errAuthRequired
}

// owns reports whether the session may use addr as a sender (MAIL FROM or
// From: header): for a user, its own address, its aliases, or any address
// of its tenant's domains if the tenant allows; for a client network, any
// address of its tenant's domains.
func (ss *subSession) owns(tenantName, addr string) bool {
	if u := ss.user.Load(); u != nil {
		return ss.s.opts.Directory.MaySendAs(*u, addr)
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return false
	}
	t, ok := ss.s.opts.Directory.DomainTenant(addr[at+1:])
	return ok && t == tenantName
}

// Mail starts a transaction.
func (ss *subSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.tx != nil {
		return ss.refuse(errNestedMail, ss.tx.tenant)
	}
	tenantName, err := ss.principal()
	if err != nil {
		return ss.refuse(err, "")
	}
	policy, ok := ss.s.opts.Directory.TenantPolicy(tenantName)
	switch {
	case !ok:
		return ss.refuse(fmt.Errorf("tenant %q is not in the directory", tenantName), tenantName)
	case policy.Suspended:
		return ss.refuse(errTenantSuspended, tenantName)
	case from == "":
		return ss.refuse(errNullSender, tenantName)
	case !ss.owns(tenantName, from):
		return ss.refuse(&senderError{Addr: from}, tenantName)
	}
	ss.tx = &subTx{id: fmt.Sprintf("%016x", mathrand.Uint64()), tenant: tenantName, from: from}
	ss.tx.dsn.setMail(opts)
	return nil
}

// Rcpt adds a recipient, taking it from the send limits.
func (ss *subSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	tx := ss.tx
	if tx == nil { // go-smtp asks for MAIL first; a refused MAIL leaves none
		return ss.refuse(errors.New("RCPT without a transaction"), "")
	}
	if len(tx.rcpts) >= ss.s.opts.MaxRecipients {
		return ss.refuse(&recipientsError{Max: ss.s.opts.MaxRecipients}, tx.tenant)
	}
	if at := strings.LastIndexByte(to, '@'); at <= 0 || at == len(to)-1 {
		return ss.refuse(errBadRecipient, tx.tenant, "recipient", echoSafe(to))
	}
	policy, ok := ss.s.opts.Directory.TenantPolicy(tx.tenant)
	if !ok {
		return ss.refuse(fmt.Errorf("tenant %q is not in the directory", tx.tenant), tx.tenant)
	}
	held, err := ss.takeLimits(tx.tenant, policy, ss.s.opts.Clock.Now())
	if err != nil {
		return ss.refuse(err, tx.tenant, "recipient", echoSafe(to))
	}
	tx.rcpts = append(tx.rcpts, to)
	tx.held = append(tx.held, held...)
	tx.dsn.setRcpt(to, opts)
	return nil
}

// takeLimits takes one recipient from the mailbox's hourly bucket (users
// only: a client network has no mailbox) and from the tenant's daily one.
func (ss *subSession) takeLimits(tenantName string, p tenant.Policy, now time.Time) ([]Reservation, error) {
	lim := ss.s.opts.Limiter
	var held []Reservation
	if u := ss.user.Load(); u != nil {
		r, err := lim.Take("mailbox\x00"+u.Address, Limit{Name: limitMailboxHourly, Count: p.MailboxHourly, Per: time.Hour}, now)
		if err != nil {
			ss.countLimitHit(tenantName, err)
			return nil, err
		}
		held = append(held, r)
	}
	r, err := lim.Take("account\x00"+tenantName, Limit{Name: limitAccountDaily, Count: p.AccountDaily, Per: 24 * time.Hour}, now)
	if err != nil {
		ss.countLimitHit(tenantName, err)
		for _, h := range held {
			h.Cancel(now)
		}
		return nil, err
	}
	return append(held, r), nil
}

func (ss *subSession) countLimitHit(tenantName string, err error) {
	var le *LimitError
	if errors.As(err, &le) {
		ss.s.metrics.rateHits.WithLabelValues(tenantName, strings.ReplaceAll(le.Limit.Name, " ", "_")).Inc()
	}
}

// endTx ends tx: its recipients stay counted if it was accepted, else
// they are given back. Called with ss.mu held.
func (ss *subSession) endTx(tx *subTx, accepted bool) {
	if !accepted {
		now := ss.s.opts.Clock.Now()
		for _, r := range tx.held {
			r.Cancel(now)
		}
	}
	tx.held = nil
	if ss.tx == tx {
		ss.tx = nil
	}
}

// Reset ends the transaction without a message (RSET, EHLO, after DATA).
func (ss *subSession) Reset() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.tx != nil {
		ss.endTx(ss.tx, false)
	}
}

// Logout is the end of the session.
func (ss *subSession) Logout() error {
	ss.Reset()
	return nil
}

// Data receives the message, completes and signs it, and queues it. It
// answers 250 only once the queue's write is durable.
func (ss *subSession) Data(r io.Reader) error {
	ss.mu.Lock()
	tx := ss.tx
	ss.mu.Unlock()
	if tx == nil {
		return ss.refuse(errors.New("DATA without a transaction"), "")
	}
	id, size, nsig, err := ss.receive(tx, r)
	ss.mu.Lock()
	ss.endTx(tx, err == nil)
	ss.mu.Unlock()
	if err != nil {
		rep := ss.refuse(err, tx.tenant, "txid", tx.id, "from", echoSafe(tx.from), "recipients", len(tx.rcpts))
		result := "rejected"
		if rep.Code/100 == 4 {
			result = "tempfail"
		}
		ss.s.metrics.submissions.WithLabelValues(tx.tenant, result).Inc()
		return rep
	}
	ss.s.metrics.submissions.WithLabelValues(tx.tenant, "accepted").Inc()
	ss.log.Info("accepted", "tenant", tx.tenant, "msgid", id.String(), "user", ss.userAddress(),
		"from", tx.from, "recipients", len(tx.rcpts), "size", size, "txid", tx.id, "dkim", nsig)
	return acceptedReply(id.String())
}

// receive reads, checks, completes, signs and queues the message.
func (ss *subSession) receive(tx *subTx, r io.Reader) (id fairq.MsgID, size, nsig int, err error) {
	s := ss.s
	// The command timeout was armed for the DATA line; the transfer gets
	// its own (network time, not the injected clock).
	if err := ss.c.Conn().SetReadDeadline(time.Now().Add(s.opts.DataTimeout)); err != nil {
		return 0, 0, 0, fmt.Errorf("%w: %w", errDataAborted, err)
	}
	data, err := io.ReadAll(r)
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return 0, 0, 0, errMessageTooBig
	case err != nil:
		return 0, 0, 0, fmt.Errorf("%w: %w", errDataAborted, err)
	}
	if err := checkLines(data); err != nil {
		return 0, 0, 0, err
	}
	fields, _, err := parseHeader(data)
	if err != nil {
		return 0, 0, 0, err
	}
	froms, err := fromAddresses(fields)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, a := range froms {
		if !ss.owns(tx.tenant, a) {
			return 0, 0, 0, &senderError{Addr: a, Header: true}
		}
	}
	// Checked again: the operator may have suspended the tenant since MAIL.
	if p, ok := s.opts.Directory.TenantPolicy(tx.tenant); ok && p.Suspended {
		return 0, 0, 0, errTenantSuspended
	}

	now := s.opts.Clock.Now()
	var added bytes.Buffer
	added.WriteString(receivedField(traceInfo{Helo: ss.c.Hostname(), IP: ss.ip, Hostname: s.opts.Hostname,
		TLS: ss.tls, Auth: ss.user.Load() != nil, ID: tx.id, Time: now}))
	signed := fields
	if !hasField(fields, "Message-ID") {
		f := messageIDField(s.opts.Hostname)
		added.WriteString(f)
		signed = append([]headerField{{Name: "Message-ID", Raw: []byte(f)}}, signed...)
	}
	if !hasField(fields, "Date") {
		f := dateField(now)
		added.WriteString(f)
		signed = append([]headerField{{Name: "Date", Raw: []byte(f)}}, signed...)
	}

	// DKIM with the active keys of the From: domain. The body is built
	// once, with room in front for the signatures.
	var signers []tenant.DKIMSigner
	domain := froms[0][strings.LastIndexByte(froms[0], '@')+1:]
	if d, derr := tenant.NormalizeDomain(domain); derr == nil {
		domain = d
		signers = s.opts.Directory.DKIMSigners(d)
	}
	reserve := sigRoom * len(signers)
	buf := make([]byte, reserve, reserve+added.Len()+len(data))
	buf = append(append(buf, added.Bytes()...), data...)
	body := buf[reserve:]
	if len(signers) > 0 {
		sigs, err := dkimSignatures(body, signed, domain, signers)
		if err != nil {
			return 0, 0, 0, err
		}
		if len(sigs) <= reserve {
			body = buf[reserve-len(sigs):]
			copy(body, sigs)
		} else {
			body = append(sigs, body...)
		}
	}
	nsig = len(signers)

	id, err = s.opts.Spool.Enqueue(context.Background(), &fairq.Message{
		Tenant: tx.tenant, From: tx.from, Recipients: tx.rcpts, Body: body, Extra: tx.dsn.encode(),
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%w: %w", errQueue, err)
	}
	return id, len(body), nsig, nil
}

package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"fairway/fairq"
	"fairway/tenant"
	"fairway/tenant/dnstest"
)

// BenchmarkEndToEnd is the relay's throughput on loopback, the whole way:
// 50 clients submit 4 KB messages over STARTTLS with AUTH PLAIN, the
// Submission server checks, (for "signed") DKIM-signs with RSA-2048 and
// Ed25519, and queues each message durably in fairq; the Delivery workers
// take them and send them over a "*" route to a sink that only counts.
//
// Everything is real and in this process: tenant.Directory and fairq.Queue
// on disk in temp dirs (Enqueue commits with fsync), production defaults
// for delivery workers, lane concurrency and idle connections, a text log
// handler at Info level writing to io.Discard (the formatting is paid, the
// I/O is not). The one change from the defaults is the per-address
// connection cap of submission, raised so that 50 clients fit on
// 127.0.0.1.
//
// b.N messages are split across the clients. The timed window starts when
// the clients start sending and ends when the sink has all b.N; it
// reports
//
//	accepted-msgs/s   b.N / time until the last "250 queued as" reply
//	delivered-msgs/s  b.N / time until the sink has received the last one
//
// ns/op is the delivered figure's inverse. Setup (directory, keys, TLS
// handshakes, one argon2id AUTH per connection) and a warm-up message per
// client stay outside the timer. A run that has not delivered everything
// after e2eDeadline fails.
//
// Each side runs under a pprof label role=client|submission|delivery|
// queue|directory|sink (goroutines inherit it from the one that started
// them), so a CPU profile splits by side: go tool pprof -tags, or
// -tagfocus role=sink. Pebble labels its WAL sync goroutine itself
// (pebble=wal-sync); GC background workers carry no label.
//
//	go test -run '^$' -bench 'EndToEnd|SignRSA2048' -benchtime 3000x -count 5 ./relay
func BenchmarkEndToEnd(b *testing.B) {
	for _, mode := range []struct {
		name   string
		signed bool
	}{{"unsigned", false}, {"signed", true}} {
		// One environment per mode, shared by the sub-benchmark's runs
		// (b.N = 1, then the real N) and closed before the next mode
		// starts. What must outlive those runs (temp dirs, the DNS
		// server) is made here; the rest only on the first run, so that a
		// mode -bench does not select costs nothing.
		e := &e2eEnv{signed: mode.signed, dns: dnstest.Start(b), dirDir: b.TempDir(), queueDir: b.TempDir()}
		b.Run(mode.name, func(b *testing.B) {
			if !e.ready {
				e.setup(b)
			}
			e.run(b)
		})
		if err := e.close(); err != nil {
			b.Error(err)
		}
	}
}

// The benchmark's shape, from the issue.
const (
	e2eClients  = 50
	e2eTenants  = 5
	e2eMsgBytes = 4096
	e2eDeadline = 2 * time.Minute
	// e2eTimeout bounds each client command, the DKIM ticks and each
	// shutdown step.
	e2eTimeout = 30 * time.Second
)

// e2eEnv is a running relay with its clients connected and authenticated.
type e2eEnv struct {
	signed           bool
	dns              *dnstest.Server // serves the DKIM key records
	dirDir, queueDir string          // tenant.Directory's and fairq's

	ready   bool // setup done
	sink    *countSink
	clients []*e2eClient
	closers []func() error // run in reverse order by close
}

// e2eClient is one submission connection, authenticated as the mailbox
// of its tenant.
type e2eClient struct {
	c    *smtp.Client
	id   int // makes its Message-IDs unique
	from string
	to   string
	seq  int
}

// setup starts the relay, the sink and the clients, and sends the
// warm-up. What it starts is stopped by close, also after a failure
// half-way.
func (e *e2eEnv) setup(b *testing.B) {
	b.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()

	// Directory: five tenants with one domain and one mailbox each, and
	// no send limits (they would refuse a long run). Their DKIM keys (RSA-2048 and Ed25519) are made pending by AddDomain; for
	// "signed" they are published on a loopback DNS server and activated
	// by moving a fake clock past the publish delay.
	clk := &testClock{now: subStart}
	var dir *tenant.Directory
	var err error
	asRole("directory", func() { // its Pebble's background goroutines
		dir, err = tenant.Open(e.dirDir, tenant.Options{Logger: logger, Clock: clk, Resolver: tenant.NewDNSResolver(e.dns.Addr)})
	})
	if err != nil {
		b.Fatal(err)
	}
	e.closers = append(e.closers, dir.Close)
	var domains []string
	for i := 1; i <= e2eTenants; i++ {
		name := fmt.Sprintf("bench%d", i)
		domain := name + ".example"
		for _, err := range []error{
			dir.AddTenant(name, tenant.Policy{}),
			dir.AddDomain(domain, name),
			dir.AddMailbox("sender@"+domain, subPassword),
		} {
			if err != nil {
				b.Fatal(err)
			}
		}
		domains = append(domains, domain)
	}
	if e.signed {
		activateAllDKIM(b, dir, e.dns, clk, domains)
	}
	for _, d := range domains {
		want := 0
		if e.signed {
			want = 2
		}
		if n := len(dir.DKIMSigners(d)); n != want {
			b.Fatalf("%s: %d active DKIM keys, want %d", d, n, want)
		}
	}

	// Queue and delivery, as `fairway serve` wires them.
	var d *Delivery
	var q *fairq.Queue
	asRole("queue", func() { // Pebble's background goroutines
		q, err = fairq.Open(e.queueDir, fairq.Options{Logger: logger,
			Bounce: func(ctx context.Context, bn fairq.Bounce) error { return d.Bounce(ctx, bn) }})
	})
	if err != nil {
		b.Fatal(err)
	}
	e.closers = append(e.closers, q.Close)
	e.sink = startCountSink(b)
	e.closers = append(e.closers, e.sink.close)
	d, err = NewDelivery(DeliveryOptions{Hostname: "relay.bench.test", Queue: q,
		Resolver: tenant.NewDNSResolver(e.dns.Addr), Routes: []Route{{Domain: "*", To: e.sink.addr}},
		Logger: logger, Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	running := make(chan error, 1)
	goAsRole("delivery", func() { running <- d.Run(ctx) })
	e.closers = append(e.closers, func() error {
		stop()
		select {
		case err := <-running:
			return err
		case <-time.After(e2eTimeout):
			return errors.New("delivery workers did not stop")
		}
	})

	// Submission on a loopback STARTTLS listener.
	srv, err := NewSubmission(SubmissionOptions{Hostname: "mx.test", Directory: dir, Spool: q,
		TLS:    &tls.Config{Certificates: []tls.Certificate{subCertificate(b)}, MinVersion: tls.VersionTLS12},
		Logger: logger, Registerer: reg, MaxConnsPerIP: 2 * e2eClients})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serving := make(chan error, 1)
	goAsRole("submission", func() { serving <- srv.ServeSTARTTLS(ln) })
	e.closers = append(e.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		select {
		case serr := <-serving:
			if serr != nil && !errors.Is(serr, smtp.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
		case <-ctx.Done():
			err = errors.Join(err, errors.New("submission did not stop serving"))
		}
		return err
	})

	// Clients: connected, STARTTLS, AUTH PLAIN, once each.
	e.clients = make([]*e2eClient, e2eClients)
	errs := make([]error, e2eClients)
	var wg sync.WaitGroup
	for i := range e.clients {
		wg.Go(func() {
			asRole("client", func() { e.clients[i], errs[i] = dialE2EClient(ln.Addr().String(), i, domains[i%len(domains)]) })
		})
	}
	wg.Wait()
	for _, c := range e.clients {
		if c != nil {
			e.closers = append(e.closers, c.c.Close)
		}
	}
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}

	// Warm-up: one message per connection, all the way to the sink, so
	// that first-use costs (session state, key parsing, delivery
	// connections) are paid before timing.
	warm := make([]int, e2eClients)
	for i := range warm {
		warm[i] = 1
	}
	if err := e.sendAll(warm); err != nil {
		b.Fatal(err)
	}
	if !e.sink.waitFor(e2eClients, time.Now().Add(e2eDeadline)) {
		b.Fatalf("warm-up: %d of %d messages at the sink after %s", e.sink.stats().msgs, e2eClients, e2eDeadline)
	}
	if err := e.checkSigned(sinkStats{}, e.sink.stats()); err != nil {
		b.Fatal(err)
	}
	e.ready = true
}

// activateAllDKIM publishes every domain's key records and ticks DKIM
// rotation past the publish delay, as subEnv.activateDKIM does for one
// domain.
func activateAllDKIM(b *testing.B, dir *tenant.Directory, dnsSrv *dnstest.Server, clk *testClock, domains []string) {
	b.Helper()
	for _, d := range domains {
		st, err := dir.DKIMStatus(d)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range st {
			if k.Record.Value == "" {
				b.Fatalf("%s: key %s has no record (%s)", d, k.Selector, k.State)
			}
			dnsSrv.SetTXT(k.Record.Name, k.Record.Value)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if err := dir.TickDKIM(ctx); err != nil { // records first seen
		b.Fatal(err)
	}
	clk.Advance(49 * time.Hour) // past the default 48 h publish delay
	if err := dir.TickDKIM(ctx); err != nil {
		b.Fatal(err)
	}
}

func dialE2EClient(addr string, id int, domain string) (*e2eClient, error) {
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	c.CommandTimeout = e2eTimeout
	c.SubmissionTimeout = e2eTimeout
	from := "sender@" + domain
	if err := c.Auth(sasl.NewPlainClient("", from, subPassword)); err != nil {
		c.Close()
		return nil, fmt.Errorf("AUTH as %s: %w", from, err)
	}
	return &e2eClient{c: c, id: id, from: from, to: "rcpt@remote.example"}, nil
}

// run is one run of a sub-benchmark: b.N messages over all clients.
func (e *e2eEnv) run(b *testing.B) {
	n := b.N
	shares := make([]int, e2eClients)
	for i := range shares {
		shares[i] = n / e2eClients
		if i < n%e2eClients {
			shares[i]++
		}
	}
	before := e.sink.stats()
	deadline := time.Now().Add(e2eDeadline)

	b.ResetTimer()
	start := time.Now()
	err := e.sendAll(shares)
	accepted := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	delivered := e.sink.waitFor(before.msgs+n, deadline)
	elapsed := time.Since(start)
	b.StopTimer()

	after := e.sink.stats()
	if !delivered {
		b.Fatalf("%d of %d messages at the sink after %s", after.msgs-before.msgs, n, e2eDeadline)
	}
	if err := e.checkSigned(before, after); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/accepted.Seconds(), "accepted-msgs/s")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "delivered-msgs/s")
	// Sessions the sink saw: connection reuse at work (few) or not (many).
	b.ReportMetric(float64(after.sessions-before.sessions), "sink-sessions")
}

// sendAll has client i send shares[i] messages, all clients at once,
// and returns when every client is done. A client stops at its first failure; past
// e2eDeadline the connections are closed so that every client returns.
func (e *e2eEnv) sendAll(shares []int) error {
	errs := make([]error, len(e.clients))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range e.clients {
		wg.Go(func() { asRole("client", func() { errs[i] = c.sendN(shares[i]) }) })
	}
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(e2eDeadline)
	defer timer.Stop()
	select {
	case <-done:
		return errors.Join(errs...)
	case <-timer.C:
		for _, c := range e.clients {
			c.c.Close()
		}
		<-done
		return fmt.Errorf("clients still sending after %s: %w", e2eDeadline, errors.Join(errs...))
	}
}

func (c *e2eClient) sendN(n int) error {
	for range n {
		c.seq++
		reply, err := send(c.c, c.from, []string{c.to}, e2eMessage(c.from, c.to, c.id, c.seq))
		if err != nil {
			return fmt.Errorf("%s, message %d: %w", c.from, c.seq, err)
		}
		if !strings.HasPrefix(reply, "2.0.0 queued as ") {
			return fmt.Errorf("%s, message %d: reply %q", c.from, c.seq, reply)
		}
	}
	return nil
}

// e2eBodyLine fills the messages' bodies.
const e2eBodyLine = "The quick brown fox jumps over the lazy dog, and then does it again.\r\n"

// e2eMessage is a message of e2eMsgBytes bytes, with the fields a mail
// client sets (so submission adds only Received).
func e2eMessage(from, to string, client, seq int) string {
	var m strings.Builder
	m.Grow(e2eMsgBytes)
	fmt.Fprintf(&m, "From: Bench Sender <%s>\r\nTo: <%s>\r\nSubject: benchmark message %08d\r\n"+
		"Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMessage-ID: <%08d.%02d.%s>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		from, to, seq, seq, client, from)
	for m.Len()+len(e2eBodyLine) <= e2eMsgBytes {
		m.WriteString(e2eBodyLine)
	}
	if pad := e2eMsgBytes - m.Len(); pad >= 2 {
		m.WriteString(strings.Repeat(".", pad-2) + "\r\n")
	}
	return m.String()
}

// checkSigned checks that every message delivered between two snapshots
// of the sink was DKIM-signed in signed mode, and none otherwise.
func (e *e2eEnv) checkSigned(before, after sinkStats) error {
	msgs, signed := after.msgs-before.msgs, after.signed-before.signed
	if e.signed && signed != msgs || !e.signed && signed != 0 {
		return fmt.Errorf("%d of %d delivered messages DKIM-signed (signing on: %v)", signed, msgs, e.signed)
	}
	return nil
}

// close stops everything setup started, in reverse order.
func (e *e2eEnv) close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		if err := e.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	e.closers, e.ready = nil, false
	return errors.Join(errs...)
}

// asRole runs f with the pprof label role=role; goroutines f starts
// inherit it.
func asRole(role string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("role", role), func(context.Context) { f() })
}

// goAsRole runs f in a new goroutine labelled role=role.
func goAsRole(role string, f func()) {
	go asRole(role, f)
}

// countSink is the remote side for the benchmark: an SMTP server on
// 127.0.0.1 that accepts everything and only counts messages (and those
// that start with a DKIM-Signature field), so that it costs the relay's
// machine as little as possible. sink (sink_test.go) records every message
// instead.
type countSink struct {
	addr   string
	srv    *smtp.Server
	served chan struct{}

	mu      sync.Mutex
	st      sinkStats
	want    int           // waitFor's target, 0 if none
	reached chan struct{} // closed when st.msgs reaches want
}

type sinkStats struct {
	msgs, signed, sessions int
}

func startCountSink(b *testing.B) *countSink {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &countSink{addr: ln.Addr().String(), served: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = e2eTimeout
	srv.WriteTimeout = e2eTimeout
	srv.MaxMessageBytes = 1 << 20
	s.srv = srv
	goAsRole("sink", func() {
		defer close(s.served)
		srv.Serve(ln)
	})
	return s
}

func (s *countSink) close() error {
	err := s.srv.Close()
	<-s.served
	return err
}

func (s *countSink) stats() sinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// waitFor reports whether the sink holds n messages, waiting for them
// until deadline.
func (s *countSink) waitFor(n int, deadline time.Time) bool {
	s.mu.Lock()
	if s.st.msgs >= n {
		s.mu.Unlock()
		return true
	}
	s.want, s.reached = n, make(chan struct{})
	reached := s.reached
	s.mu.Unlock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-reached:
		return true
	case <-timer.C:
		s.mu.Lock()
		defer s.mu.Unlock()
		s.want, s.reached = 0, nil
		return s.st.msgs >= n
	}
}

func (s *countSink) newSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.st.sessions++
	s.mu.Unlock()
	return countSession{s}, nil
}

type countSession struct{ s *countSink }

func (countSession) Mail(string, *smtp.MailOptions) error { return nil }
func (countSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (countSession) Reset()                               {}
func (countSession) Logout() error                        { return nil }

var dkimFieldPrefix = []byte("DKIM-Signature:")

func (ss countSession) Data(r io.Reader) error {
	var head [len("DKIM-Signature:")]byte
	n, err := io.ReadFull(r, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.msgs++
	if bytes.Equal(head[:n], dkimFieldPrefix) {
		s.st.signed++
	}
	if s.reached != nil && s.st.msgs >= s.want {
		close(s.reached)
		s.want, s.reached = 0, nil
	}
	return nil
}

package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"fairway/fairq"
	"fairway/tenant"
	"fairway/tenant/dnstest"
)

// logBuffer collects JSON log lines safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// events returns the log records whose message is msg.
func (b *logBuffer) events(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(b.buf.Bytes()) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// dlvEnv is a real queue in a temp dir, a real DNS server on loopback and
// running delivery workers.
type dlvEnv struct {
	t     *testing.T
	clock *testClock
	q     *fairq.Queue
	dns   *dnstest.Server
	d     *Delivery
	reg   *prometheus.Registry
	logs  *logBuffer
	n     int
}

func newDlvEnv(t *testing.T, tweak func(o *DeliveryOptions)) *dlvEnv {
	t.Helper()
	return newDlvEnvQueue(t, fairq.Options{}, tweak)
}

// newDlvEnvQueue is newDlvEnv with queue options (logger, clock, jitter and
// bounce callback are the environment's).
func newDlvEnvQueue(t *testing.T, qo fairq.Options, tweak func(o *DeliveryOptions)) *dlvEnv {
	t.Helper()
	e := &dlvEnv{t: t, clock: newTestClock(), dns: dnstest.Start(t), reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var d *Delivery
	qo.Logger = logger
	qo.Clock = e.clock
	qo.Random = func() float64 { return 0.5 }
	qo.Bounce = func(ctx context.Context, b fairq.Bounce) error { return d.Bounce(ctx, b) }
	q, err := fairq.Open(t.TempDir(), qo)
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	o := DeliveryOptions{
		Hostname:       "relay.test",
		Queue:          q,
		Resolver:       tenant.NewDNSResolver(e.dns.Addr),
		Workers:        4,
		DialTimeout:    2 * time.Second,
		CommandTimeout: 5 * time.Second,
		DataTimeout:    5 * time.Second,
		Logger:         logger,
		Clock:          e.clock,
		Registerer:     e.reg,
	}
	if tweak != nil {
		tweak(&o)
	}
	d, err = NewDelivery(o)
	if err != nil {
		q.Close()
		t.Fatal(err)
	}
	e.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("delivery workers did not stop")
		}
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// send enqueues a small message and returns its ID.
func (e *dlvEnv) send(tenantName, from string, rcpts ...string) fairq.MsgID {
	e.t.Helper()
	e.n++
	body := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: test %d\r\nMessage-ID: <m%d@sender.test>\r\n\r\nHello number %d.\r\n",
		from, rcpts[0], e.n, e.n, e.n)
	id, err := e.q.Enqueue(context.Background(), &fairq.Message{Tenant: tenantName, From: from, Recipients: rcpts, Body: []byte(body)})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// records returns the queued delivery records of message id.
func (e *dlvEnv) records(id fairq.MsgID) []*fairq.Record {
	e.t.Helper()
	entries, err := e.q.List(fairq.ListOptions{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*fairq.Record
	for _, en := range entries {
		if en.ID == id {
			out = append(out, en.Record)
		}
	}
	return out
}

// waitIdle waits until nothing is queued or in flight.
func (e *dlvEnv) waitIdle() {
	e.t.Helper()
	waitUntil(e.t, "queue empty", func() bool {
		entries, err := e.q.List(fairq.ListOptions{})
		if err != nil || len(entries) > 0 {
			return false
		}
		for _, ts := range e.q.Stats().Tenants {
			if ts.InFlight > 0 {
				return false
			}
		}
		return true
	})
}

// waitDeferred waits until message id's delivery has been attempted attempts
// times and is waiting for a retry, and returns its record.
func (e *dlvEnv) waitDeferred(id fairq.MsgID, attempts int) *fairq.Record {
	e.t.Helper()
	var rec *fairq.Record
	waitUntil(e.t, fmt.Sprintf("message %s deferred after attempt %d", id, attempts), func() bool {
		recs := e.records(id)
		if len(recs) != 1 || recs[0].Attempts != attempts || recs[0].LastError == "" {
			return false
		}
		for _, ts := range e.q.Stats().Tenants {
			if ts.InFlight > 0 {
				return false
			}
		}
		rec = recs[0]
		return true
	})
	return rec
}

// counter reads a counter of the registry; 0 if absent.
func (e *dlvEnv) counter(name string, labels map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// waitUntil polls cond every 5 ms for at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func waitMessages(t *testing.T, s *sink, n int) []sinkMsg {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d messages at the sink", n), func() bool { return len(s.messages()) >= n })
	return s.messages()
}

func routeTo(s *sink, domains ...string) func(o *DeliveryOptions) {
	return func(o *DeliveryOptions) {
		for _, d := range domains {
			o.Routes = append(o.Routes, Route{Domain: d, To: s.addr})
		}
	}
}

func TestDeliveryViaRouteSeveralRecipientsOneTransaction(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, routeTo(s, "route.test"))
	id := e.send("t1", "alice@sender.test", "x@route.test", "y@route.test", "z@route.test")
	msgs := waitMessages(t, s, 1)
	e.waitIdle()
	m := msgs[0]
	if m.From != "alice@sender.test" || !slices.Equal(m.Rcpts, []string{"x@route.test", "y@route.test", "z@route.test"}) {
		t.Fatalf("sink got MAIL %q RCPT %q", m.From, m.Rcpts)
	}
	if !bytes.Contains(m.Data, []byte("Subject: test 1\r\n")) || !bytes.HasSuffix(m.Data, []byte("Hello number 1.\r\n")) {
		t.Fatalf("sink got data %q", m.Data)
	}
	if m.EHLO != "relay.test" || m.Remote != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("EHLO %q from %s, want relay.test from 127.0.0.1 (no pools: no binding)", m.EHLO, m.Remote)
	}
	if n := s.connCount(); n != 1 || len(s.messages()) != 1 {
		t.Fatalf("%d connections, %d messages; want one transaction", n, len(s.messages()))
	}
	if got := e.counter("fairway_deliveries_total", map[string]string{"tenant": "t1", "result": "delivered"}); got != 3 {
		t.Fatalf("fairway_deliveries_total{t1,delivered} = %v, want 3", got)
	}
	for _, ev := range []string{"attempt", "delivered"} {
		lines := e.logs.events(ev)
		if len(lines) != 1 || lines[0]["tenant"] != "t1" || lines[0]["msgid"] != id.String() {
			t.Fatalf("%s events: %v", ev, lines)
		}
	}
	if got := e.logs.events("delivered")[0]["recipients"]; len(got.([]any)) != 3 {
		t.Fatalf("delivered event recipients %v", got)
	}
}

// twoSinksOnePort starts a sink on 127.0.0.1 and another on ip with the same
// port, since MX hosts are all dialed on one port.
func twoSinksOnePort(t *testing.T, ip string) (*sink, *sink) {
	t.Helper()
	for range 5 {
		a := startSink(t, sinkOptions{})
		b, err := tryStartSink(t, sinkOptions{IP: ip, Port: a.port})
		if err == nil {
			return a, b
		}
	}
	t.Fatalf("no port free on both 127.0.0.1 and %s", ip)
	return nil, nil
}

func TestDeliveryMXPreferenceOrder(t *testing.T) {
	primary, backup := twoSinksOnePort(t, "127.0.0.7")
	e := newDlvEnv(t, func(o *DeliveryOptions) { o.Port = primary.port })
	// The answer lists the backup first; preference decides.
	e.dns.SetMX("mx.test", &net.MX{Host: "mx-b.mx.test", Pref: 20}, &net.MX{Host: "mx-a.mx.test", Pref: 10})
	e.dns.SetIPs("mx-a.mx.test", "127.0.0.1")
	e.dns.SetIPs("mx-b.mx.test", "127.0.0.7")

	hop, derr := e.d.resolveNextHop(context.Background(), "mx.test")
	if derr != nil {
		t.Fatal(derr)
	}
	if hop.site != "mx-a.mx.test" || len(hop.hosts) != 2 || hop.hosts[0].name != "mx-a.mx.test" || hop.hosts[1].name != "mx-b.mx.test" {
		t.Fatalf("next hop %+v", hop)
	}

	e.send("t1", "alice@sender.test", "bob@mx.test")
	waitMessages(t, primary, 1)
	e.waitIdle()
	if n := len(backup.messages()); n != 0 || backup.connCount() != 0 {
		t.Fatalf("backup MX got %d messages", n)
	}
}

func TestDeliveryFallsBackToSecondMX(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, func(o *DeliveryOptions) { o.Port = s.port })
	// Nothing listens on 127.0.0.9: the connection is refused.
	e.dns.SetMX("fallback.test", &net.MX{Host: "mx1.fallback.test", Pref: 10}, &net.MX{Host: "mx2.fallback.test", Pref: 20})
	e.dns.SetIPs("mx1.fallback.test", "127.0.0.9")
	e.dns.SetIPs("mx2.fallback.test", "127.0.0.1")
	e.send("t1", "alice@sender.test", "bob@fallback.test")
	waitMessages(t, s, 1)
	e.waitIdle()
	failed := e.logs.events("connection failed")
	if len(failed) != 1 || failed[0]["host"] != "mx1.fallback.test" {
		t.Fatalf("connection failures logged: %v", failed)
	}
	if got := e.logs.events("delivered")[0]["host"]; got != "mx2.fallback.test" {
		t.Fatalf("delivered via %v", got)
	}
}

func TestDeliveryNoMXUsesAddressRecord(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, func(o *DeliveryOptions) { o.Port = s.port })
	e.dns.SetIPs("plain.test", "127.0.0.1") // no MX record
	e.send("t1", "alice@sender.test", "bob@plain.test")
	msgs := waitMessages(t, s, 1)
	e.waitIdle()
	if !slices.Equal(msgs[0].Rcpts, []string{"bob@plain.test"}) {
		t.Fatalf("got %v", msgs[0].Rcpts)
	}
}

func TestDeliveryUnreachableSiteDefersAndBacksOff(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, func(o *DeliveryOptions) { o.Port = s.port })
	e.dns.SetMX("down.test", &net.MX{Host: "mx.down.test", Pref: 10})
	e.dns.SetIPs("mx.down.test", "127.0.0.9")
	id := e.send("t1", "alice@sender.test", "bob@down.test")
	rec := e.waitDeferred(id, 1)
	if !strings.HasPrefix(rec.LastError, "connect mx.down.test: 4.4.1 ") {
		t.Fatalf("last error %q", rec.LastError)
	}
	lane := laneStats(e.q, "", "mx.down.test")
	if lane.Failures != 1 || lane.BackoffUntil.IsZero() {
		t.Fatalf("lane after a refused connection: %+v", lane)
	}
}

func laneStats(q *fairq.Queue, pool, site string) fairq.LaneStats {
	for _, l := range q.Stats().Lanes {
		if l.Pool == pool && l.Site == site {
			return l
		}
	}
	return fairq.LaneStats{}
}

func TestDeliveryNullMXBouncesWithDSN(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, func(o *DeliveryOptions) { o.Port = s.port })
	e.dns.SetMX("nullmx.test", &net.MX{Host: ".", Pref: 0})
	e.dns.SetMX("sender.test", &net.MX{Host: "mx.sender.test", Pref: 10})
	e.dns.SetIPs("mx.sender.test", "127.0.0.1")
	id := e.send("t1", "alice@sender.test", "bob@nullmx.test")
	msgs := waitMessages(t, s, 1)
	e.waitIdle()
	if len(msgs) != 1 || msgs[0].From != "" || !slices.Equal(msgs[0].Rcpts, []string{"alice@sender.test"}) {
		t.Fatalf("sink got %+v; want only the DSN, from <> to the sender", msgs)
	}
	r := parseDSN(t, msgs[0].Data)
	if len(r.recipients) != 1 {
		t.Fatalf("DSN recipients %v", r.recipients)
	}
	rc := r.recipients[0]
	if rc.Get("Final-Recipient") != "rfc822; bob@nullmx.test" || rc.Get("Action") != "failed" || rc.Get("Status") != "5.1.10" {
		t.Fatalf("DSN recipient fields %v", rc)
	}
	if !strings.Contains(rc.Get("Diagnostic-Code"), "null MX") {
		t.Fatalf("Diagnostic-Code %q", rc.Get("Diagnostic-Code"))
	}
	if r.perMessage.Get("X-Fairway-Queue-ID") != id.String() {
		t.Fatalf("DSN for %q, want %s", r.perMessage.Get("X-Fairway-Queue-ID"), id)
	}
	if got := e.counter("fairway_deliveries_total", map[string]string{"tenant": "t1", "result": "bounced"}); got != 1 {
		t.Fatalf("bounced counter %v", got)
	}
}

// dsnParts is a parsed DSN.
type dsnParts struct {
	header     mail.Header
	human      string
	perMessage textproto.MIMEHeader
	recipients []textproto.MIMEHeader
	original   string // text/rfc822-headers
}

// parseDSN checks the RFC 3464 structure and returns its parts.
func parseDSN(t *testing.T, data []byte) dsnParts {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out := dsnParts{header: msg.Header}
	if got := msg.Header.Get("From"); got != "Mail Delivery System <MAILER-DAEMON@relay.test>" {
		t.Fatalf("DSN From %q", got)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %q", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for range 10 {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, ct)
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		switch ct {
		case "text/plain":
			out.human = string(body)
		case "message/delivery-status":
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			out.perMessage, err = tr.ReadMIMEHeader()
			if err != nil {
				t.Fatalf("per-message fields: %v in %q", err, body)
			}
			for range 100 {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					out.recipients = append(out.recipients, h)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("per-recipient fields: %v in %q", err, body)
				}
			}
		case "text/rfc822-headers":
			out.original = string(body)
		}
	}
	if !slices.Equal(types, []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}) {
		t.Fatalf("DSN parts %v", types)
	}
	if out.perMessage.Get("Reporting-MTA") != "dns; relay.test" {
		t.Fatalf("Reporting-MTA %q", out.perMessage.Get("Reporting-MTA"))
	}
	if _, err := mail.ParseDate(out.perMessage.Get("Arrival-Date")); err != nil {
		t.Fatalf("Arrival-Date %q: %v", out.perMessage.Get("Arrival-Date"), err)
	}
	return out
}

func TestDeliveryPoolsBindSourceAddress(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, func(o *DeliveryOptions) {
		o.Routes = []Route{{Domain: "*", To: s.addr}}
		o.Pools = map[string][]Source{
			"standard": {{IP: netip.MustParseAddr("127.0.0.2"), EHLO: "out2.relay.test"}},
			"bulk":     {{IP: netip.MustParseAddr("127.0.0.3"), EHLO: "out3.relay.test"}},
		}
		o.DefaultPool = "standard"
	})
	e.q.SetTenant("bulky", fairq.TenantConfig{Pool: "bulk"})
	e.send("careful", "a@careful.test", "x@dest.test") // pool "" = the default pool
	e.send("bulky", "b@bulky.test", "y@dest.test")
	msgs := waitMessages(t, s, 2)
	e.waitIdle()
	want := map[string]struct {
		ip   string
		ehlo string
	}{
		"a@careful.test": {"127.0.0.2", "out2.relay.test"},
		"b@bulky.test":   {"127.0.0.3", "out3.relay.test"},
	}
	for _, m := range msgs {
		w, ok := want[m.From]
		if !ok {
			t.Fatalf("unexpected message from %q", m.From)
		}
		if m.Remote.String() != w.ip || m.EHLO != w.ehlo {
			t.Errorf("message from %s came from %s as %q, want %s as %q", m.From, m.Remote, m.EHLO, w.ip, w.ehlo)
		}
	}
}

func TestDeliverySTARTTLS(t *testing.T) {
	s := startSink(t, sinkOptions{TLS: true})
	e := newDlvEnv(t, func(o *DeliveryOptions) {
		o.Routes = []Route{{Domain: "*", To: s.addr}}
		o.Pools = map[string][]Source{"p": {{IP: netip.MustParseAddr("127.0.0.2"), EHLO: "out.relay.test"}}}
		o.DefaultPool = "p"
	})
	e.send("t1", "alice@sender.test", "bob@tls.test")
	msgs := waitMessages(t, s, 1)
	e.waitIdle()
	if !msgs[0].TLS || msgs[0].EHLO != "out.relay.test" {
		t.Fatalf("message TLS=%v EHLO %q", msgs[0].TLS, msgs[0].EHLO)
	}
	// Before and after STARTTLS, the source's name.
	if got := s.ehloNames(); !slices.Equal(got, []string{"out.relay.test", "out.relay.test"}) {
		t.Fatalf("EHLO names %v", got)
	}
	started := e.logs.events("TLS started")
	if len(started) != 1 || !strings.HasPrefix(started[0]["tls"].(string), "TLS 1.") {
		t.Fatalf("TLS events %v", started)
	}
	if got := e.logs.events("delivered")[0]["tls"]; got != started[0]["tls"] {
		t.Fatalf("delivered event tls %v", got)
	}
}

func TestDeliveryFailedTLSHandshakeFallsBackToPlaintext(t *testing.T) {
	s := startSink(t, sinkOptions{BrokenTLS: true})
	e := newDlvEnv(t, routeTo(s, "*"))
	e.send("t1", "alice@sender.test", "bob@oldtls.test")
	msgs := waitMessages(t, s, 1)
	e.waitIdle()
	if msgs[0].TLS || s.connCount() != 2 {
		t.Fatalf("TLS=%v over %d connections; want plaintext on the second", msgs[0].TLS, s.connCount())
	}
	if ev := e.logs.events("TLS handshake failed, retrying in plaintext"); len(ev) != 1 {
		t.Fatalf("events %v", ev)
	}
}

func TestDelivery4xxDefersAndBacksOffOnlyThatSite(t *testing.T) {
	slow := startSink(t, sinkOptions{})
	fine := startSink(t, sinkOptions{})
	slow.setMode(sinkTempFail)
	e := newDlvEnv(t, func(o *DeliveryOptions) {
		o.Routes = []Route{{Domain: "a.test", To: slow.addr}, {Domain: "b.test", To: fine.addr}}
	})
	m1 := e.send("t1", "alice@sender.test", "x@a.test")
	rec := e.waitDeferred(m1, 1)
	if !strings.Contains(rec.LastError, "mail 127.0.0.1: 451 4.3.2 ") {
		t.Fatalf("last error %q", rec.LastError)
	}
	lane := laneStats(e.q, "", slow.addr)
	if lane.Failures != 1 || lane.BackoffUntil.IsZero() {
		t.Fatalf("lane of the deferring site: %+v", lane)
	}

	// While the site backs off, its mail waits and other sites' mail flows.
	m2 := e.send("t1", "alice@sender.test", "y@a.test")
	e.send("t1", "alice@sender.test", "z@b.test")
	waitMessages(t, fine, 1)
	if n := slow.mailCount(); n != 1 {
		t.Fatalf("the backing-off site saw %d MAIL commands, want 1", n)
	}
	if recs := e.records(m2); len(recs) != 1 || recs[0].Attempts != 0 {
		t.Fatalf("second message to the backing-off site: %+v", recs)
	}

	// The site recovers; the retry and the waiting message both go.
	slow.setMode(sinkAccept)
	e.clock.Advance(fairq.RetryDelay(1, 0.5) + time.Second)
	msgs := waitMessages(t, slow, 2)
	e.waitIdle()
	var got []string
	for _, m := range msgs {
		got = append(got, m.Rcpts...)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"x@a.test", "y@a.test"}) {
		t.Fatalf("after recovery the site got %v", got)
	}
	if lane := laneStats(e.q, "", slow.addr); lane.Failures != 0 {
		t.Fatalf("lane still failing after success: %+v", lane)
	}
}

func TestDelivery5xxBouncesWithDSN(t *testing.T) {
	s := startSink(t, sinkOptions{})
	s.rejectRcpt("bob@far.test", 550, smtp.EnhancedCode{5, 1, 1}, "no such user here")
	e := newDlvEnv(t, routeTo(s, "*"))
	id := e.send("t1", "alice@sender.test", "bob@far.test")
	msgs := waitMessages(t, s, 1)
	e.waitIdle()
	if len(msgs) != 1 || msgs[0].From != "" || !slices.Equal(msgs[0].Rcpts, []string{"alice@sender.test"}) {
		t.Fatalf("sink got %+v; want only the DSN", msgs)
	}
	r := parseDSN(t, msgs[0].Data)
	if r.header.Get("To") != "<alice@sender.test>" || r.header.Get("Auto-Submitted") != "auto-replied" {
		t.Fatalf("DSN header %v", r.header)
	}
	if len(r.recipients) != 1 {
		t.Fatalf("DSN recipients %v", r.recipients)
	}
	rc := r.recipients[0]
	for field, want := range map[string]string{
		"Final-Recipient": "rfc822; bob@far.test",
		"Action":          "failed",
		"Status":          "5.1.1",
		"Remote-MTA":      "dns; 127.0.0.1",
		"Diagnostic-Code": "smtp; 550 5.1.1 no such user here",
	} {
		if got := rc.Get(field); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	if !strings.Contains(r.original, "Subject: test 1\r\n") || strings.Contains(r.original, "Hello number") {
		t.Fatalf("original headers part %q", r.original)
	}
	if !strings.Contains(r.human, "<bob@far.test>: rcpt 127.0.0.1: 550 5.1.1 no such user here") {
		t.Fatalf("human part %q", r.human)
	}
	// The DSN went out as the original tenant.
	if got := e.counter("fairway_deliveries_total", map[string]string{"tenant": "t1", "result": "delivered"}); got != 1 {
		t.Fatalf("DSN deliveries for t1: %v", got)
	}
	queued := e.logs.events("dsn queued")
	if len(queued) != 1 || queued[0]["msgid"] != id.String() || queued[0]["tenant"] != "t1" {
		t.Fatalf("dsn events %v", queued)
	}
}

func TestDeliveryNullSenderGetsNoDSN(t *testing.T) {
	s := startSink(t, sinkOptions{})
	s.setMode(sinkPermFail)
	e := newDlvEnv(t, routeTo(s, "*"))
	id := e.send("t1", "", "bob@far.test")
	e.waitIdle()
	if n := len(s.messages()); n != 0 {
		t.Fatalf("sink got %d messages", n)
	}
	if got := e.counter("fairway_dsn_total", nil); got != 0 {
		t.Fatalf("%v DSNs queued", got)
	}
	no := e.logs.events("no DSN for a null-sender message")
	if len(no) != 1 || no[0]["msgid"] != id.String() {
		t.Fatalf("log %v", no)
	}
}

// TestDeliveryPerRecipientResults runs with PIPELINING (the default against
// a server that offers it) and without, one reply at a time.
func TestDeliveryPerRecipientResults(t *testing.T) {
	for _, mode := range []struct {
		name    string
		disable bool
	}{{"pipelined", false}, {"one at a time", true}} {
		t.Run(mode.name, func(t *testing.T) { testPerRecipientResults(t, mode.disable) })
	}
}

func testPerRecipientResults(t *testing.T, disablePipelining bool) {
	s := startSink(t, sinkOptions{})
	s.rejectRcpt("bad@mix.test", 550, smtp.EnhancedCode{5, 1, 1}, "unknown user")
	s.rejectRcpt("later@mix.test", 450, smtp.EnhancedCode{4, 2, 1}, "mailbox busy")
	e := newDlvEnv(t, func(o *DeliveryOptions) {
		routeTo(s, "*")(o)
		o.DisablePipelining = disablePipelining
	})
	id := e.send("t1", "alice@sender.test", "good@mix.test", "bad@mix.test", "later@mix.test")
	rec := e.waitDeferred(id, 1)
	msgs := waitMessages(t, s, 2) // the message and the DSN
	byFrom := map[string]sinkMsg{}
	for _, m := range msgs {
		byFrom[m.From] = m
	}
	if got := byFrom["alice@sender.test"].Rcpts; !slices.Equal(got, []string{"good@mix.test"}) {
		t.Fatalf("message delivered to %v, want only good@", got)
	}
	if !slices.Equal(rec.Recipients, []string{"later@mix.test"}) || !strings.Contains(rec.LastError, "450 4.2.1 mailbox busy") {
		t.Fatalf("queued for retry: %v (%q)", rec.Recipients, rec.LastError)
	}
	dsn, ok := byFrom[""]
	if !ok {
		t.Fatal("no DSN")
	}
	r := parseDSN(t, dsn.Data)
	if len(r.recipients) != 1 || r.recipients[0].Get("Final-Recipient") != "rfc822; bad@mix.test" ||
		r.recipients[0].Get("Status") != "5.1.1" {
		t.Fatalf("DSN recipients %v", r.recipients)
	}
	for result, want := range map[string]float64{"delivered": 2, "bounced": 1, "deferred": 1} { // delivered: good@ and the DSN
		if got := e.counter("fairway_deliveries_total", map[string]string{"tenant": "t1", "result": result}); got != want {
			t.Errorf("%s: %v, want %v", result, got, want)
		}
	}
}

func TestDeliveryReusesConnectionsPerSite(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, routeTo(s, "reuse.test"))
	// One connection per (pool, site): the lane's concurrency limit is the cap.
	e.q.SetSite("reuse.test", s.addr)
	e.q.SetLaneLimit("", s.addr, 1)
	for i := range 5 {
		e.send("t1", "alice@sender.test", fmt.Sprintf("r%d@reuse.test", i))
	}
	waitMessages(t, s, 5)
	e.waitIdle()
	if n := s.connCount(); n != 1 {
		t.Fatalf("%d connections for 5 messages to one site, want 1", n)
	}
	if got := e.counter("fairway_delivery_connections_total", map[string]string{"kind": "reused"}); got != 4 {
		t.Fatalf("reused connections %v, want 4", got)
	}
	if n := e.d.idle.count(); n != 1 {
		t.Fatalf("%d idle connections kept, want 1", n)
	}
}

func TestDeliverySlowServerHitsCommandTimeout(t *testing.T) {
	s := startSink(t, sinkOptions{})
	s.setMode(sinkSlow)
	e := newDlvEnv(t, func(o *DeliveryOptions) {
		o.Routes = []Route{{Domain: "*", To: s.addr}}
		o.CommandTimeout = 300 * time.Millisecond
	})
	start := time.Now()
	id := e.send("t1", "alice@sender.test", "bob@slow.test")
	rec := e.waitDeferred(id, 1)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the attempt took %v", took)
	}
	if !strings.HasPrefix(rec.LastError, "mail 127.0.0.1: 4.4.2 timed out") {
		t.Fatalf("last error %q", rec.LastError)
	}
	if lane := laneStats(e.q, "", s.addr); lane.Failures != 1 {
		t.Fatalf("lane %+v", lane)
	}
}

func TestDeliveryRefusedSessionBacksOff(t *testing.T) {
	s := startSink(t, sinkOptions{})
	s.setMode(sinkRefuse)
	e := newDlvEnv(t, routeTo(s, "*"))
	id := e.send("t1", "alice@sender.test", "bob@busy.test")
	rec := e.waitDeferred(id, 1)
	if !strings.HasPrefix(rec.LastError, "ehlo 127.0.0.1: 421 4.7.0 ") {
		t.Fatalf("last error %q", rec.LastError)
	}
	if lane := laneStats(e.q, "", s.addr); lane.Failures != 1 {
		t.Fatalf("lane %+v", lane)
	}
}

// panicResolver panics on one name and asks the real DNS otherwise.
type panicResolver struct {
	Resolver
	name string
}

func (p panicResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	if name == p.name {
		panic("resolver exploded")
	}
	return p.Resolver.LookupMX(ctx, name)
}

func TestDeliveryWorkerRecoversPanic(t *testing.T) {
	s := startSink(t, sinkOptions{})
	e := newDlvEnv(t, func(o *DeliveryOptions) {
		o.Resolver = panicResolver{Resolver: o.Resolver, name: "boom.test"}
		o.Port = s.port
		o.Workers = 1
	})
	e.dns.SetIPs("ok.test", "127.0.0.1")
	id := e.send("t1", "alice@sender.test", "bob@boom.test")
	rec := e.waitDeferred(id, 1)
	if !strings.Contains(rec.LastError, "internal error") {
		t.Fatalf("last error %q", rec.LastError)
	}
	if got := e.counter("fairway_delivery_panics_total", nil); got != 1 {
		t.Fatalf("panics counted: %v", got)
	}
	// The one worker lives on.
	e.send("t1", "alice@sender.test", "bob@ok.test")
	waitMessages(t, s, 1)
}

func TestDeliveryDNSFailureDefersWithoutBackoff(t *testing.T) {
	e := newDlvEnv(t, nil)
	e.dns.SetFail("flaky.test", true)
	id := e.send("t1", "alice@sender.test", "bob@flaky.test")
	rec := e.waitDeferred(id, 1)
	if !strings.HasPrefix(rec.LastError, "dns flaky.test: 4.4.3 ") {
		t.Fatalf("last error %q", rec.LastError)
	}
	for _, l := range e.q.Stats().Lanes {
		if l.Failures > 0 {
			t.Fatalf("a DNS failure backed off lane %+v", l)
		}
	}
}

func TestDeliveryExpiryBouncesWithDSNSayingSo(t *testing.T) {
	s := startSink(t, sinkOptions{})
	s.rejectRcpt("bob@far.test", 450, smtp.EnhancedCode{4, 2, 2}, "mailbox full")
	// With a one-minute maximum age, the first temporary failure expires.
	e := newDlvEnvQueue(t, fairq.Options{MaxAge: time.Minute}, routeTo(s, "*"))
	e.send("t1", "alice@sender.test", "bob@far.test")
	msgs := waitMessages(t, s, 1)
	e.waitIdle()
	if msgs[0].From != "" || !slices.Equal(msgs[0].Rcpts, []string{"alice@sender.test"}) {
		t.Fatalf("sink got %+v", msgs[0])
	}
	r := parseDSN(t, msgs[0].Data)
	if !strings.Contains(r.header.Get("Subject"), "expired") || !strings.Contains(r.human, "in the time") {
		t.Fatalf("the DSN does not say the delivery expired: %q / %q", r.header.Get("Subject"), r.human)
	}
	if len(r.recipients) != 1 || r.recipients[0].Get("Status") != "4.2.2" ||
		r.recipients[0].Get("Diagnostic-Code") != "smtp; 450 4.2.2 mailbox full" {
		t.Fatalf("DSN recipients %v", r.recipients)
	}
	if b := e.logs.events("bounced"); len(b) != 1 || b[0]["expired"] != true {
		t.Fatalf("bounced events %v", b)
	}
}

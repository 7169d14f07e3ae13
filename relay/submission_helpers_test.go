package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"fairway/fairq"
	"fairway/tenant"
	"fairway/tenant/dnstest"
)

// Test environment of the submission server: a real tenant.Directory and a
// real fairq.Queue in temp dirs, the server on two 127.0.0.1:0 listeners
// (STARTTLS and implicit TLS), a fake clock, and, when asked, a loopback
// DNS server for DKIM key records.

var subStart = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

// Users of the test directory, all with subPassword.
const (
	subPassword = "correct horse battery staple"
	subAlice    = "alice@acme.example"   // tenant acme
	subBob      = "bob@acme.example"     // tenant acme
	subCarol    = "carol@globex.example" // tenant globex
)

// syncBuffer collects log output from concurrent sessions.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type subEnv struct {
	t       testing.TB
	clk     *testClock
	dir     *tenant.Directory
	q       *fairq.Queue
	srv     *Submission
	reg     *prometheus.Registry
	logs    *syncBuffer
	dns     *dnstest.Server // nil unless asked for
	addr    string          // STARTTLS listener
	tlsAddr string          // implicit TLS listener
	client  *tls.Config
}

type subEnvConfig struct {
	dns      bool                     // serve DKIM records from a loopback DNS server
	options  func(*SubmissionOptions) // adjust the server's options
	logLevel slog.Level               // what e.logs keeps; default Debug
}

var (
	subCertOnce sync.Once
	subCert     tls.Certificate
	subCertErr  error
)

// subCertificate is one self-signed certificate for mx.test, made once per
// test binary.
func subCertificate(t testing.TB) tls.Certificate {
	subCertOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fairway-relay-cert-")
		if err != nil {
			subCertErr = err
			return
		}
		defer os.RemoveAll(dir) // the certificate stays in memory
		subCert, subCertErr = LoadOrCreateCertificate("", "", dir, "mx.test", time.Now())
	})
	if subCertErr != nil {
		t.Fatal(subCertErr)
	}
	return subCert
}

func newSubEnv(t testing.TB, cfg subEnvConfig) *subEnv {
	t.Helper()
	e := &subEnv{t: t, clk: &testClock{now: subStart}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	level := cfg.logLevel
	if level == 0 {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: level}))

	topts := tenant.Options{Logger: log, Clock: e.clk}
	if cfg.dns {
		e.dns = dnstest.Start(t)
		topts.Resolver = tenant.NewDNSResolver(e.dns.Addr)
	}
	dir, err := tenant.Open(t.TempDir(), topts)
	if err != nil {
		t.Fatal(err)
	}
	e.dir = dir
	t.Cleanup(func() {
		if err := dir.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, step := range []error{
		dir.AddTenant("acme", tenant.Policy{}),
		dir.AddDomain("acme.example", "acme"),
		dir.AddMailbox(subAlice, subPassword),
		dir.AddMailbox(subBob, subPassword),
		dir.AddTenant("globex", tenant.Policy{}),
		dir.AddDomain("globex.example", "globex"),
		dir.AddMailbox(subCarol, subPassword),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}

	q, err := fairq.Open(t.TempDir(), fairq.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	t.Cleanup(func() { q.Close() })

	cert := subCertificate(t)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	e.client = &tls.Config{RootCAs: roots, ServerName: "mx.test"}

	opts := SubmissionOptions{
		Hostname: "mx.test", Directory: dir, Spool: q, Clock: e.clk, Logger: log,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Registerer: e.reg,
	}
	if cfg.options != nil {
		cfg.options(&opts)
	}
	srv, err := NewSubmission(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	var serving sync.WaitGroup
	for _, mode := range []struct {
		addr  *string
		serve func(net.Listener) error
	}{{&e.addr, srv.ServeSTARTTLS}, {&e.tlsAddr, srv.ServeImplicitTLS}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*mode.addr = ln.Addr().String()
		serving.Add(1)
		go func() {
			defer serving.Done()
			// ErrServerClosed: the test ended before this Serve began.
			if err := mode.serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				t.Errorf("serve: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		serving.Wait()
	})
	return e
}

// policy edits a tenant's policy.
func (e *subEnv) policy(name string, edit func(p *tenant.Policy)) {
	e.t.Helper()
	if err := e.dir.UpdateTenant(name, edit); err != nil {
		e.t.Fatal(err)
	}
}

// dial connects without TLS.
func (e *subEnv) dial() *smtp.Client {
	e.t.Helper()
	c, err := smtp.Dial(e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// dialTLS connects with STARTTLS.
func (e *subEnv) dialTLS() *smtp.Client {
	e.t.Helper()
	c, err := smtp.DialStartTLS(e.addr, e.client)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// login connects with STARTTLS and authenticates with PLAIN.
func (e *subEnv) login(user string) *smtp.Client {
	e.t.Helper()
	c := e.dialTLS()
	if err := c.Auth(sasl.NewPlainClient("", user, subPassword)); err != nil {
		e.t.Fatalf("AUTH as %s: %v", user, err)
	}
	return c
}

// subMessage is a small well-formed message.
func subMessage(from, to, subject string) string {
	return "From: Sender <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\nthis is " + subject + ".\r\n"
}

// send runs one transaction and returns the DATA reply text, or the first
// error.
func send(c *smtp.Client, from string, rcpts []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// wantReply checks that err is the SMTP reply code/enhanced.
func wantReply(t testing.TB, err error, code int, enh smtp.EnhancedCode) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("want %d %d.%d.%d, got %v", code, enh[0], enh[1], enh[2], err)
	}
	if se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("want %d %d.%d.%d, got %d %v %q", code, enh[0], enh[1], enh[2], se.Code, se.EnhancedCode, se.Message)
	}
	return se
}

// queued parses "queued as <id>" and returns the message's queue entries.
func (e *subEnv) queued(reply string) (fairq.MsgID, []fairq.Entry, []byte) {
	e.t.Helper()
	idText, ok := strings.CutPrefix(reply, "2.0.0 queued as ")
	if !ok {
		e.t.Fatalf("reply %q: want \"2.0.0 queued as <id>\"", reply)
	}
	id, err := fairq.ParseMsgID(idText)
	if err != nil {
		e.t.Fatal(err)
	}
	entries, err := e.q.List(fairq.ListOptions{After: id - 1, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var mine []fairq.Entry
	for _, en := range entries {
		if en.ID == id {
			mine = append(mine, en)
		}
	}
	if len(mine) == 0 {
		e.t.Fatalf("message %s not in the queue", id)
	}
	body, err := e.q.Body(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return id, mine, body
}

// counter reads a counter of the registry; 0 if absent.
func (e *subEnv) counter(name string, labels map[string]string) float64 {
	e.t.Helper()
	return gatherCounter(e.t, e.reg, name, labels)
}

func gatherCounter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return counterValue(m)
		}
	}
	return 0
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return 0
}

// activateDKIM publishes the domain's key records and ticks DKIM rotation
// past the publish delay, so that both keys sign.
func (e *subEnv) activateDKIM(domain string) {
	e.t.Helper()
	st, err := e.dir.DKIMStatus(domain)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range st {
		if k.Record.Value == "" {
			e.t.Fatalf("%s: key %s has no record (%s)", domain, k.Selector, k.State)
		}
		e.dns.SetTXT(k.Record.Name, k.Record.Value)
	}
	ctx := context.Background()
	if err := e.dir.TickDKIM(ctx); err != nil { // records first seen
		e.t.Fatal(err)
	}
	e.clk.Advance(49 * time.Hour) // past the default 48 h publish delay
	if err := e.dir.TickDKIM(ctx); err != nil {
		e.t.Fatal(err)
	}
	if n := len(e.dir.DKIMSigners(domain)); n != 2 {
		e.t.Fatalf("%s: %d active keys after publication, want 2", domain, n)
	}
}

// loopback is 127.0.0.1 as a client network.
var loopback = netip.MustParsePrefix("127.0.0.1/32")

package inbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"fairway/fairq"
	"fairway/mailstore"
	"fairway/tenant"
	"fairway/tenant/dnstest"
)

// Test environment of the MX server: a real tenant.Directory and
// fairq.Queue in temp dirs, a loopback DNS server with the sending
// domains' SPF, DKIM and DMARC records, the server on 127.0.0.1:0, a fake
// clock, and a real mailstore.Store in a temp dir.

const testHost = "mx.fairway.test"

// Hosted addresses.
const (
	alice = "alice@acme.example"   // tenant acme
	bob   = "bob@acme.example"     // tenant acme
	carol = "carol@globex.example" // tenant globex
	sales = "sales@acme.example"   // alias: alice, bob
	fwd   = "fwd@acme.example"     // alias: alice and partner@outside.example
	// The report and complaint addresses.
	reportAddr    = "dmarc-reports@" + testHost
	complaintAddr = "abuse-reports@" + testHost
)

// Sending domains in the DNS server (127.0.0.1 is the test client):
//
//	good.example    SPF allows 127.0.0.1, DKIM key s1, DMARC p=reject
//	reject.example  SPF -all, DKIM key s1, DMARC p=reject
//	quar.example    SPF -all, DMARC p=quarantine
//	none.example    SPF -all, no DMARC record
//	sub.org.example (no record) under org.example: DMARC p=none; sp=reject
var (
	testKeyPriv ed25519.PrivateKey
	testKeyPub  ed25519.PublicKey
)

func init() {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	testKeyPub, testKeyPriv = pub, priv
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// testStore is the real mailstore.Store of a test, with what tests need
// around it: the messages of a folder, read from the Maildir, and a way to
// fill a mailbox over its quota.
type testStore struct {
	*mailstore.Store
	t       testing.TB
	dir     *tenant.Directory
	dataDir string
}

// fillerSize is the filler message setFull stores; the tenant's mailbox
// quota then becomes half of it, so that mailboxes without a filler still
// take the tests' small messages.
const fillerSize = 64 << 10

// setFull puts address over its mailbox quota (true), or lifts the quota
// of its whole tenant (false).
func (s *testStore) setFull(address string, full bool) {
	s.t.Helper()
	tn, ok := s.dir.MailboxTenant(address)
	if !ok {
		s.t.Fatalf("no mailbox %s", address)
	}
	setQuota := func(q int64) {
		if err := s.dir.UpdateTenant(tn, func(p *tenant.Policy) { p.MailboxQuota = q }); err != nil {
			s.t.Fatal(err)
		}
	}
	setQuota(0)
	if !full {
		return
	}
	filler := []byte("Subject: filler\r\n\r\n" + strings.Repeat(strings.Repeat("f", 62)+"\r\n", fillerSize/64))
	if err := s.Deliver(context.Background(), address, "Filler", filler); err != nil {
		s.t.Fatal(err)
	}
	setQuota(fillerSize / 2)
}

// messages returns the messages in address's folder, read from its
// Maildir (<data>/mail/<domain>/<local>/[.Folder/]{new,cur}).
func (s *testStore) messages(address, folder string) [][]byte {
	s.t.Helper()
	at := strings.LastIndexByte(address, '@')
	root := filepath.Join(s.dataDir, "mail", address[at+1:], address[:at])
	if folder != mailstore.FolderInbox {
		root = filepath.Join(root, "."+folder)
	}
	var out [][]byte
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(root, sub))
		if err != nil {
			continue
		}
		for _, de := range ents {
			b, err := os.ReadFile(filepath.Join(root, sub, de.Name()))
			if err != nil {
				s.t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// recordingSink is a ReportSink and ComplaintSink that keeps what it gets.
type recordingSink struct {
	mu   sync.Mutex
	got  [][]byte
	fail error
}

func (r *recordingSink) Ingest(_ context.Context, m []byte) error    { return r.take(m) }
func (r *recordingSink) IngestARF(_ context.Context, m []byte) error { return r.take(m) }

func (r *recordingSink) take(m []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, bytes.Clone(m))
	return nil
}

func (r *recordingSink) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

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

type env struct {
	t       testing.TB
	clk     *testClock
	dir     *tenant.Directory
	q       *fairq.Queue
	store   *testStore
	reports *recordingSink
	arf     *recordingSink
	dns     *dnstest.Server
	mx      *MX
	reg     *prometheus.Registry
	logs    *syncBuffer
	addr    string
	client  *tls.Config
}

type envConfig struct {
	options  func(*MXOptions)
	logLevel slog.Level
}

func newEnv(t testing.TB, cfg envConfig) *env {
	t.Helper()
	e := &env{t: t, clk: &testClock{now: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)},
		reg: prometheus.NewRegistry(), logs: &syncBuffer{}, reports: &recordingSink{}, arf: &recordingSink{}}
	level := cfg.logLevel
	if level == 0 {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: level}))
	e.dns = dnstest.Start(t)
	dnsKey := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(testKeyPub)
	e.dns.SetTXT("good.example", "v=spf1 ip4:127.0.0.1 -all")
	e.dns.SetTXT("s1._domainkey.good.example", dnsKey)
	e.dns.SetTXT("_dmarc.good.example", "v=DMARC1; p=reject")
	e.dns.SetTXT("reject.example", "v=spf1 -all")
	e.dns.SetTXT("s1._domainkey.reject.example", dnsKey)
	e.dns.SetTXT("_dmarc.reject.example", "v=DMARC1; p=reject")
	e.dns.SetTXT("quar.example", "v=spf1 -all")
	e.dns.SetTXT("_dmarc.quar.example", "v=DMARC1; p=quarantine")
	e.dns.SetTXT("none.example", "v=spf1 -all")
	e.dns.SetTXT("_dmarc.org.example", "v=DMARC1; p=none; sp=reject")
	e.dns.SetTXT("sub.org.example", "v=spf1 -all")

	dir, err := tenant.Open(t.TempDir(), tenant.Options{Logger: log, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	e.dir = dir
	t.Cleanup(func() { dir.Close() })
	for _, step := range []error{
		dir.AddTenant("acme", tenant.Policy{}),
		dir.AddDomain("acme.example", "acme"),
		dir.AddMailbox(alice, "a password long enough"),
		dir.AddMailbox(bob, "a password long enough"),
		dir.AddTenant("globex", tenant.Policy{}),
		dir.AddDomain("globex.example", "globex"),
		dir.AddMailbox(carol, "a password long enough"),
		dir.AddAlias(sales, alice),
		dir.AddAlias(sales, bob),
		dir.AddAlias(fwd, alice),
		dir.AddAlias(fwd, "partner@outside.example"),
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
	storeDir := t.TempDir()
	ms, err := mailstore.Open(storeDir, mailstore.Options{Directory: dir, Clock: e.clk, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	e.store = &testStore{Store: ms, t: t, dir: dir, dataDir: storeDir}

	cert, roots := testCertificate(t)
	e.client = &tls.Config{RootCAs: roots, ServerName: testHost}
	opts := MXOptions{
		Hostname: testHost, Directory: dir, Store: e.store, Spool: q,
		Reports: e.reports, ReportAddress: reportAddr, Complaints: e.arf, ComplaintAddress: complaintAddr,
		Resolver: tenant.NewDNSResolver(e.dns.Addr), TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Clock: e.clk, Logger: log, Registerer: e.reg,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, DataTimeout: 10 * time.Second,
	}
	if cfg.options != nil {
		cfg.options(&opts)
	}
	mx, err := NewMX(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.mx = mx
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mx.Serve(ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := mx.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		<-done
	})
	return e
}

// testCertificate makes a self-signed ECDSA certificate for testHost.
func testCertificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: testHost}, DNSNames: []string{testHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}

// policy edits a tenant's policy.
func (e *env) policy(name string, edit func(p *tenant.Policy)) {
	e.t.Helper()
	if err := e.dir.UpdateTenant(name, edit); err != nil {
		e.t.Fatal(err)
	}
}

// dial connects and says EHLO.
func (e *env) dial() *smtp.Client {
	e.t.Helper()
	c, err := smtp.Dial(e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.good.example"); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// buildMessage builds a message from fromAddr; signed with the test key for
// signDomain if it is not "".
func buildMessage(t testing.TB, fromAddr, signDomain, extraHeader, body string) []byte {
	t.Helper()
	msg := extraHeader + "From: <" + fromAddr + ">\r\nTo: <someone@acme.example>\r\nSubject: test\r\n" +
		"Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMessage-ID: <1@test>\r\n\r\n" + body
	if signDomain == "" {
		return []byte(msg)
	}
	var out bytes.Buffer
	err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{Domain: signDomain, Selector: "s1", Signer: testKeyPriv})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// send runs one transaction; it returns the error of the first command
// that failed (nil if the message was accepted).
func send(c *smtp.Client, from string, rcpts []string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			c.Reset()
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

// code returns "550 5.7.1" for an SMTP error, "" for nil.
func code(err error) string {
	if err == nil {
		return ""
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return "not an SMTP error: " + err.Error()
	}
	return replyCode(se)
}

// counter reads a counter's value by labels.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func matches(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// queued returns the spool's entries.
func (e *env) queued() []fairq.Entry {
	e.t.Helper()
	es, err := e.q.List(fairq.ListOptions{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

// rawSession sends command lines one at a time after the greeting and
// returns the last line of each reply.
func rawSession(t testing.TB, addr string, cmds ...string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	readReply := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimRight(line, "\r\n")
			}
		}
	}
	out := []string{readReply()}
	for _, c := range cmds {
		if _, err := conn.Write([]byte(c + "\r\n")); err != nil {
			t.Fatal(err)
		}
		out = append(out, readReply())
	}
	return out
}

// firstLine is the first line a new connection reads.
func firstLine(t testing.TB, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return line
}

// What cmd wires in satisfies inbound's interfaces.
var (
	_ Directory   = (*tenant.Directory)(nil)
	_ LocalStore  = (*mailstore.Store)(nil)
	_ Spool       = (*fairq.Queue)(nil)
	_ Resolver    = tenant.DNS(nil)
	_ ptrResolver = (*tenant.DNSResolver)(nil)
)

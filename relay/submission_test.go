package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"fairway/fairq"
	"fairway/tenant"
)

// One test per row of the contract's reply table that submission owns,
// then the rest of the behaviour, all over real loopback connections.

func TestSubmissionAuthBeforeSTARTTLS(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	for _, mech := range []sasl.Client{
		sasl.NewPlainClient("", subAlice, subPassword),
		sasl.NewLoginClient(subAlice, subPassword),
	} {
		c := e.dial()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Extension("AUTH"); ok {
			t.Fatal("AUTH advertised before STARTTLS")
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Fatal("STARTTLS not advertised")
		}
		wantReply(t, c.Auth(mech), 530, smtp.EnhancedCode{5, 7, 0})
	}
	// Without TLS and AUTH, MAIL is refused the same way.
	c := e.dial()
	wantReply(t, c.Mail(subAlice, nil), 530, smtp.EnhancedCode{5, 7, 0})
	// With TLS but no AUTH: authentication required.
	c = e.dialTLS()
	if ok, params := c.Extension("AUTH"); !ok || !strings.Contains(params, "PLAIN") || !strings.Contains(params, "LOGIN") {
		t.Fatalf("AUTH over TLS: %v %q", ok, params)
	}
	se := wantReply(t, c.Mail(subAlice, nil), 530, smtp.EnhancedCode{5, 7, 0})
	if !strings.Contains(se.Message, "Authentication required") {
		t.Fatalf("MAIL before AUTH: %q", se.Message)
	}
	if n := e.counter("fairway_submission_rejections_total", map[string]string{"reason": reasonTLSRequired}); n != 3 {
		t.Fatalf("tls_required rejections: %v, want 3", n)
	}
}

func TestSubmissionBadCredentials(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	const wrong = "Tr0ub4dor&3-wrong"
	for _, mech := range []sasl.Client{
		sasl.NewPlainClient("", subAlice, wrong),
		sasl.NewLoginClient(subAlice, wrong),
		sasl.NewPlainClient("", "nobody@acme.example", subPassword),
		sasl.NewPlainClient("", subBob, wrong),
		sasl.NewPlainClient(subBob, subAlice, subPassword), // acting as another user
	} {
		c := e.dialTLS()
		wantReply(t, c.Auth(mech), 535, smtp.EnhancedCode{5, 7, 8})
	}
	if logs := e.logs.String(); strings.Contains(logs, wrong) || strings.Contains(logs, subPassword) {
		t.Fatal("a password was logged")
	}
	if n := e.counter("fairway_submission_rejections_total", map[string]string{"reason": reasonAuthFailed}); n != 5 {
		t.Fatalf("auth_failed rejections: %v, want 5", n)
	}
	// The right password works, with both mechanisms.
	e.login(subAlice)
	c := e.dialTLS()
	if err := c.Auth(sasl.NewLoginClient(subAlice, subPassword)); err != nil {
		t.Fatal(err)
	}
}

func TestSubmissionBareLocalPart(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	for _, mech := range []sasl.Client{
		sasl.NewPlainClient("", "alice", subPassword),
		sasl.NewLoginClient("alice", subPassword),
	} {
		c := e.dialTLS()
		wantReply(t, c.Auth(mech), 535, smtp.EnhancedCode{5, 7, 8})
	}
}

func TestSubmissionSenderNotOwned(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	if err := e.dir.AddAlias("sales@acme.example", subAlice); err != nil {
		t.Fatal(err)
	}
	c := e.login(subAlice)
	notOwned := smtp.EnhancedCode{5, 7, 1}
	wantReply(t, c.Mail(subBob, nil), 553, notOwned)   // same tenant, not hers
	wantReply(t, c.Mail(subCarol, nil), 553, notOwned) // another tenant
	wantReply(t, c.Mail("", nil), 553, notOwned)       // null sender
	if _, err := send(c, "sales@acme.example", []string{"x@example.com"}, subMessage("sales@acme.example", "x@example.com", "alias")); err != nil {
		t.Fatalf("sending as her alias: %v", err)
	}
	// Envelope hers, From: header not.
	for _, from := range []string{subCarol, subBob} {
		_, err := send(c, subAlice, []string{"x@example.com"}, subMessage(from, "x@example.com", "forged"))
		se := wantReply(t, err, 553, notOwned)
		if !strings.Contains(se.Message, "From: header") {
			t.Fatalf("From: %s refused with %q", from, se.Message)
		}
	}
	// A From: field with several addresses needs them all.
	_, err := send(c, subAlice, []string{"x@example.com"},
		"From: <"+subAlice+">, <"+subCarol+">\r\nSubject: two\r\n\r\nbody\r\n")
	wantReply(t, err, 553, notOwned)

	// AnySender opens the tenant's own domains, never another tenant's.
	e.policy("acme", func(p *tenant.Policy) { p.AnySender = true })
	if _, err := send(c, subBob, []string{"x@example.com"}, subMessage(subBob, "x@example.com", "any sender")); err != nil {
		t.Fatalf("any sender: %v", err)
	}
	wantReply(t, c.Mail(subCarol, nil), 553, notOwned)
	_, err = send(c, subAlice, []string{"x@example.com"}, subMessage("ceo@globex.example", "x@example.com", "cross"))
	wantReply(t, err, 553, notOwned)

	// Carol of globex cannot send as acme either.
	c2 := e.login(subCarol)
	wantReply(t, c2.Mail(subAlice, nil), 553, notOwned)
	if n := e.counter("fairway_submission_rejections_total", map[string]string{"tenant": "acme", "reason": reasonSenderNotOwned}); n != 7 {
		t.Fatalf("acme sender_not_owned: %v, want 7", n)
	}
}

func TestSubmissionMailboxHourlyLimit(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	e.policy("acme", func(p *tenant.Policy) { p.MailboxHourly = 3 })
	c := e.login(subAlice)
	rcpts := []string{"a@example.com", "b@example.com", "c@example.com"}
	if _, err := send(c, subAlice, rcpts, subMessage(subAlice, rcpts[0], "three")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(subAlice, nil); err != nil {
		t.Fatal(err)
	}
	se := wantReply(t, c.Rcpt("d@example.com", nil), 450, smtp.EnhancedCode{4, 7, 1})
	// 3 per hour refill one every 20 minutes.
	want := "mailbox hourly limit of 3 recipients reached, next recipient allowed at 2026-11-25T13:20:00Z"
	if se.Message != want {
		t.Fatalf("reply %q, want %q", se.Message, want)
	}
	// Per mailbox: bob is not held back by alice.
	if _, err := send(e.login(subBob), subBob, []string{"z@example.com"}, subMessage(subBob, "z@example.com", "bob")); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(20 * time.Minute)
	if err := c.Rcpt("d@example.com", nil); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
	wantReply(t, c.Rcpt("e@example.com", nil), 450, smtp.EnhancedCode{4, 7, 1})
	if n := e.counter("fairway_rate_limit_hits_total", map[string]string{"tenant": "acme", "limit": "mailbox_hourly"}); n != 2 {
		t.Fatalf("rate limit hits: %v, want 2", n)
	}
}

func TestSubmissionAccountDailyLimit(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	e.policy("acme", func(p *tenant.Policy) { p.AccountDaily = 2 })
	a, b := e.login(subAlice), e.login(subBob)
	if _, err := send(a, subAlice, []string{"x@example.com"}, subMessage(subAlice, "x@example.com", "one")); err != nil {
		t.Fatal(err)
	}
	if _, err := send(b, subBob, []string{"y@example.com"}, subMessage(subBob, "y@example.com", "two")); err != nil {
		t.Fatal(err)
	}
	if err := a.Mail(subAlice, nil); err != nil {
		t.Fatal(err)
	}
	se := wantReply(t, a.Rcpt("z@example.com", nil), 450, smtp.EnhancedCode{4, 7, 1})
	want := "account daily limit of 2 recipients reached, next recipient allowed at 2026-11-26T01:00:00Z"
	if se.Message != want {
		t.Fatalf("reply %q, want %q", se.Message, want)
	}
	// Another tenant is not held back.
	if _, err := send(e.login(subCarol), subCarol, []string{"z@example.com"}, subMessage(subCarol, "z@example.com", "globex")); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(12 * time.Hour)
	if err := a.Rcpt("z@example.com", nil); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}

// A transaction that does not end in 250 gives its recipients back.
func TestSubmissionLimitGivenBack(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	e.policy("acme", func(p *tenant.Policy) { p.MailboxHourly = 2 })
	c := e.login(subAlice)
	rcpts := []string{"a@example.com", "b@example.com"}
	rcptAll := func() {
		t.Helper()
		if err := c.Mail(subAlice, nil); err != nil {
			t.Fatal(err)
		}
		for _, r := range rcpts {
			if err := c.Rcpt(r, nil); err != nil {
				t.Fatalf("RCPT %s: %v", r, err)
			}
		}
	}
	rcptAll()
	if err := c.Reset(); err != nil { // RSET
		t.Fatal(err)
	}
	rcptAll()
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(subMessage(subCarol, rcpts[0], "forged")))
	wantReply(t, w.Close(), 553, smtp.EnhancedCode{5, 7, 1}) // refused at DATA
	if _, err := send(c, subAlice, rcpts, subMessage(subAlice, rcpts[0], "counted")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(subAlice, nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, c.Rcpt("c@example.com", nil), 450, smtp.EnhancedCode{4, 7, 1})

	// A session that ends mid-transaction gives them back too. The
	// server logs the session out before it closes the connection, so
	// once the client reads the end, they are back.
	e.policy("acme", func(p *tenant.Policy) { p.MailboxHourly = 1 })
	rc := rawLogin(t, e, subBob)
	rc.cmd(t, "MAIL FROM:<"+subBob+">", 250)
	rc.cmd(t, "RCPT TO:<a@example.com>", 250)
	rc.cmd(t, "QUIT", 221)
	if _, err := rc.text.ReadLine(); err != io.EOF {
		t.Fatalf("after QUIT: %v", err)
	}
	if _, err := send(e.login(subBob), subBob, []string{"a@example.com"}, subMessage(subBob, "a@example.com", "after quit")); err != nil {
		t.Fatalf("recipient not given back after the session ended: %v", err)
	}
}

func TestSubmissionSuspendedTenant(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	c := e.login(subAlice)
	if err := e.dir.SuspendTenant("acme"); err != nil {
		t.Fatal(err)
	}
	wantReply(t, c.Mail(subAlice, nil), 451, smtp.EnhancedCode{4, 7, 1})
	if err := e.dir.ResumeTenant("acme"); err != nil {
		t.Fatal(err)
	}
	// Suspended between RCPT and DATA.
	if err := c.Mail(subAlice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.dir.SuspendTenant("acme"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(subMessage(subAlice, "x@example.com", "late")))
	wantReply(t, w.Close(), 451, smtp.EnhancedCode{4, 7, 1})
	if n := e.counter("fairway_submission_rejections_total", map[string]string{"tenant": "acme", "reason": reasonTenantSuspended}); n != 2 {
		t.Fatalf("suspended rejections: %v", n)
	}
}

func TestSubmissionMessageTooBig(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{options: func(o *SubmissionOptions) { o.MaxMessageBytes = 64 << 10 }})
	c := e.login(subAlice)
	if size, ok := c.MaxMessageSize(); !ok || size != 64<<10 {
		t.Fatalf("SIZE advertised: %d %v", size, ok)
	}
	wantReply(t, c.Mail(subAlice, &smtp.MailOptions{Size: 100 << 10}), 552, smtp.EnhancedCode{5, 3, 4})
	big := subMessage(subAlice, "x@example.com", "big") + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 1000)
	_, err := send(c, subAlice, []string{"x@example.com"}, big)
	wantReply(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	// The session goes on.
	if _, err := send(c, subAlice, []string{"x@example.com"}, subMessage(subAlice, "x@example.com", "small")); err != nil {
		t.Fatal(err)
	}
	if n := e.counter("fairway_submissions_total", map[string]string{"tenant": "acme", "result": "rejected"}); n != 1 {
		t.Fatalf("rejected submissions: %v", n)
	}
}

func TestSubmissionQueueCannotPersist(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	e.policy("acme", func(p *tenant.Policy) { p.MailboxHourly = 1 })
	c := e.login(subAlice)
	if err := c.Mail(subAlice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(subMessage(subAlice, "x@example.com", "lost?")))
	wantReply(t, w.Close(), 451, smtp.EnhancedCode{4, 3, 0})
	// Not counted against the limit: the recipient was given back.
	if err := c.Mail(subAlice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@example.com", nil); err != nil {
		t.Fatalf("recipient of the failed transaction not given back: %v", err)
	}
	if n := e.counter("fairway_submissions_total", map[string]string{"tenant": "acme", "result": "tempfail"}); n != 1 {
		t.Fatalf("tempfail submissions: %v", n)
	}
	if !strings.Contains(e.logs.String(), "fairq: queue closed") {
		t.Fatal("the queue error is not in the log")
	}
}

func TestSubmissionImplicitTLS(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	c, err := smtp.DialTLS(e.tlsAddr, e.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS offered inside TLS")
	}
	if err := c.Auth(sasl.NewLoginClient(subAlice, subPassword)); err != nil {
		t.Fatal(err)
	}
	reply, err := send(c, subAlice, []string{"x@example.com"}, subMessage(subAlice, "x@example.com", "implicit"))
	if err != nil {
		t.Fatal(err)
	}
	_, entries, _ := e.queued(reply)
	if entries[0].Record.Tenant != "acme" {
		t.Fatalf("tenant %q", entries[0].Record.Tenant)
	}
}

func TestSubmissionClientNetwork(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	e.policy("globex", func(p *tenant.Policy) {
		p.Networks = []netip.Prefix{loopback}
		p.AccountDaily = 3
	})
	// From loopback, no STARTTLS and no AUTH needed.
	c := e.dial()
	reply, err := send(c, "app@globex.example", []string{"x@example.com", "y@example.org"},
		subMessage("noreply@globex.example", "x@example.com", "from the app"))
	if err != nil {
		t.Fatal(err)
	}
	_, entries, body := e.queued(reply)
	if len(entries) != 2 || entries[0].Record.Tenant != "globex" || entries[0].Record.From != "app@globex.example" {
		t.Fatalf("queued %+v", entries)
	}
	if !bytes.Contains(body, []byte(" with ESMTP id ")) {
		t.Fatalf("Received without TLS and AUTH should say ESMTP:\n%s", body)
	}
	// Never as another tenant, in the envelope or the From: header.
	wantReply(t, c.Mail(subAlice, nil), 553, smtp.EnhancedCode{5, 7, 1})
	_, err = send(c, "app@globex.example", []string{"x@example.com"}, subMessage(subAlice, "x@example.com", "forged"))
	wantReply(t, err, 553, smtp.EnhancedCode{5, 7, 1})
	// Its limits count per tenant (there is no mailbox): 2 recipients used.
	if err := c.Mail("app@globex.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("z@example.com", nil); err != nil {
		t.Fatal(err)
	}
	se := wantReply(t, c.Rcpt("w@example.com", nil), 450, smtp.EnhancedCode{4, 7, 1})
	if !strings.HasPrefix(se.Message, "account daily limit of 3") {
		t.Fatalf("limit reply %q", se.Message)
	}
	c.Reset()
	// Over STARTTLS it says ESMTPS.
	c2 := e.dialTLS()
	reply, err = send(c2, "app@globex.example", []string{"x@example.com"}, subMessage("app@globex.example", "x@example.com", "tls"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, body := e.queued(reply); !bytes.Contains(body, []byte(" with ESMTPS id ")) {
		t.Fatalf("Received over TLS without AUTH should say ESMTPS:\n%s", body)
	}
	// An authenticated user from the same address is that user, not the network.
	c3 := e.login(subAlice)
	wantReply(t, c3.Mail("app@globex.example", nil), 553, smtp.EnhancedCode{5, 7, 1})
	// No AUTH in the middle of the network's transaction, nor a nested MAIL.
	rc := rawTLS(t, e)
	rc.cmd(t, "MAIL FROM:<app@globex.example>", 250)
	rc.cmd(t, "MAIL FROM:<app@globex.example>", 503)
	rc.cmd(t, "AUTH PLAIN "+b64("\x00"+subAlice+"\x00"+subPassword), 503)
	rc.cmd(t, "RSET", 250)
	rc.cmd(t, "AUTH PLAIN "+b64("\x00"+subAlice+"\x00"+subPassword), 235)
}

// Client networks off loopback must use STARTTLS; a loopback client not in
// any network must authenticate.
func TestSubmissionClientNetworkNeedsTLS(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	e.policy("globex", func(p *tenant.Policy) { p.Networks = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")} })
	for _, tc := range []struct {
		ip      string
		tls     bool
		want    string
		wantErr error
	}{
		{"203.0.113.7", false, "", errTLSRequired},
		{"203.0.113.7", true, "globex", nil},
		{"198.51.100.1", true, "", errAuthRequired},
		{"198.51.100.1", false, "", errTLSRequired},
		{"127.0.0.1", false, "", errTLSRequired},
		{"127.0.0.1", true, "", errAuthRequired},
	} {
		ss := &subSession{s: e.srv, ip: netip.MustParseAddr(tc.ip), tls: tc.tls}
		got, err := ss.principal()
		if got != tc.want || !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
			t.Errorf("%s tls=%v: %q %v, want %q %v", tc.ip, tc.tls, got, err, tc.want, tc.wantErr)
		}
	}
}

var receivedRE = regexp.MustCompile(`^Received: from localhost \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test with ESMTPSA id [0-9a-f]{16};\r\n\tWed, 25 Nov 2026 13:00:00 \+0000\r\n`)

func TestSubmissionQueuedMessage(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	c := e.login(subAlice)
	msg := subMessage(subAlice, "x@example.com", "hello")
	reply, err := send(c, subAlice, []string{"x@example.com", "X@Example.COM", "y@example.net"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^2\.0\.0 queued as [0-9a-f]{16}$`).MatchString(reply) {
		t.Fatalf("reply %q", reply)
	}
	_, entries, body := e.queued(reply)
	if len(entries) != 2 || entries[0].Record.From != subAlice || entries[0].Record.Tenant != "acme" {
		t.Fatalf("entries %+v", entries)
	}
	if !receivedRE.Match(body) {
		t.Fatalf("no Received first:\n%s", body)
	}
	if !regexp.MustCompile(`\r\nMessage-ID: <[A-Z2-7]{26}@mx\.test>\r\n`).Match(body) {
		t.Fatalf("no Message-ID added:\n%s", body)
	}
	if !bytes.Contains(body, []byte("\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\n")) {
		t.Fatalf("no Date added:\n%s", body)
	}
	if !bytes.HasSuffix(body, []byte(msg)) {
		t.Fatalf("message changed:\n%s", body)
	}
	// The client's own Message-ID and Date are kept, not doubled.
	own := "Message-ID: <own@acme.example>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n" + msg
	reply, err = send(c, subAlice, []string{"x@example.com"}, own)
	if err != nil {
		t.Fatal(err)
	}
	_, _, body = e.queued(reply)
	if bytes.Count(body, []byte("Message-ID:")) != 1 || bytes.Count(body, []byte("\r\nDate:")) != 1 || !bytes.HasSuffix(body, []byte(own)) {
		t.Fatalf("client's fields not kept as they were:\n%s", body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "msg=accepted") || !strings.Contains(logs, "tenant=acme") || !strings.Contains(logs, "user="+subAlice) {
		t.Fatalf("no accepted event line:\n%s", logs)
	}
	if n := e.counter("fairway_submissions_total", map[string]string{"tenant": "acme", "result": "accepted"}); n != 2 {
		t.Fatalf("accepted submissions: %v", n)
	}
}

func TestSubmissionMalformedMessages(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	c := e.login(subAlice)
	media := smtp.EnhancedCode{5, 6, 0}
	for name, msg := range map[string]string{
		"no From":      "To: <x@example.com>\r\nSubject: no from\r\n\r\nbody\r\n",
		"two From":     "From: <" + subAlice + ">\r\nFrom: <" + subAlice + ">\r\n\r\nbody\r\n",
		"empty From":   "From: undisclosed-recipients:;\r\n\r\nbody\r\n",
		"not header":   "Hello there, no header at all\r\n",
		"bad name":     "From: <" + subAlice + ">\r\nBad Name: x\r\n\r\nbody\r\n",
		"leading fold": " folded: x\r\nFrom: <" + subAlice + ">\r\n\r\nbody\r\n",
	} {
		_, err := send(c, subAlice, []string{"x@example.com"}, msg)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != media {
			t.Errorf("%s: %v, want 550 5.6.0", name, err)
		}
	}
	// Bare LF and NUL need a raw connection (the client fixes line ends).
	e.policy("globex", func(p *tenant.Policy) { p.Networks = []netip.Prefix{loopback} })
	for name, body := range map[string]string{
		"bare LF": "From: <app@globex.example>\r\nSubject: x\r\n\r\nline one\nline two\r\n",
		"bare CR": "From: <app@globex.example>\r\nSubject: x\r\n\r\nline one\rline two\r\n",
		"NUL":     "From: <app@globex.example>\r\nSubject: x\r\n\r\nnul \x00 here\r\n",
	} {
		tc := rawSubmission(t, e.addr)
		tc.cmd(t, "EHLO client.test", 250)
		tc.cmd(t, "MAIL FROM:<app@globex.example>", 250)
		tc.cmd(t, "RCPT TO:<x@example.com>", 250)
		tc.cmd(t, "DATA", 354)
		if _, err := tc.conn.Write([]byte(body + ".\r\n")); err != nil {
			t.Fatal(err)
		}
		code, msg, err := tc.text.ReadResponse(0)
		if code != 550 || !strings.HasPrefix(msg, "5.6.0") {
			t.Errorf("%s: %d %s %v, want 550 5.6.0", name, code, msg, err)
		}
	}
}

// rawConn is a plain SMTP connection driven line by line.
type rawConn struct {
	conn net.Conn
	text *textproto.Conn
}

// rawSubmission connects and reads the greeting; with tlsConf, over
// implicit TLS.
func rawSubmission(t *testing.T, addr string, tlsConf ...*tls.Config) *rawConn {
	t.Helper()
	var c net.Conn
	var err error
	if len(tlsConf) > 0 {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlsConf[0])
	} else {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{conn: c, text: textproto.NewConn(c)}
	if _, _, err := rc.text.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	return rc
}

// rawTLS is a raw connection after STARTTLS and EHLO.
func rawTLS(t *testing.T, e *subEnv) *rawConn {
	t.Helper()
	rc := rawSubmission(t, e.addr)
	rc.cmd(t, "EHLO client.test", 250)
	rc.cmd(t, "STARTTLS", 220)
	tc := tls.Client(rc.conn, e.client)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc = &rawConn{conn: tc, text: textproto.NewConn(tc)}
	rc.cmd(t, "EHLO client.test", 250)
	return rc
}

// rawLogin is a raw connection after STARTTLS and AUTH PLAIN as user.
func rawLogin(t *testing.T, e *subEnv, user string) *rawConn {
	t.Helper()
	rc := rawTLS(t, e)
	rc.cmd(t, "AUTH PLAIN "+b64("\x00"+user+"\x00"+subPassword), 235)
	return rc
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The SASL exchanges line by line: without an initial response, LOGIN's
// prompts, cancelling, malformed data, unknown mechanisms.
func TestSubmissionSASLExchanges(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	rc := rawTLS(t, e)
	if msg := rc.cmd(t, "AUTH PLAIN", 334); msg != "" {
		t.Fatalf("PLAIN challenge %q", msg)
	}
	rc.cmd(t, b64("\x00"+subAlice+"\x00"+subPassword), 235)
	rc.cmd(t, "AUTH PLAIN "+b64("\x00"+subAlice+"\x00"+subPassword), 503) // once is enough

	rc = rawTLS(t, e)
	if msg := rc.cmd(t, "AUTH LOGIN", 334); msg != b64("Username:") {
		t.Fatalf("LOGIN first challenge %q", msg)
	}
	if msg := rc.cmd(t, b64(subAlice), 334); msg != b64("Password:") {
		t.Fatalf("LOGIN second challenge %q", msg)
	}
	rc.cmd(t, b64(subPassword), 235)

	rc = rawTLS(t, e)
	for _, tc := range []struct {
		line string
		want int
	}{
		{"AUTH PLAIN " + b64("no separators"), 501},
		{"AUTH PLAIN " + b64("a\x00b\x00c\x00d"), 501},
		{"AUTH CRAM-MD5", 504},
	} {
		if msg := rc.cmd(t, tc.line, tc.want); !strings.HasPrefix(msg, "5.5.") {
			t.Errorf("%s: %q", tc.line, msg)
		}
	}
	rc = rawTLS(t, e)
	rc.cmd(t, "AUTH LOGIN", 334)
	rc.cmd(t, "*", 501) // cancelled
	rc.cmd(t, "AUTH LOGIN "+b64(subAlice), 334)
	rc.cmd(t, b64(strings.Repeat("x", 1200)), 501) // over maxSASLField
	rc.cmd(t, "AUTH LOGIN "+b64(subAlice), 334)
	rc.cmd(t, b64("wrong"), 535)
}

func (rc *rawConn) cmd(t *testing.T, line string, want int) string {
	t.Helper()
	if err := rc.text.PrintfLine("%s", line); err != nil {
		t.Fatal(err)
	}
	_, msg, err := rc.text.ReadResponse(want)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return msg
}

func TestSubmissionDKIM(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{dns: true})
	e.activateDKIM("acme.example")
	c := e.login(subAlice)
	msg := "From: Alice <" + subAlice + ">\r\nTo: x@example.com\r\nSubject: signed\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain\r\n\r\nSigned body.  \r\nWith trailing space.\r\n\r\n\r\n"
	reply, err := send(c, subAlice, []string{"x@example.com"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	_, _, body := e.queued(reply)
	if !bytes.HasPrefix(body, []byte("DKIM-Signature: ")) {
		t.Fatalf("not signed:\n%s", body)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(body), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			return tenant.NewDNSResolver(e.dns.Addr).LookupTXT(context.Background(), name)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("%d signatures, want 2 (RSA and Ed25519)", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "acme.example" {
			t.Fatalf("signature of %s: %v", v.Domain, v.Err)
		}
		for _, h := range []string{"from", "to", "subject", "date", "message-id", "mime-version", "content-type"} {
			if !containsFold(v.HeaderKeys, h) {
				t.Errorf("%s not signed: %v", h, v.HeaderKeys)
			}
		}
	}
	// A message of a domain without active keys goes out unsigned.
	reply, err = send(e.login(subCarol), subCarol, []string{"x@example.com"}, subMessage(subCarol, "x@example.com", "unsigned"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, body := e.queued(reply); bytes.Contains(body, []byte("DKIM-Signature")) {
		t.Fatal("signed without active keys")
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func TestSubmissionTooManyRecipients(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{options: func(o *SubmissionOptions) { o.MaxRecipients = 3 }})
	c := e.login(subAlice)
	if err := c.Mail(subAlice, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Rcpt(fmt.Sprintf("r%d@example.com", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantReply(t, c.Rcpt("r3@example.com", nil), 452, smtp.EnhancedCode{4, 5, 3})
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(subMessage(subAlice, "r0@example.com", "three")))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// refusedLine connects and returns the one line the server sends before
// it closes the connection.
func refusedLine(t *testing.T, addr string, tlsConf *tls.Config) string {
	t.Helper()
	var c net.Conn
	var err error
	if tlsConf != nil {
		c, err = tls.Dial("tcp", addr, tlsConf)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection not closed after the refusal")
	}
	return line
}

func TestSubmissionConnectionCaps(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{options: func(o *SubmissionOptions) { o.MaxConnsPerIP = 2 }})
	a := rawSubmission(t, e.addr)
	rawSubmission(t, e.tlsAddr, e.client) // the two listeners share the caps
	for _, tc := range []struct {
		addr string
		tls  *tls.Config
	}{{e.addr, nil}, {e.tlsAddr, e.client}} {
		if line := refusedLine(t, tc.addr, tc.tls); !strings.HasPrefix(line, "421 4.7.0 mx.test ") {
			t.Fatalf("third connection from 127.0.0.1: %q", line)
		}
	}
	// Closing one lets the next in.
	a.cmd(t, "QUIT", 221)
	if _, err := a.text.ReadLine(); err != io.EOF {
		t.Fatalf("after QUIT: %v", err)
	}
	rawSubmission(t, e.addr)
	if n := e.counter("fairway_submission_rejections_total", map[string]string{"reason": reasonConnsIP}); n != 2 {
		t.Fatalf("conn_limit_ip rejections: %v", n)
	}
	if perIP, total := e.srv.conns.Counts(netip.MustParseAddr("127.0.0.1")); perIP != 2 || total != 2 {
		t.Fatalf("counts %d %d", perIP, total)
	}

	// The total cap.
	e2 := newSubEnv(t, subEnvConfig{options: func(o *SubmissionOptions) { o.MaxConnsPerIP = 10; o.MaxConns = 2 }})
	rawSubmission(t, e2.addr)
	rawSubmission(t, e2.addr)
	if line := refusedLine(t, e2.addr, nil); !strings.HasPrefix(line, "421 4.3.2 mx.test ") {
		t.Fatalf("over the total cap: %q", line)
	}
}

func TestSubmissionShutdown(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	idle := rawSubmission(t, e.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an idle client: %v", err)
	}
	if _, err := idle.text.ReadLine(); err == nil {
		t.Fatal("idle connection still open after Shutdown")
	}
	if _, err := net.Dial("tcp", e.addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ServeSTARTTLS(ln); !errors.Is(err, smtp.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestNewSubmissionOptions(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	base := SubmissionOptions{Hostname: "mx.test", Directory: e.dir, Spool: e.q, TLS: &tls.Config{}}
	for name, edit := range map[string]func(*SubmissionOptions){
		"no hostname":  func(o *SubmissionOptions) { o.Hostname = "" },
		"no directory": func(o *SubmissionOptions) { o.Directory = nil },
		"no spool":     func(o *SubmissionOptions) { o.Spool = nil },
		"no TLS":       func(o *SubmissionOptions) { o.TLS = nil },
		"too big":      func(o *SubmissionOptions) { o.MaxMessageBytes = fairq.MaxBodySize },
	} {
		o := base
		edit(&o)
		if _, err := NewSubmission(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := NewSubmission(base)
	if err != nil {
		t.Fatal(err)
	}
	if o := s.opts; o.MaxMessageBytes != 25<<20 || o.MaxRecipients != 100 || o.CommandTimeout != 5*time.Minute ||
		o.DataTimeout != 10*time.Minute || o.MaxConnsPerIP != 20 || o.MaxConns != 1000 {
		t.Fatalf("defaults %+v", o)
	}
	// Registering twice in one registry is an error, not a panic.
	base.Registerer = e.reg
	if _, err := NewSubmission(base); err == nil {
		t.Fatal("metrics registered twice")
	}
}

// go-smtp's ErrorLog lines: a panic is counted and logged with its stack,
// except the known BDAT race of go-smtp itself (bdatRacePanic).
func TestSMTPErrorLog(t *testing.T) {
	var buf syncBuffer
	m, err := newSubmissionMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l := smtpErrorLog{log: slog.New(slog.NewTextHandler(&buf, nil)), panics: m.panics}
	const bdat = "panic serving 127.0.0.1:36918: runtime error: invalid memory address or nil pointer dereference\n" +
		"goroutine 746 [running]:\nruntime/debug.Stack()\n\t/usr/local/go/src/runtime/debug/stack.go:26 +0x9b\n" +
		"github.com/emersion/go-smtp.(*Conn).handlePanic(0x890c7e72580, {0x130fa60, 0x1b7d630}, 0x890c7dc3dc7?)\n" +
		"\t/root/go/pkg/mod/github.com/emersion/go-smtp@v0.25.1/conn.go:1142 +0xec\n" +
		"github.com/emersion/go-smtp.(*Conn).handleBdat.func1.1()\n\t/root/go/pkg/mod/github.com/emersion/go-smtp@v0.25.1/conn.go:1050 +0x85\n" +
		"panic({0x130fa60?, 0x1b7d630?})\n\t/usr/local/go/src/runtime/panic.go:860 +0x13a\n" +
		"github.com/emersion/go-smtp.(*Conn).handleBdat.func1()\n\t/root/go/pkg/mod/github.com/emersion/go-smtp@v0.25.1/conn.go:1059 +0x107\n"
	l.Printf("%s", bdat)
	if got := testutilCounter(t, m); got != 0 {
		t.Fatalf("BDAT race counted as a panic: %v", got)
	}
	if strings.Contains(buf.String(), "goroutine 746") {
		t.Fatal("BDAT race logged with its stack")
	}
	ours := strings.Replace(bdat, "runtime/debug.Stack()", "fairway/relay.(*subSession).Data(...)", 1)
	l.Printf("%s", ours)
	l.Printf("panic serving x: index out of range")
	l.Println("error handling 127.0.0.1:1:", "tls: bad record")
	if got := testutilCounter(t, m); got != 2 {
		t.Fatalf("panics counted: %v, want 2", got)
	}
}

func testutilCounter(t *testing.T, m *submissionMetrics) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.panics.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

func TestSubmissionAuthThrottledAfterRepeatedFailures(t *testing.T) {
	limiter := tenant.NewAuthLimiter(tenant.AuthLimiterOptions{Failures: 3, Refill: time.Minute})
	e := newSubEnv(t, subEnvConfig{options: func(o *SubmissionOptions) { o.AuthLimiter = limiter }})
	for range 3 {
		wantReply(t, e.dialTLS().Auth(sasl.NewPlainClient("", subAlice, "guess-guess-guess")), 535, smtp.EnhancedCode{5, 7, 8})
	}
	// Now even the right password is refused, without being checked.
	wantReply(t, e.dialTLS().Auth(sasl.NewPlainClient("", subAlice, subPassword)), 454, smtp.EnhancedCode{4, 7, 0})
	if n := e.counter("fairway_submission_rejections_total", map[string]string{"reason": reasonAuthThrottled}); n != 1 {
		t.Fatalf("auth_throttled rejections: %v, want 1", n)
	}
	// A token comes back after the refill interval.
	e.clk.Advance(61 * time.Second)
	e.login(subAlice)
}

func TestSubmissionKeepsDSNParameters(t *testing.T) {
	e := newSubEnv(t, subEnvConfig{})
	c := e.login(subAlice)
	if ok, _ := c.Extension("DSN"); !ok {
		t.Fatal("DSN not offered")
	}
	if err := c.Mail(subAlice, &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "order-42"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@example.com", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("y@example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(subMessage(subAlice, "x@example.com", "dsn"))); err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	_, entries, _ := e.queued(resp.StatusText)
	p, err := decodeDSNParams(entries[0].Record.Extra)
	if err != nil || p == nil || p.Ret != "HDRS" || p.EnvID != "order-42" || p.wantsFailureDSN("x@example.com") || !p.wantsFailureDSN("y@example.com") {
		t.Fatalf("queued DSN parameters %+v, %v", p, err)
	}
}

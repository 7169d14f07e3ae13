package inbound

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"fairway/mailstore"
	"fairway/tenant"
)

// TestRelayTricks: every way of writing a recipient that could make a
// later hop send the mail elsewhere is refused as a relay attempt.
func TestRelayTricks(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial()
	if err := c.Mail("someone@good.example", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rcpt, want string }{
		{"user@outside.example", "554 5.7.1"},
		{"USER@OUTSIDE.EXAMPLE", "554 5.7.1"},
		{"user%outside.example@acme.example", "554 5.7.1"},
		{"outside.example!user@acme.example", "554 5.7.1"},
		{"\"user@outside.example\"@acme.example", "554 5.7.1"},
		{"@acme.example:user@outside.example", "554 5.7.1"},
		{"alice@acme.example.", "554 5.7.1"},
		{"alice@acme.example@outside.example", "554 5.7.1"},
		{"alice@[127.0.0.1]", "554 5.7.1"},
		{"alice@acme.example.outside.example", "554 5.7.1"},
		{"alice@sub.acme.example", "554 5.7.1"},
		{"postmaster@" + testHost, "554 5.7.1"},
		// Hosted domains, unknown users:
		{"nobody@acme.example", "550 5.1.1"},
		{"\"alice smith\"@acme.example", "550 5.1.1"},
		// Accepted: case does not matter, a source route is ignored
		// (RFC 5321 §4.1.1.3) when it ends in a hosted mailbox.
		{"ALICE@ACME.Example", ""},
		{"@outside.example:bob@acme.example", ""},
		{sales, ""},
		{reportAddr, ""},
	} {
		err := c.Rcpt(tc.rcpt, nil)
		if got := code(err); got != tc.want {
			t.Errorf("RCPT TO:<%s> = %q (%v), want %q", tc.rcpt, got, err, tc.want)
		}
	}
	if n := counter(t, e.reg, "fairway_inbound_rejections_total", map[string]string{"reason": reasonRelay}); n != 12 {
		t.Errorf("relay rejections counted %v, want 12", n)
	}
}

// TestReplies: the contract table rows this server owns that the other
// tests do not cover.
func TestReplies(t *testing.T) {
	e := newEnv(t, envConfig{options: func(o *MXOptions) {
		o.MaxRecipients = 2
		o.MaxMessageBytes = 4096
	}})

	t.Run("auth not offered", func(t *testing.T) {
		c := e.dial()
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("AUTH advertised")
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Error("STARTTLS not offered")
		}
		lines := rawSession(t, e.addr, "EHLO client.test", "AUTH PLAIN AGFsaWNlQGFjbWUuZXhhbXBsZQBwYXNz")
		if got := lines[len(lines)-1]; !strings.HasPrefix(got, "503 5.5.1 ") {
			t.Errorf("AUTH = %q, want 503 5.5.1", got)
		}
	})
	t.Run("too many recipients", func(t *testing.T) {
		c := e.dial()
		c.Mail("x@good.example", nil)
		c.Rcpt(alice, nil)
		c.Rcpt(bob, nil)
		if got := code(c.Rcpt(carol, nil)); got != "452 4.5.3" {
			t.Errorf("third RCPT = %q, want 452 4.5.3", got)
		}
	})
	t.Run("size", func(t *testing.T) {
		c := e.dial()
		big := buildMessage(t, "x@good.example", "good.example", "", strings.Repeat("0123456789abcdef\r\n", 400))
		if got := code(send(c, "x@good.example", []string{alice}, big)); got != "552 5.3.4" {
			t.Errorf("large message = %q, want 552 5.3.4", got)
		}
		if n := len(e.store.messages(alice, mailstore.FolderInbox)); n != 0 {
			t.Errorf("%d messages stored", n)
		}
	})
	t.Run("quota full at RCPT", func(t *testing.T) {
		e.store.setFull(bob, true)
		defer e.store.setFull(bob, false)
		c := e.dial()
		c.Mail("x@good.example", nil)
		if got := code(c.Rcpt(bob, nil)); got != "452 4.2.2" {
			t.Errorf("RCPT of a full mailbox = %q, want 452 4.2.2", got)
		}
		if got := code(c.Rcpt(alice, nil)); got != "" {
			t.Errorf("RCPT of another = %q, want accepted", got)
		}
	})
	t.Run("STARTTLS", func(t *testing.T) {
		c, err := smtp.DialStartTLS(e.addr, e.client)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := buildMessage(t, "x@good.example", "good.example", "", "over TLS\r\n")
		if err := send(c, "x@good.example", []string{carol}, msg); err != nil {
			t.Fatal(err)
		}
		got := e.store.messages(carol, mailstore.FolderInbox)
		if len(got) != 1 || !bytes.Contains(got[0], []byte("with ESMTPS")) {
			t.Fatalf("stored %q", got)
		}
	})
}

// TestAuthenticationResults: a signed message that passes SPF, DKIM and
// DMARC is delivered with one Authentication-Results field of ours;
// incoming ones claiming our hostname are removed, others kept.
func TestAuthenticationResults(t *testing.T) {
	e := newEnv(t, envConfig{})
	forged := "Authentication-Results: " + strings.ToUpper(testHost) + "; spf=pass smtp.mailfrom=evil.example\r\n" +
		"Authentication-Results: (comment) " + testHost + ".;\r\n dkim=pass\r\n" +
		"Authentication-Results: other.example; spf=fail\r\n"
	// Signed after the forged fields were added, as a forger would.
	msg := buildMessage(t, "news@good.example", "good.example", forged, "hello\r\n")
	if err := send(e.dial(), "bounce@good.example", []string{alice}, msg); err != nil {
		t.Fatal(err)
	}
	got := e.store.messages(alice, mailstore.FolderInbox)
	if len(got) != 1 {
		t.Fatalf("%d messages in INBOX", len(got))
	}
	fields, _ := splitHeader(got[0])
	ars := fieldValues(fields, "Authentication-Results")
	if len(ars) != 2 {
		t.Fatalf("Authentication-Results fields: %q", ars)
	}
	ours := ars[0]
	for _, want := range []string{testHost + ";", "spf=pass", "smtp.mailfrom=bounce@good.example", "dkim=pass", "header.d=good.example", "dmarc=pass", "header.from=good.example"} {
		if !strings.Contains(ours, want) {
			t.Errorf("our Authentication-Results %q lacks %q", ours, want)
		}
	}
	if !strings.HasPrefix(ars[1], "other.example;") {
		t.Errorf("foreign Authentication-Results not kept: %q", ars[1])
	}
	if r := fieldValues(fields, "Received"); len(r) != 1 || !strings.Contains(r[0], "by "+testHost) || !strings.Contains(r[0], "[127.0.0.1]") {
		t.Errorf("Received: %q", r)
	}
	// One event line for the message, with its tenant and msgid.
	var accepted []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "msg=accepted") {
			accepted = append(accepted, line)
		}
	}
	if len(accepted) != 1 {
		t.Fatalf("accepted lines: %q", accepted)
	}
	for _, want := range []string{"tenant=acme", "msgid=", "spf=pass", "dkim=pass", "dmarc=pass", "inbox=1"} {
		if !strings.Contains(accepted[0], want) {
			t.Errorf("accepted line lacks %q: %s", want, accepted[0])
		}
	}
	for check, result := range map[string]string{"spf": "pass", "dkim": "pass", "dmarc": "pass"} {
		if n := counter(t, e.reg, "fairway_inbound_checks_total", map[string]string{"check": check, "result": result}); n != 1 {
			t.Errorf("%s=%s counted %v times", check, result, n)
		}
	}
}

// TestDMARCPolicy: p=reject failures are refused whatever the tenant
// says; p=quarantine failures go to Quarantine unless a sender allow-list
// rule accepts them; DMARC passes on an aligned DKIM signature alone.
func TestDMARCPolicy(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial()

	// SPF fails (-all) and there is no signature: p=reject.
	msg := buildMessage(t, "ceo@reject.example", "", "", "pay this\r\n")
	if got := code(send(c, "ceo@reject.example", []string{alice}, msg)); got != "550 5.7.1" {
		t.Errorf("p=reject failure = %q, want 550 5.7.1", got)
	}
	// Signed by its own domain: DKIM aligned, DMARC passes despite SPF.
	msg = buildMessage(t, "ceo@reject.example", "reject.example", "", "signed\r\n")
	if got := code(send(c, "ceo@reject.example", []string{alice}, msg)); got != "" {
		t.Errorf("aligned DKIM pass = %q, want accepted", got)
	}
	// Signed by another domain (good.example): not aligned, rejected.
	msg = buildMessage(t, "ceo@reject.example", "good.example", "", "signed by a stranger\r\n")
	if got := code(send(c, "ceo@reject.example", []string{alice}, msg)); got != "550 5.7.1" {
		t.Errorf("unaligned DKIM = %q, want 550 5.7.1", got)
	}
	// sp=reject of the organizational domain applies to a subdomain
	// without a record of its own.
	msg = buildMessage(t, "x@sub.org.example", "", "", "sub\r\n")
	if got := code(send(c, "x@sub.org.example", []string{alice}, msg)); got != "550 5.7.1" {
		t.Errorf("sp=reject = %q, want 550 5.7.1", got)
	}

	// p=quarantine: Quarantine folder.
	msg = buildMessage(t, "x@quar.example", "", "", "quarantine me\r\n")
	if err := send(c, "x@quar.example", []string{bob}, msg); err != nil {
		t.Fatal(err)
	}
	if n := len(e.store.messages(bob, mailstore.FolderQuarantine)); n != 1 {
		t.Errorf("p=quarantine: %d in Quarantine", n)
	}

	// An allow-list entry overrides p=quarantine but not p=reject.
	e.policy("acme", func(p *tenant.Policy) {
		p.Quarantine = []tenant.QuarantineRule{
			{Check: "sender", Value: "@quar.example", Action: "accept"},
			{Check: "sender", Value: "ceo@reject.example", Action: "accept"},
		}
	})
	msg = buildMessage(t, "x@quar.example", "", "", "allowed\r\n")
	if err := send(c, "x@quar.example", []string{bob}, msg); err != nil {
		t.Fatal(err)
	}
	if n := len(e.store.messages(bob, mailstore.FolderInbox)); n != 1 {
		t.Errorf("allow-listed p=quarantine: %d in INBOX", n)
	}
	msg = buildMessage(t, "ceo@reject.example", "", "", "still rejected\r\n")
	if got := code(send(c, "ceo@reject.example", []string{bob}, msg)); got != "550 5.7.1" {
		t.Errorf("allow-listed p=reject = %q, want 550 5.7.1", got)
	}
	if n := counter(t, e.reg, "fairway_inbound_messages_total", map[string]string{"result": "rejected"}); n != 4 {
		t.Errorf("rejected messages counted %v, want 4", n)
	}
}

// TestQuarantineRules: each rule kind, through the MX port, per tenant.
func TestQuarantineRules(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.policy("acme", func(p *tenant.Policy) {
		p.Quarantine = []tenant.QuarantineRule{
			{Check: "sender", Value: "boss@none.example", Action: "accept"},
			{Check: "attachment", Value: "exe,js", Action: "reject"},
			{Check: "size", Value: "2000", Action: "quarantine"},
			{Check: "spf", Result: "fail", Action: "quarantine"},
		}
	})
	e.policy("globex", func(p *tenant.Policy) {
		p.Quarantine = []tenant.QuarantineRule{{Check: "noauth", Action: "reject"}}
	})
	attachment := "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
	attBody := "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"Invoice.PDF.exe.\"\r\n\r\nMZ\r\n--b--\r\n"
	c := e.dial()
	for _, tc := range []struct {
		name, from, sign, header, body string
		rcpts                          []string
		want                           string
		folders                        map[string]string // recipient -> folder the copy must be in
	}{
		{"spf fail quarantined", "x@none.example", "", "", "hi\r\n", []string{alice}, "",
			map[string]string{alice: mailstore.FolderQuarantine}},
		{"passing mail to inbox", "x@good.example", "good.example", "", "hi\r\n", []string{alice}, "",
			map[string]string{alice: mailstore.FolderInbox}},
		{"blocked attachment rejected", "x@good.example", "good.example", attachment, attBody, []string{alice}, "550 5.7.1", nil},
		{"size quarantined", "x@good.example", "good.example", "", strings.Repeat(strings.Repeat("x", 70)+"\r\n", 30), []string{bob}, "",
			map[string]string{bob: mailstore.FolderQuarantine}},
		{"allow-list before the spf rule", "boss@none.example", "", "", "hi\r\n", []string{bob}, "",
			map[string]string{bob: mailstore.FolderInbox}},
		{"noauth rejected by globex", "x@none.example", "", "", "hi\r\n", []string{carol}, "550 5.7.1", nil},
		// Mixed: globex rejects, acme quarantines; one reply, so globex's
		// copy goes to carol's Quarantine.
		{"mixed verdicts", "x@none.example", "", "", "mixed\r\n", []string{alice, carol}, "",
			map[string]string{alice: mailstore.FolderQuarantine, carol: mailstore.FolderQuarantine}},
		{"every tenant rejects", "x@good.example", "good.example", attachment, attBody, []string{alice, sales}, "550 5.7.1", nil},
	} {
		before := map[string]int{}
		for r, f := range tc.folders {
			before[r] = len(e.store.messages(r, f))
		}
		msg := buildMessage(t, tc.from, tc.sign, tc.header, tc.body)
		if got := code(send(c, tc.from, tc.rcpts, msg)); got != tc.want {
			t.Errorf("%s: reply %q, want %q", tc.name, got, tc.want)
			continue
		}
		for r, f := range tc.folders {
			if n := len(e.store.messages(r, f)) - before[r]; n != 1 {
				t.Errorf("%s: %d new in %s of %s, want 1", tc.name, n, f, r)
			}
		}
	}
}

// TestAliasExpansion: an alias delivers to its local mailboxes and relays
// to its external targets through the spool, under the alias's tenant.
func TestAliasExpansion(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial()
	msg := buildMessage(t, "x@good.example", "good.example", "", "to everyone\r\n")
	// alice is reached through both aliases and directly: one copy.
	if err := send(c, "x@good.example", []string{sales, fwd, alice}, msg); err != nil {
		t.Fatal(err)
	}
	if n := len(e.store.messages(alice, mailstore.FolderInbox)); n != 1 {
		t.Errorf("alice has %d copies, want 1", n)
	}
	if n := len(e.store.messages(bob, mailstore.FolderInbox)); n != 1 {
		t.Errorf("bob has %d copies, want 1", n)
	}
	q := e.queued()
	if len(q) != 1 {
		t.Fatalf("spool holds %d deliveries, want 1", len(q))
	}
	rec := q[0].Record
	if rec.Tenant != "acme" || rec.From != "x@good.example" || len(rec.Extra) != 0 {
		t.Errorf("forward record %+v", rec)
	}
	body, err := e.q.Body(q[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("Authentication-Results: "+testHost)) {
		t.Errorf("forwarded body lacks our Authentication-Results")
	}
	if n := counter(t, e.reg, "fairway_inbound_deliveries_total", map[string]string{"tenant": "acme", "result": "forwarded"}); n != 1 {
		t.Errorf("forwarded counted %v", n)
	}
}

// TestPartialFailure: a copy that fails after DATA while another was
// stored is queued for a retry (250 to the client); DeliverLocal stores
// it later in the folder decided then. With nothing stored the client
// gets the temporary failure; with the spool down, 451 4.3.0.
func TestPartialFailure(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.policy("globex", func(p *tenant.Policy) {
		p.Quarantine = []tenant.QuarantineRule{{Check: "size", Value: "10", Action: "quarantine"}}
	})
	msg := buildMessage(t, "x@good.example", "good.example", "", "partial\r\n")

	c := e.dial()
	c.Mail("x@good.example", nil)
	c.Rcpt(alice, nil)
	c.Rcpt(carol, nil)
	e.store.setFull(carol, true) // filled between RCPT and DATA
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	if err := w.Close(); err != nil {
		t.Fatalf("DATA = %v, want 250", err)
	}
	if n := len(e.store.messages(alice, mailstore.FolderInbox)); n != 1 {
		t.Fatalf("alice: %d", n)
	}
	q := e.queued()
	if len(q) != 1 || q[0].Record.Tenant != "globex" {
		t.Fatalf("spool: %+v", q)
	}
	folder, ok := parseRetryExtra(q[0].Record.Extra)
	if !ok || folder != mailstore.FolderQuarantine {
		t.Fatalf("retry extra %q", q[0].Record.Extra)
	}
	body, err := e.q.Body(q[0].ID)
	if err != nil {
		t.Fatal(err)
	}

	// relay hands it back: still full, then room.
	res := e.mx.DeliverLocal(context.Background(), "x@good.example", []string{carol}, body, q[0].Record.Extra)
	if got := code(res[0]); got != "452 4.2.2" {
		t.Errorf("retry into a full mailbox = %q, want 452 4.2.2", got)
	}
	e.store.setFull(carol, false)
	res = e.mx.DeliverLocal(context.Background(), "x@good.example", []string{carol}, body, q[0].Record.Extra)
	if res[0] != nil {
		t.Fatalf("retry = %v", res[0])
	}
	got := e.store.messages(carol, mailstore.FolderQuarantine)
	if len(got) != 1 || !bytes.Equal(got[0], body) {
		t.Fatalf("carol's Quarantine after the retry: %d messages", len(got))
	}

	// Nothing stored: the temporary failure itself.
	c2 := e.dial()
	c2.Mail("x@good.example", nil)
	if err := c2.Rcpt(bob, nil); err != nil {
		t.Fatal(err)
	}
	e.store.setFull(bob, true)
	w, _ = c2.Data()
	w.Write(msg)
	if got := code(w.Close()); got != "452 4.2.2" {
		t.Errorf("nothing stored = %q, want 452 4.2.2", got)
	}
	e.store.setFull(bob, false)

	// The spool down: the retry cannot be queued, 451 4.3.0.
	e.store.setFull(carol, true)
	c3 := e.dial()
	c3.Mail("x@good.example", nil)
	c3.Rcpt(alice, nil)
	e.store.setFull(carol, false)
	c3.Rcpt(carol, nil)
	e.store.setFull(carol, true)
	e.q.Close()
	w, _ = c3.Data()
	w.Write(msg)
	if got := code(w.Close()); got != "451 4.3.0" {
		t.Errorf("spool down = %q, want 451 4.3.0", got)
	}
}

// TestReportAddresses: report and complaint mail reaches its sink; a sink
// that cannot store is 451 4.3.0.
func TestReportAddresses(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial()
	msg := buildMessage(t, "noreply@good.example", "good.example", "", "report\r\n")
	if err := send(c, "noreply@good.example", []string{reportAddr}, msg); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "noreply@good.example", []string{strings.ToUpper(complaintAddr)}, msg); err != nil {
		t.Fatal(err)
	}
	if e.reports.count() != 1 || e.arf.count() != 1 {
		t.Fatalf("reports %d, complaints %d", e.reports.count(), e.arf.count())
	}
	e.reports.mu.Lock()
	e.reports.fail = errors.New("disk full")
	e.reports.mu.Unlock()
	if got := code(send(c, "noreply@good.example", []string{reportAddr}, msg)); got != "451 4.3.0" {
		t.Errorf("sink failure = %q, want 451 4.3.0", got)
	}
}

// TestDeliverLocal: relay's path for hosted recipients: recipient checks
// and alias expansion, attachment/size/sender rules but not the
// authentication rules, auth=pass recorded.
func TestDeliverLocal(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.policy("acme", func(p *tenant.Policy) {
		p.Quarantine = []tenant.QuarantineRule{
			{Check: "noauth", Action: "reject"},
			{Check: "sender", Value: "spam@globex.example", Action: "quarantine"},
		}
	})
	e.policy("globex", func(p *tenant.Policy) {
		p.Quarantine = []tenant.QuarantineRule{{Check: "attachment", Value: "js", Action: "reject"}}
	})
	plain := []byte("From: <carol@globex.example>\r\nAuthentication-Results: " + testHost + "; dkim=pass\r\nSubject: hi\r\n\r\nhello\r\n")
	res := e.mx.DeliverLocal(context.Background(), carol, []string{alice, sales, "nobody@acme.example", "x@outside.example"}, plain, nil)
	want := []string{"", "", "550 5.1.1", "554 5.7.1"}
	for i := range want {
		if got := code(res[i]); got != want[i] {
			t.Errorf("recipient %d: %q, want %q", i, got, want[i])
		}
	}
	// alice is a recipient and, through sales, a target: one copy.
	got := e.store.messages(alice, mailstore.FolderInbox)
	if len(got) != 1 || len(e.store.messages(bob, mailstore.FolderInbox)) != 1 {
		t.Fatalf("alice has %d copies, bob %d; want 1 each", len(got), len(e.store.messages(bob, mailstore.FolderInbox)))
	}
	fields, _ := splitHeader(got[0])
	if ars := fieldValues(fields, "Authentication-Results"); len(ars) != 1 || !strings.Contains(ars[0], "auth=pass") || !strings.Contains(ars[0], "smtp.auth="+carol) {
		t.Errorf("Authentication-Results %q", ars)
	}

	res = e.mx.DeliverLocal(context.Background(), "spam@globex.example", []string{bob}, plain, nil)
	if res[0] != nil || len(e.store.messages(bob, mailstore.FolderQuarantine)) != 1 {
		t.Errorf("sender rule: %v, quarantine %d", res[0], len(e.store.messages(bob, mailstore.FolderQuarantine)))
	}
	js := []byte("From: <alice@acme.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n" +
		"--x\r\nContent-Type: text/javascript; name=run.JS\r\n\r\nalert(1)\r\n--x--\r\n")
	res = e.mx.DeliverLocal(context.Background(), alice, []string{carol}, js, nil)
	if got := code(res[0]); got != "550 5.7.1" {
		t.Errorf("attachment rule on DeliverLocal = %q, want 550 5.7.1", got)
	}
}

// TestConnectionCap: connections over the per-address cap get 421 4.7.0;
// loopback is not exempt.
func TestConnectionCap(t *testing.T) {
	e := newEnv(t, envConfig{options: func(o *MXOptions) { o.MaxConnsPerIP = 1 }})
	first := e.dial()
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.7.0 ") {
		t.Errorf("over the cap: %q", buf[:n])
	}
	first.Quit()
	// The place is released: a new connection gets its greeting. The
	// release happens as the server closes the first connection, which
	// the client does not wait for: bounded retries.
	for i := 0; ; i++ {
		if greeting := firstLine(t, e.addr); strings.HasPrefix(greeting, "220 ") {
			break
		} else if i == 200 {
			t.Fatalf("no greeting after the first connection ended: %q", greeting)
		}
	}
}

// TestDNSFailure: a DNS failure is a temperror, never a policy verdict:
// the DKIM key of a p=reject domain that cannot be fetched does not get
// the message rejected.
func TestDNSFailure(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.dns.SetFail("s1._domainkey.reject.example", true)
	msg := buildMessage(t, "ceo@reject.example", "reject.example", "", "key unavailable\r\n")
	if err := send(e.dial(), "ceo@reject.example", []string{alice}, msg); err != nil {
		t.Fatalf("DKIM temperror under p=reject: %v, want accepted", err)
	}
	got := e.store.messages(alice, mailstore.FolderInbox)
	if len(got) != 1 {
		t.Fatalf("INBOX: %d", len(got))
	}
	fields, _ := splitHeader(got[0])
	ar := fieldValues(fields, "Authentication-Results")[0]
	for _, want := range []string{"spf=fail", "dkim=temperror", "dmarc=temperror"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results %q lacks %q", ar, want)
		}
	}
}

// TestShutdown: a shutdown whose grace period is over closes the open
// sessions (their transactions get no reply, nothing is stored) and
// refuses new connections; a second Shutdown is harmless.
func TestShutdown(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial()
	if err := c.Mail("x@good.example", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.mx.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := c.Rcpt(alice, nil); err == nil {
		t.Error("session still open after shutdown")
	}
	if conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second); err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if n, _ := conn.Read(make([]byte, 64)); n > 0 {
			t.Error("a new connection was greeted after shutdown")
		}
		conn.Close()
	}
	if n := len(e.store.messages(alice, mailstore.FolderInbox)); n != 0 {
		t.Errorf("%d stored", n)
	}
}

// TestSPFPtr: SPF's ptr mechanism goes through the resolver's PTR lookup.
func TestSPFPtr(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.dns.SetTXT("ptr.example", "v=spf1 ptr -all")
	e.dns.SetPTR("127.0.0.1", "client.ptr.example")
	e.dns.SetIPs("client.ptr.example", "127.0.0.1")
	msg := buildMessage(t, "x@ptr.example", "", "", "ptr\r\n")
	if err := send(e.dial(), "x@ptr.example", []string{alice}, msg); err != nil {
		t.Fatal(err)
	}
	got := e.store.messages(alice, mailstore.FolderInbox)
	if len(got) != 1 {
		t.Fatalf("INBOX: %d", len(got))
	}
	fields, _ := splitHeader(got[0])
	if ar := fieldValues(fields, "Authentication-Results")[0]; !strings.Contains(ar, "spf=pass") {
		t.Errorf("Authentication-Results %q: want spf=pass", ar)
	}
}

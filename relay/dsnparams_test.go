package relay

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"fairway/fairq"
)

func TestDSNParamsRoundTrip(t *testing.T) {
	var p dsnParams
	if p.encode() != nil {
		t.Fatal("empty parameters take room in the record")
	}
	p.setMail(&smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "env+1 x"})
	p.setRcpt("a@x.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}})
	p.setRcpt("b@x.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{"SUCCESS", "DELAY"},
		OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "B@Orig.test"})
	p.setRcpt("c@x.test", nil)
	got, err := decodeDSNParams(p.encode())
	if err != nil || got == nil || got.Ret != "HDRS" || got.EnvID != "env+1 x" || len(got.Rcpts) != 2 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	for addr, want := range map[string]bool{"a@x.test": false, "b@x.test": false, "c@x.test": true, "other@x.test": true} {
		if got.wantsFailureDSN(addr) != want {
			t.Errorf("wantsFailureDSN(%s) = %v", addr, !want)
		}
	}
	if s := got.mailParams(); s != " RET=HDRS ENVID=env+2B1+20x" {
		t.Errorf("MAIL parameters %q", s)
	}
	if s := got.rcptParams("b@x.test"); s != " NOTIFY=SUCCESS,DELAY ORCPT=RFC822;B@Orig.test" {
		t.Errorf("RCPT parameters %q", s)
	}
	// Someone else's Extra (inbound's retries) is not DSN parameters.
	if q, err := decodeDSNParams([]byte("fairway-inbound-retry\x00Quarantine")); q != nil || err != nil {
		t.Errorf("foreign extra decoded as %+v, %v", q, err)
	}
	if _, err := decodeDSNParams([]byte(dsnExtraMarker + "{broken")); err == nil {
		t.Error("a corrupt record decoded")
	}
}

// dsnExtra is a queue record's Extra for the delivery tests below.
func dsnExtra() []byte {
	var p dsnParams
	p.setMail(&smtp.MailOptions{Return: smtp.DSNReturnFull, EnvelopeID: "campaign-7"})
	p.setRcpt("quiet@dest.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}})
	p.setRcpt("loud@dest.test", &smtp.RcptOptions{Notify: []smtp.DSNNotify{"FAILURE"},
		OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "loud@orig.test"})
	return p.encode()
}

func TestDeliveryPassesDSNParametersOn(t *testing.T) {
	for _, disable := range []bool{false, true} {
		s := startSink(t, sinkOptions{DSN: true})
		e := newDlvEnv(t, func(o *DeliveryOptions) { routeTo(s, "*")(o); o.DisablePipelining = disable })
		body := "From: <a@sender.test>\r\nSubject: test dsn\r\n\r\nhi\r\n"
		if _, err := e.q.Enqueue(context.Background(), &fairq.Message{Tenant: "t1", From: "a@sender.test",
			Recipients: []string{"quiet@dest.test", "loud@dest.test"}, Body: []byte(body), Extra: dsnExtra()}); err != nil {
			t.Fatal(err)
		}
		m := waitMessages(t, s, 1)[0]
		e.waitIdle()
		if m.MailOpts == nil || m.MailOpts.Return != smtp.DSNReturnFull || m.MailOpts.EnvelopeID != "campaign-7" {
			t.Errorf("pipelining off=%v: MAIL options %+v", disable, m.MailOpts)
		}
		if len(m.RcptOpts) != 2 || !slices.Equal(m.RcptOpts[0].Notify, []smtp.DSNNotify{"NEVER"}) ||
			m.RcptOpts[1].OriginalRecipient != "loud@orig.test" {
			t.Errorf("pipelining off=%v: RCPT options %+v %+v", disable, m.RcptOpts[0], m.RcptOpts[1])
		}
	}
}

func TestBounceHonoursNotifyRetAndEnvid(t *testing.T) {
	s := startSink(t, sinkOptions{})
	for _, r := range []string{"quiet@dest.test", "loud@dest.test"} {
		s.rejectRcpt(r, 550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	}
	e := newDlvEnv(t, routeTo(s, "*"))
	body := "From: <a@sender.test>\r\nSubject: test dsn\r\n\r\nthe whole body comes back\r\n"
	if _, err := e.q.Enqueue(context.Background(), &fairq.Message{Tenant: "t1", From: "a@sender.test",
		Recipients: []string{"quiet@dest.test", "loud@dest.test"}, Body: []byte(body), Extra: dsnExtra()}); err != nil {
		t.Fatal(err)
	}
	dsn := waitMessages(t, s, 1)[0]
	e.waitIdle()
	data := string(dsn.Data)
	if dsn.From != "" || strings.Contains(data, "quiet@dest.test") {
		t.Errorf("DSN from %q mentions the NOTIFY=NEVER recipient:\n%s", dsn.From, data)
	}
	for _, want := range []string{"Final-Recipient: rfc822; loud@dest.test", "Original-Recipient: rfc822; loud@orig.test",
		"Original-Envelope-Id: campaign-7", "Content-Type: message/rfc822", "the whole body comes back"} {
		if !strings.Contains(data, want) {
			t.Errorf("DSN lacks %q:\n%s", want, data)
		}
	}
	if len(s.messages()) != 1 {
		t.Errorf("sink got %d messages, want the one DSN", len(s.messages()))
	}

	// Every failed recipient said NEVER: no DSN at all.
	s2 := startSink(t, sinkOptions{})
	s2.rejectRcpt("quiet@dest.test", 550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	e2 := newDlvEnv(t, routeTo(s2, "*"))
	if _, err := e2.q.Enqueue(context.Background(), &fairq.Message{Tenant: "t1", From: "a@sender.test",
		Recipients: []string{"quiet@dest.test"}, Body: []byte(body), Extra: dsnExtra()}); err != nil {
		t.Fatal(err)
	}
	e2.waitIdle()
	if n := len(s2.messages()); n != 0 {
		t.Errorf("%d DSN(s) for a NOTIFY=NEVER recipient", n)
	}
}

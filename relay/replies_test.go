package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Every reply submissionReply can give: its class agrees with its enhanced
// code's class, and the contract's rows have their exact codes.
func TestSubmissionReplyClasses(t *testing.T) {
	next := time.Date(2026, 11, 25, 13, 3, 59, 100, time.UTC)
	for _, tc := range []struct {
		err    error
		code   int
		enh    smtp.EnhancedCode
		reason string
	}{
		// The contract's rows.
		{errTLSRequired, 530, smtp.EnhancedCode{5, 7, 0}, reasonTLSRequired},
		{errAuthRequired, 530, smtp.EnhancedCode{5, 7, 0}, reasonAuthRequired},
		{errAuthFailed, 535, smtp.EnhancedCode{5, 7, 8}, reasonAuthFailed},
		{errAuthThrottled, 454, smtp.EnhancedCode{4, 7, 0}, reasonAuthThrottled},
		{&senderError{Addr: "b@x.example"}, 553, smtp.EnhancedCode{5, 7, 1}, reasonSenderNotOwned},
		{&senderError{Addr: "b@x.example", Header: true}, 553, smtp.EnhancedCode{5, 7, 1}, reasonSenderNotOwned},
		{errNullSender, 553, smtp.EnhancedCode{5, 7, 1}, reasonNullSender},
		{&LimitError{Limit: Limit{Name: limitMailboxHourly, Count: 100, Per: time.Hour}, Next: next}, 450, smtp.EnhancedCode{4, 7, 1}, reasonRateLimited},
		{errTenantSuspended, 451, smtp.EnhancedCode{4, 7, 1}, reasonTenantSuspended},
		{errMessageTooBig, 552, smtp.EnhancedCode{5, 3, 4}, reasonTooBig},
		{smtp.ErrDataTooLarge, 552, smtp.EnhancedCode{5, 3, 4}, reasonTooBig},
		{fmt.Errorf("%w: fairq: queue closed", errQueue), 451, smtp.EnhancedCode{4, 3, 0}, reasonQueue},
		// The others.
		{errAuthMalformed, 501, smtp.EnhancedCode{5, 5, 2}, reasonAuthProtocol},
		{errAuthMechanism, 504, smtp.EnhancedCode{5, 5, 4}, reasonAuthProtocol},
		{errNestedMail, 503, smtp.EnhancedCode{5, 5, 1}, reasonProtocol},
		{errAuthInTx, 503, smtp.EnhancedCode{5, 5, 1}, reasonProtocol},
		{&recipientsError{Max: 100}, 452, smtp.EnhancedCode{4, 5, 3}, reasonRecipients},
		{errBadRecipient, 501, smtp.EnhancedCode{5, 1, 3}, reasonBadRecipient},
		{errNoFrom, 550, smtp.EnhancedCode{5, 6, 0}, reasonContent},
		{errMultipleFrom, 550, smtp.EnhancedCode{5, 6, 0}, reasonContent},
		{errBadFrom, 550, smtp.EnhancedCode{5, 6, 0}, reasonContent},
		{errBadHeader, 550, smtp.EnhancedCode{5, 6, 0}, reasonContent},
		{errBareNewline, 550, smtp.EnhancedCode{5, 6, 0}, reasonContent},
		{errNULInMessage, 550, smtp.EnhancedCode{5, 6, 0}, reasonContent},
		{fmt.Errorf("%w: read: timeout", errDataAborted), 451, smtp.EnhancedCode{4, 4, 2}, reasonAborted},
		{errTooManyConnsIP, 421, smtp.EnhancedCode{4, 7, 0}, reasonConnsIP},
		{errTooManyConns, 421, smtp.EnhancedCode{4, 3, 2}, reasonConns},
		// Unknown errors: 451 4.3.0, nothing of their text shown.
		{errors.New("pebble: disk on fire at /var/secret"), 451, smtp.EnhancedCode{4, 3, 0}, reasonInternal},
		{nil, 451, smtp.EnhancedCode{4, 3, 0}, reasonInternal},
	} {
		r, reason := submissionReply(tc.err)
		if r.Code != tc.code || r.EnhancedCode != tc.enh || reason != tc.reason {
			t.Errorf("%v: %d %v %s, want %d %v %s", tc.err, r.Code, r.EnhancedCode, reason, tc.code, tc.enh, tc.reason)
		}
		if r.Code/100 != r.EnhancedCode[0] {
			t.Errorf("%v: reply %d with enhanced class %d", tc.err, r.Code, r.EnhancedCode[0])
		}
		if r.Message == "" || strings.Contains(r.Message, "secret") || strings.ContainsAny(r.Message, "\r\n") {
			t.Errorf("%v: message %q", tc.err, r.Message)
		}
	}
	if r := acceptedReply("0123456789abcdef"); r.Code != 250 || r.EnhancedCode != (smtp.EnhancedCode{2, 0, 0}) {
		t.Errorf("accepted: %d %v", r.Code, r.EnhancedCode)
	}
}

func TestLimitReplyText(t *testing.T) {
	err := &LimitError{Limit: Limit{Name: limitMailboxHourly, Count: 100, Per: time.Hour},
		Next: time.Date(2026, 11, 25, 13, 3, 59, 100, time.UTC)}
	r, _ := submissionReply(err)
	want := "mailbox hourly limit of 100 recipients reached, next recipient allowed at 2026-11-25T13:04:00Z"
	if r.Message != want {
		t.Fatalf("%q, want %q", r.Message, want)
	}
	// On the second: not rounded.
	if got := refillTime(time.Date(2026, 11, 25, 13, 4, 0, 0, time.FixedZone("X", 3600))); got != "2026-11-25T12:04:00Z" {
		t.Fatalf("refill time %q", got)
	}
}

func TestEchoSafe(t *testing.T) {
	if got := echoSafe("a\r\nb\x00é"); got != "a??b???" {
		t.Fatalf("%q", got)
	}
	if got := echoSafe(strings.Repeat("x", 1000)); len(got) != 256 {
		t.Fatalf("len %d", len(got))
	}
	if got := formatReplyLine(submitReply(421, smtp.EnhancedCode{4, 7, 0}, "Too many"), "mx.test"); got != "421 4.7.0 mx.test Too many\r\n" {
		t.Fatalf("%q", got)
	}
}

package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestReplyErrorClassification(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err       error
		stage     string
		permanent bool
		code      int
		enhanced  string
		connLevel bool
	}{
		{&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, StageRcpt, true, 550, "5.1.1", false},
		{&smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "busy"}, StageRcpt, false, 450, "4.2.1", false},
		{&smtp.SMTPError{Code: 450, Message: "no enhanced code"}, StageRcpt, false, 450, "4.0.0", false},
		{&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "contradiction"}, StageData, false, 451, "4.0.0", false},
		{&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "contradiction"}, StageData, true, 554, "5.0.0", false},
		{&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "closing"}, StageRcpt, false, 421, "4.7.0", true},
		{&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "later"}, StageMail, false, 451, "4.3.2", true},
		{&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "later"}, StageGreeting, false, 451, "4.3.2", true},
		{&smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused"}, StageMail, true, 553, "5.7.1", false},
		{&smtp.SMTPError{Code: 354, Message: "odd"}, StageRcpt, false, 354, "4.5.0", false},
		{io.EOF, StageData, false, 0, "4.4.2", true},
		{timeout, StageMail, false, 0, "4.4.2", true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, StageConnect, false, 0, "4.4.1", true},
	} {
		e := replyError(fmt.Errorf("wrapped: %w", tc.err), tc.stage, "mx.example")
		if e.Permanent != tc.permanent || e.Code != tc.code || e.Enhanced != tc.enhanced || e.connectionLevel() != tc.connLevel {
			t.Errorf("%v at %s: %+v (connection level %v)", tc.err, tc.stage, e, e.connectionLevel())
		}
		// The reply class and the enhanced class always agree.
		if want := map[bool]byte{true: '5', false: '4'}[e.Permanent]; e.Enhanced[0] != want {
			t.Errorf("%v: permanent=%v with enhanced %s", tc.err, e.Permanent, e.Enhanced)
		}
		var de *DeliveryError
		if !errors.As(fmt.Errorf("outer: %w", e), &de) || de != e {
			t.Errorf("errors.As lost the DeliveryError")
		}
	}
	e := replyError(timeout, StageMail, "mx.example")
	if !strings.HasPrefix(e.Line, "timed out: ") || !errors.Is(e, os.ErrDeadlineExceeded) {
		t.Errorf("timeout: %+v", e)
	}
}

func TestDetailRoundTrip(t *testing.T) {
	multi := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "line one\nline two"}
	e := replyError(multi, StageRcpt, "mx.example")
	if got := e.Detail(); got != "rcpt mx.example: 550 5.1.1 line one line two" {
		t.Fatalf("detail %q", got)
	}
	for _, tc := range []struct {
		detail string
		want   parsedDetail
	}{
		{e.Detail(), parsedDetail{Stage: "rcpt", Host: "mx.example", Code: 550, Enhanced: "5.1.1", Text: "line one line two"}},
		{"expired after 120h0m0s: connect mx.example: 4.4.1 dial tcp: connection refused",
			parsedDetail{Stage: "connect", Host: "mx.example", Enhanced: "4.4.1", Text: "dial tcp: connection refused"}},
		{localError(true, StageDNS, "", esNullMX, "null MX", nil).Detail(),
			parsedDetail{Stage: "dns", Enhanced: "5.1.10", Text: "null MX"}},
		{"data 127.0.0.1:2600: 250 2.0.0 OK: queued as 12",
			parsedDetail{Stage: "data", Host: "127.0.0.1:2600", Code: 250, Enhanced: "2.0.0", Text: "OK: queued as 12"}},
	} {
		got, ok := parseDetail(tc.detail)
		if !ok || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.detail, got, ok, tc.want)
		}
	}
	if _, ok := parseDetail("no result reported"); ok {
		t.Error("free text parsed")
	}
	long := replyError(&smtp.SMTPError{Code: 550, Message: strings.Repeat("x", 5000)}, StageRcpt, "h")
	if len(long.Line) > maxErrorLine {
		t.Errorf("line of %d bytes kept", len(long.Line))
	}
}

package inbound

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dmarc"
	"github.com/emersion/go-smtp"

	"fairway/mailstore"
	"fairway/tenant"
)

// TestMXReplyClasses: every reply mxReply can give has a code and an
// enhanced code of the same class, and no internal error text.
func TestMXReplyClasses(t *testing.T) {
	errs := []error{
		errAuthNotOffered, errNestedMail, errNoTransaction, errBadSender, errUnknownUser,
		errMessageTooBig, smtp.ErrDataTooLarge, errDataAborted, errQueue, errSink, errPolicyReject,
		errTooManyConnsIP, errTooManyConns, mailstore.ErrOverQuota, mailstore.ErrNoMailbox,
		&relayError{Addr: "a@b", Why: "x"}, &recipientsError{Max: 3}, &dmarcRejectError{Domain: "d.example"},
		&lmtpError{Reply: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "full"}},
		&lmtpError{Reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{4, 1, 1}, Message: "mismatch"}},
		&lmtpError{Reply: &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "odd"}},
		errors.New("secret internal detail"),
		fmt.Errorf("wrapped: %w", mailstore.ErrOverQuota),
	}
	reasons := map[string]bool{}
	for _, err := range errs {
		r, reason := mxReply(err)
		if r.Code/100 != r.EnhancedCode[0] || (r.Code/100 != 4 && r.Code/100 != 5) {
			t.Errorf("%v: reply %s: classes disagree or not a failure", err, replyCode(r))
		}
		if strings.Contains(r.Message, "secret") {
			t.Errorf("%v: internal text reaches the client: %q", err, r.Message)
		}
		reasons[reason] = true
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errAuthNotOffered, "503 5.5.1"},
		{&relayError{}, "554 5.7.1"},
		{errUnknownUser, "550 5.1.1"},
		{fmt.Errorf("store: %w", mailstore.ErrOverQuota), "452 4.2.2"},
		{smtp.ErrDataTooLarge, "552 5.3.4"},
		{errQueue, "451 4.3.0"},
		{&dmarcRejectError{}, "550 5.7.1"},
		{errPolicyReject, "550 5.7.1"},
		{errors.New("x"), "451 4.3.0"},
	} {
		if r, _ := mxReply(tc.err); replyCode(r) != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, replyCode(r), tc.want)
		}
	}
	if r := acceptedReply("x"); r.Code != 250 || r.EnhancedCode[0] != 2 {
		t.Errorf("accepted reply %s", replyCode(r))
	}
}

// TestAlignment: relaxed alignment compares organizational domains
// (public suffix list), strict the names themselves.
func TestAlignment(t *testing.T) {
	for _, tc := range []struct {
		auth, from string
		mode       dmarc.AlignmentMode
		want       bool
	}{
		{"example.com", "example.com", dmarc.AlignmentRelaxed, true},
		{"mail.example.com", "example.com", dmarc.AlignmentRelaxed, true},
		{"example.com", "news.example.com", dmarc.AlignmentRelaxed, true},
		{"a.example.com", "b.example.com", dmarc.AlignmentRelaxed, true},
		{"mail.example.com", "example.com", dmarc.AlignmentStrict, false},
		{"EXAMPLE.com", "example.COM", dmarc.AlignmentStrict, true},
		{"example.co.uk", "other.co.uk", dmarc.AlignmentRelaxed, false},
		{"a.example.co.uk", "example.co.uk", dmarc.AlignmentRelaxed, true},
		{"evil-example.com", "example.com", dmarc.AlignmentRelaxed, false},
		{"example.com.evil.net", "example.com", dmarc.AlignmentRelaxed, false},
		{"alice.github.io", "bob.github.io", dmarc.AlignmentRelaxed, false}, // private suffix
		{"", "example.com", dmarc.AlignmentRelaxed, false},
		{"co.uk", "example.co.uk", dmarc.AlignmentRelaxed, false},
	} {
		if got := aligned(tc.auth, tc.from, tc.mode); got != tc.want {
			t.Errorf("aligned(%q, %q, %s) = %v, want %v", tc.auth, tc.from, tc.mode, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"a.b.example.com": "example.com", "example.co.uk": "example.co.uk", "x.y.example.co.uk": "example.co.uk",
		"sub.org.example": "org.example", "Mail.Example.COM.": "example.com",
	} {
		if got := orgDomain(in); got != want {
			t.Errorf("orgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSplitRecipient: the recipient syntax checks, without the directory.
func TestSplitRecipient(t *testing.T) {
	for _, tc := range []struct {
		in, addr string
		relay    bool
	}{
		{"Alice@Acme.Example", "alice@acme.example", false},
		{"a%b@acme.example", "", true},
		{"a!b@acme.example", "", true},
		{"a@b@acme.example", "", true},
		{"a@acme.example.", "", true},
		{"a@[10.0.0.1]", "", true},
		{"a@", "", true},
		{"@acme.example", "", true},
		{"a@-bad-.example", "", true},
		{"a@nodot", "", true},
		{"a b@acme.example", "", false}, // unknown user, not relay
	} {
		addr, _, err := splitRecipient(tc.in)
		var re *relayError
		if errors.As(err, &re) != tc.relay || addr != tc.addr {
			t.Errorf("splitRecipient(%q) = %q, %v; want %q relay=%v", tc.in, addr, err, tc.addr, tc.relay)
		}
	}
}

// TestDecide: the rules run in order, first match decides; DMARC
// p=quarantine applies when no rule decided; authentication rules do not
// fire without authentication results (DeliverLocal).
func TestDecide(t *testing.T) {
	authFail := &authResults{SPF: "fail", DMARC: "fail", Policy: dmarc.PolicyQuarantine}
	authPass := &authResults{SPF: "pass", DKIM: []dkimResult{{Result: "pass", Domain: "x.example"}}, DMARC: "pass"}
	body := []byte("From: a@x.example\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n" +
		"Content-Disposition: attachment; filename*=UTF-8''report%2Ejs\r\n\r\nx\r\n--z--\r\n")
	facts := func(a *authResults) *messageFacts {
		return newMessageFacts(body, a, "bounce@x.example", []string{"Alice <a@x.example>"})
	}
	r := func(check, result, value, action string) tenant.QuarantineRule {
		return tenant.QuarantineRule{Check: check, Result: result, Value: value, Action: action}
	}
	for _, tc := range []struct {
		name  string
		rules []tenant.QuarantineRule
		auth  *authResults
		want  verdict
	}{
		{"no rules, passing", nil, authPass, verdictInbox},
		{"no rules, dmarc quarantine", nil, authFail, verdictQuarantine},
		{"spf fail reject", []tenant.QuarantineRule{r("spf", "fail", "", "reject")}, authFail, verdictReject},
		{"spf rule on pass", []tenant.QuarantineRule{r("spf", "fail", "", "reject")}, authPass, verdictInbox},
		{"noauth", []tenant.QuarantineRule{r("noauth", "", "", "reject")}, authFail, verdictReject},
		{"noauth passing", []tenant.QuarantineRule{r("noauth", "", "", "reject")}, authPass, verdictInbox},
		{"noauth without auth results", []tenant.QuarantineRule{r("noauth", "", "", "reject")}, nil, verdictInbox},
		{"allow-list first", []tenant.QuarantineRule{r("sender", "", "@X.example", "accept"), r("spf", "fail", "", "reject")}, authFail, verdictInbox},
		{"allow-list by From: address", []tenant.QuarantineRule{r("sender", "", "a@x.example", "accept")}, authFail, verdictInbox},
		{"block-list", []tenant.QuarantineRule{r("sender", "", "bounce@x.example", "reject")}, authPass, verdictReject},
		{"other sender", []tenant.QuarantineRule{r("sender", "", "@y.example", "reject")}, authPass, verdictInbox},
		{"attachment (RFC 2231 name)", []tenant.QuarantineRule{r("attachment", "", "exe, .JS", "quarantine")}, authPass, verdictQuarantine},
		{"attachment other ext", []tenant.QuarantineRule{r("attachment", "", "exe", "quarantine")}, authPass, verdictInbox},
		{"size over", []tenant.QuarantineRule{r("size", "", "10", "reject")}, authPass, verdictReject},
		{"size under", []tenant.QuarantineRule{r("size", "", "100000", "reject")}, authPass, verdictInbox},
		{"dkim none", []tenant.QuarantineRule{r("dkim", "none", "", "quarantine")}, authFail, verdictQuarantine},
		{"dmarc fail", []tenant.QuarantineRule{r("dmarc", "fail", "", "reject")}, authFail, verdictReject},
	} {
		if got, _ := decide(tc.rules, facts(tc.auth)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAttachmentNames: names hidden behind encodings, trailing dots,
// nesting and broken parameters are found.
func TestAttachmentNames(t *testing.T) {
	msg := "Content-Type: multipart/mixed; boundary=outer\r\n\r\n" +
		"--outer\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--outer\r\nContent-Type: application/octet-stream; name=\"=?utf-8?q?Rechnung=2Eexe?=\"\r\n\r\nMZ\r\n" +
		"--outer\r\nContent-Disposition: attachment; filename=\"setup.SCR. \"\r\n\r\nx\r\n" +
		"--outer\r\nContent-Disposition: attachment; filename=my file.vbs\r\n\r\nx\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
		"--inner\r\nContent-Disposition: inline; filename=deep.js\r\n\r\nx\r\n--inner--\r\n" +
		"--outer\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Content-Type: multipart/mixed; boundary=fwd\r\n\r\n--fwd\r\nContent-Disposition: attachment; filename=fwd.bat\r\n\r\nx\r\n--fwd--\r\n" +
		"--outer--\r\n"
	got := attachmentNames([]byte(msg))
	for _, want := range []string{"rechnung.exe", "setup.scr", "my file.vbs", "deep.js", "fwd.bat"} {
		if !slices.Contains(got, want) {
			t.Errorf("%q not found in %q", want, got)
		}
	}
}

// TestSplitHeader: fields kept byte for byte, continuation lines joined,
// the body untouched, with CRLF or bare LF.
func TestSplitHeader(t *testing.T) {
	msg := "A: 1\r\nB: two\r\n  lines\r\nA-R: x\r\n\r\nbody\r\nC: not a field\r\n"
	fields, rest := splitHeader([]byte(msg))
	if len(fields) != 3 || string(fields[1].Raw) != "B: two\r\n  lines\r\n" || fields[1].value() != "two  lines" {
		t.Fatalf("fields %q", fields)
	}
	if string(rest) != "\r\nbody\r\nC: not a field\r\n" {
		t.Errorf("rest %q", rest)
	}
	if got := string(rebuild("X: y\r\n", fields, rest, func(f headerField) bool { return f.Name == "A-R" })); got != "X: y\r\nA: 1\r\nB: two\r\n  lines\r\n\r\nbody\r\nC: not a field\r\n" {
		t.Errorf("rebuild %q", got)
	}
	fields, rest = splitHeader([]byte("no header line\r\n\r\nx"))
	if len(fields) != 0 || string(rest) != "no header line\r\n\r\nx" {
		t.Errorf("no header: %q %q", fields, rest)
	}
}

// TestOurAuthResults: which incoming Authentication-Results are ours.
func TestOurAuthResults(t *testing.T) {
	for v, want := range map[string]bool{
		testHost + "; spf=pass":                true,
		"MX.FAIRWAY.TEST; none":                true,
		"(c) " + testHost + " 1; dkim=pass":    true,
		testHost + ".; dkim=pass":              true,
		testHost + ";":                         true,
		"other.example; spf=pass":              false,
		"mx.fairway.test.evil; spf=pass":       false,
		"sub." + testHost + "; spf=pass":       false,
		"garbage ((( " + testHost + "; broken": false,
	} {
		f := headerField{Name: "Authentication-Results", Raw: []byte("Authentication-Results: " + v + "\r\n")}
		if got := ourAuthResults(f, testHost); got != want {
			t.Errorf("%q: ours=%v, want %v", v, got, want)
		}
	}
}

// TestNetDNSError: the SPF and msgauth libraries see "not found" and
// "temporary" as they expect.
func TestNetDNSError(t *testing.T) {
	var de *net.DNSError
	err := netDNSError("x.example", fmt.Errorf("dns: %w", tenant.ErrDNSNotFound))
	if !errors.As(err, &de) || !de.IsNotFound || de.Temporary() {
		t.Errorf("not found: %#v", err)
	}
	err = netDNSError("x.example", errors.New("SERVFAIL"))
	if !errors.As(err, &de) || de.IsNotFound || !de.Temporary() {
		t.Errorf("failure: %#v", err)
	}
	if netDNSError("x", nil) != nil {
		t.Error("nil error not kept")
	}
}

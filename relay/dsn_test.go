package relay

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"fairway/fairq"
)

func TestBuildDSNExpired(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	msg := buildDSN(dsnReport{
		ReportingMTA: "relay.test",
		QueueID:      "00000000000000ab",
		Sender:       "alice@sender.test",
		Arrival:      now.Add(-120 * time.Hour),
		Now:          now,
		Expired:      true,
		Failed: []fairq.RecipientResult{
			{Recipient: "bob@far.test", Status: fairq.Permanent, Detail: "expired after 120h0m0s: rcpt mx.far.test: 450 4.2.1 mailbox busy"},
			{Recipient: "carol@far.test", Status: fairq.Permanent, Detail: "expired after 120h0m0s: no result reported"},
		},
		// LF line ends, as a body may have them.
		Original: []byte("Subject: hi\nFrom: alice@sender.test\n\nsecret body\n"),
	})
	r := parseDSN(t, msg)
	if !strings.Contains(r.header.Get("Subject"), "expired") || !strings.Contains(r.human, "in the time\r\nallowed") {
		t.Fatalf("expiry not said: subject %q, text %q", r.header.Get("Subject"), r.human)
	}
	if len(r.recipients) != 2 {
		t.Fatalf("recipients %v", r.recipients)
	}
	bob, carol := r.recipients[0], r.recipients[1]
	if bob.Get("Status") != "4.2.1" || bob.Get("Diagnostic-Code") != "smtp; 450 4.2.1 mailbox busy" ||
		bob.Get("Remote-MTA") != "dns; mx.far.test" || bob.Get("Action") != "failed" {
		t.Errorf("bob %v", bob)
	}
	if carol.Get("Status") != "4.4.7" || !strings.HasPrefix(carol.Get("Diagnostic-Code"), "X-Fairway; expired after") {
		t.Errorf("carol %v", carol)
	}
	if r.original != "Subject: hi\r\nFrom: alice@sender.test\r\n" {
		t.Errorf("original headers %q", r.original)
	}
	if bytes.Contains(msg, []byte("secret body")) {
		t.Error("DSN carries the original body")
	}
	for line := range bytes.Lines(msg) {
		if !bytes.HasSuffix(line, []byte("\r\n")) || len(line) > 1000 {
			t.Fatalf("bad line %q", line)
		}
	}
}

func TestHeaderBlock(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n"},
		{"A: 1\nB: 2\n\nbody\n", "A: 1\r\nB: 2\r\n"},
		{"A: 1\r\n", "A: 1\r\n"},
		{"", ""},
	} {
		if got := string(headerBlock([]byte(tc.in))); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
	big := strings.Repeat("X-Long: "+strings.Repeat("y", 100)+"\r\n", 2000)
	got := headerBlock([]byte(big + "\r\nbody"))
	if len(got) > maxDSNHeaders || !bytes.HasSuffix(got, []byte("\r\n")) {
		t.Errorf("bounded header block: %d bytes", len(got))
	}
}

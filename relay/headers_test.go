package relay

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheckLines(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want error
	}{
		{"", nil},
		{"a\r\nb\r\n", nil},
		{"no end of line", nil},
		{"a\nb\r\n", errBareNewline},
		{"a\r\nb\n", errBareNewline},
		{"a\rb\r\n", errBareNewline},
		{"a\r\r\n", errBareNewline},
		{"ends in CR\r", errBareNewline},
		{"\n.\r\n", errBareNewline}, // the smuggling shape
		{"nul\x00\r\n", errNULInMessage},
		{"8-bit \xe9t\xe9 is fine\r\n", nil},
	} {
		if err := checkLines([]byte(tc.msg)); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%q: %v, want %v", tc.msg, err, tc.want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	msg := "From: Alice\r\n <alice@acme.example>\r\nSubject : obsolete space\r\nX-Empty:\r\n\tfolded\r\n\r\nbody\r\n"
	fields, body, err := parseHeader([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"From", "Subject", "X-Empty"}) {
		t.Fatalf("names %q", names)
	}
	if got := fields[0].Value(); got != "Alice <alice@acme.example>" {
		t.Fatalf("From value %q", got)
	}
	if string(fields[0].Raw) != "From: Alice\r\n <alice@acme.example>\r\n" {
		t.Fatalf("From raw %q", fields[0].Raw)
	}
	if got := fields[2].Value(); got != "folded" {
		t.Fatalf("X-Empty value %q", got)
	}
	if msg[body:] != "body\r\n" {
		t.Fatalf("body %q", msg[body:])
	}
	// Header only, no body.
	if fields, body, err := parseHeader([]byte("From: a@b.example\r\n")); err != nil || len(fields) != 1 || body != 19 {
		t.Fatalf("header only: %v %d %v", fields, body, err)
	}
	for _, bad := range []string{
		" starts folded: x\r\n\r\n",
		"no colon here\r\n\r\n",
		": no name\r\n\r\n",
		"Bad Name: x\r\n\r\n",
		"Bad\x7fName: x\r\n\r\n",
	} {
		if _, _, err := parseHeader([]byte(bad)); !errors.Is(err, errBadHeader) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestFromAddresses(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   []string
		err    error
	}{
		{"From: alice@acme.example\r\n", []string{"alice@acme.example"}, nil},
		{"From: \"Alice, A.\" <alice@acme.example>\r\n", []string{"alice@acme.example"}, nil},
		{"from: =?windows-1252?q?Ren=E9?= <rene@acme.example>\r\n", []string{"rene@acme.example"}, nil},
		{"From: =?x-unknown?b?AAAA?= <a@acme.example>\r\n", []string{"a@acme.example"}, nil},
		{"From: Rén <rene@acme.example>\r\n", []string{"rene@acme.example"}, nil},
		{"From: a@acme.example, b@acme.example\r\n", []string{"a@acme.example", "b@acme.example"}, nil},
		{"To: x@example.com\r\n", nil, errNoFrom},
		{"From: a@acme.example\r\nFROM: b@acme.example\r\n", nil, errMultipleFrom},
		{"From: undisclosed:;\r\n", nil, errBadFrom},
		{"From: \r\n", nil, errBadFrom},
		{"From: not an address\r\n", nil, errBadFrom},
	} {
		fields, _, err := parseHeader([]byte(tc.header + "\r\n"))
		if err != nil {
			t.Fatalf("%q: %v", tc.header, err)
		}
		got, err := fromAddresses(fields)
		if !slices.Equal(got, tc.want) || !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
			t.Errorf("%q: %q %v, want %q %v", tc.header, got, err, tc.want, tc.err)
		}
	}
}

func TestReceivedField(t *testing.T) {
	at := time.Date(2026, 11, 25, 13, 4, 0, 0, time.UTC)
	for _, tc := range []struct {
		info traceInfo
		want string
	}{
		{traceInfo{Helo: "client.example", IP: netip.MustParseAddr("192.0.2.1"), Hostname: "mx.example.net", TLS: true, Auth: true, ID: "0123456789abcdef", Time: at},
			"Received: from client.example ([192.0.2.1])\r\n\tby mx.example.net with ESMTPSA id 0123456789abcdef;\r\n\tWed, 25 Nov 2026 13:04:00 +0000\r\n"},
		{traceInfo{Helo: "evil\r\nBcc: x (y)", IP: netip.MustParseAddr("2001:db8::1"), Hostname: "mx", TLS: true, ID: "1", Time: at},
			"Received: from evil__Bcc:_x__y_ ([IPv6:2001:db8::1])\r\n\tby mx with ESMTPS id 1;\r\n\tWed, 25 Nov 2026 13:04:00 +0000\r\n"},
		{traceInfo{IP: netip.MustParseAddr("::ffff:127.0.0.1"), Hostname: "mx", ID: "2", Time: at},
			"Received: from unknown ([127.0.0.1])\r\n\tby mx with ESMTP id 2;\r\n\tWed, 25 Nov 2026 13:04:00 +0000\r\n"},
	} {
		if got := receivedField(tc.info); got != tc.want {
			t.Errorf("got\n%q\nwant\n%q", got, tc.want)
		}
		fields, _, err := parseHeader([]byte(receivedField(tc.info) + "\r\n"))
		if err != nil || len(fields) != 1 {
			t.Errorf("Received does not parse back: %v", err)
		}
	}
	if f := messageIDField("mx.test"); !strings.HasPrefix(f, "Message-ID: <") || !strings.HasSuffix(f, "@mx.test>\r\n") || f == messageIDField("mx.test") {
		t.Fatalf("Message-ID %q", f)
	}
	if f := dateField(at); f != "Date: Wed, 25 Nov 2026 13:04:00 +0000\r\n" {
		t.Fatalf("Date %q", f)
	}
}

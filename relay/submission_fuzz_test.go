package relay

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"fairway/tenant"
)

// FuzzSubmissionSession feeds arbitrary client bytes to a real submission
// session over loopback and checks that the server never panics, answers
// every session with its greeting, answers anything that holds a command
// line, writes only well-formed reply lines, and ends the session when the
// client does. 127.0.0.1 is a client network of tenant globex, so the
// fuzzer reaches MAIL, RCPT, DATA and BDAT without TLS.
func FuzzSubmissionSession(f *testing.F) {
	plain := func(user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	}
	for _, seed := range []string{
		"EHLO client.test\r\nMAIL FROM:<app@globex.example>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n" +
			"From: <app@globex.example>\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO client.test\r\nMAIL FROM:<app@globex.example> SIZE=100\r\nRCPT TO:<a@example.com>\r\n" +
			"BDAT 36 LAST\r\nFrom: <app@globex.example>\r\n\r\nhello\r\nQUIT\r\n",
		"EHLO client.test\r\nMAIL FROM:<app@globex.example>\r\nRCPT TO:<a@example.com>\r\nBDAT 10\r\n0123456789RSET\r\nQUIT\r\n",
		"EHLO client.test\r\nAUTH PLAIN " + plain(subAlice, subPassword) + "\r\nAUTH LOGIN\r\n*\r\nQUIT\r\n",
		"EHLO client.test\r\nAUTH CRAM-MD5\r\nAUTH\r\nAUTH PLAIN ====\r\n",
		"EHLO client.test\r\nMAIL FROM:<>\r\nMAIL FROM:<alice@acme.example>\r\nMAIL FROM:<app@globex.example>\r\nMAIL FROM:<app@globex.example>\r\n",
		"EHLO client.test\r\nMAIL FROM:<app@globex.example>\r\nRCPT TO:<@a:b@c>\r\nRCPT TO:<a%b@c>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n" +
			"From: <alice@acme.example>\r\n\r\nbare\nLF\r\n.\r\n",
		"EHLO client.test\r\nMAIL FROM:<app@globex.example>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n\r\n.\r\n",
		"EHLO client.test\r\nMAIL FROM:<app@globex.example>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nFrom: =?utf-8?q?=FF?= <app@globex.example>\r\n\x00\r\n",
		"HELO x\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello\r\nNOOP\r\n",
		"\r\n\r\n\r\n\r\n\r\n",
		"EHLO " + string(bytes.Repeat([]byte("a"), 3000)) + "\r\n",
		"VRFY root\r\nEXPN staff\r\nHELP\r\nTURN\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		"\xff\xfe\x00garbage",
		// Found by this target: go-smtp's BDAT goroutine meets a nil session
		// when the client ends after an empty first chunk (bdatRacePanic).
		"EHLO x\r\nMAIL FROM:<app@globex.example>\r\nRCPT TO:<a@example.com>\r\nBDAT 0\r\n",
		"EHLO x\r\nMAIL FROM:<app@globex.example>\r\nRCPT TO:<a@example.com>\r\nBDAT 0\r\nSTARTTLS\r\n",
	} {
		f.Add([]byte(seed))
	}

	// Warnings and errors only: the log is kept for the whole run.
	e := newSubEnv(f, subEnvConfig{logLevel: slog.LevelWarn, options: func(o *SubmissionOptions) {
		o.MaxMessageBytes = 64 << 10
		o.MaxConnsPerIP = 1000
		o.CommandTimeout = 10 * time.Second
		o.DataTimeout = 10 * time.Second
	}})
	e.policy("globex", func(p *tenant.Policy) { p.Networks = []netip.Prefix{loopback} })
	replyLine := regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

	f.Fuzz(func(t *testing.T, input []byte) {
		panics := gatherCounter(t, e.reg, "fairway_submission_panics_total", nil)
		conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		out := make(chan []byte, 1)
		go func() { // read while writing, so neither side blocks the other
			b, _ := io.ReadAll(conn)
			out <- b
		}()
		conn.Write(input)
		conn.(*net.TCPConn).CloseWrite()
		var got []byte
		select {
		case got = <-out:
		case <-time.After(30 * time.Second):
			t.Fatal("no end of session")
		}

		sc := bufio.NewScanner(bytes.NewReader(got))
		sc.Buffer(nil, 1<<20)
		lines := 0
		for sc.Scan() {
			line := sc.Text()
			if !replyLine.MatchString(line) {
				t.Fatalf("malformed reply line %q in:\n%s", line, got)
			}
			if lines == 0 && !bytes.HasPrefix([]byte(line), []byte("220 ")) {
				t.Fatalf("no greeting: %q", line)
			}
			lines++
		}
		if lines == 0 {
			t.Fatalf("no greeting at all (output %q)", got)
		}
		if bytes.IndexByte(input, '\n') >= 0 && lines < 2 {
			t.Fatalf("a command line got no reply:\ninput %q\noutput %q", input, got)
		}
		// A panic may be logged just after the session ended, so one can
		// show up in the next input; the log has the stack either way.
		if n := gatherCounter(t, e.reg, "fairway_submission_panics_total", nil); n != panics {
			t.Fatalf("%v panics; log:\n%s", n-panics, e.logs.String())
		}
	})
}

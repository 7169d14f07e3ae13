package inbound

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"fairway/tenant"
)

// FuzzMXSession feeds arbitrary client bytes to a real MX session over
// loopback and checks that the server never panics, greets every session,
// answers anything that holds a command line, writes only well-formed
// reply lines, and ends the session when the client does.
func FuzzMXSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO client.test\r\nMAIL FROM:<x@good.example>\r\nRCPT TO:<alice@acme.example>\r\nDATA\r\n" +
			"From: <x@good.example>\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO client.test\r\nMAIL FROM:<> SIZE=100\r\nRCPT TO:<sales@acme.example>\r\n" +
			"BDAT 36 LAST\r\nFrom: <x@quar.example>\r\n\r\nhello\r\nQUIT\r\n",
		"EHLO client.test\r\nMAIL FROM:<x@good.example>\r\nRCPT TO:<alice@acme.example>\r\nBDAT 10\r\n0123456789RSET\r\nQUIT\r\n",
		"EHLO client.test\r\nAUTH PLAIN AGFAYgBj\r\nAUTH LOGIN\r\nAUTH\r\n",
		"EHLO client.test\r\nMAIL FROM:<a>\r\nMAIL FROM:<x@good.example>\r\nMAIL FROM:<x@good.example>\r\n",
		"EHLO client.test\r\nMAIL FROM:<x@good.example>\r\nRCPT TO:<@a:b@c>\r\nRCPT TO:<a%b@acme.example>\r\n" +
			"RCPT TO:<\"a@b\"@acme.example>\r\nRCPT TO:<fwd@acme.example>\r\nRCPT TO:<dmarc-reports@mx.fairway.test>\r\nDATA\r\n" +
			"From: <x@reject.example>\r\nAuthentication-Results: mx.fairway.test; spf=pass\r\n\r\nbare\nLF\r\n.\r\n",
		"EHLO client.test\r\nMAIL FROM:<x@good.example>\r\nRCPT TO:<carol@globex.example>\r\nDATA\r\n" +
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=a.exe\r\n\r\nMZ\r\n--b--\r\n.\r\n",
		"HELO x\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello\r\nNOOP\r\n",
		"\r\n\r\n\r\n",
		"VRFY root\r\nEXPN staff\r\nHELP\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		"\xff\xfe\x00garbage",
		"EHLO x\r\nMAIL FROM:<x@good.example>\r\nRCPT TO:<alice@acme.example>\r\nBDAT 0\r\n",
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, envConfig{logLevel: slog.LevelWarn, options: func(o *MXOptions) {
		o.MaxMessageBytes = 64 << 10
		o.MaxConnsPerIP = 1000
	}})
	replyLine := regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

	f.Fuzz(func(t *testing.T, input []byte) {
		panics := counter(t, e.reg, "fairway_inbound_panics_total", nil)
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
		if n := counter(t, e.reg, "fairway_inbound_panics_total", nil); n != panics {
			t.Fatalf("%v panics; log:\n%s", n-panics, e.logs.String())
		}
	})
}

// FuzzSplitHeader: the header splitter never panics, loses or invents
// bytes: fields and rest put together are the input.
func FuzzSplitHeader(f *testing.F) {
	for _, seed := range []string{
		"A: 1\r\nB: 2\r\n\r\nbody", "A: 1\n b\n\nx", " leading\r\n", "no colon\r\n\r\n", "A:\r\n", "",
		"Authentication-Results: mx.fairway.test; spf=pass\r\n\r\n", ":empty name\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, rest := splitHeader(msg)
		if got := rebuild("", fields, rest, nil); !bytes.Equal(got, msg) {
			t.Fatalf("rebuilt %q from %q", got, msg)
		}
		for _, fl := range fields {
			_ = fl.value()
			ourAuthResults(fl, testHost)
		}
	})
}

// FuzzAttachmentNames: the MIME walk of the attachment rule never panics
// and stays within its part bound on any input.
func FuzzAttachmentNames(f *testing.F) {
	for _, seed := range []string{
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=a.exe\r\n\r\nx\r\n--b--\r\n",
		"Content-Type: message/rfc822\r\n\r\nContent-Type: text/plain; name=\"=?utf-8?b?YS5qcw==?=\"\r\n\r\nx",
		"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
		"Content-Disposition: attachment; filename*=UTF-8''%ZZ\r\n\r\n",
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if names := attachmentNames(msg); len(names) > maxMIMEParts*4 {
			t.Fatalf("%d names", len(names))
		}
	})
}

// FuzzSplitRecipient: whatever a client writes in RCPT TO, an address that
// passes is a plain local@domain in stored form, with no routing
// characters left.
func FuzzSplitRecipient(f *testing.F) {
	for _, seed := range []string{
		"alice@acme.example", "a%b@acme.example", "a!b@c.example", "a@b@c.example", "a@c.example.", "a@[1.2.3.4]",
		"\"a b\"@c.example", "A@ÄCME.example", "a@xn--cme-pla.example", "@c.example", "a@", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		addr, dom, err := splitRecipient(raw)
		if err != nil {
			return
		}
		if strings.Count(addr, "@") != 1 || strings.ContainsAny(addr, "%!\"[] ") || domainOf(addr) != dom {
			t.Fatalf("%q passed as %q (domain %q)", raw, addr, dom)
		}
		if n, err := tenant.NormalizeAddress(addr); err != nil || n != addr {
			t.Fatalf("%q passed as %q, not in stored form (%q, %v)", raw, addr, n, err)
		}
	})
}

package inbound

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

// Header handling of received messages: the raw header split into fields
// (kept byte for byte, so that DKIM signatures still verify downstream),
// the From: and Authentication-Results fields found, and the trace fields
// inbound adds.

// maxHeaderFields bounds the fields looked at; a header with more is
// still delivered, the rest is body as far as inbound is concerned.
const maxHeaderFields = 1000

// headerField is one field of a message header, raw (with its line breaks).
type headerField struct {
	Name string // as written
	Raw  []byte // the whole field, name to final line break
}

// value is the field's unfolded value.
func (f headerField) value() string {
	_, v, _ := bytes.Cut(f.Raw, []byte{':'})
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	v = bytes.ReplaceAll(v, []byte("\n"), nil)
	return strings.TrimSpace(string(v))
}

// splitHeader splits msg into its header fields and the rest (the blank
// line and the body). Lines that are neither a field nor a continuation end
// the header (the rest is body). It never fails.
func splitHeader(msg []byte) (fields []headerField, rest []byte) {
	i := 0
	for i < len(msg) && len(fields) < maxHeaderFields {
		lineEnd := bytes.IndexByte(msg[i:], '\n')
		var line []byte
		if lineEnd < 0 {
			line = msg[i:]
		} else {
			line = msg[i : i+lineEnd+1]
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			break // the blank line: body follows
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			if len(fields) == 0 {
				break
			}
			f := &fields[len(fields)-1]
			f.Raw = msg[i-len(f.Raw) : i+len(line)]
			i += len(line)
			continue
		}
		colon := bytes.IndexByte(trimmed, ':')
		if colon <= 0 || !validFieldName(trimmed[:colon]) {
			break
		}
		fields = append(fields, headerField{Name: string(trimmed[:colon]), Raw: line})
		i += len(line)
	}
	return fields, msg[i:]
}

// validFieldName: printable ASCII except ':' and space (RFC 5322 §3.6.8).
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// fieldValues returns the unfolded values of the fields named name.
func fieldValues(fields []headerField, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.value())
		}
	}
	return out
}

// ourAuthResults reports whether an Authentication-Results field claims to
// come from hostname: such a field arriving from outside is a forgery and
// is removed (RFC 8601 §5).
func ourAuthResults(f headerField, hostname string) bool {
	if !strings.EqualFold(f.Name, "Authentication-Results") {
		return false
	}
	v := f.value()
	id, _, err := authres.Parse(v)
	if err != nil || id == "" {
		// Unparsable: judge by the first token, comments skipped.
		id = firstToken(v)
	}
	return strings.EqualFold(strings.TrimSuffix(id, "."), hostname)
}

// firstToken is the first word of v before ';' or white space, outside
// parenthesized comments.
func firstToken(v string) string {
	depth := 0
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == ';' || c == ' ' || c == '\t':
			if b.Len() > 0 {
				return b.String()
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// rebuild writes the added fields, then the original fields except those
// drop refuses, then the rest.
func rebuild(added string, fields []headerField, rest []byte, drop func(headerField) bool) []byte {
	n := len(added) + len(rest)
	for _, f := range fields {
		n += len(f.Raw)
	}
	out := make([]byte, 0, n)
	out = append(out, added...)
	for _, f := range fields {
		if drop != nil && drop(f) {
			continue
		}
		out = append(out, f.Raw...)
	}
	return append(out, rest...)
}

// traceInfo is what a Received field records.
type traceInfo struct {
	Helo     string
	IP       netip.Addr
	Hostname string
	TLS      bool
	ID       string
	For      string // the recipient, when there is one
	Time     time.Time
}

// receivedField is the Received field inbound adds (RFC 5321 §4.4).
func receivedField(t traceInfo) string {
	with := "ESMTP"
	if t.TLS {
		with = "ESMTPS"
	}
	helo := echoSafe(t.Helo)
	if helo == "" {
		helo = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s with %s id %s", strings.ReplaceAll(helo, " ", ""), t.IP, t.Hostname, with, t.ID)
	if t.For != "" {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", echoSafe(t.For))
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", t.Time.UTC().Format(time.RFC1123Z))
	return b.String()
}

// foldField folds a generated "Name: value" at the spaces after each ';'
// and adds CRLF, keeping lines short (RFC 5322 §2.2.3).
func foldField(s string) string {
	return strings.ReplaceAll(s, "; ", ";\r\n\t") + "\r\n"
}

package relay

import (
	"bytes"
	"crypto/rand"
	"io"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"time"
)

// Message header handling for submission: split the header block into
// fields as received (no rewriting, so DKIM signs what is sent), read the
// From: field, and write the trace and identification fields submission
// adds (Received always; Message-ID and Date when the client left them
// out).

// headerField is one field of a message header as received: its name as
// written and the whole field, continuation lines and final CRLF included.
type headerField struct {
	Name string
	Raw  []byte
}

// Value is the field's unfolded value, trimmed.
func (f headerField) Value() string {
	v := f.Raw[bytes.IndexByte(f.Raw, ':')+1:]
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil) // unfold (RFC 5322 §2.2.3)
	return strings.TrimSpace(string(v))
}

// checkLines refuses what submission will not relay: NUL bytes (RFC 5322
// §2.3 and RFC 6152 exclude them even in 8-bit bodies) and a CR or LF that
// is not part of a CRLF pair. A bare LF is how SMTP smuggling hides a second
// message ("\n.\r\n" ends the data for some receivers), so it is refused
// rather than passed on to the next hop.
func checkLines(msg []byte) error {
	if bytes.IndexByte(msg, 0) >= 0 {
		return errNULInMessage
	}
	for i := 0; i < len(msg); {
		j := bytes.IndexAny(msg[i:], "\r\n")
		if j < 0 {
			break
		}
		i += j
		if msg[i] == '\n' || i+1 >= len(msg) || msg[i+1] != '\n' {
			return errBareNewline
		}
		i += 2
	}
	return nil
}

// parseHeader splits msg (lines ending in CRLF, see checkLines) into its
// header fields and the offset of the body (after the empty line, or
// len(msg) when there is none).
func parseHeader(msg []byte) (fields []headerField, body int, err error) {
	i := 0
	for i < len(msg) {
		if bytes.HasPrefix(msg[i:], []byte("\r\n")) {
			return fields, i + 2, nil
		}
		end := len(msg)
		if j := bytes.Index(msg[i:], []byte("\r\n")); j >= 0 {
			end = i + j + 2
		}
		line := msg[i:end]
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, 0, errBadHeader // continuation of nothing
			}
			last := &fields[len(fields)-1]
			last.Raw = msg[i-len(last.Raw) : end] // the field grows by this line
		} else {
			colon := bytes.IndexByte(line, ':')
			if colon < 0 {
				return nil, 0, errBadHeader
			}
			name := strings.TrimRight(string(line[:colon]), " \t") // obsolete "Name :" (RFC 5322 §4.5)
			if !validFieldName(name) {
				return nil, 0, errBadHeader
			}
			fields = append(fields, headerField{Name: name, Raw: line})
		}
		i = end
	}
	return fields, len(msg), nil
}

// validFieldName: printable US-ASCII except colon (RFC 5322 §3.6.8).
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// hasField reports whether a field named name (any case) is present.
func hasField(fields []headerField, name string) bool {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// addressParser reads address lists without caring for the charset of
// encoded display names (only the addresses matter here), so a display
// name in an unusual charset never makes a From: field unreadable.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// fromAddresses returns the addresses of the message's From: field, which
// must be there exactly once and hold at least one address.
func fromAddresses(fields []headerField) ([]string, error) {
	var from *headerField
	for i := range fields {
		if strings.EqualFold(fields[i].Name, "From") {
			if from != nil {
				return nil, errMultipleFrom
			}
			from = &fields[i]
		}
	}
	if from == nil {
		return nil, errNoFrom
	}
	list, err := addressParser.ParseList(from.Value())
	if err != nil || len(list) == 0 {
		return nil, errBadFrom
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.Address
	}
	return out, nil
}

// traceInfo is what the Received field records of a transaction.
type traceInfo struct {
	Helo     string     // the client's EHLO/HELO argument
	IP       netip.Addr // the client's address
	Hostname string     // ours
	TLS      bool
	Auth     bool
	ID       string // transaction id (the queue id is only known after the write)
	Time     time.Time
}

// protocol is the "with" keyword of RFC 3848.
func (t traceInfo) protocol() string {
	switch {
	case t.TLS && t.Auth:
		return "ESMTPSA"
	case t.TLS:
		return "ESMTPS"
	case t.Auth:
		return "ESMTPA"
	}
	return "ESMTP"
}

// receivedField is the Received: trace field (RFC 5321 §4.4), folded:
//
//	Received: from client.example ([192.0.2.1])
//		by mx.example.net with ESMTPSA id 0123456789abcdef;
//		Wed, 25 Nov 2026 13:04:00 +0000
//
// It names the client's address and EHLO name but never the user.
func receivedField(t traceInfo) string {
	ip := "unknown"
	if t.IP.IsValid() {
		ip = t.IP.Unmap().String()
		if t.IP.Unmap().Is6() {
			ip = "IPv6:" + ip
		}
	}
	return "Received: from " + heloToken(t.Helo) + " ([" + ip + "])\r\n" +
		"\tby " + t.Hostname + " with " + t.protocol() + " id " + t.ID + ";\r\n" +
		"\t" + t.Time.Format(time.RFC1123Z) + "\r\n"
}

// heloToken keeps the client's EHLO argument to characters that cannot
// break the Received field: letters, digits and ".-_:[]"; at most 255.
func heloToken(s string) string {
	const maxLen = 255
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxLen; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// messageIDField makes a Message-ID field (RFC 5322 §3.6.4) unique to this
// server: 26 random base32 characters at the hostname.
func messageIDField(hostname string) string {
	return "Message-ID: <" + rand.Text() + "@" + hostname + ">\r\n"
}

// dateField makes a Date field (RFC 5322 §3.3).
func dateField(now time.Time) string {
	return "Date: " + now.Format(time.RFC1123Z) + "\r\n"
}

package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// StampHeader is the header every generated message carries: its unique id,
// its tenant and the time its submission began, so the sink can tie an
// arrival back to a submission whatever relay carried it.
const StampHeader = "X-Fairway-Bench"

// maxHeaderBytes bounds how much of a message the sink reads looking for the
// stamp; generated messages put it first.
const maxHeaderBytes = 64 << 10

// Stamp identifies one generated message.
type Stamp struct {
	ID     string    // unique in a run: "<run>.<tenant>.<seq>"
	Tenant string    // the generator's tenant name
	Submit time.Time // when the generator opened the transaction
}

// ErrNoStamp is returned by ReadStamp for a message without a bench stamp.
var ErrNoStamp = errors.New("bench: message has no " + StampHeader + " header")

// Header renders the stamp as one header line with CRLF.
func (s Stamp) Header() string {
	return fmt.Sprintf("%s: id=%s; tenant=%s; submit=%d\r\n", StampHeader, s.ID, s.Tenant, s.Submit.UnixNano())
}

// ParseStamp parses the value of a StampHeader line (after the colon).
func ParseStamp(value string) (Stamp, error) {
	var s Stamp
	var haveSubmit bool
	for _, part := range strings.Split(value, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Stamp{}, fmt.Errorf("bench: stamp field %q has no '='", part)
		}
		switch k {
		case "id":
			s.ID = v
		case "tenant":
			s.Tenant = v
		case "submit":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Stamp{}, fmt.Errorf("bench: stamp submit time %q: %w", v, err)
			}
			s.Submit = time.Unix(0, n)
			haveSubmit = true
		}
	}
	if s.ID == "" || !validToken(s.ID) || !validToken(s.Tenant) || !haveSubmit {
		return Stamp{}, fmt.Errorf("bench: stamp %q lacks a valid id, tenant or submit time", value)
	}
	return s, nil
}

// validToken reports whether v is safe inside a stamp: no separators or
// spaces, at most 200 bytes.
func validToken(v string) bool {
	if len(v) > 200 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == ';' || c == '=' {
			return false
		}
	}
	return true
}

// ReadStamp finds the stamp in a message's header section, reading at most
// maxHeaderBytes of r. Folded header lines are not used by the generator
// and are not unfolded here: a relay that folds the stamp breaks it, which
// the sink counts as an unstamped arrival.
func ReadStamp(r io.Reader) (Stamp, error) {
	br := bufio.NewReader(io.LimitReader(r, maxHeaderBytes))
	prefix := []byte(strings.ToLower(StampHeader) + ":")
	for {
		line, err := br.ReadSlice('\n')
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 && (err == nil || len(line) > 0) {
			return Stamp{}, ErrNoStamp // end of the header section
		}
		if len(trimmed) >= len(prefix) && bytes.Equal(bytes.ToLower(trimmed[:len(prefix)]), prefix) {
			return ParseStamp(string(trimmed[len(prefix):]))
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				// A line longer than the buffer: skip the rest of it.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				if err == nil {
					continue
				}
			}
			return Stamp{}, ErrNoStamp
		}
	}
}

// BuildMessage renders a message of about size bytes (at least its header)
// carrying stamp st, from from to to. The body is printable ASCII in
// 76-character lines, so no relay needs to re-encode it.
func BuildMessage(st Stamp, from, to string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 512)
	b.WriteString(st.Header())
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: bench %s\r\nMessage-ID: <%s@bench.invalid>\r\n", from, to, st.ID, st.ID)
	fmt.Fprintf(&b, "Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", st.Submit.UTC().Format(time.RFC1123Z))
	const line = "The quick brown fox jumps over the lazy dog; fairway bench filler 0123456789"
	for b.Len() < size {
		b.WriteString(line[:min(len(line), max(1, size-b.Len()-2))])
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

package fairq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MsgID identifies a message in the queue. IDs increase and start from the
// clock in microseconds, so an ID also dates its message.
type MsgID uint64

// String is the 16-digit hex form used in logs and the admin CLI.
func (id MsgID) String() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[id&0xf]
		id >>= 4
	}
	return string(b[:])
}

// ParseMsgID reads the form String writes.
func ParseMsgID(s string) (MsgID, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("message id %q: want 16 hex digits", s)
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("message id %q: want 16 hex digits", s)
		}
		v = v<<4 | uint64(d)
	}
	return MsgID(v), nil
}

// Key prefixes; see the package doc.
const (
	prefixBody       = 'b'
	prefixDelivery   = 'd'
	prefixHold       = 'h'
	prefixQuarantine = 'x'
	keyVersion       = "v"
	keyLastID        = "n"
	schemaVersion    = "fairq/1"
)

func bodyKey(id MsgID) []byte {
	k := make([]byte, 9)
	k[0] = prefixBody
	binary.BigEndian.PutUint64(k[1:], uint64(id))
	return k
}

const deliveryKeyLen = 11

func deliveryKey(id MsgID, idx uint16) []byte {
	k := make([]byte, deliveryKeyLen)
	k[0] = prefixDelivery
	binary.BigEndian.PutUint64(k[1:], uint64(id))
	binary.BigEndian.PutUint16(k[9:], idx)
	return k
}

func parseDeliveryKey(k []byte) (MsgID, uint16, bool) {
	if len(k) != deliveryKeyLen || k[0] != prefixDelivery {
		return 0, 0, false
	}
	return MsgID(binary.BigEndian.Uint64(k[1:])), binary.BigEndian.Uint16(k[9:]), true
}

func holdKey(tenant string) []byte { return append([]byte{prefixHold}, tenant...) }

// Record is one delivery: a message's recipients at one destination domain,
// with its retry state. It is what a lease hands to a delivery worker.
type Record struct {
	Tenant     string
	From       string // envelope sender; "" for bounces
	Domain     string // destination domain, lower case
	Recipients []string
	Created    time.Time
	// HeldAtCreate is the tenant's hold clock when the message was enqueued.
	HeldAtCreate time.Duration
	Attempts     int
	NextAttempt  time.Time
	LastError    string
	// Extra is opaque envelope data the relay stores with the message (DSN
	// parameters and the like); fairq never interprets it.
	Extra []byte
}

const recordVersion = 1

// Decoding limits: a record is small; anything larger is corruption.
const (
	maxRecordRecipients = 100000
	maxRecordString     = 1 << 20
)

var errCorruptRecord = errors.New("corrupt delivery record")

func (r *Record) encode(dst []byte) []byte {
	dst = append(dst, recordVersion)
	dst = appendString(dst, r.Tenant)
	dst = appendString(dst, r.From)
	dst = appendString(dst, r.Domain)
	dst = binary.AppendVarint(dst, r.Created.UnixMicro())
	dst = binary.AppendVarint(dst, int64(r.HeldAtCreate))
	dst = binary.AppendUvarint(dst, uint64(r.Attempts))
	dst = binary.AppendVarint(dst, r.NextAttempt.UnixMicro())
	dst = appendString(dst, r.LastError)
	dst = appendString(dst, string(r.Extra))
	dst = binary.AppendUvarint(dst, uint64(len(r.Recipients)))
	for _, rc := range r.Recipients {
		dst = appendString(dst, rc)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// recordDecoder reads a record; the first error sticks.
type recordDecoder struct {
	b   []byte
	err error
}

func (d *recordDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errCorruptRecord, what)
	}
}

func (d *recordDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) str(what string) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > maxRecordString || n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func decodeRecord(b []byte) (*Record, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return nil, fmt.Errorf("%w: unknown version", errCorruptRecord)
	}
	d := recordDecoder{b: b[1:]}
	r := &Record{}
	r.Tenant = d.str("tenant")
	r.From = d.str("sender")
	r.Domain = d.str("domain")
	r.Created = time.UnixMicro(d.varint("created"))
	r.HeldAtCreate = time.Duration(d.varint("hold clock"))
	attempts := d.uvarint("attempts")
	r.NextAttempt = time.UnixMicro(d.varint("next attempt"))
	r.LastError = d.str("last error")
	if extra := d.str("extra"); extra != "" {
		r.Extra = []byte(extra)
	}
	n := d.uvarint("recipient count")
	if d.err == nil && (n == 0 || n > maxRecordRecipients || n > uint64(len(d.b))) {
		d.fail("recipient count")
	}
	if d.err != nil {
		return nil, d.err
	}
	if attempts > 1<<20 {
		return nil, fmt.Errorf("%w: bad attempts", errCorruptRecord)
	}
	r.Attempts = int(attempts)
	r.Recipients = make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		r.Recipients = append(r.Recipients, d.str("recipient"))
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorruptRecord, len(d.b))
	}
	if r.Tenant == "" || r.Domain == "" {
		return nil, fmt.Errorf("%w: empty tenant or domain", errCorruptRecord)
	}
	return r, nil
}

// holdState is a tenant's hold clock as stored under h<tenant>: the total
// time held before the current hold, and when the current hold began (zero
// when not held).
type holdState struct {
	total time.Duration
	since time.Time // zero: not held
}

func (h holdState) held() bool { return !h.since.IsZero() }

// clock is H(t): the total time the tenant has been held up to t.
func (h holdState) clock(t time.Time) time.Duration {
	if h.held() && t.After(h.since) {
		return h.total + t.Sub(h.since)
	}
	return h.total
}

func (h holdState) encode() []byte {
	b := []byte{1}
	b = binary.AppendVarint(b, int64(h.total))
	var since int64
	if h.held() {
		since = h.since.UnixMicro()
	}
	return binary.AppendVarint(b, since)
}

func decodeHold(b []byte) (holdState, error) {
	if len(b) == 0 || b[0] != 1 {
		return holdState{}, errors.New("corrupt hold record: unknown version")
	}
	d := recordDecoder{b: b[1:]}
	total := d.varint("hold total")
	since := d.varint("hold start")
	if d.err != nil || len(d.b) != 0 || total < 0 {
		return holdState{}, errors.New("corrupt hold record")
	}
	h := holdState{total: time.Duration(total)}
	if since != 0 {
		h.since = time.UnixMicro(since)
	}
	return h, nil
}

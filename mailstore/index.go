package mailstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// Pebble keys of the index (see doc.go).
const (
	keyFolderName = "N\x00" // N\0<address>\0<folder name> -> folder id (4 bytes)
	keyFolderMeta = "M\x00" // M\0<folder id>               -> folderMeta
	keyMessage    = "I\x00" // I\0<folder id><uid>          -> message record
	keyLastIDs    = "C\x00" // C\0 -> last folder id (4) + last UIDVALIDITY (4)
)

func nameKey(addr, folder string) []byte {
	return []byte(keyFolderName + addr + "\x00" + folder)
}

func metaKey(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(keyFolderMeta), id)
}

func msgPrefix(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(keyMessage), id)
}

func msgKey(id, uid uint32) []byte {
	return binary.BigEndian.AppendUint32(msgPrefix(id), uid)
}

// folderMeta is a folder's persistent state.
type folderMeta struct {
	UIDValidity uint32
	UIDNext     uint32
	Count       uint32
	Bytes       int64
	Subscribed  bool
	// Modification times (Unix ns) of new/ and cur/ when the index last
	// matched the files: equal times on load mean no rescan is needed.
	NewMtime, CurMtime int64
}

func (m folderMeta) encode() []byte {
	b := []byte{1}
	b = binary.AppendUvarint(b, uint64(m.UIDValidity))
	b = binary.AppendUvarint(b, uint64(m.UIDNext))
	b = binary.AppendUvarint(b, uint64(m.Count))
	b = binary.AppendVarint(b, m.Bytes)
	if m.Subscribed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendVarint(b, m.NewMtime)
	return binary.AppendVarint(b, m.CurMtime)
}

var errCorrupt = errors.New("mailstore: corrupt index record")

func decodeMeta(b []byte) (folderMeta, error) {
	d := decoder{b: b}
	if d.byte() != 1 {
		return folderMeta{}, errCorrupt
	}
	m := folderMeta{
		UIDValidity: uint32(d.uvarint()),
		UIDNext:     uint32(d.uvarint()),
		Count:       uint32(d.uvarint()),
		Bytes:       d.varint(),
		Subscribed:  d.byte() == 1,
	}
	if d.err {
		return folderMeta{}, errCorrupt
	}
	m.NewMtime, m.CurMtime = d.varint(), d.varint()
	if d.err {
		m.NewMtime, m.CurMtime = 0, 0 // unknown: rescan
	}
	return m, nil
}

// message is what the index keeps of one message: enough to answer
// FETCH FLAGS INTERNALDATE RFC822.SIZE ENVELOPE, SEARCH by flag, date and
// size, and to find the file.
type message struct {
	uid      uint32
	base     string // Maildir unique name, without the ":2," info
	inCur    bool   // in cur/ (else new/)
	flags    uint8  // Maildir flags, mirrored in the file name
	keywords []string
	date     int64  // INTERNALDATE, Unix nanoseconds
	size     int64  // RFC822.SIZE (of the CRLF form served)
	env      []byte // encodeEnvelope
}

func (m *message) fileName() string {
	if !m.inCur {
		return m.base
	}
	return m.base + infoString(m.flags)
}

func (m *message) relPath() string {
	if m.inCur {
		return "cur/" + m.fileName()
	}
	return "new/" + m.base
}

func (m *message) encode() []byte {
	b := make([]byte, 0, 32+len(m.base)+len(m.env))
	b = append(b, 1, m.flags)
	if m.inCur {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendVarint(b, m.date)
	b = binary.AppendVarint(b, m.size)
	b = appendString(b, m.base)
	b = binary.AppendUvarint(b, uint64(len(m.keywords)))
	for _, k := range m.keywords {
		b = appendString(b, k)
	}
	return append(b, m.env...)
}

func decodeMessage(uid uint32, b []byte) (*message, error) {
	m := &message{}
	if err := decodeMessageInto(m, uid, b); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeMessageInto decodes a record into m; m.env aliases b.
func decodeMessageInto(m *message, uid uint32, b []byte) error {
	d := decoder{b: b}
	if d.byte() != 1 {
		return errCorrupt
	}
	m.uid, m.flags, m.inCur = uid, d.byte(), d.byte() == 1
	m.date = d.varint()
	m.size = d.varint()
	m.base = d.string()
	n := d.uvarint()
	if n > 64 {
		return errCorrupt
	}
	for i := uint64(0); i < n && !d.err; i++ {
		m.keywords = append(m.keywords, d.string())
	}
	if d.err || m.base == "" || m.size < 0 {
		return errCorrupt
	}
	m.env = d.b
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the index's varint encoding; any overrun sets err.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// encodeEnvelope parses a message's header into the compact envelope the
// index keeps. Unparsable headers give an empty envelope, never an error:
// the message is stored as it came.
func encodeEnvelope(header []byte) []byte {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(header)))
	if err != nil && h.Len() == 0 {
		return nil
	}
	env := imapserver.ExtractEnvelope(h)
	var b []byte
	if env.Date.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		_, off := env.Date.Zone()
		b = binary.AppendVarint(b, env.Date.Unix())
		b = binary.AppendVarint(b, int64(off))
	}
	b = appendString(b, env.Subject)
	b = appendString(b, env.MessageID)
	b = binary.AppendUvarint(b, uint64(len(env.InReplyTo)))
	for _, s := range env.InReplyTo {
		b = appendString(b, s)
	}
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, a := range l {
			b = appendString(b, a.Name)
			b = appendString(b, a.Mailbox)
			b = appendString(b, a.Host)
		}
	}
	return b
}

// decodeEnvelope is encodeEnvelope's inverse; nil on a corrupt record.
func decodeEnvelope(b []byte) *imap.Envelope {
	if len(b) == 0 {
		return &imap.Envelope{}
	}
	d := decoder{b: b}
	env := &imap.Envelope{}
	if d.byte() == 1 {
		sec, off := d.varint(), d.varint()
		if off > -86400 && off < 86400 {
			env.Date = time.Unix(sec, 0).In(time.FixedZone("", int(off)))
		}
	}
	env.Subject = d.string()
	env.MessageID = d.string()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil
	}
	for i := uint64(0); i < n && !d.err; i++ {
		env.InReplyTo = append(env.InReplyTo, d.string())
	}
	for _, l := range []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc} {
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return nil
		}
		for i := uint64(0); i < n && !d.err; i++ {
			*l = append(*l, imap.Address{Name: d.string(), Mailbox: d.string(), Host: d.string()})
		}
	}
	if d.err {
		return nil
	}
	return env
}

package dmarcreport

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"path"
	"strings"
)

// ExtractLimits bound what extraction reads and inflates.
type ExtractLimits struct {
	// MaxFileBytes bounds one report document after decompression.
	MaxFileBytes int64
	// MaxTotalBytes bounds all documents of one message after
	// decompression.
	MaxTotalBytes int64
	// MaxZipFiles bounds the entries of one zip archive.
	MaxZipFiles int
	// MaxParts bounds the MIME parts walked, MaxDepth their nesting.
	MaxParts, MaxDepth int
}

// Default extraction limits: Google's largest reports are a few MB of XML.
const (
	DefaultMaxFileBytes  = 32 << 20
	DefaultMaxTotalBytes = 64 << 20
	DefaultMaxZipFiles   = 16
	DefaultMaxParts      = 64
	DefaultMaxMIMEDepth  = 8
)

func (l ExtractLimits) withDefaults() ExtractLimits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxZipFiles <= 0 {
		l.MaxZipFiles = DefaultMaxZipFiles
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxMIMEDepth
	}
	return l
}

// Document is one XML report document found in a message.
type Document struct {
	Name string // the attachment's file name, or the zip entry's, for messages and logs
	XML  []byte
}

// Envelope is what Extract reads of the message header, for logs and the
// rejected list.
type Envelope struct {
	From, Subject, MessageID string
}

// Extract finds the report documents in an RFC 5322 message. Its error is
// a *MalformedError when the message is at fault; documents found before a
// bad one are returned with it.
func Extract(message []byte, lim ExtractLimits) (Envelope, []Document, error) {
	lim = lim.withDefaults()
	msg, err := mail.ReadMessage(bytes.NewReader(message))
	if err != nil {
		return Envelope{}, nil, malformed("message header: %v", err)
	}
	env := Envelope{
		From:      truncate(decodeHeader(msg.Header.Get("From")), 200),
		Subject:   truncate(decodeHeader(msg.Header.Get("Subject")), 200),
		MessageID: truncate(strings.TrimSpace(msg.Header.Get("Message-Id")), 200),
	}
	x := &extractor{lim: lim}
	err = x.entity(textproto.MIMEHeader(msg.Header), msg.Body, 0)
	if err == nil && len(x.docs) == 0 {
		err = malformed("no DMARC report in the message: no gzip, zip or XML attachment")
	}
	return env, x.docs, err
}

type extractor struct {
	lim   ExtractLimits
	docs  []Document
	parts int
	total int64
}

// entity walks one MIME entity: a multipart's parts, or a leaf.
func (x *extractor) entity(h textproto.MIMEHeader, body io.Reader, depth int) error {
	x.parts++
	if x.parts > x.lim.MaxParts {
		return malformed("more than %d MIME parts", x.lim.MaxParts)
	}
	ct, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		ct, params = "text/plain", nil // RFC 2045 §5.2 default; a name may still say more
	}
	if strings.HasPrefix(ct, "multipart/") {
		if depth >= x.lim.MaxDepth {
			return malformed("MIME parts nested deeper than %d", x.lim.MaxDepth)
		}
		boundary := params["boundary"]
		if boundary == "" {
			return malformed("%s without a boundary", ct)
		}
		mr := multipart.NewReader(body, boundary)
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return malformed("MIME: %v", err)
			}
			if err := x.entity(p.Header, p, depth+1); err != nil {
				return err
			}
		}
	}
	name := fileName(h, params)
	kind := kindOf(ct, name)
	if kind == kindNone {
		return nil
	}
	data, err := readAll(decodeTransfer(h.Get("Content-Transfer-Encoding"), body), x.lim.MaxTotalBytes)
	if err != nil {
		return malformed("attachment %q: %v", name, err)
	}
	return x.file(name, data, kind)
}

type fileKind int

const (
	kindNone  fileKind = iota
	kindMaybe          // octet-stream and the like: decided by magic bytes
	kindGzip
	kindZip
	kindXML
)

// kindOf tells from the content type and file name whether a leaf may be a
// report. The bytes decide in the end (see sniff).
func kindOf(ct, name string) fileKind {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".gz"), strings.HasSuffix(lower, ".gzip"):
		return kindGzip
	case strings.HasSuffix(lower, ".zip"):
		return kindZip
	case strings.HasSuffix(lower, ".xml"):
		return kindXML
	}
	switch ct {
	case "application/gzip", "application/x-gzip", "application/gzip-compressed", "application/x-gzip-compressed":
		return kindGzip
	case "application/zip", "application/x-zip-compressed", "application/x-zip", "application/zip-compressed":
		return kindZip
	case "text/xml", "application/xml":
		return kindXML
	case "application/octet-stream", "application/x-compressed", "application/download":
		return kindMaybe
	}
	return kindNone
}

// sniff tells a file's kind from its first bytes, or kindNone.
func sniff(data []byte) fileKind {
	switch {
	case len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b:
		return kindGzip
	case bytes.HasPrefix(data, []byte("PK\x03\x04")), bytes.HasPrefix(data, []byte("PK\x05\x06")):
		return kindZip
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(t) > 0 && t[0] == '<' {
		return kindXML
	}
	return kindNone
}

// file takes one attachment: its bytes decide what it is, whatever it was
// labelled (reporters mislabel), but a labelled file that is none of the
// three is an error.
func (x *extractor) file(name string, data []byte, labelled fileKind) error {
	kind := sniff(data)
	if kind == kindNone {
		if labelled == kindMaybe {
			return nil // some other binary attachment
		}
		return malformed("attachment %q: neither gzip, zip nor XML", name)
	}
	switch kind {
	case kindGzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return malformed("attachment %q: gzip: %v", name, err)
		}
		xmlData, err := x.inflate(zr)
		if err != nil {
			return malformed("attachment %q: gzip: %v", name, err)
		}
		return x.add(strings.TrimSuffix(name, path.Ext(name)), xmlData)
	case kindZip:
		return x.unzip(name, data)
	default:
		return x.add(name, data)
	}
}

func (x *extractor) unzip(name string, data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return malformed("attachment %q: zip: %v", name, err)
	}
	if len(zr.File) > x.lim.MaxZipFiles {
		return malformed("attachment %q: zip holds %d files, more than %d", name, len(zr.File), x.lim.MaxZipFiles)
	}
	found := false
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return malformed("attachment %q: zip entry %q: %v", name, truncate(f.Name, 100), err)
		}
		xmlData, err := x.inflate(rc)
		rc.Close()
		if err != nil {
			return malformed("attachment %q: zip entry %q: %v", name, truncate(f.Name, 100), err)
		}
		if sniff(xmlData) != kindXML {
			return malformed("attachment %q: zip entry %q is not XML", name, truncate(f.Name, 100))
		}
		if err := x.add(f.Name, xmlData); err != nil {
			return err
		}
		found = true
	}
	if !found {
		return malformed("attachment %q: empty zip", name)
	}
	return nil
}

// inflate reads a decompressing reader to its end, counting the bytes it
// actually yields against the per-file and per-message caps.
func (x *extractor) inflate(r io.Reader) ([]byte, error) {
	limit := min(x.lim.MaxFileBytes, x.lim.MaxTotalBytes-x.total)
	data, err := readAll(r, limit)
	if err != nil {
		return nil, err
	}
	return data, nil
}

func (x *extractor) add(name string, data []byte) error {
	x.total += int64(len(data))
	if x.total > x.lim.MaxTotalBytes {
		return malformed("reports of the message over %d bytes in all", x.lim.MaxTotalBytes)
	}
	if int64(len(data)) > x.lim.MaxFileBytes {
		return malformed("report %q over %d bytes", name, x.lim.MaxFileBytes)
	}
	x.docs = append(x.docs, Document{Name: truncate(name, 200), XML: data})
	return nil
}

// errTooBig is readAll's answer to more than its limit.
type errTooBig int64

func (e errTooBig) Error() string { return fmt.Sprintf("more than %d bytes (decompressed)", int64(e)) }

// readAll reads r to its end, failing past limit bytes.
func readAll(r io.Reader, limit int64) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooBig(limit)
	}
	return data, nil
}

// decodeTransfer undoes a Content-Transfer-Encoding.
func decodeTransfer(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &base64Cleaner{r: bufio.NewReader(r)})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// base64Cleaner drops the line ends and blanks that base64 bodies carry
// (and that base64.NewDecoder skips only as \r and \n).
type base64Cleaner struct{ r *bufio.Reader }

func (c *base64Cleaner) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		p[n] = b
		n++
	}
	return n, nil
}

// fileName is an attachment's name: Content-Disposition filename, else
// Content-Type name; RFC 2047 words decoded.
func fileName(h textproto.MIMEHeader, ctParams map[string]string) string {
	name := ""
	if _, p, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil {
		name = p["filename"]
	}
	if name == "" {
		name = ctParams["name"]
	}
	return truncate(decodeHeader(name), 200)
}

var wordDecoder = mime.WordDecoder{}

func decodeHeader(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

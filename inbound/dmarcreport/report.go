package dmarcreport

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Report is one aggregate report as stored: the reporter's metadata, the
// policy it saw published, and its records.
type Report struct {
	Org       string    `json:"org"`
	Email     string    `json:"email,omitempty"`
	ReportID  string    `json:"report_id"`
	Begin     time.Time `json:"begin"`
	End       time.Time `json:"end"`
	Domain    string    `json:"domain"` // <policy_published><domain>, lower case
	Policy    Policy    `json:"policy"`
	Records   []Record  `json:"records"`
	Tenant    string    `json:"tenant,omitempty"`    // set on intake
	Received  time.Time `json:"received,omitzero"`   // set on intake
	FileName  string    `json:"file_name,omitempty"` // the attachment it came in
	MessageID string    `json:"message_id,omitempty"`
}

// Policy is <policy_published>.
type Policy struct {
	ADKIM string `json:"adkim,omitempty"` // "r" or "s"; empty means r
	ASPF  string `json:"aspf,omitempty"`
	P     string `json:"p,omitempty"`
	SP    string `json:"sp,omitempty"`
	Pct   string `json:"pct,omitempty"`
}

// Record is one <record>: a source IP and what the reporter saw of its
// messages.
type Record struct {
	SourceIP     netip.Addr `json:"source_ip"`
	Count        int64      `json:"count"`
	Disposition  string     `json:"disposition"`       // none, quarantine, reject
	DKIM         string     `json:"dkim"`              // policy-evaluated: pass or fail
	SPF          string     `json:"spf"`               // policy-evaluated: pass or fail
	Reasons      []string   `json:"reasons,omitempty"` // policy override reasons
	HeaderFrom   string     `json:"header_from,omitempty"`
	EnvelopeFrom string     `json:"envelope_from,omitempty"`
	DKIMResults  []DKIMAuth `json:"dkim_results,omitempty"`
	SPFResults   []SPFAuth  `json:"spf_results,omitempty"`
}

// DKIMAuth is one <auth_results><dkim>.
type DKIMAuth struct {
	Domain   string `json:"domain"`
	Selector string `json:"selector,omitempty"`
	Result   string `json:"result"`
}

// SPFAuth is one <auth_results><spf>.
type SPFAuth struct {
	Domain string `json:"domain"`
	Scope  string `json:"scope,omitempty"`
	Result string `json:"result"`
}

// DMARCPass reports whether the record passed DMARC: an aligned SPF or DKIM
// pass, as the reporter evaluated it.
func (r Record) DMARCPass() bool { return r.DKIM == "pass" || r.SPF == "pass" }

// ParseLimits bound what ParseReport reads.
type ParseLimits struct {
	MaxRecords int // <record> elements per report
	MaxTokens  int // XML tokens per report
	MaxDepth   int // element nesting
}

// Default parse limits. A real report holds a few to some thousands of
// records of about 40 tokens each at a depth of at most 5.
const (
	DefaultMaxRecords = 100_000
	DefaultMaxTokens  = 5_000_000
	DefaultMaxDepth   = 32
)

func (l ParseLimits) withDefaults() ParseLimits {
	if l.MaxRecords <= 0 {
		l.MaxRecords = DefaultMaxRecords
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = DefaultMaxTokens
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Field limits: real values are host names, addresses and short ids.
const (
	maxFieldLen      = 1024
	maxAuthPerRecord = 64 // auth_results entries kept per record
	maxReasons       = 16
	// maxCount bounds one record's message count, so sums cannot overflow.
	maxCount = 1 << 40
)

// MalformedError is a report that cannot be taken: its reason is kept with
// the rejected message.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return e.Reason }

func malformed(format string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, args...)}
}

// ParseReport parses one aggregate report document. Every error is a
// *MalformedError.
func ParseReport(data []byte, lim ParseLimits) (Report, error) {
	lim = lim.withDefaults()
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	raw := xml.NewDecoder(bytes.NewReader(data))
	raw.CharsetReader = charsetReader
	tr := &boundedTokens{d: raw, maxTokens: lim.MaxTokens, maxDepth: lim.MaxDepth}
	dec := xml.NewTokenDecoder(tr)

	var rep Report
	root, err := firstElement(dec)
	if err != nil {
		return rep, xmlError(err)
	}
	if root.Name.Local != "feedback" {
		return rep, malformed("root element <%s>, want <feedback>", root.Name.Local)
	}
	var (
		meta       xmlMetadata
		pol        xmlPolicy
		haveMeta   bool
		havePolicy bool
	)
	for done := false; !done; {
		tok, err := dec.Token()
		if err != nil {
			return rep, xmlError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "report_metadata":
				err = dec.DecodeElement(&meta, &t)
				haveMeta = true
			case "policy_published":
				err = dec.DecodeElement(&pol, &t)
				havePolicy = true
			case "record":
				if len(rep.Records) >= lim.MaxRecords {
					return rep, malformed("more than %d records", lim.MaxRecords)
				}
				var xr xmlRecord
				if err = dec.DecodeElement(&xr, &t); err == nil {
					var r Record
					if r, err = xr.record(len(rep.Records) + 1); err == nil {
						rep.Records = append(rep.Records, r)
					}
				}
			default: // version, extensions, anything new
				err = dec.Skip()
			}
			if err != nil {
				return rep, xmlError(err)
			}
		case xml.EndElement:
			done = true
		}
	}
	// Nothing but white space, comments and processing instructions may follow.
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, xmlError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return rep, malformed("element <%s> after </feedback>", t.Name.Local)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return rep, malformed("text after </feedback>")
			}
		}
	}
	if !haveMeta {
		return rep, malformed("no <report_metadata>")
	}
	if !havePolicy {
		return rep, malformed("no <policy_published>")
	}
	if err := meta.fill(&rep); err != nil {
		return rep, err
	}
	if err := pol.fill(&rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// xmlError makes a decoding error malformed, keeping a limit's own reason.
func xmlError(err error) error {
	var me *MalformedError
	if errors.As(err, &me) {
		return me
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return malformed("XML: unexpected end of document")
	}
	return malformed("XML: %v", err)
}

// firstElement returns the root element, skipping the prolog.
func firstElement(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return xml.StartElement{}, malformed("no XML element")
			}
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, malformed("text before the root element")
			}
		}
	}
}

// boundedTokens hands the decoder's tokens on, refusing a document with
// more than maxTokens tokens or nested deeper than maxDepth.
type boundedTokens struct {
	d                   *xml.Decoder
	n, depth            int
	maxTokens, maxDepth int
}

func (b *boundedTokens) Token() (xml.Token, error) {
	tok, err := b.d.Token()
	if err != nil {
		return tok, err
	}
	b.n++
	if b.n > b.maxTokens {
		return nil, malformed("more than %d XML tokens", b.maxTokens)
	}
	switch tok.(type) {
	case xml.StartElement:
		b.depth++
		if b.depth > b.maxDepth {
			return nil, malformed("XML nested deeper than %d elements", b.maxDepth)
		}
	case xml.EndElement:
		b.depth--
	}
	return tok, nil
}

// charsetReader accepts the encodings reports declare besides UTF-8.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1", "windows-1252":
		return latin1Reader{in}, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}

// latin1Reader converts ISO 8859-1 to UTF-8 (windows-1252's extra
// punctuation is read as its C1 code points, harmless in a report).
type latin1Reader struct{ r io.Reader }

func (l latin1Reader) Read(p []byte) (int, error) {
	if len(p) < 2 {
		return 0, io.ErrShortBuffer
	}
	buf := make([]byte, len(p)/2)
	n, err := l.r.Read(buf)
	out := p[:0]
	for _, c := range buf[:n] {
		out = utf8.AppendRune(out, rune(c))
	}
	return len(out), err
}

// ---- the XML shapes (RFC 7489 appendix C); element names match in any namespace ----

type xmlMetadata struct {
	OrgName   string `xml:"org_name"`
	Email     string `xml:"email"`
	ReportID  string `xml:"report_id"`
	DateRange struct {
		Begin string `xml:"begin"`
		End   string `xml:"end"`
	} `xml:"date_range"`
}

type xmlPolicy struct {
	Domain string `xml:"domain"`
	ADKIM  string `xml:"adkim"`
	ASPF   string `xml:"aspf"`
	P      string `xml:"p"`
	SP     string `xml:"sp"`
	Pct    string `xml:"pct"`
}

type xmlRecord struct {
	Row struct {
		SourceIP string `xml:"source_ip"`
		Count    string `xml:"count"`
		Policy   struct {
			Disposition string `xml:"disposition"`
			DKIM        string `xml:"dkim"`
			SPF         string `xml:"spf"`
			Reasons     []struct {
				Type    string `xml:"type"`
				Comment string `xml:"comment"`
			} `xml:"reason"`
		} `xml:"policy_evaluated"`
	} `xml:"row"`
	Identifiers struct {
		HeaderFrom   string `xml:"header_from"`
		EnvelopeFrom string `xml:"envelope_from"`
	} `xml:"identifiers"`
	Auth struct {
		DKIM []struct {
			Domain   string `xml:"domain"`
			Selector string `xml:"selector"`
			Result   string `xml:"result"`
		} `xml:"dkim"`
		SPF []struct {
			Domain string `xml:"domain"`
			Scope  string `xml:"scope"`
			Result string `xml:"result"`
		} `xml:"spf"`
	} `xml:"auth_results"`
}

// field trims a value and refuses one that is too long or not UTF-8.
func field(name, v string) (string, error) {
	v = strings.TrimSpace(v)
	if len(v) > maxFieldLen {
		return "", malformed("<%s> longer than %d bytes", name, maxFieldLen)
	}
	if !utf8.ValidString(v) {
		return "", malformed("<%s> is not UTF-8", name)
	}
	return v, nil
}

// word is a lower-case keyword (pass, fail, none, ...).
func word(name, v string) (string, error) {
	v, err := field(name, v)
	return strings.ToLower(v), err
}

// domainName is a domain as reports give it: lower case, no trailing dot.
func domainName(name, v string) (string, error) {
	v, err := field(name, v)
	return strings.TrimSuffix(strings.ToLower(v), "."), err
}

func (m *xmlMetadata) fill(rep *Report) error {
	var err error
	if rep.Org, err = field("org_name", m.OrgName); err != nil {
		return err
	}
	if rep.Email, err = field("email", m.Email); err != nil {
		return err
	}
	if rep.ReportID, err = field("report_id", m.ReportID); err != nil {
		return err
	}
	if rep.ReportID == "" {
		return malformed("no <report_id>")
	}
	if rep.Org == "" {
		rep.Org = rep.Email
	}
	begin, err := epoch("begin", m.DateRange.Begin)
	if err != nil {
		return err
	}
	end, err := epoch("end", m.DateRange.End)
	if err != nil {
		return err
	}
	if end.Before(begin) {
		return malformed("<date_range> ends (%d) before it begins (%d)", end.Unix(), begin.Unix())
	}
	rep.Begin, rep.End = begin, end
	return nil
}

// maxEpoch is 9999-12-31: a date beyond is garbage.
const maxEpoch = 253402300799

func epoch(name, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, malformed("no <date_range><%s>", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > maxEpoch {
		return time.Time{}, malformed("<date_range><%s> %q: want seconds since 1970", name, truncate(v, 40))
	}
	return time.Unix(n, 0).UTC(), nil
}

func (p *xmlPolicy) fill(rep *Report) error {
	d, err := domainName("domain", p.Domain)
	if err != nil {
		return err
	}
	if d == "" {
		return malformed("no <policy_published><domain>")
	}
	rep.Domain = d
	for _, f := range []struct {
		name string
		in   string
		out  *string
	}{{"adkim", p.ADKIM, &rep.Policy.ADKIM}, {"aspf", p.ASPF, &rep.Policy.ASPF},
		{"p", p.P, &rep.Policy.P}, {"sp", p.SP, &rep.Policy.SP}, {"pct", p.Pct, &rep.Policy.Pct}} {
		if *f.out, err = word(f.name, f.in); err != nil {
			return err
		}
	}
	return nil
}

func (x *xmlRecord) record(n int) (Record, error) {
	var r Record
	fail := func(err error) (Record, error) { return r, malformed("record %d: %v", n, err) }
	ipText := strings.TrimSpace(x.Row.SourceIP)
	ip, err := netip.ParseAddr(ipText)
	if err != nil || ip.Zone() != "" {
		return fail(fmt.Errorf("<source_ip> %q is not an IP address", truncate(ipText, 60)))
	}
	r.SourceIP = ip.Unmap()
	countText := strings.TrimSpace(x.Row.Count)
	c, err := strconv.ParseInt(countText, 10, 64)
	if err != nil || c < 0 || c > maxCount {
		return fail(fmt.Errorf("<count> %q is not a message count", truncate(countText, 40)))
	}
	r.Count = c
	pe := x.Row.Policy
	if r.Disposition, err = word("disposition", pe.Disposition); err != nil {
		return fail(err)
	}
	if r.DKIM, err = word("dkim", pe.DKIM); err != nil {
		return fail(err)
	}
	if r.SPF, err = word("spf", pe.SPF); err != nil {
		return fail(err)
	}
	for i, reason := range pe.Reasons {
		if i == maxReasons {
			break
		}
		t, err := word("type", reason.Type)
		if err != nil {
			return fail(err)
		}
		c, err := field("comment", reason.Comment)
		if err != nil {
			return fail(err)
		}
		if c != "" {
			t += ": " + c
		}
		r.Reasons = append(r.Reasons, t)
	}
	if r.HeaderFrom, err = domainName("header_from", x.Identifiers.HeaderFrom); err != nil {
		return fail(err)
	}
	if r.EnvelopeFrom, err = domainName("envelope_from", x.Identifiers.EnvelopeFrom); err != nil {
		return fail(err)
	}
	for i, d := range x.Auth.DKIM {
		if i == maxAuthPerRecord {
			break
		}
		var a DKIMAuth
		if a.Domain, err = domainName("dkim domain", d.Domain); err != nil {
			return fail(err)
		}
		if a.Selector, err = field("selector", d.Selector); err != nil {
			return fail(err)
		}
		if a.Result, err = word("dkim result", d.Result); err != nil {
			return fail(err)
		}
		r.DKIMResults = append(r.DKIMResults, a)
	}
	for i, s := range x.Auth.SPF {
		if i == maxAuthPerRecord {
			break
		}
		var a SPFAuth
		if a.Domain, err = domainName("spf domain", s.Domain); err != nil {
			return fail(err)
		}
		if a.Scope, err = word("scope", s.Scope); err != nil {
			return fail(err)
		}
		if a.Result, err = word("spf result", s.Result); err != nil {
			return fail(err)
		}
		r.SPFResults = append(r.SPFResults, a)
	}
	return r, nil
}

// truncate shortens s for an error message, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

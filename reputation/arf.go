package reputation

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/netip"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Limits on a feedback report, which comes from outside.
const (
	MaxARFSize       = 10 << 20  // the whole report
	maxReportFields  = 64 << 10  // the message/feedback-report part
	maxOriginalHead  = 256 << 10 // the original message's header
	maxARFParts      = 64        // MIME parts looked at, all levels together
	maxARFDepth      = 3         // multipart nesting
	maxARFCandidates = 16        // domains tried for attribution
)

// Errors of ParseARF and IngestARF, for errors.Is.
var (
	// ErrNotARF: the message is neither an RFC 5965 feedback report nor a
	// multipart message carrying an original message (as Microsoft's
	// JMRP sends).
	ErrNotARF = errors.New("not a feedback report")
	// ErrUnattributed: no domain of the original message belongs to a
	// tenant.
	ErrUnattributed = errors.New("feedback report about no hosted domain")
)

// ARFReport is a parsed feedback report.
type ARFReport struct {
	// FeedbackType is the report's Feedback-Type, lower case: abuse, fraud,
	// virus, other, not-spam; "abuse" for a report without a
	// message/feedback-report part (JMRP-shaped).
	FeedbackType string `json:"feedback_type"`
	UserAgent    string `json:"user_agent,omitempty"`
	ReportingMTA string `json:"reporting_mta,omitempty"`
	// SourceIP is the address the receiver got the original message from:
	// one of our sources.
	SourceIP         netip.Addr `json:"source_ip,omitzero"`
	OriginalMailFrom string     `json:"original_mail_from,omitempty"`
	OriginalRcptTo   []string   `json:"original_rcpt_to,omitempty"`
	ArrivalDate      string     `json:"arrival_date,omitempty"`
	ReportedDomains  []string   `json:"reported_domains,omitempty"`
	// From the original message's header.
	DKIMDomains      []string `json:"dkim_domains,omitempty"`
	FromDomain       string   `json:"from_domain,omitempty"`
	ReturnPathDomain string   `json:"return_path_domain,omitempty"`
	MessageID        string   `json:"message_id,omitempty"`
	// Set by IngestARF: the tenant the complaint was attributed to and the
	// domain that decided it; Counted is false for not-spam reports.
	Tenant  string `json:"tenant,omitempty"`
	Domain  string `json:"domain,omitempty"`
	Counted bool   `json:"counted"`
}

// ParseARF parses an RFC 5965 feedback report: a multipart/report
// (report-type=feedback-report) with a human-readable part, a
// message/feedback-report part and the original message or its header
// (message/rfc822 or text/rfc822-headers). It also takes the
// JMRP-shaped reports that carry only the original message in a
// multipart, and reports wrapped in a multipart once or twice more.
func ParseARF(msg []byte) (ARFReport, error) {
	var c ARFReport
	if len(msg) > MaxARFSize {
		return c, fmt.Errorf("reputation: feedback report of %d bytes, over the %d limit", len(msg), MaxARFSize)
	}
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return c, fmt.Errorf("reputation: feedback report: %w: %w", ErrNotARF, err)
	}
	w := arfWalk{}
	if err := w.walk(e, 0); err != nil {
		return c, err
	}
	switch {
	case w.report != nil:
		c.FeedbackType = strings.ToLower(strings.TrimSpace(w.report.Get("Feedback-Type")))
		if c.FeedbackType == "" {
			c.FeedbackType = "other"
		}
		c.UserAgent = strings.TrimSpace(w.report.Get("User-Agent"))
		c.ReportingMTA = strings.TrimSpace(w.report.Get("Reporting-Mta"))
		if ip, err := netip.ParseAddr(strings.Trim(strings.TrimSpace(w.report.Get("Source-Ip")), "[]")); err == nil {
			c.SourceIP = ip.Unmap()
		}
		c.OriginalMailFrom = strings.Trim(strings.TrimSpace(w.report.Get("Original-Mail-From")), "<>")
		for _, v := range w.report.Values("Original-Rcpt-To") {
			c.OriginalRcptTo = append(c.OriginalRcptTo, strings.Trim(strings.TrimSpace(v), "<>"))
		}
		c.ArrivalDate = strings.TrimSpace(w.report.Get("Arrival-Date"))
		if c.ArrivalDate == "" {
			c.ArrivalDate = strings.TrimSpace(w.report.Get("Received-Date"))
		}
		for _, v := range w.report.Values("Reported-Domain") {
			if d := normDomain(v); d != "" {
				c.ReportedDomains = append(c.ReportedDomains, d)
			}
		}
	case w.original != nil:
		c.FeedbackType = "abuse"
	default:
		return c, fmt.Errorf("reputation: %w: no feedback-report part and no original message", ErrNotARF)
	}
	if h := w.original; h != nil {
		for _, v := range h.Values("Dkim-Signature") {
			if d := dkimDomain(v); d != "" {
				c.DKIMDomains = append(c.DKIMDomains, d)
			}
		}
		c.FromDomain = addressDomain(h.Get("From"))
		c.ReturnPathDomain = addressDomain(h.Get("Return-Path"))
		c.MessageID = strings.TrimSpace(h.Get("Message-Id"))
	}
	return c, nil
}

// arfWalk collects the report's parts.
type arfWalk struct {
	parts    int
	report   *textproto.Header
	original *textproto.Header
}

func (w *arfWalk) walk(e *message.Entity, depth int) error {
	mr := e.MultipartReader()
	if mr == nil {
		return fmt.Errorf("reputation: %w: not a multipart message", ErrNotARF)
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			if w.report != nil || w.original != nil {
				return nil // a truncated tail after what we need
			}
			return fmt.Errorf("reputation: feedback report part: %w: %w", ErrNotARF, err)
		}
		if p == nil {
			return nil
		}
		if w.parts++; w.parts > maxARFParts {
			return nil
		}
		mt, _, _ := p.Header.ContentType()
		switch {
		case mt == "message/feedback-report" && w.report == nil:
			h, err := readFields(io.LimitReader(p.Body, maxReportFields))
			if err != nil {
				return fmt.Errorf("reputation: feedback-report part: %w", err)
			}
			w.report = &h
		case (mt == "message/rfc822" || mt == "text/rfc822-headers" || mt == "message/rfc822-headers") && w.original == nil:
			h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(p.Body, maxOriginalHead)))
			if err != nil && h.Len() == 0 {
				continue // an original we cannot read: attribute from the report's fields
			}
			w.original = &h
		case strings.HasPrefix(mt, "multipart/") && depth < maxARFDepth:
			if err := w.walk(p, depth+1); err != nil && !errors.Is(err, ErrNotARF) {
				return err
			}
		}
	}
}

// readFields reads the message/feedback-report part: header-shaped fields
// (RFC 5965 section 3.5), which some reporters end without a blank line.
func readFields(r io.Reader) (textproto.Header, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return textproto.Header{}, err
	}
	b = bytes.TrimLeft(b, "\r\n")
	b = append(b, "\r\n\r\n"...)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil && h.Len() == 0 {
		return h, err
	}
	return h, nil
}

// dkimDomain returns the d= tag of a DKIM-Signature header value.
func dkimDomain(v string) string {
	for _, tag := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(tag, "=")
		if ok && strings.TrimSpace(k) == "d" {
			return normDomain(strings.Join(strings.Fields(val), ""))
		}
	}
	return ""
}

// addressDomain returns the domain of an address header's (first)
// address, tolerating the forms net/mail rejects.
func addressDomain(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if dec, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		v = dec
	}
	if a, err := mail.ParseAddress(v); err == nil {
		v = a.Address
	} else if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
		v = v[i+1 : j]
	}
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return ""
	}
	return normDomain(v[at+1:])
}

// normDomain lower-cases a domain and trims what surrounds it; it returns
// "" for what cannot be a domain.
func normDomain(d string) string {
	d = strings.ToLower(strings.TrimSpace(d))
	d = strings.Trim(d, "<>.[] \t")
	if d == "" || len(d) > 253 || strings.ContainsAny(d, " \t\r\n@<>;,\"()") {
		return ""
	}
	return d
}

// candidates lists the domains to attribute c by, in order: DKIM d=, From,
// Return-Path, the report's Original-Mail-From and Reported-Domain; each
// followed by its parent domains (a signature by mail.example.com belongs
// to the tenant of example.com).
func (c ARFReport) candidates() []string {
	var seen = map[string]bool{}
	var out []string
	add := func(d string) {
		for d != "" && strings.Contains(d, ".") && len(out) < maxARFCandidates {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
			_, d, _ = strings.Cut(d, ".")
		}
	}
	for _, d := range c.DKIMDomains {
		add(d)
	}
	add(c.FromDomain)
	add(c.ReturnPathDomain)
	add(addressDomain(c.OriginalMailFrom))
	for _, d := range c.ReportedDomains {
		add(d)
	}
	return out
}

// IngestARF parses a feedback report that inbound received, attributes it
// to the tenant of the original message (by its DKIM d=, else its From:
// domain, else its Return-Path, else the report's Original-Mail-From and
// Reported-Domain; each also by parent domain) and counts it as a
// complaint in the tenant's windows (and the source address's, when the
// report names one of ours). A not-spam report is parsed and attributed
// but not counted. Errors match ErrNotARF or ErrUnattributed.
func (s *Service) IngestARF(ctx context.Context, msg []byte) (ARFReport, error) {
	r, err := ParseARF(msg)
	if err != nil {
		return r, err
	}
	if s.opts.Directory != nil {
		for _, d := range r.candidates() {
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			if t, ok := s.opts.Directory.DomainTenant(d); ok {
				r.Tenant, r.Domain = t, d
				break
			}
		}
	}
	if r.Tenant == "" {
		return r, fmt.Errorf("reputation: %w (domains %s)", ErrUnattributed, strings.Join(r.candidates(), ", "))
	}
	ev := Event{Tenant: r.Tenant, Outcome: Complaint, Count: 1}
	if s.isSource(r.SourceIP) {
		ev.Source = r.SourceIP
	}
	if r.FeedbackType != "not-spam" {
		s.Record(ev)
		r.Counted = true
	}
	s.log.Info("complaint received", "tenant", r.Tenant, "domain", r.Domain, "feedback_type", r.FeedbackType,
		"reporter", r.UserAgent, "source", r.SourceIP, "message_id", r.MessageID, "counted", r.Counted)
	return r, nil
}

// isSource reports whether ip is one of the configured source addresses.
func (s *Service) isSource(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, srcs := range s.opts.Pools {
		for _, src := range srcs {
			if src.IP == ip {
				return true
			}
		}
	}
	return false
}

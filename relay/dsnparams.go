package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-smtp"
)

// DSN parameters (RFC 3461): what the submitting client asked about
// delivery status notifications, kept with the message in fairq's Extra:
// RET and ENVID from MAIL, NOTIFY and ORCPT per recipient. Delivery passes
// them on to a next hop that offers DSN; Bounce honours them (no DSN for
// NOTIFY=NEVER or a NOTIFY without FAILURE, the whole message for
// RET=FULL, Original-Envelope-Id and Original-Recipient fields).
//
// Extra is opaque to fairq and shared with inbound's local retries, so the
// encoding starts with its own marker; an Extra without it carries no DSN
// parameters.

const dsnExtraMarker = "fairway-dsn1\x00"

// dsnParams are one message's DSN parameters.
type dsnParams struct {
	Ret   string             `json:"ret,omitempty"`   // "FULL", "HDRS" or ""
	EnvID string             `json:"envid,omitempty"` // decoded
	Rcpts map[string]rcptDSN `json:"rcpts,omitempty"` // by recipient address
}

// rcptDSN is one recipient's parameters.
type rcptDSN struct {
	Notify []string `json:"notify,omitempty"` // NEVER, or of SUCCESS, FAILURE, DELAY
	ORcpt  string   `json:"orcpt,omitempty"`  // "rfc822;addr" (type;decoded address)
}

// empty reports whether p asks for nothing beyond the defaults.
func (p *dsnParams) empty() bool {
	return p == nil || p.Ret == "" && p.EnvID == "" && len(p.Rcpts) == 0
}

// encode is Extra's form; nil when there is nothing to keep.
func (p *dsnParams) encode() []byte {
	if p.empty() {
		return nil
	}
	b, _ := json.Marshal(p) // plain strings and maps: cannot fail
	return append([]byte(dsnExtraMarker), b...)
}

// decodeDSNParams reads Extra; nil when it holds no DSN parameters (or
// someone else's data).
func decodeDSNParams(extra []byte) (*dsnParams, error) {
	rest, ok := bytes.CutPrefix(extra, []byte(dsnExtraMarker))
	if !ok {
		return nil, nil
	}
	var p dsnParams
	if err := json.Unmarshal(rest, &p); err != nil {
		return nil, fmt.Errorf("relay: DSN parameters in the queue record: %w", err)
	}
	return &p, nil
}

// rcpt returns a recipient's parameters (zero when none).
func (p *dsnParams) rcpt(addr string) rcptDSN {
	if p == nil {
		return rcptDSN{}
	}
	return p.Rcpts[addr]
}

// wantsFailureDSN reports whether a failure of addr is to be reported:
// without NOTIFY the default is yes (RFC 3461 section 4.1: FAILURE, DELAY).
func (p *dsnParams) wantsFailureDSN(addr string) bool {
	n := p.rcpt(addr).Notify
	return len(n) == 0 || slices.Contains(n, "FAILURE")
}

// setMail records MAIL's RET and ENVID.
func (p *dsnParams) setMail(o *smtp.MailOptions) {
	if o == nil {
		return
	}
	p.Ret, p.EnvID = strings.ToUpper(string(o.Return)), o.EnvelopeID
}

// setRcpt records RCPT's NOTIFY and ORCPT for addr.
func (p *dsnParams) setRcpt(addr string, o *smtp.RcptOptions) {
	if o == nil || len(o.Notify) == 0 && o.OriginalRecipient == "" {
		return
	}
	r := rcptDSN{}
	for _, n := range o.Notify {
		r.Notify = append(r.Notify, strings.ToUpper(string(n)))
	}
	if o.OriginalRecipient != "" {
		typ := string(o.OriginalRecipientType)
		if typ == "" {
			typ = string(smtp.DSNAddressTypeRFC822)
		}
		r.ORcpt = typ + ";" + o.OriginalRecipient
	}
	if p.Rcpts == nil {
		p.Rcpts = map[string]rcptDSN{}
	}
	p.Rcpts[addr] = r
}

// mailOptions are the DSN options MAIL passes on to a next hop.
func (p *dsnParams) mailOptions() (ret smtp.DSNReturn, envid string) {
	if p == nil {
		return "", ""
	}
	return smtp.DSNReturn(p.Ret), p.EnvID
}

// rcptOptions are the DSN options RCPT passes on for addr; nil for none.
func (p *dsnParams) rcptOptions(addr string) *smtp.RcptOptions {
	r := p.rcpt(addr)
	if len(r.Notify) == 0 && r.ORcpt == "" {
		return nil
	}
	o := &smtp.RcptOptions{}
	for _, n := range r.Notify {
		o.Notify = append(o.Notify, smtp.DSNNotify(n))
	}
	if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok {
		o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressType(typ), addr
	}
	return o
}

// xtext encodes s for an ESMTP parameter (RFC 3461 section 4): printable
// ASCII but "+" and "=" as is, every other byte as "+HH".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// mailParams is the " RET=... ENVID=..." a pipelined MAIL carries.
func (p *dsnParams) mailParams() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	if p.Ret == "FULL" || p.Ret == "HDRS" {
		b.WriteString(" RET=" + p.Ret)
	}
	if p.EnvID != "" {
		b.WriteString(" ENVID=" + xtext(p.EnvID))
	}
	return b.String()
}

// rcptParams is the " NOTIFY=... ORCPT=..." a pipelined RCPT for addr
// carries.
func (p *dsnParams) rcptParams(addr string) string {
	r := p.rcpt(addr)
	var b strings.Builder
	if len(r.Notify) > 0 {
		b.WriteString(" NOTIFY=" + strings.Join(r.Notify, ","))
	}
	if typ, a, ok := strings.Cut(r.ORcpt, ";"); ok {
		b.WriteString(" ORCPT=" + typ + ";" + xtext(a))
	}
	return b.String()
}

package inbound

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/mail"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-msgauth/dmarc"

	"fairway/tenant"
)

// Per-tenant quarantine rules (tenant.Policy.Quarantine) and the DMARC
// policy decide, for each receiving tenant, where a message goes:
//
//  1. The tenant's rules run in order; the first that matches decides:
//     quarantine, reject, or (sender rules only) accept, an allow-list
//     entry that skips the rules after it and a DMARC p=quarantine.
//  2. With no deciding rule, a DMARC failure under p=quarantine sends the
//     message to the Quarantine folder.
//  3. A DMARC failure under p=reject rejects the message whatever the
//     rules say, allow-list included: p=reject is the From: domain owner
//     saying that mail failing it is not theirs, and an allow-list matches
//     exactly the From: a forger would use. (It is decided for the whole
//     message before the rules run: 550 5.7.1.)
//
// On the MX path every check is known. On DeliverLocal (mail a hosted
// user submitted) the sender authenticated, so the spf, dkim, dmarc and
// noauth rules do not fire; attachment, size and sender rules do.

// maxMIMEParts bounds the parts the attachment scan walks.
const maxMIMEParts = 1000

// Verdicts of the rules for one tenant.
type verdict int

const (
	verdictInbox verdict = iota
	verdictQuarantine
	verdictReject
)

func (v verdict) String() string {
	switch v {
	case verdictQuarantine:
		return "quarantine"
	case verdictReject:
		return "reject"
	}
	return "inbox"
}

// messageFacts is what the rules look at.
type messageFacts struct {
	Auth        *authResults // nil on DeliverLocal: authenticated submission
	Size        int64
	Senders     []string // envelope sender and From: addresses, normalized
	attachments []string // lower-case file names, found lazily
	scanned     bool
	body        []byte
}

func newMessageFacts(body []byte, auth *authResults, mailFrom string, fromHeader []string) *messageFacts {
	f := &messageFacts{Auth: auth, Size: int64(len(body)), body: body}
	if a, err := tenant.NormalizeAddress(mailFrom); err == nil {
		f.Senders = append(f.Senders, a)
	}
	for _, v := range fromHeader {
		list, err := mail.ParseAddressList(v)
		if err != nil {
			continue
		}
		for _, addr := range list {
			if a, err := tenant.NormalizeAddress(addr.Address); err == nil {
				f.Senders = append(f.Senders, a)
			}
		}
	}
	return f
}

// attachmentNames returns the message's attachment file names, scanning
// the MIME structure on first use.
func (f *messageFacts) attachmentNames() []string {
	if !f.scanned {
		f.attachments = attachmentNames(f.body)
		f.scanned = true
	}
	return f.attachments
}

// decide applies a tenant's rules to a message (steps 1 and 2 above; the
// p=reject of step 3 is decided before). It returns the verdict and the
// rule that decided, for the log ("" if none).
func decide(rules []tenant.QuarantineRule, f *messageFacts) (verdict, string) {
	for i, r := range rules {
		if !ruleMatches(r, f) {
			continue
		}
		name := "rule " + strconv.Itoa(i+1) + " " + r.Check
		switch r.Action {
		case "accept":
			return verdictInbox, name
		case "reject":
			return verdictReject, name
		case "quarantine":
			return verdictQuarantine, name
		}
	}
	if f.Auth != nil && f.Auth.DMARC == "fail" && f.Auth.Policy == dmarc.PolicyQuarantine {
		return verdictQuarantine, "dmarc p=quarantine"
	}
	return verdictInbox, ""
}

func ruleMatches(r tenant.QuarantineRule, f *messageFacts) bool {
	switch r.Check {
	case "spf":
		return f.Auth != nil && f.Auth.SPF == r.Result
	case "dkim":
		return f.Auth != nil && f.Auth.dkimSummary() == r.Result
	case "dmarc":
		return f.Auth != nil && f.Auth.DMARC == r.Result
	case "noauth":
		return f.Auth != nil && f.Auth.SPF != "pass" && !f.Auth.dkimPass()
	case "size":
		n, err := strconv.ParseInt(r.Value, 10, 64)
		return err == nil && f.Size > n
	case "sender":
		return senderMatches(r.Value, f.Senders)
	case "attachment":
		return attachmentMatches(r.Value, f.attachmentNames())
	}
	return false
}

// senderMatches: value is an address or "@domain" (that domain exactly).
func senderMatches(value string, senders []string) bool {
	value = strings.ToLower(strings.TrimSpace(value))
	if d, ok := strings.CutPrefix(value, "@"); ok {
		if nd, err := tenant.NormalizeDomain(d); err == nil {
			d = nd
		}
		for _, s := range senders {
			if domainOf(s) == d {
				return true
			}
		}
		return false
	}
	if a, err := tenant.NormalizeAddress(value); err == nil {
		value = a
	}
	for _, s := range senders {
		if s == value {
			return true
		}
	}
	return false
}

// attachmentMatches: exts is "exe,js,.scr"; a name matches on its last
// extension, case-insensitively.
func attachmentMatches(exts string, names []string) bool {
	for _, n := range names {
		dot := strings.LastIndexByte(n, '.')
		if dot < 0 {
			continue
		}
		ext := n[dot+1:]
		for _, e := range strings.Split(exts, ",") {
			e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "."))
			if e != "" && ext == e {
				return true
			}
		}
	}
	return false
}

// attachmentNames walks a message's MIME tree (go-message) and returns the
// file names of its parts, in lower case, with what Windows ignores at the
// end of a name (dots, spaces) removed, so that "x.exe." counts as .exe.
// Nested messages (message/rfc822) are walked too. A malformed structure
// ends the walk: the names found so far are returned.
func attachmentNames(body []byte) []string {
	var names []string
	parts := 0
	var walk func(r io.Reader, depth int)
	walk = func(r io.Reader, depth int) {
		e, err := message.Read(r)
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return
		}
		_ = e.Walk(func(_ []int, part *message.Entity, err error) error {
			if parts++; parts > maxMIMEParts {
				return errStopWalk
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return err
			}
			h := gomail.AttachmentHeader{Header: part.Header}
			if n, _ := h.Filename(); n != "" {
				names = append(names, cleanFilename(n))
			} else if n := rawFilename(part.Header); n != "" {
				names = append(names, cleanFilename(n))
			}
			if t, _, _ := part.Header.ContentType(); strings.EqualFold(t, "message/rfc822") && depth < 3 {
				inner, err := io.ReadAll(io.LimitReader(part.Body, int64(len(body))+1))
				if err == nil {
					walk(bytes.NewReader(inner), depth+1)
				}
			}
			return nil
		})
	}
	walk(bytes.NewReader(body), 0)
	return names
}

var errStopWalk = errors.New("stop walking")

// rawFilename digs a file name out of fields that did not parse as a
// media type (an unquoted name with spaces, a broken parameter): a sender
// hiding an attachment behind a syntax error still gets it scanned.
func rawFilename(h message.Header) string {
	for _, field := range []string{"Content-Disposition", "Content-Type"} {
		v := strings.ToLower(h.Get(field))
		for _, key := range []string{"filename=", "name="} {
			i := strings.Index(v, key)
			if i < 0 {
				continue
			}
			n := strings.Trim(strings.TrimSpace(strings.SplitN(v[i+len(key):], ";", 2)[0]), `"'`)
			if n != "" {
				return n
			}
		}
	}
	return ""
}

var wordDecoder = mime.WordDecoder{}

func cleanFilename(n string) string {
	if d, err := wordDecoder.DecodeHeader(n); err == nil {
		n = d
	}
	n = strings.ToLower(strings.TrimSpace(n))
	return strings.TrimRight(n, ". \t")
}

package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"runtime/debug"
	"strings"
	"time"

	"fairway/fairq"
)

// Bounce is the fairq.BounceFunc (fairq.Options.Bounce): for recipients that
// failed permanently or expired it queues an RFC 3464 delivery status
// notification to the message's sender, with an empty envelope sender, as
// the original tenant. A message with a null sender (itself a bounce) never
// gets one. An error leaves the recipients queued; fairq calls again later.
func (d *Delivery) Bounce(ctx context.Context, b fairq.Bounce) (err error) {
	rec := b.Record
	log := d.log.With("tenant", rec.Tenant, "msgid", b.ID.String())
	defer func() {
		// A panic here would unwind through fairq's Complete; make it an
		// error instead, which keeps the recipients queued.
		if r := recover(); r != nil {
			d.metrics.panics.Inc()
			log.Error("DSN panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("relay: DSN for %s: panic: %v", b.ID, r)
		}
	}()
	rcpts := make([]string, len(b.Failed))
	for i, f := range b.Failed {
		rcpts[i] = f.Recipient
	}
	params, perr := decodeDSNParams(rec.Extra)
	if perr != nil {
		log.Warn("DSN parameters unreadable, using the defaults", "err", perr)
	}
	if b.Expired {
		reason := ""
		if len(b.Failed) > 0 {
			reason = b.Failed[0].Detail
		}
		log.Info("bounced", "domain", rec.Domain, "recipients", rcpts, "expired", true, "reason", reason)
	}
	if rec.From == "" {
		log.Info("no DSN for a null-sender message", "recipients", rcpts, "expired", b.Expired)
		return nil
	}
	// NOTIFY=NEVER, or a NOTIFY without FAILURE: the sender asked for no
	// report of these failures (RFC 3461 section 4.1).
	failed := make([]fairq.RecipientResult, 0, len(b.Failed))
	for _, f := range b.Failed {
		if params.wantsFailureDSN(f.Recipient) {
			failed = append(failed, f)
		}
	}
	if len(failed) == 0 {
		log.Info("no DSN: the sender's NOTIFY excludes failures", "recipients", rcpts)
		return nil
	}
	orig, err := d.q.Body(b.ID)
	if err != nil {
		log.Warn("original message unreadable, DSN without its headers", "err", err)
		orig = nil
	}
	now := d.clock.Now()
	msg := buildDSN(dsnReport{
		ReportingMTA: d.opts.Hostname,
		QueueID:      b.ID.String(),
		Sender:       rec.From,
		Arrival:      rec.Created,
		Now:          now,
		Expired:      b.Expired,
		Failed:       failed,
		Original:     orig,
		Params:       params,
	})
	id, err := d.spool.Enqueue(ctx, &fairq.Message{Tenant: rec.Tenant, From: "", Recipients: []string{rec.From}, Body: msg})
	if errors.Is(err, fairq.ErrInvalidMessage) {
		// The sender address cannot be delivered to: keeping the recipients
		// queued would only repeat this.
		log.Warn("DSN not deliverable, dropped", "to", rec.From, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("relay: queue DSN for %s: %w", b.ID, err)
	}
	d.metrics.dsns.WithLabelValues(rec.Tenant).Inc()
	log.Info("dsn queued", "dsn", id.String(), "to", rec.From, "recipients", rcpts, "expired", b.Expired)
	return nil
}

// dsnReport is what a DSN says.
type dsnReport struct {
	ReportingMTA string // our host name
	QueueID      string
	Sender       string // the original envelope sender, the DSN's recipient
	Arrival      time.Time
	Now          time.Time
	Expired      bool
	Failed       []fairq.RecipientResult
	Original     []byte     // the original message: its header, or all of it for RET=FULL
	Params       *dsnParams // the sender's DSN parameters; nil: none
}

// maxDSNFullBody bounds the original returned whole for RET=FULL; a larger
// one is returned as its header only (RFC 3461 section 4.3 allows it).
const maxDSNFullBody = 10 << 20

// maxDSNHeaders bounds the original header block copied into a DSN.
const maxDSNHeaders = 64 << 10

// buildDSN renders an RFC 3464 report: multipart/report with a
// human-readable part, the message/delivery-status part (per-message fields,
// then one block per failed recipient) and the original's header as
// text/rfc822-headers. Lines end in CRLF.
func buildDSN(r dsnReport) []byte {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	_ = mw.SetBoundary("=_fairway-dsn-" + r.QueueID + "-" + hex.EncodeToString(rnd[:]))
	date := r.Now.Format(time.RFC1123Z)

	subject := "Undelivered Mail Returned to Sender"
	if r.Expired {
		subject = "Undelivered Mail Returned to Sender (delivery time expired)"
	}
	var hdr bytes.Buffer
	for _, h := range [][2]string{
		{"From", "Mail Delivery System <MAILER-DAEMON@" + r.ReportingMTA + ">"},
		{"To", "<" + r.Sender + ">"},
		{"Subject", subject},
		{"Date", date},
		{"Message-ID", "<dsn-" + r.QueueID + "-" + hex.EncodeToString(rnd[:4]) + "@" + r.ReportingMTA + ">"},
		{"Auto-Submitted", "auto-replied"}, // RFC 3834: never answer it automatically
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/report; report-type=delivery-status; boundary="` + mw.Boundary() + `"`},
	} {
		hdr.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	hdr.WriteString("\r\n")

	// Part 1: for people.
	var text strings.Builder
	text.WriteString("This is the mail system at " + r.ReportingMTA + ".\r\n\r\n")
	if r.Expired {
		text.WriteString("Your message could not be delivered to the recipients below in the time\r\n" +
			"allowed, and delivery has been given up.\r\n\r\n")
	} else {
		text.WriteString("Your message could not be delivered to the recipients below. The\r\n" +
			"failures are permanent; sending it again will not help.\r\n\r\n")
	}
	for _, f := range r.Failed {
		text.WriteString("<" + f.Recipient + ">: " + dsnLine(f.Detail) + "\r\n")
	}
	if r.Params != nil && r.Params.Ret == "FULL" && len(r.Original) <= maxDSNFullBody {
		text.WriteString("\r\nThe delivery report and your message are attached.\r\n")
	} else {
		text.WriteString("\r\nThe delivery report and the header of your message are attached.\r\n")
	}
	cte := "7bit"
	if !dsnASCII(text.String()) {
		cte = "8bit"
	}
	p, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Description":       {"Notification"},
		"Content-Transfer-Encoding": {cte},
	})
	_, _ = p.Write([]byte(text.String()))

	// Part 2: for machines (RFC 3464 section 2).
	var st strings.Builder
	st.WriteString("Reporting-MTA: dns; " + r.ReportingMTA + "\r\n")
	st.WriteString("X-Fairway-Queue-ID: " + r.QueueID + "\r\n")
	if r.Params != nil && r.Params.EnvID != "" {
		st.WriteString("Original-Envelope-Id: " + dsnLine(r.Params.EnvID) + "\r\n")
	}
	if !r.Arrival.IsZero() {
		st.WriteString("Arrival-Date: " + r.Arrival.Format(time.RFC1123Z) + "\r\n")
	}
	for _, f := range r.Failed {
		st.WriteString("\r\n")
		if typ, addr, ok := strings.Cut(r.Params.rcpt(f.Recipient).ORcpt, ";"); ok {
			st.WriteString("Original-Recipient: " + strings.ToLower(typ) + "; " + dsnLine(addr) + "\r\n")
		}
		st.WriteString("Final-Recipient: rfc822; " + f.Recipient + "\r\n")
		st.WriteString("Action: failed\r\n")
		status, remote, diag := dsnStatus(f.Detail, r.Expired)
		st.WriteString("Status: " + status + "\r\n")
		if remote != "" {
			st.WriteString("Remote-MTA: dns; " + remote + "\r\n")
		}
		st.WriteString("Diagnostic-Code: " + diag + "\r\n")
		st.WriteString("Last-Attempt-Date: " + date + "\r\n")
	}
	p, _ = mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":        {"message/delivery-status"},
		"Content-Description": {"Delivery report"},
	})
	_, _ = p.Write([]byte(st.String()))

	// Part 3: the original, whole for RET=FULL, else its header.
	if r.Params != nil && r.Params.Ret == "FULL" && len(r.Original) > 0 && len(r.Original) <= maxDSNFullBody {
		p, _ = mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":        {"message/rfc822"},
			"Content-Description": {"Undelivered message"},
		})
		_, _ = p.Write(r.Original)
	} else if h := headerBlock(r.Original); len(h) > 0 {
		p, _ = mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":        {"text/rfc822-headers"},
			"Content-Description": {"Undelivered message header"},
		})
		_, _ = p.Write(h)
	}
	_ = mw.Close()
	return append(hdr.Bytes(), buf.Bytes()...)
}

// dsnStatus derives a recipient's Status, Remote-MTA and Diagnostic-Code
// from its detail. A remote reply gives "smtp; <code> <enhanced> <text>"; a
// local reason "X-Fairway; <text>".
func dsnStatus(detail string, expired bool) (status, remote, diag string) {
	p, ok := parseDetail(detail)
	if !ok {
		status = esPermOther
		if expired {
			status = esExpired
		}
		return status, "", "X-Fairway; " + dsnLine(detail)
	}
	status = p.Enhanced
	if status[0] == '2' {
		status = esPermOther // never a success status on a failed action
	}
	if p.Code > 0 {
		return status, p.Host, fmt.Sprintf("smtp; %d %s %s", p.Code, p.Enhanced, dsnLine(p.Text))
	}
	return status, "", "X-Fairway; " + dsnLine(detail)
}

// dsnLine makes text safe for one header or body line.
func dsnLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 900 {
		s = s[:900]
	}
	return s
}

// headerBlock returns the header of a message (up to the first empty line),
// with CRLF line ends and bounded in size at a line boundary.
func headerBlock(msg []byte) []byte {
	end := len(msg)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		end = i + 2
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 && i+1 < end {
		end = i + 1
	}
	h := msg[:end]
	if len(h) > maxDSNHeaders {
		h = h[:maxDSNHeaders]
		if i := bytes.LastIndexByte(h, '\n'); i >= 0 {
			h = h[:i+1]
		}
	}
	var out bytes.Buffer
	for line := range bytes.Lines(h) {
		line = bytes.TrimRight(line, "\r\n")
		out.Write(line)
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

func dsnASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

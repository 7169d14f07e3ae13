package relay

import (
	"bufio"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"fairway/fairq"
)

// PIPELINING (RFC 2920). go-smtp's client waits for each reply before the
// next command; against a server that offers PIPELINING, delivery sends
// MAIL, every RCPT and DATA in one write and reads their replies after,
// then the body and its final reply: two round trips per transaction
// instead of three plus one per recipient. The commands go straight to the
// connection go-smtp runs on, between two of its commands (after RSET or
// EHLO, when its reader holds nothing), and read exactly one reply each, so
// go-smtp's own reader never sees these bytes.

// pipelineReader reads replies from the connection; one per smtpConn,
// created on first use.
func (sc *smtpConn) pipelineIO() (*textproto.Reader, *bufio.Writer) {
	if sc.pr == nil {
		sc.pr = textproto.NewReader(bufio.NewReader(sc.raw))
		sc.pw = bufio.NewWriterSize(sc.raw, 64<<10)
	}
	return sc.pr, sc.pw
}

// readReply reads one reply; a reply that is not 2xx or 3xx is returned as
// an *smtp.SMTPError, anything unreadable as a plain error.
func readReply(r *textproto.Reader) (code int, text string, err error) {
	code, msg, err := r.ReadResponse(0)
	if err != nil {
		if te, ok := err.(*textproto.Error); ok {
			return te.Code, te.Msg, smtpError(te.Code, te.Msg)
		}
		return 0, "", err
	}
	if code >= 400 {
		return code, msg, smtpError(code, msg)
	}
	return code, msg, nil
}

// smtpError is a reply as go-smtp's client reports it: the enhanced code
// taken from the text when it has one.
func smtpError(code int, msg string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, Message: msg, EnhancedCode: smtp.NoEnhancedCode}
	es, rest, ok := strings.Cut(msg, " ")
	if !ok {
		return e
	}
	parts := strings.Split(es, ".")
	if len(parts) != 3 {
		return e
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return e
		}
		ec[i] = n
	}
	e.EnhancedCode, e.Message = ec, rest
	return e
}

// transactPipelined is transact for a server that offers PIPELINING. The
// caller has checked SMTPUTF8 and SIZE.
func (d *Delivery) transactPipelined(sc *smtpConn, from string, rcpts []string, idx []int, body []byte, utf8 bool,
	dsn *dsnParams, out *attemptOutcome) (reusable bool, connErr *DeliveryError) {
	c := sc.c
	r, w := sc.pipelineIO()
	var cmd strings.Builder
	fmt.Fprintf(&cmd, "MAIL FROM:<%s>", from)
	if ok, _ := c.Extension("8BITMIME"); ok {
		cmd.WriteString(" BODY=8BITMIME")
	}
	if ok, _ := c.Extension("SIZE"); ok {
		fmt.Fprintf(&cmd, " SIZE=%d", len(body))
	}
	if utf8 {
		cmd.WriteString(" SMTPUTF8")
	}
	cmd.WriteString(dsn.mailParams())
	cmd.WriteString("\r\n")
	for _, i := range idx {
		fmt.Fprintf(&cmd, "RCPT TO:<%s>%s\r\n", rcpts[i], dsn.rcptParams(rcpts[i]))
	}
	cmd.WriteString("DATA\r\n")

	fail := func(stage string, err error, who []int) (bool, *DeliveryError) {
		de := replyError(err, stage, sc.host)
		out.fill(who, de)
		if de.connectionLevel() {
			return false, de
		}
		return true, nil
	}
	_ = sc.raw.SetDeadline(time.Now().Add(d.opts.CommandTimeout))
	defer func() { _ = sc.raw.SetDeadline(time.Time{}) }()
	if _, err := w.WriteString(cmd.String()); err != nil {
		return fail(StageMail, err, idx)
	}
	if err := w.Flush(); err != nil {
		return fail(StageMail, err, idx)
	}

	// Every command gets its reply, in order, even after a failure.
	_, _, mailErr := readReply(r)
	if mailErr != nil {
		if _, ok := mailErr.(*smtp.SMTPError); !ok {
			return fail(StageMail, mailErr, idx) // connection broke
		}
	}
	accepted := make([]int, 0, len(idx))
	var rcptErrs []error
	for n, i := range idx {
		_, _, err := readReply(r)
		if err != nil {
			if _, ok := err.(*smtp.SMTPError); !ok {
				out.fill(idx[:n], replyError(err, StageRcpt, sc.host))
				return fail(StageRcpt, err, idx)
			}
		}
		rcptErrs = append(rcptErrs, err)
		if err == nil && mailErr == nil {
			accepted = append(accepted, i)
		}
	}
	dataCode, _, dataErr := readReply(r)
	if dataErr != nil {
		if _, ok := dataErr.(*smtp.SMTPError); !ok {
			return fail(StageData, dataErr, idx)
		}
	}
	if mailErr != nil {
		if dataErr == nil && dataCode == 354 {
			d.endEmptyData(sc, r, w) // the server went along anyway: close the DATA
		}
		return fail(StageMail, mailErr, idx)
	}
	for n, i := range idx {
		if rcptErrs[n] != nil {
			de := replyError(rcptErrs[n], StageRcpt, sc.host)
			if de.connectionLevel() {
				out.fill(idx, de)
				return false, de
			}
			out.set(i, de)
		}
	}
	if len(accepted) == 0 {
		if dataErr == nil && dataCode == 354 {
			d.endEmptyData(sc, r, w)
		}
		return true, nil
	}
	if dataErr != nil || dataCode != 354 {
		if dataErr == nil {
			dataErr = smtpError(dataCode, "unexpected reply to DATA")
		}
		return fail(StageData, dataErr, accepted)
	}

	_ = sc.raw.SetDeadline(time.Now().Add(d.opts.DataTimeout))
	dw := textproto.NewWriter(w).DotWriter()
	if _, err := dw.Write(body); err != nil {
		return fail(StageData, err, accepted)
	}
	if err := dw.Close(); err != nil { // writes the final dot and flushes
		return fail(StageData, err, accepted)
	}
	_, text, err := readReply(r)
	if err != nil {
		return fail(StageData, err, accepted)
	}
	enhanced, text := "2.0.0", oneLine(text)
	if es, rest, ok := strings.Cut(text, " "); ok && len(es) >= 5 && es[0] == '2' && es[1] == '.' {
		enhanced, text = es, rest
	}
	detail := formatDetail(StageData, sc.host, 250, enhanced, text)
	for _, i := range accepted {
		out.results[i].Status = fairq.Delivered
		out.results[i].Detail = detail
		out.replies[i] = reply{code: 250, enhanced: enhanced, line: text}
	}
	return true, nil
}

// endEmptyData ends a DATA the server accepted although no recipient was:
// an empty message, whose reply is read and ignored (RFC 2920 section 3.1).
func (d *Delivery) endEmptyData(sc *smtpConn, r *textproto.Reader, w *bufio.Writer) {
	if _, err := w.WriteString(".\r\n"); err == nil && w.Flush() == nil {
		_, _, _ = readReply(r)
	}
}

package inbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Delivery to an external LMTP server (RFC 2033), for operators who keep
// Dovecot as the store: [inbound] lmtp = "unix:/path" or "host:port". One
// connection per hand-off; the server's per-recipient answers (to RCPT
// and after DATA) become each copy's result: 2xx stored, 4xx retried
// through the spool, 5xx a permanent failure. A connection or protocol
// failure is a temporary failure of every copy not yet answered.

// lmtpTimeout bounds one LMTP hand-off (dial to the last reply).
const lmtpTimeout = 5 * time.Minute

// lmtpTarget parses the LMTP option into a network and address.
func lmtpTarget(s string) (network, addr string, err error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return "", "", errors.New("inbound: lmtp: empty unix socket path")
		}
		return "unix", p, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", "", fmt.Errorf("inbound: lmtp %q: want \"unix:/path\" or \"host:port\": %w", s, err)
	}
	return "tcp", s, nil
}

// lmtpDeliver delivers body to rcpts in one LMTP transaction; one error
// (or nil) per recipient.
func (m *MX) lmtpDeliver(ctx context.Context, from string, rcpts []string, body []byte) []error {
	errs := make([]error, len(rcpts))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	network, addr, err := lmtpTarget(m.opts.LMTP)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, lmtpTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fail(fmt.Errorf("lmtp: dial %s: %w", m.opts.LMTP, err))
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return fail(fmt.Errorf("lmtp: %w", err))
	}
	c := smtp.NewClientLMTP(conn)
	c.CommandTimeout = lmtpTimeout
	c.SubmissionTimeout = lmtpTimeout
	defer c.Close()
	if err := c.Hello(m.opts.Hostname); err != nil {
		return fail(fmt.Errorf("lmtp: LHLO: %w", err))
	}
	if err := c.Mail(from, nil); err != nil {
		return fail(lmtpErr("MAIL", err))
	}
	accepted := 0
	for i, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return fail(fmt.Errorf("lmtp: RCPT: %w", err))
			}
			errs[i] = &lmtpError{Reply: se}
			continue
		}
		accepted++
	}
	if accepted == 0 {
		c.Reset()
		return errs
	}
	w, err := c.Data()
	if err != nil {
		return fail(lmtpErr("DATA", err))
	}
	if _, err := w.Write(body); err != nil {
		return fail(fmt.Errorf("lmtp: DATA: %w", err))
	}
	_, err = w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	switch {
	case err == nil:
	case errors.As(err, &perRcpt):
		for i, r := range rcpts {
			if se, ok := perRcpt[r]; ok && errs[i] == nil {
				errs[i] = &lmtpError{Reply: se}
			}
		}
		if !errorsAreOnly(err, perRcpt) {
			// The connection broke after some answers: the recipients not
			// answered are not known to be stored.
			return fail(fmt.Errorf("lmtp: after DATA: %w", err))
		}
	default:
		return fail(fmt.Errorf("lmtp: after DATA: %w", err))
	}
	c.Quit()
	return errs
}

// errorsAreOnly reports whether err is exactly the per-recipient error.
func errorsAreOnly(err error, perRcpt smtp.LMTPDataError) bool {
	var p smtp.LMTPDataError
	if e, ok := err.(smtp.LMTPDataError); ok {
		p = e
	}
	return p != nil && len(p) == len(perRcpt)
}

func lmtpErr(cmd string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &lmtpError{Reply: se}
	}
	return fmt.Errorf("lmtp: %s: %w", cmd, err)
}

package inbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"fairway/mailstore"
	"fairway/tenant/conncap"
)

// One MX transaction, in order:
//
//  1. Connect: the per-address and total connection caps (421). No client
//     address is trusted, loopback included.
//  2. EHLO; STARTTLS offered with the server certificate. AUTH is not
//     offered, and answered 503 5.5.1.
//  3. MAIL FROM: any sender, the null sender included.
//  4. RCPT TO: at most MaxRecipients (452 4.5.3); the address must be a
//     plain local@domain of a hosted domain (554 5.7.1 otherwise, every
//     routing trick included), a mailbox or an alias (550 5.1.1), or the
//     report or complaint address. A mailbox whose quota is full gets
//     452 4.2.2, for that recipient only.
//  5. DATA: at most MaxMessageBytes (552 5.3.4). SPF, DKIM and DMARC are
//     evaluated; a DMARC failure under p=reject is 550 5.7.1. Each
//     receiving tenant's rules decide inbox, quarantine or reject (see
//     rules.go); a message every tenant rejects is 550 5.7.1, while with
//     mixed verdicts the rejecting tenants' copies go to their recipients'
//     Quarantine folders instead (the SMTP client gets one answer for all).
//     Received and Authentication-Results are added (incoming
//     Authentication-Results claiming our hostname are removed) and each
//     copy handed on (deliver.go); 250 only when every copy is stored or
//     durably queued.

// session is one MX session. go-smtp calls its methods from the
// connection's goroutine, except Data under BDAT (a goroutine of its own,
// while RSET may come): mu guards the transaction.
type session struct {
	m   *MX
	c   *smtp.Conn
	log *slog.Logger
	ip  netip.Addr
	tls bool

	mu sync.Mutex
	tx *transaction
}

// transaction is the state from MAIL to the end of DATA (or RSET).
type transaction struct {
	id    string // the msgid of the logs and the Received field
	from  string
	size  int64 // SIZE= of MAIL FROM, 0 if not given
	rcpts []*recipient
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (m *MX) newSession(c *smtp.Conn) (smtp.Session, error) {
	conn := c.Conn()
	_, isTLS := c.TLSConnectionState()
	s := &session{m: m, c: c, ip: conncap.RemoteIP(conn), tls: isTLS}
	id := "-"
	if tc := conncap.Of(conn); tc != nil {
		id = tc.ID
	}
	s.log = m.log.With("conn", id, "remote", s.ip.String())
	return s, nil
}

// refuse turns err into the reply the client gets (mxReply), and counts
// and logs it. Every error a session returns to go-smtp goes through here.
func (s *session) refuse(err error, attrs ...any) *smtp.SMTPError {
	r, reason := s.m.mxReplyCounted(err)
	attrs = append(attrs, "reason", reason, "reply", replyCode(r), "error", err.Error())
	level := slog.LevelInfo
	if reason == reasonInternal || reason == reasonQueue || reason == reasonSink {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "refused", attrs...)
	return r
}

func (m *MX) mxReplyCounted(err error) (*smtp.SMTPError, string) {
	r, reason := mxReply(err)
	m.metrics.rejections.WithLabelValues(reason).Inc()
	return r, reason
}

func replyCode(r *smtp.SMTPError) string {
	return fmt.Sprintf("%d %d.%d.%d", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2])
}

// AuthMechanisms offers nothing: AUTH is not advertised on the MX port.
func (s *session) AuthMechanisms() []string { return nil }

// Auth refuses every mechanism: 503 5.5.1.
func (s *session) Auth(mech string) (sasl.Server, error) {
	return nil, s.refuse(errAuthNotOffered, "mechanism", echoSafe(mech))
}

// Mail starts a transaction.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tx != nil {
		return s.refuse(errNestedMail)
	}
	if from != "" {
		if at := lastAt(from); at <= 0 || at == len(from)-1 {
			return s.refuse(errBadSender, "from", echoSafe(from))
		}
	}
	tx := &transaction{id: fmt.Sprintf("%016x", mathrand.Uint64()), from: from}
	if opts != nil && opts.Size > 0 {
		if opts.Size > s.m.opts.MaxMessageBytes {
			return s.refuse(errMessageTooBig, "from", echoSafe(from))
		}
		tx.size = opts.Size
	}
	s.tx = tx
	return nil
}

// Rcpt checks and adds a recipient.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.tx
	if tx == nil {
		return s.refuse(errNoTransaction)
	}
	if len(tx.rcpts) >= s.m.opts.MaxRecipients {
		return s.refuse(&recipientsError{Max: s.m.opts.MaxRecipients}, "msgid", tx.id)
	}
	r, err := s.m.resolveRecipient(to)
	if err != nil {
		return s.refuse(err, "msgid", tx.id, "recipient", echoSafe(to))
	}
	if err := s.m.quotaRoom(r, tx.size); err != nil {
		return s.refuse(err, "msgid", tx.id, "recipient", r.Addr, "tenant", r.Tenant)
	}
	tx.rcpts = append(tx.rcpts, r)
	return nil
}

// Reset ends the transaction without a message (RSET, EHLO, after DATA).
func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tx = nil
}

// Logout is the end of the session.
func (s *session) Logout() error {
	s.Reset()
	return nil
}

// Data receives the message, checks it and hands each copy on.
func (s *session) Data(r io.Reader) error {
	s.mu.Lock()
	tx := s.tx
	s.mu.Unlock()
	if tx == nil || len(tx.rcpts) == 0 {
		return s.refuse(errNoTransaction)
	}
	// The read timeout was armed for the DATA line; the transfer gets its
	// own (network time, not the injected clock).
	if err := s.c.Conn().SetReadDeadline(time.Now().Add(s.m.opts.DataTimeout)); err != nil {
		return s.finish(tx, fmt.Errorf("%w: %w", errDataAborted, err), nil)
	}
	data, err := io.ReadAll(r)
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return s.finish(tx, errMessageTooBig, nil)
	case err != nil:
		return s.finish(tx, fmt.Errorf("%w: %w", errDataAborted, err), nil)
	}
	out, err := s.m.receive(context.Background(), s.log, incoming{
		id: tx.id, from: tx.from, helo: s.c.Hostname(), ip: s.ip, tls: s.tls, rcpts: tx.rcpts, data: data,
	})
	return s.finish(tx, err, out)
}

// finish logs and counts the end of a transaction, and gives its reply.
func (s *session) finish(tx *transaction, err error, out *outcome) error {
	s.mu.Lock()
	if s.tx == tx {
		s.tx = nil
	}
	s.mu.Unlock()
	attrs := []any{"msgid", tx.id, "from", echoSafe(tx.from), "recipients", len(tx.rcpts)}
	if out != nil {
		attrs = append(attrs, out.logAttrs()...)
	}
	if err != nil {
		rep := s.refuse(err, attrs...)
		result := "rejected"
		if rep.Code/100 == 4 {
			result = "tempfail"
		}
		s.m.metrics.messages.WithLabelValues(result).Inc()
		return rep
	}
	s.m.metrics.messages.WithLabelValues("accepted").Inc()
	s.log.Info("accepted", attrs...)
	return acceptedReply(tx.id)
}

// quotaRoom refuses a recipient whose every local mailbox is over quota
// (452 4.2.2), unless the recipient also forwards elsewhere. With an LMTP
// store, the LMTP server judges at delivery.
func (m *MX) quotaRoom(r *recipient, size int64) error {
	if m.opts.LMTP != "" || len(r.Local) == 0 || len(r.Forward) > 0 {
		return nil
	}
	var first error
	for _, t := range r.Local {
		err := m.opts.Store.CheckQuota(t.Addr, size)
		if err == nil {
			return nil
		}
		if first == nil && (errors.Is(err, mailstore.ErrOverQuota) || errors.Is(err, mailstore.ErrNoMailbox)) {
			first = err
		}
	}
	return first
}

func lastAt(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			return i
		}
	}
	return -1
}

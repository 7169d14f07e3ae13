package inbound

import (
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"

	"fairway/mailstore"
	"fairway/tenant/conncap"
)

// The MX server's errors and the one place they become SMTP replies
// (mxReply). Session and delivery code return the internal errors below;
// what a client (or relay, through DeliverLocal) sees is decided here. An
// error this file does not know becomes "451 4.3.0" and its text stays in
// the log.
//
// Codes follow RFC 5321 §4.2 and the contract table of DESIGN.md; enhanced
// codes RFC 3463. A reply's class (2, 4, 5) and its enhanced code's class
// always agree (TestMXReplyClasses).

// Internal errors of the MX path. Their text is for the log.
var (
	errAuthNotOffered = errors.New("AUTH on the MX port")
	errNestedMail     = errors.New("MAIL inside a transaction")
	errNoTransaction  = errors.New("command without a transaction")
	errBadSender      = errors.New("sender is not local@domain")
	errUnknownUser    = errors.New("no such user in a hosted domain")
	errMessageTooBig  = errors.New("message over the size limit")
	errDataAborted    = errors.New("message transfer aborted")
	errQueue          = errors.New("queue cannot persist the message")
	errSink           = errors.New("report store cannot take the message now")
	errPolicyReject   = errors.New("refused by the recipient's quarantine rules")
	errTooManyConnsIP = conncap.ErrPerAddress
	errTooManyConns   = conncap.ErrTotal
)

// relayError is a recipient outside the hosted domains, or written with
// one of the old routing tricks (%, !, source routes, quoted '@').
type relayError struct{ Addr, Why string }

func (e *relayError) Error() string { return fmt.Sprintf("relay denied for %q: %s", e.Addr, e.Why) }

// recipientsError is a RCPT over the per-message recipient limit.
type recipientsError struct{ Max int }

func (e *recipientsError) Error() string { return fmt.Sprintf("more than %d recipients", e.Max) }

// dmarcRejectError is a DMARC failure under the From: domain's p=reject.
type dmarcRejectError struct{ Domain string }

func (e *dmarcRejectError) Error() string {
	return fmt.Sprintf("DMARC policy of %s is reject and the message fails it", e.Domain)
}

// lmtpError is a per-recipient answer of the external LMTP server.
type lmtpError struct{ Reply *smtp.SMTPError }

func (e *lmtpError) Error() string { return "LMTP: " + e.Reply.Error() }

// Reply reasons: the reason label of fairway_inbound_rejections_total and
// the reason attribute of "refused" log lines.
const (
	reasonAuth       = "auth_not_offered"
	reasonProtocol   = "protocol"
	reasonBadSender  = "bad_sender"
	reasonRelay      = "relay_denied"
	reasonUnknown    = "unknown_user"
	reasonRecipients = "too_many_recipients"
	reasonQuota      = "over_quota"
	reasonTooBig     = "message_too_big"
	reasonDMARC      = "dmarc_reject"
	reasonPolicy     = "policy_reject"
	reasonAborted    = "aborted"
	reasonQueue      = "queue_error"
	reasonSink       = "report_store_error"
	reasonConnsIP    = "conn_limit_ip"
	reasonConns      = "conn_limit_total"
	reasonLMTP       = "lmtp"
	reasonInternal   = "internal"
)

func reply(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// mxReply maps an error of the MX path to the reply and the reason it is
// counted and logged under. It is the only place reply codes of inbound are
// chosen.
func mxReply(err error) (*smtp.SMTPError, string) {
	var (
		relay *relayError
		rcpts *recipientsError
		dmarc *dmarcRejectError
		lmtp  *lmtpError
	)
	switch {
	case errors.Is(err, errAuthNotOffered):
		// RFC 4954 §4 has no code for "not offered"; the contract says
		// 503 5.5.1 (bad sequence: AUTH was never advertised).
		return reply(503, smtp.EnhancedCode{5, 5, 1}, "Authentication not offered on this port"), reasonAuth
	case errors.Is(err, errNestedMail):
		return reply(503, smtp.EnhancedCode{5, 5, 1}, "Nested MAIL command, send RSET first"), reasonProtocol
	case errors.Is(err, errNoTransaction):
		return reply(503, smtp.EnhancedCode{5, 5, 1}, "Send MAIL first"), reasonProtocol
	case errors.Is(err, errBadSender):
		// RFC 3463 §3.2: 5.1.7 bad sender's mailbox address syntax.
		return reply(553, smtp.EnhancedCode{5, 1, 7}, "Sender address syntax is invalid"), reasonBadSender
	case errors.As(err, &relay):
		// Not ours to deliver: RFC 3463 §3.8, 5.7.1 delivery not authorized.
		return reply(554, smtp.EnhancedCode{5, 7, 1}, "Relay access denied"), reasonRelay
	case errors.Is(err, errUnknownUser), errors.Is(err, mailstore.ErrNoMailbox):
		return reply(550, smtp.EnhancedCode{5, 1, 1}, "No such user here"), reasonUnknown
	case errors.As(err, &rcpts):
		// RFC 5321 §4.5.3.1.10: 452, and the client sends the rest later.
		return reply(452, smtp.EnhancedCode{4, 5, 3}, fmt.Sprintf("Too many recipients, at most %d per message", rcpts.Max)), reasonRecipients
	case errors.Is(err, mailstore.ErrOverQuota):
		// RFC 3463 §3.3: 4.2.2 mailbox full, temporary.
		return reply(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full, try again later"), reasonQuota
	case errors.Is(err, errMessageTooBig), errors.Is(err, smtp.ErrDataTooLarge):
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message over the size limit"), reasonTooBig
	case errors.As(err, &dmarc):
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "Message fails the DMARC policy of "+echoSafe(dmarc.Domain)), reasonDMARC
	case errors.Is(err, errPolicyReject):
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "Message refused by the recipient's policy"), reasonPolicy
	case errors.Is(err, errDataAborted):
		return reply(451, smtp.EnhancedCode{4, 4, 2}, "Message transfer aborted"), reasonAborted
	case errors.Is(err, errQueue):
		return reply(451, smtp.EnhancedCode{4, 3, 0}, "Cannot store the message now, try again later"), reasonQueue
	case errors.Is(err, errSink):
		return reply(451, smtp.EnhancedCode{4, 3, 0}, "Cannot store the report now, try again later"), reasonSink
	case errors.Is(err, errTooManyConnsIP):
		return reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many connections from your address, try again later"), reasonConnsIP
	case errors.Is(err, errTooManyConns):
		return reply(421, smtp.EnhancedCode{4, 3, 2}, "Too many connections, try again later"), reasonConns
	case errors.As(err, &lmtp):
		return lmtpReply(lmtp.Reply), reasonLMTP
	default:
		return reply(451, smtp.EnhancedCode{4, 3, 0}, "Internal error, try again later"), reasonInternal
	}
}

// lmtpReply passes an LMTP server's per-recipient reply on when it is a
// well-formed failure, keeping its code and enhanced code; anything else
// (a 2xx here, mismatched classes) becomes a plain temporary or permanent
// failure of the same class.
func lmtpReply(r *smtp.SMTPError) *smtp.SMTPError {
	class := r.Code / 100
	switch {
	case (class == 4 || class == 5) && r.EnhancedCode[0] == class:
		return reply(r.Code, r.EnhancedCode, "Mail store: "+echoSafe(r.Message))
	case class == 5:
		return reply(550, smtp.EnhancedCode{5, 0, 0}, "Mail store refused the message")
	default:
		return reply(451, smtp.EnhancedCode{4, 3, 0}, "Mail store failed, try again later")
	}
}

// isTemporary says whether err's reply is a 4xx.
func isTemporary(err error) bool {
	r, _ := mxReply(err)
	return r.Code/100 == 4
}

// acceptedReply is the answer to DATA once every copy is stored or queued.
func acceptedReply(id string) *smtp.SMTPError {
	return reply(250, smtp.EnhancedCode{2, 0, 0}, "OK id="+id)
}

// formatReplyLine is a reply as sent on the wire, for the replies written
// outside go-smtp (connection refusals before the greeting).
func formatReplyLine(r *smtp.SMTPError, hostname string) string {
	return fmt.Sprintf("%d %d.%d.%d %s %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], hostname, r.Message)
}

// echoSafe keeps a client-supplied string safe to echo in a reply or a log
// line: printable ASCII only, at most 256 bytes.
func echoSafe(s string) string {
	const maxLen = 256
	b := make([]byte, 0, min(len(s), maxLen))
	for i := 0; i < len(s) && len(b) < maxLen; i++ {
		if c := s[i]; c >= ' ' && c <= '~' {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(b)
}

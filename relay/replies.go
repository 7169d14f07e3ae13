package relay

import (
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-smtp"

	"fairway/tenant/conncap"
)

// The submission server's errors and the one place they become SMTP
// replies (submissionReply). Session code returns the internal errors
// below; what the client sees is decided here, and nothing else a session
// returns reaches the client: an error this file does not know becomes
// "451 4.3.0" and its text stays in the log.
//
// Codes follow RFC 5321 §4.2, RFC 4954 §6 (AUTH) and RFC 3207 (STARTTLS);
// enhanced codes RFC 3463 and its registry. A reply's class (2, 4, 5) and
// its enhanced code's class always agree (TestSubmissionReplyClasses).

// Internal errors of the submission path. Their text is for the log.
var (
	errTLSRequired     = errors.New("STARTTLS required first")
	errAuthRequired    = errors.New("authentication required")
	errAuthFailed      = errors.New("authentication failed")
	errAuthMalformed   = errors.New("malformed SASL exchange")
	errAuthThrottled   = errors.New("too many failed logins from the client's address")
	errAuthMechanism   = errors.New("unsupported SASL mechanism")
	errNestedMail      = errors.New("MAIL inside a transaction")
	errAuthInTx        = errors.New("AUTH inside a transaction")
	errNullSender      = errors.New("null sender on submission")
	errTenantSuspended = errors.New("tenant suspended")
	errBadRecipient    = errors.New("recipient is not local@domain")
	errMessageTooBig   = errors.New("message over the size limit")
	errDataAborted     = errors.New("message transfer aborted")
	errQueue           = errors.New("queue cannot persist the message")
	errTooManyConnsIP  = conncap.ErrPerAddress
	errTooManyConns    = conncap.ErrTotal
)

// senderError is a sender address the session's user (or client network)
// does not own, in the envelope (MAIL FROM) or in the From: header.
type senderError struct {
	Addr   string
	Header bool // From: header, not MAIL FROM
}

func (e *senderError) Error() string {
	if e.Header {
		return fmt.Sprintf("From: header address %q not owned", e.Addr)
	}
	return fmt.Sprintf("sender %q not owned", e.Addr)
}

// recipientsError is a RCPT over the per-message recipient limit.
type recipientsError struct{ Max int }

func (e *recipientsError) Error() string { return fmt.Sprintf("more than %d recipients", e.Max) }

// contentError is a message whose content submission refuses (headers,
// line endings). Its text is safe to show to the client.
type contentError string

func (e contentError) Error() string { return string(e) }

// Content errors; all are "550 5.6.0" (RFC 3463 §3.7: other or undefined
// media error). A message without a From: header gets 5.6.0 rather than
// 553, because nothing is wrong with the sender: the message is malformed
// (RFC 5322 §3.6 requires exactly one From: field).
const (
	errNoFrom        contentError = "message has no From: header field"
	errMultipleFrom  contentError = "message has more than one From: header field"
	errBadFrom       contentError = "From: header field is not a valid address list"
	errBadHeader     contentError = "malformed message header"
	errBareNewline   contentError = "message contains a bare CR or LF; lines must end in CRLF"
	errNULInMessage  contentError = "message contains a NUL byte"
	errHeaderTooLong contentError = "message header is too long"
)

// Reply reasons, the reason label of fairway_submission_rejections_total
// and the reason attribute of the "refused" log line.
const (
	reasonTLSRequired     = "tls_required"
	reasonAuthRequired    = "auth_required"
	reasonAuthFailed      = "auth_failed"
	reasonAuthThrottled   = "auth_throttled"
	reasonAuthProtocol    = "auth_protocol"
	reasonProtocol        = "protocol"
	reasonNullSender      = "null_sender"
	reasonSenderNotOwned  = "sender_not_owned"
	reasonTenantSuspended = "tenant_suspended"
	reasonRecipients      = "too_many_recipients"
	reasonBadRecipient    = "bad_recipient"
	reasonRateLimited     = "rate_limited"
	reasonTooBig          = "message_too_big"
	reasonContent         = "bad_content"
	reasonAborted         = "aborted"
	reasonQueue           = "queue_error"
	reasonConnsIP         = "conn_limit_ip"
	reasonConns           = "conn_limit_total"
	reasonInternal        = "internal"
)

func submitReply(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// submissionReply maps an error of the submission path to the reply the
// client gets and the reason it is counted and logged under. Unknown errors
// are internal: "451 4.3.0", details in the log only. It is the only place
// reply codes of the submission server are chosen.
func submissionReply(err error) (*smtp.SMTPError, string) {
	var (
		sender  *senderError
		rcpts   *recipientsError
		limit   *LimitError
		content contentError
	)
	switch {
	case errors.Is(err, errTLSRequired):
		// RFC 3207 §4: 530 5.7.0 until STARTTLS.
		return submitReply(530, smtp.EnhancedCode{5, 7, 0}, "Must issue a STARTTLS command first"), reasonTLSRequired
	case errors.Is(err, errAuthRequired):
		// RFC 4954 §6.
		return submitReply(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required"), reasonAuthRequired
	case errors.Is(err, errAuthFailed):
		// RFC 4954 §6: 535 5.7.8, whatever was wrong, bare local part included.
		return submitReply(535, smtp.EnhancedCode{5, 7, 8}, "Authentication credentials invalid"), reasonAuthFailed
	case errors.Is(err, errAuthThrottled):
		// RFC 4954 §6: 454 4.7.0 temporary authentication failure.
		return submitReply(454, smtp.EnhancedCode{4, 7, 0}, "Too many failed logins from your address, try again later"), reasonAuthThrottled
	case errors.Is(err, errAuthMalformed):
		return submitReply(501, smtp.EnhancedCode{5, 5, 2}, "Malformed authentication exchange"), reasonAuthProtocol
	case errors.Is(err, errAuthMechanism):
		// RFC 4954 §4: 504 5.5.4.
		return submitReply(504, smtp.EnhancedCode{5, 5, 4}, "Unsupported authentication mechanism, use PLAIN or LOGIN"), reasonAuthProtocol
	case errors.Is(err, errNestedMail):
		return submitReply(503, smtp.EnhancedCode{5, 5, 1}, "Nested MAIL command, send RSET first"), reasonProtocol
	case errors.Is(err, errAuthInTx):
		// RFC 4954 §4: AUTH is not permitted during a mail transaction.
		return submitReply(503, smtp.EnhancedCode{5, 5, 1}, "AUTH not permitted during a mail transaction"), reasonProtocol
	case errors.Is(err, errNullSender):
		return submitReply(553, smtp.EnhancedCode{5, 7, 1}, "The null sender is not accepted on submission"), reasonNullSender
	case errors.As(err, &sender):
		where := "Sender"
		if sender.Header {
			where = "From: header address"
		}
		return submitReply(553, smtp.EnhancedCode{5, 7, 1}, fmt.Sprintf("%s <%s> is not yours to send as", where, echoSafe(sender.Addr))), reasonSenderNotOwned
	case errors.Is(err, errTenantSuspended):
		return submitReply(451, smtp.EnhancedCode{4, 7, 1}, "Account suspended, try again later"), reasonTenantSuspended
	case errors.As(err, &rcpts):
		// RFC 5321 §4.5.3.1.10: 452, and the client sends the rest later.
		return submitReply(452, smtp.EnhancedCode{4, 5, 3}, fmt.Sprintf("Too many recipients, at most %d per message", rcpts.Max)), reasonRecipients
	case errors.Is(err, errBadRecipient):
		return submitReply(501, smtp.EnhancedCode{5, 1, 3}, "Recipient must be a full address (local@domain)"), reasonBadRecipient
	case errors.As(err, &limit):
		return submitReply(450, smtp.EnhancedCode{4, 7, 1}, limit.Error()), reasonRateLimited
	case errors.Is(err, errMessageTooBig), errors.Is(err, smtp.ErrDataTooLarge):
		return submitReply(552, smtp.EnhancedCode{5, 3, 4}, "Message over the size limit"), reasonTooBig
	case errors.As(err, &content):
		return submitReply(550, smtp.EnhancedCode{5, 6, 0}, "Message refused: "+string(content)), reasonContent
	case errors.Is(err, errDataAborted):
		return submitReply(451, smtp.EnhancedCode{4, 4, 2}, "Message transfer aborted"), reasonAborted
	case errors.Is(err, errQueue):
		return submitReply(451, smtp.EnhancedCode{4, 3, 0}, "Queue cannot store the message now, try again later"), reasonQueue
	case errors.Is(err, errTooManyConnsIP):
		return submitReply(421, smtp.EnhancedCode{4, 7, 0}, "Too many connections from your address, try again later"), reasonConnsIP
	case errors.Is(err, errTooManyConns):
		// RFC 3463 §3.5: 4.3.2 system not accepting network messages.
		return submitReply(421, smtp.EnhancedCode{4, 3, 2}, "Too many connections, try again later"), reasonConns
	default:
		return submitReply(451, smtp.EnhancedCode{4, 3, 0}, "Internal error, try again later"), reasonInternal
	}
}

// acceptedReply is the answer to DATA once the message is durable.
func acceptedReply(id string) *smtp.SMTPError {
	return submitReply(250, smtp.EnhancedCode{2, 0, 0}, "queued as "+id)
}

// formatReplyLine is a reply as sent on the wire, for the replies written
// outside go-smtp (connection refusals before the greeting).
func formatReplyLine(r *smtp.SMTPError, hostname string) string {
	return fmt.Sprintf("%d %d.%d.%d %s %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], hostname, r.Message)
}

// refillTime is how a refill time is written in a 450 reply: UTC, to the
// second, rounded up so that a client retrying at that time is allowed.
func refillTime(t time.Time) string {
	if r := t.Truncate(time.Second); r.Before(t) {
		t = r.Add(time.Second)
	}
	return t.UTC().Format(time.RFC3339)
}

// printable keeps a client-supplied string safe to echo in a reply: printable
// ASCII only, at most 256 bytes.
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

package relay

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// Stages of a delivery attempt, in the order they happen. DeliveryError.Stage
// names the one that failed.
const (
	StageDNS      = "dns"      // next-hop resolution (MX, A/AAAA, routes)
	StageConnect  = "connect"  // TCP connect
	StageGreeting = "greeting" // the server's 220 banner
	StageEHLO     = "ehlo"
	StageTLS      = "starttls"
	StageMail     = "mail"
	StageRcpt     = "rcpt"
	StageData     = "data" // DATA, the body, and the reply after the final dot
	StageLocal    = "local"
)

// Enhanced status codes (RFC 3463) fairway assigns to failures that carry no
// remote reply.
const (
	esBadDestSystem    = "5.1.2"  // X.1.2 bad destination system address: no MX, no A/AAAA
	esBadAddress       = "5.1.3"  // X.1.3 bad destination mailbox address syntax
	esBadSender        = "5.1.7"  // X.1.7 bad sender's mailbox address syntax
	esNullMX           = "5.1.10" // RFC 7505 section 4.2: the domain accepts no mail
	esLocalTemp        = "4.3.0"  // X.3.0 other mail system status
	esTooBig           = "5.3.4"  // X.3.4 message too big for system
	esNoAnswer         = "4.4.1"  // X.4.1 no answer from host
	esBadConnection    = "4.4.2"  // X.4.2 bad connection
	esDNSTemp          = "4.4.3"  // X.4.3 directory server failure
	esUnroutable       = "5.4.4"  // X.4.4 unable to route
	esExpired          = "4.4.7"  // X.4.7 delivery time expired
	esProtocol         = "4.5.0"  // X.5.0 other or undefined protocol status
	esNonASCIINotAllow = "5.6.7"  // RFC 6531: non-ASCII addresses not permitted
	esPermOther        = "5.0.0"
)

// maxErrorLine bounds the remote text kept in a DeliveryError, so a detail
// fits in a DSN header line and the queue's LastError.
const maxErrorLine = 512

// DeliveryError is the one error type delivery decides results with: every
// failure (DNS, connection, a remote reply, a local reason) becomes one,
// read with errors.As. Its Detail is what goes into
// fairq.RecipientResult.Detail, and from there into DSNs.
type DeliveryError struct {
	Permanent bool   // 5xx, or a permanent local reason; else retried
	Code      int    // the remote SMTP reply code; 0 when there was no reply
	Enhanced  string // RFC 3463 status, always set ("5.1.1")
	Line      string // the remote reply text on one line, or the local reason
	Host      string // the remote host (MX or route target), or the domain for DNS failures
	Stage     string // Stage* constant
	Err       error  // the underlying local error, if any (for errors.Is)
}

func (e *DeliveryError) Error() string { return e.Detail() }

func (e *DeliveryError) Unwrap() error { return e.Err }

// Detail renders the error in the one format the queue stores and DSNs read
// back (parseDetail): "<stage> <host>: [<code> ]<enhanced> <line>".
func (e *DeliveryError) Detail() string {
	return formatDetail(e.Stage, e.Host, e.Code, e.Enhanced, e.Line)
}

// connectionLevel reports whether the failure is the destination's rather
// than the message's: the connection could not be made or broke, or the
// server refused the session (4xx at greeting, EHLO or MAIL, or 421
// anywhere). Such a failure defers the whole delivery and backs off the
// (pool, site) lane.
func (e *DeliveryError) connectionLevel() bool {
	if e.Permanent {
		return false
	}
	if e.Code == 421 {
		return true
	}
	switch e.Stage {
	case StageConnect, StageGreeting, StageEHLO, StageTLS, StageMail:
		return true
	case StageRcpt, StageData:
		return e.Code == 0 // no reply: the connection broke or timed out
	}
	return false
}

func formatDetail(stage, host string, code int, enhanced, line string) string {
	if host == "" {
		host = "-"
	}
	var b strings.Builder
	b.WriteString(stage)
	b.WriteByte(' ')
	b.WriteString(host)
	b.WriteString(": ")
	if code > 0 {
		b.WriteString(strconv.Itoa(code))
		b.WriteByte(' ')
	}
	b.WriteString(enhanced)
	b.WriteByte(' ')
	b.WriteString(line)
	return b.String()
}

var detailRE = regexp.MustCompile(`(?:^|: )([a-z]+) (\S+): (?:([2-5][0-9][0-9]) )?([245]\.[0-9]{1,3}\.[0-9]{1,3}) (.*)$`)

// parsedDetail is a detail read back for a DSN.
type parsedDetail struct {
	Stage    string
	Host     string
	Code     int
	Enhanced string
	Text     string
}

// parseDetail reads a detail written by formatDetail, also when fairq put a
// prefix before it ("expired after 120h0m0s: ..."). ok is false for text in
// another format.
func parseDetail(s string) (p parsedDetail, ok bool) {
	m := detailRE.FindStringSubmatch(s)
	if m == nil {
		return parsedDetail{}, false
	}
	p = parsedDetail{Stage: m[1], Host: m[2], Enhanced: m[4], Text: m[5]}
	if m[3] != "" {
		p.Code, _ = strconv.Atoi(m[3])
	}
	if p.Host == "-" {
		p.Host = ""
	}
	return p, true
}

// oneLine makes remote or error text safe for a detail: one line, bounded.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorLine {
		s = s[:maxErrorLine]
	}
	return s
}

// localError is a failure decided without a remote reply.
func localError(permanent bool, stage, host, enhanced, line string, cause error) *DeliveryError {
	return &DeliveryError{Permanent: permanent, Enhanced: enhanced, Line: oneLine(line), Host: host, Stage: stage, Err: cause}
}

// replyError turns what the go-smtp client returned at stage into a
// DeliveryError: a *smtp.SMTPError keeps the remote code, enhanced code and
// text; anything else (I/O error, timeout, closed connection) is a temporary
// connection failure.
func replyError(err error, stage, host string) *DeliveryError {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		es := esBadConnection
		if stage == StageConnect {
			es = esNoAnswer
		}
		line := err.Error()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			line = "timed out: " + line
		}
		return localError(false, stage, host, es, line, err)
	}
	class := se.Code / 100
	e := &DeliveryError{Permanent: class == 5, Code: se.Code, Line: oneLine(se.Message), Host: host, Stage: stage}
	ec := se.EnhancedCode
	switch {
	case (class == 4 || class == 5) && ec[0] == class && ec[1] >= 0 && ec[2] >= 0:
		e.Enhanced = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	case class == 4 || class == 5:
		// No enhanced code, or one whose class contradicts the reply code:
		// the reply code decides (RFC 3463 section 2).
		e.Enhanced = strconv.Itoa(class) + ".0.0"
	default:
		// A 2xx or 3xx where another reply was due: the session is confused.
		e.Enhanced = esProtocol
	}
	return e
}

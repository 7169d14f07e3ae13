package reputation

import (
	"net/netip"
	"strings"
)

// Outcome is what became of one delivery attempt (or, for Complaint, of a
// delivered message later reported as spam).
type Outcome int

// The outcomes counted in the windows.
const (
	Delivered       Outcome = iota // 2xx after DATA
	HardBounce                     // 5xx on a recipient, not policy (5.1.1 unknown user, ...)
	PolicyRejection                // 5xx with a 5.7.x status: blocked, spam, authentication
	Deferral                       // 4xx or a connection failure: will be retried
	Complaint                      // an ARF report (or other feedback loop) about a delivered message
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"delivered", "hard_bounce", "policy_rejection", "deferral", "complaint"}

// String returns the outcome's name as used in metrics and reports.
func (o Outcome) String() string {
	if o < 0 || o >= numOutcomes {
		return "unknown"
	}
	return outcomeNames[o]
}

// OutcomeOf maps an SMTP reply (code, RFC 3463 enhanced status) to an
// outcome: 2xx delivered, 4xx deferral, 5xx with a 5.7.x status policy
// rejection, other 5xx hard bounce. With no reply code (a local failure),
// the enhanced status's class decides.
func OutcomeOf(code int, enhanced string) Outcome {
	class := code / 100
	if code == 0 && enhanced != "" {
		class = int(enhanced[0] - '0')
	}
	switch class {
	case 2:
		return Delivered
	case 5:
		if strings.HasPrefix(enhanced, "5.7.") {
			return PolicyRejection
		}
		return HardBounce
	default:
		return Deferral
	}
}

// Event is one delivery outcome, as relay reports it after each transaction
// (Count recipients with the same result), or a complaint.
type Event struct {
	Tenant  string
	Source  netip.Addr // the source IP the attempt left from; invalid: none
	Site    string     // the destination site (MX host set or route target); "": unknown
	Outcome Outcome
	Count   int // recipients with this outcome; 0 counts as 1
	// The remote reply, read for receiver feedback (rate limited, blocked).
	Code     int
	Enhanced string
	Line     string
}

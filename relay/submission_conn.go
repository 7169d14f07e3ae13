package relay

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"time"

	"fairway/tenant/conncap"
)

// Connection caps of the submission server: at most MaxConnsPerIP
// connections per client address (an IPv4 address, or an IPv6 /64, what
// one client usually holds) and MaxConns in total. A connection over a cap
// gets one 421 line instead of the greeting (after the TLS handshake on an
// implicit-TLS port) and is closed.

// maxRefusing bounds the refusals in progress, each a goroutine writing
// one line; past it, connections over a cap are closed without a word.
const maxRefusing = 64

// refuseTimeout bounds one refusal (handshake and write).
const refuseTimeout = 5 * time.Second

// capListener admits connections under the caps and refuses the others.
type capListener struct {
	net.Listener
	s           *Submission
	implicitTLS bool
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := l.s.conns.Admit(c)
		if err == nil {
			return tc, nil
		}
		l.s.refuseConn(c, err, l.implicitTLS)
	}
}

// refuseConn answers a connection over a cap with its 421 and closes it,
// in a goroutine of its own (bounded by maxRefusing), so that a slow
// client does not hold up Accept.
func (s *Submission) refuseConn(c net.Conn, err error, implicitTLS bool) {
	r, reason := submissionReply(err)
	s.metrics.rejections.WithLabelValues("", reason).Inc()
	s.log.Info("refused", "reason", reason, "remote", conncap.RemoteIP(c).String(),
		"reply", strconv.Itoa(r.Code)+" "+strconv.Itoa(r.EnhancedCode[0])+"."+strconv.Itoa(r.EnhancedCode[1])+"."+strconv.Itoa(r.EnhancedCode[2]))
	s.refuser.Refuse(c, func(c net.Conn) {
		w := c
		if implicitTLS {
			tc := tls.Server(c, s.opts.TLS)
			if tc.Handshake() != nil {
				return
			}
			defer tc.Close()
			w = tc
		}
		io.WriteString(w, formatReplyLine(r, s.opts.Hostname))
	})
}

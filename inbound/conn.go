package inbound

import (
	"io"
	"net"
	"time"

	"fairway/tenant/conncap"
)

// Connection caps of the MX server: at most MaxConnsPerIP connections per
// client address (an IPv4 address, or an IPv6 /64, what one client usually
// holds) and MaxConns in total; loopback is counted like any other client.
// A connection over a cap gets one 421 line instead of the greeting and is
// closed.

// maxRefusing bounds the refusals in progress, each a goroutine writing
// one line; past it, connections over a cap are closed without a word.
const maxRefusing = 64

// refuseTimeout bounds one refusal.
const refuseTimeout = 5 * time.Second

// capListener admits connections under the caps and refuses the others.
type capListener struct {
	net.Listener
	m *MX
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := l.m.conns.Admit(c)
		if err == nil {
			return tc, nil
		}
		l.m.refuseConn(c, err)
	}
}

// refuseConn answers a connection over a cap with its 421 and closes it,
// in a goroutine of its own (bounded by maxRefusing).
func (m *MX) refuseConn(c net.Conn, err error) {
	r, reason := mxReply(err)
	m.metrics.rejections.WithLabelValues(reason).Inc()
	m.log.Info("refused", "reason", reason, "remote", conncap.RemoteIP(c).String(), "reply", replyCode(r))
	m.refuser.Refuse(c, func(c net.Conn) { io.WriteString(c, formatReplyLine(r, m.opts.Hostname)) })
}

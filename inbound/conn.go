package inbound

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
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

type connTracker struct {
	maxPerIP, maxTotal int

	mu    sync.Mutex
	perIP map[netip.Prefix]int
	live  map[*trackedConn]struct{}
	seq   uint64
}

func newConnTracker(maxPerIP, maxTotal int) *connTracker {
	return &connTracker{maxPerIP: maxPerIP, maxTotal: maxTotal,
		perIP: map[netip.Prefix]int{}, live: map[*trackedConn]struct{}{}}
}

// clientKey is what the per-address cap counts by.
func clientKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return netip.Prefix{}
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// admit counts c in, or says which cap it is over.
func (t *connTracker) admit(c net.Conn) (*trackedConn, error) {
	key := clientKey(connRemoteIP(c))
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.live) >= t.maxTotal {
		return nil, errTooManyConns
	}
	if t.perIP[key] >= t.maxPerIP {
		return nil, errTooManyConnsIP
	}
	t.perIP[key]++
	t.seq++
	tc := &trackedConn{Conn: c, t: t, key: key, id: "mx" + strconv.FormatUint(t.seq, 36)}
	t.live[tc] = struct{}{}
	return tc, nil
}

func (t *connTracker) release(tc *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.live[tc]; !ok {
		return
	}
	delete(t.live, tc)
	if t.perIP[tc.key]--; t.perIP[tc.key] <= 0 {
		delete(t.perIP, tc.key)
	}
}

// closeAll closes every live connection.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.live))
	for tc := range t.live {
		conns = append(conns, tc)
	}
	t.mu.Unlock()
	for _, tc := range conns {
		tc.Close()
	}
}

// trackedConn is an admitted connection; closing it releases its place.
type trackedConn struct {
	net.Conn
	t    *connTracker
	key  netip.Prefix
	id   string // the conn attribute of the session's log lines
	once sync.Once
}

// Close releases the connection's place first, so that a client that
// sees the connection end may connect again at once.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.t.release(c) })
	return c.Conn.Close()
}

// trackedOf finds the trackedConn under c (under TLS, if any).
func trackedOf(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}

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
		tc, err := l.m.conns.admit(c)
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
	m.log.Info("refused", "reason", reason, "remote", connRemoteIP(c).String(), "reply", replyCode(r))
	select {
	case m.refuseSlots <- struct{}{}:
	default:
		c.Close()
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.refuseSlots
		c.Close()
		return
	}
	m.refusing.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.refusing.Done()
		defer func() { <-m.refuseSlots }()
		defer c.Close()
		defer m.recoverPanic("refuse connection")
		if c.SetDeadline(time.Now().Add(refuseTimeout)) != nil {
			return
		}
		io.WriteString(c, formatReplyLine(r, m.opts.Hostname))
	}()
}

// connRemoteIP is the client's address, unmapped; invalid for non-IP conns.
func connRemoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

package relay

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
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
	tc := &trackedConn{Conn: c, t: t, key: key, id: strconv.FormatUint(t.seq, 36)}
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

// counts returns the connections from ip's key and in total (tests).
func (t *connTracker) counts(ip netip.Addr) (perIP, total int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.perIP[clientKey(ip)], len(t.live)
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
	s           *Submission
	implicitTLS bool
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, err := l.s.conns.admit(c)
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
	s.log.Info("refused", "reason", reason, "remote", connRemoteIP(c).String(),
		"reply", strconv.Itoa(r.Code)+" "+strconv.Itoa(r.EnhancedCode[0])+"."+strconv.Itoa(r.EnhancedCode[1])+"."+strconv.Itoa(r.EnhancedCode[2]))
	select {
	case s.refuseSlots <- struct{}{}:
	default:
		c.Close()
		return
	}
	// Added under s.mu, so that no refusal starts once Shutdown waits.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.refuseSlots
		c.Close()
		return
	}
	s.refusing.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.refusing.Done()
		defer func() { <-s.refuseSlots }()
		defer c.Close()
		defer s.recoverPanic("refuse connection")
		if c.SetDeadline(time.Now().Add(refuseTimeout)) != nil {
			return
		}
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
	}()
}

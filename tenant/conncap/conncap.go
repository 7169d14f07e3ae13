// Package conncap counts a server's connections per client address and in
// total, for the caps of the SMTP servers (relay's submission, inbound's
// MX): a listener admits each accepted connection here and refuses the
// ones over a cap, and closing an admitted connection gives its place back.
//
// A client address is an IPv4 address or an IPv6 /64, what one client
// usually holds. Loopback is counted like any other client.
package conncap

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// The caps an Admit can be over.
var (
	ErrPerAddress = errors.New("too many connections from the client's address")
	ErrTotal      = errors.New("too many connections")
)

// Tracker counts live connections. It is safe for concurrent use.
type Tracker struct {
	maxPerIP, maxTotal int
	idPrefix           string

	mu    sync.Mutex
	perIP map[netip.Prefix]int
	live  map[*Conn]struct{}
	seq   uint64
}

// New returns a tracker with the two caps; admitted connections are named
// idPrefix followed by a sequence number (the conn attribute of logs).
func New(maxPerIP, maxTotal int, idPrefix string) *Tracker {
	return &Tracker{maxPerIP: maxPerIP, maxTotal: maxTotal, idPrefix: idPrefix,
		perIP: map[netip.Prefix]int{}, live: map[*Conn]struct{}{}}
}

// ClientKey is what the per-address cap counts by: the address for IPv4,
// its /64 for IPv6; the zero Prefix for an invalid address.
func ClientKey(ip netip.Addr) netip.Prefix {
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

// Admit counts c in, or returns ErrTotal or ErrPerAddress.
func (t *Tracker) Admit(c net.Conn) (*Conn, error) {
	key := ClientKey(RemoteIP(c))
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.live) >= t.maxTotal {
		return nil, ErrTotal
	}
	if t.perIP[key] >= t.maxPerIP {
		return nil, ErrPerAddress
	}
	t.perIP[key]++
	t.seq++
	tc := &Conn{Conn: c, t: t, key: key, ID: t.idPrefix + strconv.FormatUint(t.seq, 36)}
	t.live[tc] = struct{}{}
	return tc, nil
}

func (t *Tracker) release(tc *Conn) {
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

// CloseAll closes every live connection.
func (t *Tracker) CloseAll() {
	t.mu.Lock()
	conns := make([]*Conn, 0, len(t.live))
	for tc := range t.live {
		conns = append(conns, tc)
	}
	t.mu.Unlock()
	for _, tc := range conns {
		tc.Close()
	}
}

// Counts returns the live connections from ip's client key and in total.
func (t *Tracker) Counts(ip netip.Addr) (perAddress, total int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.perIP[ClientKey(ip)], len(t.live)
}

// Conn is an admitted connection; closing it releases its place.
type Conn struct {
	net.Conn
	ID   string // the conn attribute of the session's log lines
	t    *Tracker
	key  netip.Prefix
	once sync.Once
}

// Close releases the connection's place first, so that a client that sees
// the connection end may connect again at once.
func (c *Conn) Close() error {
	c.once.Do(func() { c.t.release(c) })
	return c.Conn.Close()
}

// Of finds the admitted Conn under c (under TLS, if any); nil if none.
func Of(c net.Conn) *Conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*Conn)
	return t
}

// RemoteIP is c's client address, unmapped; invalid for non-IP conns.
func RemoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

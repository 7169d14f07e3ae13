package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpConn is one client connection to a remote MTA, ready for a
// transaction (greeted, EHLO done, TLS started when offered).
type smtpConn struct {
	c      *smtp.Client
	raw    net.Conn // what c runs on (the TLS connection once started): for the body's write deadline
	host   string   // remote host name
	addr   netip.AddrPort
	source Source
	tls    string // negotiated TLS version, "" for plaintext

	idleSince time.Time
	uses      int // transactions run on it

	// pr and pw carry pipelined transactions (delivery_pipeline.go).
	pr *textproto.Reader
	pw *bufio.Writer
}

// close ends the session politely (QUIT, bounded by a short timeout) and
// closes the connection.
func (sc *smtpConn) close() {
	sc.c.CommandTimeout = quitTimeout
	if err := sc.c.Quit(); err != nil {
		sc.c.Close()
	}
}

// abort closes the connection without QUIT: the session is broken.
func (sc *smtpConn) abort() { sc.c.Close() }

const quitTimeout = 5 * time.Second

// wroteConn notes whether anything was written on the connection, so a
// failure in go-smtp's Hello can be told apart: nothing written means the
// greeting failed, else EHLO did.
type wroteConn struct {
	net.Conn
	wrote atomic.Bool
}

func (w *wroteConn) Write(b []byte) (int, error) {
	w.wrote.Store(true)
	return w.Conn.Write(b)
}

// resumedConn replays a 220 line before the TLS stream. go-smtp v0.25 starts
// TLS only inside NewClientStartTLS, whose EHLO before STARTTLS always says
// "localhost"; fairway must introduce itself with the pool source's name, so
// it sends STARTTLS itself and hands the TLS connection to a new client, which
// reads this line as its greeting and then says EHLO again (RFC 3207 section
// 4.2 requires the EHLO after TLS anyway).
type resumedConn struct {
	net.Conn
	pending []byte
}

func (r *resumedConn) Read(b []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(b, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(b)
}

// byteReader reads one byte per call, so the STARTTLS reply is read without
// consuming anything after it.
type byteReader struct{ r io.Reader }

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return b.r.Read(p)
}

// errTLSHandshake marks a failed TLS handshake: the caller retries the host
// without TLS.
var errTLSHandshake = errors.New("TLS handshake failed")

// dial connects to addr from src, reads the greeting, says EHLO as src's
// name and starts TLS when the server offers it and useTLS is set.
func (d *Delivery) dial(ctx context.Context, host string, addr netip.AddrPort, src Source, useTLS bool) (*smtpConn, *DeliveryError) {
	dialer := net.Dialer{Timeout: d.opts.DialTimeout}
	if src.IP.IsValid() {
		dialer.LocalAddr = &net.TCPAddr{IP: src.IP.AsSlice()}
	}
	ehlo := src.EHLO
	if ehlo == "" {
		ehlo = d.opts.Hostname
	}
	conn, err := dialer.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, replyError(err, StageConnect, host)
	}
	wc := &wroteConn{Conn: conn}
	c := d.newClient(wc)
	if err := c.Hello(ehlo); err != nil {
		c.Close()
		stage := StageEHLO
		if !wc.wrote.Load() {
			stage = StageGreeting
		}
		return nil, replyError(err, stage, host)
	}
	sc := &smtpConn{c: c, raw: wc, host: host, addr: addr, source: Source{IP: src.IP, EHLO: ehlo}}
	if ok, _ := c.Extension("STARTTLS"); !ok || !useTLS {
		return sc, nil
	}
	tc, derr := d.startTLS(ctx, conn, host)
	if derr != nil {
		if errors.Is(derr.Err, errSTARTTLSRefused) {
			// The server declined after offering it: go on in plaintext.
			d.log.Debug("STARTTLS refused, continuing in plaintext", "host", host, "reply", derr.Line)
			return sc, nil
		}
		c.Close()
		return nil, derr
	}
	c2 := d.newClient(&resumedConn{Conn: tc, pending: []byte("220 " + host + " TLS started\r\n")})
	if err := c2.Hello(ehlo); err != nil {
		c2.Close()
		return nil, replyError(err, StageEHLO, host)
	}
	st := tc.ConnectionState()
	sc.c, sc.raw, sc.tls = c2, tc, tls.VersionName(st.Version)
	d.log.Debug("TLS started", "host", host, "addr", addr.String(), "tls", sc.tls,
		"cipher", tls.CipherSuiteName(st.CipherSuite))
	return sc, nil
}

func (d *Delivery) newClient(conn net.Conn) *smtp.Client {
	c := smtp.NewClient(conn)
	c.CommandTimeout = d.opts.CommandTimeout
	c.SubmissionTimeout = d.opts.DataTimeout
	return c
}

var errSTARTTLSRefused = errors.New("STARTTLS refused")

// startTLS sends STARTTLS on conn (whose go-smtp client has just finished
// EHLO, so nothing is buffered) and runs the TLS handshake.
func (d *Delivery) startTLS(ctx context.Context, conn net.Conn, host string) (*tls.Conn, *DeliveryError) {
	deadline := time.Now().Add(d.opts.CommandTimeout)
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, replyError(err, StageTLS, host)
	}
	defer conn.SetDeadline(time.Time{}) // go-smtp sets its own per command
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return nil, replyError(err, StageTLS, host)
	}
	code, msg, err := textproto.NewReader(bufio.NewReaderSize(byteReader{conn}, 16)).ReadResponse(220)
	if err != nil {
		var pe *textproto.Error
		if errors.As(err, &pe) {
			de := replyError(&smtp.SMTPError{Code: code, Message: msg}, StageTLS, host)
			if code != 421 {
				de.Err = errSTARTTLSRefused
			}
			return nil, de
		}
		return nil, replyError(err, StageTLS, host)
	}
	// Opportunistic TLS between MTAs (RFC 3207, RFC 7435): the server's
	// certificate is not verified, which is the norm for MTA-to-MTA TLS
	// without DANE or MTA-STS: an MTA that insisted on a valid certificate
	// would have to fall back to plaintext for the many servers without one.
	// Encryption still defeats passive eavesdropping.
	tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, localError(false, StageTLS, host, esBadConnection, err.Error(), errors.Join(errTLSHandshake, err))
	}
	return tc, nil
}

// idleKey names the connections a delivery may reuse: same source pool, same
// destination site.
// idleKey says which idle connections a transaction may take: same pool and
// site, and, when reputation picks sources, the same source address.
type idleKey struct {
	pool, site string
	source     netip.Addr
}

// idlePool keeps a few idle, healthy connections per (pool, site). A
// connection is taken by a worker delivering to that site, which resets it
// (RSET) before use; it is discarded on any error, after IdleTimeout unused,
// and after MaxConnMessages transactions.
type idlePool struct {
	mu      sync.Mutex
	conns   map[idleKey][]*smtpConn // oldest first
	max     int
	timeout time.Duration
	closed  bool
}

func newIdlePool(maxPerSite int, timeout time.Duration) *idlePool {
	return &idlePool{conns: map[idleKey][]*smtpConn{}, max: maxPerSite, timeout: timeout}
}

// get returns the most recently used idle connection for k that has not
// been idle too long, closing expired ones; nil if none.
func (p *idlePool) get(k idleKey, now time.Time) *smtpConn {
	var expired []*smtpConn
	var got *smtpConn
	p.mu.Lock()
	list := p.conns[k]
	for len(list) > 0 {
		sc := list[len(list)-1]
		list = list[:len(list)-1]
		if now.Sub(sc.idleSince) >= p.timeout {
			expired = append(expired, sc)
			continue
		}
		got = sc
		break
	}
	if len(list) == 0 {
		delete(p.conns, k)
	} else {
		p.conns[k] = list
	}
	p.mu.Unlock()
	for _, sc := range expired {
		sc.close()
	}
	return got
}

// put offers a healthy connection back; it reports false (and the caller
// closes it) when the site already has enough idle ones or the pool is
// closed.
func (p *idlePool) put(k idleKey, sc *smtpConn, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns[k]) >= p.max {
		return false
	}
	sc.idleSince = now
	p.conns[k] = append(p.conns[k], sc)
	return true
}

// sweep closes connections idle for too long.
func (p *idlePool) sweep(now time.Time) {
	var expired []*smtpConn
	p.mu.Lock()
	for k, list := range p.conns {
		kept := list[:0]
		for _, sc := range list {
			if now.Sub(sc.idleSince) >= p.timeout {
				expired = append(expired, sc)
			} else {
				kept = append(kept, sc)
			}
		}
		if len(kept) == 0 {
			delete(p.conns, k)
		} else {
			p.conns[k] = kept
		}
	}
	p.mu.Unlock()
	for _, sc := range expired {
		sc.close()
	}
}

// closeAll closes every idle connection; later puts are refused.
func (p *idlePool) closeAll() {
	p.mu.Lock()
	p.closed = true
	all := p.conns
	p.conns = map[idleKey][]*smtpConn{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, list := range all {
		for _, sc := range list {
			wg.Go(sc.close) // each QUIT is bounded by quitTimeout
		}
	}
	wg.Wait()
}

// count returns how many idle connections the pool holds.
func (p *idlePool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, list := range p.conns {
		n += len(list)
	}
	return n
}

// needsUTF8 reports whether an address needs SMTPUTF8 (RFC 6531).
func needsUTF8(addrs ...string) bool {
	for _, a := range addrs {
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}

// validAddress reports whether an address can go into MAIL or RCPT: no
// control characters, spaces or angle brackets.
func validAddress(a string) bool {
	return !strings.ContainsFunc(a, func(r rune) bool { return r < 0x21 || r == 0x7f || r == '<' || r == '>' })
}

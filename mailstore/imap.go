package mailstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/prometheus/client_golang/prometheus"

	"fairway/tenant"
)

// IMAPOptions configure the IMAP server. Store and TLS are required.
//
// Timeouts are go-imap's: 30 s to read a command (and before login), 5 min
// for a literal (APPEND), 35 min idle between commands once logged in
// (IDLE included), 30 s to write a response.
type IMAPOptions struct {
	Store    *Store
	Hostname string
	// TLS serves STARTTLS on ServeSTARTTLS listeners and the handshake on
	// ServeImplicitTLS listeners. Before STARTTLS, LOGIN and AUTHENTICATE
	// are refused and LOGINDISABLED is advertised.
	TLS        *tls.Config
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	// Caps on concurrent logged-in connections when the tenant's policy
	// sets none: per tenant (all its users) and per user. Defaults 200
	// and 20.
	DefaultTenantConnections int
	DefaultUserConnections   int
	// MaxConnections caps all connections, logged in or not (default
	// 5000); more are greeted with BYE [LIMIT] and closed.
	MaxConnections int
	// AuthLimiter refuses logins ([UNAVAILABLE]) from an address with too
	// many failed ones, before the password is checked; default
	// tenant.NewAuthLimiter. Share one with submission.
	AuthLimiter AuthLimiter
}

// AuthLimiter throttles password guessing per client address
// (*tenant.AuthLimiter).
type AuthLimiter interface {
	Allow(ip netip.Addr, now time.Time) bool
	Failed(ip netip.Addr, now time.Time)
}

const (
	defaultTenantConns = 200
	defaultUserConns   = 20
	defaultMaxConns    = 5000
)

// IMAPServer serves the store over IMAP4rev1/IMAP4rev2.
type IMAPServer struct {
	o       IMAPOptions
	store   *Store
	log     *slog.Logger
	srv     *imapserver.Server
	limits  *connLimits
	metrics *imapMetrics
	conns   atomic.Int64 // all open connections
	nextID  atomic.Uint64

	mu       sync.Mutex // guards shutdown and wg.Add against wg.Wait
	shutdown bool
	wg       sync.WaitGroup // sessions: Add at accept, Done at session close
}

type imapMetrics struct {
	connections *prometheus.GaugeVec   // logged in, by tenant
	limited     *prometheus.CounterVec // refused by a cap, by tenant and scope
	logins      *prometheus.CounterVec // by result
	open        prometheus.GaugeFunc
}

// NewIMAPServer makes the IMAP server; call ServeSTARTTLS and
// ServeImplicitTLS with listeners.
func NewIMAPServer(o IMAPOptions) (*IMAPServer, error) {
	if o.Store == nil {
		return nil, errors.New("mailstore: IMAPOptions.Store is required")
	}
	if o.TLS == nil {
		return nil, errors.New("mailstore: IMAPOptions.TLS is required (LOGIN is never allowed in clear text)")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DefaultTenantConnections <= 0 {
		o.DefaultTenantConnections = defaultTenantConns
	}
	if o.DefaultUserConnections <= 0 {
		o.DefaultUserConnections = defaultUserConns
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = defaultMaxConns
	}
	if o.AuthLimiter == nil {
		o.AuthLimiter = tenant.NewAuthLimiter(tenant.AuthLimiterOptions{})
	}
	s := &IMAPServer{
		o: o, store: o.Store, log: o.Logger.With("component", "imap"),
		limits: &connLimits{tenants: map[string]int{}, users: map[string]int{}},
	}
	s.metrics = &imapMetrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fairway_imap_connections", Help: "Logged-in IMAP connections by tenant.",
		}, []string{"tenant"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_imap_connections_limited_total", Help: "IMAP logins refused by a connection cap, by tenant and scope (tenant, user).",
		}, []string{"tenant", "scope"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairway_imap_logins_total", Help: "IMAP login attempts by result (ok, failed, limited).",
		}, []string{"result"}),
		open: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fairway_imap_open_connections", Help: "Open IMAP connections, logged in or not.",
		}, func() float64 { return float64(s.conns.Load()) }),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.metrics.connections, s.metrics.limited, s.metrics.logins, s.metrics.open} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("mailstore: register metrics: %w", err)
			}
		}
	}
	caps := imap.CapSet{}
	for _, c := range []imap.Cap{
		imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapNamespace, imap.CapUIDPlus, imap.CapMove,
		imap.CapSpecialUse, imap.CapListExtended, imap.CapListStatus, imap.CapStatusSize,
		imap.CapChildren, imap.CapESearch, imap.CapSearchRes, imap.CapLiteralPlus,
	} {
		caps[c] = struct{}{}
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       caps,
		Logger:     imapLogger{s.log},
		TLSConfig:  o.TLS,
	})
	return s, nil
}

type imapLogger struct{ log *slog.Logger }

func (l imapLogger) Printf(format string, args ...any) { l.log.Warn(fmt.Sprintf(format, args...)) }

// ServeSTARTTLS serves port-143-style connections: clear text until
// STARTTLS, LOGINDISABLED before it.
func (s *IMAPServer) ServeSTARTTLS(ln net.Listener) error {
	return s.srv.Serve(&capListener{Listener: ln, s: s})
}

// ServeImplicitTLS serves port-993-style connections: TLS from the first
// byte.
func (s *IMAPServer) ServeImplicitTLS(ln net.Listener) error {
	return s.srv.Serve(tls.NewListener(&capListener{Listener: ln, s: s}, s.o.TLS))
}

// Shutdown closes the listeners and every connection, then waits for the
// sessions to end or ctx to expire. (go-imap has no graceful drain; IMAP
// clients reconnect.)
func (s *IMAPServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	s.mu.Unlock()
	err := s.srv.Close()
	done := make(chan struct{})
	go func() {
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic waiting for sessions", "panic", v)
			}
		}()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("mailstore: imap shutdown: %w", err)
	}
	return nil
}

// capListener refuses connections over MaxConnections and counts the
// open ones.
type capListener struct {
	net.Listener
	s *IMAPServer
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.s.conns.Add(1); n > int64(l.s.o.MaxConnections) {
			l.s.conns.Add(-1)
			l.s.log.Warn("connection refused: server connection cap", "remote", c.RemoteAddr().String(), "cap", l.s.o.MaxConnections)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("* BYE [LIMIT] Too many connections, try again later\r\n"))
			c.Close()
			continue
		}
		l.s.mu.Lock()
		if l.s.shutdown {
			l.s.mu.Unlock()
			l.s.conns.Add(-1)
			c.Close()
			return nil, net.ErrClosed
		}
		l.s.wg.Add(1) // go-imap makes a session of every accepted conn
		l.s.mu.Unlock()
		return &countedConn{Conn: c, s: l.s}, nil
	}
}

type countedConn struct {
	net.Conn
	s    *IMAPServer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.s.conns.Add(-1) })
	return c.Conn.Close()
}

// connLimits counts logged-in connections per tenant and per user.
type connLimits struct {
	mu      sync.Mutex
	tenants map[string]int
	users   map[string]int
}

// acquire takes one connection of tenant and user, or says which cap
// refused it ("tenant" or "user").
func (l *connLimits) acquire(tenantName, user string, tenantCap, userCap int) (release func(), scope string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tenants[tenantName] >= tenantCap {
		return nil, "tenant"
	}
	if l.users[user] >= userCap {
		return nil, "user"
	}
	l.tenants[tenantName]++
	l.users[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.tenants[tenantName]--; l.tenants[tenantName] <= 0 {
				delete(l.tenants, tenantName)
			}
			if l.users[user]--; l.users[user] <= 0 {
				delete(l.users, user)
			}
		})
	}, ""
}

func (s *IMAPServer) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	id := strconv.FormatUint(s.nextID.Add(1), 10)
	remote := ""
	var ip netip.Addr
	if nc := c.NetConn(); nc != nil {
		remote = nc.RemoteAddr().String()
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			ip = ap.Addr().Unmap()
		}
	}
	sess := &session{srv: s, store: s.store, ip: ip, log: s.log.With("conn", id, "remote", remote)}
	return sess, nil, nil
}

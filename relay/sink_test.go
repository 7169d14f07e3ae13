package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is a recording SMTP server on a loopback address, built on go-smtp's
// server: the remote side of delivery tests.
type sink struct {
	addr string // host:port
	port int
	srv  *smtp.Server

	mu      sync.Mutex
	mode    sinkMode
	reject  map[string]*smtp.SMTPError // per-recipient RCPT replies
	conns   int                        // connections accepted
	remotes []netip.Addr               // remote address of each connection
	ehlos   []string                   // every EHLO name a session started with
	mails   int                        // MAIL commands seen
	msgs    []sinkMsg

	release chan struct{} // closed at cleanup: ends slow replies
	slowFor time.Duration
}

// sinkMode is how the sink answers.
type sinkMode int

const (
	sinkAccept   sinkMode = iota
	sinkSlow              // the reply to MAIL comes after slowFor (or at cleanup)
	sinkTempFail          // 451 4.3.2 to MAIL
	sinkPermFail          // 550 5.1.1 to every RCPT
	sinkRefuse            // 421 4.7.0 to EHLO: the session is refused
)

// sinkMsg is one message the sink accepted.
type sinkMsg struct {
	Remote netip.Addr
	EHLO   string
	TLS    bool
	From   string
	Rcpts  []string
	Data   []byte
	// The DSN parameters received (a sink with DSN on).
	MailOpts *smtp.MailOptions
	RcptOpts []*smtp.RcptOptions
}

type sinkOptions struct {
	IP   string // default 127.0.0.1
	Port int    // default any
	TLS  bool   // offer STARTTLS with a self-signed certificate
	// BrokenTLS offers STARTTLS but only TLS 1.1, which fairway's client
	// refuses: every handshake fails.
	BrokenTLS bool
	DSN       bool // offer DSN (RFC 3461)
}

func startSink(t *testing.T, o sinkOptions) *sink {
	t.Helper()
	s, err := tryStartSink(t, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryStartSink(t *testing.T, o sinkOptions) (*sink, error) {
	t.Helper()
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.IP, strconv.Itoa(o.Port)))
	if err != nil {
		return nil, err
	}
	s := &sink{
		addr:    ln.Addr().String(),
		port:    ln.Addr().(*net.TCPAddr).Port,
		reject:  map[string]*smtp.SMTPError{},
		release: make(chan struct{}),
		slowFor: 10 * time.Second,
	}
	srv := smtp.NewServer(sinkBackend{s})
	srv.Domain = "sink.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.EnableDSN = o.DSN
	if o.TLS || o.BrokenTLS {
		cert, err := LoadOrCreateCertificate("", "", t.TempDir(), "sink.test", time.Now())
		if err != nil {
			ln.Close()
			return nil, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		if o.BrokenTLS {
			srv.TLSConfig.MinVersion = tls.VersionTLS10
			srv.TLSConfig.MaxVersion = tls.VersionTLS11
		}
	}
	s.srv = srv
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(countingListener{Listener: ln, s: s})
	}()
	t.Cleanup(func() {
		close(s.release)
		srv.Close()
		<-served
	})
	return s, nil
}

func (s *sink) setMode(m sinkMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// rejectRcpt makes RCPT TO:<rcpt> answer with code and enhanced code.
func (s *sink) rejectRcpt(rcpt string, code int, ec smtp.EnhancedCode, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject[rcpt] = &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

func (s *sink) messages() []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *sink) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *sink) mailCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mails
}

func (s *sink) ehloNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ehlos)
}

// countingListener counts and records accepted connections.
type countingListener struct {
	net.Listener
	s *sink
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		l.s.mu.Lock()
		l.s.conns++
		l.s.remotes = append(l.s.remotes, ap.Addr())
		l.s.mu.Unlock()
	}
	return c, err
}

type sinkBackend struct{ s *sink }

func (b sinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ehlos = append(s.ehlos, c.Hostname())
	if s.mode == sinkRefuse {
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too busy, come back later"}
	}
	return &sinkSession{s: s, c: c}, nil
}

type sinkSession struct {
	s        *sink
	c        *smtp.Conn
	from     string
	rcpts    []string
	mailOpts *smtp.MailOptions
	rcptOpts []*smtp.RcptOptions
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.mailOpts = opts
	s := ss.s
	s.mu.Lock()
	s.mails++
	mode := s.mode
	s.mu.Unlock()
	switch mode {
	case sinkSlow:
		select {
		case <-s.release:
		case <-time.After(s.slowFor):
		}
	case sinkTempFail:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "system not accepting mail right now"}
	}
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s := ss.s
	s.mu.Lock()
	rej := s.reject[to]
	mode := s.mode
	s.mu.Unlock()
	if rej != nil {
		return rej
	}
	if mode == sinkPermFail {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	ss.rcpts = append(ss.rcpts, to)
	ss.rcptOpts = append(ss.rcptOpts, opts)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(ss.rcpts) == 0 {
		return errors.New("no recipients")
	}
	ap, _ := netip.ParseAddrPort(ss.c.Conn().RemoteAddr().String())
	_, isTLS := ss.c.TLSConnectionState()
	m := sinkMsg{Remote: ap.Addr(), EHLO: ss.c.Hostname(), TLS: isTLS, From: ss.from, Rcpts: slices.Clone(ss.rcpts), Data: data,
		MailOpts: ss.mailOpts, RcptOpts: slices.Clone(ss.rcptOpts)}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, m)
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset() {
	ss.from, ss.rcpts, ss.mailOpts, ss.rcptOpts = "", nil, nil, nil
}

func (ss *sinkSession) Logout() error { return nil }

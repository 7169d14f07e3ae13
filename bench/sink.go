package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Arrival is one message as the sink received it.
type Arrival struct {
	Stamp
	Sink   string    // the name of the sink (destination) that took it
	At     time.Time // when the sink answered 250 to its DATA
	Source string    // the relay's source IP
}

// Recorder collects the arrivals of every sink in a run. It is safe for
// concurrent use.
type Recorder struct {
	mu        sync.Mutex
	byID      map[string][]Arrival
	unstamped int
	attempts  map[string][]time.Time // sink name -> MAIL commands seen
	conns     map[string]int         // sink name -> connections accepted
	changed   chan struct{}          // closed and replaced on every arrival
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{byID: map[string][]Arrival{}, attempts: map[string][]time.Time{},
		conns: map[string]int{}, changed: make(chan struct{})}
}

func (r *Recorder) add(a Arrival) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[a.ID] = append(r.byID[a.ID], a)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Recorder) addUnstamped() {
	r.mu.Lock()
	r.unstamped++
	r.mu.Unlock()
}

func (r *Recorder) addAttempt(sink string, at time.Time) {
	r.mu.Lock()
	r.attempts[sink] = append(r.attempts[sink], at)
	r.mu.Unlock()
}

func (r *Recorder) addConn(sink string) {
	r.mu.Lock()
	r.conns[sink]++
	r.mu.Unlock()
}

// Arrivals returns every arrival of id, first first.
func (r *Recorder) Arrivals(id string) []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Arrival(nil), r.byID[id]...)
}

// First returns the first arrival of every id.
func (r *Recorder) First() map[string]Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Arrival, len(r.byID))
	for id, as := range r.byID {
		out[id] = as[0]
	}
	return out
}

// Counts returns how many times each id arrived.
func (r *Recorder) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.byID))
	for id, as := range r.byID {
		out[id] = len(as)
	}
	return out
}

// Unstamped is the number of messages that arrived without a stamp.
func (r *Recorder) Unstamped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unstamped
}

// Attempts returns the times of the MAIL commands sink saw.
func (r *Recorder) Attempts(sink string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.attempts[sink]...)
}

// Conns returns how many connections sink accepted.
func (r *Recorder) Conns(sink string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[sink]
}

// WaitFor waits until every id in ids has arrived at least once, ctx ends,
// or nothing new arrives for quiet. It returns how many are still missing.
func (r *Recorder) WaitFor(ctx context.Context, ids []string, quiet time.Duration) int {
	for {
		r.mu.Lock()
		missing := 0
		for _, id := range ids {
			if len(r.byID[id]) == 0 {
				missing++
			}
		}
		ch := r.changed
		r.mu.Unlock()
		if missing == 0 {
			return 0
		}
		t := time.NewTimer(quiet)
		select {
		case <-ctx.Done():
			t.Stop()
			return missing
		case <-t.C:
			return missing
		case <-ch:
			t.Stop()
		}
	}
}

// Behavior is how a sink answers. The zero value accepts everything at once.
type Behavior struct {
	// Delay is how long the sink waits before answering each DATA: a slow
	// receiver.
	Delay time.Duration
	// MailCode, if set, answers every MAIL FROM with this code (421, 451,
	// 550...): a receiver that defers or refuses everything.
	MailCode int
	// RcptCodes answers RCPT TO for a recipient domain, or a full address,
	// with the given code.
	RcptCodes map[string]int
}

// Sink is a recording SMTP server playing one destination (remote MX).
type Sink struct {
	Name string
	rec  *Recorder
	ln   net.Listener
	srv  *smtp.Server
	log  *slog.Logger

	mu       sync.Mutex
	behavior Behavior
}

// maxSinkMessageBytes bounds what the sink accepts per message.
const maxSinkMessageBytes = 32 << 20

// StartSink starts a sink called name on addr ("127.0.0.1:0" for a free
// port), recording into rec.
func StartSink(name, addr string, b Behavior, rec *Recorder, log *slog.Logger) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink %s: listen on %s: %w", name, addr, err)
	}
	s := &Sink{Name: name, rec: rec, ln: ln, behavior: b, log: log.With("sink", name)}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink-" + name + ".bench.invalid"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = maxSinkMessageBytes
	srv.MaxRecipients = 1000
	srv.AllowInsecureAuth = true
	srv.ErrorLog = sinkErrorLog{}
	s.srv = srv
	go func() {
		defer recoverLog(s.log, "sink serve")
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			s.log.Error("sink stopped", "err", err)
		}
	}()
	return s, nil
}

// sinkErrorLog drops go-smtp's per-connection noise (clients killed mid
// load are expected here).
type sinkErrorLog struct{}

func (sinkErrorLog) Printf(string, ...any) {}
func (sinkErrorLog) Println(...any)        {}

// Addr is the sink's "host:port".
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// SetBehavior changes how the sink answers from now on.
func (s *Sink) SetBehavior(b Behavior) {
	s.mu.Lock()
	s.behavior = b
	s.mu.Unlock()
}

func (s *Sink) currentBehavior() Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behavior
}

// Close stops the sink and its connections.
func (s *Sink) Close() error { return s.srv.Close() }

func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.rec.addConn(s.Name)
	src := ""
	if ta, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		src = ta.IP.String()
	}
	return &sinkSession{sink: s, source: src}, nil
}

type sinkSession struct {
	sink   *Sink
	source string
	rcpts  int
}

func (ss *sinkSession) Reset()        { ss.rcpts = 0 }
func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error {
	ss.sink.rec.addAttempt(ss.sink.Name, time.Now())
	if code := ss.sink.currentBehavior().MailCode; code != 0 {
		return replyError(code)
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	b := ss.sink.currentBehavior()
	to = strings.ToLower(to)
	if code, ok := b.RcptCodes[to]; ok {
		return replyError(code)
	}
	if _, domain, ok := strings.Cut(to, "@"); ok {
		if code, ok := b.RcptCodes[domain]; ok {
			return replyError(code)
		}
	}
	ss.rcpts++
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	st, err := ReadStamp(r)
	// Consume the rest whatever the stamp said.
	if _, cerr := io.Copy(io.Discard, r); cerr != nil {
		return cerr
	}
	if d := ss.sink.currentBehavior().Delay; d > 0 {
		time.Sleep(d)
	}
	if err != nil {
		ss.sink.rec.addUnstamped()
		return nil
	}
	// One arrival per accepted recipient: the generator sends one each.
	for range max(ss.rcpts, 1) {
		ss.sink.rec.add(Arrival{Stamp: st, Sink: ss.sink.Name, At: time.Now(), Source: ss.source})
	}
	return nil
}

// replyError is the SMTP reply a sink gives for code, with a fitting
// enhanced status code.
func replyError(code int) *smtp.SMTPError {
	class := code / 100
	msg := "bench sink refuses"
	if class == 4 {
		msg = "bench sink defers, try again later"
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, 0, 0}, Message: msg}
}

// recoverLog logs a panic of the calling goroutine instead of crashing the
// whole run.
func recoverLog(log *slog.Logger, what string) {
	if p := recover(); p != nil {
		log.Error("panic recovered", "in", what, "panic", fmt.Sprint(p))
	}
}

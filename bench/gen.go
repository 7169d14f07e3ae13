package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Sender is one tenant's submitting user, as the generator plays it.
type Sender struct {
	Tenant   string   // tenant name, stamped into every message
	From     string   // envelope and header sender
	Username string   // SMTP AUTH PLAIN user (full address); "" submits without AUTH
	Password string   // never logged
	To       []string // recipients, used in turn, one per message
}

// Load is what a generator run submits.
type Load struct {
	Target   string // submission "host:port"
	StartTLS bool   // issue STARTTLS (certificate not verified: bench targets are self-signed)
	RunID    string // prefix of every message id, unique per run
	Senders  []Sender
	Size     int // message size in bytes

	// Conns is the number of connections per sender; each sends one message
	// at a time (closed loop when Rate is 0).
	Conns int
	// Count is how many messages each sender submits; 0 means until
	// Duration ends.
	Count int
	// Rate, if positive, is each sender's messages per second (open loop);
	// 0 means closed loop, as fast as its connections go.
	Rate float64
	// Duration bounds the run; required (it bounds every loop).
	Duration time.Duration
	// Log, if set, receives connection errors.
	Log *slog.Logger
}

// Submission is the outcome of one message's submission.
type Submission struct {
	ID       string
	Tenant   string
	Start    time.Time // transaction opened
	Accepted time.Time // 250 after DATA; zero if not accepted
	Code     int       // final reply code; 0 for a network error
	Err      string    // the reply or error when not accepted
}

// OK reports whether the message was accepted with a 2xx.
func (s Submission) OK() bool { return s.Code/100 == 2 }

// Result is a generator run's outcome.
type Result struct {
	Submissions []Submission
	Start, End  time.Time
}

// Accepted returns the ids of the accepted messages, optionally of tenant
// only ("" for all).
func (r Result) Accepted(tenant string) []string {
	var ids []string
	for _, s := range r.Submissions {
		if s.OK() && (tenant == "" || s.Tenant == tenant) {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// CodeCounts counts the submissions per reply code (0: network error).
func (r Result) CodeCounts(tenant string) map[int]int {
	out := map[int]int{}
	for _, s := range r.Submissions {
		if tenant == "" || s.Tenant == tenant {
			out[s.Code]++
		}
	}
	return out
}

// maxConnectFailures is how many connection attempts in a row a worker
// makes (about 25 s with the pauses) before it gives up each message.
const maxConnectFailures = 30

// clientTimeout bounds every SMTP command and the reply after DATA.
const clientTimeout = 2 * time.Minute

// Generate runs load against its target and returns every submission.
func Generate(ctx context.Context, load Load) (Result, error) {
	if load.Duration <= 0 {
		return Result{}, errors.New("bench: load needs a Duration")
	}
	if load.Conns <= 0 {
		load.Conns = 1
	}
	if load.Log == nil {
		load.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, load.Duration)
	defer cancel()
	var (
		mu   sync.Mutex
		subs []Submission
		wg   sync.WaitGroup
	)
	record := func(s Submission) {
		mu.Lock()
		subs = append(subs, s)
		mu.Unlock()
	}
	res := Result{Start: time.Now()}
	for _, snd := range load.Senders {
		if len(snd.To) == 0 {
			return Result{}, fmt.Errorf("bench: sender %s has no recipients", snd.From)
		}
		var seq atomic.Int64
		next := make(chan int64) // open loop: the ticks
		if load.Rate > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer recoverLog(load.Log, "rate ticker")
				defer close(next)
				interval := time.Duration(float64(time.Second) / load.Rate)
				t := time.NewTicker(interval)
				defer t.Stop()
				for {
					n := seq.Add(1)
					if load.Count > 0 && n > int64(load.Count) {
						return
					}
					select {
					case next <- n:
					case <-ctx.Done():
						return
					}
					select {
					case <-t.C:
					case <-ctx.Done():
						return
					}
				}
			}()
		}
		take := func() (int64, bool) {
			if load.Rate > 0 {
				n, ok := <-next
				return n, ok
			}
			if ctx.Err() != nil {
				return 0, false
			}
			n := seq.Add(1)
			return n, load.Count == 0 || n <= int64(load.Count)
		}
		for range load.Conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer recoverLog(load.Log, "generator worker")
				w := &worker{load: &load, snd: snd, log: load.Log.With("tenant", snd.Tenant)}
				defer w.close()
				for {
					n, ok := take()
					if !ok {
						return
					}
					record(w.send(ctx, n))
				}
			}()
		}
	}
	wg.Wait()
	res.End = time.Now()
	res.Submissions = subs
	return res, nil
}

// worker is one generator connection.
type worker struct {
	load  *Load
	snd   Sender
	log   *slog.Logger
	c     *smtp.Client
	fails int
}

func (w *worker) close() {
	if w.c != nil {
		_ = w.c.Quit()
		_ = w.c.Close()
		w.c = nil
	}
}

func (w *worker) connect(ctx context.Context) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", w.load.Target)
	if err != nil {
		return fmt.Errorf("dial %s: %w", w.load.Target, err)
	}
	var c *smtp.Client
	// The handshake is bounded as a whole; later commands by the client's
	// own timeouts.
	_ = conn.SetDeadline(time.Now().Add(clientTimeout))
	if w.load.StartTLS {
		// Bench targets run on loopback with self-signed certificates.
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec
		if err != nil {
			conn.Close()
			return fmt.Errorf("STARTTLS: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
		if err := c.Hello("bench-client.invalid"); err != nil {
			c.Close()
			return fmt.Errorf("EHLO: %w", err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	c.CommandTimeout = clientTimeout
	c.SubmissionTimeout = clientTimeout
	if w.snd.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", w.snd.Username, w.snd.Password)); err != nil {
			c.Close()
			return fmt.Errorf("AUTH as %s: %w", w.snd.Username, err)
		}
	}
	w.c = c
	return nil
}

// send submits message n, (re)connecting as needed. A failed connection
// is retried with a growing pause (bounded by ctx), since a target being
// restarted is one of the scenarios.
func (w *worker) send(ctx context.Context, n int64) Submission {
	id := fmt.Sprintf("%s.%s.%d", w.load.RunID, w.snd.Tenant, n)
	to := w.snd.To[int(n-1)%len(w.snd.To)]
	sub := Submission{ID: id, Tenant: w.snd.Tenant}
	for w.c == nil {
		if err := w.connect(ctx); err != nil {
			w.fails++
			sub.Err = err.Error()
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code/100 == 5 {
				sub.Code = se.Code
				return sub // refused credentials do not get better
			}
			if w.fails >= maxConnectFailures {
				return sub
			}
			pause := time.Duration(min(w.fails, 10)) * 100 * time.Millisecond
			select {
			case <-ctx.Done():
				return sub
			case <-time.After(pause):
			}
			continue
		}
		w.fails = 0
	}
	sub.Start = time.Now()
	msg := BuildMessage(Stamp{ID: id, Tenant: w.snd.Tenant, Submit: sub.Start}, w.snd.From, to, w.load.Size)
	err := w.transaction(to, msg)
	if err == nil {
		sub.Accepted = time.Now()
		sub.Code = 250
		return sub
	}
	sub.Err = err.Error()
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		sub.Code = se.Code
		if se.Code == 421 {
			w.close()
		} else if rerr := w.c.Reset(); rerr != nil {
			w.close()
		}
		return sub
	}
	// A network error: the outcome is unknown, the message unacknowledged.
	w.log.Debug("submission failed", "msgid", id, "err", err)
	_ = w.c.Close()
	w.c = nil
	return sub
}

func (w *worker) transaction(to string, msg []byte) error {
	if err := w.c.Mail(w.snd.From, nil); err != nil {
		return err
	}
	if err := w.c.Rcpt(to, nil); err != nil {
		return err
	}
	dc, err := w.c.Data()
	if err != nil {
		return err
	}
	if _, err := bytes.NewReader(msg).WriteTo(dc); err != nil {
		_ = dc.Close()
		return err
	}
	return dc.Close()
}

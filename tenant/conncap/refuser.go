package conncap

import (
	"context"
	"net"
	"sync"
	"time"
)

// Refuser answers connections over a cap with one line and closes them.
// Each refusal runs in a goroutine of its own, bounded by a timeout; past
// max refusals in progress (a flood), or once stopped, a connection is
// closed without a word.
type Refuser struct {
	slots   chan struct{}
	timeout time.Duration
	onPanic func(v any)

	mu      sync.Mutex
	stopped bool
	running sync.WaitGroup
}

// NewRefuser returns a refuser of at most max refusals at once, each
// bounded by timeout; onPanic is told of a panic in one.
func NewRefuser(max int, timeout time.Duration, onPanic func(v any)) *Refuser {
	return &Refuser{slots: make(chan struct{}, max), timeout: timeout, onPanic: onPanic}
}

// Refuse runs write on c in the background, with c's deadline set to the
// timeout, then closes c.
func (r *Refuser) Refuse(c net.Conn, write func(net.Conn)) {
	select {
	case r.slots <- struct{}{}:
	default:
		c.Close()
		return
	}
	// Added under mu, so that no refusal starts once Wait has begun.
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		<-r.slots
		c.Close()
		return
	}
	r.running.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.running.Done()
		defer func() { <-r.slots }()
		defer c.Close()
		defer func() {
			if v := recover(); v != nil && r.onPanic != nil {
				r.onPanic(v)
			}
		}()
		if c.SetDeadline(time.Now().Add(r.timeout)) != nil {
			return
		}
		write(c)
	}()
}

// Stop refuses no more connections the polite way: later ones are closed
// at once.
func (r *Refuser) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// Wait stops the refuser and waits for the refusals in progress (each ends
// within the timeout) or for ctx.
func (r *Refuser) Wait(ctx context.Context) {
	r.Stop()
	done := make(chan struct{})
	go func() {
		r.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

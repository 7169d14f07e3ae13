package tenant

// Background generation of RSA keys staged "generating" (bulk import,
// scheduled rotation). RSA-2048 costs tens of milliseconds of CPU per key,
// too much to spend inside one import transaction for a thousand domains.
// The records are durable before any work starts, so a restart loses
// nothing: loadDKIM queues every record still generating.
//
// A small pool: a queue of key references and at most max workers, started
// when work arrives and gone when the queue is empty. No goroutine waits
// per domain.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

type keyRef struct{ domain, selector string }

type keyPool struct {
	max  int
	log  *slog.Logger
	work func(ctx context.Context, r keyRef)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	queue   []keyRef
	running int
	stopped bool
}

func newKeyPool(workers int, log *slog.Logger, work func(context.Context, keyRef)) *keyPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &keyPool{max: max(1, workers), log: log, work: work, ctx: ctx, cancel: cancel}
}

// add queues refs and starts workers for them, up to max.
func (p *keyPool) add(refs ...keyRef) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || len(refs) == 0 {
		return
	}
	p.queue = append(p.queue, refs...)
	for p.running < p.max && p.running < len(p.queue) {
		p.running++
		p.wg.Add(1)
		go p.run()
	}
}

func (p *keyPool) run() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if p.stopped || len(p.queue) == 0 {
			p.running--
			p.queue = nil
			p.mu.Unlock()
			return
		}
		r := p.queue[0]
		p.queue = p.queue[1:]
		p.mu.Unlock()
		p.do(r)
	}
}

func (p *keyPool) do(r keyRef) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("dkim: key generation panicked", "domain", r.domain, "selector", r.selector,
				"panic", v, "stack", string(debug.Stack()))
		}
	}()
	p.work(p.ctx, r)
}

// wait returns once the queue is empty and every worker has finished.
// Callers must not add work concurrently.
func (p *keyPool) wait() { p.wg.Wait() }

// stop drops the queue, cancels the work under way and waits for the
// workers. Later adds do nothing.
func (p *keyPool) stop() {
	p.abandon()
	p.wg.Wait()
}

// abandon is stop without the wait, for a worker to call.
func (p *keyPool) abandon() {
	p.mu.Lock()
	p.stopped = true
	p.queue = nil
	p.mu.Unlock()
	p.cancel()
}

// finishGenerating makes the RSA key of a record staged generating and
// commits it as pending. The key is made outside the write lock; the
// transaction then checks that the record is still there and still
// generating, so a domain removed meanwhile is never brought back.
func (d *Directory) finishGenerating(ctx context.Context, r keyRef) {
	log := d.log.With("domain", r.domain, "selector", r.selector)
	defer func() {
		// Pebble panics with ErrClosed if the directory was closed without
		// closeDKIM first: give up the rest of the queue quietly; the
		// records stay generating and the next Open resumes them.
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, pebble.ErrClosed) {
				log.Warn("dkim: directory closed during key generation; resumed at the next start")
				d.dkim.gen.abandon()
				return
			}
			panic(v)
		}
	}()
	signer, err := newPrivateKey(AlgorithmRSA)
	if err != nil {
		log.Error("dkim: background key generation", "err", err)
		return
	}
	if ctx.Err() != nil {
		return // closing; the record stays generating and is resumed at the next start
	}
	done := false
	err = d.update(func(tx *txn) error {
		cur := d.findKey(r.domain, r.selector)
		if _, ok := d.st.domains[r.domain]; !ok || cur == nil || cur.State != KeyGenerating {
			return nil
		}
		// The stored record is the truth; reading it also stops here,
		// before any file is written, if the store was closed under us.
		_, closer, err := d.db.Get([]byte(cur.dbKey()))
		if err != nil {
			return fmt.Errorf("dkim: %s: read key record %s: %w", r.domain, r.selector, err)
		}
		closer.Close()
		k := &liveKey{dkimKey: cur.dkimKey, signer: signer}
		k.State = KeyPending
		if err := d.stageKeyMaterial(tx, k); err != nil {
			return err
		}
		if err := tx.set(k.dbKey(), &k.dkimKey); err != nil {
			return fmt.Errorf("dkim: %s: stage key %s: %w", r.domain, r.selector, err)
		}
		tx.afterCommit(func(*state) { d.replaceKey(k) })
		done = true
		return nil
	})
	switch {
	case err != nil:
		log.Error("dkim: store generated key; retried at the next start", "err", err)
	case done:
		log.Info("dkim key generated", "state", KeyPending)
	default:
		log.Info("dkim: generated key no longer wanted (domain removed)")
	}
}

// findKey returns the domain's key with the selector, or nil. Read under
// d.mu or the write lock.
func (d *Directory) findKey(domain, selector string) *liveKey {
	for _, k := range d.dkim.domains[domain] {
		if k.Selector == selector {
			return k
		}
	}
	return nil
}

// replaceKey puts k in place of the key with the same selector. In
// after-commit functions only.
func (d *Directory) replaceKey(k *liveKey) {
	keys := d.dkim.domains[k.Domain]
	next := make([]*liveKey, 0, len(keys))
	for _, o := range keys {
		if o.Selector == k.Selector {
			o = k
		}
		next = append(next, o)
	}
	d.dkim.domains[k.Domain] = next
}

package fairq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxAge = 5 * 24 * time.Hour
	// DefaultLaneConcurrency matches Postfix's
	// default_destination_concurrency_limit: polite to one receiver.
	DefaultLaneConcurrency = 20
	DefaultCacheSize       = 128 << 20
	// MaxDestinations is the most destination domains one message may have.
	MaxDestinations = 1000
	// MaxBodySize is the largest body the queue stores. The relay's own
	// size limit (default 25 MB) is lower; this guards the store itself.
	MaxBodySize = 64 << 20
)

// Errors callers map to replies.
var (
	// ErrClosed is returned once Close has been called.
	ErrClosed = errors.New("fairq: queue closed")
	// ErrInvalidMessage wraps every reason Enqueue refuses a message.
	ErrInvalidMessage = errors.New("fairq: invalid message")
	// ErrLeaseDone is returned when a lease is completed twice.
	ErrLeaseDone = errors.New("fairq: lease already completed")
)

// Bounce is handed to the bounce callback for recipients that failed
// permanently or expired. Record holds the message's envelope (tenant,
// sender, creation, the relay's Extra data); the body is still readable with
// Queue.Body while the callback runs.
type Bounce struct {
	ID      MsgID
	Record  *Record
	Failed  []RecipientResult
	Expired bool
}

// BounceFunc generates the DSN for a bounce (typically by enqueueing it). If
// it returns an error the recipients stay queued and are retried later, so a
// bounce is never lost; it may be repeated after a crash.
type BounceFunc func(ctx context.Context, b Bounce) error

// Options configure a Queue. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	Clock  Clock
	// MaxAge is how long a delivery may stay queued (not counting time its
	// tenant was held) before it is bounced as expired. Default 5 days.
	MaxAge time.Duration
	// LaneConcurrency is the default limit of deliveries in flight per
	// (pool, site) lane. Default 20 (DefaultLaneConcurrency).
	LaneConcurrency int
	// Bounce receives permanent failures and expiries. If nil they are logged
	// and dropped.
	Bounce BounceFunc
	// CacheSize is Pebble's block cache in bytes. Default 128 MB.
	CacheSize int64
	// Random returns uniform numbers in [0, 1) for retry jitter. Default
	// math/rand/v2.
	Random func() float64
}

// Message is what Enqueue takes.
type Message struct {
	Tenant     string
	From       string   // envelope sender; "" for a bounce
	Recipients []string // addresses; grouped by domain into deliveries
	Body       []byte
	Extra      []byte // opaque to fairq; returned in every Record
}

// Queue is the durable spool and the tenant-fair scheduler. Its methods are
// safe for concurrent use.
type Queue struct {
	db     *pebble.DB
	log    *slog.Logger
	clock  Clock
	opts   Options
	random func() float64

	lastID atomic.Uint64

	// dbMu guards the store's lifetime: every Pebble call holds it shared,
	// Close holds it exclusively, so no write races Close.
	dbMu     sync.RWMutex
	dbClosed bool

	mu       sync.Mutex
	s        *sched
	siblings map[MsgID]uint16 // messages with more than one delivery left
	timer    Timer
	timerAt  int64 // due time the timer is armed for, 0 if none
	closed   bool

	wake    chan struct{}
	closing chan struct{}

	quarantined atomic.Int64
}

// Open opens (creating if needed) the queue stored in dir and rebuilds its
// index from the delivery records.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.LaneConcurrency <= 0 {
		opts.LaneConcurrency = DefaultLaneConcurrency
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Random == nil {
		opts.Random = rand.Float64
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fairq: create %s: %w", dir, err)
	}
	log := opts.Logger.With("component", "fairq")
	popts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		// Bodies are short-lived: a large memtable lets most of them be
		// deleted before they are ever flushed to an sstable.
		MemTableSize: 64 << 20,
		// Delivery records are read at every dispatch; the default 8 MB
		// block cache misses on index blocks of a large queue.
		CacheSize:                   opts.CacheSize,
		MemTableStopWritesThreshold: 4,
		Logger:                      pebbleLogger{log},
	}
	// Every dispatch reads one delivery record by key: bloom filters let
	// those point reads skip the sstables that do not hold it.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("fairq: open pebble in %s: %w", dir, err)
	}
	q := &Queue{
		db:       db,
		log:      log,
		clock:    opts.Clock,
		opts:     opts,
		random:   opts.Random,
		s:        newSched(opts.LaneConcurrency),
		siblings: map[MsgID]uint16{},
		wake:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
	}
	if err := q.recover(); err != nil {
		db.Close()
		return nil, err
	}
	return q, nil
}

// Close closes the store. Blocked Next calls return ErrClosed; leases still
// out can no longer be completed, so their deliveries run again after the
// next Open (at-least-once). Stop the delivery workers first.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.closing)
	if q.timer != nil {
		q.timer.Stop()
	}
	q.mu.Unlock()
	q.dbMu.Lock()
	defer q.dbMu.Unlock()
	q.dbClosed = true
	// Keep IDs increasing across a clean restart even when the queue is
	// empty and the clock went back.
	if err := q.db.Set([]byte(keyLastID), bigEndian8(q.lastID.Load()), pebble.Sync); err != nil {
		q.log.Error("saving last message id", "err", err)
	}
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("fairq: close: %w", err)
	}
	return nil
}

// store returns the Pebble handle for one operation, and false once closed.
// The caller calls q.dbMu.RUnlock when done if it got true.
func (q *Queue) store() (*pebble.DB, bool) {
	q.dbMu.RLock()
	if q.dbClosed {
		q.dbMu.RUnlock()
		return nil, false
	}
	return q.db, true
}

// recover rebuilds the in-memory index. Only delivery and hold records are
// read; the body range is skipped with one seek.
func (q *Queue) recover() error {
	start := q.clock.Now()
	if err := q.checkVersion(); err != nil {
		return err
	}
	iter, err := q.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("fairq: recovery: %w", err)
	}
	now := start.UnixNano()
	var (
		bad        [][]byte // keys to quarantine
		ready      int
		deferred   []*delivery
		maxID      MsgID
		lastMsg    MsgID
		lastMsgCnt uint16
	)
	flushSiblings := func() {
		if lastMsgCnt > 1 {
			q.siblings[lastMsg] = lastMsgCnt
		}
	}
	for valid := iter.First(); valid; {
		k := iter.Key()
		switch {
		case k[0] == prefixBody:
			if len(k) == 9 {
				if id := MsgID(uint64FromKey(k[1:])); id > maxID {
					maxID = id
				}
			}
			valid = iter.SeekGE([]byte{prefixBody + 1})
			continue
		case k[0] == prefixQuarantine:
			q.quarantined.Add(1)
		case string(k) == keyVersion:
		case string(k) == keyLastID:
			if v := iter.Value(); len(v) == 8 {
				if id := MsgID(uint64FromKey(v)); id > maxID {
					maxID = id
				}
			}
		case k[0] == prefixHold:
			h, err := decodeHold(iter.Value())
			if err != nil || len(k) == 1 {
				q.log.Error("quarantining hold record", "key", fmt.Sprintf("%q", k), "err", err)
				bad = append(bad, bytes.Clone(k))
				break
			}
			q.s.tenant(string(k[1:])).hold = h
		case k[0] == prefixDelivery:
			id, idx, ok := parseDeliveryKey(k)
			var rec *Record
			var err error
			if ok {
				rec, err = decodeRecord(iter.Value())
			} else {
				err = errors.New("malformed delivery key")
			}
			if err != nil {
				q.log.Error("quarantining delivery record", "key", fmt.Sprintf("%q", k), "err", err)
				bad = append(bad, bytes.Clone(k))
				break
			}
			if id > maxID {
				maxID = id
			}
			if id != lastMsg {
				flushSiblings()
				lastMsg, lastMsgCnt = id, 0
			}
			lastMsgCnt++
			t := q.s.tenant(rec.Tenant)
			d := &delivery{msg: id, idx: idx, heapIdx: -1, dq: q.s.destQueue(t, rec.Domain)}
			t.ages.add(id)
			if due := rec.NextAttempt.UnixNano(); due > now {
				d.due = due
				d.dq.ndeferred++
				t.deferred++
				deferred = append(deferred, d)
			} else {
				q.s.addReady(d, now)
				ready++
			}
		default:
			q.log.Error("quarantining unknown key", "key", fmt.Sprintf("%q", k))
			bad = append(bad, bytes.Clone(k))
		}
		valid = iter.Next()
	}
	flushSiblings()
	if err := iter.Close(); err != nil {
		return fmt.Errorf("fairq: recovery scan: %w", err)
	}
	// Hold records sort after delivery records: take held tenants out of the
	// dispatch heap now that their holds are known.
	for _, t := range q.s.tenants {
		if t.hold.held() {
			q.s.hold(t, t.hold)
		}
	}
	q.s.deliveryHeap = deferred
	heapInit(q.s.deliveryHeap, deliveryLess, setDeliveryIdx)
	q.lastID.Store(uint64(maxID))
	if err := q.quarantine(bad); err != nil {
		return err
	}
	q.log.Info("queue recovered", "ready", ready, "deferred", len(deferred),
		"quarantined", len(bad), "took", q.clock.Now().Sub(start))
	return nil
}

func bigEndian8(v uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

func uint64FromKey(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

func (q *Queue) checkVersion() error {
	v, closer, err := q.db.Get([]byte(keyVersion))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := q.db.Set([]byte(keyVersion), []byte(schemaVersion), pebble.Sync); err != nil {
			return fmt.Errorf("fairq: write schema version: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("fairq: read schema version: %w", err)
	}
	defer closer.Close()
	if string(v) != schemaVersion {
		return fmt.Errorf("fairq: queue schema %q, this build reads %q", v, schemaVersion)
	}
	return nil
}

// quarantine moves entries that cannot be read under the x prefix, so they
// are kept for inspection but never scheduled.
func (q *Queue) quarantine(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	b := q.db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		v, closer, err := q.db.Get(k)
		if err != nil {
			return fmt.Errorf("fairq: quarantine %q: %w", k, err)
		}
		_ = b.Set(append([]byte{prefixQuarantine}, k...), v, nil)
		closer.Close()
		_ = b.Delete(k, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("fairq: quarantine: %w", err)
	}
	q.quarantined.Add(int64(len(keys)))
	return nil
}

// newID returns an ID above every ID issued or recovered, and at least the
// clock in microseconds.
func (q *Queue) newID(now time.Time) MsgID {
	t := uint64(now.UnixMicro())
	for {
		last := q.lastID.Load()
		next := max(last+1, t)
		if q.lastID.CompareAndSwap(last, next) {
			return MsgID(next)
		}
	}
}

// groupByDomain splits recipients into deliveries, one per domain (lower
// case), keeping first-seen order and dropping exact duplicates.
func groupByDomain(rcpts []string) (domains []string, byDomain map[string][]string, err error) {
	byDomain = make(map[string][]string, 1)
	seen := make(map[string]struct{}, len(rcpts))
	for _, r := range rcpts {
		at := strings.LastIndexByte(r, '@')
		if at <= 0 || at == len(r)-1 {
			return nil, nil, fmt.Errorf("%w: recipient %q is not local@domain", ErrInvalidMessage, r)
		}
		if _, dup := seen[r]; dup {
			continue
		}
		seen[r] = struct{}{}
		dom := strings.ToLower(r[at+1:])
		if _, ok := byDomain[dom]; !ok {
			domains = append(domains, dom)
		}
		byDomain[dom] = append(byDomain[dom], r)
	}
	return domains, byDomain, nil
}

// Enqueue stores a message and returns once it is durable (Pebble commit with
// Sync). Only then may the caller answer 250.
func (q *Queue) Enqueue(ctx context.Context, m *Message) (MsgID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if m.Tenant == "" {
		return 0, fmt.Errorf("%w: no tenant", ErrInvalidMessage)
	}
	if len(m.Recipients) == 0 {
		return 0, fmt.Errorf("%w: no recipients", ErrInvalidMessage)
	}
	if len(m.Body) > MaxBodySize {
		return 0, fmt.Errorf("%w: body of %d bytes, at most %d", ErrInvalidMessage, len(m.Body), MaxBodySize)
	}
	domains, byDomain, err := groupByDomain(m.Recipients)
	if err != nil {
		return 0, err
	}
	if len(domains) > MaxDestinations {
		return 0, fmt.Errorf("%w: %d destination domains, at most %d", ErrInvalidMessage, len(domains), MaxDestinations)
	}
	now := q.clock.Now()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	heldAt := q.s.tenant(m.Tenant).hold.clock(now)
	q.mu.Unlock()

	id := q.newID(now)
	db, ok := q.store()
	if !ok {
		return 0, ErrClosed
	}
	b := db.NewBatch()
	defer b.Close()
	_ = b.Set(bodyKey(id), m.Body, nil)
	rec := Record{Tenant: m.Tenant, From: m.From, Created: now, HeldAtCreate: heldAt, NextAttempt: now, Extra: m.Extra}
	var buf []byte
	for i, dom := range domains {
		rec.Domain, rec.Recipients = dom, byDomain[dom]
		buf = rec.encode(buf[:0])
		_ = b.Set(deliveryKey(id, uint16(i)), buf, nil)
	}
	err = b.Commit(pebble.Sync)
	q.dbMu.RUnlock()
	if err != nil {
		return 0, fmt.Errorf("fairq: enqueue %s: %w", id, err)
	}

	nowN := now.UnixNano()
	q.mu.Lock()
	if !q.closed {
		t := q.s.tenant(m.Tenant)
		for i, dom := range domains {
			d := &delivery{msg: id, idx: uint16(i), heapIdx: -1, dq: q.s.destQueue(t, dom)}
			t.ages.add(id)
			q.s.addReady(d, nowN)
		}
		if len(domains) > 1 {
			q.siblings[id] = uint16(len(domains))
		}
	}
	q.mu.Unlock()
	q.kick()
	if q.log.Enabled(ctx, slog.LevelInfo) {
		q.log.Info("queued", "tenant", m.Tenant, "msgid", id.String(), "from", m.From,
			"recipients", len(m.Recipients), "destinations", len(domains), "size", len(m.Body))
	}
	return id, nil
}

// kick wakes one waiting Next; the woken one passes the wake on if more work
// remains.
func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Lease is one delivery handed to a worker. Exactly one of Complete, Ack,
// Defer or Fail must be called on it.
type Lease struct {
	ID     MsgID
	Index  uint16
	Record *Record // Attempts already counts this attempt
	// Pool and Site name the lane the delivery was dispatched on; report lane
	// health for them with LaneFailed and LaneSucceeded.
	Pool, Site string

	d    *delivery
	lane *lane
	done atomic.Bool
}

// Next blocks until a delivery is dispatchable and returns its lease. It
// sleeps on one kick channel: woken by enqueues, completions, and a single
// timer set for the earliest retry or end of lane backoff.
func (q *Queue) Next(ctx context.Context) (*Lease, error) {
	for {
		l, err := q.TryNext()
		if l != nil || err != nil {
			return l, err
		}
		select {
		case <-q.wake:
		case <-q.closing:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TryNext returns the next dispatchable delivery, or nil if none is
// dispatchable now. It never blocks on the schedule.
func (q *Queue) TryNext() (*Lease, error) {
	for {
		now := q.clock.Now()
		nowN := now.UnixNano()
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrClosed
		}
		q.s.promote(nowN)
		d := q.s.pick(nowN)
		if d == nil {
			q.armTimer(nowN)
			q.mu.Unlock()
			return nil, nil
		}
		ln := d.dq.lane
		more := len(q.s.tenantHeap) > 0
		q.mu.Unlock()
		if more {
			q.kick()
		}
		l, err := q.load(d, ln, now)
		if err != nil {
			return nil, err
		}
		if l != nil {
			return l, nil
		}
		// The record was gone or unreadable; the delivery was dropped. Try again.
	}
}

// armTimer sets the single timer for the earliest due retry or lane backoff
// end. Called with q.mu held.
func (q *Queue) armTimer(now int64) {
	due := q.s.nextDue()
	if due == 0 || due == q.timerAt {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timerAt = due
	q.timer = q.clock.AfterFunc(time.Duration(due-now), func() {
		q.mu.Lock()
		if q.timerAt == due {
			q.timerAt = 0
		}
		q.mu.Unlock()
		q.kick()
	})
}

// load reads the delivery's record and records this attempt (attempts+1 and
// the retry time if the process dies mid-delivery) before the lease is
// returned. A missing or unreadable record drops the delivery and returns nil.
func (q *Queue) load(d *delivery, ln *lane, now time.Time) (*Lease, error) {
	db, ok := q.store()
	if !ok {
		return nil, ErrClosed
	}
	defer q.dbMu.RUnlock()
	key := deliveryKey(d.msg, d.idx)
	val, closer, err := db.Get(key)
	var rec *Record
	if err == nil {
		rec, err = decodeRecord(val)
		closer.Close()
		if err != nil {
			q.log.Error("quarantining unreadable delivery record", "msgid", d.msg.String(), "err", err)
			if qerr := q.quarantine([][]byte{key}); qerr != nil {
				q.log.Error("quarantine failed", "msgid", d.msg.String(), "err", qerr)
			}
		}
	} else if errors.Is(err, pebble.ErrNotFound) {
		// Only possible when a completion was lost in a crash and the message
		// was finished through another delivery; nothing is left to send.
		q.log.Warn("delivery record missing, dropping", "tenant", d.dq.tenant.name, "msgid", d.msg.String())
	} else {
		q.mu.Lock()
		q.s.release(d, ln, now.UnixNano())
		q.s.addDeferred(d, now.Add(RetryBase).UnixNano())
		q.mu.Unlock()
		return nil, fmt.Errorf("fairq: read delivery %s: %w", d.msg, err)
	}
	if rec == nil {
		q.mu.Lock()
		q.s.release(d, ln, now.UnixNano())
		q.forget(d)
		q.mu.Unlock()
		return nil, nil
	}
	rec.Attempts++
	rec.NextAttempt = now.Add(RetryDelay(rec.Attempts, q.random()))
	if err := db.Set(key, rec.encode(nil), pebble.NoSync); err != nil {
		// Without the mark a crash could retry at once; do not dial.
		q.mu.Lock()
		q.s.release(d, ln, now.UnixNano())
		q.s.addDeferred(d, now.Add(RetryBase).UnixNano())
		q.mu.Unlock()
		return nil, fmt.Errorf("fairq: record attempt of %s: %w", d.msg, err)
	}
	return &Lease{ID: d.msg, Index: d.idx, Record: rec, Pool: ln.key.pool, Site: ln.key.site, d: d, lane: ln}, nil
}

// forget removes a delivery that is done for good from the index. q.mu held.
// It reports whether it was the message's last delivery.
func (q *Queue) forget(d *delivery) (last bool) {
	t := d.dq.tenant
	t.ages.remove(d.msg)
	q.s.maybeDropQueue(d.dq)
	n, ok := q.siblings[d.msg]
	switch {
	case !ok:
		return true
	case n <= 2:
		delete(q.siblings, d.msg)
	default:
		q.siblings[d.msg] = n - 1
	}
	return false
}

// Status is a recipient's delivery result.
type Status uint8

const (
	Delivered Status = iota + 1
	Temporary        // retried on the schedule
	Permanent        // bounced
)

// RecipientResult is one recipient's outcome of an attempt.
type RecipientResult struct {
	Recipient string
	Status    Status
	Detail    string // the remote reply or local reason, for logs and DSNs
}

// Ack reports every recipient delivered.
func (q *Queue) Ack(l *Lease) error { return q.completeAll(l, Delivered, "") }

// Defer reports a temporary failure for every recipient.
func (q *Queue) Defer(l *Lease, detail string) error { return q.completeAll(l, Temporary, detail) }

// Fail reports a permanent failure for every recipient.
func (q *Queue) Fail(l *Lease, detail string) error { return q.completeAll(l, Permanent, detail) }

func (q *Queue) completeAll(l *Lease, st Status, detail string) error {
	res := make([]RecipientResult, len(l.Record.Recipients))
	for i, r := range l.Record.Recipients {
		res[i] = RecipientResult{Recipient: r, Status: st, Detail: detail}
	}
	return q.Complete(context.Background(), l, res)
}

// Complete reports per-recipient results of an attempt. Delivered recipients
// are dropped; permanent failures go to the bounce callback; temporary ones
// are retried after RetryDelay, unless that would pass the maximum age, in
// which case they are bounced as expired. A recipient missing from results
// counts as a temporary failure.
func (q *Queue) Complete(ctx context.Context, l *Lease, results []RecipientResult) error {
	if !l.done.CompareAndSwap(false, true) {
		return ErrLeaseDone
	}
	now := q.clock.Now()
	rec := l.Record
	var failed, retry []RecipientResult
	delivered := 0
	for i, rc := range rec.Recipients {
		r, ok := resultFor(results, i, rc)
		if !ok {
			r = RecipientResult{Recipient: rc, Status: Temporary, Detail: "no result reported"}
		}
		switch r.Status {
		case Delivered:
			delivered++
		case Permanent:
			failed = append(failed, r)
		default:
			retry = append(retry, r)
		}
	}
	expired := false
	var next time.Time
	if len(retry) > 0 {
		next = now.Add(RetryDelay(rec.Attempts, q.random()))
		q.mu.Lock()
		heldNow := q.s.tenant(rec.Tenant).hold.clock(next)
		q.mu.Unlock()
		if age := next.Sub(rec.Created) - (heldNow - rec.HeldAtCreate); age > q.opts.MaxAge {
			expired = true
			for i := range retry {
				retry[i].Detail = "expired after " + q.opts.MaxAge.String() + ": " + retry[i].Detail
			}
			failed = append(failed, retry...)
			retry = nil
		}
	}
	logEvent := func(msg string, attrs ...any) {
		if q.log.Enabled(ctx, slog.LevelInfo) {
			q.log.Info(msg, append([]any{"tenant", rec.Tenant, "msgid", l.ID.String(), "domain", rec.Domain,
				"attempt", rec.Attempts}, attrs...)...)
		}
	}
	if len(failed) > 0 {
		if err := q.bounce(ctx, l, failed, expired); err != nil {
			// Keep them queued; the bounce is retried with the next attempt.
			q.log.Error("bounce failed, keeping recipients queued", "tenant", rec.Tenant,
				"msgid", l.ID.String(), "domain", rec.Domain, "err", err)
			retry = append(retry, failed...)
			failed = nil
			if next.IsZero() {
				next = now.Add(RetryDelay(rec.Attempts, q.random()))
			}
		}
	}
	key := deliveryKey(l.ID, l.Index)
	nowN := now.UnixNano()
	db, ok := q.store()
	if !ok {
		return ErrClosed
	}
	defer q.dbMu.RUnlock()
	if len(retry) > 0 {
		rec.Recipients = rec.Recipients[:0]
		details := make([]string, 0, len(retry))
		for _, r := range retry {
			rec.Recipients = append(rec.Recipients, r.Recipient)
			details = append(details, r.Detail)
		}
		rec.NextAttempt = next
		rec.LastError = strings.Join(details, "; ")
		if len(rec.LastError) > 4096 {
			rec.LastError = rec.LastError[:4096]
		}
		err := db.Set(key, rec.encode(nil), pebble.NoSync)
		q.mu.Lock()
		q.s.release(l.d, l.lane, nowN)
		q.s.addDeferred(l.d, next.UnixNano())
		q.mu.Unlock()
		q.kick()
		logEvent("deferred", "delivered", delivered, "bounced", len(failed),
			"deferred", len(retry), "next", next, "reason", rec.LastError)
		if err != nil {
			return fmt.Errorf("fairq: defer %s: %w", l.ID, err)
		}
		return nil
	}
	q.mu.Lock()
	q.s.release(l.d, l.lane, nowN)
	last := q.forget(l.d)
	q.mu.Unlock()
	q.kick()
	b := db.NewBatch()
	_ = b.Delete(key, nil)
	if last {
		_ = b.Delete(bodyKey(l.ID), nil)
	}
	err := b.Commit(pebble.NoSync)
	b.Close()
	logEvent("done", "delivered", delivered, "bounced", len(failed))
	if err != nil {
		return fmt.Errorf("fairq: remove %s: %w", l.ID, err)
	}
	return nil
}

// resultFor finds recipient rc (the i-th) in results: at index i when the
// worker reported in recipient order, else by search.
func resultFor(results []RecipientResult, i int, rc string) (RecipientResult, bool) {
	if i < len(results) && results[i].Recipient == rc {
		return results[i], true
	}
	for _, r := range results {
		if r.Recipient == rc {
			return r, true
		}
	}
	return RecipientResult{}, false
}

func (q *Queue) bounce(ctx context.Context, l *Lease, failed []RecipientResult, expired bool) error {
	if q.opts.Bounce == nil {
		q.log.Warn("no bounce handler, dropping failed recipients", "tenant", l.Record.Tenant,
			"msgid", l.ID.String(), "recipients", len(failed), "expired", expired)
		return nil
	}
	return q.opts.Bounce(ctx, Bounce{ID: l.ID, Record: l.Record, Failed: failed, Expired: expired})
}

// Body returns a message's body.
func (q *Queue) Body(id MsgID) ([]byte, error) {
	db, ok := q.store()
	if !ok {
		return nil, ErrClosed
	}
	defer q.dbMu.RUnlock()
	v, closer, err := db.Get(bodyKey(id))
	if err != nil {
		return nil, fmt.Errorf("fairq: body of %s: %w", id, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// Hold stops dispatching a tenant's deliveries and stops their ageing,
// durably, until Release. Holding a held tenant does nothing.
func (q *Queue) Hold(tenant string) error {
	return q.setHold(tenant, true)
}

// Release ends a hold.
func (q *Queue) Release(tenant string) error {
	return q.setHold(tenant, false)
}

func (q *Queue) setHold(tenant string, hold bool) error {
	now := q.clock.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	t := q.s.tenant(tenant)
	if t.hold.held() == hold {
		return nil
	}
	h := t.hold
	if hold {
		h.since = now
	} else {
		h.total = h.clock(now)
		h.since = time.Time{}
	}
	db, ok := q.store()
	if !ok {
		return ErrClosed
	}
	err := db.Set(holdKey(tenant), h.encode(), pebble.Sync)
	q.dbMu.RUnlock()
	if err != nil {
		return fmt.Errorf("fairq: hold %s: %w", tenant, err)
	}
	if hold {
		q.s.hold(t, h)
	} else {
		q.s.unhold(t, h)
		q.kick()
	}
	q.log.Info("tenant hold changed", "tenant", tenant, "held", hold)
	return nil
}

// TenantConfig is the scheduling policy of one tenant.
type TenantConfig struct {
	Weight int    // share of dispatches relative to other tenants; default 1
	Pool   string // source IP pool; part of the lane key
}

// SetTenant sets a tenant's weight and pool. A pool change moves the
// tenant's destinations to the new pool's lanes.
func (q *Queue) SetTenant(tenant string, c TenantConfig) {
	now := q.clock.Now().UnixNano()
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.s.tenant(tenant)
	t.setWeight(c.Weight)
	if t.pool != c.Pool {
		t.pool = c.Pool
		for _, dq := range t.dqs {
			q.s.relane(dq, now)
		}
	}
	q.kick()
}

// SetSite tells the queue that a destination domain is served by site (for
// instance the MX host set it resolves to), so that domains on one site share
// its lane: one concurrency limit and one backoff. An empty site means the
// domain itself.
func (q *Queue) SetSite(domain, site string) {
	domain = strings.ToLower(domain)
	now := q.clock.Now().UnixNano()
	q.mu.Lock()
	defer q.mu.Unlock()
	if site == "" || site == domain {
		delete(q.s.sites, domain)
	} else {
		q.s.sites[domain] = site
	}
	for _, t := range q.s.tenants {
		if dq := t.dqs[domain]; dq != nil {
			q.s.relane(dq, now)
		}
	}
	q.kick()
}

// SetLaneLimit sets how many deliveries may be in flight at once on the lane
// (pool, site); 0 restores the default.
func (q *Queue) SetLaneLimit(pool, site string, limit int) {
	now := q.clock.Now().UnixNano()
	k := laneKey{pool, site}
	q.mu.Lock()
	defer q.mu.Unlock()
	if limit <= 0 {
		delete(q.s.laneLimits, k)
		limit = q.s.defaultLimit
	} else {
		q.s.laneLimits[k] = limit
	}
	if l := q.s.lanes[k]; l != nil {
		l.limit = limit
		q.s.unpark(l, now)
	}
	q.kick()
}

// LaneFailed reports that the lane (pool, site) is failing (connection
// refused, 4xx at greeting, and the like). The lane pauses for LaneBackoff of
// its consecutive failures; every other lane goes on.
func (q *Queue) LaneFailed(pool, site string) time.Time {
	now := q.clock.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.s.lane(laneKey{pool, site})
	l.failures++
	until := now.Add(LaneBackoff(l.failures, q.random()))
	q.s.setLaneBackoff(l, until.UnixNano())
	q.armTimer(now.UnixNano())
	q.log.Warn("lane backing off", "pool", pool, "site", site, "failures", l.failures, "until", until)
	return until
}

// LaneSucceeded reports that the lane works again: its backoff ends now.
func (q *Queue) LaneSucceeded(pool, site string) {
	now := q.clock.Now().UnixNano()
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.s.lanes[laneKey{pool, site}]
	if l == nil || (l.failures == 0 && l.backoffUntil == 0) {
		return
	}
	q.s.clearLaneBackoff(l, now)
	q.s.maybeDropLane(l)
	q.kick()
}

// pebbleLogger routes Pebble's own log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.log.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

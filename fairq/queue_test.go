package fairq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

type testQueue struct {
	*Queue
	t     testing.TB
	dir   string
	clock *fakeClock
	opts  Options

	mu      sync.Mutex
	bounces []Bounce
}

func testLogger(testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// openTest opens a queue in a temp dir on a fake clock with jitter fixed at
// the midpoint, recording bounces.
func openTest(t testing.TB, mod func(*Options)) *testQueue {
	tq := &testQueue{t: t, dir: t.TempDir(), clock: newFakeClock()}
	tq.opts = Options{
		Logger: testLogger(t),
		Clock:  tq.clock,
		Random: func() float64 { return 0.5 },
		Bounce: func(_ context.Context, b Bounce) error {
			tq.mu.Lock()
			defer tq.mu.Unlock()
			tq.bounces = append(tq.bounces, b)
			return nil
		},
	}
	if mod != nil {
		mod(&tq.opts)
	}
	tq.reopen()
	t.Cleanup(func() { tq.Close() })
	return tq
}

// reopen closes the queue (if open) and opens it again from disk.
func (tq *testQueue) reopen() {
	tq.t.Helper()
	if tq.Queue != nil {
		if err := tq.Close(); err != nil {
			tq.t.Fatal(err)
		}
	}
	q, err := Open(tq.dir, tq.opts)
	if err != nil {
		tq.t.Fatal(err)
	}
	tq.Queue = q
}

func (tq *testQueue) enqueue(tenant string, rcpts ...string) MsgID {
	tq.t.Helper()
	id, err := tq.Enqueue(context.Background(), &Message{
		Tenant: tenant, From: "sender@" + tenant + ".example", Recipients: rcpts,
		Body: []byte("Subject: test\r\n\r\nbody of a message for " + tenant + "\r\n"),
	})
	if err != nil {
		tq.t.Fatal(err)
	}
	return id
}

// enqueueMany enqueues n messages of one recipient each from 32 goroutines,
// so setup costs shared fsyncs rather than one each.
func (tq *testQueue) enqueueMany(tenant string, n int, rcpt func(i int) string) {
	tq.t.Helper()
	const workers = 32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				_, err := tq.Enqueue(context.Background(), &Message{Tenant: tenant, From: "s@" + tenant, Recipients: []string{rcpt(i)}, Body: []byte("x")})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tq.t.Fatal(err)
	}
}

func (tq *testQueue) mustNext() *Lease {
	tq.t.Helper()
	l, err := tq.TryNext()
	if err != nil {
		tq.t.Fatal(err)
	}
	if l == nil {
		tq.t.Fatal("nothing dispatchable")
	}
	return l
}

func (tq *testQueue) mustNothing() {
	tq.t.Helper()
	l, err := tq.TryNext()
	if err != nil {
		tq.t.Fatal(err)
	}
	if l != nil {
		tq.t.Fatalf("dispatched %s/%d (%s → %s), want nothing dispatchable", l.ID, l.Index, l.Record.Tenant, l.Record.Domain)
	}
}

func (tq *testQueue) tenantStats(name string) TenantStats {
	for _, ts := range tq.Stats().Tenants {
		if ts.Tenant == name {
			return ts
		}
	}
	return TenantStats{Tenant: name}
}

func (tq *testQueue) keyExists(k []byte) bool {
	_, closer, err := tq.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	if err != nil {
		tq.t.Fatal(err)
	}
	closer.Close()
	return true
}

func TestEnqueueSplitsByDomainAndStoresBodyOnce(t *testing.T) {
	q := openTest(t, nil)
	id := q.enqueue("acme", "a@one.example", "b@Two.Example", "c@ONE.example", "a@one.example")

	got := map[string][]string{}
	var leases []*Lease
	for range 2 {
		l := q.mustNext()
		if l.ID != id || l.Record.Tenant != "acme" || l.Record.From != "sender@acme.example" {
			t.Fatalf("lease %+v", l)
		}
		if l.Record.Attempts != 1 {
			t.Errorf("attempts = %d, want 1", l.Record.Attempts)
		}
		got[l.Record.Domain] = l.Record.Recipients
		leases = append(leases, l)
	}
	q.mustNothing()
	want := map[string][]string{
		"one.example": {"a@one.example", "c@ONE.example"},
		"two.example": {"b@Two.Example"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries %v, want %v", got, want)
	}
	body, err := q.Body(id)
	if err != nil || !strings.Contains(string(body), "body of a message") {
		t.Fatalf("Body = %q, %v", body, err)
	}

	if err := q.Ack(leases[0]); err != nil {
		t.Fatal(err)
	}
	if !q.keyExists(bodyKey(id)) {
		t.Fatal("body deleted while a delivery remains")
	}
	if err := q.Ack(leases[0]); !errors.Is(err, ErrLeaseDone) {
		t.Fatalf("second Ack = %v, want ErrLeaseDone", err)
	}
	if err := q.Ack(leases[1]); err != nil {
		t.Fatal(err)
	}
	if q.keyExists(bodyKey(id)) {
		t.Fatal("body kept after its last delivery")
	}
	q.reopen()
	q.mustNothing()
	if ts := q.tenantStats("acme"); ts.Ready+ts.Deferred+ts.InFlight != 0 || !ts.Oldest.IsZero() {
		t.Fatalf("stats after all delivered: %+v", ts)
	}
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	q := openTest(t, nil)
	ctx := context.Background()
	manyDomains := make([]string, MaxDestinations+1)
	for i := range manyDomains {
		manyDomains[i] = fmt.Sprintf("u@d%d.example", i)
	}
	for name, m := range map[string]*Message{
		"no tenant":     {Recipients: []string{"a@b.example"}},
		"no recipients": {Tenant: "t"},
		"bare local":    {Tenant: "t", Recipients: []string{"postmaster"}},
		"empty domain":  {Tenant: "t", Recipients: []string{"a@"}},
		"empty local":   {Tenant: "t", Recipients: []string{"@b.example"}},
		"too many":      {Tenant: "t", Recipients: manyDomains},
		"too large":     {Tenant: "t", Recipients: []string{"a@b.example"}, Body: make([]byte, MaxBodySize+1)},
	} {
		if _, err := q.Enqueue(ctx, m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err = %v, want ErrInvalidMessage", name, err)
		}
	}
	q.mustNothing()
}

func TestWeightedShares(t *testing.T) {
	q := openTest(t, func(o *Options) { o.LaneConcurrency = 1 << 20 })
	weights := map[string]int{"w1": 1, "w2": 2, "w4": 4}
	const dispatches = 10000
	for name, w := range weights {
		q.SetTenant(name, TenantConfig{Weight: w})
		// Enough backlog that every tenant stays backlogged all along, over
		// several destinations each.
		q.enqueueMany(name, dispatches*w/7+500, func(i int) string { return fmt.Sprintf("u%d@%s-d%d.example", i, name, i%5) })
	}
	counts := map[string]int{}
	for range dispatches {
		l := q.mustNext()
		counts[l.Record.Tenant]++
		if err := q.Ack(l); err != nil {
			t.Fatal(err)
		}
	}
	for name, w := range weights {
		want := float64(dispatches) * float64(w) / 7
		if got := float64(counts[name]); got < want*0.98 || got > want*1.02 {
			t.Errorf("tenant %s (weight %d): %v dispatches, want %.0f ±2%%", name, w, got, want)
		}
	}
}

func TestIdleTenantServedWithinOneRound(t *testing.T) {
	q := openTest(t, func(o *Options) { o.LaneConcurrency = 1 << 20 })
	for _, name := range []string{"big1", "big2", "big3"} {
		q.enqueueMany(name, 300, func(i int) string { return fmt.Sprintf("u%d@%s.example", i, name) })
	}
	// Let the big tenants run for a while, so their passes are far ahead.
	for range 200 {
		if err := q.Ack(q.mustNext()); err != nil {
			t.Fatal(err)
		}
	}
	q.enqueue("small", "x@small-dest.example")
	for i := range 4 { // one round: the three busy tenants and the newcomer
		l := q.mustNext()
		if err := q.Ack(l); err != nil {
			t.Fatal(err)
		}
		if l.Record.Tenant == "small" {
			return
		}
		t.Logf("dispatch %d went to %s", i, l.Record.Tenant)
	}
	t.Fatal("newly active tenant not served within one round")
}

// The isolation scenario: a tenant with 100,000 deliveries queued to a site
// that is backing off must not delay another tenant's mail.
func TestIsolationFromBacklogInBackoff(t *testing.T) {
	q := openTest(t, nil)
	// 100 messages × 1,000 domains = 100,000 deliveries, every domain served
	// by one site ("wall", say one big provider's MX).
	var rcpts []string
	for d := range 1000 {
		dom := fmt.Sprintf("d%d.example", d)
		q.SetSite(dom, "wall")
		rcpts = append(rcpts, "user@"+dom)
	}
	for range 100 {
		q.enqueue("bulk", rcpts...)
	}
	if ts := q.tenantStats("bulk"); ts.Ready != 100000 {
		t.Fatalf("bulk ready = %d, want 100000", ts.Ready)
	}
	l := q.mustNext()
	if l.Site != "wall" {
		t.Fatalf("lease site %q, want wall", l.Site)
	}
	q.LaneFailed("", "wall")
	if err := q.Defer(l, "421 4.7.0 try again later"); err != nil {
		t.Fatal(err)
	}

	q.mustNothing() // everything of bulk's is behind the wall
	id := q.enqueue("shop", "customer@elsewhere.example")
	got := q.mustNext()
	if got.ID != id || got.Record.Tenant != "shop" {
		t.Fatalf("dispatched %s of %s, want shop's %s", got.ID, got.Record.Tenant, id)
	}
	q.mustNothing()

	// When the backoff ends, bulk flows again.
	q.clock.Advance(LaneBackoffCap * 2)
	if l := q.mustNext(); l.Record.Tenant != "bulk" {
		t.Fatalf("after backoff got %s", l.Record.Tenant)
	}
}

// Same scenario with a concurrency limit instead of a backoff. The backlog is
// spread over 500 domains that share the busy site, so turns on the lane must
// be per tenant: the newcomer gets one of the next two freed slots (one round
// of the two tenants waiting), not one after 500 of the backlog's domains.
func TestIsolationFromBacklogAtConcurrencyLimit(t *testing.T) {
	q := openTest(t, nil)
	q.SetLaneLimit("", "busy", 3)
	for d := range 500 {
		q.SetSite(fmt.Sprintf("d%d.example", d), "busy")
	}
	q.SetSite("shop-customer.example", "busy")
	q.enqueueMany("bulk", 2000, func(i int) string { return fmt.Sprintf("u%d@d%d.example", i, i%500) })
	var held []*Lease
	for range 3 {
		held = append(held, q.mustNext())
	}
	q.mustNothing() // lane full

	other := q.enqueue("shop", "c@other.example")
	if l := q.mustNext(); l.ID != other {
		t.Fatalf("got %s of %s, want shop's message to another site", l.ID, l.Record.Tenant)
	}
	same := q.enqueue("shop", "c@shop-customer.example")
	q.mustNothing() // still full
	for i := range 2 {
		if err := q.Ack(held[i]); err != nil {
			t.Fatal(err)
		}
		l := q.mustNext()
		if l.ID == same {
			return
		}
		held = append(held, l)
	}
	t.Fatal("newcomer not given one of the next two freed slots on the busy site")
}

func TestRetryScheduleAndAttemptCount(t *testing.T) {
	q := openTest(t, nil)
	id := q.enqueue("acme", "bob@slow.example")
	l := q.mustNext()
	if err := q.Defer(l, "451 4.3.0 busy"); err != nil {
		t.Fatal(err)
	}
	if ts := q.tenantStats("acme"); ts.Deferred != 1 || ts.Ready != 0 {
		t.Fatalf("stats after defer: %+v", ts)
	}
	q.mustNothing()
	q.clock.Advance(RetryDelay(1, 0.5) - time.Second)
	q.mustNothing()
	q.clock.Advance(time.Second)
	l = q.mustNext()
	if l.ID != id || l.Record.Attempts != 2 || l.Record.LastError != "451 4.3.0 busy" {
		t.Fatalf("retry lease %+v", l.Record)
	}
}

func TestNextWakesOnTimer(t *testing.T) {
	q := openTest(t, nil)
	q.enqueue("acme", "bob@slow.example")
	if err := q.Defer(q.mustNext(), "451 4.3.0 busy"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan *Lease, 1)
	go func() {
		l, _ := q.Next(ctx)
		got <- l
	}()
	// Next must be asleep on the timer now; moving the clock fires it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.clock.Advance(time.Minute)
		select {
		case l := <-got:
			if l == nil {
				t.Fatal("Next returned nothing")
			}
			if q.clock.Now().Before(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC).Add(RetryDelay(1, 0.5))) {
				t.Fatal("Next returned before the retry was due")
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("Next did not wake")
		}
	}
}

func TestNextWakesOnEnqueueAndClose(t *testing.T) {
	q := openTest(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan error, 2)
	go func() {
		l, err := q.Next(ctx)
		if err == nil && l.Record.Tenant != "acme" {
			err = fmt.Errorf("wrong lease %+v", l.Record)
		}
		got <- err
	}()
	q.enqueue("acme", "bob@x.example")
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := q.Next(ctx)
		got <- err
	}()
	q.Close()
	if err := <-got; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
}

func TestPerRecipientResults(t *testing.T) {
	q := openTest(t, nil)
	id := q.enqueue("acme", "ok@x.example", "gone@x.example", "later@x.example")
	l := q.mustNext()
	err := q.Complete(context.Background(), l, []RecipientResult{
		{Recipient: "ok@x.example", Status: Delivered},
		{Recipient: "gone@x.example", Status: Permanent, Detail: "550 5.1.1 no such user"},
		{Recipient: "later@x.example", Status: Temporary, Detail: "452 4.2.2 mailbox full"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.bounces) != 1 || q.bounces[0].ID != id || q.bounces[0].Expired ||
		len(q.bounces[0].Failed) != 1 || q.bounces[0].Failed[0].Recipient != "gone@x.example" {
		t.Fatalf("bounces %+v", q.bounces)
	}
	q.clock.Advance(RetryBase * 2)
	l = q.mustNext()
	if fmt.Sprint(l.Record.Recipients) != "[later@x.example]" || l.Record.LastError != "452 4.2.2 mailbox full" {
		t.Fatalf("retry record %+v", l.Record)
	}
	if err := q.Fail(l, "550 5.2.2 over quota for good"); err != nil {
		t.Fatal(err)
	}
	if len(q.bounces) != 2 || q.keyExists(bodyKey(id)) || q.keyExists(deliveryKey(id, 0)) {
		t.Fatalf("after final failure: bounces %d, body kept %v", len(q.bounces), q.keyExists(bodyKey(id)))
	}
}

func TestBounceErrorKeepsRecipientsQueued(t *testing.T) {
	fail := true
	q := openTest(t, nil)
	q.opts.Bounce = func(context.Context, Bounce) error {
		if fail {
			return errors.New("cannot enqueue DSN")
		}
		return nil
	}
	q.reopen()
	id := q.enqueue("acme", "gone@x.example")
	if err := q.Fail(q.mustNext(), "550 5.1.1 unknown"); err != nil {
		t.Fatal(err)
	}
	if !q.keyExists(deliveryKey(id, 0)) {
		t.Fatal("delivery removed although its bounce failed")
	}
	fail = false
	q.clock.Advance(RetryCap * 2)
	if err := q.Fail(q.mustNext(), "550 5.1.1 unknown"); err != nil {
		t.Fatal(err)
	}
	if q.keyExists(deliveryKey(id, 0)) {
		t.Fatal("delivery kept after its bounce succeeded")
	}
}

func TestExpiryBouncesAtMaxAge(t *testing.T) {
	q := openTest(t, func(o *Options) { o.MaxAge = 2 * time.Hour })
	id := q.enqueue("acme", "bob@never.example")
	for attempt := 1; ; attempt++ {
		if attempt > 20 {
			t.Fatal("never expired")
		}
		l := q.mustNext()
		if err := q.Defer(l, "451 4.4.1 no answer"); err != nil {
			t.Fatal(err)
		}
		if len(q.bounces) > 0 {
			break
		}
		q.clock.Advance(RetryCap * 2)
	}
	b := q.bounces[0]
	if !b.Expired || b.ID != id || len(b.Failed) != 1 || !strings.Contains(b.Failed[0].Detail, "451 4.4.1 no answer") {
		t.Fatalf("bounce %+v", b)
	}
	if q.keyExists(bodyKey(id)) {
		t.Fatal("expired message body kept")
	}
}

func TestHoldStopsDispatchAndAgeing(t *testing.T) {
	q := openTest(t, func(o *Options) { o.MaxAge = 2 * time.Hour })
	q.enqueue("susp", "a@x.example")
	q.enqueue("other", "b@x.example")
	if err := q.Hold("susp"); err != nil {
		t.Fatal(err)
	}
	l := q.mustNext()
	if l.Record.Tenant != "other" {
		t.Fatalf("dispatched %s while susp held", l.Record.Tenant)
	}
	if err := q.Ack(l); err != nil {
		t.Fatal(err)
	}
	q.mustNothing()
	if ts := q.tenantStats("susp"); ts.Held != 1 || ts.Ready != 0 {
		t.Fatalf("held stats %+v", ts)
	}

	// Held for ten times the maximum age, across a restart.
	q.clock.Advance(10 * time.Hour)
	q.reopen()
	q.mustNothing()
	q.clock.Advance(10 * time.Hour)
	if err := q.Release("susp"); err != nil {
		t.Fatal(err)
	}
	l = q.mustNext()
	if l.Record.Tenant != "susp" {
		t.Fatalf("after release got %s", l.Record.Tenant)
	}
	// 20 hours old by the wall clock, but held all that time: not expired.
	if err := q.Defer(l, "451 4.3.0 busy"); err != nil {
		t.Fatal(err)
	}
	if len(q.bounces) != 0 {
		t.Fatalf("bounced after hold: %+v", q.bounces)
	}
	// Held time does count once released.
	q.clock.Advance(3 * time.Hour)
	if err := q.Defer(q.mustNext(), "451 4.3.0 busy"); err != nil {
		t.Fatal(err)
	}
	if len(q.bounces) != 1 || !q.bounces[0].Expired {
		t.Fatalf("not expired 3h after release with a 2h maximum age: %+v", q.bounces)
	}
}

func TestAttemptRecordedBeforeDelivery(t *testing.T) {
	q := openTest(t, nil)
	id := q.enqueue("acme", "bob@x.example")
	l := q.mustNext() // the worker "dies" mid-delivery: no result reported
	_ = l
	q.reopen()
	q.mustNothing() // not retried at once: no hot loop after a crash
	q.clock.Advance(RetryDelay(1, 0.5))
	l = q.mustNext()
	if l.ID != id || l.Record.Attempts != 2 {
		t.Fatalf("after restart: %s attempts %d", l.ID, l.Record.Attempts)
	}
}

func TestRecoveryRebuildsEverything(t *testing.T) {
	q := openTest(t, nil)
	ready := q.enqueue("a", "x@one.example", "y@two.example")
	deferred := q.enqueue("b", "z@three.example")
	for {
		l := q.mustNext()
		if l.ID == deferred {
			if err := q.Defer(l, "451 4.3.0 later"); err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := q.Complete(context.Background(), l, nil); err != nil { // no results: temporary
			t.Fatal(err)
		}
	}
	q.clock.Advance(RetryCap * 2)
	q.reopen()
	seen := map[MsgID]int{}
	for range 3 {
		l := q.mustNext()
		seen[l.ID]++
		if err := q.Ack(l); err != nil {
			t.Fatal(err)
		}
	}
	q.mustNothing()
	if seen[ready] != 2 || seen[deferred] != 1 {
		t.Fatalf("after recovery saw %v", seen)
	}
	if q.keyExists(bodyKey(ready)) || q.keyExists(bodyKey(deferred)) {
		t.Fatal("bodies left after recovered deliveries were acked")
	}
	// IDs keep increasing across a clean restart even if the clock went back
	// and nothing is queued.
	q.clock.Advance(-48 * time.Hour)
	q.reopen()
	if id := q.enqueue("a", "x@one.example"); id <= deferred {
		t.Fatalf("new id %s not above recovered %s", id, deferred)
	}
}

func TestRecoveryQuarantinesCorruptKeys(t *testing.T) {
	q := openTest(t, nil)
	good := q.enqueue("acme", "bob@x.example")
	q.Close()
	db, err := pebble.Open(q.dir, &pebble.Options{Logger: pebbleLogger{testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	junk := map[string][]byte{
		string(deliveryKey(MsgID(42), 0)): []byte("\x07not a record"),
		"d-short":                         sampleRecord().encode(nil),
		"zz unknown prefix":               []byte("?"),
		string(holdKey("broken")):         {9, 9},
		string(deliveryKey(MsgID(43), 1)): {},
	}
	for k, v := range junk {
		if err := db.Set([]byte(k), v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	q.Queue = nil
	q.reopen()
	if got := q.Stats().Quarantined; got != int64(len(junk)) {
		t.Fatalf("quarantined %d, want %d", got, len(junk))
	}
	for k := range junk {
		if q.keyExists([]byte(k)) || !q.keyExists(append([]byte{prefixQuarantine}, k...)) {
			t.Errorf("key %q not moved to quarantine", k)
		}
	}
	if l := q.mustNext(); l.ID != good {
		t.Fatalf("good message lost: got %s", l.ID)
	}
	q.mustNothing()
	q.reopen() // quarantine is stable, counted again, never rescheduled
	if got := q.Stats().Quarantined; got != int64(len(junk)) {
		t.Fatalf("quarantined after reopen %d", got)
	}
}

func TestSchemaVersionMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	db.Set([]byte(keyVersion), []byte("fairq/99"), pebble.Sync)
	db.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "fairq/99") {
		t.Fatalf("Open of a future schema: %v", err)
	}
}

func TestPoolChangeMovesLanes(t *testing.T) {
	q := openTest(t, nil)
	q.SetTenant("acme", TenantConfig{Weight: 1, Pool: "standard"})
	q.enqueue("acme", "a@x.example")
	q.enqueue("acme", "b@x.example")
	l := q.mustNext()
	if l.Pool != "standard" || l.Site != "x.example" {
		t.Fatalf("lane %s/%s", l.Pool, l.Site)
	}
	q.LaneFailed("standard", "x.example")
	q.mustNothing()
	// Reputation moves the tenant to another pool: that pool's lane to the
	// site is not backing off.
	q.SetTenant("acme", TenantConfig{Weight: 1, Pool: "quarantine"})
	l2 := q.mustNext()
	if l2.Pool != "quarantine" {
		t.Fatalf("after pool change lane %s/%s", l2.Pool, l2.Site)
	}
	// The first lease completes on the lane it was dispatched on.
	if err := q.Ack(l); err != nil {
		t.Fatal(err)
	}
	for _, ls := range q.Stats().Lanes {
		if ls.InFlight < 0 || (ls.Pool == "quarantine" && ls.InFlight != 1) {
			t.Fatalf("lane stats %+v", q.Stats().Lanes)
		}
	}
	q.LaneSucceeded("standard", "x.example")
}

func TestStatsOldest(t *testing.T) {
	q := openTest(t, nil)
	start := q.clock.Now()
	q.enqueue("acme", "a@x.example")
	q.clock.Advance(10 * time.Minute)
	q.enqueue("acme", "b@y.example")
	ts := q.tenantStats("acme")
	if ts.Ready != 2 || ts.Oldest.After(start) || start.Sub(ts.Oldest) > time.Minute {
		t.Fatalf("stats %+v, want 2 ready, oldest ≈ %v", ts, start)
	}
	if err := q.Ack(q.mustNext()); err != nil { // the older one goes first
		t.Fatal(err)
	}
	ts = q.tenantStats("acme")
	if ts.Ready != 1 || ts.Oldest.Before(start.Add(9*time.Minute)) {
		t.Fatalf("after first delivered: %+v", ts)
	}
}

// A tenant that was idle while others were served does not bank credit: when
// it comes back with a backlog it gets its share, not a burst.
func TestReturningTenantGetsNoBurst(t *testing.T) {
	q := openTest(t, func(o *Options) { o.LaneConcurrency = 1 << 20 })
	q.enqueue("returning", "a@r.example")
	if err := q.Ack(q.mustNext()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"big1", "big2", "big3"} {
		q.enqueueMany(name, 400, func(i int) string { return fmt.Sprintf("u%d@%s.example", i, name) })
	}
	for range 300 {
		if err := q.Ack(q.mustNext()); err != nil {
			t.Fatal(err)
		}
	}
	q.enqueueMany("returning", 100, func(i int) string { return fmt.Sprintf("u%d@r.example", i) })
	got := 0
	for range 40 {
		l := q.mustNext()
		if l.Record.Tenant == "returning" {
			got++
		}
		if err := q.Ack(l); err != nil {
			t.Fatal(err)
		}
	}
	if got > 11 { // a fair share of 40 among 4 tenants is 10
		t.Fatalf("returning tenant took %d of 40 dispatches, want about 10", got)
	}
}

// TestWeightedSharesOnASaturatedLane is the usual case of a busy receiver:
// every tenant's mail waits on one lane at its concurrency limit, so each
// freed slot decides who goes next. Slots must be shared by weight there
// too, not round-robin.
func TestWeightedSharesOnASaturatedLane(t *testing.T) {
	q := openTest(t, func(o *Options) { o.LaneConcurrency = 4 })
	weights := map[string]int{"w1": 1, "w2": 2, "w4": 4}
	const dispatches = 7000
	for name, w := range weights {
		q.SetTenant(name, TenantConfig{Weight: w})
		q.enqueueMany(name, dispatches*w/7+500, func(i int) string {
			// w4 sends to one domain only (its queue parks and unparks
			// all the time), the others to five.
			dom := fmt.Sprintf("%s-d%d.example", name, i%5)
			if name == "w4" {
				dom = "w4-only.example"
			}
			q.SetSite(dom, "bigmail")
			return fmt.Sprintf("u%d@%s", i, dom)
		})
	}
	// Keep the lane full: four in flight, one freed and one taken at a time.
	inflight := []*Lease{q.mustNext(), q.mustNext(), q.mustNext(), q.mustNext()}
	if l, err := q.TryNext(); err != nil || l != nil {
		t.Fatalf("a fifth lease on a lane of four: %v, %v", l, err)
	}
	counts := map[string]int{}
	for i := range dispatches {
		// Idle workers ask while the lane is full, as delivery's do: every
		// tenant's queues get parked on the lane.
		if l, err := q.TryNext(); err != nil || l != nil {
			t.Fatalf("a lease on a full lane: %v, %v", l, err)
		}
		if err := q.Ack(inflight[i%4]); err != nil {
			t.Fatal(err)
		}
		l := q.mustNext()
		counts[l.Record.Tenant]++
		inflight[i%4] = l
	}
	for name, w := range weights {
		want := float64(dispatches) * float64(w) / 7
		if got := float64(counts[name]); got < want*0.95 || got > want*1.05 {
			t.Errorf("tenant %s (weight %d): %v of the freed slots, want %.0f ±5%%", name, w, got, want)
		}
	}
}

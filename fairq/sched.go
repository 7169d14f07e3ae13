package fairq

// The in-memory scheduler: everything here runs under Queue.mu and does no I/O.
//
//	tenant heap (stride WFQ, tenants with dispatchable work)
//	  └─ tenant ring of active destination queues (round-robin)
//	       └─ destination queue: FIFO of due deliveries
//	lanes (pool, site): in-flight count, limit, backoff, parked queues
//	delivery heap: deliveries waiting for a retry, by due time
//	lane heap: lanes in backoff, by end of backoff
//
// A destination queue is idle (no due delivery), active (in its tenant's ring)
// or parked (on its lane's list, because the lane was blocked when the queue
// was visited). Parking makes a blocked lane cost O(1) per visit and keeps
// tenants whose only work is blocked out of the tenant heap.

// strideScale is the pass a tenant of weight 1 pays per dispatch.
const strideScale = 1 << 32

type laneKey struct{ pool, site string }

type lane struct {
	key          laneKey
	limit        int
	inflight     int
	failures     int
	backoffUntil int64 // unix nanoseconds; the lane is paused before it
	heapIdx      int   // index in Queue.laneHeap, -1 if not there
	// Tenants with queues parked on the lane, in a heap by their pass on
	// the lane: a freed slot goes to the tenant with the lowest, whose pass
	// then grows by its stride, so a busy lane's slots are shared by weight
	// (stride WFQ, as the tenant heap does). Turns are per tenant, not per
	// queue, so a tenant with many domains on one site takes no more turns
	// than a tenant with one. A tenant that parks joins at the lane's
	// virtual time: no credit for having been away.
	waits    map[*tenantState]*laneWait
	waitHeap []*laneWait
	vtime    uint64
	nparked  int
	ndqs     int // destination queues routed through this lane
}

// laneWait is one tenant's parked queues on one lane.
type laneWait struct {
	tenant     *tenantState
	head, tail *destQueue
	pass       uint64 // on this lane
	seq        uint64 // order of arrival, to break ties
	idx        int    // in lane.waitHeap
}

func (l *lane) blocked(now int64) bool { return l.inflight >= l.limit || now < l.backoffUntil }

const (
	dqIdle uint8 = iota
	dqActive
	dqParked
)

type destQueue struct {
	tenant     *tenantState
	domain     string
	lane       *lane
	head, tail *delivery // due deliveries, oldest first
	nready     int
	ndeferred  int
	ninflight  int
	state      uint8
	prev, next *destQueue // tenant ring when active, laneWait list when parked
}

// delivery is the resident index entry of one queued delivery; everything
// else about it stays in its Pebble record.
type delivery struct {
	msg     MsgID
	due     int64 // unix nanoseconds, while waiting in the delivery heap
	dq      *destQueue
	next    *delivery // FIFO link
	heapIdx int32     // index in Queue.deliveryHeap, -1 if not there
	idx     uint16
}

type tenantState struct {
	name    string
	weight  int
	pool    string
	stride  uint64
	pass    uint64
	seq     uint64 // tie-break among equal passes: first come, first served
	heapIdx int    // index in Queue.tenantHeap, -1 if not there
	hold    holdState
	cursor  *destQueue // next active queue to visit; nil when none is active
	nactive int
	dqs     map[string]*destQueue
	// depth counters
	ready, deferred, inflight int
	ages                      ageIndex
}

func (t *tenantState) setWeight(w int) {
	if w < 1 {
		w = 1
	}
	t.weight = w
	t.stride = strideScale / uint64(w)
}

// ---- destination queue FIFO ----

func (dq *destQueue) push(d *delivery) {
	d.next = nil
	if dq.tail == nil {
		dq.head = d
	} else {
		dq.tail.next = d
	}
	dq.tail = d
	dq.nready++
}

func (dq *destQueue) pop() *delivery {
	d := dq.head
	dq.head = d.next
	if dq.head == nil {
		dq.tail = nil
	}
	d.next = nil
	dq.nready--
	return d
}

// unlinkReady takes a due delivery out of its queue's FIFO; prev is the one
// before it, nil if it is the head.
func (s *sched) unlinkReady(d, prev *delivery) {
	dq := d.dq
	if prev == nil {
		dq.head = d.next
	} else {
		prev.next = d.next
	}
	if dq.tail == d {
		dq.tail = prev
	}
	d.next = nil
	dq.nready--
	dq.tenant.ready--
	if dq.nready == 0 {
		switch dq.state {
		case dqActive:
			s.ringRemove(dq)
		case dqParked:
			s.unparkOne(dq)
		}
	}
}

// ---- scheduler operations (Queue.mu held) ----

type sched struct {
	tenants      map[string]*tenantState
	lanes        map[laneKey]*lane
	sites        map[string]string // destination domain → site, when not itself
	laneLimits   map[laneKey]int
	defaultLimit int
	tenantHeap   []*tenantState
	deliveryHeap []*delivery
	laneHeap     []*lane
	vtime        uint64
	seq          uint64
	waitSeq      uint64 // arrival order of lane waits
}

func newSched(defaultLimit int) *sched {
	return &sched{
		tenants:      map[string]*tenantState{},
		lanes:        map[laneKey]*lane{},
		sites:        map[string]string{},
		laneLimits:   map[laneKey]int{},
		defaultLimit: defaultLimit,
	}
}

func (s *sched) tenant(name string) *tenantState {
	t := s.tenants[name]
	if t == nil {
		t = &tenantState{name: name, heapIdx: -1, dqs: map[string]*destQueue{}}
		t.setWeight(1)
		s.tenants[name] = t
	}
	return t
}

func (s *sched) siteOf(domain string) string {
	if site, ok := s.sites[domain]; ok {
		return site
	}
	return domain
}

func (s *sched) lane(k laneKey) *lane {
	l := s.lanes[k]
	if l == nil {
		limit, ok := s.laneLimits[k]
		if !ok {
			limit = s.defaultLimit
		}
		l = &lane{key: k, limit: limit, heapIdx: -1}
		s.lanes[k] = l
	}
	return l
}

func (s *sched) destQueue(t *tenantState, domain string) *destQueue {
	dq := t.dqs[domain]
	if dq == nil {
		dq = &destQueue{tenant: t, domain: domain, lane: s.lane(laneKey{t.pool, s.siteOf(domain)})}
		dq.lane.ndqs++
		t.dqs[domain] = dq
	}
	return dq
}

// addReady appends a due delivery to its queue and makes the queue
// dispatchable if it was idle.
func (s *sched) addReady(d *delivery, now int64) {
	dq := d.dq
	dq.push(d)
	dq.tenant.ready++
	if dq.state == dqIdle {
		if dq.lane.blocked(now) {
			s.park(dq)
		} else {
			s.ringAdd(dq)
		}
	}
}

// addDeferred puts a delivery in the delivery heap until due.
func (s *sched) addDeferred(d *delivery, due int64) {
	d.due = due
	d.dq.ndeferred++
	d.dq.tenant.deferred++
	s.deliveryHeapPush(d)
}

// promote moves due deliveries to their queues and ends due lane backoffs.
func (s *sched) promote(now int64) {
	for len(s.deliveryHeap) > 0 && s.deliveryHeap[0].due <= now {
		d := s.deliveryHeapPop()
		d.dq.ndeferred--
		d.dq.tenant.deferred--
		s.addReady(d, now)
	}
	for len(s.laneHeap) > 0 && s.laneHeap[0].backoffUntil <= now {
		l := s.laneHeap[0]
		s.laneHeapRemove(l)
		s.unpark(l, now)
		s.maybeDropLane(l)
	}
}

// nextDue is the earliest time promote has work, or 0.
func (s *sched) nextDue() int64 {
	var next int64
	if len(s.deliveryHeap) > 0 {
		next = s.deliveryHeap[0].due
	}
	if len(s.laneHeap) > 0 && (next == 0 || s.laneHeap[0].backoffUntil < next) {
		next = s.laneHeap[0].backoffUntil
	}
	return next
}

// pick takes the next delivery by weighted fair queueing among tenants, then
// round-robin among the tenant's destinations. It returns nil when nothing is
// dispatchable now. The caller promotes first.
func (s *sched) pick(now int64) *delivery {
	for len(s.tenantHeap) > 0 {
		t := s.tenantHeap[0]
		d := s.pickFrom(t, now)
		if d == nil {
			continue // pickFrom parked every queue and took t out of the heap
		}
		s.vtime = t.pass
		t.pass += t.stride
		if t.heapIdx >= 0 {
			s.tenantHeapFix(t.heapIdx)
		}
		dq := d.dq
		dq.ninflight++
		dq.lane.inflight++
		t.ready--
		t.inflight++
		return d
	}
	return nil
}

func (s *sched) pickFrom(t *tenantState, now int64) *delivery {
	for t.cursor != nil {
		dq := t.cursor
		if dq.lane.blocked(now) {
			s.ringRemove(dq)
			s.park(dq)
			continue
		}
		t.cursor = dq.next
		d := dq.pop()
		if dq.nready == 0 {
			s.ringRemove(dq)
		}
		return d
	}
	return nil
}

// release ends an in-flight delivery on lane l (the lane it was dispatched
// on). The caller then requeues or forgets the delivery.
func (s *sched) release(d *delivery, l *lane, now int64) {
	dq := d.dq
	dq.ninflight--
	dq.tenant.inflight--
	l.inflight--
	s.unpark(l, now)
}

// ---- tenant ring ----

func (s *sched) ringAdd(dq *destQueue) {
	t := dq.tenant
	dq.state = dqActive
	if t.cursor == nil {
		dq.prev, dq.next = dq, dq
		t.cursor = dq
	} else { // insert just before the cursor: visited last in this round
		c := t.cursor
		dq.prev, dq.next = c.prev, c
		c.prev.next = dq
		c.prev = dq
	}
	t.nactive++
	if t.heapIdx < 0 && !t.hold.held() {
		s.tenantHeapPush(t)
	}
}

func (s *sched) ringRemove(dq *destQueue) {
	t := dq.tenant
	if dq.next == dq {
		t.cursor = nil
	} else {
		dq.prev.next = dq.next
		dq.next.prev = dq.prev
		if t.cursor == dq {
			t.cursor = dq.next
		}
	}
	dq.prev, dq.next = nil, nil
	dq.state = dqIdle
	t.nactive--
	if t.nactive == 0 && t.heapIdx >= 0 {
		s.tenantHeapRemove(t)
	}
}

// ---- lane parking ----

func (s *sched) park(dq *destQueue) {
	l := dq.lane
	w := l.waits[dq.tenant]
	if w == nil {
		if l.waits == nil {
			l.waits = map[*tenantState]*laneWait{}
		}
		w = &laneWait{tenant: dq.tenant, pass: l.vtime, idx: -1}
		l.waits[dq.tenant] = w
	}
	if w.idx < 0 { // back in line: its pass kept, but no credit for the time away
		w.pass = max(w.pass, l.vtime)
		s.waitSeq++
		w.seq = s.waitSeq
		l.pushWait(w)
	}
	dq.state = dqParked
	dq.next = nil
	dq.prev = w.tail
	if w.tail == nil {
		w.head = dq
	} else {
		w.tail.next = dq
	}
	w.tail = dq
	l.nparked++
}

// The lane's wait heap, ordered by (pass, seq).

func (l *lane) waitLess(i, j int) bool {
	a, b := l.waitHeap[i], l.waitHeap[j]
	if a.pass != b.pass {
		return a.pass < b.pass
	}
	return a.seq < b.seq
}

func (l *lane) waitSwap(i, j int) {
	l.waitHeap[i], l.waitHeap[j] = l.waitHeap[j], l.waitHeap[i]
	l.waitHeap[i].idx, l.waitHeap[j].idx = i, j
}

func (l *lane) waitUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !l.waitLess(i, p) {
			return
		}
		l.waitSwap(i, p)
		i = p
	}
}

func (l *lane) waitDown(i int) {
	n := len(l.waitHeap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && l.waitLess(c+1, c) {
			c++
		}
		if !l.waitLess(c, i) {
			return
		}
		l.waitSwap(i, c)
		i = c
	}
}

func (l *lane) pushWait(w *laneWait) {
	w.idx = len(l.waitHeap)
	l.waitHeap = append(l.waitHeap, w)
	l.waitUp(w.idx)
}

func (l *lane) removeWait(w *laneWait) {
	i, last := w.idx, len(l.waitHeap)-1
	if i != last {
		l.waitSwap(i, last)
	}
	l.waitHeap[last] = nil
	l.waitHeap = l.waitHeap[:last]
	if i != last {
		l.waitDown(i)
		l.waitUp(i)
	}
	w.idx = -1
}

// unparkOne takes a parked queue off its lane; it is left idle.
func (s *sched) unparkOne(dq *destQueue) {
	l := dq.lane
	w := l.waits[dq.tenant]
	if dq.prev == nil {
		w.head = dq.next
	} else {
		dq.prev.next = dq.next
	}
	if dq.next == nil {
		w.tail = dq.prev
	} else {
		dq.next.prev = dq.prev
	}
	dq.prev, dq.next = nil, nil
	dq.state = dqIdle
	l.nparked--
	if w.head == nil && w.idx >= 0 {
		// Out of line, but its pass is kept (l.waits) until the lane is
		// dropped: a tenant with one destination on the lane parks and
		// unparks all the time, and must not start afresh each time.
		l.removeWait(w)
	}
}

// unpark gives each free slot of the lane to the tenant whose turn it is
// (the lowest pass on the lane): one of its parked queues goes back to its
// ring, and its pass on the lane grows by its stride.
func (s *sched) unpark(l *lane, now int64) {
	if now < l.backoffUntil {
		return
	}
	for free := l.limit - l.inflight; free > 0 && len(l.waitHeap) > 0; free-- {
		w := l.waitHeap[0]
		dq := w.head
		l.vtime = w.pass
		w.pass += w.tenant.stride
		if w.head.next != nil { // more parked: its next turn by its new pass
			l.waitDown(w.idx)
		}
		s.unparkOne(dq)
		if dq.nready > 0 {
			s.ringAdd(dq)
		}
	}
}

// ---- holds ----

func (s *sched) hold(t *tenantState, h holdState) {
	t.hold = h
	if t.heapIdx >= 0 {
		s.tenantHeapRemove(t)
	}
}

func (s *sched) unhold(t *tenantState, h holdState) {
	t.hold = h
	if t.nactive > 0 && t.heapIdx < 0 {
		s.tenantHeapPush(t)
	}
}

// ---- lanes ----

// relane moves a destination queue to the lane its tenant's pool and its
// domain's site now select.
func (s *sched) relane(dq *destQueue, now int64) {
	k := laneKey{dq.tenant.pool, s.siteOf(dq.domain)}
	if dq.lane.key == k {
		return
	}
	old := dq.lane
	wasParked := dq.state == dqParked
	if wasParked {
		s.unparkOne(dq)
	}
	old.ndqs--
	dq.lane = s.lane(k)
	dq.lane.ndqs++
	if wasParked && dq.nready > 0 {
		if dq.lane.blocked(now) {
			s.park(dq)
		} else {
			s.ringAdd(dq)
		}
	}
	s.maybeDropLane(old)
}

func (s *sched) setLaneBackoff(l *lane, until int64) {
	l.backoffUntil = until
	if l.heapIdx >= 0 {
		s.laneHeapFix(l.heapIdx)
	} else {
		s.laneHeapPush(l)
	}
}

func (s *sched) clearLaneBackoff(l *lane, now int64) {
	l.failures = 0
	l.backoffUntil = 0
	if l.heapIdx >= 0 {
		s.laneHeapRemove(l)
	}
	s.unpark(l, now)
}

// maybeDropQueue forgets a destination queue that holds nothing.
func (s *sched) maybeDropQueue(dq *destQueue) {
	if dq.nready != 0 || dq.ndeferred != 0 || dq.ninflight != 0 || dq.state != dqIdle {
		return
	}
	if dq.tenant.dqs[dq.domain] == dq {
		delete(dq.tenant.dqs, dq.domain)
		dq.lane.ndqs--
		s.maybeDropLane(dq.lane)
	}
}

// maybeDropLane forgets a lane that routes nothing and is not backing off.
func (s *sched) maybeDropLane(l *lane) {
	if l.ndqs == 0 && l.inflight == 0 && l.heapIdx < 0 && l.nparked == 0 && s.lanes[l.key] == l {
		delete(s.lanes, l.key)
	}
}

// ---- heaps ----

func tenantLess(a, b *tenantState) bool {
	if a.pass != b.pass {
		return a.pass < b.pass
	}
	return a.seq < b.seq
}

func (s *sched) tenantHeapPush(t *tenantState) {
	if t.pass < s.vtime {
		t.pass = s.vtime // an idle tenant joins at the current round, not with credit
	}
	s.seq++
	t.seq = s.seq
	t.heapIdx = len(s.tenantHeap)
	s.tenantHeap = append(s.tenantHeap, t)
	siftUp(s.tenantHeap, t.heapIdx, tenantLess, setTenantIdx)
}

func (s *sched) tenantHeapRemove(t *tenantState) {
	i := t.heapIdx
	s.tenantHeap = heapRemove(s.tenantHeap, i, tenantLess, setTenantIdx)
	t.heapIdx = -1
}

func (s *sched) tenantHeapFix(i int) { heapFix(s.tenantHeap, i, tenantLess, setTenantIdx) }

func setTenantIdx(t *tenantState, i int) { t.heapIdx = i }

func deliveryLess(a, b *delivery) bool {
	if a.due != b.due {
		return a.due < b.due
	}
	if a.msg != b.msg {
		return a.msg < b.msg
	}
	return a.idx < b.idx
}

func setDeliveryIdx(d *delivery, i int) { d.heapIdx = int32(i) }

func (s *sched) deliveryHeapPush(d *delivery) {
	d.heapIdx = int32(len(s.deliveryHeap))
	s.deliveryHeap = append(s.deliveryHeap, d)
	siftUp(s.deliveryHeap, int(d.heapIdx), deliveryLess, setDeliveryIdx)
}

func (s *sched) deliveryHeapPop() *delivery {
	d := s.deliveryHeap[0]
	s.deliveryHeap = heapRemove(s.deliveryHeap, 0, deliveryLess, setDeliveryIdx)
	d.heapIdx = -1
	return d
}

func (s *sched) deliveryHeapRemove(d *delivery) {
	s.deliveryHeap = heapRemove(s.deliveryHeap, int(d.heapIdx), deliveryLess, setDeliveryIdx)
	d.heapIdx = -1
}

func laneLess(a, b *lane) bool { return a.backoffUntil < b.backoffUntil }

func setLaneIdx(l *lane, i int) { l.heapIdx = i }

func (s *sched) laneHeapPush(l *lane) {
	l.heapIdx = len(s.laneHeap)
	s.laneHeap = append(s.laneHeap, l)
	siftUp(s.laneHeap, l.heapIdx, laneLess, setLaneIdx)
}

func (s *sched) laneHeapRemove(l *lane) {
	s.laneHeap = heapRemove(s.laneHeap, l.heapIdx, laneLess, setLaneIdx)
	l.heapIdx = -1
}

func (s *sched) laneHeapFix(i int) { heapFix(s.laneHeap, i, laneLess, setLaneIdx) }

// Generic binary heap helpers that keep each element's index current.

func siftUp[T any](h []T, i int, less func(a, b T) bool, setIdx func(T, int)) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		setIdx(h[i], i)
		setIdx(h[p], p)
		i = p
	}
}

func siftDown[T any](h []T, i int, less func(a, b T) bool, setIdx func(T, int)) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		setIdx(h[i], i)
		setIdx(h[m], m)
		i = m
	}
	return i > start
}

func heapFix[T any](h []T, i int, less func(a, b T) bool, setIdx func(T, int)) {
	if !siftDown(h, i, less, setIdx) {
		siftUp(h, i, less, setIdx)
	}
}

func heapRemove[T any](h []T, i int, less func(a, b T) bool, setIdx func(T, int)) []T {
	n := len(h) - 1
	if i != n {
		h[i] = h[n]
		setIdx(h[i], i)
	}
	var zero T
	h[n] = zero
	h = h[:n]
	if i < n {
		heapFix(h, i, less, setIdx)
	}
	return h
}

func heapInit[T any](h []T, less func(a, b T) bool, setIdx func(T, int)) {
	for i := range h {
		setIdx(h[i], i)
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i, less, setIdx)
	}
}

// ageIndex counts a tenant's queued deliveries per minute of message age, to
// answer "oldest" without walking the queue.
type ageIndex struct {
	counts map[int64]int32 // minute (of MsgID's microseconds) → deliveries
	oldest int64           // cached minimum key; valid when !stale
	stale  bool
}

func minuteOf(id MsgID) int64 { return int64(id) / 60e6 }

func (a *ageIndex) add(id MsgID) {
	if a.counts == nil {
		a.counts = map[int64]int32{}
	}
	m := minuteOf(id)
	a.counts[m]++
	if !a.stale && (len(a.counts) == 1 || m < a.oldest) {
		a.oldest = m
	}
}

func (a *ageIndex) remove(id MsgID) {
	m := minuteOf(id)
	if c := a.counts[m] - 1; c > 0 {
		a.counts[m] = c
		return
	}
	delete(a.counts, m)
	if m == a.oldest {
		a.stale = true
	}
}

// oldestMinute returns the minute of the oldest queued message, or false.
func (a *ageIndex) oldestMinute() (int64, bool) {
	if len(a.counts) == 0 {
		return 0, false
	}
	if a.stale {
		first := true
		for m := range a.counts {
			if first || m < a.oldest {
				a.oldest, first = m, false
			}
		}
		a.stale = false
	}
	return a.oldest, true
}

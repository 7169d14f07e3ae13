package fairq

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Operator actions behind `fairway queue list|retry|delete`. They are rare,
// so they may walk the index; the dispatch path never pays for them.

// ErrNotFound is returned for a message the queue does not hold.
var ErrNotFound = errors.New("fairq: no such message")

// ErrInFlight is returned when a message cannot be changed because one of
// its deliveries is being attempted right now.
var ErrInFlight = errors.New("fairq: message is being delivered, try again")

// Entry is one delivery as listed for the operator.
type Entry struct {
	ID     MsgID
	Index  uint16
	Record *Record
}

// ListOptions filter List.
type ListOptions struct {
	Tenant string // only this tenant's deliveries, if set
	After  MsgID  // only messages with a greater ID (paging)
	Limit  int    // at most this many entries; default 100
}

// List returns queued deliveries in ID order, read from the store.
func (q *Queue) List(o ListOptions) ([]Entry, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	db, ok := q.store()
	if !ok {
		return nil, ErrClosed
	}
	defer q.dbMu.RUnlock()
	if o.After == ^MsgID(0) {
		return nil, nil
	}
	iter, err := db.NewIter(&pebble.IterOptions{LowerBound: deliveryKey(o.After+1, 0), UpperBound: []byte{prefixDelivery + 1}})
	if err != nil {
		return nil, fmt.Errorf("fairq: list: %w", err)
	}
	defer iter.Close()
	var out []Entry
	for valid := iter.First(); valid && len(out) < o.Limit; valid = iter.Next() {
		id, idx, ok := parseDeliveryKey(iter.Key())
		if !ok {
			continue
		}
		rec, err := decodeRecord(iter.Value())
		if err != nil {
			continue // quarantined at the next open
		}
		if o.Tenant != "" && rec.Tenant != o.Tenant {
			continue
		}
		out = append(out, Entry{ID: id, Index: idx, Record: rec})
	}
	return out, iter.Error()
}

// deliveriesOf reads the delivery keys and records of one message.
func (q *Queue) deliveriesOf(db *pebble.DB, id MsgID) ([]Entry, error) {
	iter, err := db.NewIter(&pebble.IterOptions{LowerBound: deliveryKey(id, 0), UpperBound: deliveryKey(id+1, 0)})
	if err != nil {
		return nil, err
	}
	defer iter.Close()
	var out []Entry
	for valid := iter.First(); valid; valid = iter.Next() {
		_, idx, ok := parseDeliveryKey(iter.Key())
		if !ok {
			continue
		}
		rec, err := decodeRecord(iter.Value())
		if err != nil {
			return nil, fmt.Errorf("delivery %s/%d: %w", id, idx, err)
		}
		out = append(out, Entry{ID: id, Index: idx, Record: rec})
	}
	return out, iter.Error()
}

// findDelivery locates a queued delivery in the index. q.mu held. It returns
// the delivery, and the one before it in its queue's FIFO when it is there.
func (q *Queue) findDelivery(e Entry) (d, prev *delivery, inHeap bool) {
	t := q.s.tenants[e.Record.Tenant]
	if t == nil {
		return nil, nil, false
	}
	if dq := t.dqs[e.Record.Domain]; dq != nil {
		for p, c := (*delivery)(nil), dq.head; c != nil; p, c = c, c.next {
			if c.msg == e.ID && c.idx == e.Index {
				return c, p, false
			}
		}
	}
	for _, c := range q.s.deliveryHeap {
		if c.msg == e.ID && c.idx == e.Index {
			return c, nil, true
		}
	}
	return nil, nil, false // in flight
}

// Retry makes every waiting delivery of a message due now.
func (q *Queue) Retry(id MsgID) error {
	db, ok := q.store()
	if !ok {
		return ErrClosed
	}
	entries, err := q.deliveriesOf(db, id)
	q.dbMu.RUnlock()
	if err != nil {
		return fmt.Errorf("fairq: retry %s: %w", id, err)
	}
	if len(entries) == 0 {
		return ErrNotFound
	}
	now := q.clock.Now().UnixNano()
	q.mu.Lock()
	for _, e := range entries {
		d, _, inHeap := q.findDelivery(e)
		if inHeap {
			q.s.deliveryHeapRemove(d)
			d.dq.ndeferred--
			d.dq.tenant.deferred--
		}
		// The operator's retry overrides the destination's backoff too:
		// otherwise the delivery, due now, would still wait on its lane.
		if d != nil && now < d.dq.lane.backoffUntil {
			q.s.clearLaneBackoff(d.dq.lane, now)
		}
		if inHeap {
			q.s.addReady(d, now)
		}
	}
	q.mu.Unlock()
	q.kick()
	q.log.Info("retry requested", "msgid", id.String(), "tenant", entries[0].Record.Tenant)
	return nil
}

// Delete removes a message and all its deliveries without bouncing it.
func (q *Queue) Delete(id MsgID) error {
	db, ok := q.store()
	if !ok {
		return ErrClosed
	}
	defer q.dbMu.RUnlock()
	entries, err := q.deliveriesOf(db, id)
	if err != nil {
		return fmt.Errorf("fairq: delete %s: %w", id, err)
	}
	if len(entries) == 0 {
		return ErrNotFound
	}
	q.mu.Lock()
	type found struct{ d, prev *delivery }
	var ds []found
	for _, e := range entries {
		d, prev, inHeap := q.findDelivery(e)
		if d == nil {
			q.mu.Unlock()
			return fmt.Errorf("%w: %s", ErrInFlight, id)
		}
		if inHeap {
			prev = nil
		}
		ds = append(ds, found{d, prev})
	}
	b := db.NewBatch()
	defer b.Close()
	for _, e := range entries {
		_ = b.Delete(deliveryKey(e.ID, e.Index), nil)
	}
	_ = b.Delete(bodyKey(id), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		q.mu.Unlock()
		return fmt.Errorf("fairq: delete %s: %w", id, err)
	}
	for _, f := range ds {
		d := f.d
		if d.heapIdx >= 0 {
			q.s.deliveryHeapRemove(d)
			d.dq.ndeferred--
			d.dq.tenant.deferred--
		} else {
			q.s.unlinkReady(d, f.prev)
		}
		delete(q.siblings, d.msg)
		d.dq.tenant.ages.remove(d.msg)
		q.s.maybeDropQueue(d.dq)
	}
	q.mu.Unlock()
	q.log.Info("deleted by operator", "msgid", id.String(), "tenant", entries[0].Record.Tenant,
		"deliveries", len(entries))
	return nil
}

package fairq

import (
	"errors"
	"testing"
)

func TestListPagesAndFilters(t *testing.T) {
	q := openTest(t, nil)
	a1 := q.enqueue("a", "x@one.example", "y@two.example")
	b1 := q.enqueue("b", "z@one.example")
	a2 := q.enqueue("a", "w@one.example")

	all, err := q.List(ListOptions{})
	if err != nil || len(all) != 4 {
		t.Fatalf("List = %d entries, %v", len(all), err)
	}
	onlyA, err := q.List(ListOptions{Tenant: "a"})
	if err != nil || len(onlyA) != 3 || onlyA[0].ID != a1 || onlyA[2].ID != a2 {
		t.Fatalf("List tenant a = %+v, %v", onlyA, err)
	}
	page, err := q.List(ListOptions{After: a1, Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != b1 {
		t.Fatalf("page after %s = %+v, %v", a1, page, err)
	}
}

func TestRetryMakesDeferredDue(t *testing.T) {
	q := openTest(t, nil)
	id := q.enqueue("a", "x@slow.example")
	if err := q.Defer(q.mustNext(), "451 4.3.0 later"); err != nil {
		t.Fatal(err)
	}
	q.mustNothing()
	if err := q.Retry(id); err != nil {
		t.Fatal(err)
	}
	if l := q.mustNext(); l.ID != id {
		t.Fatalf("got %s after retry", l.ID)
	}
	if err := q.Retry(MsgID(12345)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Retry of unknown = %v", err)
	}
}

func TestDeleteRemovesWithoutBounce(t *testing.T) {
	q := openTest(t, nil)
	// One delivery deferred, one ready (in a FIFO behind another message),
	// then one in flight.
	keep := q.enqueue("a", "k@two.example")
	gone := q.enqueue("a", "x@one.example", "y@two.example")
	for range 2 {
		l := q.mustNext()
		if l.ID == gone {
			if err := q.Defer(l, "451 4.3.0 later"); err != nil {
				t.Fatal(err)
			}
		} else if err := q.Defer(l, "451 4.3.0 later"); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Retry(keep); err != nil { // keep is ready again, gone's second delivery too
		t.Fatal(err)
	}
	if err := q.Delete(gone); err != nil {
		t.Fatal(err)
	}
	if q.keyExists(bodyKey(gone)) || q.keyExists(deliveryKey(gone, 0)) || q.keyExists(deliveryKey(gone, 1)) {
		t.Fatal("deleted message still stored")
	}
	if len(q.bounces) != 0 {
		t.Fatal("delete bounced")
	}
	if ts := q.tenantStats("a"); ts.Ready+ts.Deferred != 1 {
		t.Fatalf("stats after delete %+v", ts)
	}
	l := q.mustNext()
	if l.ID != keep {
		t.Fatalf("got %s, want %s", l.ID, keep)
	}
	q.mustNothing()
	if err := q.Delete(keep); !errors.Is(err, ErrInFlight) {
		t.Fatalf("Delete in flight = %v, want ErrInFlight", err)
	}
	if err := q.Ack(l); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(keep); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete after delivery = %v, want ErrNotFound", err)
	}
	q.reopen()
	q.mustNothing()
}

// Deleting a message whose delivery sits in the middle of a destination's
// FIFO unlinks it there and keeps the order of the others.
func TestDeleteFromMiddleOfQueue(t *testing.T) {
	q := openTest(t, nil)
	first := q.enqueue("a", "x@same.example")
	middle := q.enqueue("a", "y@same.example")
	last := q.enqueue("a", "z@same.example")
	if err := q.Delete(middle); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(last); err != nil { // now the tail: the tail pointer must move back
		t.Fatal(err)
	}
	tail := q.enqueue("a", "w@same.example") // appended after the new tail
	for _, want := range []MsgID{first, tail} {
		l := q.mustNext()
		if l.ID != want {
			t.Fatalf("got %s, want %s", l.ID, want)
		}
		if err := q.Ack(l); err != nil {
			t.Fatal(err)
		}
	}
	q.mustNothing()
	if ts := q.tenantStats("a"); ts.Ready+ts.Deferred+ts.InFlight != 0 {
		t.Fatalf("stats %+v", ts)
	}
}

func TestRetryOverridesTheDestinationsBackoff(t *testing.T) {
	q := openTest(t, nil)
	id := q.enqueue("a", "x@wall.example")
	l := q.mustNext()
	q.LaneFailed(l.Pool, l.Site) // the site answered 421: its lane backs off
	if err := q.Defer(l, "421 4.7.0 try later"); err != nil {
		t.Fatal(err)
	}
	q.mustNothing()
	if err := q.Retry(id); err != nil {
		t.Fatal(err)
	}
	if l := q.mustNext(); l.ID != id {
		t.Fatalf("got %s after retry", l.ID)
	}
}

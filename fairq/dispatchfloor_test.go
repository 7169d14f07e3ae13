package fairq

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// BenchmarkDispatchPebbleFloor measures, on the same 1,000,000-delivery
// queue, the three Pebble operations one dispatch+ack needs (read the record,
// write the attempt mark, delete record and body), each alone: the floor
// under BenchmarkDispatchAck that no scheduler change can remove.
func BenchmarkDispatchPebbleFloor(b *testing.B) {
	q := benchOpen(b, benchFixture(b))
	defer q.Close()
	base := MsgID(0)
	q.mu.Lock()
	for _, t := range q.s.tenants {
		for _, dq := range t.dqs {
			if dq.head != nil && (base == 0 || dq.head.msg < base) {
				base = dq.head.msg
			}
		}
	}
	q.mu.Unlock()
	rec := sampleRecord().encode(nil)
	b.Run("get", func(b *testing.B) {
		for i := range b.N {
			v, c, err := q.db.Get(deliveryKey(base+MsgID(i%fixtureDeliveries), 0))
			if err != nil {
				b.Fatal(err)
			}
			_ = v
			c.Close()
		}
	})
	b.Run("set-nosync", func(b *testing.B) {
		for i := range b.N {
			if err := q.db.Set(deliveryKey(base+MsgID(i%fixtureDeliveries), 0), rec, pebble.NoSync); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch-2-deletes-nosync", func(b *testing.B) {
		for i := range b.N {
			batch := q.db.NewBatch()
			batch.Delete(deliveryKey(base+MsgID(i%fixtureDeliveries), 0), nil)
			batch.Delete(bodyKey(base+MsgID(i%fixtureDeliveries)), nil)
			if err := batch.Commit(pebble.NoSync); err != nil {
				b.Fatal(err)
			}
			batch.Close()
		}
	})
}

package fairq

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Benchmarks report their headline with ReportMetric so a script can read it:
// msgs/s for enqueue, ns/delivery for dispatch+ack and recovery, and
// bytes/delivery for resident memory. Run them with `make bench`.

func benchOpen(b *testing.B, dir string) *Queue {
	b.Helper()
	q, err := Open(dir, Options{Logger: testLogger(b), LaneConcurrency: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// BenchmarkEnqueue measures durable enqueues of 4 KB messages with 1, 16 and
// 64 concurrent producers. Each Enqueue returns after a Sync commit; the
// producers share fsyncs through Pebble's commit pipeline.
func BenchmarkEnqueue(b *testing.B) {
	body := []byte(strings.Repeat("x", 4096))
	for _, producers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			q := benchOpen(b, b.TempDir())
			defer q.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						_, err := q.Enqueue(context.Background(), &Message{
							Tenant: fmt.Sprintf("t%d", p%8), From: "s@sender.example",
							Recipients: []string{fmt.Sprintf("r%d@dest%d.example", i, i%16)}, Body: body,
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// fixture: a queue directory holding fixtureDeliveries ready deliveries of
// fixtureTenants tenants (100 each, over 10 of 1,000 destination domains),
// one delivery per message with a 100-byte body. Built once per process by
// writing records directly in large batches (the same encoding Enqueue
// uses), then copied per run: sstables are hard-linked, the rest copied.
const (
	fixtureTenants    = 10000
	fixtureDeliveries = 1000000
)

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

func benchFixture(b *testing.B) string {
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "fairq-fixture-")
		if fixtureErr == nil {
			fixtureErr = writeFixture(fixtureDir)
		}
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	dir := filepath.Join(b.TempDir(), "queue")
	if err := copyDirLinked(fixtureDir, dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

func writeFixture(dir string) error {
	popts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, MemTableSize: 64 << 20,
		Logger: pebbleLogger{testLogger(nil)}}
	for i := range popts.Levels { // as Open configures them
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return err
	}
	if err := db.Set([]byte(keyVersion), []byte(schemaVersion), pebble.Sync); err != nil {
		return err
	}
	created := time.Now().Add(-time.Minute)
	body := []byte(strings.Repeat("b", 100))
	batch := db.NewBatch()
	var buf []byte
	id := MsgID(created.UnixMicro())
	for i := range fixtureDeliveries {
		tenant := i % fixtureTenants
		dom := (tenant*7 + (i/fixtureTenants)%10) % 1000
		rec := Record{
			Tenant: fmt.Sprintf("tenant%05d", tenant), From: "sender@tenant.example",
			Domain: fmt.Sprintf("dest%03d.example", dom), Recipients: []string{fmt.Sprintf("user%d@dest%03d.example", i, dom)},
			Created: created, NextAttempt: created,
		}
		id++
		buf = rec.encode(buf[:0])
		batch.Set(deliveryKey(id, 0), buf, nil)
		batch.Set(bodyKey(id), body, nil)
		if batch.Count() >= 20000 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return err
			}
			batch.Close()
			batch = db.NewBatch()
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return err
	}
	batch.Close()
	if err := db.Flush(); err != nil {
		return err
	}
	return db.Close()
}

func copyDirLinked(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if strings.HasSuffix(e.Name(), ".sst") || strings.HasSuffix(e.Name(), ".blob") {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BenchmarkRecovery opens a queue of 1,000,000 deliveries of 10,000 tenants:
// the time to rebuild the index (ns/delivery and s/recovery), and the Go heap
// the rebuilt queue holds per queued delivery (bytes/delivery: the resident
// index plus what Pebble keeps on the Go heap).
func BenchmarkRecovery(b *testing.B) {
	dirs := make([]string, b.N)
	for i := range dirs {
		dirs[i] = benchFixture(b)
	}
	var heap uint64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		q := benchOpen(b, dirs[i])
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += after.HeapAlloc - before.HeapAlloc
		var total int
		for _, ts := range q.Stats().Tenants {
			total += ts.Ready
		}
		if total != fixtureDeliveries || len(q.Stats().Tenants) != fixtureTenants {
			b.Fatalf("recovered %d deliveries of %d tenants", total, len(q.Stats().Tenants))
		}
		q.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/recovery")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fixtureDeliveries, "ns/delivery")
	b.ReportMetric(float64(heap)/float64(b.N)/fixtureDeliveries, "bytes/delivery")
}

// BenchmarkDispatchAck takes and acknowledges deliveries one at a time from
// the 1,000,000-delivery, 10,000-tenant queue: the whole per-delivery cost a
// worker pays to the queue (pick, read the record, record the attempt, delete
// record and body). Run with -benchtime=Nx, N ≤ 1,000,000.
func BenchmarkDispatchAck(b *testing.B) {
	if b.N > fixtureDeliveries {
		b.Skipf("b.N = %d exceeds the %d queued deliveries; use -benchtime=Nx", b.N, fixtureDeliveries)
	}
	q := benchOpen(b, benchFixture(b))
	defer q.Close()
	b.ResetTimer()
	for range b.N {
		l, err := q.TryNext()
		if err != nil || l == nil {
			b.Fatalf("TryNext: %v, %v", l, err)
		}
		if err := q.Ack(l); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/delivery")
}

// BenchmarkDispatchSchedulerOnly isolates the in-memory scheduler: pick and
// release on 10,000 tenants and 1,000,000 queued deliveries, no Pebble. The
// difference to BenchmarkDispatchAck is the storage cost.
func BenchmarkDispatchSchedulerOnly(b *testing.B) {
	s := newSched(1 << 20)
	for i := range fixtureDeliveries {
		tenant := i % fixtureTenants
		t := s.tenant(fmt.Sprintf("tenant%05d", tenant))
		dq := s.destQueue(t, fmt.Sprintf("dest%03d.example", (tenant*7+(i/fixtureTenants)%10)%1000))
		s.addReady(&delivery{msg: MsgID(i), heapIdx: -1, dq: dq}, 0)
	}
	b.ResetTimer()
	for i := range b.N {
		d := s.pick(0)
		if d == nil {
			b.Fatal("empty")
		}
		ln := d.dq.lane
		s.release(d, ln, 0)
		s.addReady(d, 0) // requeue so the queue never drains
		_ = i
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/delivery")
}

package reputation

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

func benchService(b *testing.B, tenants int) (*Service, *testClock) {
	clk := &testClock{now: t0}
	svc, err := Open(filepath.Join(b.TempDir(), "rep"), Options{Clock: clk, Pools: testPools(), TierPools: testTierPools(),
		Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	for i := range tenants {
		svc.Record(Event{Tenant: fmt.Sprintf("t%04d", i), Source: ipStd1, Site: siteMX, Outcome: Delivered})
	}
	return svc, clk
}

// BenchmarkRecord is relay's per-transaction cost.
func BenchmarkRecord(b *testing.B) {
	svc, _ := benchService(b, 1000)
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("t%04d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			svc.Record(Event{Tenant: names[i%len(names)], Source: ipStd1, Site: siteMX, Outcome: Delivered, Code: 250})
			i++
		}
	})
}

// BenchmarkPickSource is relay's per-transaction source choice.
func BenchmarkPickSource(b *testing.B) {
	svc, _ := benchService(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := svc.PickSource("standard", siteMX, netip.Addr{}); !ok {
			b.Fatal("no source")
		}
	}
}

// BenchmarkTick is one evaluation of 1000 tenants with nothing to persist.
func BenchmarkTick(b *testing.B) {
	svc, clk := benchService(b, 1000)
	svc.Tick(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		clk.Advance(time.Second)
		svc.Tick(context.Background())
	}
}

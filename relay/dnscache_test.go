package relay

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"fairway/tenant"
	"fairway/tenant/dnstest"
)

func TestDNSCache(t *testing.T) {
	srv := dnstest.Start(t)
	clk := &testClock{now: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}
	c := NewDNSCache(tenant.NewDNSResolver(srv.Addr), DNSCacheOptions{TTL: 5 * time.Minute, NegativeTTL: time.Minute, Clock: clk})
	ctx := context.Background()

	srv.SetMX("a.example", &net.MX{Host: "mx1.a.example", Pref: 10})
	if mxs, err := c.LookupMX(ctx, "a.example"); err != nil || len(mxs) != 1 || mxs[0].Host != "mx1.a.example." {
		t.Fatalf("first lookup %v %v", mxs, err)
	}
	// The zone changes; the cache keeps the answer until its TTL ends.
	srv.SetMX("a.example", &net.MX{Host: "mx2.a.example", Pref: 10})
	if mxs, _ := c.LookupMX(ctx, "A.Example."); mxs[0].Host != "mx1.a.example." {
		t.Fatalf("cached lookup %v, want the first answer", mxs[0].Host)
	}
	clk.Advance(5 * time.Minute)
	if mxs, _ := c.LookupMX(ctx, "a.example"); mxs[0].Host != "mx2.a.example." {
		t.Fatalf("after TTL %v, want the new answer", mxs[0].Host)
	}

	// "No such record" is kept for the negative TTL only.
	if _, err := c.LookupNetIP(ctx, "late.example"); !errors.Is(err, tenant.ErrDNSNotFound) {
		t.Fatalf("missing host: %v", err)
	}
	srv.SetIPs("late.example", "192.0.2.7")
	if _, err := c.LookupNetIP(ctx, "late.example"); !errors.Is(err, tenant.ErrDNSNotFound) {
		t.Fatalf("negative answer not cached: %v", err)
	}
	clk.Advance(time.Minute)
	if addrs, err := c.LookupNetIP(ctx, "late.example"); err != nil || len(addrs) != 1 {
		t.Fatalf("after negative TTL %v %v", addrs, err)
	}

	// Failures are never kept.
	srv.SetMX("flaky.example", &net.MX{Host: "mx.flaky.example", Pref: 10})
	srv.SetFail("flaky.example", true)
	if _, err := c.LookupMX(ctx, "flaky.example"); err == nil || errors.Is(err, tenant.ErrDNSNotFound) {
		t.Fatalf("SERVFAIL: %v", err)
	}
	srv.SetFail("flaky.example", false)
	if _, err := c.LookupMX(ctx, "flaky.example"); err != nil {
		t.Fatalf("failure was cached: %v", err)
	}

	// Callers get copies: changing a result does not change the cache.
	mxs, _ := c.LookupMX(ctx, "a.example")
	mxs[0] = &net.MX{Host: "evil.example."}
	if again, _ := c.LookupMX(ctx, "a.example"); again[0].Host != "mx2.a.example." {
		t.Fatal("cache shares its slice with callers")
	}
}

func TestDNSCacheBounded(t *testing.T) {
	srv := dnstest.Start(t)
	c := NewDNSCache(tenant.NewDNSResolver(srv.Addr), DNSCacheOptions{MaxEntries: 10})
	for i := range 25 {
		c.LookupNetIP(context.Background(), "h"+string(rune('a'+i))+".example") // NXDOMAIN, cached
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n > 10 {
		t.Fatalf("%d entries, want at most 10", n)
	}
}

package tenant

import (
	"net/netip"
	"testing"
	"time"
)

func TestAuthLimiter(t *testing.T) {
	a := NewAuthLimiter(AuthLimiterOptions{Failures: 3, Refill: time.Minute})
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	bad := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if !a.Allow(bad, t0) {
			t.Fatalf("refused after %d failures, want 3 allowed", i)
		}
		a.Failed(bad, t0)
	}
	if a.Allow(bad, t0) {
		t.Fatal("allowed after 3 failures")
	}
	if a.Allow(netip.MustParseAddr("::ffff:192.0.2.1"), t0) {
		t.Error("the IPv4-mapped form of the address escapes the limit")
	}
	if !a.Allow(other, t0) {
		t.Error("another address is refused")
	}
	if a.Allow(bad, t0.Add(59*time.Second)) {
		t.Error("allowed before a token came back")
	}
	if !a.Allow(bad, t0.Add(61*time.Second)) {
		t.Error("refused after one refill interval")
	}
	a.Failed(bad, t0.Add(61*time.Second))
	if a.Allow(bad, t0.Add(62*time.Second)) {
		t.Error("one refilled token allowed more than one failure")
	}

	// IPv6: one /64 is one client.
	v6a, v6b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	for range 3 {
		a.Failed(v6a, t0)
	}
	if a.Allow(v6b, t0) {
		t.Error("another address of the same /64 is allowed")
	}
	if !a.Allow(netip.MustParseAddr("2001:db8:1:3::1"), t0) {
		t.Error("a different /64 is refused")
	}
}

func TestAuthLimiterBounded(t *testing.T) {
	a := NewAuthLimiter(AuthLimiterOptions{Failures: 2, Refill: time.Minute, MaxClients: 200})
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 5000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		a.Failed(ip, t0.Add(time.Duration(i)*time.Millisecond))
		if n := len(a.clients); n > 200 {
			t.Fatalf("%d addresses tracked, cap 200", n)
		}
	}
	// An address that keeps failing now is still limited.
	last := netip.AddrFrom4([4]byte{10, 0, 19, 135}) // i = 4999
	a.Failed(last, t0.Add(5*time.Second))
	if a.Allow(last, t0.Add(5*time.Second)) {
		t.Error("the most recent attacker was forgotten")
	}
}

package reputation

import (
	"net/netip"
	"testing"
	"time"
)

func TestWarmupCap(t *testing.T) {
	start := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC) // day 1 is the whole of Nov 20
	w := Warmup{Start: start}
	for _, tc := range []struct {
		at      time.Time
		cap     int
		warming bool
	}{
		{start.Add(-16 * time.Hour), 0, true}, // Nov 19: not in service yet
		{time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), 50, true},
		{time.Date(2026, 11, 20, 23, 59, 59, 0, time.UTC), 50, true},
		{time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), 100, true},
		{time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), 400, true},
		{time.Date(2026, 12, 3, 23, 0, 0, 0, time.UTC), 50 << 13, true}, // day 14
		{time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), 0, false},        // day 15: established
	} {
		c, warming := w.Cap(tc.at)
		if c != tc.cap || warming != tc.warming {
			t.Errorf("Cap(%s) = %d, %v; want %d, %v", tc.at, c, warming, tc.cap, tc.warming)
		}
	}
	if c, warming := (Warmup{}).Cap(start); c != 0 || warming {
		t.Errorf("zero warm-up: %d, %v; want established", c, warming)
	}
	custom := Warmup{Start: start, Day1: 10, Factor: 1.5, Days: 3}
	for day, want := range []int{10, 15, 22} {
		if c, _ := custom.Cap(start.Add(time.Duration(day) * 24 * time.Hour)); c != want {
			t.Errorf("custom day %d: %d, want %d", day+1, c, want)
		}
	}
	if _, warming := custom.Cap(start.Add(3 * 24 * time.Hour)); warming {
		t.Error("custom day 4 still warming")
	}
}

func TestDNSBLName(t *testing.T) {
	for _, tc := range []struct{ ip, zone, want string }{
		{"192.0.2.99", "zen.spamhaus.org", "99.2.0.192.zen.spamhaus.org"},
		{"::ffff:192.0.2.99", ".bl.example.", "99.2.0.192.bl.example"},
		{"2001:db8:1:2::1", "bl.example", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"},
	} {
		if got := dnsblName(netip.MustParseAddr(tc.ip), tc.zone); got != tc.want {
			t.Errorf("dnsblName(%s, %s) = %s, want %s", tc.ip, tc.zone, got, tc.want)
		}
	}
}

func TestListingAnswer(t *testing.T) {
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	for _, tc := range []struct {
		in     []netip.Addr
		listed bool
		answer string
		err    bool
	}{
		{addrs("127.0.0.2"), true, "127.0.0.2", false},
		{addrs("127.0.0.4", "127.0.0.10"), true, "127.0.0.4,127.0.0.10", false},
		{addrs("127.255.255.254"), false, "127.255.255.254", true}, // refused: an error, not a listing
		{addrs("198.51.100.7"), false, "", false},                  // a resolver's NXDOMAIN hijack
		{addrs("::1"), false, "", false},
		{nil, false, "", false},
	} {
		listed, answer, err := listingAnswer(tc.in)
		if listed != tc.listed || answer != tc.answer || (err != nil) != tc.err {
			t.Errorf("listingAnswer(%v) = %v, %q, %v", tc.in, listed, answer, err)
		}
	}
}

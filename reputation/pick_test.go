package reputation

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"fairway/tenant"
	"fairway/tenant/dnstest"
)

// TestWarmupSpillOver: a warming source takes its daily cap per site and
// no more; the rest spills to the established source without a refusal;
// the cap grows the next day and the count survives a restart.
func TestWarmupSpillOver(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Pools = map[string][]Source{
			"warm": {{IP: ipWarm, EHLO: "new.test", Warmup: Warmup{Start: t0}}, {IP: ipStd1, EHLO: "out1.test"}},
			"solo": {{IP: ipSolo, EHLO: "solo.test", Warmup: Warmup{Start: t0, Day1: 3}}},
		}
		o.TierPools = map[Tier]string{Standard: "warm"}
	})
	got, refused := e.picks("warm", siteMX, 200)
	if refused != 0 || got[ipWarm] != 50 || got[ipStd1] != 150 {
		t.Fatalf("day 1 to one site: %v, %d refused; want 50 from the warming source, 150 spilled", got, refused)
	}
	if got, _ := e.picks("warm", siteAlt, 120); got[ipWarm] != 50 {
		t.Fatalf("another site has its own cap: %v", got)
	}
	// a pool with only a warming source: mail waits for tomorrow
	got, refused = e.picks("solo", siteMX, 5)
	if got[ipSolo] != 3 || refused != 2 {
		t.Fatalf("solo warming source: %v, %d refused; want 3 and 2", got, refused)
	}
	r, _ := e.svc.Report("")
	var ws *WarmupState
	for _, s := range r.Sources {
		if s.IP == ipWarm {
			ws = s.Warmup
		}
	}
	if ws == nil || ws.Day != 1 || ws.CapPerSite != 50 {
		t.Errorf("report warm-up %+v", ws)
	}

	e.tick() // persist today's counts
	e.restart()
	if got, _ := e.picks("warm", siteMX, 10); got[ipWarm] != 0 {
		t.Fatalf("cap forgotten in a restart: %v", got)
	}

	e.clk.Advance(24 * time.Hour)
	if got, _ := e.picks("warm", siteMX, 300); got[ipWarm] != 100 || got[ipStd1] != 200 {
		t.Fatalf("day 2: %v, want 100 from the warming source", got)
	}
	// established after its schedule: plain round-robin
	e.clk.Advance(14 * 24 * time.Hour)
	if got, _ := e.picks("warm", siteMX, 10); got[ipWarm] != 5 || got[ipStd1] != 5 {
		t.Fatalf("established: %v", got)
	}
}

// TestPickSourceFamily: only sources of the destination's family qualify;
// an unconfigured pool means no binding.
func TestPickSourceFamily(t *testing.T) {
	v6 := netip.MustParseAddr("::1")
	e := newEnv(t, func(o *Options) {
		o.Pools = map[string][]Source{"mixed": {{IP: ipStd1, EHLO: "v4.test"}, {IP: v6, EHLO: "v6.test"}}}
		o.TierPools = nil
	})
	for range 4 {
		if src, ok := e.svc.PickSource("mixed", siteMX, netip.MustParseAddr("192.0.2.1")); !ok || src.IP != ipStd1 {
			t.Fatalf("IPv4 destination got %v %v", src, ok)
		}
		if src, ok := e.svc.PickSource("mixed", siteMX, netip.MustParseAddr("2001:db8::1")); !ok || src.IP != v6 {
			t.Fatalf("IPv6 destination got %v %v", src, ok)
		}
	}
	if src, ok := e.svc.PickSource("nosuch", siteMX, netip.Addr{}); !ok || src.IP.IsValid() {
		t.Errorf("unconfigured pool: %v %v, want no binding", src, ok)
	}
}

// TestBlocklistWatch: a source the test DNS server lists leaves rotation
// (its mail spills to the other source) with the zone, the answer and the
// reason in the report; a failed lookup changes nothing; once a check
// finds it clear it is back.
func TestBlocklistWatch(t *testing.T) {
	listing := dnstest.Start(t)
	clear := dnstest.Start(t)
	name := "2.0.0.127.bl.test"
	listing.SetIPs(name, "127.0.0.2")
	listing.SetTXT(name, "Listed for testing: see https://bl.test/lookup?ip=127.0.0.2")
	listing.SetIPs("3.0.0.127.bl.test", "198.51.100.1") // not a 127/8 answer: not a listing
	res := &tenant.DNSResolver{Server: listing.Addr, Timeout: 5 * time.Second}
	e := newEnv(t, func(o *Options) {
		o.Resolver = res
		o.DNSBLZones = []string{"bl.test.", "clean.test"}
	})
	ctx := context.Background()
	e.svc.CheckBlocklists(ctx)

	got, refused := e.picks("standard", siteMX, 10)
	if refused != 0 || got[ipStd2] != 10 {
		t.Fatalf("picks with %v listed: %v, %d refused", ipStd1, got, refused)
	}
	r, _ := e.svc.Report("")
	var l *Listing
	for _, s := range r.Sources {
		for _, sl := range s.Listings {
			if s.IP == ipStd1 && sl.Listed {
				l = &sl
			}
			if s.IP != ipStd1 && sl.Listed {
				t.Errorf("%v listed on %s", s.IP, sl.Zone)
			}
		}
	}
	if l == nil || l.Zone != "bl.test" || l.Answer != "127.0.0.2" || !strings.Contains(l.Reason, "Listed for testing") || !l.Since.Equal(t0) {
		t.Fatalf("listing in the report: %+v", l)
	}
	if v := metricValue(t, e.svc.m.listed.WithLabelValues("127.0.0.2", "bl.test")); v != 1 {
		t.Errorf("listed gauge %v", v)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "listed on bl.test") || !strings.Contains(text.String(), "OUT OF ROTATION") {
		t.Errorf("text report:\n%s (%v)", text.String(), err)
	}

	// a failing lookup keeps the listing
	e.clk.Advance(15 * time.Minute)
	listing.SetFail(name, true)
	e.svc.CheckBlocklists(ctx)
	if got, _ := e.picks("standard", siteMX, 4); got[ipStd1] != 0 {
		t.Fatalf("a failed lookup put the listed source back: %v", got)
	}
	// listed across a restart
	e.restart()
	if got, _ := e.picks("standard", siteMX, 4); got[ipStd1] != 0 {
		t.Fatalf("listing lost in a restart: %v", got)
	}

	// delisted: the blocklist now answers NXDOMAIN
	e.clk.Advance(15 * time.Minute)
	res.Server = clear.Addr
	e.svc.CheckBlocklists(ctx)
	if got, _ := e.picks("standard", siteMX, 10); got[ipStd1] != 5 || got[ipStd2] != 5 {
		t.Fatalf("after delisting: %v, want back in rotation", got)
	}
	if v := metricValue(t, e.svc.m.listed.WithLabelValues("127.0.0.2", "bl.test")); v != 0 {
		t.Errorf("listed gauge after delisting %v", v)
	}
	if !strings.Contains(e.logs.String(), "source address delisted") {
		t.Error("no delisting event in the log")
	}
}

// TestAllSourcesListed: when every source of a pool is listed, mail still
// leaves (from a listed source) rather than waiting for a delisting.
func TestAllSourcesListed(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetIPs("9.0.0.127.bl.test", "127.0.0.4")
	e := newEnv(t, func(o *Options) {
		o.Resolver = tenant.NewDNSResolver(dns.Addr)
		o.DNSBLZones = []string{"bl.test"}
	})
	e.svc.CheckBlocklists(context.Background())
	if src, ok := e.svc.PickSource("quarantine", siteMX, netip.Addr{}); !ok || src.IP != ipQuar {
		t.Fatalf("all-listed pool: %v %v", src, ok)
	}
}

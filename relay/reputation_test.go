package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"fairway/fairq"
	"fairway/reputation"
	"fairway/tenant"
)

// TestDeliveryReputationMovesABlockedTenantToTheQuarantinePool is DESIGN's
// failure 1 end to end: tenant A's mail is refused as "blocked" by the
// receiver; reputation demotes A to the quarantine tier, the queue moves A to
// the quarantine pool, and A's next message leaves from the quarantine
// source address while tenant B keeps sending from the standard one.
func TestDeliveryReputationMovesABlockedTenantToTheQuarantinePool(t *testing.T) {
	s := startSink(t, sinkOptions{})
	const blocked = 30
	for i := range blocked {
		s.rejectRcpt(fmt.Sprintf("victim%d@dest.test", i), 550, smtp.EnhancedCode{5, 7, 1}, "blocked: spam campaign")
	}
	standardIP, quarantineIP := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	pools := map[string][]Source{"standard": {{IP: standardIP, EHLO: "out2.relay.test"}},
		"quarantine": {{IP: quarantineIP, EHLO: "out3.relay.test"}}}

	clk := newTestClock()
	dir, err := tenant.Open(t.TempDir(), tenant.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	for _, name := range []string{"a", "b"} {
		if err := dir.AddTenant(name, tenant.Policy{}); err != nil {
			t.Fatal(err)
		}
	}
	repPools := map[string][]reputation.Source{}
	for name, srcs := range pools {
		for _, src := range srcs {
			repPools[name] = append(repPools[name], reputation.Source{IP: src.IP, EHLO: src.EHLO})
		}
	}
	var qmu sync.Mutex
	var queue *fairq.Queue // set below; OnChange runs from Tick, after that
	var changes []reputation.Change
	rep, err := reputation.Open(t.TempDir(), reputation.Options{Clock: clk, Directory: dir, Pools: repPools,
		TierPools: map[reputation.Tier]string{reputation.Trusted: "standard", reputation.Standard: "standard",
			reputation.Probation: "standard", reputation.Quarantine: "quarantine", reputation.Suspended: "quarantine"},
		Rand: func() float64 { return 0.5 }, Logger: slog.New(slog.DiscardHandler),
		OnChange: func(c reputation.Change) {
			qmu.Lock()
			defer qmu.Unlock()
			changes = append(changes, c)
			queue.SetTenant(c.Tenant, fairq.TenantConfig{Weight: 1, Pool: c.Pool})
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })

	e := newDlvEnv(t, func(o *DeliveryOptions) {
		o.Routes = []Route{{Domain: "*", To: s.addr}}
		o.Pools, o.DefaultPool, o.Reputation = pools, "standard", rep
	})
	qmu.Lock()
	queue = e.q
	qmu.Unlock()
	for _, name := range []string{"a", "b"} {
		e.q.SetTenant(name, fairq.TenantConfig{Weight: 1, Pool: rep.TenantPool(name)})
	}

	// A's campaign is refused; B's mail goes through.
	for i := range blocked {
		e.send("a", "news@a.test", fmt.Sprintf("victim%d@dest.test", i))
		e.send("b", "orders@b.test", fmt.Sprintf("customer%d@dest.test", i))
	}
	e.waitIdle()
	for _, m := range s.messages() {
		if m.Remote != standardIP {
			t.Fatalf("before any tier change, mail from %q left from %s", m.From, m.Remote)
		}
	}
	rep.Tick(context.Background())
	if got := rep.Tier("a"); got != reputation.Quarantine {
		t.Fatalf("tenant a is %v after %d blocked messages, want quarantine", got, blocked)
	}
	if got := rep.Tier("b"); got != reputation.Standard {
		t.Fatalf("tenant b is %v, want standard", got)
	}
	qmu.Lock()
	if len(changes) != 1 || changes[0].Tenant != "a" || changes[0].Pool != "quarantine" {
		t.Errorf("changes %+v, want a's move to the quarantine pool", changes)
	}
	qmu.Unlock()

	before := len(s.messages())
	e.send("a", "news@a.test", "reader@dest.test")
	e.send("b", "orders@b.test", "buyer@dest.test")
	msgs := waitMessages(t, s, before+2)
	e.waitIdle()
	from := map[string]netip.Addr{}
	for _, m := range msgs[before:] {
		from[m.From] = m.Remote
	}
	if from["news@a.test"] != quarantineIP {
		t.Errorf("demoted tenant a's mail left from %v, want the quarantine source %s", from["news@a.test"], quarantineIP)
	}
	if from["orders@b.test"] != standardIP {
		t.Errorf("tenant b's mail left from %v, want the standard source %s", from["orders@b.test"], standardIP)
	}
}

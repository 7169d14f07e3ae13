package reputation

import (
	"encoding/json"
	"strings"
	"testing"

	"fairway/tenant"
)

// TestReportShapes: the text and JSON forms `reputation show` prints.
func TestReportShapes(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Pools["warm"] = []Source{{IP: ipWarm, EHLO: "new.test", Warmup: Warmup{Start: t0}}}
	})
	e.send("alpha", ipStd1, siteMX, Delivered, 90)
	e.send("alpha", ipStd1, siteMX, HardBounce, 10)
	e.svc.Record(Event{Tenant: "alpha", Source: ipStd1, Site: siteMX, Outcome: Deferral, Code: 421, Enhanced: "4.7.0", Line: "rate limited"})
	e.tick()
	r, err := e.svc.Report("")
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"tenant alpha", "tier probation", "pool probation",
		"standard -> probation: 1h hard bounce rate 10.00% (10 of 100 sent) over the probation limit 5.00%",
		"127.0.0.2", "mx.sink.test throttled", "rate 5.05/min: rate limited",
		"127.0.0.5", "warming up: day 1, 50 per site today",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}

	var hour string
	for _, l := range strings.Split(text.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "1h" {
			hour = strings.Join(f, " ")
		}
	}
	if want := "1h 100 90 10 (10.00%) 0 (0.00%) 1 (0.99%) 0 (0.00%)"; hour != want {
		t.Errorf("hour line %q, want %q", hour, want)
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Tenants []struct {
			Tenant  string `json:"tenant"`
			Tier    string `json:"tier"`
			Pool    string `json:"pool"`
			Windows []struct {
				Window         string  `json:"window"`
				Sent           int     `json:"sent"`
				HardBounce     int     `json:"hard_bounce"`
				HardBounceRate float64 `json:"hard_bounce_rate"`
			} `json:"windows"`
			Changes []struct {
				From, To, Reason string
			} `json:"changes"`
		} `json:"tenants"`
		Sources []struct {
			IP string `json:"ip"`
		} `json:"sources"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	a := back.Tenants[0]
	if a.Tenant != "alpha" || a.Tier != "probation" || a.Pool != "probation" || a.Windows[1].Window != "24h" || a.Windows[1].HardBounce != 10 ||
		a.Windows[1].HardBounceRate != 0.1 || len(a.Changes) != 1 || a.Changes[0].To != "probation" || len(back.Sources) != 5 {
		t.Errorf("JSON report: %s", b)
	}

	// a tenant the directory knows but the scores do not: standard, no figures
	if err := e.dir.AddTenant("gamma", tenant.Policy{Pool: "dedicated"}); err != nil {
		t.Fatal(err)
	}
	r, err = e.svc.Report("gamma")
	if err != nil || r.Tenants[0].Tier != Standard || r.Tenants[0].Pool != "dedicated" || !r.Tenants[0].FixedPool {
		t.Errorf("report of a new tenant: %+v %v", r, err)
	}
}

package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"fairway/inbound/dmarcreport"
	"fairway/inbound/dmarcreport/dmarctest"
	"fairway/tenant"
)

// fixedClock is the report store's clock in these tests.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var dmarcNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// dmarcFixture is the API fixture with a report store over its directory,
// acme hosting example.com, and one Google report ingested.
func dmarcFixture(t *testing.T) (*fixture, *dmarcreport.Store) {
	t.Helper()
	f := newFixture(t)
	if err := f.dir.AddTenant("acme", tenant.Policy{Weight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.AddDomain("example.com", "acme"); err != nil {
		t.Fatal(err)
	}
	store, err := dmarcreport.Open(t.TempDir(), dmarcreport.Options{Directory: f.dir, Clock: fixedClock{dmarcNow},
		KnownSources: func(string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.api.HandleDMARC(store)
	begin := time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)
	rep := dmarctest.Report{Domain: "example.com", ID: "r1", Begin: begin, End: begin.Add(24*time.Hour - time.Second),
		Rows: []dmarctest.Row{dmarctest.Pass("192.0.2.1", 9, "example.com"), dmarctest.Spoof("203.0.113.7", 3, "example.com")}}
	if err := store.Ingest(context.Background(), rep.GzipMessage("dmarc-reports@mx.example.net")); err != nil {
		t.Fatal(err)
	}
	return f, store
}

func TestDMARCSummaryRoute(t *testing.T) {
	f, _ := dmarcFixture(t)
	for _, path := range []string{"/v1/dmarc/example.com/summary", "/v1/dmarc/Example.COM/summary?since=2d", "/v1/dmarc/example.com/summary?since=2026-11-18T00:00:00Z"} {
		resp := do(t, f.api.SocketHandler(), http.MethodGet, path, nil)
		if resp.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.status, resp.body)
		}
		var sum dmarcreport.Summary
		if err := json.Unmarshal(resp.body, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Tenant != "acme" || sum.Totals.Messages != 12 || len(sum.Signals.UnknownSources) != 1 ||
			sum.Signals.UnknownSources[0].IP != netip.MustParseAddr("203.0.113.7") {
			t.Errorf("%s: %s", path, resp.body)
		}
	}
	// A window after the report holds nothing.
	resp := do(t, f.api.SocketHandler(), http.MethodGet, "/v1/dmarc/example.com/summary?since=1h", nil)
	if resp.status != http.StatusOK || !strings.Contains(string(resp.body), `"reports":0`) {
		t.Errorf("since=1h: %d %s", resp.status, resp.body)
	}
}

func TestDMARCSummaryRouteErrors(t *testing.T) {
	f, _ := dmarcFixture(t)
	for _, tc := range []struct {
		path   string
		status int
		code   string
		says   string
	}{
		{"/v1/dmarc/elsewhere.example/summary", 404, CodeNotFound, "not hosted"},
		{"/v1/dmarc/example.com/summary?since=soon", 400, CodeInvalid, "since"},
		{"/v1/dmarc/example.com/summary?since=2030-01-01T00:00:00Z", 400, CodeInvalid, "future"},
		{"/v1/dmarc/rejected?limit=0", 400, CodeInvalid, "limit"},
	} {
		resp := do(t, f.api.SocketHandler(), http.MethodGet, tc.path, nil)
		e := resp.error(t)
		if resp.status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.says) {
			t.Errorf("%s: %d %+v, want %d %s saying %q", tc.path, resp.status, e, tc.status, tc.code, tc.says)
		}
	}
	// Over TCP the routes need a token like every other.
	if resp := do(t, f.api.TCPHandler(), http.MethodGet, "/v1/dmarc/example.com/summary", nil); resp.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d", resp.status)
	}
}

func TestDMARCRejectedRoute(t *testing.T) {
	f, store := dmarcFixture(t)
	other := dmarctest.Report{Domain: "elsewhere.example", ID: "x", Begin: dmarcNow.Add(-48 * time.Hour), End: dmarcNow.Add(-24 * time.Hour)}
	if err := store.Ingest(context.Background(), other.GzipMessage("dmarc-reports@mx.example.net")); err != nil {
		t.Fatal(err)
	}
	resp := do(t, f.api.SocketHandler(), http.MethodGet, "/v1/dmarc/rejected?limit=5", nil)
	var rs []dmarcreport.RejectedReport
	if err := json.Unmarshal(resp.body, &rs); err != nil || resp.status != 200 {
		t.Fatalf("%d %s: %v", resp.status, resp.body, err)
	}
	if len(rs) != 1 || rs[0].Domain != "elsewhere.example" || !strings.Contains(rs[0].Reason, "not hosted") {
		t.Errorf("rejected %+v", rs)
	}
}

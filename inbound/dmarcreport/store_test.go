package dmarcreport

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"fairway/inbound/dmarcreport/dmarctest"
	"fairway/tenant"
)

type storeFixture struct {
	s     *Store
	clock *testClock
	dir   string
	log   *bytes.Buffer
}

func newStore(t *testing.T, lim Limits) *storeFixture {
	t.Helper()
	f := &storeFixture{clock: &testClock{now: day0}, dir: t.TempDir(), log: &bytes.Buffer{}}
	s, err := Open(f.dir, Options{
		Directory: testDir{"example.com": "acme", "shop.example": "bob"},
		Clock:     f.clock,
		Logger:    slog.New(slog.NewTextHandler(f.log, nil)),
		KnownSources: func(domain string) []netip.Prefix {
			return []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28")}
		},
		Limits: lim,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	t.Cleanup(func() { s.Close() })
	return f
}

func (f *storeFixture) ingest(t *testing.T, msg []byte) {
	t.Helper()
	if err := f.s.Ingest(context.Background(), msg); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
}

func (f *storeFixture) rejected(t *testing.T) []RejectedReport {
	t.Helper()
	rs, err := f.s.Rejected(100)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestIngestStoresAndDeduplicates(t *testing.T) {
	f := newStore(t, Limits{})
	b1, e1 := dayRange(1)
	g := report{by: google, domain: "example.com", id: "1234567890", begin: b1, end: e1,
		rows: []row{passRow("192.0.2.1", 10, "example.com"), spoofRow("203.0.113.9", 4, "example.com")}}
	m := report{by: microsoft, domain: "example.com", id: "1234567890", begin: b1, end: e1, // same id, another reporter
		rows: []row{passRow("192.0.2.1", 5, "example.com")}}
	f.ingest(t, g.message(t))
	f.ingest(t, g.message(t)) // the reporter sent it twice
	f.ingest(t, m.message(t))

	sum, err := f.s.Summary("EXAMPLE.com", day0.Add(-7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reports != 2 || sum.Totals.Messages != 19 || sum.Tenant != "acme" || sum.Domain != "example.com" {
		t.Fatalf("summary: %d reports, %d messages, tenant %q", sum.Reports, sum.Totals.Messages, sum.Tenant)
	}
	if strings.Join(sum.Reporters, ",") != "Enterprise Outlook,google.com" {
		t.Errorf("reporters %q", sum.Reporters)
	}
	if rs := f.rejected(t); len(rs) != 0 {
		t.Errorf("rejected: %+v", rs)
	}
	if !strings.Contains(f.log.String(), "duplicate ignored") || !strings.Contains(f.log.String(), "tenant=acme") {
		t.Errorf("log lacks the duplicate or the tenant:\n%s", f.log)
	}

	// Reopened, the reports and the dedup index are still there.
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(f.dir, Options{Directory: testDir{"example.com": "acme"}, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Ingest(context.Background(), g.message(t)); err != nil {
		t.Fatal(err)
	}
	sum, err = s2.Summary("example.com", day0.Add(-7*24*time.Hour))
	if err != nil || sum.Reports != 2 {
		t.Fatalf("after reopen: %d reports, %v", sum.Reports, err)
	}
}

func TestIngestRejects(t *testing.T) {
	f := newStore(t, Limits{MaxMessageBytes: 64 << 10, Extract: ExtractLimits{MaxFileBytes: 1 << 20}})
	b1, e1 := dayRange(1)
	good := report{by: google, domain: "example.com", id: "ok", begin: b1, end: e1, rows: []row{passRow("192.0.2.1", 1, "example.com")}}
	bad := []struct {
		msg  []byte
		want string
	}{
		{report{by: google, domain: "elsewhere.example", id: "x", begin: b1, end: e1}.message(t), "report for elsewhere.example, which is not hosted here"},
		{mimeMessage("a@b.example", "r", attachment{ct: "application/gzip", name: "r.xml.gz", data: gzipBytes(t, []byte("<feedback><oops></feedback>"))}), "r.xml: XML"},
		{mimeMessage("a@b.example", "r", attachment{ct: "application/gzip", name: "bomb.xml.gz", data: gzipBytes(t, bytes.Repeat([]byte(" "), 4<<20))}), "more than 1048576 bytes"},
		{append(good.message(t), bytes.Repeat([]byte("x"), 64<<10)...), "over the 65536-byte limit"},
		{mimeMessage("a@b.example", "hello", attachment{ct: "text/plain", data: []byte("hi")}), "no DMARC report"},
		{report{by: google, domain: "example.com", id: "old", begin: b1.AddDate(-2, 0, 0), end: e1.AddDate(-2, 0, 0)}.message(t), "older than"},
		{report{by: google, domain: "example.com", id: "future", begin: b1.AddDate(0, 0, 5), end: e1.AddDate(0, 0, 5)}.message(t), "in the future"},
	}
	for i, b := range bad {
		f.clock.Set(day0.Add(time.Duration(i) * time.Second))
		f.ingest(t, b.msg)
	}
	f.ingest(t, good.message(t))
	rs := f.rejected(t)
	if len(rs) != len(bad) {
		t.Fatalf("%d rejected, want %d: %+v", len(rs), len(bad), rs)
	}
	for i, b := range bad {
		r := rs[len(bad)-1-i] // newest first
		if !strings.Contains(r.Reason, b.want) {
			t.Errorf("rejected %d: reason %q, want %q", i, r.Reason, b.want)
		}
		if r.Size != len(b.msg) || r.ID == "" || r.Received.IsZero() {
			t.Errorf("rejected %d: %+v", i, r)
		}
	}
	if rs[len(bad)-1].Domain != "elsewhere.example" || rs[len(bad)-1].ReportID != "x" {
		t.Errorf("unknown-domain rejection does not name the report: %+v", rs[len(bad)-1])
	}
	if rs, _ := f.s.Rejected(2); len(rs) != 2 {
		t.Errorf("Rejected(2) gave %d", len(rs))
	}
	sum, err := f.s.Summary("example.com", day0.Add(-48*time.Hour))
	if err != nil || sum.Reports != 1 {
		t.Fatalf("the good report after the bad ones: %d reports, %v", sum.Reports, err)
	}
}

// TestIngestPartlyBad: one message with a good and a bad report stores the
// good one and keeps the message aside for the bad one.
func TestIngestPartlyBad(t *testing.T) {
	f := newStore(t, Limits{})
	b1, e1 := dayRange(1)
	good := report{by: yahoo, domain: "shop.example", id: "y1", begin: b1, end: e1, rows: []row{passRow("192.0.2.3", 7, "shop.example")}}
	msg := mimeMessage("a@b.example", "r", attachment{ct: "application/zip", name: "r.zip",
		data: zipFiles(t, map[string][]byte{"good.xml": good.xml(), "bad.xml": []byte("<feedback>")})})
	f.ingest(t, msg)
	sum, err := f.s.Summary("shop.example", day0.Add(-48*time.Hour))
	if err != nil || sum.Totals.Messages != 7 || sum.Tenant != "bob" {
		t.Fatalf("summary %+v, %v", sum.Totals, err)
	}
	rs := f.rejected(t)
	if len(rs) != 1 || !strings.Contains(rs[0].Reason, "bad.xml") {
		t.Fatalf("rejected %+v", rs)
	}
}

func TestRejectedBounded(t *testing.T) {
	f := newStore(t, Limits{MaxRejected: 3})
	for i := range 5 {
		f.clock.Set(day0.Add(time.Duration(i) * time.Minute))
		f.ingest(t, mimeMessage("a@b.example", "junk "+itoa(int64(i)), attachment{ct: "text/plain", data: []byte("hi")}))
	}
	rs := f.rejected(t)
	if len(rs) != 3 {
		t.Fatalf("%d kept, want 3", len(rs))
	}
	for i, want := range []string{"junk 4", "junk 3", "junk 2"} {
		if rs[i].Subject != want {
			t.Errorf("rejected %d: %q, want %q", i, rs[i].Subject, want)
		}
	}
}

func TestRetentionPrunes(t *testing.T) {
	f := newStore(t, Limits{Retention: 30 * 24 * time.Hour})
	b, e := dayRange(20)
	old := report{by: google, domain: "example.com", id: "old", begin: b, end: e, rows: []row{passRow("192.0.2.1", 1, "example.com")}}
	f.ingest(t, old.message(t))
	f.clock.Set(day0.Add(15 * 24 * time.Hour)) // old is now 35 days back
	b, e = dayRange(-14)
	f.ingest(t, report{by: google, domain: "example.com", id: "new", begin: b, end: e, rows: []row{passRow("192.0.2.1", 2, "example.com")}}.message(t))
	sum, err := f.s.Summary("example.com", time.Time{})
	if err != nil || sum.Reports != 1 || sum.Totals.Messages != 2 {
		t.Fatalf("after pruning: %d reports %d messages, %v", sum.Reports, sum.Totals.Messages, err)
	}
	if !sum.Since.Equal(f.clock.Now().Add(-30 * 24 * time.Hour)) {
		t.Errorf("since %s not clamped to the retention", sum.Since)
	}
	// Back at day0, where it would be in the window, it is gone.
	f.clock.Set(day0)
	if sum, _ := f.s.Summary("example.com", day0.Add(-29*24*time.Hour)); sum.Reports != 0 {
		t.Fatalf("the old report survived pruning: %d reports", sum.Reports)
	}
	// Its dedup key went with it: the same report, were it fresh, is stored anew.
	f.ingest(t, old.message(t))
	if sum, _ := f.s.Summary("example.com", day0.Add(-29*24*time.Hour)); sum.Reports != 1 || sum.Totals.Messages != 1 {
		t.Fatalf("old report after its dedup key was pruned: %d reports %d messages", sum.Reports, sum.Totals.Messages)
	}
}

func TestSummaryErrors(t *testing.T) {
	f := newStore(t, Limits{})
	if _, err := f.s.Summary("elsewhere.example", day0); !errors.Is(err, ErrNotHosted) || !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("unhosted domain: %v", err)
	}
	if _, err := f.s.Summary("not a domain", day0); !errors.Is(err, tenant.ErrInvalid) {
		t.Errorf("bad domain: %v", err)
	}
	if _, err := f.s.Summary("example.com", day0.Add(time.Hour)); !errors.Is(err, tenant.ErrInvalid) {
		t.Errorf("since in the future: %v", err)
	}
	sum, err := f.s.Summary("example.com", day0.Add(-time.Hour))
	if err != nil || sum.Reports != 0 || sum.Days == nil || sum.Sources == nil || sum.Signals.UnknownSources == nil {
		t.Errorf("empty summary %+v, %v (lists must be [] in JSON, not null)", sum, err)
	}
}

// TestIngestAfterClose: a storage failure is the one error Ingest returns.
func TestIngestAfterClose(t *testing.T) {
	f := newStore(t, Limits{})
	f.s.Close()
	b1, e1 := dayRange(1)
	err := f.s.Ingest(context.Background(), report{by: google, domain: "example.com", id: "1", begin: b1, end: e1}.message(t))
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Ingest after Close: %v", err)
	}
	if err := f.s.Ingest(context.Background(), []byte("junk")); !errors.Is(err, ErrClosed) {
		t.Fatalf("rejecting after Close: %v", err)
	}
	if _, err := f.s.Rejected(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Rejected after Close: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.s.Ingest(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ingest with a done context: %v", err)
	}
}

func TestParseSince(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"7d", day0.Add(-7 * 24 * time.Hour)},
		{"30d", day0.Add(-30 * 24 * time.Hour)},
		{"24h", day0.Add(-24 * time.Hour)},
		{"90m", day0.Add(-90 * time.Minute)},
		{"2026-11-01T00:00:00Z", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := ParseSince(tc.in, day0)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "d", "0d", "-1d", "7w", "soon", "-5h", "0s", "999999999d"} {
		if _, err := ParseSince(bad, day0); !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("ParseSince(%q): %v, want invalid", bad, err)
		}
	}
}

// TestIngestDMARCTestMessage: the builder other packages' tests use makes
// reports Ingest takes.
func TestIngestDMARCTestMessage(t *testing.T) {
	f := newStore(t, Limits{})
	b, e := dayRange(1)
	r := dmarctest.Report{Domain: "example.com", ID: "dt-1", Begin: b, End: e,
		Rows: []dmarctest.Row{dmarctest.Pass("192.0.2.1", 4, "example.com"), dmarctest.Spoof("203.0.113.1", 2, "example.com")}}
	f.ingest(t, r.GzipMessage("dmarc-reports@mx.example.net"))
	sum, err := f.s.Summary("example.com", day0.Add(-7*24*time.Hour))
	if err != nil || sum.Totals.Messages != 6 || len(sum.Signals.UnknownSources) != 1 || len(f.rejected(t)) != 0 {
		t.Fatalf("summary %+v, %v; rejected %+v", sum.Totals, err, f.rejected(t))
	}
}

type panickyDir struct{}

func (panickyDir) DomainTenant(string) (string, bool) { panic("directory bug") }

// TestIngestRecoversPanics: a bug below Ingest keeps the message aside
// instead of taking the MX down.
func TestIngestRecoversPanics(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Directory: panickyDir{}, Clock: &testClock{now: day0}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, e := dayRange(1)
	if err := s.Ingest(context.Background(), report{by: google, domain: "example.com", id: "p", begin: b, end: e}.message(t)); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Rejected(10)
	if err != nil || len(rs) != 1 || !strings.Contains(rs[0].Reason, "internal error reading the report: directory bug") {
		t.Fatalf("rejected %+v, %v", rs, err)
	}
}

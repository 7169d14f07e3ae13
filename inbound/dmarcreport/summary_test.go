package dmarcreport

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func parsed(t *testing.T, r report) *Report {
	t.Helper()
	rep, err := ParseReport(r.xml(), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	return &rep
}

// signalReports is a week of one domain's reports with every signal in it:
//
//	192.0.2.1     known; mostly passing, 5 failing (SPF pass for the ESP's bounce domain, DKIM fail)
//	192.0.2.2     known; passing; first seen this week
//	192.0.2.5     known; only failing (no DKIM, SPF fail)
//	198.51.100.7  a third-party sender: passing through DKIM, 10 failing unaligned
//	203.0.113.9   a forger: only failing; first seen this week
func signalReports(t *testing.T, withBaseline bool) []*Report {
	const d = "example.com"
	b1, e1 := dayRange(1)
	b2, e2 := dayRange(2)
	b10, e10 := dayRange(10)
	knownFailing := row{ip: "192.0.2.1", count: 5, disposition: "none", dkimEval: "fail", spfEval: "fail", headerFrom: d,
		envelopeFrom: "bounce.esp.example", spfDomain: "bounce.esp.example", spfRes: "pass", dkimDomain: d, dkimRes: "fail", selector: "fw1"}
	esp := passRow("198.51.100.7", 50, d)
	esp.spfEval, esp.spfDomain, esp.envelopeFrom = "fail", "esp.example", "esp.example"
	espFailing := row{ip: "198.51.100.7", count: 10, disposition: "none", dkimEval: "fail", spfEval: "fail", headerFrom: d,
		envelopeFrom: "esp.example", spfDomain: "esp.example", spfRes: "pass", dkimDomain: "esp.example", dkimRes: "pass", selector: "s1"}
	spoof := spoofRow("203.0.113.9", 20, d)
	spoof.disposition = "quarantine"
	onlyFailing := row{ip: "192.0.2.5", count: 3, disposition: "none", dkimEval: "fail", spfEval: "fail", headerFrom: d, spfDomain: d, spfRes: "fail"}
	reps := []*Report{
		parsed(t, report{by: google, domain: d, id: "g-1", begin: b1, end: e1, rows: []row{
			passRow("192.0.2.1", 100, d), knownFailing, esp, espFailing, spoof, passRow("192.0.2.2", 8, d), onlyFailing}}),
		parsed(t, report{by: microsoft, domain: d, id: "m-2", begin: b2, end: e2, rows: []row{passRow("192.0.2.1", 30, d)}}),
	}
	if withBaseline {
		reps = append(reps, parsed(t, report{by: yahoo, domain: d, id: "y-10", begin: b10, end: e10, rows: []row{
			passRow("192.0.2.1", 10, d), passRow("198.51.100.7", 5, d), spoofRow("192.0.2.5", 1, d)}}))
	}
	return reps
}

func summarize(t *testing.T, reps []*Report) Summary {
	t.Helper()
	return Summarize(reps, SummaryParams{Domain: "example.com", Tenant: "acme", Since: day0.Add(-7 * 24 * time.Hour), Now: day0,
		Known: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28")}})
}

func TestSummarizeRollUps(t *testing.T) {
	sum := summarize(t, signalReports(t, true))
	if sum.Reports != 2 {
		t.Errorf("%d reports in the window, want 2 (the one 10 days back is outside)", sum.Reports)
	}
	tot := sum.Totals
	if tot.Messages != 226 || tot.DMARCPass != 188 || tot.DKIMPass != 188 || tot.SPFPass != 138 {
		t.Errorf("totals %+v", tot)
	}
	if tot.Disposition != (Dispositions{None: 206, Quarantine: 20}) {
		t.Errorf("dispositions %+v", tot.Disposition)
	}
	if got := tot.DMARCPassRate; got < 0.8318 || got > 0.8319 {
		t.Errorf("DMARC pass rate %v, want 188/226", got)
	}
	if len(sum.Days) != 2 || sum.Days[0].Day != "2026-11-18" || sum.Days[0].Messages != 30 || sum.Days[1].Day != "2026-11-19" || sum.Days[1].Messages != 196 {
		t.Errorf("days %+v", sum.Days)
	}
	if sum.Days[0].DMARCPassRate != 1 {
		t.Errorf("day 1 rate %v", sum.Days[0].DMARCPassRate)
	}
	var order []string
	for _, s := range sum.Sources {
		order = append(order, s.IP.String())
	}
	if strings.Join(order, " ") != "192.0.2.1 198.51.100.7 203.0.113.9 192.0.2.2 192.0.2.5" {
		t.Errorf("sources by volume: %s", order)
	}
	top := sum.Sources[0]
	if !top.Known || top.Messages != 135 || top.DMARCPass != 130 || strings.Join(top.Reporters, ",") != "Enterprise Outlook,google.com" {
		t.Errorf("top source %+v", top)
	}
	if sum.Sources[1].Known {
		t.Errorf("the ESP is not a known source")
	}

	capped := Summarize(signalReports(t, true), SummaryParams{Domain: "example.com", Since: day0.Add(-7 * 24 * time.Hour), Now: day0, MaxSources: 2})
	if len(capped.Sources) != 2 || capped.SourcesOmitted != 3 {
		t.Errorf("capped: %d sources, %d omitted", len(capped.Sources), capped.SourcesOmitted)
	}
}

func TestSummarizeUnknownSources(t *testing.T) {
	sum := summarize(t, signalReports(t, true))
	us := sum.Signals.UnknownSources
	if len(us) != 1 {
		t.Fatalf("unknown sources %+v, want the forger only", us)
	}
	u := us[0]
	if u.IP != netip.MustParseAddr("203.0.113.9") || u.Messages != 20 || u.Disposition.Quarantine != 20 ||
		strings.Join(u.HeaderFrom, ",") != "example.com" || strings.Join(u.Reporters, ",") != "google.com" {
		t.Errorf("unknown source %+v", u)
	}
	// The same forger, passing once (say DKIM replay): no longer "unknown";
	// it has aligned passes, so it is a sender failing alignment.
	reps := signalReports(t, true)
	b, e := dayRange(3)
	reps = append(reps, parsed(t, report{by: google, domain: "example.com", id: "g-3", begin: b, end: e, rows: []row{passRow("203.0.113.9", 1, "example.com")}}))
	sum = summarize(t, reps)
	if len(sum.Signals.UnknownSources) != 0 {
		t.Errorf("a source with an aligned pass is listed unknown: %+v", sum.Signals.UnknownSources)
	}
	if !slices.ContainsFunc(sum.Signals.FailingKnownSources, func(f FailingSource) bool { return f.IP.String() == "203.0.113.9" && !f.Known }) {
		t.Errorf("the passing-once source is not among the failing senders: %+v", sum.Signals.FailingKnownSources)
	}
}

func TestSummarizeFailingKnownSources(t *testing.T) {
	sum := summarize(t, signalReports(t, true))
	got := map[string]FailingSource{}
	for _, f := range sum.Signals.FailingKnownSources {
		got[f.IP.String()] = f
	}
	if len(got) != 3 {
		t.Fatalf("failing known sources %+v, want 192.0.2.1, 192.0.2.5, 198.51.100.7", sum.Signals.FailingKnownSources)
	}
	texts := func(f FailingSource) string {
		var out []string
		for _, c := range f.Causes {
			out = append(out, c.Text)
		}
		return strings.Join(out, " | ")
	}
	for ip, want := range map[string]struct {
		known            bool
		failing, passing int64
		causes           string
	}{
		"192.0.2.1":    {true, 5, 130, "DKIM fail for d=example.com (s=fw1) | SPF pass for bounce.esp.example, not aligned with example.com"},
		"192.0.2.5":    {true, 3, 0, "SPF fail for example.com | no DKIM signature"},
		"198.51.100.7": {false, 10, 50, "DKIM pass for d=esp.example (s=s1), not aligned with example.com | SPF pass for esp.example, not aligned with example.com"},
	} {
		f := got[ip]
		if f.Known != want.known || f.Failing != want.failing || f.Passing != want.passing || texts(f) != want.causes {
			t.Errorf("%s: known %t failing %d passing %d causes %q; want %+v", ip, f.Known, f.Failing, f.Passing, texts(f), want)
		}
		for _, c := range f.Causes {
			if c.Messages != want.failing {
				t.Errorf("%s: cause %q counts %d messages, want %d", ip, c.Text, c.Messages, want.failing)
			}
		}
	}
	c := got["198.51.100.7"].Causes[0]
	if c.Mechanism != "dkim" || c.Problem != "unaligned" || c.Domain != "esp.example" || c.Selector != "s1" || c.Result != "pass" {
		t.Errorf("structured cause %+v", c)
	}
}

func TestSummarizeNewSources(t *testing.T) {
	sum := summarize(t, signalReports(t, true))
	if !sum.Signals.NewSourcesBaseline {
		t.Fatal("no baseline although a report began 10 days back")
	}
	var ips []string
	for _, n := range sum.Signals.NewSources {
		ips = append(ips, n.IP.String())
	}
	// 192.0.2.1, 198.51.100.7 and 192.0.2.5 sent in the week before.
	if strings.Join(ips, " ") != "203.0.113.9 192.0.2.2" {
		t.Errorf("new sources %s", ips)
	}
	n := sum.Signals.NewSources[1]
	b1, _ := dayRange(1)
	if !n.Known || n.Messages != 8 || n.DMARCPass != 8 || !n.FirstSeen.Equal(b1) {
		t.Errorf("new source %+v", n)
	}

	sum = summarize(t, signalReports(t, false))
	if sum.Signals.NewSourcesBaseline || len(sum.Signals.NewSources) != 0 {
		t.Errorf("without the week before: baseline %t, new %+v", sum.Signals.NewSourcesBaseline, sum.Signals.NewSources)
	}
}

func TestAligned(t *testing.T) {
	for _, tc := range []struct {
		auth, from string
		strict     bool
		want       bool
	}{
		{"example.com", "example.com", false, true},
		{"example.com", "EXAMPLE.com", true, true},
		{"mail.example.com", "example.com", false, true},
		{"mail.example.com", "example.com", true, false},
		{"example.com", "news.example.com", false, true},
		{"esp.example", "example.com", false, false},
		{"a.example.co.uk", "b.example.co.uk", false, true},
		{"example.co.uk", "other.co.uk", false, false},
		{"co.uk", "example.co.uk", false, false},
		{"", "example.com", false, false},
	} {
		if got := aligned(tc.auth, tc.from, tc.strict); got != tc.want {
			t.Errorf("aligned(%q, %q, strict=%t) = %t", tc.auth, tc.from, tc.strict, got)
		}
	}
}

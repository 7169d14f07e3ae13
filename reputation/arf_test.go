package reputation

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "arf", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseARF(t *testing.T) {
	for _, tc := range []struct {
		file       string
		typ        string
		agent      string
		source     string
		dkim       []string
		from, rp   string
		candidates []string // the first ones
		err        error
	}{
		{file: "yahoo.eml", typ: "abuse", agent: "Yahoo!-Mail-Feedback/2.0", dkim: []string{"alpha.example"}, from: "alpha.example",
			candidates: []string{"alpha.example"}},
		{file: "aol.eml", typ: "abuse", agent: "AOL SComp", source: "127.0.0.3", dkim: []string{"mail.alpha.example"},
			from: "mail.alpha.example", rp: "mail.alpha.example", candidates: []string{"mail.alpha.example", "alpha.example", "example"}[:2]},
		{file: "microsoft_jmrp.eml", typ: "abuse", from: "beta.example", rp: "beta.example", candidates: []string{"beta.example"}},
		{file: "comcast.eml", typ: "abuse", agent: "ReturnPathFBL/2.0", source: "127.0.0.2", dkim: []string{"esp.test", "beta.example"},
			from: "beta.example", candidates: []string{"esp.test", "beta.example"}},
		{file: "not_spam.eml", typ: "not-spam", agent: "MailboxFBL/1.0", from: "alpha.example"},
		{file: "unattributed.eml", typ: "fraud", agent: "SomeFBL/1.0", dkim: []string{"elsewhere.test"}, from: "elsewhere.test"},
		{file: "headers_only_report.eml", typ: "virus", agent: "ISP-FBL/3", candidates: []string{"beta.example"}},
		{file: "nested.eml", typ: "abuse", agent: "Forwarded/1", from: "alpha.example"},
		{file: "plain.eml", err: ErrNotARF},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r, err := ParseARF(readFixture(t, tc.file))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.FeedbackType != tc.typ || r.UserAgent != tc.agent || !slices.Equal(r.DKIMDomains, tc.dkim) || r.FromDomain != tc.from || r.ReturnPathDomain != tc.rp {
				t.Errorf("parsed %+v", r)
			}
			if src := r.SourceIP; (tc.source == "") != !src.IsValid() || src.IsValid() && src != netip.MustParseAddr(tc.source) {
				t.Errorf("source %v, want %q", src, tc.source)
			}
			if c := r.candidates(); len(c) < len(tc.candidates) || !slices.Equal(c[:len(tc.candidates)], tc.candidates) {
				t.Errorf("candidates %v, want %v first", c, tc.candidates)
			}
		})
	}
	if _, err := ParseARF(make([]byte, MaxARFSize+1)); err == nil {
		t.Error("an oversized report parsed")
	}
}

// TestIngestARF: reports are attributed to the tenant of the original
// message and counted in its windows (and its source's, when named).
func TestIngestARF(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		file    string
		tenant  string
		domain  string
		counted bool
		err     error
	}{
		{"yahoo.eml", "alpha", "alpha.example", true, nil},
		{"aol.eml", "alpha", "alpha.example", true, nil}, // by the parent of the signing domain
		{"microsoft_jmrp.eml", "beta", "beta.example", true, nil},
		{"comcast.eml", "beta", "beta.example", true, nil}, // the ESP's signature is skipped
		{"headers_only_report.eml", "beta", "beta.example", true, nil},
		{"not_spam.eml", "alpha", "alpha.example", false, nil},
		{"unattributed.eml", "", "", false, ErrUnattributed},
		{"plain.eml", "", "", false, ErrNotARF},
	} {
		r, err := e.svc.IngestARF(ctx, readFixture(t, tc.file))
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: err %v, want %v", tc.file, err, tc.err)
			continue
		}
		if r.Tenant != tc.tenant || r.Domain != tc.domain || r.Counted != tc.counted {
			t.Errorf("%s: tenant %q domain %q counted %v", tc.file, r.Tenant, r.Domain, r.Counted)
		}
	}
	rep, _ := e.svc.Report("")
	want := map[string]int{"alpha": 2, "beta": 3}
	for _, tr := range rep.Tenants {
		if tr.Windows[0].Complaint != want[tr.Tenant] || tr.Windows[2].Complaint != want[tr.Tenant] {
			t.Errorf("%s: complaints %d (1h) %d (7d), want %d", tr.Tenant, tr.Windows[0].Complaint, tr.Windows[2].Complaint, want[tr.Tenant])
		}
	}
	// the reports naming one of our sources count against it too
	for _, s := range rep.Sources {
		want := map[netip.Addr]int{ipStd1: 1, ipStd2: 1}[s.IP]
		if s.Windows[0].Complaint != want {
			t.Errorf("source %v: %d complaints, want %d", s.IP, s.Windows[0].Complaint, want)
		}
	}
	if !strings.Contains(e.logs.String(), "complaint received") {
		t.Error("no complaint event in the log")
	}
}

// FuzzParseARF: no input panics or hangs the parser; what parses has
// normalised domains.
func FuzzParseARF(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "arf"))
	if err != nil {
		f.Fatal(err)
	}
	for _, de := range entries {
		f.Add(readFixture(f, de.Name()))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := ParseARF(msg)
		if err != nil {
			return
		}
		if r.FeedbackType == "" || r.FeedbackType != strings.ToLower(r.FeedbackType) {
			t.Errorf("feedback type %q", r.FeedbackType)
		}
		for _, d := range append(r.candidates(), r.DKIMDomains...) {
			if d == "" || d != strings.ToLower(d) || strings.ContainsAny(d, " \t\r\n@<>") {
				t.Errorf("domain %q", d)
			}
		}
		if len(r.candidates()) > maxARFCandidates {
			t.Errorf("%d candidates", len(r.candidates()))
		}
	})
}

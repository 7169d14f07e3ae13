package dmarcreport

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the committed seed corpora under testdata/fuzz from the fixtures")

// seedReports are the report documents of the seed corpus.
func seedReports(t testing.TB) map[string][]byte {
	b, e := dayRange(1)
	rows := []row{passRow("192.0.2.1", 3, "example.com"), spoofRow("2001:db8::1", 1, "example.com")}
	return map[string][]byte{
		"google":    report{by: google, domain: "example.com", id: "1", begin: b, end: e, rows: rows}.xml(),
		"microsoft": report{by: microsoft, domain: "example.com", id: "2", begin: b, end: e, rows: rows}.xml(),
		"yahoo":     report{by: yahoo, domain: "example.com", id: "3", begin: b, end: e, rows: rows}.xml(),
		"latin1":    []byte("<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><feedback><report_metadata><org_name>\xe9</org_name><report_id>1</report_id><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>a.example</domain></policy_published></feedback>"),
		"deep":      []byte("<feedback><a><b><c><d></d></c></b></a></feedback>"),
	}
}

// seedMessages are the messages of the seed corpus.
func seedMessages(t testing.TB) map[string][]byte {
	b, e := dayRange(1)
	rows := []row{passRow("192.0.2.1", 3, "example.com")}
	g := report{by: google, domain: "example.com", id: "1", begin: b, end: e, rows: rows}
	return map[string][]byte{
		"google-gzip": g.message(t),
		"yahoo-zip":   report{by: yahoo, domain: "example.com", id: "3", begin: b, end: e, rows: rows}.message(t),
		"single-xml":  singlePart("text/xml", g.xml()),
		"octet":       mimeMessage("a@b.example", "r", attachment{ct: "application/octet-stream", name: "r.xml", data: g.xml()}),
	}
}

func FuzzParseReport(f *testing.F) {
	for _, doc := range seedReports(f) {
		f.Add(doc)
	}
	lim := ParseLimits{MaxRecords: 50, MaxTokens: 20_000, MaxDepth: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ParseReport(data, lim)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %v (%T) is not a *MalformedError", err, err)
			}
			return
		}
		checkReport(t, rep, lim)
	})
}

func FuzzExtract(f *testing.F) {
	for _, msg := range seedMessages(f) {
		f.Add(msg)
	}
	lim := ExtractLimits{MaxFileBytes: 1 << 20, MaxTotalBytes: 2 << 20, MaxZipFiles: 4, MaxParts: 16, MaxDepth: 4}
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, docs, err := Extract(msg, lim)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %v (%T) is not a *MalformedError", err, err)
			}
		}
		var total int64
		for _, d := range docs {
			total += int64(len(d.XML))
			if int64(len(d.XML)) > lim.MaxFileBytes {
				t.Fatalf("document of %d bytes over the limit", len(d.XML))
			}
			if rep, err := ParseReport(d.XML, ParseLimits{}); err == nil {
				checkReport(t, rep, ParseLimits{}.withDefaults())
			}
		}
		if total > lim.MaxTotalBytes {
			t.Fatalf("%d bytes extracted, over the total limit", total)
		}
	})
}

// checkReport holds what ParseReport promises of a report it accepts.
func checkReport(t *testing.T, rep Report, lim ParseLimits) {
	t.Helper()
	if rep.ReportID == "" || rep.Domain == "" || rep.End.Before(rep.Begin) || len(rep.Records) > lim.MaxRecords {
		t.Fatalf("accepted a report breaking its promises: %+v", rep)
	}
	for _, r := range rep.Records {
		if !r.SourceIP.IsValid() || r.Count < 0 || r.Count > maxCount || len(r.DKIMResults) > maxAuthPerRecord {
			t.Fatalf("accepted a bad record: %+v", r)
		}
	}
}

// TestSeedCorpus keeps the committed corpora in step with the fixtures
// (go test -run TestSeedCorpus -update-corpus rewrites them).
func TestSeedCorpus(t *testing.T) {
	for target, seeds := range map[string]map[string][]byte{
		"FuzzParseReport": seedReports(t),
		"FuzzExtract":     seedMessages(t),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seeds {
			path := filepath.Join(dir, "seed-"+name)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
			if *updateCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-corpus)", err)
			}
			if string(got) != want {
				t.Errorf("%s is stale (run with -update-corpus)", path)
			}
		}
	}
}

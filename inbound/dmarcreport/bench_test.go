package dmarcreport

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// bigReport is a Google-shaped report of n records from distinct sources.
func bigReport(n int, id string, begin time.Time) report {
	rows := make([]row, n)
	for i := range rows {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if i%3 == 0 {
			rows[i] = spoofRow(ip, 1+i%7, "example.com")
		} else {
			rows[i] = passRow(ip, 1+i%7, "example.com")
		}
	}
	return report{by: google, domain: "example.com", id: id, begin: begin, end: begin.Add(24*time.Hour - time.Second), rows: rows}
}

func BenchmarkParseReport1000Records(b *testing.B) {
	doc := bigReport(1000, "b", day0).xml()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := ParseReport(doc, ParseLimits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngest is one gzip report message of 100 records, parsed,
// attributed and committed with Sync.
func BenchmarkIngest100Records(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Directory: testDir{"example.com": "acme"}, Clock: &testClock{now: day0}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start, _ := dayRange(1)
	msgs := make([][]byte, 0, 64)
	for i := range 64 {
		msgs = append(msgs, bigReport(100, fmt.Sprint("r", i), start).message(b))
	}
	i := 0
	for b.Loop() {
		if err := s.Ingest(context.Background(), msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSummary30Days is a 30-day summary over 60 reports of 500
// records each (30,000 records).
func BenchmarkSummary30Days(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Directory: testDir{"example.com": "acme"}, Clock: &testClock{now: day0}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for d := range 30 {
		start, _ := dayRange(d)
		for k := range 2 {
			if err := s.Ingest(context.Background(), bigReport(500, fmt.Sprint(d, "-", k), start).message(b)); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		sum, err := s.Summary("example.com", day0.Add(-30*24*time.Hour))
		if err != nil || sum.Reports != 60 {
			b.Fatalf("%d reports, %v", sum.Reports, err)
		}
	}
}

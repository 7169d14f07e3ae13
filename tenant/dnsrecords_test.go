package tenant

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var testParams = RecordParams{
	Hostname:      "MX.Example.NET",
	PoolIPs:       []netip.Addr{netip.MustParseAddr("2001:db8::25"), netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("::ffff:192.0.2.9"), netip.MustParseAddr("192.0.2.10")},
	ReportAddress: "dmarc-reports@mx.example.net",
}

func TestDNSRecords(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	r, ed := e.key(testDomain, selR).Record.Value, e.key(testDomain, selE).Record.Value
	recs, err := e.d.DNSRecords("Example.COM", testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`example.com. IN MX 10 mx.example.net.`,
		`example.com. IN TXT "v=spf1 ip4:192.0.2.9 ip4:192.0.2.10 ip6:2001:db8::25 -all"`,
		`fw202611r._domainkey.example.com. IN TXT "` + r[:255] + `" "` + r[255:] + `"`,
		`fw202611e._domainkey.example.com. IN TXT "` + ed + `"`,
		`_dmarc.example.com. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@mx.example.net"`,
		`example.com._report._dmarc.mx.example.net. IN TXT "v=DMARC1"`,
	}
	if len(r) <= 255 || len(r) > 510 {
		t.Fatalf("RSA record of %d bytes: the expected lines assume two strings", len(r))
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d:\n%s", len(recs), len(want), zoneLines(recs))
	}
	for i, rec := range recs {
		if got := rec.ZoneLine(); got != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got, want[i])
		}
	}

	// Report address in the same domain: no authorization record. No pool
	// addresses: the host's own.
	recs, err = e.d.DNSRecords(testDomain, RecordParams{Hostname: "mx.example.net", ReportAddress: "dmarc@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if n := countKind(recs, RecordDMARCAuth); n != 0 {
		t.Errorf("authorization record for a report address in the domain itself")
	}
	if got := recs[1].Value; got != "v=spf1 a:mx.example.net -all" {
		t.Errorf("SPF without pools: %q", got)
	}

	if _, err := e.d.DNSRecords("nowhere.example", testParams); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown domain: %v", err)
	}
	if _, err := e.d.DNSRecords(testDomain, RecordParams{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no hostname: %v", err)
	}
	if _, err := e.d.DNSRecords(testDomain, RecordParams{Hostname: "mx.example.net", ReportAddress: "reports"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bare report address: %v", err)
	}
}

func zoneLines(recs []DNSRecord) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.ZoneLine() + "\n")
	}
	return b.String()
}

func TestZoneLineQuoting(t *testing.T) {
	long := strings.Repeat("a", 255) + strings.Repeat("b", 255) + "c"
	for _, tc := range []struct {
		rec  DNSRecord
		want string
	}{
		{DNSRecord{Name: "x.example.", Type: "TXT", Value: ""}, `x.example. IN TXT ""`},
		{DNSRecord{Name: "x.example.", Type: "TXT", Value: `say "hi" \o/`}, `x.example. IN TXT "say \"hi\" \\o/"`},
		{DNSRecord{Name: "x.example.", Type: "TXT", Value: long},
			`x.example. IN TXT "` + strings.Repeat("a", 255) + `" "` + strings.Repeat("b", 255) + `" "c"`},
		{DNSRecord{Name: "x.example.", Type: "MX", Value: "10 mx.example."}, `x.example. IN MX 10 mx.example.`},
	} {
		if got := tc.rec.ZoneLine(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestCheckDNS(t *testing.T) {
	e := newDKIMEnv(t)
	addTestDomain(t, e.d, testDomain, false)
	ctx := context.Background()

	checks, err := e.d.CheckDNS(ctx, testDomain, testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.Status != CheckMissing {
			t.Errorf("nothing published: %s %s: %s (%s)", c.Record.Kind, c.Record.Name, c.Status, c.Detail)
		}
	}

	// Publish: MX right (with a backup), SPF missing an address, RSA key
	// right, Ed25519 record holding another key, DMARC tightened by the
	// operator with our rua among others, no authorization record.
	e.dns.SetMX("example.com", &net.MX{Host: "backup.example.org.", Pref: 20}, &net.MX{Host: "mx.example.net.", Pref: 10})
	e.dns.SetTXT("example.com", "google-site-verification=abc", "v=spf1 ip4:192.0.2.9 ip6:2001:db8::25 include:_spf.example.org -all")
	e.publish(testDomain, selR)
	other, _ := newPrivateKey(AlgorithmEd25519)
	otherTXT, _ := keyRecordValue(AlgorithmEd25519, other.Public())
	e.dns.SetTXT(selE+"._domainkey.example.com", otherTXT)
	e.dns.SetTXT("_dmarc.example.com", "v=DMARC1; p=quarantine; rua=mailto:me@example.com,mailto:DMARC-reports@mx.example.net!10m")

	checks, err = e.d.CheckDNS(ctx, testDomain, testParams)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind   RecordKind
		status CheckStatus
		detail string
	}{
		{RecordMX, CheckOK, ""},
		{RecordSPF, CheckDifferent, "missing ip4:192.0.2.10"},
		{RecordDKIM, CheckOK, ""},
		{RecordDKIM, CheckDifferent, "the published p= is not this key's public key"},
		{RecordDMARC, CheckOK, ""},
		{RecordDMARCAuth, CheckMissing, "no TXT record at example.com._report._dmarc.mx.example.net."},
	}
	if len(checks) != len(want) {
		t.Fatalf("%d checks, want %d", len(checks), len(want))
	}
	for i, w := range want {
		c := checks[i]
		if c.Record.Kind != w.kind || c.Status != w.status || c.Detail != w.detail {
			t.Errorf("check %d: %s %s %q, want %s %s %q (found %q)", i, c.Record.Kind, c.Status, c.Detail, w.kind, w.status, w.detail, c.Found)
		}
	}
	if got := checks[0].Found; len(got) != 2 || got[0] != "10 mx.example.net." {
		t.Errorf("MX found: %q", got)
	}
	if got := checks[3].Found; len(got) != 1 || got[0] != otherTXT {
		t.Errorf("DKIM found: %q", got)
	}

	// Two SPF records, MX elsewhere, DMARC without our rua, a failing lookup.
	e.dns.SetMX("example.com", &net.MX{Host: "mail.example.org.", Pref: 10})
	e.dns.SetTXT("example.com", "v=spf1 -all", "v=spf1 ip4:192.0.2.9 -all")
	e.dns.SetTXT("_dmarc.example.com", "v=DMARC1; p=none")
	e.dns.SetFail(selR+"._domainkey.example.com", true)
	e.dns.SetTXT("example.com._report._dmarc.mx.example.net", "v=DMARC1")
	checks, err = e.d.CheckDNS(ctx, testDomain, testParams)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []struct {
		status CheckStatus
		detail string
	}{
		{CheckDifferent, "no MX record points to mx.example.net."},
		{CheckDifferent, "2 records where there must be exactly one"},
		{CheckError, ""},
		{CheckDifferent, ""},
		{CheckDifferent, "rua does not include mailto:dmarc-reports@mx.example.net"},
		{CheckOK, ""},
	} {
		c := checks[i]
		if c.Status != w.status || (w.detail != "" && c.Detail != w.detail) {
			t.Errorf("check %d (%s): %s %q, want %s %q", i, c.Record.Kind, c.Status, c.Detail, w.status, w.detail)
		}
	}
	if !strings.Contains(checks[2].Detail, "SERVFAIL") {
		t.Errorf("lookup failure detail %q", checks[2].Detail)
	}
}

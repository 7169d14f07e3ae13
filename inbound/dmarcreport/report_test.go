package dmarcreport

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseReportShapes(t *testing.T) {
	begin, end := dayRange(1)
	rows := []row{passRow("192.0.2.10", 12, "example.com"), spoofRow("2001:db8::66", 3, "example.com")}
	for _, tc := range []struct {
		by          reporter
		org         string
		wantSel     string
		wantScope   string
		wantEnvFrom string
		wantSP      string
	}{
		{google, "google.com", "fw1", "mfrom", "example.com", "none"},
		{microsoft, "Enterprise Outlook", "fw1", "mfrom", "example.com", "none"},
		{yahoo, "Yahoo", "", "", "", ""},
	} {
		t.Run(tc.org, func(t *testing.T) {
			rep, err := ParseReport(report{by: tc.by, domain: "Example.COM.", id: "id-1", begin: begin, end: end, rows: rows}.xml(), ParseLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Org != tc.org || rep.ReportID != "id-1" || rep.Domain != "example.com" {
				t.Errorf("metadata: org %q id %q domain %q", rep.Org, rep.ReportID, rep.Domain)
			}
			if !rep.Begin.Equal(begin) || !rep.End.Equal(end) {
				t.Errorf("range %s..%s, want %s..%s", rep.Begin, rep.End, begin, end)
			}
			if rep.Policy.P != "none" || rep.Policy.ADKIM != "r" || rep.Policy.SP != tc.wantSP {
				t.Errorf("policy %+v", rep.Policy)
			}
			if len(rep.Records) != 2 {
				t.Fatalf("%d records, want 2", len(rep.Records))
			}
			r0, r1 := rep.Records[0], rep.Records[1]
			if r0.SourceIP != netip.MustParseAddr("192.0.2.10") || r0.Count != 12 || !r0.DMARCPass() || r0.Disposition != "none" {
				t.Errorf("record 0: %+v", r0)
			}
			if len(r0.DKIMResults) != 1 || r0.DKIMResults[0] != (DKIMAuth{Domain: "example.com", Selector: tc.wantSel, Result: "pass"}) {
				t.Errorf("record 0 dkim: %+v", r0.DKIMResults)
			}
			if len(r0.SPFResults) != 1 || r0.SPFResults[0] != (SPFAuth{Domain: "example.com", Scope: tc.wantScope, Result: "pass"}) {
				t.Errorf("record 0 spf: %+v", r0.SPFResults)
			}
			if r0.HeaderFrom != "example.com" || r0.EnvelopeFrom != tc.wantEnvFrom {
				t.Errorf("record 0 identifiers: %q %q", r0.HeaderFrom, r0.EnvelopeFrom)
			}
			if r1.SourceIP != netip.MustParseAddr("2001:db8::66") || r1.DMARCPass() || len(r1.DKIMResults) != 0 || r1.SPFResults[0].Result != "softfail" {
				t.Errorf("record 1: %+v", r1)
			}
		})
	}
}

// TestParseReportOddities: what real reports do that the schema does not
// say: reasons, several auth results, a BOM and Latin-1, IPv4-mapped
// addresses, padded numbers, a missing org_name.
func TestParseReportOddities(t *testing.T) {
	doc := "\ufeff<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<!-- comment -->\n<feedback><report_metadata><email>r\xe9ports@example.net</email>" +
		"<report_id> 42 </report_id><date_range><begin> 1700000000 </begin><end>1700086399</end></date_range></report_metadata>" +
		"<policy_published><domain>example.com</domain></policy_published>" +
		"<record><row><source_ip>::ffff:192.0.2.1</source_ip><count>5</count><policy_evaluated><disposition>none</disposition>" +
		"<dkim>fail</dkim><spf>fail</spf><reason><type>forwarded</type><comment>list</comment></reason><reason><type>local_policy</type></reason></policy_evaluated></row>" +
		"<identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>example.com</domain><result>fail</result></dkim>" +
		"<dkim><domain>lists.example.org</domain><result>PASS</result></dkim><spf><domain>bounce.example.org</domain><scope>helo</scope><result>pass</result></spf>" +
		"<spf><domain>example.org</domain><scope>mfrom</scope><result>fail</result></spf></auth_results><extension/></record></feedback>\n"
	rep, err := ParseReport([]byte(doc), ParseLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Org != "réports@example.net" || rep.ReportID != "42" || rep.Begin.Unix() != 1700000000 {
		t.Errorf("metadata %q %q %d", rep.Org, rep.ReportID, rep.Begin.Unix())
	}
	r := rep.Records[0]
	if r.SourceIP != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("source %s, want 192.0.2.1 unmapped", r.SourceIP)
	}
	if strings.Join(r.Reasons, "|") != "forwarded: list|local_policy" {
		t.Errorf("reasons %q", r.Reasons)
	}
	if len(r.DKIMResults) != 2 || r.DKIMResults[1].Result != "pass" || len(r.SPFResults) != 2 {
		t.Errorf("auth results %+v %+v", r.DKIMResults, r.SPFResults)
	}
}

func TestParseReportMalformed(t *testing.T) {
	good := string(report{by: google, domain: "example.com", id: "x", begin: day0, end: day0.Add(time.Hour),
		rows: []row{passRow("192.0.2.1", 1, "example.com")}}.xml())
	rec := "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>"
	head := "<feedback><report_metadata><org_name>o</org_name><report_id>1</report_id><date_range><begin>1700000000</begin><end>1700000001</end></date_range></report_metadata><policy_published><domain>example.com</domain></policy_published>"
	for _, tc := range []struct {
		name, doc, want string
		lim             ParseLimits
	}{
		{"empty", "", "no XML element", ParseLimits{}},
		{"not XML", "hello", "text before the root element", ParseLimits{}},
		{"wrong root", "<html><body/></html>", "root element <html>", ParseLimits{}},
		{"truncated", good[:len(good)/2], "unexpected EOF", ParseLimits{}},
		{"no metadata", "<feedback><policy_published><domain>a.example</domain></policy_published></feedback>", "no <report_metadata>", ParseLimits{}},
		{"no policy", strings.Replace(good, "<policy_published>", "<policy_x>", 1), "", ParseLimits{}},
		{"no report id", strings.Replace(good, "<report_id>x</report_id>", "", 1), "no <report_id>", ParseLimits{}},
		{"no domain", strings.Replace(good, "<domain>example.com</domain>", "<domain> </domain>", 1), "no <policy_published><domain>", ParseLimits{}},
		{"bad begin", strings.Replace(head, "1700000000", "yesterday", 1) + "</feedback>", "<date_range><begin>", ParseLimits{}},
		{"backwards range", strings.Replace(head, "1700000001", "1600000000", 1) + "</feedback>", "ends", ParseLimits{}},
		{"bad ip", head + strings.Replace(rec, "192.0.2.1", "192.0.2.999", 1) + "</feedback>", "record 1: <source_ip>", ParseLimits{}},
		{"ip with zone", head + strings.Replace(rec, "192.0.2.1", "fe80::1%eth0", 1) + "</feedback>", "<source_ip>", ParseLimits{}},
		{"bad count", head + strings.Replace(rec, "<count>1", "<count>-1", 1) + "</feedback>", "<count>", ParseLimits{}},
		{"huge count", head + strings.Replace(rec, "<count>1", "<count>99999999999999999", 1) + "</feedback>", "<count>", ParseLimits{}},
		{"too many records", head + strings.Repeat(rec, 4) + "</feedback>", "more than 3 records", ParseLimits{MaxRecords: 3}},
		{"too deep", head + "<extensions>" + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + "</extensions></feedback>", "nested deeper than 32", ParseLimits{}},
		{"too many tokens", good, "more than 50 XML tokens", ParseLimits{MaxTokens: 50}},
		{"element after root", good + "<feedback/>", "after </feedback>", ParseLimits{}},
		{"unknown charset", `<?xml version="1.0" encoding="EBCDIC"?>` + head + "</feedback>", "unsupported encoding", ParseLimits{}},
		{"mismatched tags", head + "<record></row></feedback>", "XML:", ParseLimits{}},
		{"long field", strings.Replace(good, "<report_id>x", "<report_id>"+strings.Repeat("x", 2000), 1), "longer than 1024", ParseLimits{}},
		{"not UTF-8", strings.Replace(head, "<org_name>o", "<org_name>\xff", 1) + "</feedback>", "", ParseLimits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseReport([]byte(tc.doc), tc.lim)
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("err %v (%T), want a *MalformedError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q, want it to say %q", err, tc.want)
			}
		})
	}
	if _, err := ParseReport([]byte(good), ParseLimits{}); err != nil {
		t.Fatalf("the good report: %v", err)
	}
}

// TestParseReportRecordLimitStreams: a report over the record limit is
// refused as soon as the limit is passed.
func TestParseReportRecordLimitStreams(t *testing.T) {
	var rows []row
	for i := range 101 {
		rows = append(rows, passRow(fmt.Sprintf("192.0.2.%d", i), 1, "example.com"))
	}
	doc := report{by: yahoo, domain: "example.com", id: "y", begin: day0, end: day0, rows: rows}.xml()
	if _, err := ParseReport(doc, ParseLimits{MaxRecords: 100}); err == nil || !strings.Contains(err.Error(), "more than 100 records") {
		t.Fatalf("err %v", err)
	}
	if rep, err := ParseReport(doc, ParseLimits{MaxRecords: 101}); err != nil || len(rep.Records) != 101 {
		t.Fatalf("at the limit: %v", err)
	}
}

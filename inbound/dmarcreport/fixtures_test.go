package dmarcreport

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fixtures are shaped like the reports the big reporters send (written
// for these tests, not copied): Google gzips a plain report named
// google.com!<domain>!<begin>!<end>.xml.gz; Microsoft puts a default
// namespace and extra elements (version, envelope_to, fo) in it; Yahoo
// omits selector, scope, envelope_from and sp.

type reporter int

const (
	google reporter = iota
	microsoft
	yahoo
)

// row is one record of a fixture report.
type row struct {
	ip                            string
	count                         int
	disposition                   string
	dkimEval, spfEval             string // policy_evaluated
	headerFrom                    string
	envelopeFrom                  string
	dkimDomain, dkimRes, selector string
	spfDomain, spfRes             string
}

// passRow is a fully passing row from ip.
func passRow(ip string, count int, domain string) row {
	return row{ip: ip, count: count, disposition: "none", dkimEval: "pass", spfEval: "pass", headerFrom: domain,
		envelopeFrom: domain, dkimDomain: domain, dkimRes: "pass", selector: "fw1", spfDomain: domain, spfRes: "pass"}
}

// spoofRow is a row failing everything, as a forger's mail does.
func spoofRow(ip string, count int, domain string) row {
	return row{ip: ip, count: count, disposition: "none", dkimEval: "fail", spfEval: "fail", headerFrom: domain,
		envelopeFrom: domain, spfDomain: domain, spfRes: "softfail"}
}

type report struct {
	by         reporter
	domain, id string
	begin, end time.Time
	rows       []row
}

func (r report) xml() []byte {
	var b strings.Builder
	switch r.by {
	case google:
		b.WriteString(`<?xml version="1.0" encoding="UTF-8" ?>` + "\n<feedback>\n  <report_metadata>\n    <org_name>google.com</org_name>\n" +
			"    <email>noreply-dmarc-support@google.com</email>\n    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>\n")
	case microsoft:
		b.WriteString(`<?xml version="1.0"?>` + "\n" + `<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://dmarc.org/dmarc-xml/0.1">` +
			"\n  <version>1.0</version>\n  <report_metadata>\n    <org_name>Enterprise Outlook</org_name>\n    <email>dmarcreport@microsoft.com</email>\n")
	case yahoo:
		b.WriteString("<?xml version=\"1.0\"?>\n<feedback>\n  <report_metadata>\n    <org_name>Yahoo</org_name>\n    <email>dmarchelp@yahooinc.com</email>\n")
	}
	fmt.Fprintf(&b, "    <report_id>%s</report_id>\n    <date_range>\n      <begin>%d</begin>\n      <end>%d</end>\n    </date_range>\n  </report_metadata>\n",
		r.id, r.begin.Unix(), r.end.Unix())
	fmt.Fprintf(&b, "  <policy_published>\n    <domain>%s</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>none</p>\n", r.domain)
	switch r.by {
	case google:
		b.WriteString("    <sp>none</sp>\n    <pct>100</pct>\n    <np>none</np>\n")
	case microsoft:
		b.WriteString("    <sp>none</sp>\n    <pct>100</pct>\n    <fo>0</fo>\n")
	case yahoo:
		b.WriteString("    <pct>100</pct>\n")
	}
	b.WriteString("  </policy_published>\n")
	for _, w := range r.rows {
		fmt.Fprintf(&b, "  <record>\n    <row>\n      <source_ip>%s</source_ip>\n      <count>%d</count>\n      <policy_evaluated>\n"+
			"        <disposition>%s</disposition>\n        <dkim>%s</dkim>\n        <spf>%s</spf>\n      </policy_evaluated>\n    </row>\n",
			w.ip, w.count, w.disposition, w.dkimEval, w.spfEval)
		b.WriteString("    <identifiers>\n")
		if r.by == microsoft {
			b.WriteString("      <envelope_to>example.org</envelope_to>\n")
		}
		if r.by != yahoo && w.envelopeFrom != "" {
			fmt.Fprintf(&b, "      <envelope_from>%s</envelope_from>\n", w.envelopeFrom)
		}
		fmt.Fprintf(&b, "      <header_from>%s</header_from>\n    </identifiers>\n    <auth_results>\n", w.headerFrom)
		if w.dkimDomain != "" {
			fmt.Fprintf(&b, "      <dkim>\n        <domain>%s</domain>\n", w.dkimDomain)
			if r.by != yahoo {
				fmt.Fprintf(&b, "        <selector>%s</selector>\n", w.selector)
			}
			fmt.Fprintf(&b, "        <result>%s</result>\n      </dkim>\n", w.dkimRes)
		}
		if w.spfDomain != "" {
			fmt.Fprintf(&b, "      <spf>\n        <domain>%s</domain>\n", w.spfDomain)
			if r.by != yahoo {
				b.WriteString("        <scope>mfrom</scope>\n")
			}
			fmt.Fprintf(&b, "        <result>%s</result>\n      </spf>\n", w.spfRes)
		}
		b.WriteString("    </auth_results>\n  </record>\n")
	}
	b.WriteString("</feedback>\n")
	return []byte(b.String())
}

// fileName is the attachment name the reporter would use.
func (r report) fileName() string {
	switch r.by {
	case google:
		return fmt.Sprintf("google.com!%s!%d!%d.xml.gz", r.domain, r.begin.Unix(), r.end.Unix())
	case microsoft:
		return fmt.Sprintf("enterprise.protection.outlook.com!%s!%d!%d.xml.gz", r.domain, r.begin.Unix(), r.end.Unix())
	default:
		return fmt.Sprintf("yahoo.com!%s!%d!%d.zip", r.domain, r.begin.Unix(), r.end.Unix())
	}
}

// message is the report mailed the way its reporter mails it: Google and
// Microsoft a gzip attachment after a text part, Yahoo a zip.
func (r report) message(t testing.TB) []byte {
	t.Helper()
	if r.by == yahoo {
		return mimeMessage("Yahoo DMARC <dmarchelp@yahooinc.com>", "Report Domain: "+r.domain,
			attachment{ct: "application/zip", name: r.fileName(), data: zipFiles(t, map[string][]byte{strings.TrimSuffix(r.fileName(), ".zip") + ".xml": r.xml()})})
	}
	return mimeMessage("noreply-dmarc-support@google.com", "Report domain: "+r.domain+" Submitter: google.com",
		attachment{ct: "text/plain", data: []byte("This is an aggregate report from google.com.\r\n")},
		attachment{ct: "application/gzip", name: r.fileName(), data: gzipBytes(t, r.xml())})
}

type attachment struct {
	ct, name string
	data     []byte
	qp       bool // send as it is (7bit) instead of base64
}

// mimeMessage builds a multipart/mixed message with parts.
func mimeMessage(from, subject string, parts ...attachment) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: dmarc-reports@mx.example.net\r\nSubject: %s\r\nMessage-ID: <%d.report@example.com>\r\n"+
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1_xyz\"\r\n\r\n",
		from, subject, len(subject))
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	for _, p := range parts {
		b.WriteString("--b1_xyz\r\n")
		if p.name != "" {
			fmt.Fprintf(&b, "Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n", p.ct, p.name, p.name)
		} else {
			fmt.Fprintf(&b, "Content-Type: %s\r\n", p.ct)
		}
		if p.qp {
			b.WriteString("Content-Transfer-Encoding: 7bit\r\n\r\n")
			b.Write(p.data)
			b.WriteString("\r\n")
			continue
		}
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		b.WriteString(wrap76(base64.StdEncoding.EncodeToString(p.data)))
	}
	b.WriteString("--b1_xyz--\r\n")
	return b.Bytes()
}

// singlePart is a message whose whole body is the report.
func singlePart(ct string, body []byte) []byte {
	return []byte("From: reports@reporter.example\r\nTo: dmarc-reports@mx.example.net\r\nSubject: report\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: " + ct + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + wrap76(base64.StdEncoding.EncodeToString(body)))
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zipFiles(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testDir is a directory of domain → tenant.
type testDir map[string]string

func (d testDir) DomainTenant(domain string) (string, bool) { t, ok := d[domain]; return t, ok }

// testClock is moved only by the test.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// day0 is the fixtures' reference time: a summary "now".
var day0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// dayRange is the UTC day n days before day0's date, as reporters cover it.
func dayRange(n int) (time.Time, time.Time) {
	d := time.Date(day0.Year(), day0.Month(), day0.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -n)
	return d, d.Add(24*time.Hour - time.Second)
}

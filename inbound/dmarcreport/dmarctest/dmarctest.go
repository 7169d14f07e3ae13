// Package dmarctest builds DMARC aggregate reports and the messages that
// carry them, for tests of the packages that take them in (dmarcreport, the
// MX, the admin CLI). The messages are shaped like Google's: a text part and
// a base64 application/gzip attachment named
// google.com!<domain>!<begin>!<end>.xml.gz.
package dmarctest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"html"
	"strings"
	"time"
)

// Row is one <record> of a report.
type Row struct {
	IP          string
	Count       int
	Disposition string // none, quarantine, reject
	// DKIM and SPF are the policy-evaluated (aligned) results: pass or fail.
	DKIM, SPF                            string
	HeaderFrom, EnvelopeFrom             string
	DKIMDomain, DKIMSelector, DKIMResult string // no <dkim> result when DKIMDomain is ""
	SPFDomain, SPFResult                 string // no <spf> result when SPFDomain is ""
}

// Pass is a row of count messages from ip passing everything for domain.
func Pass(ip string, count int, domain string) Row {
	return Row{IP: ip, Count: count, Disposition: "none", DKIM: "pass", SPF: "pass", HeaderFrom: domain, EnvelopeFrom: domain,
		DKIMDomain: domain, DKIMSelector: "fw1", DKIMResult: "pass", SPFDomain: domain, SPFResult: "pass"}
}

// Spoof is a row of count messages from ip forging domain: no signature,
// SPF softfail.
func Spoof(ip string, count int, domain string) Row {
	return Row{IP: ip, Count: count, Disposition: "none", DKIM: "fail", SPF: "fail", HeaderFrom: domain, EnvelopeFrom: domain,
		SPFDomain: domain, SPFResult: "softfail"}
}

// Report is one aggregate report by google.com.
type Report struct {
	Domain, ID string
	Begin, End time.Time
	Rows       []Row
}

// XML is the report document.
func (r Report) XML() []byte {
	var b strings.Builder
	e := html.EscapeString
	fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<feedback>\n  <report_metadata>\n    <org_name>google.com</org_name>\n"+
		"    <email>noreply-dmarc-support@google.com</email>\n    <report_id>%s</report_id>\n"+
		"    <date_range>\n      <begin>%d</begin>\n      <end>%d</end>\n    </date_range>\n  </report_metadata>\n"+
		"  <policy_published>\n    <domain>%s</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>none</p>\n    <sp>none</sp>\n    <pct>100</pct>\n  </policy_published>\n",
		e(r.ID), r.Begin.Unix(), r.End.Unix(), e(r.Domain))
	for _, w := range r.Rows {
		fmt.Fprintf(&b, "  <record>\n    <row>\n      <source_ip>%s</source_ip>\n      <count>%d</count>\n      <policy_evaluated>\n"+
			"        <disposition>%s</disposition>\n        <dkim>%s</dkim>\n        <spf>%s</spf>\n      </policy_evaluated>\n    </row>\n"+
			"    <identifiers>\n      <envelope_from>%s</envelope_from>\n      <header_from>%s</header_from>\n    </identifiers>\n    <auth_results>\n",
			e(w.IP), w.Count, e(w.Disposition), e(w.DKIM), e(w.SPF), e(w.EnvelopeFrom), e(w.HeaderFrom))
		if w.DKIMDomain != "" {
			fmt.Fprintf(&b, "      <dkim>\n        <domain>%s</domain>\n        <selector>%s</selector>\n        <result>%s</result>\n      </dkim>\n",
				e(w.DKIMDomain), e(w.DKIMSelector), e(w.DKIMResult))
		}
		if w.SPFDomain != "" {
			fmt.Fprintf(&b, "      <spf>\n        <domain>%s</domain>\n        <scope>mfrom</scope>\n        <result>%s</result>\n      </spf>\n",
				e(w.SPFDomain), e(w.SPFResult))
		}
		b.WriteString("    </auth_results>\n  </record>\n")
	}
	b.WriteString("</feedback>\n")
	return []byte(b.String())
}

// FileName is the attachment's name as Google gives it.
func (r Report) FileName() string {
	return fmt.Sprintf("google.com!%s!%d!%d.xml.gz", r.Domain, r.Begin.Unix(), r.End.Unix())
}

// GzipMessage is the report mailed to rcpt as Google mails it.
func (r Report) GzipMessage(rcpt string) []byte {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(r.XML()) // writes to memory do not fail
	_ = zw.Close()
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: noreply-dmarc-support@google.com\r\nTo: %s\r\nSubject: Report domain: %s Submitter: google.com Report-ID: %s\r\n"+
		"Message-ID: <%s@google.com>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"000000000000dmarc\"\r\n\r\n"+
		"--000000000000dmarc\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n\r\n"+
		"--000000000000dmarc\r\nContent-Type: application/gzip; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n",
		rcpt, r.Domain, r.ID, r.ID, r.End.Add(time.Hour).UTC().Format(time.RFC1123Z), r.FileName(), r.FileName())
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--000000000000dmarc--\r\n")
	return b.Bytes()
}

package dmarcreport

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	begin, end := dayRange(1)
	rep := report{by: google, domain: "example.com", id: "g1", begin: begin, end: end, rows: []row{passRow("192.0.2.1", 1, "example.com")}}
	xmlDoc := rep.xml()
	bigZeros := bytes.Repeat([]byte{0}, 8<<20)
	for _, tc := range []struct {
		name      string
		msg       []byte
		lim       ExtractLimits
		wantNames []string
		wantErr   string
	}{
		{name: "google gzip", msg: rep.message(t), wantNames: []string{"google.com!example.com!" + itoa(begin.Unix()) + "!" + itoa(end.Unix()) + ".xml"}},
		{name: "yahoo zip", msg: report{by: yahoo, domain: "example.com", id: "y", begin: begin, end: end}.message(t),
			wantNames: []string{"yahoo.com!example.com!" + itoa(begin.Unix()) + "!" + itoa(end.Unix()) + ".xml"}},
		{name: "octet-stream named .xml.gz", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/octet-stream", name: "r.xml.gz", data: gzipBytes(t, xmlDoc)}), wantNames: []string{"r.xml"}},
		{name: "octet-stream unnamed, gzip by magic", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/octet-stream", data: gzipBytes(t, xmlDoc)}), wantNames: []string{""}},
		{name: "x-zip-compressed", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/x-zip-compressed", name: "r.zip", data: zipFiles(t, map[string][]byte{"a.xml": xmlDoc})}), wantNames: []string{"a.xml"}},
		{name: "mislabelled: gzip named .zip", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/zip", name: "r.zip", data: gzipBytes(t, xmlDoc)}), wantNames: []string{"r"}},
		{name: "inline text/xml, 7bit", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "text/xml", data: xmlDoc, qp: true}), wantNames: []string{""}},
		{name: "whole body application/gzip", msg: singlePart(`application/gzip; name="x.xml.gz"`, gzipBytes(t, xmlDoc)), wantNames: []string{"x.xml"}},
		{name: "whole body xml", msg: singlePart("application/xml", xmlDoc), wantNames: []string{""}},
		{name: "nested multipart", msg: []byte("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n" +
			"Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nhi\r\n--inner--\r\n" +
			"--outer\r\n" + string(singlePart("application/xml", xmlDoc)[bytes.Index(singlePart("application/xml", xmlDoc), []byte("Content-Type")):]) + "--outer--\r\n"),
			wantNames: []string{""}},
		{name: "other binary attachment ignored", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/octet-stream", name: "logo.bin", data: []byte{1, 2, 3}},
			attachment{ct: "application/gzip", name: "r.xml.gz", data: gzipBytes(t, xmlDoc)}), wantNames: []string{"r.xml"}},
		{name: "no attachment", msg: mimeMessage("a@b.example", "hello", attachment{ct: "text/plain", data: []byte("hi")}),
			wantErr: "no DMARC report in the message"},
		{name: "gzip label, garbage inside", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/gzip", name: "r.xml.gz", data: []byte("this is not gzip")}), wantErr: "neither gzip, zip nor XML"},
		{name: "corrupt gzip", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/gzip", name: "r.xml.gz", data: gzipBytes(t, xmlDoc)[:40]}), wantErr: "gzip:"},
		{name: "gzip bomb", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/gzip", name: "r.xml.gz", data: gzipBytes(t, bigZeros)}),
			lim: ExtractLimits{MaxFileBytes: 1 << 20}, wantErr: "more than 1048576 bytes"},
		{name: "zip bomb", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/zip", name: "r.zip", data: zipFiles(t, map[string][]byte{"a.xml": bigZeros})}),
			lim: ExtractLimits{MaxFileBytes: 1 << 20}, wantErr: "more than 1048576 bytes"},
		{name: "many small files over the message total", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/zip", name: "r.zip", data: zipFiles(t, map[string][]byte{"a.xml": xmlDoc, "b.xml": xmlDoc, "c.xml": xmlDoc})}),
			lim: ExtractLimits{MaxTotalBytes: int64(len(xmlDoc)*2 + 10)}, wantErr: "bytes"},
		{name: "too many zip files", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/zip", name: "r.zip", data: zipFiles(t, map[string][]byte{"a.xml": xmlDoc, "b.xml": xmlDoc, "c.xml": xmlDoc})}),
			lim: ExtractLimits{MaxZipFiles: 2}, wantErr: "zip holds 3 files, more than 2"},
		{name: "zip entry not XML", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "application/zip", name: "r.zip", data: zipFiles(t, map[string][]byte{"a.exe": []byte("MZ")})}), wantErr: "is not XML"},
		{name: "too many parts", msg: mimeMessage("a@b.example", "r",
			attachment{ct: "text/plain", data: []byte("1")}, attachment{ct: "text/plain", data: []byte("2")}, attachment{ct: "text/plain", data: []byte("3")}),
			lim: ExtractLimits{MaxParts: 3}, wantErr: "more than 3 MIME parts"},
		{name: "multipart without boundary", msg: []byte("From: a@b.example\r\nContent-Type: multipart/mixed\r\n\r\nx\r\n"), wantErr: "without a boundary"},
		{name: "no header", msg: []byte("garbage without a header"), wantErr: "message header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, docs, err := Extract(tc.msg, tc.lim)
			if tc.wantErr != "" {
				var me *MalformedError
				if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want a MalformedError saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range docs {
				names = append(names, d.Name)
				if _, err := ParseReport(d.XML, ParseLimits{}); err != nil {
					t.Errorf("document %q: %v", d.Name, err)
				}
			}
			if strings.Join(names, "|") != strings.Join(tc.wantNames, "|") {
				t.Errorf("documents %q, want %q", names, tc.wantNames)
			}
		})
	}
}

func TestExtractEnvelope(t *testing.T) {
	msg := mimeMessage("=?utf-8?q?R=C3=A9porteur?= <r@example.net>", "Report", attachment{ct: "text/xml", data: []byte("<feedback/>"), qp: true})
	env, _, err := Extract(msg, ExtractLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if env.From != "Réporteur <r@example.net>" || env.Subject != "Report" || env.MessageID == "" {
		t.Errorf("envelope %+v", env)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Package dmarcreport takes in DMARC aggregate reports (RFC 7489 §7.2 and
// appendix C) and analyses them per hosted domain. It sits at the end of the
// inbound path: the MX (package inbound) accepts mail for the report address
// that every hosted domain's DMARC record names (rua=mailto:dmarc-reports@<server
// host name>) and, instead of delivering it to a mailbox, hands the whole
// message to Store.Ingest. The admin API (`fairway dmarc summary DOMAIN`)
// reads Store.Summary.
//
// # Intake
//
// Ingest runs these steps on one RFC 5322 message:
//
//  1. Refuse a message over Limits.MaxMessageBytes.
//  2. Walk its MIME tree (bounded depth and part count) and take every part
//     that is, by content type, file name or magic bytes, a gzip file, a zip
//     archive or an XML document: Google sends
//     google.com!<domain>!<begin>!<end>.xml.gz as application/gzip, Microsoft
//     and others zip files, some send XML or application/octet-stream. A
//     message that is itself the report (no multipart) is taken as well.
//  3. Decompress with a cap on the bytes actually read (never the size the
//     archive header claims) per file and per message, and a cap on the
//     number of files in a zip.
//  4. Parse each XML document with encoding/xml over a token reader that
//     bounds nesting depth and token count, streaming <record> elements so
//     that a report over Limits.MaxRecords is refused before it is held in
//     memory. Namespaced reports (Microsoft's xmlns) and unknown extra
//     elements are accepted; missing optional fields (Yahoo) are empty.
//  5. Attribute the report to the tenant that hosts <policy_published><domain>
//     (Options.Directory) and store it, deduplicated by (reporter, report id).
//
// Anything permanently wrong (too big, not a report, malformed XML, zip bomb,
// a domain not hosted here, ...) is kept aside in the rejected list with its
// reason and Ingest returns nil: the sender must not retry. Ingest returns an
// error only when storage failed, which the MX answers with 451.
//
// # Storage
//
// Pebble in <data_dir>/dmarc (the directory given to Open). Keys:
//
//	r\x00<domain>\x00<begin: 8-byte big-endian unix seconds>\x00<id hash>  Report (JSON)
//	u\x00<domain>\x00<id hash>                                            the r key (dedup index)
//	x\x00<received: 8-byte big-endian unix nanos><seq: 4 bytes>           RejectedReport (JSON)
//	X\x00<same as x>                                                      the first 64 KiB of the rejected message
//
// <id hash> is the hex SHA-256 (first 16 bytes) of "<org_name>\x00<report_id>".
// Reports are ordered by the start of their date range, so a summary reads
// one key range per domain. Reports older than Limits.Retention are deleted
// when a newer report of the same domain arrives; only the newest
// Limits.MaxRejected rejected messages are kept. Every write is one batch
// committed with Sync.
//
// # Summary and signals
//
// A report belongs to the UTC day its date range begins on, and to a window
// [since, now] when its begin is in it. Summary rolls up the window's records
// per day and per source IP: messages, and the messages whose DMARC policy
// evaluation (<policy_evaluated>, as the reporter computed it) passed SPF,
// DKIM and DMARC (SPF or DKIM pass, which in a report always means aligned),
// and the dispositions applied (none, quarantine, reject). On these rows it
// raises three signals:
//
//   - Unknown source (likely spoofing): a source IP that is not among the
//     operator's own sending addresses (Options.KnownSources for the domain),
//     that has no record with a DMARC pass for this domain in the window, and
//     that has records failing DMARC in it. Listed with its failing volume,
//     header_from domains and reporters.
//   - Known source failing alignment (a misconfigured sender): a source IP
//     that is known, or that had DMARC passes in the window (a legitimate
//     third-party sender), and that has records failing DMARC in it. Each
//     cause is named from the record's <auth_results>: "SPF pass for X, not
//     aligned with D" (the envelope domain X is a different organizational
//     domain than header_from D, or differs under aspf=s), "SPF <result> for
//     X", "no SPF result", "DKIM pass for d=Y (s=S), not aligned with D",
//     "DKIM <result> for d=Y (s=S)", "no DKIM signature".
//   - New source: a source IP with records whose report begins in the last 7
//     days (now-7d, now] and none in the 7 days before (now-14d, now-7d].
//     Raised only when some report of the domain begins in that earlier
//     week (Summary.NewSourcesBaseline), so that a domain whose reports just
//     started arriving does not list every sender as new.
//
// Alignment is judged as RFC 7489 §3.1 does, relaxed by default: same
// organizational domain (the public suffix list, golang.org/x/net/publicsuffix)
// or, under adkim=s / aspf=s, the same domain.
package dmarcreport

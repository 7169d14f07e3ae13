// Package inbound is the MX server (port 25): mail from remote MTAs enters
// here, and mail relay's delivery workers route to hosted domains comes in
// through DeliverLocal. It stores nothing itself.
//
// Data flow of one MX message (details in session.go, auth.go, rules.go
// and deliver.go):
//
//	remote MTA --SMTP--> MX session: connection caps, no AUTH, STARTTLS
//	  RCPT: plain local@domain of a hosted domain (tenant), mailbox or alias
//	  DATA: SPF + DKIM + DMARC (Resolver) -> Authentication-Results
//	        DMARC p=reject failure -> 550 5.7.1
//	        each receiving tenant's quarantine rules -> INBOX | Quarantine | reject
//	        Received + Authentication-Results added, forged ones removed
//	  hand-off: report address -> ReportSink, complaint address -> ComplaintSink,
//	            alias to an external address -> Spool (fairq) under the alias's tenant,
//	            mailbox -> LocalStore (mailstore) or an external LMTP server,
//	            a copy that failed after others were stored -> Spool as an
//	            inbound retry, handed back by relay through DeliverLocal.
//
// The client gets 250 only once every copy is stored or durably queued.
// Replies are chosen in one place (replies.go). Each message ends in one
// "accepted" or "refused" log line with its msgid, tenants and check
// results, and is counted in fairway_inbound_messages_total; check results
// in fairway_inbound_checks_total, copies in fairway_inbound_deliveries_total.
//
// inbound keeps no state on disk: mail rests in mailstore (or the LMTP
// server), queued copies in fairq. Its subpackage dmarcreport parses and
// stores DMARC aggregate reports (the ReportSink).
package inbound

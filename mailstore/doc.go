// Package mailstore is where delivered mail rests and how users read it:
// Maildir storage laid out <data_dir>/mail/<domain>/<localpart>/ with a
// UID and flags index and quotas, filled by inbound's hand-off, and the IMAP
// server (143 STARTTLS, 993 implicit TLS) with per-tenant connection caps.
// Users log in by full address, checked against tenant; a bare local part
// never authenticates.
package mailstore

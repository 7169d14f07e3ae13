// Package mailstore is where delivered mail rests and how users read it.
//
// Data flow: inbound hands each accepted message to Store.Deliver (after
// CheckQuota at RCPT); Deliver writes it into the recipient's Maildir and
// returns only once it is durable, so the SMTP 250 follows a durable write.
// IMAP clients (143 STARTTLS, 993 implicit TLS) log in with the full
// address, checked by the tenant directory, and read and change only their
// own Maildir. A bare local part never authenticates.
//
// Delivery steps: check the mailbox and tenant quotas and reserve the
// bytes; write tmp/<name>, fsync; take the folder lock, assign the next UID,
// rename into new/ (cur/ if the message has flags), fsync the directory,
// commit the index record and the folder counters (Pebble, synced); tell
// the selected IMAP sessions (EXISTS).
//
// On-disk layout under <data_dir>/mail:
//
//	<domain>/<localpart>/            the user's Maildir (INBOX): cur/ new/ tmp/
//	<domain>/<localpart>/.<Folder>/  Maildir++ subfolders; the IMAP hierarchy
//	                                 delimiter is '.', as in Maildir++ ("Work.2026")
//	<folder dir>/fairway-uidvalidity the folder's last UIDVALIDITY (kept so a
//	                                 rebuilt index never reuses it)
//	index/                           Pebble: the UID/flags index
//
// A '/' in a local part is written "%2F", so a mailbox is one directory. File
// names are <secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>[:2,<flags>] with the
// standard flag letters (D F P R S T), so mutt, Dovecot and backup tools read
// them as they are; keywords live in the index only.
//
// Index keys (Pebble, in index/):
//
//	N\0<address>\0<folder>  -> folder id (uint32)
//	M\0<folder id>          -> UIDVALIDITY, UIDNEXT, message count, bytes, subscribed
//	I\0<folder id><uid>     -> message: Maildir base name, cur/new, flags, keywords,
//	                           INTERNALDATE, RFC822.SIZE, compact ENVELOPE
//	C\0                     -> last folder id, last UIDVALIDITY issued
//
// Folder ids, not names, key the messages, so RENAME keeps UIDs and
// UIDVALIDITY. The files are the truth and the index a cache of them: when a
// folder is loaded (SELECT, STATUS) and its new/ or cur/ changed since the
// last scan, files gone are expunged, flag letters changed by another tool
// are taken over, and files added by another tool get the next UIDs;
// existing messages keep theirs. A folder with no index (lost, or a Maildir
// restored from a backup) is indexed from its files with a new UIDVALIDITY.
// Usage counters (bytes per mailbox, summed per tenant) are kept from the
// index, never by walking the disk per delivery.
//
// IMAP (IMAPServer, on go-imap/v2 imapserver): a session only ever opens
// folders of its own user's Maildir, by names CheckFolderName confines
// ('/', '\', "..", empty levels, '#' and '~' refused). Sent, Drafts, Trash
// and Junk are created at first login and listed with their SPECIAL-USE
// attributes; Quarantine is made by inbound's first delivery to it. A
// loaded folder's message list stays in memory, shared by the sessions
// that select it; each session has its own sequence numbering (go-imap's
// tracker), so deliveries and other sessions' changes arrive as EXISTS,
// EXPUNGE and FETCH FLAGS at the next command or during IDLE. Connection
// caps per tenant and per user apply at login (NO [LIMIT]); a cap on all
// connections applies at accept (BYE [LIMIT]).
//
// ExportDomain and ImportDomain move a domain's Maildirs as a tar archive;
// an import is indexed with new UIDVALIDITYs.
package mailstore

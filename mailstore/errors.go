package mailstore

import "errors"

// Folder names inbound delivers to. A folder name is IMAP's: "INBOX" is the
// Maildir root, any other folder a Maildir++ subfolder (".Quarantine").
const (
	FolderInbox      = "INBOX"
	FolderQuarantine = "Quarantine"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrOverQuota: the mailbox's or the tenant's quota would be exceeded.
	// SMTP maps it to 452 4.2.2, IMAP APPEND to [OVERQUOTA].
	ErrOverQuota = errors.New("mailstore: quota exceeded")
	// ErrNoMailbox: the address is not a mailbox in the directory.
	ErrNoMailbox = errors.New("mailstore: no such mailbox")
	// ErrBadFolder: a folder name that is invalid or escapes the user's
	// Maildir ("..", "/", absolute paths).
	ErrBadFolder = errors.New("mailstore: invalid folder name")
)

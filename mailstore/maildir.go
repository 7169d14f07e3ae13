package mailstore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Delim is the IMAP hierarchy delimiter. It is Maildir++'s: folder
// "Work.2026" is the directory ".Work.2026" in the user's Maildir.
const Delim = '.'

// Limits on folder names and counts.
const (
	maxFolderName  = 200 // bytes of an IMAP folder name
	maxFolderDepth = 16
	maxFolders     = 1000 // per mailbox
)

// Maildir info flags (the letters after ":2,"), in the order the Maildir
// specification wants them written (ASCII order).
const (
	flagDraft   uint8 = 1 << iota // D  \Draft
	flagFlagged                   // F  \Flagged
	flagPassed                    // P  $Forwarded
	flagReplied                   // R  \Answered
	flagSeen                      // S  \Seen
	flagTrashed                   // T  \Deleted
)

var flagLetters = [...]struct {
	bit    uint8
	letter byte
	imap   string
}{
	{flagDraft, 'D', `\Draft`},
	{flagFlagged, 'F', `\Flagged`},
	{flagPassed, 'P', `$Forwarded`},
	{flagReplied, 'R', `\Answered`},
	{flagSeen, 'S', `\Seen`},
	{flagTrashed, 'T', `\Deleted`},
}

// infoFlags parses the flag letters of a Maildir file name's ":2," info.
func infoFlags(info string) uint8 {
	var f uint8
	if !strings.HasPrefix(info, "2,") {
		return 0
	}
	for i := 2; i < len(info); i++ {
		for _, fl := range flagLetters {
			if info[i] == fl.letter {
				f |= fl.bit
			}
		}
	}
	return f
}

// infoString is the ":2,..." suffix for the flags.
func infoString(f uint8) string {
	b := make([]byte, 0, 9)
	b = append(b, ":2,"...)
	for _, fl := range flagLetters {
		if f&fl.bit != 0 {
			b = append(b, fl.letter)
		}
	}
	return string(b)
}

// splitName splits a Maildir file name into its unique base and info
// ("" if none).
func splitName(name string) (base, info string) {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// sizeFromName reads the ",S=<size>" field of a base name, if any.
func sizeFromName(base string) (int64, bool) {
	i := strings.Index(base, ",S=")
	if i < 0 {
		return 0, false
	}
	s := base[i+3:]
	if j := strings.IndexByte(s, ','); j >= 0 {
		s = s[:j]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

// nameSource makes unique Maildir base names:
// <unix seconds>.M<microseconds>P<pid>Q<counter>.<host>,S=<size>.
type nameSource struct {
	host string
	pid  int
	n    atomic.Uint64
}

func newNameSource() *nameSource {
	h, _ := os.Hostname()
	// '/' and ':' would break the name; Maildir says to encode them.
	h = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
	if h == "" {
		h = "localhost"
	}
	return &nameSource{host: h, pid: os.Getpid()}
}

func (ns *nameSource) next(now time.Time, size int64) string {
	return fmt.Sprintf("%d.M%dP%dQ%d.%s,S=%d", now.Unix(), now.Nanosecond()/1000, ns.pid, ns.n.Add(1), ns.host, size)
}

// mailboxDir is the Maildir of an address: <mailDir>/<domain>/<localpart>.
// The local part's '/' (legal in an address) is written as "%2F" so that a
// mailbox is always one directory; '%' never occurs in a stored address.
func mailboxDir(mailDir, address string) (string, error) {
	at := strings.LastIndexByte(address, '@')
	if at <= 0 || at == len(address)-1 {
		return "", fmt.Errorf("%w: %q", ErrNoMailbox, address)
	}
	local, domain := address[:at], address[at+1:]
	if strings.ContainsAny(domain, "/\\\x00") || strings.HasPrefix(domain, ".") ||
		strings.ContainsAny(local, "\\\x00%") || local == "." || local == ".." {
		return "", fmt.Errorf("%w: %q", ErrNoMailbox, address)
	}
	local = strings.ReplaceAll(local, "/", "%2F")
	return filepath.Join(mailDir, domain, local), nil
}

// CheckFolderName validates an IMAP folder name and returns its canonical
// form ("INBOX" for any case of inbox). It refuses names that could leave
// the user's Maildir or name another user's: empty components ("a..b",
// a leading or trailing delimiter), '/', '\', control characters, and the
// namespace prefixes '#' and '~'.
func CheckFolderName(name string) (string, error) {
	if strings.EqualFold(name, FolderInbox) {
		return FolderInbox, nil
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q: %s", ErrBadFolder, name, why)
	}
	if name == "" || len(name) > maxFolderName {
		return bad("empty or too long")
	}
	if !utf8.ValidString(name) {
		return bad("not UTF-8")
	}
	if strings.HasPrefix(name, "#") || strings.HasPrefix(name, "~") {
		return bad("other namespaces are not served")
	}
	parts := strings.Split(name, string(Delim))
	if len(parts) > maxFolderDepth {
		return bad("too deep")
	}
	if strings.EqualFold(parts[0], FolderInbox) {
		return bad("INBOX has no subfolders here")
	}
	for _, p := range parts {
		if p == "" {
			return bad("empty hierarchy level")
		}
		for _, r := range p {
			if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || r == '*' || r == '%' {
				return bad(fmt.Sprintf("character %q not allowed", r))
			}
		}
	}
	return name, nil
}

// folderDir is the directory of a (checked) folder inside a Maildir.
func folderDir(root, name string) string {
	if name == FolderInbox {
		return root
	}
	return filepath.Join(root, "."+name)
}

// listFolderDirs returns the folder names present on disk in a Maildir:
// INBOX (if the root is a Maildir) and every valid ".Name" subdirectory.
func listFolderDirs(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read maildir %s: %w", root, err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case n == "cur":
			names = append(names, FolderInbox)
		case len(n) > 1 && n[0] == '.' && n != ".." && e.IsDir():
			if c, err := CheckFolderName(n[1:]); err == nil && c != FolderInbox {
				names = append(names, c)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// makeMaildir creates cur, new and tmp under dir, fsyncing what it creates.
func makeMaildir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "tmp")); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create maildir: %w", err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil && !os.IsExist(err) {
			return fmt.Errorf("create maildir: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// readNames lists the file names of a Maildir subdirectory without stat.
func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// toCRLF returns b with every bare LF turned into CRLF (Maildirs written
// by other tools use LF; IMAP serves CRLF). It returns b itself when there
// is nothing to change.
func toCRLF(b []byte) []byte {
	n := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// headerOf returns the header block of a message (up to and including the
// blank line), or the whole message if it has no body.
func headerOf(b []byte) []byte {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return b[:i+4]
	}
	return b
}

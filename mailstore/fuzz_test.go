package mailstore

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCheckFolderName: a folder name from an IMAP client never leads
// outside the user's Maildir, and every accepted name is one directory
// directly in it.
func FuzzCheckFolderName(f *testing.F) {
	for _, s := range []string{"INBOX", "Sent", "Work.2026", "../bob", "a/b", "..", "#shared", "Ünï.côde"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c, err := CheckFolderName(name)
		if err != nil {
			return
		}
		root := "/data/mail/acme.example/alice"
		dir := folderDir(root, c)
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") || strings.ContainsRune(rel, filepath.Separator) {
			t.Fatalf("name %q -> %q escapes or nests (%q)", name, dir, rel)
		}
		if c != FolderInbox && (rel == "." || !strings.HasPrefix(rel, ".") || rel == "..") {
			t.Fatalf("name %q -> directory %q", name, rel)
		}
		if c2, err := CheckFolderName(c); err != nil || c2 != c {
			t.Fatalf("canonical form %q not stable: %q %v", c, c2, err)
		}
	})
}

// FuzzMessageFile: whatever another tool leaves in a Maildir (file name and
// content) is indexed without panicking, and the index record round-trips.
func FuzzMessageFile(f *testing.F) {
	f.Add("1700000001.M1P1.host,S=42:2,FS", []byte("Subject: hi\nFrom: a@b.example\n\nbody\n"))
	f.Add("x", []byte("From: \"Q\" <q@x>, broken <\r\nTo: undisclosed-recipients:;\r\n\r\n"))
	f.Add("1.2.3:2,", []byte(""))
	f.Fuzz(func(t *testing.T, name string, content []byte) {
		base, info := splitName(name)
		flags := infoFlags(info)
		sizeFromName(base)
		body := toCRLF(content)
		if bytes.Count(body, []byte("\n")) != bytes.Count(body, []byte("\r\n")) {
			t.Fatalf("toCRLF left a bare LF")
		}
		env := encodeEnvelope(headerOf(body))
		if decodeEnvelope(env) == nil {
			t.Fatalf("envelope of %q does not decode", content)
		}
		if base == "" {
			return
		}
		m := &message{uid: 7, base: base, inCur: true, flags: flags, size: int64(len(body)), env: env}
		got, err := decodeMessage(7, m.encode())
		if err != nil || got.base != m.base || got.flags != m.flags || got.size != m.size || !bytes.Equal(got.env, env) {
			t.Fatalf("record round trip: %+v %v", got, err)
		}
	})
}

// FuzzIndexRecord: a damaged index record is refused, never a panic.
func FuzzIndexRecord(f *testing.F) {
	m := &message{uid: 1, base: "b", flags: flagSeen, keywords: []string{"$x"}, size: 10, env: encodeEnvelope([]byte("Subject: s\r\n\r\n"))}
	f.Add(m.encode())
	f.Add(folderMeta{UIDValidity: 5, UIDNext: 9, Count: 2, Bytes: 100, Subscribed: true}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeMessage(1, b); err == nil {
			decodeEnvelope(m.env)
			m.flagList()
		}
		decodeMeta(b)
		decodeEnvelope(b)
	})
}

func TestHasField(t *testing.T) {
	raw := []byte("From: a@b\r\nX-Unindexed : needle\r\nSubject: x-campaign: no\r\n\tfolded\r\n\r\n")
	for key, want := range map[string]bool{"from": true, "X-UNINDEXED": true, "Subject": true, "X-Campaign": false, "Fro": false, "": false} {
		if got := hasField(raw, key); got != want {
			t.Errorf("hasField(%q) = %v, want %v", key, got, want)
		}
	}
}

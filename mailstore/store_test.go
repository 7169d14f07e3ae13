package mailstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fairway/tenant"
)

func TestDeliverIsMaildirAndRestartKeepsUIDs(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	ctx := context.Background()
	for i, subj := range []string{"one", "two", "three"} {
		if err := e.store.Deliver(ctx, "Alice@ACME.example", "", testMessage(subj, 100*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(e.dataDir, "mail", "acme.example", "alice")
	ents, err := os.ReadDir(filepath.Join(root, "new"))
	if err != nil || len(ents) != 3 {
		t.Fatalf("new/ holds %d files (%v), want 3", len(ents), err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ not empty: %d files", len(tmp))
	}
	f := e.loaded("alice@acme.example", FolderInbox)
	before := uids(f)
	uidv := f.meta.UIDValidity
	if len(before) != 3 || before[1] == "" || before[3] == "" {
		t.Fatalf("uids %v, want 1..3", before)
	}
	e.restart()
	f = e.loaded("alice@acme.example", FolderInbox)
	after := uids(f)
	if f.meta.UIDValidity != uidv || f.meta.UIDNext != 4 {
		t.Fatalf("after restart uidvalidity %d uidnext %d, want %d and 4", f.meta.UIDValidity, f.meta.UIDNext, uidv)
	}
	for uid, base := range before {
		if after[uid] != base {
			t.Fatalf("uid %d was %s, after restart %q", uid, base, after[uid])
		}
	}
	if err := e.store.Deliver(ctx, "alice@acme.example", FolderInbox, testMessage("four", 50)); err != nil {
		t.Fatal(err)
	}
	if got := uids(e.loaded("alice@acme.example", FolderInbox)); len(got) != 4 || got[4] == "" {
		t.Fatalf("after a fourth delivery: %v", got)
	}
}

func TestDeliverRefusals(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	ctx := context.Background()
	for _, c := range []struct {
		addr, folder string
		want         error
	}{
		{"nobody@acme.example", "", ErrNoMailbox},
		{"alice", "", ErrNoMailbox},
		{"alice@unknown.example", "", ErrNoMailbox},
		{"alice@acme.example", "../bob", ErrBadFolder},
		{"alice@acme.example", "/etc", ErrBadFolder},
		{"alice@acme.example", "a..b", ErrBadFolder},
	} {
		if err := e.store.Deliver(ctx, c.addr, c.folder, testMessage("x", 10)); !errors.Is(err, c.want) {
			t.Errorf("Deliver(%q, %q) = %v, want %v", c.addr, c.folder, err, c.want)
		}
	}
}

func TestQuarantineCreatedOnDemand(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	if err := e.store.Deliver(context.Background(), "bob@acme.example", FolderQuarantine, testMessage("q", 10)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.dataDir, "mail", "acme.example", "bob", ".Quarantine", "new")
	if ents, err := os.ReadDir(p); err != nil || len(ents) != 1 {
		t.Fatalf("%s: %d files, %v", p, len(ents), err)
	}
}

// writeFile writes a message file as another tool would (LF line ends).
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func handMaildir(t *testing.T, root string) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp", ".Archive/cur", ".Archive/new", ".Archive/tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "cur", "1700000001.M1P1.other:2,S"), "Subject: seen\nFrom: a@b.example\n\nhello\n")
	writeFile(t, filepath.Join(root, "cur", "1700000002.M2P1.other:2,FR"), "Subject: flagged\n\nbody\n")
	writeFile(t, filepath.Join(root, "new", "1700000003.M3P1.other"), "Subject: new\n\nfresh\n")
	writeFile(t, filepath.Join(root, ".Archive", "cur", "1600000000.M1P1.other:2,S"), "Subject: old\n\nold\n")
}

func TestHandWrittenMaildirPickedUpWithStableUIDs(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	root := filepath.Join(e.dataDir, "mail", "acme.example", "alice")
	handMaildir(t, root)
	e.restart() // Open indexes Maildirs it does not know

	if u, err := e.store.MailboxUsage("alice@acme.example"); err != nil || u == 0 {
		t.Fatalf("usage %d, %v: hand-written files not counted", u, err)
	}
	f := e.loaded("alice@acme.example", FolderInbox)
	first := uids(f)
	want := map[uint32]string{1: "1700000001.M1P1.other", 2: "1700000002.M2P1.other", 3: "1700000003.M3P1.other"}
	for uid, base := range want {
		if first[uid] != base {
			t.Fatalf("uids %v, want %v", first, want)
		}
	}
	f.mu.Lock()
	if f.msgs[0].flags != flagSeen || f.msgs[1].flags != flagFlagged|flagReplied || f.msgs[2].flags != 0 {
		t.Errorf("flags %b %b %b", f.msgs[0].flags, f.msgs[1].flags, f.msgs[2].flags)
	}
	// "Subject: seen\nFrom: a@b.example\n\nhello\n" is 5 lines: +4 CRs.
	if f.msgs[0].size != int64(len("Subject: seen\nFrom: a@b.example\n\nhello\n")+4) {
		t.Errorf("size %d: not the CRLF size", f.msgs[0].size)
	}
	if env := decodeEnvelope(f.msgs[0].env); env == nil || env.Subject != "seen" || len(env.From) != 1 {
		t.Errorf("envelope %+v", env)
	}
	f.mu.Unlock()

	// Another tool adds a file, flags one and deletes one.
	writeFile(t, filepath.Join(root, "new", "1700000004.M4P1.other"), "Subject: later\n\nx\n")
	if err := os.Rename(filepath.Join(root, "new", "1700000003.M3P1.other"), filepath.Join(root, "cur", "1700000003.M3P1.other:2,S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "cur", "1700000001.M1P1.other:2,S")); err != nil {
		t.Fatal(err)
	}
	e.restart()
	f = e.loaded("alice@acme.example", FolderInbox)
	got := uids(f)
	want = map[uint32]string{2: "1700000002.M2P1.other", 3: "1700000003.M3P1.other", 4: "1700000004.M4P1.other"}
	if len(got) != len(want) {
		t.Fatalf("uids %v, want %v", got, want)
	}
	for uid, base := range want {
		if got[uid] != base {
			t.Fatalf("uids %v, want %v", got, want)
		}
	}
	f.mu.Lock()
	if f.msgs[1].flags != flagSeen {
		t.Errorf("flag set by another tool not taken: %b", f.msgs[1].flags)
	}
	f.mu.Unlock()
	if a := uids(e.loaded("alice@acme.example", "Archive")); len(a) != 1 || a[1] != "1600000000.M1P1.other" {
		t.Errorf("Archive: %v", a)
	}
}

func TestIndexLostIsRebuiltWithNewUIDValidity(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	ctx := context.Background()
	for _, s := range []string{"a", "b", "c"} {
		if err := e.store.Deliver(ctx, "alice@acme.example", "", testMessage(s, 200)); err != nil {
			t.Fatal(err)
		}
	}
	f := e.loaded("alice@acme.example", FolderInbox)
	old := f.meta.UIDValidity
	oldUsage, _ := e.store.MailboxUsage("alice@acme.example")
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.dataDir, "mail", "index")); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(1) // (the same second: UIDVALIDITY must still change)
	e.open()
	f = e.loaded("alice@acme.example", FolderInbox)
	if f.meta.UIDValidity == old {
		t.Fatalf("index rebuilt with the old UIDVALIDITY %d", old)
	}
	if got := uids(f); len(got) != 3 {
		t.Fatalf("rebuilt index has %v", got)
	}
	if u, _ := e.store.MailboxUsage("alice@acme.example"); u != oldUsage {
		t.Fatalf("usage after rebuild %d, want %d", u, oldUsage)
	}
}

func TestUIDValidityNeverReused(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	mb, _ := e.store.mailbox("alice@acme.example")
	seen := map[uint32]bool{}
	for i := 0; i < 5; i++ {
		f, err := mb.folder("Work", true)
		if err != nil {
			t.Fatal(err)
		}
		if seen[f.meta.UIDValidity] {
			t.Fatalf("UIDVALIDITY %d reused after delete and create", f.meta.UIDValidity)
		}
		seen[f.meta.UIDValidity] = true
		if err := mb.deleteFolder("Work"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQuotas(t *testing.T) {
	e := newEnv(t, tenant.Policy{MailboxQuota: 10_000, TenantQuota: 15_000})
	ctx := context.Background()
	msg := testMessage("q", 4000)
	n := int64(len(msg))
	for i := 0; i < 2; i++ {
		if err := e.store.Deliver(ctx, "alice@acme.example", "", msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.CheckQuota("alice@acme.example", n); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("CheckQuota over the mailbox quota: %v", err)
	}
	if err := e.store.CheckQuota("alice@acme.example", 100); err != nil {
		t.Fatalf("CheckQuota within: %v", err)
	}
	if err := e.store.Deliver(ctx, "alice@acme.example", "", msg); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("Deliver over the mailbox quota: %v", err)
	}
	// bob has room in his mailbox, but the tenant pool is at 2n+n > 15000
	// after one more.
	if err := e.store.Deliver(ctx, "bob@acme.example", "", msg); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Deliver(ctx, "bob@acme.example", "", msg); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("Deliver over the tenant quota: %v", err)
	}
	// The other tenant is not affected.
	if err := e.store.Deliver(ctx, "carol@globex.example", "", msg); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if u, _ := e.store.MailboxUsage("alice@acme.example"); u != 2*n {
			t.Errorf("alice usage %d, want %d", u, 2*n)
		}
		if u, _ := e.store.TenantUsage("acme"); u != 3*n {
			t.Errorf("acme usage %d, want %d", u, 3*n)
		}
		if u, _ := e.store.TenantUsage("globex"); u != n {
			t.Errorf("globex usage %d, want %d", u, n)
		}
	}
	check()
	e.restart()
	check()
	// Expunging frees the space.
	f := e.loaded("alice@acme.example", FolderInbox)
	if _, err := f.expunge(nil, map[uint32]bool{1: true}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.store.MailboxUsage("alice@acme.example"); u != n {
		t.Errorf("alice usage after expunge %d, want %d", u, n)
	}
	if err := e.store.CheckQuota("alice@acme.example", n); err != nil {
		t.Errorf("after expunge: %v", err)
	}
}

func TestCheckFolderName(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"INBOX", "INBOX", true},
		{"inbox", "INBOX", true},
		{"Sent", "Sent", true},
		{"Work.2026", "Work.2026", true},
		{"Ünïcode", "Ünïcode", true},
		{"", "", false},
		{"..", "", false},
		{"../bob", "", false},
		{"a/b", "", false},
		{"/etc/passwd", "", false},
		{`a\b`, "", false},
		{".hidden", "", false},
		{"trailing.", "", false},
		{"a..b", "", false},
		{"INBOX.sub", "", false},
		{"#shared.x", "", false},
		{"~bob", "", false},
		{"new\x00", "", false},
		{"tab\tname", "", false},
		{"star*", "", false},
		{strings.Repeat("a", 201), "", false},
		{strings.Repeat("a.", 16) + "a", "", false},
	} {
		got, err := CheckFolderName(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("CheckFolderName(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadFolder) {
			t.Errorf("CheckFolderName(%q) error %v is not ErrBadFolder", c.in, err)
		}
	}
}

func TestMailboxDirConfinement(t *testing.T) {
	for _, c := range []struct {
		addr, want string
		ok         bool
	}{
		{"alice@acme.example", "/m/acme.example/alice", true},
		{"a/b@acme.example", "/m/acme.example/a%2Fb", true},
		{"..@acme.example", "", false},
		{"a@../x", "", false},
		{"a@x/y", "", false},
		{"a@", "", false},
		{"@x", "", false},
	} {
		got, err := mailboxDir("/m", c.addr)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("mailboxDir(%q) = %q, %v; want %q", c.addr, got, err, c.want)
		}
	}
}

// A symlink planted in a Maildir (to another user's mail or a system file)
// is never indexed nor served.
func TestSymlinkInMaildirNotServed(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	if err := e.store.Deliver(context.Background(), "carol@globex.example", "", testMessage("carols", 100)); err != nil {
		t.Fatal(err)
	}
	carolNew := filepath.Join(e.dataDir, "mail", "globex.example", "carol", "new")
	ents, _ := os.ReadDir(carolNew)
	if len(ents) != 1 {
		t.Fatalf("carol has %d files", len(ents))
	}
	root := filepath.Join(e.dataDir, "mail", "acme.example", "alice")
	handMaildir(t, root)
	if err := os.Symlink(filepath.Join(carolNew, ents[0].Name()), filepath.Join(root, "cur", "1800000000.M9P9.evil:2,S")); err != nil {
		t.Fatal(err)
	}
	e.restart()
	f := e.loaded("alice@acme.example", FolderInbox)
	for _, base := range uids(f) {
		if strings.Contains(base, "evil") {
			t.Fatalf("symlink indexed as %s", base)
		}
	}
}

// Concurrent deliveries to one folder get distinct, dense UIDs and all
// survive a restart.
func TestConcurrentDeliveries(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	const workers, each = 4, 10
	errs := make(chan error, workers*each)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < each; i++ {
				errs <- e.store.Deliver(context.Background(), "alice@acme.example", "", testMessage(fmt.Sprintf("w%d-%d", w, i), 200))
			}
		}(w)
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.restart()
	got := uids(e.loaded("alice@acme.example", FolderInbox))
	if len(got) != workers*each {
		t.Fatalf("%d messages after restart, want %d", len(got), workers*each)
	}
	for uid := uint32(1); uid <= workers*each; uid++ {
		if got[uid] == "" {
			t.Fatalf("UID %d missing: %v", uid, got)
		}
	}
}

package mailstore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"testing"

	"fairway/tenant"
)

func TestExportImportDomain(t *testing.T) {
	src := newEnv(t, tenant.Policy{})
	ctx := context.Background()
	for _, c := range []struct{ addr, folder, subj string }{
		{"alice@acme.example", "", "a1"}, {"alice@acme.example", "", "a2"},
		{"alice@acme.example", "Work.2026", "w1"}, {"bob@acme.example", FolderQuarantine, "q1"},
		{"carol@globex.example", "", "not exported"},
	} {
		if err := src.store.Deliver(ctx, c.addr, c.folder, testMessage(c.subj, 500)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := src.store.ExportDomain(tw, "acme.example"); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("not exported")) {
		t.Fatal("another domain's mail in the export")
	}

	dst := newEnv(t, tenant.Policy{})
	if err := dst.store.ImportDomain(tar.NewReader(bytes.NewReader(buf.Bytes())), "acme.example"); err != nil {
		t.Fatal(err)
	}
	if got := len(uids(dst.loaded("alice@acme.example", FolderInbox))); got != 2 {
		t.Errorf("alice INBOX: %d messages after import, want 2", got)
	}
	if got := len(uids(dst.loaded("alice@acme.example", "Work.2026"))); got != 1 {
		t.Errorf("alice Work.2026: %d messages after import, want 1", got)
	}
	if got := len(uids(dst.loaded("bob@acme.example", FolderQuarantine))); got != 1 {
		t.Errorf("bob Quarantine: %d messages after import, want 1", got)
	}
	srcUse, _ := src.store.TenantUsage("acme")
	if u, _ := dst.store.TenantUsage("acme"); u != srcUse || u == 0 {
		t.Errorf("tenant usage after import %d, want %d", u, srcUse)
	}
	// A second import over existing mail is refused.
	if err := dst.store.ImportDomain(tar.NewReader(bytes.NewReader(buf.Bytes())), "acme.example"); err == nil {
		t.Error("import over existing mailboxes accepted")
	}
}

func TestImportRefusesEscapes(t *testing.T) {
	e := newEnv(t, tenant.Policy{})
	for _, name := range []string{
		"../etc/passwd", "acme.example/../globex.example/carol/cur/x", "/acme.example/alice/cur/x",
		"acme.example/alice/../../x", "globex.example/carol/cur/x", "acme.example/alice/./cur/x",
		"acme.example/nobody/cur/x", "acme.example/alice/tmp/x", `acme.example\alice\cur\x`,
		"acme.example/alice/..deleted-1/cur/x",
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: 3, Mode: 0o600})
		tw.Write([]byte("x\r\n"))
		tw.Close()
		err := e.store.ImportDomain(tar.NewReader(&buf), "acme.example")
		if err == nil {
			t.Errorf("import of %q accepted", name)
		} else if !errors.Is(err, ErrBadFolder) && !errors.Is(err, ErrNoMailbox) {
			t.Errorf("import of %q: %v", name, err)
		}
	}
}

// FuzzImportPath: an archive entry name never maps outside the domain's
// directory of the store.
func FuzzImportPath(f *testing.F) {
	for _, s := range []string{"acme.example/alice/cur/x", "../x", "acme.example/alice/.Work/new/y", "acme.example/a%2Fb/cur/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		local, rest, err := importPath(name, "acme.example")
		if err != nil {
			return
		}
		for _, p := range []string{local, rest} {
			for _, el := range bytes.Split([]byte(p), []byte("/")) {
				if string(el) == ".." || (p == local && len(el) == 0) {
					t.Fatalf("%q -> %q %q", name, local, rest)
				}
			}
		}
		if bytes.ContainsRune([]byte(local), '/') {
			t.Fatalf("%q: local part %q spans directories", name, local)
		}
	})
}

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"fairway/cmd/fairway/adminapi"
	"fairway/fairq"
	"fairway/mailstore"
	"fairway/tenant"
)

// exportDaemon is a daemon's directory, mail store and admin API on the
// admin socket of its data dir, as serve wires them, and the config file
// that points the CLI at it.
type exportDaemon struct {
	config string
	data   string
	dir    *tenant.Directory
	store  *mailstore.Store
}

func startExportDaemon(t *testing.T) *exportDaemon {
	t.Helper()
	base, err := os.MkdirTemp("", "fwex") // short: a unix socket path is at most 104 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	d := &exportDaemon{data: filepath.Join(base, "data")}
	if d.dir, err = tenant.Open(d.data, tenant.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.dir.Close() })
	if d.store, err = mailstore.Open(d.data, mailstore.Options{Directory: d.dir}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.store.Close() })
	q, err := fairq.Open(filepath.Join(d.data, "queue"), fairq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	api := adminapi.New(adminapi.Config{Directory: d.dir, Tokens: d.dir, Keys: d.dir, Queue: q, Usage: d.store, Logger: slog.New(slog.DiscardHandler)})
	api.HandleExport(d.data, d.dir)
	srv, err := adminapi.Listen(api, filepath.Join(d.data, "admin.sock"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	d.config = filepath.Join(base, "fairway.toml")
	if err := os.WriteFile(d.config, []byte("hostname = \"mx.example.net\"\ndata_dir = \""+d.data+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// cli runs `fairway --config C tenant ARGS...` with stdin.
func (d *exportDaemon) cli(t *testing.T, stdin io.Reader, args ...string) (stdout []byte, err error) {
	t.Helper()
	root := &cobra.Command{Use: "fairway", SilenceErrors: true, SilenceUsage: true}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	o := &cliOptions{configPath: root.PersistentFlags().String("config", "", ""), json: root.PersistentFlags().Bool("json", false, "")}
	root.AddCommand(group("tenant", "tenants", tenantExportCmd(o), tenantImportCmd(o)))
	root.SetArgs(append([]string{"--config", d.config, "tenant"}, args...))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	if stdin != nil {
		root.SetIn(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.Bytes(), err
}

func TestTenantExportImportCLI(t *testing.T) {
	a := startExportDaemon(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.dir.AddTenant("acme", tenant.Policy{Weight: 2}))
	must(a.dir.AddDomain("example.com", "acme"))
	must(a.dir.AddMailbox("alice@example.com", "correct horse battery staple"))
	must(a.store.Deliver(context.Background(), "alice@example.com", "", []byte("Subject: hi\r\n\r\nmoved by the CLI\r\n")))

	// To a file: 0600, a whole tar, the archive first.
	file := filepath.Join(t.TempDir(), "acme.tar")
	out, err := a.cli(t, nil, "export", "acme", "-o", file)
	if err != nil || !strings.Contains(string(out), "tenant acme exported to "+file) {
		t.Fatalf("export -o: %q %v", out, err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", fi, err)
	}
	tarBytes, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	hdr, err := tr.Next()
	if err != nil || hdr.Name != adminapi.ArchiveJSONName {
		t.Fatalf("first member: %v %v", hdr, err)
	}
	// The tar is a plain tar: the system's tar lists it.
	if tarCmd, err := exec.LookPath("tar"); err == nil {
		listing, err := exec.Command(tarCmd, "-tf", file).CombinedOutput()
		if err != nil || !strings.Contains(string(listing), adminapi.ArchiveJSONName) || !strings.Contains(string(listing), "mail/example.com/alice/new/") {
			t.Errorf("tar -tf: %v\n%s", err, listing)
		}
	}
	// To standard output: the same members.
	stdout, err := a.cli(t, nil, "export", "acme")
	if err != nil || !bytes.HasPrefix(stdout, tarBytes[:100]) {
		t.Fatalf("export to stdout: %d bytes, %v", len(stdout), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
		t.Errorf("files beside the export: %v", entries)
	}

	// An unknown tenant: the daemon's refusal, and no file.
	var apiErr *adminapi.Error
	if _, err := a.cli(t, nil, "export", "nobody", "-o", file+"2"); !errors.As(err, &apiErr) || apiErr.Code != adminapi.CodeNotFound {
		t.Errorf("export of an unknown tenant: %v", err)
	}
	if _, err := os.Stat(file + "2"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused export left a file: %v", err)
	}

	// Import on another server from standard input, then from the file: the
	// second is a conflict.
	b := startExportDaemon(t)
	out, err = b.cli(t, bytes.NewReader(stdout), "import", "-")
	if err != nil || !strings.Contains(string(out), "tenant acme imported: domains example.com; 1 mailbox(es)") {
		t.Fatalf("import -: %q %v", out, err)
	}
	if _, err := b.dir.Authenticate("alice@example.com", "correct horse battery staple"); err != nil {
		t.Errorf("alice on B: %v", err)
	}
	if used, err := b.store.MailboxUsage("alice@example.com"); err != nil || used == 0 {
		t.Errorf("alice's mail on B: %d %v", used, err)
	}
	if _, err := b.cli(t, nil, "import", file); !errors.As(err, &apiErr) || apiErr.Code != adminapi.CodeExists {
		t.Errorf("second import: %v", err)
	}

	// --json: the daemon's answer as it is.
	c := startExportDaemon(t)
	out, err = c.cli(t, nil, "--json", "import", file)
	var res adminapi.ImportedTenant
	if err != nil || json.Unmarshal(out, &res) != nil || res.Tenant != "acme" || res.Files < 1 {
		t.Errorf("import --json: %s %v", out, err)
	}
	var ue *usageError
	if _, err := c.cli(t, nil, "import"); !errors.As(err, &ue) {
		t.Errorf("import without a file: %v", err)
	}
}

func TestWriteFileSyncedLeavesNothingOnFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.tar")
	_, err := writeFileSynced(path, io.MultiReader(strings.NewReader("partial"), errReader{}))
	if err == nil {
		t.Fatal("a failed stream wrote a file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

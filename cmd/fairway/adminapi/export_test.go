package adminapi

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"fairway/fairq"
	"fairway/mailstore"
	"fairway/tenant"
	"fairway/tenant/dnstest"
)

const movePassword = "correct horse battery staple"

// mailServer is one server's directory, mail store and queue under a data
// dir, with the admin API (export routes included) over httptest.
type mailServer struct {
	t     *testing.T
	data  string
	dir   *tenant.Directory
	store *mailstore.Store
	http  *httptest.Server
}

func startMailServer(t *testing.T, limits archiveLimits) *mailServer {
	t.Helper()
	dns := dnstest.Start(t)
	s := &mailServer{t: t, data: t.TempDir()}
	var err error
	s.dir, err = tenant.Open(s.data, tenant.Options{Resolver: tenant.NewDNSResolver(dns.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.dir.Close() })
	s.store, err = mailstore.Open(s.data, mailstore.Options{Directory: s.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	q, err := fairq.Open(filepath.Join(s.data, "queue"), fairq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	api := New(Config{Directory: s.dir, Tokens: s.dir, Keys: s.dir, Queue: q, Usage: s.store})
	api.handleExport(s.data, s.dir, limits)
	s.http = httptest.NewServer(api.SocketHandler())
	t.Cleanup(s.http.Close)
	return s
}

func (s *mailServer) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

// export fetches the tenant's tar.
func (s *mailServer) export(name string) (*http.Response, []byte) {
	s.t.Helper()
	resp, err := s.http.Client().Get(s.http.URL + "/v1/tenants/" + name + "/export")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp, body
}

// importTar posts a tar and returns the status and the decoded answer.
func (s *mailServer) importTar(body []byte) (int, ImportedTenant, *Error) {
	s.t.Helper()
	resp, err := s.http.Client().Post(s.http.URL+"/v1/tenants/import", "application/x-tar", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		e := &Error{}
		if err := json.Unmarshal(raw, e); err != nil {
			s.t.Fatalf("import: %s: %s", resp.Status, raw)
		}
		return resp.StatusCode, ImportedTenant{}, e
	}
	var res ImportedTenant
	if err := json.Unmarshal(raw, &res); err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, res, nil
}

// mailEntries lists what is under data/mail other than the store's index.
func (s *mailServer) mailEntries() []string {
	s.t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.data, "mail"))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "index" {
			out = append(out, e.Name())
		}
	}
	return out
}

// fillSource makes tenant acme (example.com: alice with mail in INBOX and
// Work, an alias) and tenant other with mail of its own.
func fillSource(s *mailServer) {
	s.must(s.dir.AddTenant("acme", tenant.Policy{Weight: 4, MailboxQuota: 1 << 20}))
	s.must(s.dir.AddDomain("example.com", "acme"))
	s.must(s.dir.AddMailbox("alice@example.com", movePassword))
	s.must(s.dir.AddAlias("info@example.com", "alice@example.com"))
	s.must(s.dir.AddTenant("other", tenant.Policy{}))
	s.must(s.dir.AddDomain("other.example", "other"))
	s.must(s.dir.AddMailbox("carol@other.example", movePassword))
	ctx := context.Background()
	s.must(s.store.Deliver(ctx, "alice@example.com", "", []byte("From: bob@example.net\r\nSubject: before the move\r\n\r\nhello from server A\r\n")))
	s.must(s.store.Deliver(ctx, "alice@example.com", "Work", []byte("Subject: filed\r\n\r\nwork mail\r\n")))
	s.must(s.store.Deliver(ctx, "carol@other.example", "", []byte("Subject: not acme's\r\n\r\nsecret\r\n")))
}

func tarNames(t *testing.T, body []byte) []string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(body))
	var names []string
	for range 100000 {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("export is not a whole tar: %v", err)
		}
		names = append(names, hdr.Name)
	}
	t.Fatal("tar without end")
	return nil
}

func TestTenantMoveBetweenServers(t *testing.T) {
	a := startMailServer(t, defaultArchiveLimits)
	fillSource(a)
	resp, body := a.export("acme")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("export: %s %s: %.200s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	names := tarNames(t, body)
	if len(names) == 0 || names[0] != ArchiveJSONName {
		t.Fatalf("first member %v, want %s", names, ArchiveJSONName)
	}
	var files int
	for _, n := range names[1:] {
		if !strings.HasPrefix(n, "mail/example.com/") {
			t.Errorf("member %q outside the tenant's mail", n)
		}
		if (strings.Contains(n, "/new/") || strings.Contains(n, "/cur/")) && !strings.HasSuffix(n, "/") {
			files++
		}
	}
	if files != 2 {
		t.Errorf("%d message files in the export, want 2: %v", files, names)
	}
	if _, body := a.export("nobody"); !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("export of an unknown tenant: %s", body)
	}

	b := startMailServer(t, defaultArchiveLimits) // running: its store is open before the import
	status, res, apiErr := b.importTar(body)
	if status != http.StatusCreated {
		t.Fatalf("import: %d %+v", status, apiErr)
	}
	if res.Tenant != "acme" || !slices.Equal(res.Domains, []string{"example.com"}) || res.Mailboxes != 1 || res.Aliases != 1 || res.Files < 2 {
		t.Errorf("import answer %+v", res)
	}
	// The store counts the moved mail at once, not from first use.
	if used, err := b.store.TenantUsage("acme"); err != nil || used == 0 {
		t.Errorf("acme's usage on B right after the import: %d %v", used, err)
	}
	if _, err := b.dir.Authenticate("alice@example.com", movePassword); err != nil {
		t.Errorf("alice's password on B: %v", err)
	}
	if targets, ok := b.dir.AliasTargets("info@example.com"); !ok || !slices.Equal(targets, []string{"alice@example.com"}) {
		t.Errorf("alias on B: %v %v", targets, ok)
	}
	if p, _ := b.dir.TenantPolicy("acme"); p.Weight != 4 || p.MailboxQuota != 1<<20 {
		t.Errorf("policy on B: %+v", p)
	}
	if _, ok := b.dir.DomainTenant("other.example"); ok {
		t.Error("another tenant's domain came along")
	}
	if used, err := b.store.MailboxUsage("alice@example.com"); err != nil || used == 0 {
		t.Errorf("alice's usage on B: %d %v", used, err)
	}

	// Read the moved mail over IMAP from B's running store.
	c := dialIMAP(t, b.store)
	if err := c.Login("alice@example.com", movePassword).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("INBOX on B: %+v %v", sel, err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].FindBodySection(section)), "hello from server A") {
		t.Fatalf("fetch on B: %v %v", msgs, err)
	}
	st, err := c.Status("Work", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("Work on B: %+v %v", st, err)
	}
	// New mail lands next to the moved mail.
	b.must(b.store.Deliver(context.Background(), "alice@example.com", "", []byte("Subject: after\r\n\r\non B\r\n")))
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 2 {
		t.Errorf("INBOX after a delivery on B: %+v %v", sel, err)
	}

	// A second import of the same archive is refused, and leaves B as it was.
	before := b.mailEntries()
	if status, _, apiErr := b.importTar(body); status != http.StatusConflict || apiErr.Code != CodeExists {
		t.Errorf("second import: %d %+v", status, apiErr)
	}
	if after := b.mailEntries(); !slices.Equal(before, after) {
		t.Errorf("mail directory changed by a refused import: %v → %v", before, after)
	}
}

func dialIMAP(t *testing.T, store *mailstore.Store) *imapclient.Client {
	t.Helper()
	srv, err := mailstore.NewIMAPServer(mailstore.IMAPOptions{Store: store, TLS: selfSignedTLS(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeImplicitTLS(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{
		TLSConfig: &tls.Config{InsecureSkipVerify: true}, Dialer: &net.Dialer{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// member is one tar member to build a hostile archive from.
type member struct {
	hdr  tar.Header
	body []byte
}

func buildTar(t *testing.T, members ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := m.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o600
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if len(m.body) > 0 {
			if _, err := tw.Write(m.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name string, body string) member {
	return member{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg}, body: []byte(body)}
}

func TestTenantImportRefusesHostileArchives(t *testing.T) {
	a := startMailServer(t, defaultArchiveLimits)
	fillSource(a)
	_, good := a.export("acme")
	arc, err := a.dir.ExportTenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(arc)
	jsonMember := reg(ArchiveJSONName, string(js))
	tampered := *arc
	tampered.Version = 99
	badJS, _ := json.Marshal(&tampered)
	const msg = "mail/example.com/alice/new/1.M1P1Q1.host,S=5"

	b := startMailServer(t, archiveLimits{jsonBytes: 1 << 20, fileBytes: 1024, totalBytes: 1500, entries: 50})
	many := []member{jsonMember}
	for i := range 60 {
		many = append(many, member{hdr: tar.Header{Name: "mail/example.com/d" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "/", Typeflag: tar.TypeDir}})
	}
	for _, tc := range []struct {
		name    string
		archive []byte
		status  int
	}{
		{"parent directory", buildTar(t, jsonMember, reg(msg, "hello"), reg("mail/example.com/../../evil", "x")), 400},
		{"parent directory inside", buildTar(t, jsonMember, reg("mail/example.com/alice/../../other.example/x", "x")), 400},
		{"absolute path", buildTar(t, jsonMember, reg("/mail/example.com/alice/new/x", "x")), 400},
		{"symlink", buildTar(t, jsonMember, member{hdr: tar.Header{Name: "mail/example.com/alice/cur/x", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}), 400},
		{"hard link", buildTar(t, jsonMember, reg(msg, "hello"), member{hdr: tar.Header{Name: "mail/example.com/alice/cur/y", Typeflag: tar.TypeLink, Linkname: msg}}), 400},
		{"device", buildTar(t, jsonMember, member{hdr: tar.Header{Name: "mail/example.com/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}), 400},
		{"fifo", buildTar(t, jsonMember, member{hdr: tar.Header{Name: "mail/example.com/pipe", Typeflag: tar.TypeFifo}}), 400},
		{"domain not in the archive", buildTar(t, jsonMember, reg("mail/other.example/carol/new/x", "x")), 400},
		{"outside mail", buildTar(t, jsonMember, reg("dkim/example.com/x.pem", "x")), 400},
		{"domain directory as a file", buildTar(t, jsonMember, reg("mail/example.com", "x")), 400},
		{"dot path", buildTar(t, jsonMember, reg("mail/example.com/./alice/new/x", "x")), 400},
		{"file over the limit", buildTar(t, jsonMember, reg(msg, strings.Repeat("x", 1100))), 413},
		{"files together over the limit", buildTar(t, jsonMember, reg(msg, strings.Repeat("x", 1000)), reg(msg+"2", strings.Repeat("y", 1000))), 413},
		{"too many members", buildTar(t, many...), 413},
		{"same file twice", buildTar(t, jsonMember, reg(msg, "hello"), reg(msg, "again")), 400},
		{"file then directory of the same name", buildTar(t, jsonMember, reg(msg, "hello"), reg(msg+"/x", "x")), 400},
		{"json not first", buildTar(t, reg(msg, "hello"), jsonMember), 400},
		{"json twice", buildTar(t, jsonMember, jsonMember), 400},
		{"unknown archive version", buildTar(t, reg(ArchiveJSONName, string(badJS)), reg(msg, "hello")), 400},
		{"json with unknown field", buildTar(t, reg(ArchiveJSONName, `{"version":1,"surprise":true}`)), 400},
		{"not a tar", []byte("this is not a tar file at all, just text that goes on for a while......"), 400},
		{"cut short at a member boundary", good[:len(good)/2], 400},
		{"cut short inside a member", good[:len(good)/2+100], 400},
		{"empty", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, apiErr := b.importTar(tc.archive)
			if status != tc.status || apiErr == nil || apiErr.Code != CodeInvalid {
				t.Errorf("import: %d %+v, want %d invalid", status, apiErr, tc.status)
			}
			if got := b.mailEntries(); len(got) != 0 {
				t.Errorf("written under mail/ by a refused import: %v", got)
			}
			if ts := b.dir.Tenants(); len(ts) != 0 {
				t.Errorf("tenants after a refused import: %v", ts)
			}
			if entries, _ := os.ReadDir(filepath.Join(b.data, "dkim")); len(entries) != 0 {
				t.Errorf("key files after a refused import: %v", entries)
			}
		})
	}
	// The same server takes a sound archive: the refusals were the members'.
	if status, _, apiErr := b.importTar(buildTar(t, jsonMember, reg(msg, "hello"))); status != http.StatusCreated {
		t.Fatalf("sound archive: %d %+v", status, apiErr)
	}
	if got, err := os.ReadFile(filepath.Join(b.data, filepath.FromSlash(msg))); err != nil || string(got) != "hello" {
		t.Errorf("imported file: %q %v", got, err)
	}
}

// TestTenantImportRollsBackMail: a directory refusal after the mail is in
// place (a domain taken meanwhile) removes the mail again.
func TestTenantImportRollsBackMail(t *testing.T) {
	a := startMailServer(t, defaultArchiveLimits)
	fillSource(a)
	_, body := a.export("acme")
	b := startMailServer(t, defaultArchiveLimits)
	h := &exportHandlers{api: nil, mailDir: filepath.Join(b.data, "mail"), dir: racingDirectory{b.dir}, limits: defaultArchiveLimits, log: slog.New(slog.DiscardHandler)}
	rec := httptest.NewRecorder()
	h.importTar(rec, httptest.NewRequest(http.MethodPost, "/v1/tenants/import", bytes.NewReader(body)))
	if rec.Code != http.StatusConflict {
		t.Fatalf("import racing a domain add: %d %s", rec.Code, rec.Body)
	}
	if got := b.mailEntries(); len(got) != 0 {
		t.Errorf("mail left after the directory refused the import: %v", got)
	}
}

// racingDirectory passes CheckImport, then another tenant takes the domain
// before ImportTenant: the real directory refuses, as it would in a race.
type racingDirectory struct{ *tenant.Directory }

func (r racingDirectory) ImportTenant(a *tenant.TenantArchive) error {
	if err := r.AddTenant("racer", tenant.Policy{}); err != nil {
		return err
	}
	if err := r.AddDomain(a.Domains[0].Name, "racer"); err != nil {
		return err
	}
	return r.Directory.ImportTenant(a)
}

func TestTenantExportRefusesSymlinks(t *testing.T) {
	a := startMailServer(t, defaultArchiveLimits)
	fillSource(a)
	link := filepath.Join(a.data, "mail", "example.com", "alice", "cur", "passwd")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	resp, body := a.export("acme")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "symbolic link") {
		t.Errorf("export with a symlink in a Maildir: %s %s", resp.Status, body)
	}
	// A socket is not mail: skipped, not refused.
	os.Remove(link)
	sock := filepath.Join(a.data, "mail", "example.com", "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resp, body = a.export("acme")
	if resp.StatusCode != http.StatusOK || slices.Contains(tarNames(t, body), "mail/example.com/s") {
		t.Errorf("export with a socket: %s", resp.Status)
	}
}

func TestArchivePath(t *testing.T) {
	doms := []string{"example.com"}
	for _, ok := range []string{"mail/example.com/", "mail/example.com", "mail/example.com/alice/new/1.M1,S=3", "mail/example.com/alice/.Work/cur/x:2,S"} {
		if _, _, err := archivePath(ok, doms); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "mail/", "mail", "/mail/example.com/x", "mail/example.com/../x", "mail/example.com/a/../../x",
		"mail//example.com/x", "mail/example.com/./x", "mail/other.example/x", "mail/example.com\\..\\x", "mail/example.com/a\x00b",
		"mail/example.com/a\nb", "./mail/example.com/x", "dkim/example.com/x", "mail/example.com.evil/x", "mail/..", "C:/mail/example.com"} {
		if _, _, err := archivePath(bad, doms); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzArchivePath: whatever the name, an accepted one stays inside the
// domain's directory.
func FuzzArchivePath(f *testing.F) {
	for _, s := range []string{"mail/example.com/alice/new/x", "mail/example.com/../x", "/etc/passwd", "mail/example.com//x", "mail/example.com/a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		domain, rel, err := archivePath(name, []string{"example.com"})
		if err != nil {
			return
		}
		root := filepath.Join("/staging", domain)
		target := filepath.Join(root, filepath.FromSlash(rel))
		if domain != "example.com" || (target != root && !strings.HasPrefix(target, root+string(filepath.Separator))) {
			t.Fatalf("%q accepted as %q, outside %s", name, target, root)
		}
	})
}

// TestTenantImportRemovesStaleStaging: a staging directory left by an
// interrupted import is removed by the next one.
func TestTenantImportRemovesStaleStaging(t *testing.T) {
	a := startMailServer(t, defaultArchiveLimits)
	fillSource(a)
	_, body := a.export("acme")
	b := startMailServer(t, defaultArchiveLimits)
	stale := filepath.Join(b.data, "mail", stagingPrefix+"123", "example.com", "alice", "new")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if status, _, apiErr := b.importTar(body); status != http.StatusCreated {
		t.Fatalf("import: %d %+v", status, apiErr)
	}
	if got := b.mailEntries(); !slices.Equal(got, []string{"example.com"}) {
		t.Errorf("mail directory after the import: %v, want only example.com", got)
	}
}

// TestExportFollowsMessageMovedToCur: a message a client reads during the
// export moves from new/ to cur/; it is sent under its new name, once.
func TestExportFollowsMessageMovedToCur(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"new", "cur"} {
		if err := os.MkdirAll(filepath.Join(root, "example.com", "alice", d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	newPath := filepath.Join(root, "example.com", "alice", "new", "1.M1P1Q1.host,S=5")
	if err := os.WriteFile(newPath, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan, err := planMailDir(root, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	curPath := filepath.Join(root, "example.com", "alice", "cur", "1.M1P1Q1.host,S=5:2,S")
	if err := os.Rename(newPath, curPath); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	planned := map[string]bool{}
	st := exportStats{}
	for _, e := range plan {
		planned[e.abs] = true
	}
	for _, e := range plan {
		if err := writeEntry(tw, e, planned, &st); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, buf.Bytes())
	if !slices.Contains(names, "mail/example.com/alice/cur/1.M1P1Q1.host,S=5:2,S") || st.files != 1 || st.vanished != 0 {
		t.Errorf("members %v, stats %+v: want the message once, under cur/", names, st)
	}
	// A message expunged meanwhile is skipped and counted.
	if err := os.Remove(curPath); err != nil {
		t.Fatal(err)
	}
	st = exportStats{}
	for _, e := range plan {
		if err := writeEntry(tar.NewWriter(io.Discard), e, map[string]bool{}, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.files != 0 || st.vanished != 1 {
		t.Errorf("expunged during export: %+v", st)
	}
}

var _ ExportDirectory = (*tenant.Directory)(nil)

// BenchmarkTenantMove exports a tenant with 1000 messages of 4 KiB and
// imports it into a fresh server (the fresh server's setup not timed).
func BenchmarkTenantMove(b *testing.B) {
	a := startBenchServer(b)
	a.must(a.dir.AddTenant("acme", tenant.Policy{}))
	a.must(a.dir.AddDomain("example.com", "acme"))
	a.must(a.dir.AddMailbox("alice@example.com", movePassword))
	msg := []byte("Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 64))
	for range 1000 {
		a.must(a.store.Deliver(context.Background(), "alice@example.com", "", msg))
	}
	var size int64
	for b.Loop() {
		resp, err := a.http.Client().Get(a.http.URL + "/v1/tenants/acme/export")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status, err)
		}
		size = int64(len(body))
		b.StopTimer()
		dst := startBenchServer(b)
		b.StartTimer()
		resp, err = dst.http.Client().Post(dst.http.URL+"/v1/tenants/import", "application/x-tar", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatal(resp.Status)
		}
	}
	b.SetBytes(size)
	b.ReportMetric(1000, "messages/op")
}

// benchServer is a mailServer for benchmarks.
type benchServer struct {
	b     *testing.B
	dir   *tenant.Directory
	store *mailstore.Store
	http  *httptest.Server
}

func (s *benchServer) must(err error) {
	s.b.Helper()
	if err != nil {
		s.b.Fatal(err)
	}
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	data := b.TempDir()
	dns := dnstest.Start(b)
	dir, err := tenant.Open(data, tenant.Options{Resolver: tenant.NewDNSResolver(dns.Addr)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dir.Close() })
	store, err := mailstore.Open(data, mailstore.Options{Directory: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	api := New(Config{Directory: dir, Tokens: dir, Keys: dir, Usage: store})
	api.HandleExport(data, dir)
	srv := httptest.NewServer(api.SocketHandler())
	b.Cleanup(srv.Close)
	return &benchServer{b: b, dir: dir, store: store, http: srv}
}

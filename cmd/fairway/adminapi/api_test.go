package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fairway/fairq"
	"fairway/tenant"
)

// fixture is the API over a real directory and a real queue in temp dirs.
type fixture struct {
	dir   *tenant.Directory
	queue *fairq.Queue
	api   *API
	log   *syncBuffer
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	data := t.TempDir()
	logBuf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logBuf, nil))
	dir, err := tenant.Open(data, tenant.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	q, err := fairq.Open(filepath.Join(data, "queue"), fairq.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	f := &fixture{dir: dir, queue: q, log: logBuf}
	f.api = f.newAPI(dir)
	return f
}

func (f *fixture) newAPI(d Directory) *API {
	return New(Config{Directory: d, Tokens: f.dir, Keys: f.dir, Queue: f.queue,
		Records: tenant.RecordParams{Hostname: "mx.example.net", ReportAddress: "dmarc-reports@mx.example.net"},
		Logger:  slog.New(slog.NewTextHandler(f.log, nil))})
}

// response is one answer: status and body.
type response struct {
	status int
	body   []byte
}

func (r response) error(t *testing.T) Error {
	t.Helper()
	var e Error
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

// do sends a request to h; a string body is sent as it is, anything else
// as JSON.
func do(t *testing.T, h http.Handler, method, path string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return response{rec.Code, rec.Body.Bytes()}
}

func mustStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
}

func TestErrorMapping(t *testing.T) {
	f := newFixture(t)
	h := f.api.SocketHandler()
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme"}), http.StatusCreated)
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "other"}), http.StatusCreated)
	mustStatus(t, do(t, h, "POST", "/v1/domains", NewDomain{Domain: "acme.example", Tenant: "acme"}), http.StatusCreated)
	mustStatus(t, do(t, h, "POST", "/v1/mailboxes", NewMailbox{Address: "bob@acme.example", Password: "correct horse battery"}),
		http.StatusCreated)

	tests := []struct {
		name         string
		method, path string
		body         any
		status       int
		code         string
		contains     string
	}{
		{"unknown tenant", "GET", "/v1/tenants/nope", nil, 404, CodeNotFound, "nope"},
		{"tenant twice", "POST", "/v1/tenants", NewTenant{Name: "acme"}, 409, CodeExists, "acme"},
		{"bad tenant name", "POST", "/v1/tenants", NewTenant{Name: "Bad Name"}, 400, CodeInvalid, "tenant name"},
		{"bad weight", "POST", "/v1/tenants", NewTenant{Name: "w", Policy: tenant.Policy{Weight: 5000}}, 400, CodeInvalid, "weight"},
		{"unknown field", "POST", "/v1/tenants", `{"name":"x","colour":"red"}`, 400, CodeInvalid, `unknown field "colour"`},
		{"two JSON values", "POST", "/v1/tenants", `{"name":"x"} {"name":"y"}`, 400, CodeInvalid, "more than one"},
		{"no body", "POST", "/v1/tenants", nil, 400, CodeInvalid, "JSON object is required"},
		{"body over 1 MB", "POST", "/v1/tenants", `{"name":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413, CodeInvalid, "larger"},
		{"domain of another tenant", "POST", "/v1/domains", NewDomain{Domain: "ACME.example", Tenant: "other"}, 409, CodeExists, "acme.example"},
		{"domain of unknown tenant", "POST", "/v1/domains", NewDomain{Domain: "new.example", Tenant: "ghost"}, 404, CodeNotFound, "ghost"},
		{"weak password", "POST", "/v1/mailboxes", NewMailbox{Address: "eve@acme.example", Password: "short"}, 400, CodeInvalid, "password too short"},
		{"mailbox twice", "POST", "/v1/mailboxes", NewMailbox{Address: "Bob@acme.example", Password: "another long secret"}, 409, CodeExists, "bob@acme.example"},
		{"bare local part", "POST", "/v1/mailboxes", NewMailbox{Address: "bob", Password: "another long secret"}, 400, CodeInvalid, "full address"},
		{"mailboxes of unknown domain", "GET", "/v1/domains/none.example/mailboxes", nil, 404, CodeNotFound, "none.example"},
		{"alias to itself", "POST", "/v1/aliases", NewAlias{Alias: "x@acme.example", Target: "x@acme.example"}, 400, CodeInvalid, "itself"},
		{"unknown alias", "DELETE", "/v1/aliases/nobody@acme.example", nil, 404, CodeNotFound, "nobody@acme.example"},
		{"dkim of unknown domain", "GET", "/v1/domains/none.example/dkim", nil, 404, CodeNotFound, "none.example"},
		{"bad message id", "POST", "/v1/queue/messages/xyz/retry", nil, 400, CodeInvalid, "16 hex digits"},
		{"unknown message", "DELETE", "/v1/queue/messages/00000000000000ff", nil, 404, CodeNotFound, "00000000000000ff"},
		{"bad list limit", "GET", "/v1/queue/messages?limit=0", nil, 400, CodeInvalid, "limit"},
		{"unknown token", "DELETE", "/v1/tokens/abcdefabcdef", nil, 404, CodeNotFound, "abcdefabcdef"},
		{"unknown route", "GET", "/v1/nothing", nil, 404, CodeNotFound, "/v1/nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, h, tt.method, tt.path, tt.body)
			mustStatus(t, r, tt.status)
			e := r.error(t)
			if e.Code != tt.code || !strings.Contains(e.Message, tt.contains) {
				t.Errorf("got %+v, want code %q and a message containing %q", e, tt.code, tt.contains)
			}
		})
	}
}

func TestImportReportsEveryBadLineAndWritesNothing(t *testing.T) {
	f := newFixture(t)
	h := f.api.SocketHandler()
	csv := "tenant,domain,mailbox,password\n" +
		"t1,one.example,a@one.example,long enough password\n" +
		"t1,not a domain\n" +
		"t2,two.example,b@two.example,short\n"
	r := do(t, h, "POST", "/v1/import", csv)
	mustStatus(t, r, http.StatusBadRequest)
	e := r.error(t)
	var lines []int
	for _, l := range e.Lines {
		lines = append(lines, l.Line)
	}
	if e.Code != CodeInvalid || !slices.Equal(lines, []int{3, 4}) {
		t.Fatalf("got %+v, want invalid with lines 3 and 4", e)
	}
	if ts := f.dir.Tenants(); len(ts) != 0 {
		t.Fatalf("refused import wrote tenants: %+v", ts)
	}

	r = do(t, h, "POST", "/v1/import", "t1,one.example,a@one.example,long enough password\nt2,two.example\n")
	mustStatus(t, r, http.StatusOK)
	var res ImportResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res != (ImportResult{Tenants: 2, Domains: 2, Mailboxes: 1}) {
		t.Fatalf("import result %+v", res)
	}
	// Imported tenants are known to the queue, with the default weight.
	if st := f.queue.Stats(); len(st.Tenants) != 2 || st.Tenants[0].Weight != 1 {
		t.Fatalf("queue tenants after import: %+v", st.Tenants)
	}
}

func TestImportOverLimitRefused(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("t1,one.example\n", MaxImportBytes/15+1)
	r := do(t, f.api.SocketHandler(), "POST", "/v1/import", big)
	mustStatus(t, r, http.StatusRequestEntityTooLarge)
	if e := r.error(t); e.Code != CodeInvalid {
		t.Fatalf("got %+v", e)
	}
}

// failingDirectory fails AddTenant with an error the API does not know.
type failingDirectory struct{ *tenant.Directory }

func (failingDirectory) AddTenant(string, tenant.Policy) error {
	return errors.New("pebble: disk on fire at /secret/path")
}

func TestInternalErrorLoggedNotSent(t *testing.T) {
	f := newFixture(t)
	h := f.newAPI(failingDirectory{f.dir}).SocketHandler()
	r := do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme"})
	mustStatus(t, r, http.StatusInternalServerError)
	e := r.error(t)
	if e.Code != CodeInternal || strings.Contains(string(r.body), "disk on fire") {
		t.Fatalf("internal error leaked or mislabelled: %s", r.body)
	}
	if !strings.Contains(f.log.String(), "disk on fire") {
		t.Fatalf("internal error not logged:\n%s", f.log.String())
	}
}

func TestInFlightMessageCannotBeDeleted(t *testing.T) {
	f := newFixture(t)
	h := f.api.SocketHandler()
	id, err := f.queue.Enqueue(context.Background(), &fairq.Message{Tenant: "acme", From: "a@acme.example",
		Recipients: []string{"x@dest.example"}, Body: []byte("Subject: hi\r\n\r\nhi\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	var listed []QueueEntry
	r := do(t, h, "GET", "/v1/queue/messages?tenant=acme", nil)
	mustStatus(t, r, http.StatusOK)
	if err := json.Unmarshal(r.body, &listed); err != nil || len(listed) != 1 || listed[0].ID != id.String() {
		t.Fatalf("list = %s (%v), want message %s", r.body, err, id)
	}
	lease, err := f.queue.TryNext()
	if err != nil || lease == nil {
		t.Fatalf("TryNext = %v, %v", lease, err)
	}
	r = do(t, h, "DELETE", "/v1/queue/messages/"+id.String(), nil)
	mustStatus(t, r, http.StatusConflict)
	if e := r.error(t); e.Code != CodeInFlight {
		t.Fatalf("got %+v", e)
	}
	if err := f.queue.Defer(lease, "451 4.3.0 later"); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, do(t, h, "POST", "/v1/queue/messages/"+id.String()+"/retry", nil), http.StatusOK)
	mustStatus(t, do(t, h, "DELETE", "/v1/queue/messages/"+id.String(), nil), http.StatusOK)
	mustStatus(t, do(t, h, "DELETE", "/v1/queue/messages/"+id.String(), nil), http.StatusNotFound)
}

func queueTenant(t *testing.T, q *fairq.Queue, name string) fairq.TenantStats {
	t.Helper()
	for _, ts := range q.Stats().Tenants {
		if ts.Tenant == name {
			return ts
		}
	}
	t.Fatalf("tenant %s unknown to the queue", name)
	return fairq.TenantStats{}
}

func TestTenantPolicyReachesQueue(t *testing.T) {
	f := newFixture(t)
	h := f.api.SocketHandler()
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme", Policy: tenant.Policy{Weight: 5, Pool: "warm"}}),
		http.StatusCreated)
	if ts := queueTenant(t, f.queue, "acme"); ts.Weight != 5 || ts.Pool != "warm" {
		t.Fatalf("after add: %+v, want weight 5 pool warm", ts)
	}
	w := 7
	mustStatus(t, do(t, h, "PATCH", "/v1/tenants/acme", TenantUpdate{Weight: &w}), http.StatusOK)
	if ts := queueTenant(t, f.queue, "acme"); ts.Weight != 7 || ts.Pool != "warm" {
		t.Fatalf("after update: %+v, want weight 7 pool warm", ts)
	}

	if _, err := f.queue.Enqueue(context.Background(), &fairq.Message{Tenant: "acme",
		Recipients: []string{"x@dest.example"}, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, do(t, h, "POST", "/v1/tenants/acme/suspend", nil), http.StatusOK)
	if ts := queueTenant(t, f.queue, "acme"); ts.Held != 1 || ts.Ready != 0 {
		t.Fatalf("after suspend: %+v, want the message held", ts)
	}
	if l, _ := f.queue.TryNext(); l != nil {
		t.Fatal("a suspended tenant's message was dispatched")
	}
	mustStatus(t, do(t, h, "POST", "/v1/tenants/acme/resume", nil), http.StatusOK)
	if ts := queueTenant(t, f.queue, "acme"); ts.Held != 0 || ts.Ready != 1 {
		t.Fatalf("after resume: %+v, want the message ready", ts)
	}
	mustStatus(t, do(t, h, "POST", "/v1/tenants/ghost/suspend", nil), http.StatusNotFound)

	// Removing a suspended tenant releases its accepted mail rather than
	// holding it for good.
	mustStatus(t, do(t, h, "POST", "/v1/tenants/acme/suspend", nil), http.StatusOK)
	mustStatus(t, do(t, h, "DELETE", "/v1/tenants/acme", nil), http.StatusOK)
	if ts := queueTenant(t, f.queue, "acme"); ts.Held != 0 || ts.Ready != 1 {
		t.Fatalf("after removal: %+v, want the message released", ts)
	}
}

func TestSyncQueue(t *testing.T) {
	f := newFixture(t)
	if err := f.dir.AddTenant("a", tenant.Policy{Weight: 3, Suspended: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.AddTenant("b", tenant.Policy{Weight: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.queue.Enqueue(context.Background(), &fairq.Message{Tenant: "a",
		Recipients: []string{"x@dest.example"}, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := SyncQueue(f.dir, f.queue, nil); err != nil {
		t.Fatal(err)
	}
	if ts := queueTenant(t, f.queue, "a"); ts.Weight != 3 || ts.Held != 1 {
		t.Fatalf("a: %+v, want weight 3 and its message held", ts)
	}
	if ts := queueTenant(t, f.queue, "b"); ts.Weight != 2 {
		t.Fatalf("b: %+v, want weight 2", ts)
	}
}

func TestTokens(t *testing.T) {
	f := newFixture(t)
	sock, tcp := f.api.SocketHandler(), f.api.TCPHandler()

	for _, hdr := range [][]string{nil, {"Authorization", "Bearer fwt_000000000000_nope"}, {"Authorization", "Basic Zm9vOmJhcg=="}} {
		r := do(t, tcp, "GET", "/v1/tenants", nil, hdr...)
		mustStatus(t, r, http.StatusUnauthorized)
		if e := r.error(t); e.Code != CodeUnauthorized {
			t.Fatalf("%v: %+v", hdr, e)
		}
	}

	r := do(t, sock, "POST", "/v1/tokens", NewToken{Name: "ci"})
	mustStatus(t, r, http.StatusCreated)
	var tok Token
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.Secret == "" || tok.ID == "" {
		t.Fatalf("created token %s: %v", r.body, err)
	}
	auth := []string{"Authorization", "Bearer " + tok.Secret}
	mustStatus(t, do(t, tcp, "GET", "/v1/tenants", nil, auth...), http.StatusOK)

	// Over TCP a token may do everything but make more tokens.
	r = do(t, tcp, "POST", "/v1/tokens", NewToken{Name: "more"}, auth...)
	mustStatus(t, r, http.StatusForbidden)
	if e := r.error(t); e.Code != CodeForbidden {
		t.Fatalf("%+v", e)
	}

	r = do(t, sock, "GET", "/v1/tokens", nil)
	mustStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.body), tok.Secret) || !strings.Contains(string(r.body), tok.ID) {
		t.Fatalf("token list %s: want the id, never the secret", r.body)
	}
	mustStatus(t, do(t, tcp, "DELETE", "/v1/tokens/"+tok.ID, nil, auth...), http.StatusOK)
	mustStatus(t, do(t, tcp, "GET", "/v1/tenants", nil, auth...), http.StatusUnauthorized)
}

func TestDNSRecords(t *testing.T) {
	f := newFixture(t)
	h := f.api.SocketHandler()
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme"}), http.StatusCreated)
	mustStatus(t, do(t, h, "POST", "/v1/domains", NewDomain{Domain: "acme.example", Tenant: "acme"}), http.StatusCreated)
	r := do(t, h, "GET", "/v1/domains/acme.example/dns/records", nil)
	mustStatus(t, r, http.StatusOK)
	var recs []DNSRecord
	if err := json.Unmarshal(r.body, &recs); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, rec := range recs {
		kinds = append(kinds, string(rec.Kind))
		if rec.ZoneLine != rec.DNSRecord.ZoneLine() || !strings.HasPrefix(rec.ZoneLine, rec.Name+" IN ") {
			t.Errorf("zone line %q of %+v", rec.ZoneLine, rec.DNSRecord)
		}
	}
	for _, want := range []string{"mx", "spf", "dkim", "dmarc"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("records %v lack %s", kinds, want)
		}
	}
	r = do(t, h, "GET", "/v1/domains/acme.example/dkim", nil)
	mustStatus(t, r, http.StatusOK)
	var keys []tenant.DKIMKeyStatus
	if err := json.Unmarshal(r.body, &keys); err != nil || len(keys) != 2 || keys[0].State != tenant.KeyPending {
		t.Fatalf("dkim status %s: %v", r.body, err)
	}
	// The new domain's keys are still pending: a rotation is in progress.
	r = do(t, h, "POST", "/v1/domains/acme.example/dkim/rotate", nil)
	mustStatus(t, r, http.StatusConflict)
	if e := r.error(t); e.Code != CodeExists || !strings.Contains(e.Message, "in progress") {
		t.Fatalf("%+v", e)
	}
}

func TestServerSocket(t *testing.T) {
	f := newFixture(t)
	// A short directory: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "fwsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "admin.sock")

	// A stale socket file (nobody listening) is replaced.
	stale, err := listenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	stale.Close()

	srv, err := Listen(f.api, path, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if _, err := Listen(f.api, path, "", nil); err == nil || !strings.Contains(err.Error(), "another fairway daemon") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(path)
	if _, err := c.Call(ctx, "POST", "/v1/tenants", NewTenant{Name: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Call(ctx, "POST", "/v1/tenants", NewTenant{Name: "acme"}, nil)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || apiErr.Code != CodeExists {
		t.Fatalf("second add: %v", err)
	}

	// Over TCP without a token.
	resp, err := http.Get("http://" + srv.TCPAddr().String() + "/v1/tenants")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("TCP without token: %s", resp.Status)
	}

	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after shutdown: %v", err)
	}
	_, err = c.Call(ctx, "GET", "/v1/tenants", nil, nil)
	var unreachable *UnreachableError
	if !errors.As(err, &unreachable) || !strings.Contains(err.Error(), "fairway serve") {
		t.Fatalf("call after shutdown: %v", err)
	}

	// A file that is not a socket is left alone.
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(f.api, path, "", nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
}

// mapResolver answers from maps; a name it lacks does not exist.
type mapResolver struct {
	txt map[string][]string
	mx  map[string][]*net.MX
}

func (m mapResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := m.txt[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("TXT %s: %w", name, tenant.ErrDNSNotFound)
}

func (m mapResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if v, ok := m.mx[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("MX %s: %w", name, tenant.ErrDNSNotFound)
}

func TestDNSCheck(t *testing.T) {
	data := t.TempDir()
	res := mapResolver{
		txt: map[string][]string{"acme.example.": {"v=spf1 a -all"}},
		mx:  map[string][]*net.MX{"acme.example.": {{Host: "mx.example.net.", Pref: 10}}},
	}
	dir, err := tenant.Open(data, tenant.Options{Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	q, err := fairq.Open(filepath.Join(data, "queue"), fairq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	api := New(Config{Directory: dir, Tokens: dir, Keys: dir, Queue: q,
		Records: tenant.RecordParams{Hostname: "mx.example.net", PoolIPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}})
	h := api.SocketHandler()
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme"}), http.StatusCreated)
	mustStatus(t, do(t, h, "POST", "/v1/domains", NewDomain{Domain: "acme.example", Tenant: "acme"}), http.StatusCreated)

	r := do(t, h, "GET", "/v1/domains/acme.example/dns/check", nil)
	mustStatus(t, r, http.StatusOK)
	var checks []tenant.RecordCheck
	if err := json.Unmarshal(r.body, &checks); err != nil {
		t.Fatal(err)
	}
	got := map[tenant.RecordKind]tenant.CheckStatus{}
	for _, c := range checks {
		got[c.Record.Kind] = c.Status
	}
	want := map[tenant.RecordKind]tenant.CheckStatus{
		tenant.RecordMX: tenant.CheckOK, tenant.RecordSPF: tenant.CheckDifferent,
		tenant.RecordDKIM: tenant.CheckMissing, tenant.RecordDMARC: tenant.CheckMissing,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s, want %s (all: %s)", k, got[k], w, r.body)
		}
	}
}

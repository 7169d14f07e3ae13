package mailstore

import (
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"fairway/tenant"
)

// testClock is a clock moved only by Advance.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MAILSTORE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// env is a data directory with a tenant directory holding two tenants:
// acme (acme.example: alice, bob) and globex (globex.example: carol).
type env struct {
	t       testing.TB
	dataDir string
	dir     *tenant.Directory
	clock   *testClock
	store   *Store
}

const testPassword = "correct horse battery staple"

func newEnv(t testing.TB, acme tenant.Policy) *env {
	t.Helper()
	e := &env{t: t, dataDir: t.TempDir(), clock: newTestClock()}
	dir, err := tenant.Open(t.TempDir(), tenant.Options{Logger: testLogger(t), Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	e.dir = dir
	for _, err := range []error{
		dir.AddTenant("acme", acme),
		dir.AddTenant("globex", tenant.Policy{}),
		dir.AddDomain("acme.example", "acme"),
		dir.AddDomain("globex.example", "globex"),
		dir.AddMailbox("alice@acme.example", testPassword),
		dir.AddMailbox("bob@acme.example", testPassword),
		dir.AddMailbox("carol@globex.example", testPassword),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	s, err := Open(e.dataDir, Options{Directory: e.dir, Clock: e.clock, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = s
	e.t.Cleanup(func() { s.Close() })
}

// restart closes and reopens the store, as a process restart would.
func (e *env) restart() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// loaded returns a folder of a mailbox, loaded and reconciled with disk.
func (e *env) loaded(addr, name string) *folder {
	e.t.Helper()
	mb, err := e.store.mailbox(addr)
	if err != nil {
		e.t.Fatal(err)
	}
	f, err := mb.folder(name, false)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := f.load(); err != nil {
		e.t.Fatal(err)
	}
	return f
}

// uids lists a folder's messages as uid -> base name.
func uids(f *folder) map[uint32]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint32]string{}
	for _, m := range f.msgs {
		out[m.uid] = m.base
	}
	return out
}

func testMessage(subject string, size int) []byte {
	b := []byte("From: Sender <sender@example.net>\r\nTo: alice@acme.example\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@example.net>\r\nDate: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\n")
	for len(b) < size {
		b = append(b, "The quick brown fox jumps over the lazy dog.\r\n"...)
	}
	return b
}

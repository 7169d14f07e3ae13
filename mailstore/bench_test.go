package mailstore

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"fairway/tenant"
)

// The 100,000-message benchmarks share one generated Maildir per process
// (made at the first benchmark that needs it, removed by TestMain). Plain
// `go test` never builds it.

const benchMessages = 100_000

var (
	fixtureOnce sync.Once
	fixtureDir  string // data dir: mail/ with the Maildir, dir/ the tenant directory
	fixtureErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// benchBody makes a 2–4 KB message like a mailing-list one.
func benchBody(i int, rng *rand.Rand) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: <list-bounces+%d@lists.example.org>\n", i)
	fmt.Fprintf(&b, "Received: from mx%d.example.org (mx%d.example.org [192.0.2.%d])\n\tby mx.acme.example with ESMTPS id %x\n\tfor <alice@acme.example>; Thu, 19 Nov 2026 10:%02d:%02d +0000\n", i%7, i%7, i%250, i, i%60, i%60)
	fmt.Fprintf(&b, "From: \"Sender %d\" <sender%d@example.org>\n", i%997, i%997)
	fmt.Fprintf(&b, "To: Alice <alice@acme.example>, team%d@acme.example\n", i%13)
	fmt.Fprintf(&b, "Cc: \"Bob B.\" <bob@acme.example>\n")
	fmt.Fprintf(&b, "Subject: [list] Topic number %d about things\n", i)
	fmt.Fprintf(&b, "Date: Thu, %d Nov 2026 10:%02d:%02d +0000\n", 1+i%28, i%60, (i/60)%60)
	fmt.Fprintf(&b, "Message-ID: <%d.%x@example.org>\n", i, i*7919)
	if i > 0 {
		fmt.Fprintf(&b, "In-Reply-To: <%d.%x@example.org>\n", i-1, (i-1)*7919)
	}
	fmt.Fprintf(&b, "List-Id: <list%d.example.org>\n", i%5)
	if i%1000 == 0 {
		b.WriteString("X-Unindexed: needle\n")
	}
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n")
	target := 2048 + rng.Intn(2048)
	for b.Len() < target {
		b.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n")
	}
	return []byte(b.String())
}

// fixture writes the Maildir by hand (as another tool would: LF, no
// index) and a tenant directory with alice@acme.example.
func fixture(b *testing.B) string {
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "mailstore-bench-")
		if fixtureErr != nil {
			return
		}
		dir, err := tenant.Open(filepath.Join(fixtureDir, "dir"), tenant.Options{})
		if err != nil {
			fixtureErr = err
			return
		}
		defer dir.Close()
		for _, err := range []error{
			dir.AddTenant("acme", tenant.Policy{IMAPUserConnections: 100}),
			dir.AddDomain("acme.example", "acme"),
			dir.AddMailbox("alice@acme.example", testPassword),
		} {
			if err != nil {
				fixtureErr = err
				return
			}
		}
		root := filepath.Join(fixtureDir, "mail", "acme.example", "alice")
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
				fixtureErr = err
				return
			}
		}
		rng := rand.New(rand.NewSource(1))
		for i := 0; i < benchMessages; i++ {
			base := fmt.Sprintf("%d.M%dP1Q%d.bench", 1700000000+i, i%1000000, i)
			p := filepath.Join(root, "new", base)
			if i%3 != 0 {
				p = filepath.Join(root, "cur", base+":2,S")
			}
			if err := os.WriteFile(p, benchBody(i, rng), 0o600); err != nil {
				fixtureErr = err
				return
			}
		}
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixtureDir
}

// benchServer opens the fixture's store and IMAP server.
type benchServer struct {
	b     *testing.B
	dir   *tenant.Directory
	store *Store
	srv   *IMAPServer
	addr  string
}

func openBench(b *testing.B) *benchServer {
	data := fixture(b)
	dir, err := tenant.Open(filepath.Join(data, "dir"), tenant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bs := &benchServer{b: b, dir: dir}
	bs.start()
	b.Cleanup(func() {
		bs.stop()
		dir.Close()
	})
	return bs
}

func (bs *benchServer) start() {
	s, err := Open(fixtureDir, Options{Directory: bs.dir})
	if err != nil {
		bs.b.Fatal(err)
	}
	srv, err := NewIMAPServer(IMAPOptions{Store: s, TLS: selfSigned(bs.b)})
	if err != nil {
		bs.b.Fatal(err)
	}
	ln, err := listenLoopback()
	if err != nil {
		bs.b.Fatal(err)
	}
	go srv.ServeImplicitTLS(ln)
	bs.store, bs.srv, bs.addr = s, srv, ln.Addr().String()
}

func (bs *benchServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bs.srv.Shutdown(ctx)
	bs.store.Close()
}

func (bs *benchServer) login() *imapclient.Client {
	c, err := imapclient.DialTLS(bs.addr, (&imapEnv{}).clientOpts(nil))
	if err != nil {
		bs.b.Fatal(err)
	}
	if err := c.Login("alice@acme.example", testPassword).Wait(); err != nil {
		bs.b.Fatal(err)
	}
	return c
}

// BenchmarkIndexRebuild100k: the index is gone (first start on an
// existing Maildir, or lost); Open indexes every file. Dovecot's
// equivalent is its first SELECT building dovecot.index (585 ms).
func BenchmarkIndexRebuild100k(b *testing.B) {
	data := fixture(b)
	dir, err := tenant.Open(filepath.Join(data, "dir"), tenant.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer dir.Close()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.RemoveAll(filepath.Join(data, "mail", "index")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := Open(data, Options{Directory: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkSelectAfterRestart100k: a new process (store reopened, nothing
// in memory) whose index exists; time of SELECT INBOX over IMAP.
func BenchmarkSelectAfterRestart100k(b *testing.B) {
	bs := openBench(b)
	c := bs.login()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil { // index built if missing
		b.Fatal(err)
	}
	c.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bs.stop()
		bs.start()
		c := bs.login()
		b.StartTimer()
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil || sel.NumMessages < benchMessages {
			b.Fatalf("SELECT: %v %+v", err, sel)
		}
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
}

// BenchmarkSelectWarm100k: SELECT of the folder another session keeps
// loaded.
func BenchmarkSelectWarm100k(b *testing.B) {
	bs := openBench(b)
	c := bs.login()
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchEnvelope100k: UID FETCH 1:* (FLAGS INTERNALDATE
// RFC822.SIZE ENVELOPE), read and parsed by the go-imap client.
func BenchmarkFetchEnvelope100k(b *testing.B) {
	bs := openBench(b)
	c := bs.login()
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	total := 0
	for i := 0; i < b.N; i++ {
		cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		})
		for {
			m := cmd.Next()
			if m == nil {
				break
			}
			for m.Next() != nil {
			}
			total++
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkStoreFlag100k: UID STORE of one message's flag in a
// 100,000-message folder, round trip.
func BenchmarkStoreFlag100k(b *testing.B) {
	bs := openBench(b)
	c := bs.login()
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		uid := imap.UID(1 + rng.Intn(benchMessages))
		op := imap.StoreFlagsAdd
		if i%2 == 1 {
			op = imap.StoreFlagsDel
		}
		if _, err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchHeader100k: UID SEARCH HEADER on a header the index does
// not keep: every file's header is read.
func BenchmarkSearchHeader100k(b *testing.B) {
	bs := openBench(b)
	c := bs.login()
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Unindexed", Value: "needle"}}}, nil).Wait()
		if err != nil || len(data.AllUIDs()) != benchMessages/1000 {
			b.Fatalf("SEARCH: %v %v", err, len(data.AllUIDs()))
		}
	}
}

// BenchmarkAppend4K: APPEND of 4 KB messages, one client, each durable
// (file fsync, directory fsync, index commit) before its OK.
func BenchmarkAppend4K(b *testing.B) {
	bs := openBench(b)
	c := bs.login()
	defer c.Close()
	if err := c.Create(fmt.Sprintf("Bench%d", time.Now().UnixNano()), nil).Wait(); err != nil {
		b.Fatal(err)
	}
	msg := benchBody(1, rand.New(rand.NewSource(3)))
	msg = append(msg[:0:0], toCRLF(msg)...)
	for len(msg) < 4096 {
		msg = append(msg, "padding padding padding padding padding padding\r\n"...)
	}
	msg = msg[:4096]
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := appendMsg(b, c, "INBOX", msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

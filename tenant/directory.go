package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Clock is the directory's source of time (DKIM rotation, timestamps).
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Directory. The zero value is usable.
type Options struct {
	Logger   *slog.Logger
	Clock    Clock
	Resolver Resolver // DNS for DKIM publication checks and `dns check`
	DKIM     RotationPolicy
}

// Errors that callers map to replies and exit codes.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
	// ErrAuth is the one error Authenticate returns for any failed login,
	// whatever the reason, so that callers cannot tell users apart.
	ErrAuth = errors.New("authentication failed")
)

// Directory is the tenant directory. Its methods are safe for concurrent use.
type Directory struct {
	db      *pebble.DB
	dataDir string
	log     *slog.Logger
	clock   Clock
	opts    Options

	// writeMu serializes write transactions, so each sees the state the
	// previous one left, in memory and on disk alike.
	writeMu sync.Mutex
	// mu guards st; lookups take it shared.
	mu sync.RWMutex
	st state

	dkim *dkimState // dkim.go
}

// key prefixes; see the package doc.
const (
	pfxTenant  = "t\x00"
	pfxDomain  = "d\x00"
	pfxMailbox = "m\x00"
	pfxAlias   = "a\x00"
	pfxDKIM    = "k\x00"
	pfxToken   = "T\x00"
)

// Open opens the directory under dataDir (Pebble in dataDir/directory, DKIM
// keys in dataDir/dkim) and loads it into memory.
func Open(dataDir string, opts Options) (*Directory, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	opts.DKIM = opts.DKIM.withDefaults()
	dbDir := filepath.Join(dataDir, "directory")
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	log := opts.Logger.With("component", "tenant")
	db, err := pebble.Open(dbDir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("directory: open %s: %w", dbDir, err)
	}
	d := &Directory{db: db, dataDir: dataDir, log: log, clock: opts.Clock, opts: opts, st: newState()}
	if err := d.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := d.loadDKIM(); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the store.
func (d *Directory) Close() error {
	d.closeDKIM() // stop background key generation before the store goes
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("directory: close: %w", err)
	}
	return nil
}

// txn is one write transaction: a Pebble batch plus what to do in memory
// once it is durable (after), or to undo outside Pebble if it is not
// (onAbort, e.g. removing key files written for it).
type txn struct {
	b       *pebble.Batch
	after   []func(st *state)
	aborted []func()
}

func (tx *txn) set(key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.b.Set([]byte(key), buf, nil)
}

func (tx *txn) del(key string) error { return tx.b.Delete([]byte(key), nil) }

// afterCommit runs f on the in-memory state, under the write lock, once the
// batch is durable.
func (tx *txn) afterCommit(f func(st *state)) { tx.after = append(tx.after, f) }

// onAbort runs f if the transaction does not commit.
func (tx *txn) onAbort(f func()) { tx.aborted = append(tx.aborted, f) }

// update runs fn as one write transaction: fn reads d.st (read-only; the
// write lock keeps it still) and stages writes in tx; the batch is committed
// with Sync, then the after-commit functions update memory.
func (d *Directory) update(fn func(tx *txn) error) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	tx := &txn{b: d.db.NewBatch()}
	defer tx.b.Close()
	err := fn(tx)
	if err == nil && !tx.b.Empty() {
		if cerr := tx.b.Commit(pebble.Sync); cerr != nil {
			err = fmt.Errorf("directory: commit: %w", cerr)
		}
	}
	if err != nil {
		for _, f := range tx.aborted {
			f()
		}
		return err
	}
	d.mu.Lock()
	for _, f := range tx.after {
		f(&d.st)
	}
	d.mu.Unlock()
	return nil
}

// load reads every object into memory.
func (d *Directory) load() error {
	iter, err := d.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("directory: load: %w", err)
	}
	defer iter.Close()
	for valid := iter.First(); valid; valid = iter.Next() {
		k, v := string(iter.Key()), iter.Value()
		var err error
		switch {
		case hasPrefix(k, pfxTenant):
			var t Tenant
			if err = json.Unmarshal(v, &t); err == nil {
				d.st.putTenant(&t)
			}
		case hasPrefix(k, pfxDomain):
			var dom Domain
			if err = json.Unmarshal(v, &dom); err == nil {
				d.st.domains[dom.Name] = &dom
			}
		case hasPrefix(k, pfxMailbox):
			var m Mailbox
			if err = json.Unmarshal(v, &m); err == nil {
				d.st.mailboxes[m.Address] = &m
			}
		case hasPrefix(k, pfxAlias):
			var a Alias
			if err = json.Unmarshal(v, &a); err == nil {
				d.st.aliases[a.Address] = &a
			}
		case hasPrefix(k, pfxDKIM), hasPrefix(k, pfxToken):
			// read by loadDKIM and on demand
		default:
			d.log.Warn("unknown directory key ignored", "key", k)
		}
		if err != nil {
			// A record we cannot read is reported, not guessed at: refusing to
			// start is better than serving a directory with holes in it.
			return fmt.Errorf("directory: record %q: %w", k, err)
		}
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("directory: load: %w", err)
	}
	d.log.Info("directory loaded", "tenants", len(d.st.tenants), "domains", len(d.st.domains),
		"mailboxes", len(d.st.mailboxes), "aliases", len(d.st.aliases))
	return nil
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// pebbleLogger routes Pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.log.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.log.Error(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

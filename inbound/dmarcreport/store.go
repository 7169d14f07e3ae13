package dmarcreport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"fairway/tenant"
)

// Directory tells which tenant hosts a domain (*tenant.Directory).
type Directory interface {
	DomainTenant(domain string) (string, bool)
}

// Clock is the store's source of time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Limits bound intake and storage; zero fields take the defaults.
type Limits struct {
	// MaxMessageBytes bounds the whole message handed to Ingest.
	MaxMessageBytes int
	Extract         ExtractLimits
	Parse           ParseLimits
	// MaxRejected is how many rejected messages are kept (the newest).
	MaxRejected int
	// Retention is how long reports are kept, by the start of their range.
	Retention time.Duration
	// MaxSources bounds the per-source rows and each signal list of a
	// summary (the largest by volume are kept).
	MaxSources int
}

// Storage defaults.
const (
	DefaultMaxMessageBytes = 16 << 20
	DefaultMaxRejected     = 1000
	DefaultRetention       = 400 * 24 * time.Hour
	DefaultMaxSources      = 500
	// maxFuture is how far ahead of our clock a report may begin (clock
	// skew); beyond, it is garbage.
	maxFuture = 48 * time.Hour
	// rejectedRawBytes is how much of a rejected message is kept.
	rejectedRawBytes = 64 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	l.Extract = l.Extract.withDefaults()
	l.Parse = l.Parse.withDefaults()
	if l.MaxRejected <= 0 {
		l.MaxRejected = DefaultMaxRejected
	}
	if l.Retention <= 0 {
		l.Retention = DefaultRetention
	}
	if l.MaxSources <= 0 {
		l.MaxSources = DefaultMaxSources
	}
	return l
}

// Options configure a Store. Directory is required.
type Options struct {
	Directory Directory
	Clock     Clock
	Logger    *slog.Logger
	// KnownSources returns the operator's own sending addresses for a
	// domain (its pools' source IPs): the "known" sources of the signals.
	// May be nil.
	KnownSources func(domain string) []netip.Prefix
	Limits       Limits
}

// Store keeps the reports and the rejected messages. Its methods are safe
// for concurrent use.
type Store struct {
	db    *pebble.DB
	dir   Directory
	clock Clock
	log   *slog.Logger
	known func(domain string) []netip.Prefix
	lim   Limits

	// mu serializes writes: the dedup check and the write that follows it,
	// and the rejected list's sequence and pruning.
	mu  sync.Mutex
	seq uint32
	// life guards closing: every use of db holds it shared.
	life   sync.RWMutex
	closed bool
}

// open holds the store open for one operation; release with done.
func (s *Store) open() (done func(), err error) {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return nil, ErrClosed
	}
	return s.life.RUnlock, nil
}

// ErrClosed is Ingest's answer after Close.
var ErrClosed = errors.New("dmarcreport: store closed")

// Open opens (creating) the report store in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.Directory == nil {
		return nil, errors.New("dmarcreport: Options.Directory is required")
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.KnownSources == nil {
		o.KnownSources = func(string) []netip.Prefix { return nil }
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dmarcreport: %w", err)
	}
	log := o.Logger.With("component", "dmarcreport")
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: open %s: %w", dir, err)
	}
	return &Store{db: db, dir: o.Directory, clock: o.Clock, log: log, known: o.KnownSources, lim: o.Limits.withDefaults()}, nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("dmarcreport: close: %w", err)
	}
	return nil
}

// Key prefixes; see the package doc.
const (
	pfxReport      = "r\x00"
	pfxDedup       = "u\x00"
	pfxRejected    = "x\x00"
	pfxRejectedRaw = "X\x00"
)

func reportPrefix(domain string) []byte { return []byte(pfxReport + domain + "\x00") }

func reportKey(domain string, begin time.Time, idHash string) []byte {
	k := reportPrefix(domain)
	k = binary.BigEndian.AppendUint64(k, uint64(begin.Unix()))
	k = append(k, 0)
	return append(k, idHash...)
}

// beginKey is the first key of domain's reports beginning at or after t.
func beginKey(domain string, t time.Time) []byte {
	sec := max(t.Unix(), 0)
	return binary.BigEndian.AppendUint64(reportPrefix(domain), uint64(sec))
}

func dedupKey(domain, idHash string) []byte { return []byte(pfxDedup + domain + "\x00" + idHash) }

func idHash(org, id string) string {
	h := sha256.Sum256([]byte(org + "\x00" + id))
	return hex.EncodeToString(h[:16])
}

// RejectedReport is a message kept aside, and why.
type RejectedReport struct {
	ID        string    `json:"id"`
	Received  time.Time `json:"received"`
	Reason    string    `json:"reason"`
	Size      int       `json:"size"`
	From      string    `json:"from,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	// Domain, Org and ReportID are set when the report itself was read
	// (a domain not hosted here, say).
	Domain   string `json:"domain,omitempty"`
	Tenant   string `json:"tenant,omitempty"`
	Org      string `json:"org,omitempty"`
	ReportID string `json:"report_id,omitempty"`
}

// Ingest takes in one message sent to the report address. It returns nil
// when the message is stored or kept aside as rejected; an error only when
// storage failed (answer 451: the sender retries).
func (s *Store) Ingest(ctx context.Context, message []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dmarcreport: ingest: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic ingesting a DMARC report", "panic", p)
			err = s.reject(message, Envelope{}, fmt.Sprintf("internal error reading the report: %v", p), nil)
		}
	}()
	if len(message) > s.lim.MaxMessageBytes {
		env, _, _ := Extract(message[:min(len(message), rejectedRawBytes)], ExtractLimits{MaxParts: 1})
		return s.reject(message, env, fmt.Sprintf("message of %d bytes, over the %d-byte limit", len(message), s.lim.MaxMessageBytes), nil)
	}
	env, docs, exErr := Extract(message, s.lim.Extract)
	var reasons []string
	var first *Report
	if exErr != nil {
		reasons = append(reasons, exErr.Error())
	}
	for _, doc := range docs {
		rep, err := ParseReport(doc.XML, s.lim.Parse)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", doc.Name, err))
			continue
		}
		rep.FileName, rep.MessageID = doc.Name, env.MessageID
		stored, reason, err := s.store(&rep)
		if err != nil {
			return err
		}
		if reason != "" {
			reasons = append(reasons, fmt.Sprintf("%s: %s", doc.Name, reason))
			if first == nil {
				first = &rep
			}
			continue
		}
		log := s.log.With("tenant", rep.Tenant, "domain", rep.Domain, "org", rep.Org, "report_id", rep.ReportID, "msgid", env.MessageID)
		if stored {
			log.Info("DMARC report stored", "records", len(rep.Records), "begin", rep.Begin, "end", rep.End)
		} else {
			log.Info("DMARC report already stored; duplicate ignored")
		}
	}
	if len(reasons) > 0 {
		return s.reject(message, env, strings.Join(reasons, "; "), first)
	}
	return nil
}

// store attributes rep to its domain's tenant and writes it unless a report
// with the same reporter and id is stored. reason is set when the report is
// refused.
func (s *Store) store(rep *Report) (stored bool, reason string, err error) {
	domain, derr := tenant.NormalizeDomain(rep.Domain)
	if derr != nil {
		return false, fmt.Sprintf("<policy_published><domain> %q is not a domain name", truncate(rep.Domain, 100)), nil
	}
	rep.Domain = domain
	owner, ok := s.dir.DomainTenant(domain)
	if !ok {
		return false, fmt.Sprintf("report for %s, which is not hosted here", domain), nil
	}
	rep.Tenant = owner
	now := s.clock.Now()
	rep.Received = now.UTC()
	if rep.Begin.Before(now.Add(-s.lim.Retention)) {
		return false, fmt.Sprintf("report for %s begins %s, older than the %s retention", domain, rep.Begin.Format(time.DateOnly), s.lim.Retention), nil
	}
	if rep.Begin.After(now.Add(maxFuture)) {
		return false, fmt.Sprintf("report for %s begins %s, in the future", domain, rep.Begin.Format(time.RFC3339)), nil
	}
	hash := idHash(rep.Org, rep.ReportID)
	key := reportKey(domain, rep.Begin, hash)
	val, err := json.Marshal(rep)
	if err != nil {
		return false, "", fmt.Errorf("dmarcreport: encoding report: %w", err)
	}

	done, err := s.open()
	if err != nil {
		return false, "", err
	}
	defer done()
	s.mu.Lock()
	defer s.mu.Unlock()
	dk := dedupKey(domain, hash)
	switch _, closer, err := s.db.Get(dk); {
	case err == nil:
		closer.Close()
		return false, "", nil
	case !errors.Is(err, pebble.ErrNotFound):
		return false, "", fmt.Errorf("dmarcreport: dedup lookup %s: %w", domain, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.pruneOld(b, domain, now.Add(-s.lim.Retention)); err != nil {
		return false, "", err
	}
	if err := b.Set(key, val, nil); err != nil {
		return false, "", fmt.Errorf("dmarcreport: %w", err)
	}
	if err := b.Set(dk, key, nil); err != nil {
		return false, "", fmt.Errorf("dmarcreport: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return false, "", fmt.Errorf("dmarcreport: storing report of %s: %w", domain, err)
	}
	return true, "", nil
}

// pruneOld adds to b the deletion of domain's reports beginning before
// cutoff, with their dedup keys.
func (s *Store) pruneOld(b *pebble.Batch, domain string, cutoff time.Time) error {
	lower, upper := reportPrefix(domain), beginKey(domain, cutoff)
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("dmarcreport: prune %s: %w", domain, err)
	}
	n := 0
	for iter.First(); iter.Valid(); iter.Next() {
		k := iter.Key()
		hash := k[bytes.LastIndexByte(k, 0)+1:]
		if err := b.Delete(dedupKey(domain, string(hash)), nil); err != nil {
			iter.Close()
			return fmt.Errorf("dmarcreport: prune %s: %w", domain, err)
		}
		n++
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("dmarcreport: prune %s: %w", domain, err)
	}
	if n == 0 {
		return nil
	}
	if err := b.DeleteRange(lower, upper, nil); err != nil {
		return fmt.Errorf("dmarcreport: prune %s: %w", domain, err)
	}
	s.log.Info("old DMARC reports deleted", "domain", domain, "reports", n, "before", cutoff.UTC())
	return nil
}

// reject keeps message aside with reason. rep, if not nil, is the report
// the reason is about.
func (s *Store) reject(message []byte, env Envelope, reason string, rep *Report) error {
	now := s.clock.Now().UTC()
	r := RejectedReport{Received: now, Reason: truncate(reason, 4000), Size: len(message),
		From: env.From, Subject: env.Subject, MessageID: env.MessageID}
	if rep != nil {
		r.Domain, r.Tenant, r.Org, r.ReportID = rep.Domain, rep.Tenant, truncate(rep.Org, 200), truncate(rep.ReportID, 200)
	}
	done, err := s.open()
	if err != nil {
		return err
	}
	defer done()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
	id = binary.BigEndian.AppendUint32(id, s.seq)
	r.ID = hex.EncodeToString(id)
	val, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("dmarcreport: encoding rejected report: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(append([]byte(pfxRejected), id...), val, nil); err != nil {
		return fmt.Errorf("dmarcreport: %w", err)
	}
	if err := b.Set(append([]byte(pfxRejectedRaw), id...), message[:min(len(message), rejectedRawBytes)], nil); err != nil {
		return fmt.Errorf("dmarcreport: %w", err)
	}
	if err := s.pruneRejected(b); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("dmarcreport: keeping a rejected report aside: %w", err)
	}
	s.log.Warn("DMARC report rejected", "reason", r.Reason, "tenant", r.Tenant, "domain", r.Domain,
		"msgid", env.MessageID, "from", env.From, "size", len(message))
	return nil
}

// pruneRejected adds to b the deletion of the oldest rejected entries
// beyond MaxRejected-1 (b adds one).
func (s *Store) pruneRejected(b *pebble.Batch) error {
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfxRejected), UpperBound: []byte("x\x01")})
	if err != nil {
		return fmt.Errorf("dmarcreport: %w", err)
	}
	defer iter.Close()
	n := 0
	for iter.Last(); iter.Valid(); iter.Prev() {
		n++
		if n < s.lim.MaxRejected {
			continue
		}
		id := bytes.TrimPrefix(iter.Key(), []byte(pfxRejected))
		if err := b.Delete(append([]byte(pfxRejected), id...), nil); err != nil {
			return fmt.Errorf("dmarcreport: %w", err)
		}
		if err := b.Delete(append([]byte(pfxRejectedRaw), id...), nil); err != nil {
			return fmt.Errorf("dmarcreport: %w", err)
		}
	}
	return iter.Error()
}

// Rejected returns up to limit rejected messages, newest first.
func (s *Store) Rejected(limit int) ([]RejectedReport, error) {
	done, err := s.open()
	if err != nil {
		return nil, err
	}
	defer done()
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfxRejected), UpperBound: []byte("x\x01")})
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: rejected: %w", err)
	}
	defer iter.Close()
	out := []RejectedReport{}
	for iter.Last(); iter.Valid() && len(out) < limit; iter.Prev() {
		var r RejectedReport
		if err := json.Unmarshal(iter.Value(), &r); err != nil {
			return nil, fmt.Errorf("dmarcreport: rejected entry %x: %w", iter.Key(), err)
		}
		out = append(out, r)
	}
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("dmarcreport: rejected: %w", err)
	}
	return out, nil
}

// reports calls f with each stored report of domain beginning in [from, to].
func (s *Store) reports(domain string, from, to time.Time, f func(*Report)) error {
	done, err := s.open()
	if err != nil {
		return err
	}
	defer done()
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: beginKey(domain, from), UpperBound: beginKey(domain, to.Add(time.Second))})
	if err != nil {
		return fmt.Errorf("dmarcreport: reports of %s: %w", domain, err)
	}
	defer iter.Close()
	for iter.First(); iter.Valid(); iter.Next() {
		var r Report
		if err := json.Unmarshal(iter.Value(), &r); err != nil {
			return fmt.Errorf("dmarcreport: report %q of %s: %w", iter.Key(), domain, err)
		}
		f(&r)
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("dmarcreport: reports of %s: %w", domain, err)
	}
	return nil
}

// pebbleLogger routes Pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.log.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.log.Error(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

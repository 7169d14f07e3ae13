package reputation

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Keys of the store (see the package doc).
const (
	keyVersion    = "v"
	prefixTenant  = "t/"
	prefixSource  = "s/"
	storeVersion  = "1"
	maxRecordSize = 4 << 20
)

type tenantRecord struct {
	Tier          Tier              `json:"tier"`
	TierSince     time.Time         `json:"tier_since"`
	FirstSeen     time.Time         `json:"first_seen"`
	LastSeen      time.Time         `json:"last_seen,omitzero"`
	ScoreFrom     time.Time         `json:"score_from,omitzero"`
	Accepted      float64           `json:"accepted_rate,omitempty"`
	AcceptedUntil time.Time         `json:"accepted_until,omitzero"`
	Hold          *Hold             `json:"hold,omitempty"`
	History       []TierChange      `json:"history,omitempty"`
	Fine          []persistedBucket `json:"fine,omitempty"`
	Coarse        []persistedBucket `json:"coarse,omitempty"`
}

type siteRecord struct {
	Fine      []persistedBucket `json:"fine,omitempty"`
	Coarse    []persistedBucket `json:"coarse,omitempty"`
	LastUsed  int64             `json:"last_used"`
	Limit     float64           `json:"limit,omitempty"`
	Strikes   int               `json:"strikes,omitempty"`
	Until     time.Time         `json:"until,omitzero"`
	Feedback  Feedback          `json:"feedback,omitempty"`
	Line      string            `json:"line,omitempty"`
	Day       int64             `json:"day,omitempty"`
	SentToday int               `json:"sent_today,omitempty"`
}

type sourceRecord struct {
	Fine     []persistedBucket     `json:"fine,omitempty"`
	Coarse   []persistedBucket     `json:"coarse,omitempty"`
	Listings []Listing             `json:"listings,omitempty"`
	Sites    map[string]siteRecord `json:"sites,omitempty"`
}

func openStore(dir string, log *slog.Logger) (*pebble.DB, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("reputation: open store %s: %w", dir, err)
	}
	v, closer, err := db.Get([]byte(keyVersion))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := db.Set([]byte(keyVersion), []byte(storeVersion), pebble.Sync); err != nil {
			db.Close()
			return nil, fmt.Errorf("reputation: init store %s: %w", dir, err)
		}
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("reputation: read store version: %w", err)
	default:
		got := string(v)
		closer.Close()
		if got != storeVersion {
			db.Close()
			return nil, fmt.Errorf("reputation: store %s has version %q, this binary reads %q", dir, got, storeVersion)
		}
	}
	return db, nil
}

// load reads every persisted tenant and source. A record that does not
// decode is logged and skipped: its scores start over.
func (s *Service) load() error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("reputation: load: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := string(it.Key())
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("reputation: load %q: %w", k, err)
		}
		switch {
		case strings.HasPrefix(k, prefixTenant):
			var r tenantRecord
			if err := json.Unmarshal(v, &r); err != nil {
				s.log.Error("skipping an unreadable tenant record", "key", k, "err", err)
				continue
			}
			s.tenants[k[len(prefixTenant):]] = r.state(k[len(prefixTenant):])
			s.m.tier.WithLabelValues(k[len(prefixTenant):]).Set(float64(r.Tier))
		case strings.HasPrefix(k, prefixSource):
			ip, err1 := netip.ParseAddr(k[len(prefixSource):])
			var r sourceRecord
			if err2 := json.Unmarshal(v, &r); err1 != nil || err2 != nil {
				s.log.Error("skipping an unreadable source record", "key", k, "err", errors.Join(err1, err2))
				continue
			}
			st := r.state(ip, s.opts.MaxSitesPerSource)
			s.sources[ip] = st
			for _, l := range st.listings {
				s.m.listed.WithLabelValues(ip.String(), l.Zone).Set(boolGauge(l.Listed))
			}
		}
	}
	return it.Error()
}

func (r tenantRecord) state(name string) *tenantState {
	ts := &tenantState{name: name, c: newCounters(weekSlots), tier: r.Tier, tierSince: r.TierSince, firstSeen: r.FirstSeen,
		lastSeen: r.LastSeen, scoreFrom: r.ScoreFrom, accepted: r.Accepted, acceptedT: r.AcceptedUntil, hold: r.Hold, history: r.History}
	if _, ok := tierNames[ts.tier]; !ok {
		ts.tier = Standard
	}
	ts.c.fine.load(r.Fine)
	ts.c.coarse.load(r.Coarse)
	return ts
}

func (ts *tenantState) record() tenantRecord {
	return tenantRecord{Tier: ts.tier, TierSince: ts.tierSince, FirstSeen: ts.firstSeen, LastSeen: ts.lastSeen, ScoreFrom: ts.scoreFrom,
		Accepted: ts.accepted, AcceptedUntil: ts.acceptedT, Hold: ts.hold, History: ts.history,
		Fine: ts.c.fine.export(), Coarse: ts.c.coarse.export()}
}

func (r sourceRecord) state(ip netip.Addr, maxSites int) *sourceState {
	st := &sourceState{ip: ip, c: newCounters(weekSlots), sites: map[string]*siteState{}, listings: map[string]*Listing{}}
	st.c.fine.load(r.Fine)
	st.c.coarse.load(r.Coarse)
	for _, l := range r.Listings {
		st.listings[l.Zone] = &l
	}
	for name, sr := range r.Sites {
		if len(st.sites) >= maxSites {
			break
		}
		ss := &siteState{c: newCounters(daySlots), lastUsed: sr.LastUsed, limit: sr.Limit, strikes: sr.Strikes, until: sr.Until,
			feedback: sr.Feedback, line: sr.Line, day: sr.Day, sentToday: sr.SentToday}
		ss.c.fine.load(sr.Fine)
		ss.c.coarse.load(sr.Coarse)
		ss.setLimiter(time.Time{})
		st.sites[name] = ss
	}
	return st
}

func (st *sourceState) record() sourceRecord {
	r := sourceRecord{Fine: st.c.fine.export(), Coarse: st.c.coarse.export(), Sites: map[string]siteRecord{}}
	for _, l := range st.listings {
		r.Listings = append(r.Listings, *l)
	}
	for name, ss := range st.sites {
		r.Sites[name] = siteRecord{Fine: ss.c.fine.export(), Coarse: ss.c.coarse.export(), LastUsed: ss.lastUsed, Limit: ss.limit,
			Strikes: ss.strikes, Until: ss.until, Feedback: ss.feedback, Line: ss.line, Day: ss.day, SentToday: ss.sentToday}
	}
	return r
}

// persist writes the tenants and sources that changed since the last
// call, in one batch; with sync (Close) the batch is fsynced. Counters
// recorded since the last persist are lost in a crash: the scores are
// statistics, not mail.
func (s *Service) persist(sync bool) error {
	type kv struct {
		key []byte
		val []byte
	}
	var writes []kv
	var errs []error
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	for name, ts := range s.tenants {
		if !ts.dirty {
			continue
		}
		b, err := json.Marshal(ts.record())
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", name, err))
			continue
		}
		ts.dirty = false
		writes = append(writes, kv{[]byte(prefixTenant + name), b})
	}
	for ip, st := range s.sources {
		if !st.dirty {
			continue
		}
		b, err := json.Marshal(st.record())
		if err != nil || len(b) > maxRecordSize {
			errs = append(errs, fmt.Errorf("source %s: record of %d bytes: %v", ip, len(b), err))
			continue
		}
		st.dirty = false
		writes = append(writes, kv{[]byte(prefixSource + ip.String()), b})
	}
	s.mu.Unlock()
	if len(writes) == 0 && !sync {
		return errors.Join(errs...)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, w := range writes {
		if err := b.Set(w.key, w.val, nil); err != nil {
			return fmt.Errorf("reputation: persist: %w", err)
		}
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := b.Commit(opt); err != nil {
		s.mu.Lock()
		for _, w := range writes {
			k := string(w.key)
			if ts := s.tenants[strings.TrimPrefix(k, prefixTenant)]; strings.HasPrefix(k, prefixTenant) && ts != nil {
				ts.dirty = true
			} else if ip, err := netip.ParseAddr(strings.TrimPrefix(k, prefixSource)); err == nil && s.sources[ip] != nil {
				s.sources[ip].dirty = true
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("reputation: persist %d records: %w", len(writes), err)
	}
	return errors.Join(errs...)
}

// pebbleLogger routes Pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.log.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.log.Error(fmt.Sprintf(format, args...)) }

// Fatalf is Pebble giving up on the store; it does not return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

// Forget drops a removed tenant's scores, history and metrics; cmd calls
// it when a tenant is removed from the directory.
func (s *Service) Forget(name string) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.mu.Lock()
	delete(s.tenants, name)
	closed := s.closed
	s.mu.Unlock()
	s.m.tier.DeleteLabelValues(name)
	s.m.held.DeleteLabelValues(name)
	s.m.outcomes.DeletePartialMatch(map[string]string{"tenant": name})
	if closed {
		return nil
	}
	if err := s.db.Delete([]byte(prefixTenant+name), pebble.NoSync); err != nil {
		return fmt.Errorf("reputation: forget %s: %w", name, err)
	}
	return nil
}

package tenant

// DKIM rotation: the pure transition function and the tick that feeds it.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// observation is what DNS said about a pending key's TXT record.
type observation uint8

const (
	obsUnknown   observation = iota // not looked up, or the lookup failed
	obsAbsent                       // no record, or only records with another public key
	obsPublished                    // a record with this key's p= value
)

// advance applies the rotation rules to one domain's keys at now and
// returns their next states (same order; removed keys have State
// KeyRemoved) and whether a scheduled rotation is due. obs holds DNS
// observations of pending keys by selector.
//
//   - pending → active when its record is published and was first seen at
//     least PublishDelay ago. FirstSeen is set when the record is first
//     seen, and cleared when DNS says it is gone (or holds another key);
//     a failed lookup changes nothing.
//   - when a key becomes active, the other active keys of its algorithm
//     become retiring.
//   - retiring → removed RetireDelay after it started retiring.
//   - a rotation is due when an active key has been active for Interval
//     and no key is generating or pending.
func advance(keys []dkimKey, obs map[string]observation, now time.Time, p RotationPolicy) (next []dkimKey, rotate bool) {
	next = slices.Clone(keys)
	newest := map[string]int{} // algorithm → index of the newest key activated now
	for i := range next {
		k := &next[i]
		switch k.State {
		case KeyPending:
			switch obs[k.Selector] {
			case obsPublished:
				if k.FirstSeen.IsZero() {
					k.FirstSeen = now
				}
				if !now.Before(k.FirstSeen.Add(p.PublishDelay)) {
					k.State, k.Activated = KeyActive, now
					if j, ok := newest[k.Algorithm]; !ok || next[j].Created.Before(k.Created) {
						newest[k.Algorithm] = i
					}
				}
			case obsAbsent:
				k.FirstSeen = time.Time{}
			}
		case KeyRetiring:
			if !now.Before(k.RetiringSince.Add(p.RetireDelay)) {
				k.State = KeyRemoved
			}
		}
	}
	for alg, n := range newest {
		for i := range next {
			if i != n && next[i].Algorithm == alg && next[i].State == KeyActive {
				next[i].State, next[i].RetiringSince = KeyRetiring, now
			}
		}
	}
	inProgress, due := false, false
	for _, k := range next {
		switch k.State {
		case KeyGenerating, KeyPending:
			inProgress = true
		case KeyActive:
			if !now.Before(k.Activated.Add(p.Interval)) {
				due = true
			}
		}
	}
	return next, due && !inProgress
}

// sameKey reports whether a and b are in the same state with the same times.
func sameKey(a, b dkimKey) bool {
	return a.State == b.State && a.FirstSeen.Equal(b.FirstSeen) &&
		a.Activated.Equal(b.Activated) && a.RetiringSince.Equal(b.RetiringSince)
}

// dnsLookupWorkers bounds the DNS lookups a tick runs at once.
const dnsLookupWorkers = 8

// TickDKIM advances every domain's DKIM keys: it looks up the TXT records
// of pending keys through the resolver, applies the rotation rules at the
// clock's time, and starts scheduled rotations (whose RSA keys are made in
// the background). A DNS failure is logged for its domain and leaves that
// key as it was; it does not stop the tick. Call it periodically (hourly
// is plenty); stop calling it before Close.
func (d *Directory) TickDKIM(ctx context.Context) error {
	now := d.clock.Now()
	d.mu.RLock()
	snap := make(map[string][]dkimKey, len(d.dkim.domains))
	for domain, keys := range d.dkim.domains {
		vals := make([]dkimKey, len(keys))
		for i, k := range keys {
			vals[i] = k.dkimKey
		}
		snap[domain] = vals
	}
	d.mu.RUnlock()

	obs := d.observePending(ctx, snap)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dkim tick: %w", err)
	}
	var errs []error
	for _, domain := range slices.Sorted(maps.Keys(snap)) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dkim tick: %w", err)
		}
		keys := snap[domain]
		next, rotate := advance(keys, obs[domain], now, d.opts.DKIM)
		if !rotate && slices.EqualFunc(keys, next, sameKey) {
			continue
		}
		if err := d.applyDKIM(domain, obs[domain], now); err != nil {
			d.log.Error("dkim tick", "domain", domain, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// observePending looks up the TXT record of every pending key, a few at a
// time, and returns the observations by domain and selector.
func (d *Directory) observePending(ctx context.Context, snap map[string][]dkimKey) map[string]map[string]observation {
	var jobs []dkimKey
	for _, keys := range snap {
		for _, k := range keys {
			if k.State == KeyPending {
				jobs = append(jobs, k)
			}
		}
	}
	results := make([]observation, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(jobs), dnsLookupWorkers) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				results[i] = d.observeKey(ctx, jobs[i])
			}
		})
	}
	wg.Wait()
	out := map[string]map[string]observation{}
	for i, k := range jobs {
		if out[k.Domain] == nil {
			out[k.Domain] = map[string]observation{}
		}
		out[k.Domain][k.Selector] = results[i]
	}
	return out
}

// observeKey looks up one key's TXT record and compares its p= value.
func (d *Directory) observeKey(ctx context.Context, k dkimKey) observation {
	name := k.recordName()
	txts, err := d.dkim.resolver.LookupTXT(ctx, name)
	if errors.Is(err, ErrDNSNotFound) {
		return obsAbsent
	}
	if err != nil {
		d.log.Warn("dkim: look up key record", "domain", k.Domain, "selector", k.Selector, "err", err)
		return obsUnknown
	}
	if len(txts) > 1 {
		// Verifiers fail a signature whose selector has several records
		// (RFC 6376 §3.6.2.2), so this key must not sign yet.
		d.log.Warn("dkim: several TXT records at the key's name; there must be one", "domain", k.Domain, "selector", k.Selector, "name", name)
		return obsAbsent
	}
	want, _ := keyRecordP(k.TXT)
	if p, ok := keyRecordP(txts[0]); ok && p == want {
		return obsPublished
	}
	d.log.Warn("dkim: key record published with another public key", "domain", k.Domain, "selector", k.Selector, "name", name)
	return obsAbsent
}

// applyDKIM commits what advance says for domain at now, against the keys
// as they are inside the transaction (a rotation or removal may have come
// between the snapshot and here), and starts a rotation if one is due.
func (d *Directory) applyDKIM(domain string, obs map[string]observation, now time.Time) error {
	type event struct {
		k    dkimKey
		from KeyState
	}
	var events []event
	err := d.update(func(tx *txn) error {
		if _, ok := d.st.domains[domain]; !ok {
			return nil
		}
		cur := d.dkim.domains[domain]
		vals := make([]dkimKey, len(cur))
		for i, k := range cur {
			vals[i] = k.dkimKey
		}
		next, rotate := advance(vals, obs, now, d.opts.DKIM)
		var keep []*liveKey
		var gone []string
		for i, k := range next {
			if sameKey(vals[i], k) {
				keep = append(keep, cur[i])
				continue
			}
			events = append(events, event{k, vals[i].State})
			if k.State == KeyRemoved {
				if err := tx.del(k.dbKey()); err != nil {
					return fmt.Errorf("dkim: %s: stage removal of %s: %w", domain, k.Selector, err)
				}
				gone = append(gone, d.keyPath(domain, k.Selector))
				continue
			}
			if err := tx.set(k.dbKey(), &k); err != nil {
				return fmt.Errorf("dkim: %s: stage key %s: %w", domain, k.Selector, err)
			}
			keep = append(keep, &liveKey{dkimKey: k, signer: cur[i].signer})
		}
		tx.afterCommit(func(*state) {
			d.dkim.domains[domain] = keep
			for _, path := range gone {
				if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
					d.log.Error("dkim: remove retired key file", "domain", domain, "path", path, "err", err)
				}
			}
		})
		if rotate {
			d.log.Info("dkim rotation started", "domain", domain, "reason", "schedule")
			return d.stageNewKeys(tx, domain, now, true, nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range events {
		switch {
		case e.k.State != e.from:
			d.log.Info("dkim key "+string(e.k.State), "domain", domain, "selector", e.k.Selector, "from", e.from)
		case e.k.FirstSeen.IsZero():
			d.log.Info("dkim key record no longer seen in DNS", "domain", domain, "selector", e.k.Selector)
		default:
			d.log.Info("dkim key record seen in DNS", "domain", domain, "selector", e.k.Selector)
		}
	}
	return nil
}

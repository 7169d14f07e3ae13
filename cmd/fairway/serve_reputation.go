package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fairway/reputation"
	"fairway/tenant"
)

// openReputation opens the scores in <data_dir>/reputation with the
// config's pools, tier pools and blocklists. onChange runs after a tenant's
// tier or hold changed.
func openReputation(cfg Config, dir *tenant.Directory, resolver tenant.DNS, reg prometheus.Registerer,
	log *slog.Logger, onChange func(reputation.Change), open *closers) (*reputation.Service, error) {
	tierPools := map[reputation.Tier]string{}
	for name, pool := range cfg.Reputation.TierPools {
		tier, _ := reputation.ParseTier(name) // validated
		tierPools[tier] = pool
	}
	rep, err := reputation.Open(filepath.Join(cfg.DataDir, "reputation"), reputation.Options{Logger: log, Registerer: reg,
		TierPools: tierPools, Pools: reputationPools(cfg), DNSBLZones: cfg.Reputation.DNSBL, Resolver: resolver,
		Directory: dir, OnChange: onChange})
	if err != nil {
		return nil, fmt.Errorf("opening reputation: %w", err)
	}
	open.add(func() error {
		if err := rep.Close(); err != nil {
			return fmt.Errorf("closing reputation: %w", err)
		}
		return nil
	})
	return rep, nil
}

// reputationPools are the config's [[pool]] entries with their warm-up
// schedules; a source without an ehlo name announces the hostname.
func reputationPools(cfg Config) map[string][]reputation.Source {
	out := map[string][]reputation.Source{}
	for _, p := range cfg.Pools {
		for _, src := range p.Sources {
			s := reputation.Source{IP: netip.MustParseAddr(src.IP), EHLO: src.EHLO}
			if s.EHLO == "" {
				s.EHLO = cfg.Hostname
			}
			if src.WarmupStart != "" {
				start, _ := time.Parse(time.DateOnly, src.WarmupStart) // validated
				s.Warmup = reputation.Warmup{Start: start, Day1: src.WarmupDay1, Days: src.WarmupDays}
			}
			out[p.Name] = append(out[p.Name], s)
		}
	}
	return out
}

// complaintIntake is the MX's complaint sink: reputation's ARF intake. A
// report that is not ARF or names no tenant of ours is logged and dropped
// (the MX has already accepted it); only a failure to count is an error.
type complaintIntake struct {
	rep *reputation.Service
	log *slog.Logger
}

func (c complaintIntake) IngestARF(ctx context.Context, msg []byte) error {
	r, err := c.rep.IngestARF(ctx, msg)
	switch {
	case errors.Is(err, reputation.ErrNotARF), errors.Is(err, reputation.ErrUnattributed):
		c.log.Info("complaint report not counted", "err", err)
		return nil
	case err != nil:
		return err
	}
	c.log.Info("complaint counted", "tenant", r.Tenant, "feedback_type", r.FeedbackType)
	return nil
}

// reputationTicker is what runReputationTicks drives (*reputation.Service).
type reputationTicker interface {
	Tick(ctx context.Context)
	CheckBlocklists(ctx context.Context)
}

// runReputationTicks evaluates tiers every check interval and asks the
// blocklists every dnsbl interval until ctx is done. A panic in one round is
// logged; the next round runs.
func runReputationTicks(ctx context.Context, r reputationTicker, log *slog.Logger, check, dnsbl time.Duration) {
	tick, bl := time.NewTicker(check), time.NewTicker(dnsbl)
	defer tick.Stop()
	defer bl.Stop()
	safe := func(what string, f func(context.Context)) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("reputation "+what+" panicked", "panic", p, "stack", string(debug.Stack()))
			}
		}()
		f(ctx)
	}
	safe("blocklist check", r.CheckBlocklists)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			safe("tick", r.Tick)
		case <-bl.C:
			safe("blocklist check", r.CheckBlocklists)
		}
	}
}

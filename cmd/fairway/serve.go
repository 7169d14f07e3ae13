package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"fairway/cmd/fairway/adminapi"
	"fairway/fairq"
	"fairway/relay"
	"fairway/reputation"
	"fairway/tenant"
)

// adminShutdownTimeout bounds how long admin requests in progress may run
// on once shutdown starts.
const adminShutdownTimeout = 10 * time.Second

func newServeCmd(configPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the mail server until SIGINT or SIGTERM",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Catch signals first, so one that arrives during startup still
			// shuts down cleanly.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg, err := loadConfig(*configPath)
			if err != nil {
				return err
			}
			return serve(ctx, stop, cfg, cmd.ErrOrStderr())
		},
	}
}

// closers runs the shutdown steps of what serve opened, in reverse order of
// opening.
type closers []func() error

func (c *closers) add(f func() error) { *c = append(*c, f) }

func (c closers) close() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i]())
	}
	return errors.Join(errs...)
}

// serve runs the daemon on cfg until ctx is done, then calls stopSignals (so
// a second signal kills the process the default way) and shuts down.
//
// Startup order: data_dir, queue, directory, queue policy synced from the
// directory, TLS certificate, mail store (unless LMTP), DMARC report store,
// MX server (also relay's local path to hosted domains), delivery,
// submission, the MX and IMAP listeners, admin API, DKIM ticker. Shutdown
// is the reverse: listeners stop before the stores they write close.
func serve(ctx context.Context, stopSignals func(), cfg Config, logOut io.Writer) (err error) {
	log := slog.New(slog.NewTextHandler(logOut, nil))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if fi, err := os.Stat(cfg.DataDir); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("data_dir is accessible to other users", "data_dir", cfg.DataDir, "mode", fi.Mode().Perm())
	}

	var open closers
	defer func() {
		if err != nil { // startup failed: close what was opened
			err = errors.Join(err, open.close())
		}
	}()

	queueDir := filepath.Join(cfg.DataDir, "queue")
	if err := os.MkdirAll(queueDir, 0o700); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	// The queue hands permanent failures to delivery's DSN writer, and
	// delivery takes its work from the queue: the bounce callback reaches
	// delivery through a pointer set once both exist.
	var dsn atomic.Pointer[relay.Delivery]
	queue, err := fairq.Open(queueDir, fairq.Options{Logger: log,
		Bounce: func(ctx context.Context, b fairq.Bounce) error {
			d := dsn.Load()
			if d == nil {
				return errors.New("delivery not running yet")
			}
			return d.Bounce(ctx, b)
		}})
	if err != nil {
		return fmt.Errorf("opening queue %s: %w", queueDir, err)
	}
	open.add(func() error {
		if err := queue.Close(); err != nil {
			return fmt.Errorf("closing queue: %w", err)
		}
		return nil
	})

	resolver := tenant.NewDNSResolver(cfg.DNS.Resolver)
	dir, err := tenant.Open(cfg.DataDir, tenant.Options{Logger: log, Resolver: resolver,
		DKIM: tenant.RotationPolicy{
			Interval:     time.Duration(cfg.DKIM.RotationInterval),
			PublishDelay: time.Duration(cfg.DKIM.PublishDelay),
			RetireDelay:  time.Duration(cfg.DKIM.RetireDelay),
		}})
	if err != nil {
		return fmt.Errorf("opening directory: %w", err)
	}
	open.add(func() error {
		if err := dir.Close(); err != nil {
			return fmt.Errorf("closing directory: %w", err)
		}
		return nil
	})

	registry, metrics := newMetrics(queue)

	// Reputation's tier and hold changes reach the queue through the admin
	// API's one sync function; the API exists later, hence the pointer.
	var apiRef atomic.Pointer[adminapi.API]
	rep, err := openReputation(cfg, dir, resolver, registry, log, func(c reputation.Change) {
		if api := apiRef.Load(); api != nil {
			if err := api.SyncTenant(c.Tenant); err != nil {
				log.Error("applying a reputation change to the queue", "tenant", c.Tenant, "err", err)
			}
		}
	}, &open)
	if err != nil {
		return err
	}
	if err := adminapi.SyncQueue(dir, queue, rep); err != nil {
		return fmt.Errorf("applying tenant policy to the queue: %w", err)
	}

	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	store, err := openMailstore(cfg, dir, log, &open)
	if err != nil {
		return err
	}
	reports, err := openDMARCReports(cfg, dir, log, &open)
	if err != nil {
		return err
	}
	mx, err := newMX(cfg, mxDeps{dir: dir, store: store, queue: queue, reports: reports, resolver: resolver,
		complaints: complaintIntake{rep: rep, log: log},
		tls:        tlsConfig, reg: registry, log: log}, &open)
	if err != nil {
		return err
	}

	// Delivery's lookups are cached; the directory's are not (it must see
	// DKIM records as soon as they are published).
	delivery, err := relay.NewDelivery(relay.DeliveryOptions{Hostname: cfg.Hostname, Queue: queue,
		Resolver: relay.NewDNSCache(resolver, relay.DNSCacheOptions{}), Local: hostedLocal{dir: dir, mx: mx}, Reputation: rep,
		Routes: deliveryRoutes(cfg), Pools: deliveryPools(cfg), DefaultPool: defaultPool(cfg),
		Logger: log, Registerer: registry})
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	dsn.Store(delivery)
	deliveryCtx, stopDelivery := context.WithCancel(context.Background())
	deliveryDone := make(chan struct{})
	go func() {
		defer close(deliveryDone)
		if err := delivery.Run(deliveryCtx); err != nil {
			log.Error("delivery stopped", "err", err)
		}
	}()
	open.add(func() error { stopDelivery(); <-deliveryDone; return nil }) // before the queue closes

	// One password-guessing limiter for every port that checks passwords.
	authLimiter := tenant.NewAuthLimiter(tenant.AuthLimiterOptions{})
	if err := startSubmission(cfg, dir, queue, tlsConfig, authLimiter, registry, log, &open); err != nil {
		return err
	}
	if err := serveMX(cfg, mx, log); err != nil {
		return err
	}
	if err := startIMAP(cfg, store, tlsConfig, authLimiter, registry, log, &open); err != nil {
		return err
	}

	api := adminapi.New(adminapi.Config{Directory: dir, Tokens: dir, Keys: dir, Queue: queue,
		Records: recordParams(cfg), Reputation: rep, Usage: usageOf(store), Logger: log, Metrics: metrics})
	apiRef.Store(api)
	api.HandleDMARC(reports)
	api.HandleExport(cfg.DataDir, dir)
	admin, err := adminapi.Listen(api, adminSocketPath(cfg), cfg.Listen.Admin, log)
	if err != nil {
		return err
	}
	open.add(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		defer cancel()
		return admin.Shutdown(ctx)
	})

	tickCtx, stopTicks := context.WithCancel(context.Background())
	ticks := make(chan struct{})
	go func() {
		defer close(ticks)
		runDKIMTicks(tickCtx, dir, log, time.Duration(cfg.DKIM.CheckInterval))
	}()
	open.add(func() error { stopTicks(); <-ticks; return nil })
	repTicks := make(chan struct{})
	go func() {
		defer close(repTicks)
		runReputationTicks(tickCtx, rep, log, time.Duration(cfg.Reputation.CheckInterval), time.Duration(cfg.Reputation.DNSBLInterval))
	}()
	open.add(func() error { stopTicks(); <-repTicks; return nil })

	log.Info("fairway started", "version", version(), "hostname", cfg.Hostname,
		"data_dir", cfg.DataDir, "pid", os.Getpid())

	<-ctx.Done()
	stopSignals()
	log.Info("shutting down", "cause", context.Cause(ctx))

	closeErr := open.close()
	open = nil // closed; the deferred cleanup has nothing left to do
	if closeErr != nil {
		return closeErr
	}
	log.Info("stopped")
	return nil
}

// dkimTicker advances DKIM key rotation (*tenant.Directory).
type dkimTicker interface {
	TickDKIM(ctx context.Context) error
}

// runDKIMTicks calls TickDKIM now and then every interval until ctx is done.
func runDKIMTicks(ctx context.Context, d dkimTicker, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		tickDKIM(ctx, d, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tickDKIM runs one tick; a panic is logged, not fatal: the next tick tries
// again.
func tickDKIM(ctx context.Context, d dkimTicker, log *slog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("dkim tick panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if err := d.TickDKIM(ctx); err != nil && ctx.Err() == nil {
		log.Warn("dkim tick had errors", "err", err)
	}
}

// deliveryRoutes are the config's [[route]] entries for relay.
func deliveryRoutes(cfg Config) []relay.Route {
	var out []relay.Route
	for _, r := range cfg.Routes {
		out = append(out, relay.Route{Domain: r.Domain, To: r.To})
	}
	return out
}

// deliveryPools are the config's [[pool]] entries; a source without an ehlo
// name announces the hostname. Addresses were checked by validate.
func deliveryPools(cfg Config) map[string][]relay.Source {
	out := map[string][]relay.Source{}
	for _, p := range cfg.Pools {
		for _, src := range p.Sources {
			ehlo := src.EHLO
			if ehlo == "" {
				ehlo = cfg.Hostname
			}
			out[p.Name] = append(out[p.Name], relay.Source{IP: netip.MustParseAddr(src.IP), EHLO: ehlo})
		}
	}
	return out
}

// defaultPool is the pool of tenants that neither pin one nor have one from
// reputation yet: the first [[pool]] in the config ("" when none: the
// system picks the source address).
func defaultPool(cfg Config) string {
	if len(cfg.Pools) == 0 {
		return ""
	}
	return cfg.Pools[0].Name
}

// serverTLS is the certificate of every TLS listener: the configured one,
// else a self-signed one kept in data_dir (made on first use).
func serverTLS(cfg Config) (*tls.Config, error) {
	cert, err := relay.LoadOrCreateCertificate(cfg.TLS.Cert, cfg.TLS.Key, cfg.DataDir, cfg.Hostname, time.Now())
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// submissionShutdownTimeout bounds how long sessions in progress may finish
// once shutdown starts.
const submissionShutdownTimeout = 10 * time.Second

// startSubmission serves the submission (STARTTLS) and submissions
// (implicit TLS) listeners that are configured, with the configured
// certificate or a self-signed one kept in data_dir.
func startSubmission(cfg Config, dir *tenant.Directory, queue *fairq.Queue, tlsConfig *tls.Config,
	authLimiter *tenant.AuthLimiter, reg prometheus.Registerer, log *slog.Logger, open *closers) error {
	if cfg.Listen.Submission == "" && cfg.Listen.Submissions == "" {
		return nil
	}
	sub, err := relay.NewSubmission(relay.SubmissionOptions{Hostname: cfg.Hostname, Directory: dir, Spool: queue,
		TLS: tlsConfig, AuthLimiter: authLimiter, Logger: log, Registerer: reg})
	if err != nil {
		return fmt.Errorf("submission: %w", err)
	}
	open.add(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), submissionShutdownTimeout)
		defer cancel()
		return sub.Shutdown(ctx)
	})
	for _, l := range []struct {
		key, addr string
		serve     func(net.Listener) error
	}{
		{"listen.submission", cfg.Listen.Submission, sub.ServeSTARTTLS},
		{"listen.submissions", cfg.Listen.Submissions, sub.ServeImplicitTLS},
	} {
		if l.addr == "" {
			continue
		}
		if err := listen(log, l.key, l.addr, l.serve); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fairway/cmd/fairway/adminapi"
	"fairway/fairq"
	"fairway/inbound"
	"fairway/inbound/dmarcreport"
	"fairway/mailstore"
	"fairway/tenant"
)

// The receiving side of serve: the mail store, the DMARC report store, the
// MX, and IMAP. Each start function registers its shutdown in open.

// inboundShutdownTimeout bounds how long MX and IMAP sessions in progress
// may finish once shutdown starts.
const inboundShutdownTimeout = 10 * time.Second

// openMailstore opens <data_dir>/mail unless an external LMTP server is the
// store; nil then.
func openMailstore(cfg Config, dir *tenant.Directory, log *slog.Logger, open *closers) (*mailstore.Store, error) {
	if cfg.Inbound.LMTP != "" {
		return nil, nil
	}
	store, err := mailstore.Open(cfg.DataDir, mailstore.Options{Directory: dir, Logger: log,
		MaxMessageSize: cfg.Inbound.MaxMessageBytes})
	if err != nil {
		return nil, fmt.Errorf("opening mail store: %w", err)
	}
	open.add(func() error {
		if err := store.Close(); err != nil {
			return fmt.Errorf("closing mail store: %w", err)
		}
		return nil
	})
	return store, nil
}

// openDMARCReports opens the DMARC aggregate report store in
// <data_dir>/dmarc. The operator's pool addresses are the known sources of
// every domain.
func openDMARCReports(cfg Config, dir *tenant.Directory, log *slog.Logger, open *closers) (*dmarcreport.Store, error) {
	var known []netip.Prefix
	for _, ip := range recordParams(cfg).PoolIPs {
		known = append(known, netip.PrefixFrom(ip, ip.BitLen()))
	}
	reports, err := dmarcreport.Open(filepath.Join(cfg.DataDir, "dmarc"), dmarcreport.Options{Directory: dir, Logger: log,
		KnownSources: func(string) []netip.Prefix { return known }})
	if err != nil {
		return nil, fmt.Errorf("opening DMARC report store: %w", err)
	}
	open.add(func() error {
		if err := reports.Close(); err != nil {
			return fmt.Errorf("closing DMARC report store: %w", err)
		}
		return nil
	})
	return reports, nil
}

// mxDeps are what the MX is wired to.
type mxDeps struct {
	dir        *tenant.Directory
	store      *mailstore.Store // nil with LMTP
	queue      *fairq.Queue
	reports    inbound.ReportSink
	complaints inbound.ComplaintSink // nil: no complaint intake
	resolver   inbound.Resolver
	tls        *tls.Config
	reg        prometheus.Registerer
	log        *slog.Logger
}

// newMX makes the MX server. It is made even when the mx listener is off:
// relay's deliveries to hosted domains go through its local path.
func newMX(cfg Config, d mxDeps, open *closers) (*inbound.MX, error) {
	o := inbound.MXOptions{Hostname: cfg.Hostname, Directory: d.dir, Spool: d.queue,
		Resolver: d.resolver, TLS: d.tls, Logger: d.log, Registerer: d.reg,
		MaxMessageBytes: cfg.Inbound.MaxMessageBytes, MaxRecipients: cfg.Inbound.MaxRecipients,
		MaxConnsPerIP: cfg.Inbound.MaxConnectionsPerIP, LMTP: cfg.Inbound.LMTP}
	if d.store != nil {
		o.Store = d.store
	}
	// The special addresses default to the hostname, which on a laptop may
	// not be a fully qualified name: then they are off, and the log says so.
	special := func(what, addr string) bool {
		if _, err := tenant.NormalizeAddress(addr); err != nil {
			d.log.Warn(what+" intake is off: set hostname to a fully qualified name or set the address in [inbound]",
				"address", addr, "err", err)
			return false
		}
		return true
	}
	if d.reports != nil && special("DMARC report", cfg.dmarcReportAddress()) {
		o.Reports, o.ReportAddress = d.reports, cfg.dmarcReportAddress()
	}
	if d.complaints != nil && special("complaint", cfg.complaintAddress()) {
		o.Complaints, o.ComplaintAddress = d.complaints, cfg.complaintAddress()
	}
	mx, err := inbound.NewMX(o)
	if err != nil {
		return nil, fmt.Errorf("mx: %w", err)
	}
	open.add(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), inboundShutdownTimeout)
		defer cancel()
		return mx.Shutdown(ctx)
	})
	return mx, nil
}

// serveMX serves the mx listener, if configured.
func serveMX(cfg Config, mx *inbound.MX, log *slog.Logger) error {
	if cfg.Listen.MX == "" {
		return nil
	}
	return listen(log, "listen.mx", cfg.Listen.MX, mx.Serve)
}

// startIMAP serves the imap (STARTTLS) and imaps listeners that are
// configured; nothing with an external LMTP store (the mail is not here).
func startIMAP(cfg Config, store *mailstore.Store, tlsConfig *tls.Config, authLimiter *tenant.AuthLimiter,
	reg prometheus.Registerer, log *slog.Logger, open *closers) error {
	if store == nil || cfg.Listen.IMAP == "" && cfg.Listen.IMAPS == "" {
		return nil
	}
	srv, err := mailstore.NewIMAPServer(mailstore.IMAPOptions{Store: store, Hostname: cfg.Hostname, TLS: tlsConfig,
		Logger: log, Registerer: reg, DefaultTenantConnections: cfg.IMAP.TenantConnections,
		DefaultUserConnections: cfg.IMAP.UserConnections, AuthLimiter: authLimiter})
	if err != nil {
		return fmt.Errorf("imap: %w", err)
	}
	open.add(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), inboundShutdownTimeout)
		defer cancel()
		return srv.Shutdown(ctx)
	})
	if cfg.Listen.IMAP != "" {
		if err := listen(log, "listen.imap", cfg.Listen.IMAP, srv.ServeSTARTTLS); err != nil {
			return err
		}
	}
	if cfg.Listen.IMAPS != "" {
		if err := listen(log, "listen.imaps", cfg.Listen.IMAPS, srv.ServeImplicitTLS); err != nil {
			return err
		}
	}
	return nil
}

// listen opens addr and serves it in the background; serve's error (other
// than a shutdown's) is logged.
func listen(log *slog.Logger, key, addr string, serve func(net.Listener) error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	log.Info("listening", "listener", key, "addr", ln.Addr().String())
	go func() {
		if err := serve(ln); err != nil {
			log.Error("listener stopped", "listener", key, "err", err)
		}
	}()
	return nil
}

// hostedLocal is relay's local path: the directory says which domains are
// ours, the MX delivers to them.
type hostedLocal struct {
	dir *tenant.Directory
	mx  *inbound.MX
}

func (h hostedLocal) Hosted(domain string) bool {
	_, ok := h.dir.DomainTenant(domain)
	return ok
}

func (h hostedLocal) DeliverLocal(ctx context.Context, from string, rcpts []string, body, extra []byte) []error {
	return h.mx.DeliverLocal(ctx, from, rcpts, body, extra)
}

// usageOf is the admin API's view of the store's accounting; nil (no usage
// shown) with an external LMTP store.
func usageOf(store *mailstore.Store) adminapi.Usage {
	if store == nil {
		return nil
	}
	return store
}

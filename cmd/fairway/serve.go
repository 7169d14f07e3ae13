package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"fairway/fairq"
)

func newServeCmd(configPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the mail server until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
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

// serve runs the daemon on cfg until ctx is done, then calls stopSignals (so
// a second signal kills the process the default way) and shuts down.
func serve(ctx context.Context, stopSignals func(), cfg Config, logOut io.Writer) error {
	log := slog.New(slog.NewTextHandler(logOut, nil))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if fi, err := os.Stat(cfg.DataDir); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("data_dir is accessible to other users", "data_dir", cfg.DataDir, "mode", fi.Mode().Perm())
	}

	queueDir := filepath.Join(cfg.DataDir, "queue")
	if err := os.MkdirAll(queueDir, 0o700); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	queue, err := fairq.Open(queueDir, fairq.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("opening queue %s: %w", queueDir, err)
	}

	log.Info("fairway started", "version", version(), "hostname", cfg.Hostname,
		"data_dir", cfg.DataDir, "pid", os.Getpid())

	<-ctx.Done()
	stopSignals()
	log.Info("shutting down", "cause", context.Cause(ctx))

	if err := queue.Close(); err != nil {
		return fmt.Errorf("closing queue: %w", err)
	}
	log.Info("stopped")
	return nil
}

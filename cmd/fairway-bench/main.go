// Command fairway-bench runs fairway's load benchmark suite (package
// bench) against a fairway binary it starts, a private Postfix instance,
// or any relay given with --target, and prints a table per scenario and
// writes it as JSON.
//
//	fairway-bench [--scenario all|throughput,crash,...] [--full] [--out DIR]
//	              [--fairway-bin PATH] [--compare postfix] [--postfix]
//	              [--target host:port [--starttls] [--sink-port N]]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"fairway/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fairway-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		scenarios  = flag.String("scenario", "all", "comma-separated scenarios, or all: "+scenarioNames())
		full       = flag.Bool("full", false, "the issue's full sizes (100,000-message newsletter...) instead of the short ones")
		outDir     = flag.String("out", "bench-results", "directory for the JSON reports")
		fairwayBin = flag.String("fairway-bin", "", "fairway binary; empty: build ./cmd/fairway from --module")
		module     = flag.String("module", ".", "fairway's module directory, to build the binary")
		usePostfix = flag.Bool("postfix", false, "run against a private Postfix instance instead of fairway")
		compare    = flag.String("compare", "", "\"postfix\": run each scenario on fairway, then on Postfix, and print both and their ratio")
		script     = flag.String("postfix-script", "bench/postfix.sh", "the script that runs a private Postfix instance")
		target     = flag.String("target", "", "host:port of another relay to load instead (it must route to the sinks; see --sink-port)")
		startTLS   = flag.Bool("starttls", false, "with --target: issue STARTTLS")
		sinkPort   = flag.Int("sink-port", 0, "sinks listen on 127.0.0.1 from this port on (for --target); 0: free ports")
		verbose    = flag.Bool("v", false, "log connection errors")
	)
	flag.Parse()
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	selected, err := selectScenarios(*scenarios)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "fairway-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	fairwayFactory := func() (bench.TargetFactory, error) {
		bin := *fairwayBin
		if bin == "" {
			fmt.Println("building fairway...")
			b, err := bench.BuildFairway(ctx, *module, work)
			if err != nil {
				return nil, err
			}
			bin = b
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, err
		}
		return bench.FairwayFactory{Bin: abs, WorkDir: work}, nil
	}
	postfixFactory := func() (bench.TargetFactory, error) {
		abs, err := filepath.Abs(*script)
		if err != nil {
			return nil, err
		}
		if err := bench.CheckPostfix(ctx, abs); err != nil {
			return nil, fmt.Errorf("postfix cannot run here, so no comparison: %w", err)
		}
		return bench.PostfixFactory{Script: abs, WorkDir: work}, nil
	}

	var factories []bench.TargetFactory
	switch {
	case *target != "":
		factories = []bench.TargetFactory{bench.ExternalFactory{Addr: *target, UseTLS: *startTLS}}
	case *usePostfix:
		f, err := postfixFactory()
		if err != nil {
			return err
		}
		factories = []bench.TargetFactory{f}
	default:
		f, err := fairwayFactory()
		if err != nil {
			return err
		}
		factories = []bench.TargetFactory{f}
		if *compare == "postfix" {
			pf, err := postfixFactory()
			if err != nil {
				return err
			}
			factories = append(factories, pf)
		} else if *compare != "" {
			return fmt.Errorf("--compare %q: only postfix is known", *compare)
		}
	}
	fmt.Printf("machine: %s\n\n", bench.Machine())

	var failed []string
	for _, sc := range selected {
		var reports []*bench.Report
		for _, f := range factories {
			fmt.Printf("running %s on %s...\n", sc.Name, f.Name())
			r, err := sc.Run(ctx, bench.Options{Factory: f, Full: *full, SinkBasePort: *sinkPort, Out: os.Stdout, Log: log})
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return err
				}
				fmt.Printf("%s on %s FAILED: %v\n\n", sc.Name, f.Name(), err)
				failed = append(failed, sc.Name+"/"+f.Name())
				continue
			}
			if err := r.WriteTable(os.Stdout); err != nil {
				return err
			}
			path, err := r.WriteJSON(*outDir)
			if err != nil {
				return err
			}
			fmt.Printf("  wrote %s\n\n", path)
			reports = append(reports, r)
		}
		if len(reports) == 2 {
			c := bench.Compare(reports[0], reports[1])
			if err := c.WriteTable(os.Stdout); err != nil {
				return err
			}
			if path, err := c.WriteJSON(*outDir); err == nil {
				fmt.Printf("  wrote %s\n\n", path)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func scenarioNames() string {
	var ns []string
	for _, s := range bench.Scenarios {
		ns = append(ns, s.Name)
	}
	return strings.Join(ns, ",")
}

func selectScenarios(list string) ([]bench.Scenario, error) {
	if list == "all" {
		return bench.Scenarios, nil
	}
	var out []bench.Scenario
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, s := range bench.Scenarios {
			if s.Name == strings.TrimSpace(name) {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, scenarioNames())
		}
	}
	return out, nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"fairway/cmd/fairway/adminapi"
	"fairway/fairq"
	"fairway/inbound/dmarcreport"
	"fairway/inbound/dmarcreport/dmarctest"
	"fairway/tenant"
)

// dmarcClock is the report store's clock: the CLI's own --since check uses
// the real time, the window is computed by the daemon on this one.
type dmarcClock struct{ t time.Time }

func (c dmarcClock) Now() time.Time { return c.t }

// dmarcDaemon is the admin API with DMARC reports, served on the admin
// socket of a data dir as serve does, and the config file that points the
// CLI at it.
type dmarcDaemon struct {
	config string
	store  *dmarcreport.Store
	dir    *tenant.Directory
}

func startDMARCDaemon(t *testing.T, now time.Time) *dmarcDaemon {
	t.Helper()
	base, err := os.MkdirTemp("", "fwdm") // short: a unix socket path is at most 104 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	data := filepath.Join(base, "data")
	dir, err := tenant.Open(data, tenant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	q, err := fairq.Open(filepath.Join(data, "queue"), fairq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	store, err := dmarcreport.Open(filepath.Join(data, "dmarc"), dmarcreport.Options{Directory: dir, Clock: dmarcClock{now},
		KnownSources: func(string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	api := adminapi.New(adminapi.Config{Directory: dir, Tokens: dir, Keys: dir, Queue: q, Logger: slog.New(slog.DiscardHandler)})
	api.HandleDMARC(store)
	srv, err := adminapi.Listen(api, filepath.Join(data, "admin.sock"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	cfg := filepath.Join(base, "fairway.toml")
	if err := os.WriteFile(cfg, []byte("hostname = \"mx.example.net\"\ndata_dir = \""+data+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &dmarcDaemon{config: cfg, store: store, dir: dir}
}

// dmarcCLI runs `fairway --config C dmarc ARGS...` through the command
// functions, as main's root does.
func (d *dmarcDaemon) cli(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "fairway", SilenceErrors: true, SilenceUsage: true}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	o := &cliOptions{configPath: root.PersistentFlags().String("config", "", ""), json: root.PersistentFlags().Bool("json", false, "")}
	root.AddCommand(dmarcCmd(o))
	root.SetArgs(append([]string{"--config", d.config, "dmarc"}, args...))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = root.ExecuteContext(ctx)
	return out.String(), err
}

// TestDMARCSummaryEndToEnd mails a gzip report into Ingest and reads the
// summary through the admin API and the CLI, as text and as JSON.
func TestDMARCSummaryEndToEnd(t *testing.T) {
	now := time.Now().UTC()
	d := startDMARCDaemon(t, now)
	if err := d.dir.AddTenant("acme", tenant.Policy{Weight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.dir.AddDomain("example.com", "acme"); err != nil {
		t.Fatal(err)
	}
	day := now.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	esp := dmarctest.Pass("198.51.100.7", 40, "example.com")
	espBad := dmarctest.Row{IP: "198.51.100.7", Count: 6, Disposition: "none", DKIM: "fail", SPF: "fail",
		HeaderFrom: "example.com", EnvelopeFrom: "bounces.esp.example", SPFDomain: "bounces.esp.example", SPFResult: "pass"}
	rep := dmarctest.Report{Domain: "example.com", ID: "e2e-1", Begin: day, End: day.Add(24*time.Hour - time.Second),
		Rows: []dmarctest.Row{dmarctest.Pass("192.0.2.1", 120, "example.com"), esp, espBad, dmarctest.Spoof("203.0.113.50", 17, "example.com")}}
	if err := d.store.Ingest(context.Background(), rep.GzipMessage("dmarc-reports@mx.example.net")); err != nil {
		t.Fatal(err)
	}

	out, err := d.cli(t, "summary", "example.com", "--since", "7d")
	if err != nil {
		t.Fatalf("dmarc summary: %v\n%s", err, out)
	}
	t.Logf("fairway dmarc summary example.com:\n%s", out)
	for _, want := range []string{
		"DMARC reports for example.com (tenant acme)",
		"1 report(s) from google.com",
		"183 messages: DMARC pass 87.4%",
		day.Format(time.DateOnly) + "  183",
		"192.0.2.1",
		"Unknown sources sending as example.com (likely spoofing): these are not your servers",
		"203.0.113.50 sent 17 message(s) failing DMARC",
		"198.51.100.7 (a sender that passes DMARC for 40 other message(s)): 6 of 46 message(s) fail DMARC:",
		"SPF pass for bounces.esp.example, not aligned with example.com (6 message(s))",
		"no DKIM signature (6 message(s))",
		"New sending sources since last week: cannot tell yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary text lacks %q:\n%s", want, out)
		}
	}

	out, err = d.cli(t, "summary", "EXAMPLE.COM", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var sum dmarcreport.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if sum.Totals.Messages != 183 || len(sum.Sources) != 3 || len(sum.Signals.UnknownSources) != 1 || len(sum.Signals.FailingKnownSources) != 1 {
		t.Errorf("--json summary: %s", out)
	}

	// A second report arriving twice counts once.
	if err := d.store.Ingest(context.Background(), rep.GzipMessage("dmarc-reports@mx.example.net")); err != nil {
		t.Fatal(err)
	}
	if out, _ := d.cli(t, "summary", "example.com", "--json"); !strings.Contains(out, `"messages":183`) {
		t.Errorf("after a duplicate: %s", out)
	}
}

func TestDMARCCommandErrors(t *testing.T) {
	d := startDMARCDaemon(t, time.Now())
	var ue *usageError
	if _, err := d.cli(t, "summary", "example.com", "--since", "last tuesday"); !errors.As(err, &ue) {
		t.Errorf("bad --since: %v, want a usage error", err)
	}
	if _, err := d.cli(t, "summary"); !errors.As(err, &ue) {
		t.Errorf("no domain: %v, want a usage error", err)
	}
	_, err := d.cli(t, "summary", "elsewhere.example")
	var apiErr *adminapi.Error
	if !errors.As(err, &apiErr) || apiErr.Code != adminapi.CodeNotFound {
		t.Errorf("unhosted domain: %v", err)
	}
	out, err := d.cli(t, "rejected")
	if err != nil || !strings.Contains(out, "no rejected reports") {
		t.Errorf("rejected, none: %q %v", out, err)
	}
	if err := d.store.Ingest(context.Background(), []byte("Subject: hi\r\n\r\nnot a report\r\n")); err != nil {
		t.Fatal(err)
	}
	out, err = d.cli(t, "rejected", "--limit", "5")
	if err != nil || !strings.Contains(out, "no DMARC report in the message") {
		t.Errorf("rejected: %q %v", out, err)
	}
}

func TestPrintDMARCSummaryEmpty(t *testing.T) {
	var b bytes.Buffer
	sum := dmarcreport.Summarize(nil, dmarcreport.SummaryParams{Domain: "example.com", Tenant: "acme",
		Since: time.Date(2026, 11, 13, 0, 0, 0, 0, time.UTC), Now: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)})
	if err := printDMARCSummary(&b, sum); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"No reports in this window.", "(likely spoofing): none.", "misconfigured senders): none."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
}

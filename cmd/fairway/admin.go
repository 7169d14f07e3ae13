package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"fairway/cmd/fairway/adminapi"
	"fairway/tenant"
)

// The plumbing shared by the admin commands: finding the daemon, calling it,
// printing its answer as JSON or text, and reading secrets.

// adminSocketName is the admin socket's file name in data_dir.
const adminSocketName = "admin.sock"

// adminSocketPath is where serve listens and the CLI connects.
func adminSocketPath(cfg Config) string { return filepath.Join(cfg.DataDir, adminSocketName) }

// The default local parts, at the server's own host name, of the address
// DMARC aggregate reports are sent to (the rua= of every hosted domain's
// DMARC record) and of the address feedback loops send complaints to;
// inbound ingests what arrives there.
const (
	dmarcReportLocalPart = "dmarc-reports"
	complaintLocalPart   = "fbl"
)

// recordParams are the inputs of the DNS records every hosted domain must
// publish: the MX is this server, SPF allows every source IP of every pool,
// and DMARC reports come to this server.
func recordParams(cfg Config) tenant.RecordParams {
	p := tenant.RecordParams{Hostname: cfg.Hostname, ReportAddress: cfg.dmarcReportAddress()}
	for _, pool := range cfg.Pools {
		for _, s := range pool.Sources {
			if ip, err := netip.ParseAddr(s.IP); err == nil { // validated by loadConfig
				p.PoolIPs = append(p.PoolIPs, ip)
			}
		}
	}
	return p
}

// cliOptions are the persistent flags every admin command reads.
type cliOptions struct {
	configPath *string
	json       *bool
}

// call sends one request to the daemon. On success it prints the raw JSON
// answer with --json; otherwise it decodes the answer into out and calls
// text to print it. A refusal with --json also prints the error body.
func (o *cliOptions) call(cmd *cobra.Command, method, path string, body, out any, text func(w io.Writer) error) error {
	cfg, err := loadConfig(*o.configPath)
	if err != nil {
		return err
	}
	client := adminapi.NewClient(adminSocketPath(cfg))
	raw, err := client.Call(cmd.Context(), method, path, body, out)
	stdout := cmd.OutOrStdout()
	if err != nil {
		var apiErr *adminapi.Error
		if *o.json && errors.As(err, &apiErr) {
			writeRaw(stdout, raw)
		}
		return err
	}
	if *o.json {
		writeRaw(stdout, raw)
		return nil
	}
	if text == nil {
		return nil
	}
	return text(stdout)
}

func writeRaw(w io.Writer, raw []byte) {
	raw = bytes.TrimSpace(raw)
	_, _ = w.Write(append(raw, '\n'))
}

// table prints rows aligned in columns, the first row being the header.
func table(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// when formats a time for tables; "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return when(*t)
}

// limit formats a send limit; 0 is no limit.
func limit(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// maxPasswordInput bounds what --password-stdin reads.
const maxPasswordInput = 4096

// readPassword reads one line from in: the password, without its line end.
// From a terminal it reads without echo. The password is never printed or
// logged.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReaderSize(io.LimitReader(in, maxPasswordInput+1), 512).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	if len(line) > maxPasswordInput {
		return "", usagef("password on standard input longer than %d bytes", maxPasswordInput)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", usagef("no password on standard input (--password-stdin reads one line)")
	}
	return line, nil
}

// parseNetworks reads --network values: CIDR prefixes, or single addresses.
func parseNetworks(values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p)
			continue
		}
		if ip, err := netip.ParseAddr(v); err == nil && ip.Zone() == "" {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		return nil, usagef("--network %q: want a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32", v)
	}
	return out, nil
}

// args wraps a positional-argument check so that its failure is a usage
// error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noSubcommand,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := make([]string, 0, len(cmd.Commands()))
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			return usagef("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))
		},
	}
	g.AddCommand(subs...)
	return g
}

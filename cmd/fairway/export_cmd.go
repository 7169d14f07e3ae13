package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"fairway/cmd/fairway/adminapi"
)

// `fairway tenant export NAME [-o FILE]` and `fairway tenant import FILE`:
// moving one tenant, its directory entries and its Maildirs, between
// servers as one tar (see adminapi's export.go for its layout and checks).
// Both stream: neither the CLI nor the daemon holds the tar in memory.

// maxImportAnswer bounds the JSON answer of an import.
const maxImportAnswer = 1 << 20

func tenantExportCmd(o *cliOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export NAME [-o FILE]",
		Short: "Write a tar of a tenant: directory entries, DKIM keys and its domains' Maildirs",
		Long: `Write a tar of one tenant, to move it to another server with
'fairway tenant import': its policy, domains, mailboxes (with their password
hashes, so passwords keep working), aliases, DKIM keys (private keys
included, so the published DNS records stay valid) and the Maildirs of its
domains. The tar holds secrets: keep it as you keep the server's data.
Mail delivered while the export runs may be missed; export a quiet tenant.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			toStdout := output == "" || output == "-"
			if toStdout {
				if f, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return usagef("refusing to write a tar to a terminal: use -o FILE or redirect standard output")
				}
			}
			cfg, err := loadConfig(*o.configPath)
			if err != nil {
				return err
			}
			client := adminapi.NewClient(adminSocketPath(cfg))
			body, err := client.Stream(cmd.Context(), http.MethodGet, "/v1/tenants/"+seg(a[0])+"/export", "", nil)
			if err != nil {
				return err
			}
			defer body.Close()
			if toStdout {
				n, err := io.Copy(cmd.OutOrStdout(), body)
				if err != nil {
					return fmt.Errorf("export of tenant %s cut short after %d bytes (the output is incomplete): %w", a[0], n, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "tenant %s exported (%d bytes)\n", a[0], n)
				return nil
			}
			n, err := writeFileSynced(output, body)
			if err != nil {
				return fmt.Errorf("export of tenant %s: %w", a[0], err)
			}
			if *o.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"tenant": a[0], "file": output, "bytes": n})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "tenant %s exported to %s (%d bytes); it holds password hashes and DKIM private keys\n", a[0], output, n)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the tar to `FILE` (mode 0600) instead of standard output")
	return cmd
}

// writeFileSynced writes r to path through a temporary file in the same
// directory, synced and renamed into place: a failed export never leaves a
// file that looks whole. The file is 0600: it holds secrets.
func writeFileSynced(path string, r io.Reader) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".partial-")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, r)
	if err != nil {
		err = fmt.Errorf("cut short after %d bytes: %w", n, err)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return n, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename is durable; a failure here loses nothing already written
		d.Close()
	}
	return n, nil
}

func tenantImportCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Recreate a tenant from a tar made by 'fairway tenant export' (FILE or - for standard input)",
		Long: `Recreate a tenant exported from another server: its directory entries,
DKIM keys and Maildirs. The daemon checks every member of the tar before it
keeps anything; if the tenant, one of its domains or addresses, or a
domain's mail directory exists here, or anything in the tar is amiss,
nothing is imported.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var in io.Reader = cmd.InOrStdin()
			if a[0] != "-" {
				f, err := os.Open(a[0])
				if err != nil {
					return fmt.Errorf("tenant import: %w", err)
				}
				defer f.Close()
				in = f
			}
			cfg, err := loadConfig(*o.configPath)
			if err != nil {
				return err
			}
			client := adminapi.NewClient(adminSocketPath(cfg))
			body, err := client.Stream(cmd.Context(), http.MethodPost, "/v1/tenants/import", "application/x-tar", in)
			if err != nil {
				return err
			}
			defer body.Close()
			raw, err := io.ReadAll(io.LimitReader(body, maxImportAnswer))
			if err != nil {
				return fmt.Errorf("tenant import: reading the answer: %w", err)
			}
			if *o.json {
				writeRaw(cmd.OutOrStdout(), raw)
				return nil
			}
			var res adminapi.ImportedTenant
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("tenant import: decoding the answer: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(),
				"tenant %s imported: domains %s; %d mailbox(es), %d alias(es), %d DKIM key(s); %d mail file(s), %d bytes\n",
				res.Tenant, strings.Join(res.Domains, ", "), res.Mailboxes, res.Aliases, res.DKIMKeys, res.Files, res.Bytes)
			return err
		},
	}
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"fairway/cmd/fairway/adminapi"
	"fairway/tenant"
)

// `fairway tenant rule add|remove|list`: the tenant's inbound quarantine
// rules, applied by the MX in order (the first rule that matches decides).

func tenantRuleCmd(o *cliOptions) *cobra.Command {
	return group("rule", "Inbound quarantine rules of a tenant, applied in order",
		ruleAddCmd(o), ruleRemoveCmd(o), ruleListCmd(o))
}

func ruleAddCmd(o *cliOptions) *cobra.Command {
	var req adminapi.NewRule
	cmd := &cobra.Command{
		Use:   "add TENANT --check CHECK [--result R] [--value V] --action ACTION [--position N]",
		Short: "Add an inbound rule",
		Long: `Add an inbound rule. Checks:
  spf, dkim, dmarc  --result pass|fail|softfail|neutral|none|temperror|permerror
  noauth            neither SPF nor any DKIM signature passed
  attachment        --value "exe,js,scr": an attachment with one of these extensions
  size              --value BYTES: the message is larger
  sender            --value a@example.com or @example.com: envelope sender or From:
Actions: quarantine (to the Quarantine folder), reject (550 5.7.1), and for
sender rules accept (an allow-list entry: the rules after it are skipped).`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if req.Rule.Check == "" || req.Rule.Action == "" {
				return usagef("--check and --action are required")
			}
			var t tenant.Tenant
			return o.call(cmd, http.MethodPost, "/v1/tenants/"+seg(a[0])+"/rules", req, &t, func(w io.Writer) error {
				return printRules(w, t)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Rule.Check, "check", "", "spf, dkim, dmarc, noauth, attachment, size or sender")
	fl.StringVar(&req.Rule.Result, "result", "", "result that matches, for spf, dkim and dmarc")
	fl.StringVar(&req.Rule.Value, "value", "", "extensions, byte count or sender, for attachment, size and sender")
	fl.StringVar(&req.Rule.Action, "action", "", "quarantine, reject or (sender only) accept")
	fl.IntVar(&req.Position, "position", 0, "insert as rule `N` (1 = first); default: last")
	return cmd
}

func ruleRemoveCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove TENANT N",
		Short: "Remove rule N (as numbered by rule list)",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			n, err := strconv.Atoi(a[1])
			if err != nil || n < 1 {
				return usagef("rule number %q: want a number from 1 (as rule list numbers them)", a[1])
			}
			var t tenant.Tenant
			return o.call(cmd, http.MethodDelete, "/v1/tenants/"+seg(a[0])+"/rules/"+strconv.Itoa(n), nil, &t, func(w io.Writer) error {
				return printRules(w, t)
			})
		},
	}
}

func ruleListCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list TENANT",
		Short: "List a tenant's inbound rules in the order they apply",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var t adminapi.TenantDetail
			return o.call(cmd, http.MethodGet, "/v1/tenants/"+seg(a[0]), nil, &t, func(w io.Writer) error {
				return printRules(w, t.Tenant)
			})
		},
	}
}

func printRules(w io.Writer, t tenant.Tenant) error {
	if len(t.Policy.Quarantine) == 0 {
		_, err := fmt.Fprintf(w, "tenant %s has no inbound rules\n", t.Name)
		return err
	}
	rows := [][]string{{"#", "CHECK", "MATCHES", "ACTION"}}
	for i, r := range t.Policy.Quarantine {
		rows = append(rows, []string{strconv.Itoa(i + 1), r.Check, orDash(ruleMatch(r)), r.Action})
	}
	return table(w, rows)
}

// ruleMatch says what a rule matches, in a few words.
func ruleMatch(r tenant.QuarantineRule) string {
	switch r.Check {
	case "size":
		return "larger than " + r.Value + " bytes"
	case "attachment":
		return "extension " + r.Value
	case "sender":
		return r.Value
	case "noauth":
		return "no SPF or DKIM pass"
	}
	return r.Result
}

// byteSize is a flag holding a byte count written as 1024, 500K, 20M, 2G or
// 1T (powers of 1024; a trailing B or iB is allowed).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *byteSize) Type() string   { return "size" }
func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseByteSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a byte count such as 1048576, 500M or 2G", s)
	}
	return n * mult, nil
}

// formatBytes writes a byte count for people: 0 is "-".
func formatBytes(n int64) string {
	switch {
	case n == 0:
		return "-"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// storageUsed formats the mail store's usage; "-" without a mail store.
func storageUsed(n *int64) string {
	switch {
	case n == nil:
		return "- (no local mail store)"
	case *n == 0:
		return "0 bytes"
	}
	return formatBytes(*n)
}

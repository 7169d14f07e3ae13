package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"fairway/cmd/fairway/adminapi"
	"fairway/tenant"
)

// The admin commands: each is one call on the admin API (see adminapi's
// package doc for the routes) and a readable rendering of its answer.

// addAdminCommands adds every admin command to root.
func addAdminCommands(root *cobra.Command, o *cliOptions) {
	root.AddCommand(
		group("tenant", "Manage tenants: policy, suspension, removal",
			tenantAddCmd(o), tenantUpdateCmd(o), tenantListCmd(o), tenantShowCmd(o),
			tenantSuspendCmd(o), tenantResumeCmd(o), tenantRemoveCmd(o), tenantRuleCmd(o),
			tenantExportCmd(o), tenantImportCmd(o)),
		group("domain", "Manage hosted domains",
			domainAddCmd(o), domainListCmd(o), domainRemoveCmd(o)),
		group("mailbox", "Manage mailboxes (users, by full address)",
			mailboxAddCmd(o), mailboxPasswdCmd(o), mailboxListCmd(o), mailboxRemoveCmd(o)),
		group("alias", "Manage aliases",
			aliasAddCmd(o), aliasRemoveCmd(o), aliasListCmd(o)),
		importCmd(o),
		group("dns", "DNS records each hosted domain must publish",
			dnsRecordsCmd(o), dnsCheckCmd(o)),
		group("dkim", "DKIM keys and their rotation",
			dkimStatusCmd(o), dkimRotateCmd(o)),
		group("queue", "Inspect and act on the outbound queue",
			queueStatsCmd(o), queueListCmd(o), queueRetryCmd(o), queueDeleteCmd(o)),
		dmarcCmd(o),
		reputationCmd(o),
		group("token", "Bearer tokens for the admin API over HTTP",
			tokenCreateCmd(o), tokenListCmd(o), tokenRevokeCmd(o)),
	)
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// ---- tenant ----

// policyFlags are the policy flags of tenant add and tenant update.
type policyFlags struct {
	weight, mailboxHourly, accountDaily int
	networks                            []string
	pool                                string
	anySender                           bool
	mailboxQuota, tenantQuota           byteSize
	imapConns, imapUserConns            int
}

func (f *policyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.weight, "weight", 1, "share of the outbound queue relative to other tenants (1-1000)")
	fl.IntVar(&f.mailboxHourly, "mailbox-hourly", 0, "recipients per mailbox per hour; 0: no limit")
	fl.IntVar(&f.accountDaily, "account-daily", 0, "recipients per tenant (all mailboxes) per day; 0: no limit")
	fl.StringArrayVar(&f.networks, "network", nil, "client network (`CIDR`) that submits without AUTH as this tenant; repeatable")
	fl.StringVar(&f.pool, "pool", "", "pin the tenant to this outbound IP `pool` instead of the one its reputation selects")
	fl.BoolVar(&f.anySender, "any-sender", false, "let the tenant's users send as any address of its domains")
	fl.Var(&f.mailboxQuota, "mailbox-quota", "bytes each mailbox may store (e.g. 2G); 0: no limit")
	fl.Var(&f.tenantQuota, "tenant-quota", "bytes all the tenant's mailboxes may store together (e.g. 50G); 0: no limit")
	fl.IntVar(&f.imapConns, "imap-connections", 0, "concurrent IMAP connections of the tenant; 0: server default")
	fl.IntVar(&f.imapUserConns, "imap-user-connections", 0, "concurrent IMAP connections per user; 0: server default")
}

func tenantAddCmd(o *cliOptions) *cobra.Command {
	var f policyFlags
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a tenant",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			nets, err := parseNetworks(f.networks)
			if err != nil {
				return err
			}
			req := adminapi.NewTenant{Name: a[0], Policy: tenant.Policy{
				Weight: f.weight, MailboxHourly: f.mailboxHourly, AccountDaily: f.accountDaily,
				Pool: f.pool, AnySender: f.anySender, Networks: nets,
				MailboxQuota: int64(f.mailboxQuota), TenantQuota: int64(f.tenantQuota),
				IMAPConnections: f.imapConns, IMAPUserConnections: f.imapUserConns,
			}}
			var t tenant.Tenant
			return o.call(cmd, http.MethodPost, "/v1/tenants", req, &t, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "tenant %s added (weight %d)\n", t.Name, t.Policy.Weight)
				return err
			})
		},
	}
	f.register(cmd)
	return cmd
}

func tenantUpdateCmd(o *cliOptions) *cobra.Command {
	var f policyFlags
	var clearNetworks bool
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a tenant's policy: only the flags given change (--network replaces the list)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var u adminapi.TenantUpdate
			fl := cmd.Flags()
			if fl.Changed("weight") {
				u.Weight = &f.weight
			}
			if fl.Changed("mailbox-hourly") {
				u.MailboxHourly = &f.mailboxHourly
			}
			if fl.Changed("account-daily") {
				u.AccountDaily = &f.accountDaily
			}
			if fl.Changed("pool") {
				u.Pool = &f.pool
			}
			if fl.Changed("any-sender") {
				u.AnySender = &f.anySender
			}
			if fl.Changed("mailbox-quota") {
				u.MailboxQuota = (*int64)(&f.mailboxQuota)
			}
			if fl.Changed("tenant-quota") {
				u.TenantQuota = (*int64)(&f.tenantQuota)
			}
			if fl.Changed("imap-connections") {
				u.IMAPConns = &f.imapConns
			}
			if fl.Changed("imap-user-connections") {
				u.IMAPUserConns = &f.imapUserConns
			}
			if fl.Changed("network") && clearNetworks {
				return usagef("--network and --clear-networks exclude each other")
			}
			if fl.Changed("network") || clearNetworks {
				nets, err := parseNetworks(f.networks)
				if err != nil {
					return err
				}
				u.Networks = &nets
			}
			if u == (adminapi.TenantUpdate{}) {
				return usagef("nothing to change: give at least one policy flag")
			}
			var t tenant.Tenant
			return o.call(cmd, http.MethodPatch, "/v1/tenants/"+seg(a[0]), u, &t, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "tenant %s updated\n", t.Name)
				return err
			})
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&clearNetworks, "clear-networks", false, "remove every client network")
	return cmd
}

func tenantListCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ts []tenant.Tenant
			return o.call(cmd, http.MethodGet, "/v1/tenants", nil, &ts, func(w io.Writer) error {
				rows := [][]string{{"TENANT", "WEIGHT", "MAILBOX/H", "ACCOUNT/D", "POOL", "SUSPENDED"}}
				for _, t := range ts {
					p := t.Policy
					rows = append(rows, []string{t.Name, fmt.Sprint(p.Weight), limit(p.MailboxHourly),
						limit(p.AccountDaily), orDash(p.Pool), yesNo(p.Suspended)})
				}
				return table(w, rows)
			})
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func tenantShowCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a tenant's policy and domains",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var t adminapi.TenantDetail
			return o.call(cmd, http.MethodGet, "/v1/tenants/"+seg(a[0]), nil, &t, func(w io.Writer) error {
				p := t.Policy
				nets := make([]string, 0, len(p.Networks))
				for _, n := range p.Networks {
					nets = append(nets, n.String())
				}
				rules := make([]string, 0, len(p.Quarantine))
				for i, r := range p.Quarantine {
					rules = append(rules, fmt.Sprintf("%d. %s %s → %s", i+1, r.Check, ruleMatch(r), r.Action))
				}
				pool := p.Pool
				if pool == "" {
					pool = "(chosen by reputation)"
				}
				return table(w, [][]string{
					{"tenant:", t.Name},
					{"weight:", fmt.Sprint(p.Weight)},
					{"mailbox/hour:", limit(p.MailboxHourly)},
					{"account/day:", limit(p.AccountDaily)},
					{"pool:", pool},
					{"any sender:", yesNo(p.AnySender)},
					{"suspended:", yesNo(p.Suspended)},
					{"networks:", orDash(strings.Join(nets, ", "))},
					{"inbound rules:", orDash(strings.Join(rules, "; "))},
					{"mailbox quota:", formatBytes(p.MailboxQuota)},
					{"tenant quota:", formatBytes(p.TenantQuota)},
					{"storage used:", storageUsed(t.StorageUsed)},
					{"imap conns:", limit(p.IMAPConnections) + " (per user " + limit(p.IMAPUserConnections) + ")"},
					{"created:", when(t.Created)},
					{"domains:", orDash(strings.Join(t.Domains, ", "))},
				})
			})
		},
	}
}

func tenantSuspendCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "suspend NAME",
		Short: "Suspend a tenant: submissions refused (451), queued mail held",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodPost, "/v1/tenants/"+seg(a[0])+"/suspend", nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "tenant %s suspended; its queued mail is held\n", a[0])
				return err
			})
		},
	}
}

func tenantResumeCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "End a tenant's suspension and release its queued mail",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodPost, "/v1/tenants/"+seg(a[0])+"/resume", nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "tenant %s resumed; its queued mail is released\n", a[0])
				return err
			})
		},
	}
}

func tenantRemoveCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a tenant with all its domains, mailboxes, aliases and DKIM keys",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodDelete, "/v1/tenants/"+seg(a[0]), nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "tenant %s removed with its domains, mailboxes, aliases and keys\n", a[0])
				return err
			})
		},
	}
}

// ---- domain ----

func domainAddCmd(o *cliOptions) *cobra.Command {
	var tenantName string
	cmd := &cobra.Command{
		Use:   "add DOMAIN --tenant NAME",
		Short: "Host a domain for a tenant and create its DKIM keys",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if tenantName == "" {
				return usagef("--tenant is required")
			}
			var d tenant.Domain
			req := adminapi.NewDomain{Domain: a[0], Tenant: tenantName}
			return o.call(cmd, http.MethodPost, "/v1/domains", req, &d, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "domain %s added for tenant %s with new DKIM keys\n"+
					"publish its records: fairway dns records %s\n", d.Name, d.Tenant, d.Name)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&tenantName, "tenant", "", "the tenant the domain belongs to (required)")
	return cmd
}

func domainListCmd(o *cliOptions) *cobra.Command {
	var tenantName string
	cmd := &cobra.Command{
		Use:   "list [--tenant NAME]",
		Short: "List hosted domains",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/v1/domains"
			if tenantName != "" {
				path += "?tenant=" + url.QueryEscape(tenantName)
			}
			var ds []tenant.Domain
			return o.call(cmd, http.MethodGet, path, nil, &ds, func(w io.Writer) error {
				rows := [][]string{{"DOMAIN", "TENANT", "CREATED"}}
				for _, d := range ds {
					rows = append(rows, []string{d.Name, d.Tenant, when(d.Created)})
				}
				return table(w, rows)
			})
		},
	}
	cmd.Flags().StringVar(&tenantName, "tenant", "", "only this tenant's domains")
	return cmd
}

func domainRemoveCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove DOMAIN",
		Short: "Remove a domain with its mailboxes, aliases and DKIM keys",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodDelete, "/v1/domains/"+seg(a[0]), nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "domain %s removed with its mailboxes, aliases and keys\n", a[0])
				return err
			})
		},
	}
}

// ---- mailbox ----

// stdinPassword reads the password of mailbox add/passwd, which is only
// ever taken from standard input.
func stdinPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	if !fromStdin {
		return "", usagef("--password-stdin is required: the password is read from standard input, never from the command line")
	}
	return readPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
}

func mailboxAddCmd(o *cliOptions) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "add ADDRESS --password-stdin",
		Short: "Add a mailbox; its password is read from standard input",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			pw, err := stdinPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			var m adminapi.Mailbox
			req := adminapi.NewMailbox{Address: a[0], Password: pw}
			return o.call(cmd, http.MethodPost, "/v1/mailboxes", req, &m, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "mailbox %s added (tenant %s)\n", m.Address, m.Tenant)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	return cmd
}

func mailboxPasswdCmd(o *cliOptions) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd ADDRESS --password-stdin",
		Short: "Set a mailbox's password, read from standard input",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			pw, err := stdinPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			var m adminapi.Mailbox
			return o.call(cmd, http.MethodPut, "/v1/mailboxes/"+seg(a[0])+"/password", adminapi.NewPassword{Password: pw}, &m,
				func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "password of %s changed\n", m.Address)
					return err
				})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	return cmd
}

func mailboxListCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list DOMAIN",
		Short: "List a domain's mailboxes",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var ms []adminapi.Mailbox
			return o.call(cmd, http.MethodGet, "/v1/domains/"+seg(a[0])+"/mailboxes", nil, &ms, func(w io.Writer) error {
				rows := [][]string{{"MAILBOX", "TENANT", "CREATED"}}
				for _, m := range ms {
					rows = append(rows, []string{m.Address, m.Tenant, when(m.Created)})
				}
				return table(w, rows)
			})
		},
	}
}

func mailboxRemoveCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ADDRESS",
		Short: "Remove a mailbox",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodDelete, "/v1/mailboxes/"+seg(a[0]), nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "mailbox %s removed\n", a[0])
				return err
			})
		},
	}
}

// ---- alias ----

func aliasAddCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "add ALIAS TARGET",
		Short: "Forward ALIAS to TARGET (a mailbox of the same tenant, or an external address)",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var al tenant.Alias
			return o.call(cmd, http.MethodPost, "/v1/aliases", adminapi.NewAlias{Alias: a[0], Target: a[1]}, &al,
				func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "alias %s → %s\n", al.Address, strings.Join(al.Targets, ", "))
					return err
				})
		},
	}
}

func aliasRemoveCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ALIAS [TARGET]",
		Short: "Remove one target of an alias, or the whole alias",
		Args:  args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := "/v1/aliases/" + seg(a[0])
			what := "alias " + a[0]
			if len(a) == 2 {
				path += "?target=" + url.QueryEscape(a[1])
				what = "target " + a[1] + " of alias " + a[0]
			}
			return o.call(cmd, http.MethodDelete, path, nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s removed\n", what)
				return err
			})
		},
	}
}

func aliasListCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list DOMAIN",
		Short: "List a domain's aliases",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var as []tenant.Alias
			return o.call(cmd, http.MethodGet, "/v1/domains/"+seg(a[0])+"/aliases", nil, &as, func(w io.Writer) error {
				rows := [][]string{{"ALIAS", "TARGETS"}}
				for _, al := range as {
					rows = append(rows, []string{al.Address, strings.Join(al.Targets, ", ")})
				}
				return table(w, rows)
			})
		},
	}
}

// ---- import ----

func importCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Onboard tenants, domains and mailboxes from CSV (FILE or - for standard input)",
		Long: `Onboard tenants, domains and mailboxes in bulk. Each line is
tenant,domain or tenant,domain,mailbox,password (a header line is allowed).
The whole file is checked first; if any line is bad, every bad line is
reported with its number and nothing is written. Otherwise everything is
written in one commit. Missing tenants are created with the default policy.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var in io.Reader = cmd.InOrStdin()
			if a[0] != "-" {
				f, err := os.Open(a[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.Size() > adminapi.MaxImportBytes {
					return fmt.Errorf("import: %s is larger than %d MB; split it", a[0], adminapi.MaxImportBytes>>20)
				}
				in = f
			}
			var res adminapi.ImportResult
			return o.call(cmd, http.MethodPost, "/v1/import", in, &res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "imported %d tenant(s), %d domain(s), %d mailbox(es)\n",
					res.Tenants, res.Domains, res.Mailboxes)
				return err
			})
		},
	}
}

// ---- dns, dkim ----

func dnsRecordsCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "records DOMAIN",
		Short: "Print the zone-file lines to publish: MX, SPF, DKIM, DMARC",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var recs []adminapi.DNSRecord
			return o.call(cmd, http.MethodGet, "/v1/domains/"+seg(a[0])+"/dns/records", nil, &recs, func(w io.Writer) error {
				for _, r := range recs {
					if _, err := fmt.Fprintln(w, r.ZoneLine); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}

func dnsCheckCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "check DOMAIN",
		Short: "Check the domain's records in DNS: ok, missing or different",
		Long: `Look up each record 'fairway dns records' lists, through the configured
resolver, and say whether it is published as it should be. Exits 1 if any
record is not.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var checks []tenant.RecordCheck
			err := o.call(cmd, http.MethodGet, "/v1/domains/"+seg(a[0])+"/dns/check", nil, &checks, func(w io.Writer) error {
				rows := [][]string{{"STATUS", "TYPE", "NAME", "DETAIL"}}
				for _, c := range checks {
					detail := c.Detail
					if c.Status == tenant.CheckMissing || c.Status == tenant.CheckDifferent {
						detail = strings.TrimSpace(detail + "; publish: " + c.Record.ZoneLine())
					}
					rows = append(rows, []string{string(c.Status), c.Record.Type, c.Record.Name, detail})
				}
				return table(w, rows)
			})
			if err != nil {
				return err
			}
			bad := 0
			for _, c := range checks {
				if c.Status != tenant.CheckOK {
					bad++
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d records of %s are not published as they should be", bad, len(checks), a[0])
			}
			return nil
		},
	}
}

func dkimStatusCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status DOMAIN",
		Short: "Show each DKIM key's state and what to publish or remove",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var keys []tenant.DKIMKeyStatus
			return o.call(cmd, http.MethodGet, "/v1/domains/"+seg(a[0])+"/dkim", nil, &keys, func(w io.Writer) error {
				return printKeys(w, keys)
			})
		},
	}
}

func dkimRotateCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate DOMAIN",
		Short: "Start a DKIM key rotation now",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var keys []tenant.DKIMKeyStatus
			return o.call(cmd, http.MethodPost, "/v1/domains/"+seg(a[0])+"/dkim/rotate", nil, &keys, func(w io.Writer) error {
				if _, err := fmt.Fprintf(w, "rotation of %s started: publish the new keys' records\n\n", a[0]); err != nil {
					return err
				}
				return printKeys(w, keys)
			})
		},
	}
}

func printKeys(w io.Writer, keys []tenant.DKIMKeyStatus) error {
	rows := [][]string{{"SELECTOR", "ALGORITHM", "STATE", "NEXT STEP", "ACTION"}}
	for _, k := range keys {
		rows = append(rows, []string{k.Selector, k.Algorithm, string(k.State), when(k.Next), k.Action})
	}
	return table(w, rows)
}

// ---- queue ----

func queueStatsCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Queue depth per tenant and the state of each delivery lane",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s adminapi.QueueStats
			return o.call(cmd, http.MethodGet, "/v1/queue/stats", nil, &s, func(w io.Writer) error {
				rows := [][]string{{"TENANT", "WEIGHT", "POOL", "READY", "DEFERRED", "HELD", "IN FLIGHT", "OLDEST"}}
				for _, t := range s.Tenants {
					rows = append(rows, []string{t.Tenant, fmt.Sprint(t.Weight), orDash(t.Pool), fmt.Sprint(t.Ready),
						fmt.Sprint(t.Deferred), fmt.Sprint(t.Held), fmt.Sprint(t.InFlight), whenPtr(t.Oldest)})
				}
				if err := table(w, rows); err != nil {
					return err
				}
				if len(s.Lanes) > 0 {
					rows = [][]string{{"POOL", "SITE", "IN FLIGHT", "LIMIT", "PARKED", "FAILURES", "BACKOFF UNTIL"}}
					for _, l := range s.Lanes {
						rows = append(rows, []string{orDash(l.Pool), l.Site, fmt.Sprint(l.InFlight), fmt.Sprint(l.Limit),
							fmt.Sprint(l.Parked), fmt.Sprint(l.Failures), whenPtr(l.BackoffUntil)})
					}
					fmt.Fprintln(w)
					if err := table(w, rows); err != nil {
						return err
					}
				}
				if s.Quarantined > 0 {
					fmt.Fprintf(w, "\n%d unreadable queue entries quarantined\n", s.Quarantined)
				}
				return nil
			})
		},
	}
}

func queueListCmd(o *cliOptions) *cobra.Command {
	var tenantName, after string
	var n int
	cmd := &cobra.Command{
		Use:   "list [--tenant T] [--limit N]",
		Short: "List queued deliveries, oldest message first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if tenantName != "" {
				q.Set("tenant", tenantName)
			}
			if after != "" {
				q.Set("after", after)
			}
			if cmd.Flags().Changed("limit") {
				q.Set("limit", strconv.Itoa(n))
			}
			path := "/v1/queue/messages"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var es []adminapi.QueueEntry
			return o.call(cmd, http.MethodGet, path, nil, &es, func(w io.Writer) error {
				rows := [][]string{{"ID", "TENANT", "FROM", "DOMAIN", "RCPTS", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR"}}
				for _, e := range es {
					rows = append(rows, []string{e.ID, e.Tenant, orDash(e.From), e.Domain, fmt.Sprint(len(e.Recipients)),
						fmt.Sprint(e.Attempts), whenPtr(e.NextAttempt), orDash(oneLine(e.LastError))})
				}
				return table(w, rows)
			})
		},
	}
	cmd.Flags().StringVar(&tenantName, "tenant", "", "only this tenant's deliveries")
	cmd.Flags().IntVar(&n, "limit", 100, "at most `N` deliveries (1-1000)")
	cmd.Flags().StringVar(&after, "after", "", "only messages after this `ID` (the last one listed, for the next page)")
	return cmd
}

// oneLine keeps a table row on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func queueRetryCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID",
		Short: "Make a queued message's deliveries due now",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodPost, "/v1/queue/messages/"+seg(a[0])+"/retry", nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "message %s: retry requested\n", a[0])
				return err
			})
		},
	}
}

func queueDeleteCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a queued message without bouncing it",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodDelete, "/v1/queue/messages/"+seg(a[0]), nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "message %s deleted\n", a[0])
				return err
			})
		},
	}
}

// ---- token ----

func tokenCreateCmd(o *cliOptions) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "create [--name N]",
		Short: "Create a bearer token for the admin API over HTTP; printed once",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t adminapi.Token
			return o.call(cmd, http.MethodPost, "/v1/tokens", adminapi.NewToken{Name: name}, &t, func(w io.Writer) error {
				// The token alone on stdout, so that TOKEN=$(fairway token create) works.
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s created; store it now, it cannot be shown again\n", t.ID)
				_, err := fmt.Fprintln(w, t.Secret)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "what the token is for")
	return cmd
}

func tokenListCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List admin tokens (never their secrets)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ts []adminapi.Token
			return o.call(cmd, http.MethodGet, "/v1/tokens", nil, &ts, func(w io.Writer) error {
				rows := [][]string{{"ID", "NAME", "CREATED"}}
				for _, t := range ts {
					rows = append(rows, []string{t.ID, orDash(t.Name), when(t.Created)})
				}
				return table(w, rows)
			})
		},
	}
}

func tokenRevokeCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an admin token",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.call(cmd, http.MethodDelete, "/v1/tokens/"+seg(a[0]), nil, nil, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "token %s revoked\n", a[0])
				return err
			})
		},
	}
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"fairway/inbound/dmarcreport"
)

// The DMARC commands: what the aggregate reports received for a hosted
// domain say (package dmarcreport, through the admin API's /v1/dmarc
// routes).

// dmarcCmd is `fairway dmarc summary|rejected`.
func dmarcCmd(o *cliOptions) *cobra.Command {
	return group("dmarc", "DMARC aggregate reports received for hosted domains",
		dmarcSummaryCmd(o), dmarcRejectedCmd(o))
}

func dmarcSummaryCmd(o *cliOptions) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "summary DOMAIN",
		Short: "Roll up a domain's DMARC reports per day and per source IP, with the signals to act on",
		Long: `Roll up the DMARC aggregate reports received for DOMAIN: per day and per
source IP, the volume, SPF/DKIM/DMARC pass rates and dispositions; then the
signals: unknown sources sending as the domain (spoofing), known sources
failing alignment (a misconfigured sender, and why), and sources new since
last week.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := dmarcreport.ParseSince(since, time.Now()); err != nil {
				return usagef("--since %q: want a duration back such as 7d, 24h, 30d, or an RFC 3339 time", since)
			}
			var sum dmarcreport.Summary
			path := "/v1/dmarc/" + seg(a[0]) + "/summary?since=" + url.QueryEscape(since)
			return o.call(cmd, http.MethodGet, path, nil, &sum, func(w io.Writer) error {
				return printDMARCSummary(w, sum)
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "7d", "window start: a `duration` back (7d, 24h, 30d) or an RFC 3339 time")
	return cmd
}

func dmarcRejectedCmd(o *cliOptions) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "rejected",
		Short: "List the report messages kept aside (malformed, too big, for a domain not hosted), newest first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return usagef("--limit %d: want 1 to 1000", limit)
			}
			var rs []dmarcreport.RejectedReport
			return o.call(cmd, http.MethodGet, "/v1/dmarc/rejected?limit="+strconv.Itoa(limit), nil, &rs, func(w io.Writer) error {
				if len(rs) == 0 {
					_, err := fmt.Fprintln(w, "no rejected reports")
					return err
				}
				rows := [][]string{{"RECEIVED", "FROM", "DOMAIN", "SIZE", "REASON"}}
				for _, r := range rs {
					rows = append(rows, []string{when(r.Received), orDash(r.From), orDash(r.Domain), strconv.Itoa(r.Size), r.Reason})
				}
				return table(w, rows)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "how many to list")
	return cmd
}

// printDMARCSummary renders a summary: a heading, the per-day table, the
// per-source table, then the signals in plain words.
func printDMARCSummary(w io.Writer, s dmarcreport.Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "DMARC reports for %s (tenant %s), %s to %s\n", s.Domain, s.Tenant,
		s.Since.UTC().Format("2006-01-02 15:04"), s.Until.UTC().Format("2006-01-02 15:04 MST"))
	if s.Reports == 0 {
		b.WriteString("No reports in this window.\n")
	} else {
		fmt.Fprintf(&b, "%d report(s) from %s\n", s.Reports, strings.Join(s.Reporters, ", "))
		t := s.Totals
		fmt.Fprintf(&b, "%d messages: DMARC pass %s, SPF %s, DKIM %s; %s\n", t.Messages, pct(t.DMARCPassRate),
			pct(t.SPFPassRate), pct(t.DKIMPassRate), dispositions(t.Disposition))

		b.WriteString("\nPer day:\n")
		rows := [][]string{{"DAY", "MESSAGES", "DMARC", "SPF", "DKIM", "NONE", "QUARANTINE", "REJECT"}}
		for _, d := range s.Days {
			rows = append(rows, append([]string{d.Day}, countCells(d.Counts)...))
		}
		if err := table(&b, rows); err != nil {
			return err
		}

		b.WriteString("\nPer source IP:\n")
		rows = [][]string{{"SOURCE", "KNOWN", "MESSAGES", "DMARC", "SPF", "DKIM", "NONE", "QUARANTINE", "REJECT", "HEADER FROM", "REPORTERS"}}
		for _, src := range s.Sources {
			r := append([]string{src.IP.String(), yesNo(src.Known)}, countCells(src.Counts)...)
			rows = append(rows, append(r, orDash(strings.Join(src.HeaderFrom, ",")), orDash(strings.Join(src.Reporters, ","))))
		}
		if err := table(&b, rows); err != nil {
			return err
		}
		if s.SourcesOmitted > 0 {
			fmt.Fprintf(&b, "(%d more sources with less volume not shown; --json has the same cap)\n", s.SourcesOmitted)
		}
	}
	writeDMARCSignals(&b, s)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeDMARCSignals(b *strings.Builder, s dmarcreport.Summary) {
	sig := s.Signals
	b.WriteString("\nSignals:\n")

	fmt.Fprintf(b, "Unknown sources sending as %s (likely spoofing):", s.Domain)
	if len(sig.UnknownSources) == 0 {
		b.WriteString(" none.\n")
	} else {
		b.WriteString(" these are not your servers and never passed DMARC.\n")
		for _, u := range sig.UnknownSources {
			fmt.Fprintf(b, "  - %s sent %d message(s) failing DMARC (%s), header From %s, envelope from %s, reported by %s\n",
				u.IP, u.Messages, dispositions(u.Disposition), orDash(strings.Join(u.HeaderFrom, ", ")),
				orDash(strings.Join(u.EnvelopeFrom, ", ")), orDash(strings.Join(u.Reporters, ", ")))
		}
	}

	b.WriteString("Known sources failing alignment (misconfigured senders):")
	if len(sig.FailingKnownSources) == 0 {
		b.WriteString(" none.\n")
	} else {
		b.WriteByte('\n')
		for _, f := range sig.FailingKnownSources {
			who := "one of your servers"
			if !f.Known {
				who = fmt.Sprintf("a sender that passes DMARC for %d other message(s)", f.Passing)
			}
			fmt.Fprintf(b, "  - %s (%s): %d of %d message(s) fail DMARC:\n", f.IP, who, f.Failing, f.Failing+f.Passing)
			for _, c := range f.Causes {
				fmt.Fprintf(b, "      %s (%d message(s))\n", c.Text, c.Messages)
			}
		}
	}

	b.WriteString("New sending sources since last week:")
	switch {
	case !sig.NewSourcesBaseline:
		b.WriteString(" cannot tell yet: no reports from the week before to compare with.\n")
	case len(sig.NewSources) == 0:
		b.WriteString(" none.\n")
	default:
		b.WriteByte('\n')
		for _, n := range sig.NewSources {
			who := "not one of your servers"
			if n.Known {
				who = "one of your servers"
			}
			fmt.Fprintf(b, "  - %s (%s): %d message(s), %d passing DMARC, first seen %s\n",
				n.IP, who, n.Messages, n.DMARCPass, n.FirstSeen.UTC().Format(time.DateOnly))
		}
	}
}

// countCells are the counts columns of the day and source tables.
func countCells(c dmarcreport.Counts) []string {
	return []string{strconv.FormatInt(c.Messages, 10), pct(c.DMARCPassRate), pct(c.SPFPassRate), pct(c.DKIMPassRate),
		strconv.FormatInt(c.Disposition.None, 10), strconv.FormatInt(c.Disposition.Quarantine, 10), strconv.FormatInt(c.Disposition.Reject, 10)}
}

func pct(rate float64) string { return strconv.FormatFloat(rate*100, 'f', 1, 64) + "%" }

func dispositions(d dmarcreport.Dispositions) string {
	return fmt.Sprintf("delivered %d, quarantined %d, rejected %d", d.None, d.Quarantine, d.Reject)
}

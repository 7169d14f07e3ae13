package main

import (
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"fairway/reputation"
)

// `fairway reputation show [TENANT]`: tier, pool, rates per window, the last
// tier changes with their reasons, holds, and (for all tenants) the source
// addresses' blocklist and warm-up state.
func reputationCmd(o *cliOptions) *cobra.Command {
	show := &cobra.Command{
		Use:   "show [TENANT]",
		Short: "Show tenants' reputation: tier, pool, rates, tier changes and holds",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			path := "/v1/reputation"
			if len(a) == 1 {
				path += "?tenant=" + url.QueryEscape(a[0])
			}
			var r reputation.Report
			return o.call(cmd, http.MethodGet, path, nil, &r, func(w io.Writer) error { return r.WriteText(w) })
		},
	}
	return group("reputation", "Per-tenant reputation and IP pools by tier", show)
}

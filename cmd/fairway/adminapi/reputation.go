package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"fairway/reputation"
	"fairway/tenant"
)

// Reputation is what the API needs of reputation (*reputation.Service): the
// pool a tenant's queue uses, the release of its hold on `tenant resume`,
// forgetting a removed tenant, and the report of `reputation show`.
type Reputation interface {
	TenantPool(tenant string) string
	Release(tenant string) error
	Forget(tenant string) error
	Report(tenant string) (reputation.Report, error)
}

// poolOf is the pool a tenant's queue uses: the one reputation chooses (its
// fixed policy pool, else its tier's), or the policy's without reputation.
func (a *API) poolOf(t tenant.Tenant) string {
	if a.rep != nil {
		return a.rep.TenantPool(t.Name)
	}
	return t.Policy.Pool
}

// SyncTenant brings the queue in step with a tenant's policy and
// reputation; cmd calls it when reputation changes a tenant's tier or hold.
func (a *API) SyncTenant(name string) error {
	_, err := a.syncTenant(name)
	return err
}

// reputationReport answers GET /v1/reputation[?tenant=T].
func (a *API) reputationReport(r *http.Request) (int, any, error) {
	if a.rep == nil {
		return 0, nil, fmt.Errorf("%w: reputation is not running", tenant.ErrNotFound)
	}
	name := r.URL.Query().Get("tenant")
	rep, err := a.rep.Report(name)
	if errors.Is(err, reputation.ErrUnknownTenant) {
		return 0, nil, fmt.Errorf("tenant %s: %w", name, tenant.ErrNotFound)
	}
	if err != nil {
		return 0, nil, err
	}
	if name == "" {
		// Every tenant of the directory, scored yet or not.
		have := map[string]bool{}
		for _, t := range rep.Tenants {
			have[t.Tenant] = true
		}
		for _, t := range a.dir.Tenants() {
			if have[t.Name] {
				continue
			}
			one, err := a.rep.Report(t.Name)
			if err != nil {
				return 0, nil, withTenant(t.Name, err)
			}
			rep.Tenants = append(rep.Tenants, one.Tenants...)
		}
		slices.SortFunc(rep.Tenants, func(x, y reputation.TenantReport) int { return strings.Compare(x.Tenant, y.Tenant) })
	}
	if rep.Tenants == nil {
		rep.Tenants = []reputation.TenantReport{}
	}
	return http.StatusOK, rep, nil
}

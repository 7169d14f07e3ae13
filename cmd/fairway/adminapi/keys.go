package adminapi

import (
	"context"
	"net/http"

	"fairway/tenant"
)

// Keys is what the API needs for DKIM keys and the DNS records to publish
// (*tenant.Directory).
type Keys interface {
	DKIMStatus(domain string) ([]tenant.DKIMKeyStatus, error)
	RotateDKIM(domain string) error
	DNSRecords(domain string, p tenant.RecordParams) ([]tenant.DNSRecord, error)
	CheckDNS(ctx context.Context, domain string, p tenant.RecordParams) ([]tenant.RecordCheck, error)
}

// DNSRecord is a record to publish with its zone-file line.
type DNSRecord struct {
	tenant.DNSRecord
	ZoneLine string `json:"zone_line"`
}

func (a *API) keyRoutes() {
	a.handle("GET /v1/domains/{domain}/dkim", a.dkimStatus)
	a.handle("POST /v1/domains/{domain}/dkim/rotate", a.dkimRotate)
	a.handle("GET /v1/domains/{domain}/dns/records", a.dnsRecords)
	a.handle("GET /v1/domains/{domain}/dns/check", a.dnsCheck)
}

func (a *API) dkimStatus(r *http.Request) (int, any, error) {
	keys, err := a.keys.DKIMStatus(r.PathValue("domain"))
	if err != nil {
		return 0, nil, err
	}
	if keys == nil {
		keys = []tenant.DKIMKeyStatus{}
	}
	return http.StatusOK, keys, nil
}

// dkimRotate starts a rotation and answers with the keys' new states, so the
// operator sees at once what to publish.
func (a *API) dkimRotate(r *http.Request) (int, any, error) {
	domain := r.PathValue("domain")
	if err := a.keys.RotateDKIM(domain); err != nil {
		return 0, nil, err
	}
	keys, err := a.keys.DKIMStatus(domain)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, keys, nil
}

func (a *API) dnsRecords(r *http.Request) (int, any, error) {
	recs, err := a.keys.DNSRecords(r.PathValue("domain"), a.records)
	if err != nil {
		return 0, nil, err
	}
	out := make([]DNSRecord, 0, len(recs))
	for _, rec := range recs {
		out = append(out, DNSRecord{DNSRecord: rec, ZoneLine: rec.ZoneLine()})
	}
	return http.StatusOK, out, nil
}

func (a *API) dnsCheck(r *http.Request) (int, any, error) {
	checks, err := a.keys.CheckDNS(r.Context(), r.PathValue("domain"), a.records)
	if err != nil {
		return 0, nil, err
	}
	if checks == nil {
		checks = []tenant.RecordCheck{}
	}
	return http.StatusOK, checks, nil
}

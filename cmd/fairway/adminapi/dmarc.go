package adminapi

import (
	"net/http"
	"strconv"
	"time"

	"fairway/inbound/dmarcreport"
)

// DMARC aggregate reports (package dmarcreport) through the API:
//
//	GET /v1/dmarc/{domain}/summary[?since=7d]  roll-up and signals; since is a
//	                                           duration back (7d, 24h) or an RFC 3339 time
//	GET /v1/dmarc/rejected[?limit=N]           reports kept aside, newest first

// DMARCReports is what the API needs of the DMARC report store
// (*dmarcreport.Store).
type DMARCReports interface {
	// Since reads a summary start ("7d", "24h", RFC 3339) against the
	// store's clock.
	Since(spec string) (time.Time, error)
	Summary(domain string, since time.Time) (dmarcreport.Summary, error)
	Rejected(limit int) ([]dmarcreport.RejectedReport, error)
}

// defaultDMARCSince is the summary window when the request names none.
const defaultDMARCSince = "7d"

// HandleDMARC adds the DMARC report routes over reports. Call it once,
// before serving.
func (a *API) HandleDMARC(reports DMARCReports) {
	h := dmarcHandlers{reports: reports}
	a.handle("GET /v1/dmarc/{domain}/summary", h.summary)
	a.handle("GET /v1/dmarc/rejected", h.rejected)
}

type dmarcHandlers struct{ reports DMARCReports }

// summary answers a dmarcreport.Summary. A domain not hosted is not_found,
// a bad since invalid (both from the store's errors, through toError).
func (h dmarcHandlers) summary(r *http.Request) (int, any, error) {
	spec := r.URL.Query().Get("since")
	if spec == "" {
		spec = defaultDMARCSince
	}
	since, err := h.reports.Since(spec)
	if err != nil {
		return 0, nil, err
	}
	sum, err := h.reports.Summary(r.PathValue("domain"), since)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sum, nil
}

func (h dmarcHandlers) rejected(r *http.Request) (int, any, error) {
	limit := defaultListLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return 0, nil, errorf(http.StatusBadRequest, CodeInvalid, "limit %q: want 1 to %d", s, maxListLimit)
		}
		limit = n
	}
	rs, err := h.reports.Rejected(limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rs, nil
}

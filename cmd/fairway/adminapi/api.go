// Package adminapi is fairway's admin API: JSON over HTTP, served by the
// daemon on the admin socket <data_dir>/admin.sock (mode 0600, trusted: no
// token) and on the admin TCP listener (every request needs
// "Authorization: Bearer <token>"). The CLI (`fairway tenant add` and the
// rest) is its client; see Client.
//
// A request flows: listener → auth (TCP only) → route → one call on the
// directory (package tenant) or the queue (package fairq), both behind the
// small interfaces below → JSON answer. Errors are mapped in one place
// (toError) to {"error", "code"} with a status:
//
//	not_found 404, exists 409, invalid 400, in_flight 409,
//	unauthorized 401, forbidden 403, internal 500
//
// Internal errors are logged; the client gets a generic message.
//
// The directory holds tenant policy; the queue schedules by it. The API
// keeps them in step in one function, syncTenant: after a tenant is added,
// updated, suspended or resumed, its weight and pool are set in the queue
// and its mail is held while it is suspended. SyncQueue does the same for
// every tenant when the daemon starts.
//
// Routes (all under /v1/):
//
//	GET    /v1/tenants                       list tenants
//	POST   /v1/tenants                       add a tenant {name, policy}
//	GET    /v1/tenants/{name}                one tenant with its domains
//	PATCH  /v1/tenants/{name}                change policy fields
//	DELETE /v1/tenants/{name}                remove with its domains
//	POST   /v1/tenants/{name}/suspend        suspend; hold its queue
//	POST   /v1/tenants/{name}/resume         resume; release its queue
//	GET    /v1/tenants/{name}/export         the tenant as a tar (directory + Maildirs)
//	POST   /v1/tenants/import                such a tar, all or nothing
//	POST   /v1/tenants/{name}/rules          insert an inbound rule {rule, position}
//	DELETE /v1/tenants/{name}/rules/{n}      remove rule n (1-based)
//	GET    /v1/reputation[?tenant=T]         tiers, pools, rates, holds
//	GET    /v1/domains[?tenant=T]            list domains
//	POST   /v1/domains                       add {domain, tenant}
//	DELETE /v1/domains/{domain}              remove with its users
//	GET    /v1/domains/{domain}/mailboxes    list mailboxes
//	GET    /v1/domains/{domain}/aliases      list aliases
//	GET    /v1/domains/{domain}/dkim         DKIM key states
//	POST   /v1/domains/{domain}/dkim/rotate  start a key rotation
//	GET    /v1/domains/{domain}/dns/records  records to publish
//	GET    /v1/domains/{domain}/dns/check    compare them with DNS
//	POST   /v1/mailboxes                     add {address, password}
//	PUT    /v1/mailboxes/{address}/password  set {password}
//	DELETE /v1/mailboxes/{address}           remove
//	POST   /v1/aliases                       add {alias, target}
//	DELETE /v1/aliases/{alias}[?target=A]    remove one target or all
//	POST   /v1/import                        CSV body, all or nothing
//	GET    /v1/queue/stats                   depths per tenant and lane
//	GET    /v1/queue/messages[?tenant=&after=&limit=]
//	POST   /v1/queue/messages/{id}/retry     make due now
//	DELETE /v1/queue/messages/{id}           delete without bounce
//	GET    /v1/dmarc/{domain}/summary[?since=7d]  DMARC report roll-up and signals
//	GET    /v1/dmarc/rejected[?limit=N]      reports kept aside, with the reason
//	GET    /v1/tokens                        list admin tokens
//	POST   /v1/tokens                        create {name} (socket only)
//	DELETE /v1/tokens/{id}                   revoke
package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"fairway/fairq"
	"fairway/tenant"
)

// Body limits: JSON requests are small; an import file may be large.
const (
	MaxBodyBytes   = 1 << 20
	MaxImportBytes = 64 << 20
)

// Queue listing page size: default and maximum.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// Directory is what the API needs of the tenant directory
// (*tenant.Directory).
type Directory interface {
	AddTenant(name string, p tenant.Policy) error
	UpdateTenant(name string, edit func(p *tenant.Policy)) error
	EditTenant(name string, edit func(p *tenant.Policy) error) error
	SuspendTenant(name string) error
	ResumeTenant(name string) error
	RemoveTenant(name string) error
	Tenants() []tenant.Tenant
	Tenant(name string) (tenant.Tenant, error)

	AddDomain(domain, tenant string) error
	RemoveDomain(domain string) error
	Domains(tenant string) []tenant.Domain

	// Lookups, to answer a change with what was stored.
	MailboxTenant(address string) (string, bool)
	DomainTenant(domain string) (string, bool)
	AliasTargets(address string) ([]string, bool)

	AddMailbox(address, password string) error
	SetPassword(address, password string) error
	RemoveMailbox(address string) error
	Mailboxes(domain string) ([]tenant.Mailbox, error)

	AddAlias(alias, target string) error
	RemoveAlias(alias, target string) error
	Aliases(domain string) ([]tenant.Alias, error)

	Import(r io.Reader) (tenant.ImportResult, error)
}

// Usage is the mail store's accounting (*mailstore.Store).
type Usage interface {
	TenantUsage(tenant string) (int64, error)
}

// Tokens keeps the admin API's bearer tokens (*tenant.Directory).
type Tokens interface {
	CreateToken(name string) (secret string, t tenant.Token, err error)
	VerifyToken(secret string) bool
	Tokens() ([]tenant.Token, error)
	RevokeToken(id string) error
}

// Queue is what the API needs of the outbound queue (*fairq.Queue).
type Queue interface {
	Stats() fairq.Stats
	List(o fairq.ListOptions) ([]fairq.Entry, error)
	Retry(id fairq.MsgID) error
	Delete(id fairq.MsgID) error
	SetTenant(tenant string, c fairq.TenantConfig)
	Hold(tenant string) error
	Release(tenant string) error
}

// Config holds what New needs.
type Config struct {
	Directory Directory
	Tokens    Tokens
	Queue     Queue
	Keys      Keys
	// Records are the parameters of the DNS records the API shows and
	// checks: this server's host name, its outbound IPs, the DMARC report
	// address.
	Records tenant.RecordParams
	Logger  *slog.Logger
	// Usage, if set, reports the mail store's bytes per tenant in
	// GET /v1/tenants/{name} (*mailstore.Store).
	Usage Usage
	// Reputation, if set, chooses each tenant's pool and answers
	// GET /v1/reputation; without it the policy's pool is used.
	Reputation Reputation
	// Metrics, if set, answers GET /metrics (Prometheus text format) on both
	// listeners. It needs no token: it is read-only, and the admin listener
	// is on loopback unless the operator moves it.
	Metrics http.Handler
}

// API is the admin API. Serve it with SocketHandler on the admin socket and
// with TCPHandler on the network.
type API struct {
	dir     Directory
	tokens  Tokens
	queue   Queue
	keys    Keys
	records tenant.RecordParams
	rep     Reputation
	usage   Usage
	log     *slog.Logger
	mux     *http.ServeMux
	metrics http.Handler
}

// New returns the API over c's directory and queue.
func New(c Config) *API {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{dir: c.Directory, tokens: c.Tokens, queue: c.Queue, keys: c.Keys, records: c.Records, rep: c.Reputation, usage: c.Usage,
		log: log.With("component", "adminapi"), mux: http.NewServeMux(), metrics: c.Metrics}
	a.routes()
	if c.Metrics != nil {
		a.mux.Handle("GET /metrics", c.Metrics)
	}
	return a
}

// trustKey marks a request that came in over the admin socket.
type trustKey struct{}

func trusted(r *http.Request) bool { v, _ := r.Context().Value(trustKey{}).(bool); return v }

// SocketHandler serves the API to local administrators: whoever can open the
// 0600 socket is trusted, and may create tokens.
func (a *API) SocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), trustKey{}, true)))
	})
}

// TCPHandler serves the API over the network: every request must carry a
// valid bearer token.
func (a *API) TCPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.metrics != nil && r.URL.Path == "/metrics" {
			a.metrics.ServeHTTP(w, r)
			return
		}
		secret, ok := bearer(r)
		if !ok || !a.tokens.VerifyToken(secret) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fairway"`)
			writeJSON(w, http.StatusUnauthorized, errorf(http.StatusUnauthorized, CodeUnauthorized,
				"a valid admin token is required (Authorization: Bearer <token>; create one with `fairway token create`)"))
			return
		}
		a.mux.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// handler is one route: it returns the status and body of a success, or an
// error for writeError.
type handler func(r *http.Request) (status int, body any, err error)

func (a *API) handle(pattern string, h handler) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r)
		if err != nil {
			var attrs []any
			var te *tenantError
			if errors.As(err, &te) {
				attrs = append(attrs, "tenant", te.tenant)
			}
			writeError(a.log, w, r, err, attrs...)
			return
		}
		writeJSON(w, status, body)
	})
}

// tenantError tags an error with the tenant it concerns, for the log.
type tenantError struct {
	tenant string
	err    error
}

func (e *tenantError) Error() string { return e.err.Error() }
func (e *tenantError) Unwrap() error { return e.err }

func withTenant(name string, err error) error {
	if err == nil {
		return nil
	}
	return &tenantError{tenant: name, err: err}
}

func (a *API) routes() {
	a.handle("GET /v1/tenants", a.listTenants)
	a.handle("POST /v1/tenants", a.addTenant)
	a.handle("GET /v1/tenants/{name}", a.showTenant)
	a.handle("PATCH /v1/tenants/{name}", a.updateTenant)
	a.handle("DELETE /v1/tenants/{name}", a.removeTenant)
	a.handle("POST /v1/tenants/{name}/suspend", a.suspendTenant)
	a.handle("POST /v1/tenants/{name}/resume", a.resumeTenant)
	a.handle("GET /v1/reputation", a.reputationReport)
	a.handle("POST /v1/tenants/{name}/rules", a.addRule)
	a.handle("DELETE /v1/tenants/{name}/rules/{n}", a.removeRule)

	a.handle("GET /v1/domains", a.listDomains)
	a.handle("POST /v1/domains", a.addDomain)
	a.handle("DELETE /v1/domains/{domain}", a.removeDomain)
	a.handle("GET /v1/domains/{domain}/mailboxes", a.listMailboxes)
	a.handle("GET /v1/domains/{domain}/aliases", a.listAliases)
	a.keyRoutes()

	a.handle("POST /v1/mailboxes", a.addMailbox)
	a.handle("PUT /v1/mailboxes/{address}/password", a.setPassword)
	a.handle("DELETE /v1/mailboxes/{address}", a.removeMailbox)
	a.handle("POST /v1/aliases", a.addAlias)
	a.handle("DELETE /v1/aliases/{alias}", a.removeAlias)
	a.handle("POST /v1/import", a.importCSV)

	a.handle("GET /v1/queue/stats", a.queueStats)
	a.handle("GET /v1/queue/messages", a.queueList)
	a.handle("POST /v1/queue/messages/{id}/retry", a.queueRetry)
	a.handle("DELETE /v1/queue/messages/{id}", a.queueDelete)

	a.handle("GET /v1/tokens", a.listTokens)
	a.handle("POST /v1/tokens", a.createToken)
	a.handle("DELETE /v1/tokens/{id}", a.revokeToken)

	// Anything else: a JSON 404 (or 405), not the mux's plain text.
	a.handle("/", func(r *http.Request) (int, any, error) {
		return 0, nil, errorf(http.StatusNotFound, CodeNotFound, "no such API endpoint: %s %s", r.Method, r.URL.Path)
	})
}

// decodeJSON reads a JSON body of at most MaxBodyBytes into v, refusing
// unknown fields and trailing data.
func decodeJSON(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil && isTooLarge(err) {
			return bodyError(err)
		}
		return errorf(http.StatusBadRequest, CodeInvalid, "request body: more than one JSON value")
	}
	return nil
}

func bodyError(err error) error {
	if isTooLarge(err) {
		return errorf(http.StatusRequestEntityTooLarge, CodeInvalid, "request body larger than %d bytes", MaxBodyBytes)
	}
	if errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, CodeInvalid, "request body: a JSON object is required")
	}
	return errorf(http.StatusBadRequest, CodeInvalid, "request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// ---- tenants ----

func (a *API) listTenants(*http.Request) (int, any, error) {
	ts := a.dir.Tenants()
	if ts == nil {
		ts = []tenant.Tenant{}
	}
	return http.StatusOK, ts, nil
}

func (a *API) addTenant(r *http.Request) (int, any, error) {
	var req NewTenant
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if err := a.dir.AddTenant(req.Name, req.Policy); err != nil {
		return 0, nil, err
	}
	t, err := a.syncTenant(req.Name)
	return http.StatusCreated, t, err
}

func (a *API) showTenant(r *http.Request) (int, any, error) {
	t, err := a.dir.Tenant(r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	out := TenantDetail{Tenant: t, Domains: []string{}}
	for _, d := range a.dir.Domains(t.Name) {
		out.Domains = append(out.Domains, d.Name)
	}
	if a.usage != nil {
		used, err := a.usage.TenantUsage(t.Name)
		if err != nil {
			return 0, nil, withTenant(t.Name, fmt.Errorf("storage usage: %w", err))
		}
		out.StorageUsed = &used
	}
	return http.StatusOK, out, nil
}

func (a *API) updateTenant(r *http.Request) (int, any, error) {
	var req TenantUpdate
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if err := a.dir.UpdateTenant(name, req.apply); err != nil {
		return 0, nil, err
	}
	t, err := a.syncTenant(name)
	return http.StatusOK, t, err
}

// addRule inserts a quarantine rule; the directory validates it and the
// edit is one transaction, so concurrent edits never lose a rule.
func (a *API) addRule(r *http.Request) (int, any, error) {
	var req NewRule
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	err := a.dir.EditTenant(name, func(p *tenant.Policy) error {
		at := len(p.Quarantine)
		if req.Position != 0 {
			if req.Position < 1 || req.Position > len(p.Quarantine)+1 {
				return fmt.Errorf("%w: position %d: want 1 to %d", tenant.ErrInvalid, req.Position, len(p.Quarantine)+1)
			}
			at = req.Position - 1
		}
		p.Quarantine = slices.Insert(p.Quarantine, at, req.Rule)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	t, err := a.dir.Tenant(name)
	return http.StatusCreated, t, withTenant(name, err)
}

// removeRule removes the n-th quarantine rule (1-based, as listed).
func (a *API) removeRule(r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		return 0, nil, fmt.Errorf("%w: rule number %q: want a number from 1 (as rule list numbers them)", tenant.ErrInvalid, r.PathValue("n"))
	}
	err = a.dir.EditTenant(name, func(p *tenant.Policy) error {
		if n > len(p.Quarantine) {
			return fmt.Errorf("tenant %s has %d rules, no rule %d: %w", name, len(p.Quarantine), n, tenant.ErrNotFound)
		}
		p.Quarantine = slices.Delete(p.Quarantine, n-1, n)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	t, err := a.dir.Tenant(name)
	return http.StatusOK, t, withTenant(name, err)
}

func (a *API) suspendTenant(r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	if err := a.dir.SuspendTenant(name); err != nil {
		return 0, nil, err
	}
	t, err := a.syncTenant(name)
	return http.StatusOK, t, err
}

func (a *API) resumeTenant(r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	if err := a.dir.ResumeTenant(name); err != nil {
		return 0, nil, err
	}
	// Resuming is the operator's review of a reputation hold too.
	if a.rep != nil {
		if err := a.rep.Release(name); err != nil {
			return 0, nil, withTenant(name, fmt.Errorf("releasing the reputation hold: %w", err))
		}
	}
	t, err := a.syncTenant(name)
	return http.StatusOK, t, err
}

func (a *API) removeTenant(r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	if err := a.dir.RemoveTenant(name); err != nil {
		return 0, nil, err
	}
	// Mail the tenant's users had queued was accepted with a 250: it is
	// delivered (or bounced) as usual, never held for good or dropped.
	if err := a.queue.Release(name); err != nil {
		return 0, nil, withTenant(name, fmt.Errorf("releasing queued mail of removed tenant: %w", err))
	}
	if a.rep != nil {
		if err := a.rep.Forget(name); err != nil {
			return 0, nil, withTenant(name, fmt.Errorf("forgetting its reputation: %w", err))
		}
	}
	return http.StatusOK, Removed{Removed: name}, nil
}

// syncTenant brings the queue in step with a tenant's policy just changed in
// the directory, and returns the tenant as stored.
func (a *API) syncTenant(name string) (tenant.Tenant, error) {
	t, err := a.dir.Tenant(name)
	if err != nil {
		return t, withTenant(name, err)
	}
	if err := syncTenant(a.queue, t, a.poolOf(t)); err != nil {
		return t, withTenant(name, err)
	}
	return t, nil
}

// syncTenant makes the queue schedule t as its policy says: with its weight
// and pool, and held while it is suspended. It is the one place where
// directory policy reaches the queue.
func syncTenant(q Queue, t tenant.Tenant, pool string) error {
	q.SetTenant(t.Name, fairq.TenantConfig{Weight: t.Policy.Weight, Pool: pool})
	var err error
	if t.Policy.Suspended {
		err = q.Hold(t.Name)
	} else {
		err = q.Release(t.Name)
	}
	if err != nil {
		return fmt.Errorf("tenant %s: queue hold (suspended=%t): %w", t.Name, t.Policy.Suspended, err)
	}
	return nil
}

// TenantLister lists the directory's tenants.
type TenantLister interface{ Tenants() []tenant.Tenant }

// PoolChooser picks a tenant's pool (*reputation.Service).
type PoolChooser interface{ TenantPool(tenant string) string }

// SyncQueue brings the queue in step with every tenant's policy, and its
// pool with pools (nil: the policy's pool); the daemon calls it at startup,
// before serving.
func SyncQueue(d TenantLister, q Queue, pools PoolChooser) error {
	var errs []error
	for _, t := range d.Tenants() {
		pool := t.Policy.Pool
		if pools != nil {
			pool = pools.TenantPool(t.Name)
		}
		errs = append(errs, syncTenant(q, t, pool))
	}
	return errors.Join(errs...)
}

// ---- domains, mailboxes, aliases ----

func (a *API) listDomains(r *http.Request) (int, any, error) {
	name := r.URL.Query().Get("tenant")
	if name != "" {
		if _, err := a.dir.Tenant(name); err != nil {
			return 0, nil, err
		}
	}
	ds := a.dir.Domains(name)
	if ds == nil {
		ds = []tenant.Domain{}
	}
	return http.StatusOK, ds, nil
}

func (a *API) addDomain(r *http.Request) (int, any, error) {
	var req NewDomain
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if err := a.dir.AddDomain(req.Domain, req.Tenant); err != nil {
		return 0, nil, err
	}
	name, _ := tenant.NormalizeDomain(req.Domain) // AddDomain accepted it
	for _, d := range a.dir.Domains(req.Tenant) {
		if d.Name == name {
			return http.StatusCreated, d, nil
		}
	}
	// Removed again by a concurrent request.
	return 0, nil, errorf(http.StatusNotFound, CodeNotFound, "domain %s: removed while being added", name)
}

func (a *API) removeDomain(r *http.Request) (int, any, error) {
	name := r.PathValue("domain")
	if err := a.dir.RemoveDomain(name); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, Removed{Removed: name}, nil
}

func (a *API) listMailboxes(r *http.Request) (int, any, error) {
	ms, err := a.dir.Mailboxes(r.PathValue("domain"))
	if err != nil {
		return 0, nil, err
	}
	out := make([]Mailbox, 0, len(ms))
	for _, m := range ms {
		out = append(out, mailboxView(m))
	}
	return http.StatusOK, out, nil
}

func (a *API) listAliases(r *http.Request) (int, any, error) {
	as, err := a.dir.Aliases(r.PathValue("domain"))
	if err != nil {
		return 0, nil, err
	}
	if as == nil {
		as = []tenant.Alias{}
	}
	return http.StatusOK, as, nil
}

func (a *API) addMailbox(r *http.Request) (int, any, error) {
	var req NewMailbox
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if err := a.dir.AddMailbox(req.Address, req.Password); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, a.mailbox(req.Address), nil
}

func (a *API) setPassword(r *http.Request) (int, any, error) {
	var req NewPassword
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	addr := r.PathValue("address")
	if err := a.dir.SetPassword(addr, req.Password); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a.mailbox(addr), nil
}

// mailbox describes a mailbox just written.
func (a *API) mailbox(address string) Mailbox {
	addr, err := tenant.NormalizeAddress(address)
	if err != nil { // cannot happen: the directory accepted it
		return Mailbox{Address: address}
	}
	owner, _ := a.dir.MailboxTenant(addr)
	return Mailbox{Address: addr, Tenant: owner}
}

func (a *API) removeMailbox(r *http.Request) (int, any, error) {
	addr := r.PathValue("address")
	if err := a.dir.RemoveMailbox(addr); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, Removed{Removed: addr}, nil
}

func (a *API) addAlias(r *http.Request) (int, any, error) {
	var req NewAlias
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	if err := a.dir.AddAlias(req.Alias, req.Target); err != nil {
		return 0, nil, err
	}
	addr, _ := tenant.NormalizeAddress(req.Alias) // AddAlias accepted it
	owner, _ := a.dir.DomainTenant(addr[strings.LastIndexByte(addr, '@')+1:])
	targets, _ := a.dir.AliasTargets(addr)
	return http.StatusCreated, tenant.Alias{Address: addr, Tenant: owner, Targets: targets}, nil
}

func (a *API) removeAlias(r *http.Request) (int, any, error) {
	alias, target := r.PathValue("alias"), r.URL.Query().Get("target")
	if err := a.dir.RemoveAlias(alias, target); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, Removed{Removed: alias, Target: target}, nil
}

// importCSV reads the whole file first, so that one over the limit is
// refused as such rather than cut short.
func (a *API) importCSV(r *http.Request) (int, any, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxImportBytes))
	if err != nil {
		if isTooLarge(err) {
			return 0, nil, errorf(http.StatusRequestEntityTooLarge, CodeInvalid,
				"import file larger than %d MB; split it", MaxImportBytes>>20)
		}
		return 0, nil, errorf(http.StatusBadRequest, CodeInvalid, "reading the import file: %v", err)
	}
	res, err := a.dir.Import(bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	// New tenants start with the default policy; give the queue their weight.
	for _, t := range a.dir.Tenants() {
		if err := syncTenant(a.queue, t, a.poolOf(t)); err != nil {
			return 0, nil, withTenant(t.Name, err)
		}
	}
	return http.StatusOK, ImportResult{Tenants: res.Tenants, Domains: res.Domains, Mailboxes: res.Mailboxes}, nil
}

// ---- queue ----

func (a *API) queueStats(*http.Request) (int, any, error) {
	return http.StatusOK, queueStatsView(a.queue.Stats()), nil
}

func (a *API) queueList(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	o := fairq.ListOptions{Tenant: q.Get("tenant"), Limit: defaultListLimit}
	if s := q.Get("after"); s != "" {
		id, err := fairq.ParseMsgID(s)
		if err != nil {
			return 0, nil, errorf(http.StatusBadRequest, CodeInvalid, "after: %v", err)
		}
		o.After = id
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return 0, nil, errorf(http.StatusBadRequest, CodeInvalid, "limit %q: want 1 to %d", s, maxListLimit)
		}
		o.Limit = n
	}
	entries, err := a.queue.List(o)
	if err != nil {
		return 0, nil, err
	}
	out := make([]QueueEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, queueEntryView(e))
	}
	return http.StatusOK, out, nil
}

func (a *API) queueRetry(r *http.Request) (int, any, error) {
	id, err := msgID(r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.queue.Retry(id); err != nil {
		return 0, nil, queueError(id, err)
	}
	return http.StatusOK, QueueAction{ID: id.String(), Action: "retry"}, nil
}

func (a *API) queueDelete(r *http.Request) (int, any, error) {
	id, err := msgID(r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.queue.Delete(id); err != nil {
		return 0, nil, queueError(id, err)
	}
	return http.StatusOK, QueueAction{ID: id.String(), Action: "delete"}, nil
}

func msgID(r *http.Request) (fairq.MsgID, error) {
	id, err := fairq.ParseMsgID(r.PathValue("id"))
	if err != nil {
		return 0, errorf(http.StatusBadRequest, CodeInvalid, "%v", err)
	}
	return id, nil
}

// queueError names the message in the queue's bare sentinel errors.
func queueError(id fairq.MsgID, err error) error {
	switch {
	case errors.Is(err, fairq.ErrNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, "message %s is not in the queue", id)
	case errors.Is(err, fairq.ErrInFlight):
		return errorf(http.StatusConflict, CodeInFlight, "message %s is being delivered right now; try again", id)
	}
	return err
}

// ---- tokens ----

func (a *API) listTokens(*http.Request) (int, any, error) {
	ts, err := a.tokens.Tokens()
	if err != nil {
		return 0, nil, err
	}
	out := make([]Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenView(t))
	}
	return http.StatusOK, out, nil
}

func (a *API) createToken(r *http.Request) (int, any, error) {
	if !trusted(r) {
		return 0, nil, errorf(http.StatusForbidden, CodeForbidden,
			"tokens can be created only over the admin socket (`fairway token create` on the server)")
	}
	var req NewToken
	if err := decodeJSON(r, &req); err != nil {
		return 0, nil, err
	}
	secret, t, err := a.tokens.CreateToken(req.Name)
	if err != nil {
		return 0, nil, err
	}
	out := tokenView(t)
	out.Secret = secret
	return http.StatusCreated, out, nil
}

func (a *API) revokeToken(r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if err := a.tokens.RevokeToken(id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, Removed{Removed: id}, nil
}

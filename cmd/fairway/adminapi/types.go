package adminapi

import (
	"net/netip"
	"time"

	"fairway/fairq"
	"fairway/tenant"
)

// Request and response bodies. Directory objects that carry nothing secret
// (tenant.Tenant, tenant.Domain, tenant.Alias) are sent as they are; the
// others have a view here that leaves secrets out and names fields in
// snake_case.

// NewTenant is the body of POST /v1/tenants: the same shape GET returns.
type NewTenant struct {
	Name   string        `json:"name"`
	Policy tenant.Policy `json:"policy"`
}

// TenantUpdate is the body of PATCH /v1/tenants/{name}: the fields present
// replace the policy's; suspension has its own routes.
type TenantUpdate struct {
	Weight        *int                     `json:"weight,omitempty"`
	MailboxHourly *int                     `json:"mailbox_hourly,omitempty"`
	AccountDaily  *int                     `json:"account_daily,omitempty"`
	Pool          *string                  `json:"pool,omitempty"`
	AnySender     *bool                    `json:"any_sender,omitempty"`
	Networks      *[]netip.Prefix          `json:"networks,omitempty"`
	Quarantine    *[]tenant.QuarantineRule `json:"quarantine,omitempty"`
	MailboxQuota  *int64                   `json:"mailbox_quota,omitempty"`
	TenantQuota   *int64                   `json:"tenant_quota,omitempty"`
	IMAPConns     *int                     `json:"imap_connections,omitempty"`
	IMAPUserConns *int                     `json:"imap_user_connections,omitempty"`
}

// apply copies the fields present into p.
func (u TenantUpdate) apply(p *tenant.Policy) {
	if u.Weight != nil {
		p.Weight = *u.Weight
	}
	if u.MailboxHourly != nil {
		p.MailboxHourly = *u.MailboxHourly
	}
	if u.AccountDaily != nil {
		p.AccountDaily = *u.AccountDaily
	}
	if u.Pool != nil {
		p.Pool = *u.Pool
	}
	if u.AnySender != nil {
		p.AnySender = *u.AnySender
	}
	if u.Networks != nil {
		p.Networks = *u.Networks
	}
	if u.Quarantine != nil {
		p.Quarantine = *u.Quarantine
	}
	if u.MailboxQuota != nil {
		p.MailboxQuota = *u.MailboxQuota
	}
	if u.TenantQuota != nil {
		p.TenantQuota = *u.TenantQuota
	}
	if u.IMAPConns != nil {
		p.IMAPConnections = *u.IMAPConns
	}
	if u.IMAPUserConns != nil {
		p.IMAPUserConnections = *u.IMAPUserConns
	}
}

// NewRule is the body of POST /v1/tenants/{name}/rules: the rule, and where
// it goes in the ordered list (1 = first; 0 or absent = last).
type NewRule struct {
	Rule     tenant.QuarantineRule `json:"rule"`
	Position int                   `json:"position,omitempty"`
}

// TenantDetail is GET /v1/tenants/{name}: the tenant and its domains.
type TenantDetail struct {
	tenant.Tenant
	Domains []string `json:"domains"`
	// StorageUsed is the bytes its mailboxes hold (absent without a mail
	// store, e.g. with an external LMTP store).
	StorageUsed *int64 `json:"storage_used,omitempty"`
}

// Removed answers a DELETE.
type Removed struct {
	Removed string `json:"removed"`
	// Target is the alias target removed, when only one was.
	Target string `json:"target,omitempty"`
}

// NewDomain is the body of POST /v1/domains.
type NewDomain struct {
	Domain string `json:"domain"`
	Tenant string `json:"tenant"`
}

// NewMailbox is the body of POST /v1/mailboxes.
type NewMailbox struct {
	Address  string `json:"address"`
	Password string `json:"password"`
}

// NewPassword is the body of PUT /v1/mailboxes/{address}/password.
type NewPassword struct {
	Password string `json:"password"`
}

// Mailbox is a mailbox as listed: never its password hash.
type Mailbox struct {
	Address string    `json:"address"`
	Tenant  string    `json:"tenant"`
	Created time.Time `json:"created,omitzero"` // not in the answer to a change
}

func mailboxView(m tenant.Mailbox) Mailbox {
	return Mailbox{Address: m.Address, Tenant: m.Tenant, Created: m.Created}
}

// NewAlias is the body of POST /v1/aliases.
type NewAlias struct {
	Alias  string `json:"alias"`
	Target string `json:"target"`
}

// ImportResult answers POST /v1/import.
type ImportResult struct {
	Tenants   int `json:"tenants"`
	Domains   int `json:"domains"`
	Mailboxes int `json:"mailboxes"`
}

// NewToken is the body of POST /v1/tokens.
type NewToken struct {
	Name string `json:"name"`
}

// Token describes an admin token; Secret is set only in the answer to its
// creation, the one time it is shown.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Secret  string    `json:"token,omitempty"`
}

func tokenView(t tenant.Token) Token { return Token{ID: t.ID, Name: t.Name, Created: t.Created} }

// QueueStats answers GET /v1/queue/stats.
type QueueStats struct {
	Tenants     []QueueTenant `json:"tenants"`
	Lanes       []QueueLane   `json:"lanes"`
	Quarantined int64         `json:"quarantined"`
}

// QueueTenant is one tenant's queue depth.
type QueueTenant struct {
	Tenant   string     `json:"tenant"`
	Weight   int        `json:"weight"`
	Pool     string     `json:"pool"`
	Ready    int        `json:"ready"`
	Deferred int        `json:"deferred"`
	Held     int        `json:"held"`
	InFlight int        `json:"in_flight"`
	Oldest   *time.Time `json:"oldest,omitempty"`
}

// QueueLane is the state of one (pool, site) lane.
type QueueLane struct {
	Pool         string     `json:"pool"`
	Site         string     `json:"site"`
	InFlight     int        `json:"in_flight"`
	Limit        int        `json:"limit"`
	Parked       int        `json:"parked"`
	Failures     int        `json:"failures"`
	BackoffUntil *time.Time `json:"backoff_until,omitempty"`
}

func queueStatsView(s fairq.Stats) QueueStats {
	out := QueueStats{Tenants: []QueueTenant{}, Lanes: []QueueLane{}, Quarantined: s.Quarantined}
	for _, t := range s.Tenants {
		out.Tenants = append(out.Tenants, QueueTenant{Tenant: t.Tenant, Weight: t.Weight, Pool: t.Pool,
			Ready: t.Ready, Deferred: t.Deferred, Held: t.Held, InFlight: t.InFlight, Oldest: timeOrNil(t.Oldest)})
	}
	for _, l := range s.Lanes {
		out.Lanes = append(out.Lanes, QueueLane{Pool: l.Pool, Site: l.Site, InFlight: l.InFlight, Limit: l.Limit,
			Parked: l.Parked, Failures: l.Failures, BackoffUntil: timeOrNil(l.BackoffUntil)})
	}
	return out
}

// QueueEntry is one queued delivery.
type QueueEntry struct {
	ID          string     `json:"id"`
	Index       uint16     `json:"index"`
	Tenant      string     `json:"tenant"`
	From        string     `json:"from"`
	Domain      string     `json:"domain"`
	Recipients  []string   `json:"recipients"`
	Created     time.Time  `json:"created"`
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}

func queueEntryView(e fairq.Entry) QueueEntry {
	r := e.Record
	return QueueEntry{ID: e.ID.String(), Index: e.Index, Tenant: r.Tenant, From: r.From, Domain: r.Domain,
		Recipients: r.Recipients, Created: r.Created, Attempts: r.Attempts,
		NextAttempt: timeOrNil(r.NextAttempt), LastError: r.LastError}
}

// QueueAction answers POST .../retry and DELETE on a queued message.
type QueueAction struct {
	ID     string `json:"id"`
	Action string `json:"action"` // "retry" or "delete"
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

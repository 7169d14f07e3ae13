package inbound

import (
	"context"
	"net"
	"net/netip"
	"time"

	"fairway/fairq"
	"fairway/tenant"
)

// The small interfaces inbound consumes; cmd wires the implementations
// (tenant.Directory, mailstore.Store, fairq.Queue, tenant.NewDNSResolver,
// and the DMARC report and complaint stores).

// Directory is what inbound asks the tenant directory for each recipient and
// message.
type Directory interface {
	DomainTenant(domain string) (string, bool)
	MailboxTenant(address string) (string, bool)
	AliasTargets(address string) ([]string, bool)
	TenantPolicy(tenant string) (tenant.Policy, bool)
}

// LocalStore is mailstore's delivery API. Deliver returns an error
// matching mailstore.ErrOverQuota or mailstore.ErrNoMailbox for those cases;
// any other error is taken as temporary.
type LocalStore interface {
	Deliver(ctx context.Context, address, folder string, body []byte) error
	CheckQuota(address string, size int64) error
}

// Spool is fairq: where an alias's external targets are relayed from, and
// where recipients that could not be stored right after DATA wait for their
// retry (relay hands them back through DeliverLocal).
type Spool interface {
	Enqueue(ctx context.Context, m *fairq.Message) (fairq.MsgID, error)
}

// ReportSink takes DMARC aggregate report mail (inbound/dmarcreport). A
// permanent parse problem is the sink's business (kept aside, nil error); a
// non-nil error means "could not store now": 451 4.3.0.
type ReportSink interface {
	Ingest(ctx context.Context, message []byte) error
}

// ComplaintSink takes ARF feedback reports (reputation's complaint intake).
// Its errors mean as ReportSink's.
type ComplaintSink interface {
	IngestARF(ctx context.Context, message []byte) error
}

// Resolver is the DNS SPF, DKIM and DMARC need. tenant.DNS satisfies it;
// lookups that find nothing return an error matching tenant.ErrDNSNotFound.
// A resolver that also has LookupAddr (PTR; tenant's resolvers do) serves
// SPF's "ptr" mechanism; without it "ptr" never matches (RFC 7208 §5.5
// discourages it anyway).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// ptrResolver is the optional PTR lookup of a Resolver.
type ptrResolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Clock is inbound's source of time (Received dates, DKIM expiry).
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

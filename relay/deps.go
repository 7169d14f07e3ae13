package relay

import (
	"context"
	"net"
	"net/netip"
	"time"

	"fairway/fairq"
	"fairway/reputation"
	"fairway/tenant"
)

// The small interfaces relay consumes; cmd wires the implementations
// (tenant.Directory, fairq.Queue, tenant.NewDNSResolver).

// Directory is what relay asks the tenant directory, on every command.
type Directory interface {
	Authenticate(address, password string) (tenant.Identity, error)
	MaySendAs(user tenant.Identity, sender string) bool
	NetworkTenant(ip netip.Addr) (string, bool)
	TenantPolicy(tenant string) (tenant.Policy, bool)
	DomainTenant(domain string) (string, bool)
	DKIMSigners(domain string) []tenant.DKIMSigner
}

// AuthLimiter throttles password guessing per client address
// (*tenant.AuthLimiter).
type AuthLimiter interface {
	Allow(ip netip.Addr, now time.Time) bool
	Failed(ip netip.Addr, now time.Time)
}

// Spool is where accepted mail goes: fairq.
type Spool interface {
	Enqueue(ctx context.Context, m *fairq.Message) (fairq.MsgID, error)
}

// DeliveryQueue is what the delivery workers need from fairq.
type DeliveryQueue interface {
	Spool
	Next(ctx context.Context) (*fairq.Lease, error)
	Complete(ctx context.Context, l *fairq.Lease, results []fairq.RecipientResult) error
	Body(id fairq.MsgID) ([]byte, error)
	LaneFailed(pool, site string) time.Time
	LaneSucceeded(pool, site string)
	SetSite(domain, site string)
}

// LocalDelivery takes the mail of hosted domains: delivery hands it over
// instead of dialing out, so the receiving tenant's rules apply (inbound's
// local path; cmd wires it).
type LocalDelivery interface {
	// Hosted reports whether domain is one of ours.
	Hosted(domain string) bool
	// DeliverLocal returns one result per recipient, in order: nil when
	// stored, else an error, a *smtp.SMTPError when it carries a reply
	// (4xx temporary, 5xx permanent). extra is the queue record's Extra,
	// passed through unread.
	DeliverLocal(ctx context.Context, from string, recipients []string, body []byte, extra []byte) []error
}

// Reputation is what delivery tells and asks reputation
// (*reputation.Service): every outcome, and which source of a pool may send
// to a site now (warm-up caps, receiver feedback, blocklists).
type Reputation interface {
	Record(ev reputation.Event)
	// PickSource returns the source to send from; the zero Source means no
	// binding; false means no source of the pool may send to the site now.
	PickSource(pool, site string, dst netip.Addr) (reputation.Source, bool)
}

// Resolver is the DNS delivery needs: MX, then A/AAAA.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// Clock is relay's source of time (limits, Received and Date headers).
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

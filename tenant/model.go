package tenant

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Tenant is one client of the operator: a set of domains under one policy.
type Tenant struct {
	Name    string    `json:"name"`
	Policy  Policy    `json:"policy"`
	Created time.Time `json:"created"`
}

// Policy is a tenant's policy. Zero limits mean "no limit".
type Policy struct {
	// Weight is the tenant's share of the outbound queue (default 1).
	Weight int `json:"weight"`
	// MailboxHourly caps recipients per mailbox per hour; AccountDaily caps
	// recipients per tenant (all its mailboxes together) per day.
	MailboxHourly int `json:"mailbox_hourly,omitempty"`
	AccountDaily  int `json:"account_daily,omitempty"`
	// Pool, if set, pins the tenant to an outbound IP pool instead of the
	// pool its reputation selects.
	Pool string `json:"pool,omitempty"`
	// AnySender lets the tenant's users send as any address of the tenant's
	// domains, not only their own and their aliases.
	AnySender bool `json:"any_sender,omitempty"`
	// Suspended tenants cannot submit; their queued mail is held.
	Suspended bool `json:"suspended,omitempty"`
	// Networks submit without AUTH as this tenant (application servers). A
	// network belongs to one tenant only.
	Networks []netip.Prefix `json:"networks,omitempty"`
	// Quarantine rules are applied by inbound to the tenant's incoming mail,
	// in order; the first rule that matches decides.
	Quarantine []QuarantineRule `json:"quarantine,omitempty"`
	// MailboxQuota caps the bytes stored in each of the tenant's mailboxes;
	// TenantQuota caps the bytes of all its mailboxes together. Zero means
	// no limit. mailstore enforces both at delivery and APPEND.
	MailboxQuota int64 `json:"mailbox_quota,omitempty"`
	TenantQuota  int64 `json:"tenant_quota,omitempty"`
	// IMAPConnections caps the tenant's concurrent IMAP connections (all
	// users together); IMAPUserConnections caps them per user. Zero: the
	// server's defaults.
	IMAPConnections     int `json:"imap_connections,omitempty"`
	IMAPUserConnections int `json:"imap_user_connections,omitempty"`
}

// QuarantineRule is one of a tenant's rules for incoming mail. Check says
// what is tested:
//
//   - "spf", "dkim", "dmarc": the check's result equals Result (fail,
//     softfail, neutral, none, temperror, permerror);
//   - "noauth": neither SPF nor any DKIM signature passed;
//   - "attachment": an attachment's file name ends in one of the
//     comma-separated extensions in Value ("exe,js,scr");
//   - "size": the message is larger than Value bytes;
//   - "sender": the envelope sender or From: address matches Value, an
//     address ("a@example.com") or a domain ("@example.com").
//
// Action is "quarantine" (deliver to the Quarantine folder), "reject"
// (550 5.7.1) or, for "sender" only, "accept" (an allow-list entry: skip
// the rules after it).
type QuarantineRule struct {
	Check  string `json:"check"`
	Result string `json:"result,omitempty"`
	Value  string `json:"value,omitempty"`
	Action string `json:"action"`
}

// Validate checks a rule's fields.
func (r QuarantineRule) Validate() error {
	switch r.Check {
	case "spf", "dkim", "dmarc":
		switch r.Result {
		case "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror":
		default:
			return fmt.Errorf("%w: quarantine rule %s: result %q: want pass, fail, softfail, neutral, none, temperror or permerror", ErrInvalid, r.Check, r.Result)
		}
		if r.Value != "" {
			return fmt.Errorf("%w: quarantine rule %s takes a result, not a value", ErrInvalid, r.Check)
		}
	case "noauth":
		if r.Result != "" || r.Value != "" {
			return fmt.Errorf("%w: quarantine rule noauth takes no result or value", ErrInvalid)
		}
	case "attachment":
		if r.Result != "" {
			return fmt.Errorf("%w: quarantine rule attachment takes a value, not a result", ErrInvalid)
		}
		exts := strings.Split(r.Value, ",")
		for _, e := range exts {
			e = strings.TrimPrefix(strings.TrimSpace(e), ".")
			if e == "" || len(e) > 16 || strings.ContainsAny(e, "./\\ \t") {
				return fmt.Errorf("%w: quarantine rule attachment: bad extension list %q (want e.g. \"exe,js,scr\")", ErrInvalid, r.Value)
			}
		}
	case "size":
		n, err := strconv.ParseInt(r.Value, 10, 64)
		if r.Result != "" || err != nil || n <= 0 {
			return fmt.Errorf("%w: quarantine rule size: value %q: want a positive byte count", ErrInvalid, r.Value)
		}
	case "sender":
		if r.Result != "" {
			return fmt.Errorf("%w: quarantine rule sender takes a value, not a result", ErrInvalid)
		}
		if d, ok := strings.CutPrefix(r.Value, "@"); ok {
			if _, err := NormalizeDomain(d); err != nil {
				return fmt.Errorf("%w: quarantine rule sender: %q is not @domain or an address", ErrInvalid, r.Value)
			}
		} else if _, err := NormalizeAddress(r.Value); err != nil {
			return fmt.Errorf("%w: quarantine rule sender: %q is not @domain or an address", ErrInvalid, r.Value)
		}
	default:
		return fmt.Errorf("%w: quarantine check %q: want spf, dkim, dmarc, noauth, attachment, size or sender", ErrInvalid, r.Check)
	}
	switch r.Action {
	case "quarantine", "reject":
	case "accept":
		if r.Check != "sender" {
			return fmt.Errorf("%w: quarantine action accept is for sender rules only", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: quarantine action %q: want quarantine, reject or accept", ErrInvalid, r.Action)
	}
	return nil
}

// Domain is a hosted domain; it belongs to exactly one tenant.
type Domain struct {
	Name    string    `json:"name"` // normalized: lower case, A-labels
	Tenant  string    `json:"tenant"`
	Created time.Time `json:"created"`
}

// Mailbox is a user: a full address with a password.
type Mailbox struct {
	Address string    `json:"address"` // normalized
	Tenant  string    `json:"tenant"`
	Hash    string    `json:"hash"` // argon2id, PHC string form
	Created time.Time `json:"created"`
}

// Alias forwards an address of a hosted domain to one or more targets:
// mailboxes of the same tenant or external addresses.
type Alias struct {
	Address string   `json:"address"`
	Tenant  string   `json:"tenant"`
	Targets []string `json:"targets"`
}

// state is the in-memory directory. Mutated only in txn after-commit
// functions (write lock held, d.mu held exclusively); read under d.mu shared.
type state struct {
	tenants   map[string]*Tenant
	domains   map[string]*Domain
	mailboxes map[string]*Mailbox
	aliases   map[string]*Alias
	// networks maps each client network to its tenant, for the rare
	// AUTH-less submission lookup.
	networks map[netip.Prefix]string
}

func newState() state {
	return state{
		tenants:   map[string]*Tenant{},
		domains:   map[string]*Domain{},
		mailboxes: map[string]*Mailbox{},
		aliases:   map[string]*Alias{},
		networks:  map[netip.Prefix]string{},
	}
}

func (st *state) putTenant(t *Tenant) {
	if old := st.tenants[t.Name]; old != nil {
		for _, n := range old.Policy.Networks {
			delete(st.networks, n)
		}
	}
	st.tenants[t.Name] = t
	for _, n := range t.Policy.Networks {
		st.networks[n] = t.Name
	}
}

func (st *state) deleteTenant(name string) {
	if old := st.tenants[name]; old != nil {
		for _, n := range old.Policy.Networks {
			delete(st.networks, n)
		}
	}
	delete(st.tenants, name)
}

// Limits on names and addresses (RFC 5321 §4.5.3.1).
const (
	maxTenantName = 64
	maxLocalPart  = 64
	maxDomain     = 253
	// maxQuarantineRules bounds the rules inbound runs per message.
	maxQuarantineRules = 100
)

var idnaProfile = idna.New(idna.MapForLookup(), idna.ValidateLabels(true), idna.VerifyDNSLength(true),
	idna.StrictDomainName(true), idna.BidiRule())

// NormalizeDomain returns a domain in stored form: lower case, A-labels, no
// trailing dot. It refuses what is not a valid host name.
func NormalizeDomain(s string) (string, error) {
	in := strings.TrimSuffix(strings.TrimSpace(s), ".")
	if in == "" {
		return "", fmt.Errorf("%w: empty domain", ErrInvalid)
	}
	a, err := idnaProfile.ToASCII(in)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrInvalid, s, err)
	}
	a = strings.ToLower(a)
	if len(a) > maxDomain || !strings.Contains(a, ".") {
		return "", fmt.Errorf("%w: domain %q: want a fully qualified name", ErrInvalid, s)
	}
	return a, nil
}

// NormalizeAddress returns an address in stored form: local part in lower
// case, domain normalized. A bare local part is refused.
func NormalizeAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", fmt.Errorf("%w: %q is not a full address (local@domain)", ErrInvalid, s)
	}
	local, dom := s[:at], s[at+1:]
	if local == "" || len(local) > maxLocalPart {
		return "", fmt.Errorf("%w: address %q: bad local part", ErrInvalid, s)
	}
	for _, c := range local {
		// Dot-atom text only (RFC 5322 §3.2.3), less '%' and '!', the old
		// source-routing characters of relay tricks; quoted local parts are
		// not accepted as identities.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune("#$&'*+-/=?^_`{|}~.", c)) {
			return "", fmt.Errorf("%w: address %q: character %q not allowed in a local part", ErrInvalid, s, c)
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "", fmt.Errorf("%w: address %q: misplaced dot in local part", ErrInvalid, s)
	}
	d, err := NormalizeDomain(dom)
	if err != nil {
		return "", err
	}
	return strings.ToLower(local) + "@" + d, nil
}

// validTenantName allows what is safe in keys, file names and CLI output.
func validTenantName(name string) error {
	if name == "" || len(name) > maxTenantName {
		return fmt.Errorf("%w: tenant name %q: 1 to %d characters", ErrInvalid, name, maxTenantName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: tenant name %q: use a-z, 0-9, '-', '_', '.'", ErrInvalid, name)
		}
	}
	return nil
}

func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

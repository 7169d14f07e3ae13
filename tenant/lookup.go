package tenant

import (
	"net/netip"
	"slices"
	"strings"
)

// Lookups asked on every SMTP or IMAP command. They read the in-memory
// directory under a shared lock and never touch the disk. Inputs are
// expected in stored form (see NormalizeAddress); callers normalize once per
// command. Mixed-case input is folded here as a convenience.

func fold(s string) string {
	upper := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80: // a U-label: only full normalization gives the A-label
			if n, err := NormalizeAddress(s); err == nil {
				return n
			}
			if n, err := NormalizeDomain(s); err == nil {
				return n
			}
			return s
		case c >= 'A' && c <= 'Z':
			upper = true
		}
	}
	if upper {
		return strings.ToLower(s)
	}
	return s
}

// DomainTenant returns the tenant hosting domain.
func (d *Directory) DomainTenant(domain string) (string, bool) {
	domain = fold(domain)
	d.mu.RLock()
	defer d.mu.RUnlock()
	if dom := d.st.domains[domain]; dom != nil {
		return dom.Tenant, true
	}
	return "", false
}

// MailboxTenant returns the tenant of a mailbox, if it exists.
func (d *Directory) MailboxTenant(address string) (string, bool) {
	address = fold(address)
	d.mu.RLock()
	defer d.mu.RUnlock()
	if m := d.st.mailboxes[address]; m != nil {
		return m.Tenant, true
	}
	return "", false
}

// AliasTargets returns the targets of an alias, if it is one.
func (d *Directory) AliasTargets(address string) ([]string, bool) {
	address = fold(address)
	d.mu.RLock()
	defer d.mu.RUnlock()
	if a := d.st.aliases[address]; a != nil {
		return slices.Clone(a.Targets), true
	}
	return nil, false
}

// TenantPolicy returns a tenant's policy.
func (d *Directory) TenantPolicy(tenant string) (Policy, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if t := d.st.tenants[tenant]; t != nil {
		return t.Policy, true
	}
	return Policy{}, false
}

// NetworkTenant returns the tenant whose client networks contain ip; such
// clients submit without AUTH as that tenant.
func (d *Directory) NetworkTenant(ip netip.Addr) (string, bool) {
	ip = ip.Unmap()
	d.mu.RLock()
	defer d.mu.RUnlock()
	for n, t := range d.st.networks {
		if n.Contains(ip) {
			return t, true
		}
	}
	return "", false
}

// MaySendAs reports whether an authenticated user may use sender as its
// envelope or From: address: its own address, an alias that delivers to it,
// or, if its tenant allows, any address of its tenant's domains. Never an
// address of another tenant.
func (d *Directory) MaySendAs(user Identity, sender string) bool {
	sender = fold(sender)
	at := strings.LastIndexByte(sender, '@')
	if at <= 0 {
		return false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if me := d.st.mailboxes[user.Address]; me == nil || me.Tenant != user.Tenant {
		return false // removed since it authenticated
	}
	if sender == user.Address {
		return true
	}
	dom := d.st.domains[sender[at+1:]]
	if dom == nil || dom.Tenant != user.Tenant {
		return false
	}
	if a := d.st.aliases[sender]; a != nil && slices.Contains(a.Targets, user.Address) {
		return true
	}
	t := d.st.tenants[user.Tenant]
	return t != nil && t.Policy.AnySender
}

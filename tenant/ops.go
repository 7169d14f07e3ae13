package tenant

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// maxAliasTargets bounds one alias's fan-out.
const maxAliasTargets = 100

// AddTenant creates a tenant.
func (d *Directory) AddTenant(name string, p Policy) error {
	if err := validTenantName(name); err != nil {
		return err
	}
	if err := d.validPolicy(name, &p); err != nil {
		return err
	}
	return d.update(func(tx *txn) error {
		if d.st.tenants[name] != nil {
			return fmt.Errorf("tenant %s: %w", name, ErrExists)
		}
		if err := d.checkNetworksFree(name, p.Networks); err != nil {
			return err
		}
		t := &Tenant{Name: name, Policy: p, Created: d.clock.Now().UTC()}
		if err := tx.set(pfxTenant+name, t); err != nil {
			return err
		}
		tx.afterCommit(func(st *state) { st.putTenant(t) })
		d.log.Info("tenant added", "tenant", name)
		return nil
	})
}

// validPolicy checks and completes a policy.
func (d *Directory) validPolicy(tenant string, p *Policy) error {
	if p.Weight == 0 {
		p.Weight = 1
	}
	if p.Weight < 1 || p.Weight > 1000 {
		return fmt.Errorf("%w: tenant %s: weight %d: want 1 to 1000", ErrInvalid, tenant, p.Weight)
	}
	if p.MailboxHourly < 0 || p.AccountDaily < 0 || p.MailboxQuota < 0 || p.TenantQuota < 0 ||
		p.IMAPConnections < 0 || p.IMAPUserConnections < 0 {
		return fmt.Errorf("%w: tenant %s: limits and quotas must not be negative", ErrInvalid, tenant)
	}
	if len(p.Quarantine) > maxQuarantineRules {
		return fmt.Errorf("%w: tenant %s: %d quarantine rules: at most %d", ErrInvalid, tenant, len(p.Quarantine), maxQuarantineRules)
	}
	seen := map[netip.Prefix]bool{}
	for i, n := range p.Networks {
		n = n.Masked()
		if !n.IsValid() {
			return fmt.Errorf("%w: tenant %s: invalid network", ErrInvalid, tenant)
		}
		if seen[n] {
			return fmt.Errorf("%w: tenant %s: network %s listed twice", ErrInvalid, tenant, n)
		}
		seen[n] = true
		p.Networks[i] = n
	}
	for _, r := range p.Quarantine {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("tenant %s: %w", tenant, err)
		}
	}
	return nil
}

// checkNetworksFree refuses networks that overlap another tenant's: a client
// address must identify one tenant only. Write lock held.
func (d *Directory) checkNetworksFree(tenant string, nets []netip.Prefix) error {
	for _, n := range nets {
		for other, owner := range d.st.networks {
			if owner != tenant && other.Overlaps(n) {
				return fmt.Errorf("%w: network %s overlaps %s of tenant %s", ErrExists, n, other, owner)
			}
		}
	}
	return nil
}

// UpdateTenant changes a tenant's policy with edit, atomically.
func (d *Directory) UpdateTenant(name string, edit func(p *Policy)) error {
	return d.EditTenant(name, func(p *Policy) error { edit(p); return nil })
}

// EditTenant is UpdateTenant with an edit that may refuse: its error
// aborts the change, and nothing is written.
func (d *Directory) EditTenant(name string, edit func(p *Policy) error) error {
	return d.update(func(tx *txn) error {
		old := d.st.tenants[name]
		if old == nil {
			return fmt.Errorf("tenant %s: %w", name, ErrNotFound)
		}
		t := *old
		t.Policy.Networks = slices.Clone(old.Policy.Networks)
		t.Policy.Quarantine = slices.Clone(old.Policy.Quarantine)
		if err := edit(&t.Policy); err != nil {
			return err
		}
		if err := d.validPolicy(name, &t.Policy); err != nil {
			return err
		}
		if err := d.checkNetworksFree(name, t.Policy.Networks); err != nil {
			return err
		}
		if err := tx.set(pfxTenant+name, &t); err != nil {
			return err
		}
		tx.afterCommit(func(st *state) { st.putTenant(&t) })
		d.log.Info("tenant updated", "tenant", name, "suspended", t.Policy.Suspended)
		return nil
	})
}

// SuspendTenant stops a tenant's submission; its queued mail is to be held.
func (d *Directory) SuspendTenant(name string) error {
	return d.UpdateTenant(name, func(p *Policy) { p.Suspended = true })
}

// ResumeTenant ends a suspension.
func (d *Directory) ResumeTenant(name string) error {
	return d.UpdateTenant(name, func(p *Policy) { p.Suspended = false })
}

// RemoveTenant removes a tenant with all its domains, mailboxes, aliases and
// DKIM keys, in one commit.
func (d *Directory) RemoveTenant(name string) error {
	return d.update(func(tx *txn) error {
		if d.st.tenants[name] == nil {
			return fmt.Errorf("tenant %s: %w", name, ErrNotFound)
		}
		names := map[string]bool{}
		for _, dom := range d.st.domains {
			if dom.Tenant == name {
				names[dom.Name] = true
			}
		}
		if err := d.stageRemoveDomains(tx, names); err != nil {
			return err
		}
		if err := tx.del(pfxTenant + name); err != nil {
			return err
		}
		tx.afterCommit(func(st *state) { st.deleteTenant(name) })
		d.log.Info("tenant removed", "tenant", name)
		return nil
	})
}

// AddDomain hosts a domain for a tenant and creates its DKIM keys. A domain
// another tenant holds is refused.
func (d *Directory) AddDomain(domain, tenant string) error {
	name, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return d.update(func(tx *txn) error { return d.stageAddDomain(tx, name, tenant, false) })
}

func (d *Directory) stageAddDomain(tx *txn, name, tenant string, deferRSA bool) error {
	if d.st.tenants[tenant] == nil {
		return fmt.Errorf("tenant %s: %w", tenant, ErrNotFound)
	}
	if cur := d.st.domains[name]; cur != nil {
		if cur.Tenant != tenant {
			return fmt.Errorf("domain %s: %w (held by another tenant)", name, ErrExists)
		}
		return fmt.Errorf("domain %s: %w", name, ErrExists)
	}
	dom := &Domain{Name: name, Tenant: tenant, Created: d.clock.Now().UTC()}
	if err := tx.set(pfxDomain+name, dom); err != nil {
		return err
	}
	if err := d.dkimAddDomain(tx, name, deferRSA); err != nil {
		return fmt.Errorf("domain %s: dkim keys: %w", name, err)
	}
	tx.afterCommit(func(st *state) { st.domains[name] = dom })
	d.log.Info("domain added", "tenant", tenant, "domain", name)
	return nil
}

// RemoveDomain removes a domain with its mailboxes, aliases and DKIM keys in
// one commit; aliases elsewhere that pointed at its mailboxes lose those
// targets.
func (d *Directory) RemoveDomain(domain string) error {
	name, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	return d.update(func(tx *txn) error {
		if d.st.domains[name] == nil {
			return fmt.Errorf("domain %s: %w", name, ErrNotFound)
		}
		return d.stageRemoveDomains(tx, map[string]bool{name: true})
	})
}

// stageRemoveDomains stages the removal of domains (of one tenant) with
// their mailboxes, aliases and keys, in one pass over mailboxes and aliases;
// aliases elsewhere lose targets in those domains.
func (d *Directory) stageRemoveDomains(tx *txn, names map[string]bool) error {
	var gone []string
	for addr := range d.st.mailboxes {
		if names[domainOf(addr)] {
			if err := tx.del(pfxMailbox + addr); err != nil {
				return err
			}
			gone = append(gone, addr)
		}
	}
	for addr, a := range d.st.aliases {
		if names[domainOf(addr)] {
			if err := d.stageAliasTargets(tx, a, nil); err != nil {
				return err
			}
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(a.Targets), func(t string) bool { return names[domainOf(t)] })
		if len(kept) != len(a.Targets) {
			if err := d.stageAliasTargets(tx, a, kept); err != nil {
				return err
			}
		}
	}
	for name := range names {
		if err := tx.del(pfxDomain + name); err != nil {
			return err
		}
		d.dkimRemoveDomain(tx, name)
		d.log.Info("domain removed", "tenant", d.st.domains[name].Tenant, "domain", name)
	}
	tx.afterCommit(func(st *state) {
		for name := range names {
			delete(st.domains, name)
		}
		for _, addr := range gone {
			delete(st.mailboxes, addr)
		}
	})
	return nil
}

// credential normalizes an address and hashes an acceptable password for
// it. Hashing happens before the write lock is taken.
func credential(address, password string) (addr, hash string, err error) {
	if addr, err = NormalizeAddress(address); err != nil {
		return "", "", err
	}
	if err = checkPassword(addr, password); err != nil {
		return "", "", err
	}
	hash, err = hashPassword(password)
	return addr, hash, err
}

// AddMailbox creates a user with a password.
func (d *Directory) AddMailbox(address, password string) error {
	addr, hash, err := credential(address, password)
	if err != nil {
		return err
	}
	return d.update(func(tx *txn) error { return d.stageAddMailbox(tx, addr, hash) })
}

func (d *Directory) stageAddMailbox(tx *txn, addr, hash string) error {
	dom := d.st.domains[domainOf(addr)]
	if dom == nil {
		return fmt.Errorf("mailbox %s: domain %s is not hosted: %w", addr, domainOf(addr), ErrNotFound)
	}
	if d.st.mailboxes[addr] != nil {
		return fmt.Errorf("mailbox %s: %w", addr, ErrExists)
	}
	if d.st.aliases[addr] != nil {
		return fmt.Errorf("mailbox %s: %w as an alias", addr, ErrExists)
	}
	m := &Mailbox{Address: addr, Tenant: dom.Tenant, Hash: hash, Created: d.clock.Now().UTC()}
	if err := tx.set(pfxMailbox+addr, m); err != nil {
		return err
	}
	tx.afterCommit(func(st *state) { st.mailboxes[addr] = m })
	d.log.Info("mailbox added", "tenant", dom.Tenant, "mailbox", addr)
	return nil
}

// SetPassword replaces a mailbox's password.
func (d *Directory) SetPassword(address, password string) error {
	addr, hash, err := credential(address, password)
	if err != nil {
		return err
	}
	return d.update(func(tx *txn) error {
		old := d.st.mailboxes[addr]
		if old == nil {
			return fmt.Errorf("mailbox %s: %w", addr, ErrNotFound)
		}
		m := *old
		m.Hash = hash
		if err := tx.set(pfxMailbox+addr, &m); err != nil {
			return err
		}
		tx.afterCommit(func(st *state) { st.mailboxes[addr] = &m })
		d.log.Info("password changed", "tenant", m.Tenant, "mailbox", addr)
		return nil
	})
}

// RemoveMailbox removes a user; aliases pointing at it lose that target.
func (d *Directory) RemoveMailbox(address string) error {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	return d.update(func(tx *txn) error {
		m := d.st.mailboxes[addr]
		if m == nil {
			return fmt.Errorf("mailbox %s: %w", addr, ErrNotFound)
		}
		if err := tx.del(pfxMailbox + addr); err != nil {
			return err
		}
		for _, a := range d.st.aliases {
			if slices.Contains(a.Targets, addr) {
				kept := slices.DeleteFunc(slices.Clone(a.Targets), func(t string) bool { return t == addr })
				if err := d.stageAliasTargets(tx, a, kept); err != nil {
					return err
				}
			}
		}
		tx.afterCommit(func(st *state) { delete(st.mailboxes, addr) })
		d.log.Info("mailbox removed", "tenant", m.Tenant, "mailbox", addr)
		return nil
	})
}

// AddAlias adds target to alias (creating the alias if needed). The alias
// must be in a hosted domain; a hosted target must be a mailbox of the same
// tenant, so an alias never lets one tenant's user receive or send as
// another tenant's address. External targets are forwarded.
func (d *Directory) AddAlias(alias, target string) error {
	a, err := NormalizeAddress(alias)
	if err != nil {
		return err
	}
	t, err := NormalizeAddress(target)
	if err != nil {
		return err
	}
	return d.update(func(tx *txn) error { return d.stageAddAlias(tx, a, t) })
}

func (d *Directory) stageAddAlias(tx *txn, a, t string) error {
	dom := d.st.domains[domainOf(a)]
	if dom == nil {
		return fmt.Errorf("alias %s: domain %s is not hosted: %w", a, domainOf(a), ErrNotFound)
	}
	if d.st.mailboxes[a] != nil {
		return fmt.Errorf("alias %s: %w as a mailbox", a, ErrExists)
	}
	if a == t {
		return fmt.Errorf("%w: alias %s points at itself", ErrInvalid, a)
	}
	if tdom := d.st.domains[domainOf(t)]; tdom != nil {
		if tdom.Tenant != dom.Tenant {
			return fmt.Errorf("%w: alias %s of tenant %s cannot point at %s of tenant %s",
				ErrInvalid, a, dom.Tenant, t, tdom.Tenant)
		}
		if d.st.mailboxes[t] == nil {
			return fmt.Errorf("alias %s: target mailbox %s: %w", a, t, ErrNotFound)
		}
	}
	cur := d.st.aliases[a]
	if cur == nil {
		cur = &Alias{Address: a, Tenant: dom.Tenant}
	}
	if slices.Contains(cur.Targets, t) {
		return fmt.Errorf("alias %s → %s: %w", a, t, ErrExists)
	}
	if len(cur.Targets) >= maxAliasTargets {
		return fmt.Errorf("%w: alias %s already has %d targets", ErrInvalid, a, maxAliasTargets)
	}
	d.log.Info("alias target added", "tenant", dom.Tenant, "alias", a, "target", t)
	return d.stageAliasTargets(tx, cur, append(slices.Clone(cur.Targets), t))
}

// RemoveAlias removes one target of an alias, or the whole alias when
// target is "".
func (d *Directory) RemoveAlias(alias, target string) error {
	a, err := NormalizeAddress(alias)
	if err != nil {
		return err
	}
	t := ""
	if target != "" {
		if t, err = NormalizeAddress(target); err != nil {
			return err
		}
	}
	return d.update(func(tx *txn) error {
		cur := d.st.aliases[a]
		if cur == nil {
			return fmt.Errorf("alias %s: %w", a, ErrNotFound)
		}
		kept := []string(nil)
		if t != "" {
			if !slices.Contains(cur.Targets, t) {
				return fmt.Errorf("alias %s → %s: %w", a, t, ErrNotFound)
			}
			kept = slices.DeleteFunc(slices.Clone(cur.Targets), func(x string) bool { return x == t })
		}
		d.log.Info("alias changed", "tenant", cur.Tenant, "alias", a, "removed", target)
		return d.stageAliasTargets(tx, cur, kept)
	})
}

// stageAliasTargets writes an alias with new targets, deleting it when none
// remain.
func (d *Directory) stageAliasTargets(tx *txn, cur *Alias, targets []string) error {
	addr := cur.Address
	if len(targets) == 0 {
		if err := tx.del(pfxAlias + addr); err != nil {
			return err
		}
		tx.afterCommit(func(st *state) { delete(st.aliases, addr) })
		return nil
	}
	na := &Alias{Address: addr, Tenant: cur.Tenant, Targets: targets}
	if err := tx.set(pfxAlias+addr, na); err != nil {
		return err
	}
	tx.afterCommit(func(st *state) { st.aliases[addr] = na })
	return nil
}

// ---- listings (admin; copies, sorted) ----

// Tenants lists all tenants.
func (d *Directory) Tenants() []Tenant {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Tenant, 0, len(d.st.tenants))
	for _, t := range d.st.tenants {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Tenant returns one tenant.
func (d *Directory) Tenant(name string) (Tenant, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t := d.st.tenants[name]
	if t == nil {
		return Tenant{}, fmt.Errorf("tenant %s: %w", name, ErrNotFound)
	}
	return *t, nil
}

// Domains lists hosted domains, of one tenant if tenant is not "".
func (d *Directory) Domains(tenant string) []Domain {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []Domain
	for _, dom := range d.st.domains {
		if tenant == "" || dom.Tenant == tenant {
			out = append(out, *dom)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Mailboxes lists the mailboxes of a domain (hashes left out).
func (d *Directory) Mailboxes(domain string) ([]Mailbox, error) {
	return domainEntries(d, domain, func(st *state) map[string]*Mailbox { return st.mailboxes }, func(m *Mailbox) Mailbox {
		c := *m
		c.Hash = ""
		return c
	}, func(m Mailbox) string { return m.Address })
}

// Aliases lists the aliases of a domain.
func (d *Directory) Aliases(domain string) ([]Alias, error) {
	return domainEntries(d, domain, func(st *state) map[string]*Alias { return st.aliases }, func(a *Alias) Alias {
		c := *a
		c.Targets = slices.Clone(a.Targets)
		return c
	}, func(a Alias) string { return a.Address })
}

// domainEntries lists the entries of one of the state's maps (chosen by
// table, read under d.mu) whose address is in domain, as copies, sorted by
// address.
func domainEntries[T any](d *Directory, domain string, table func(*state) map[string]*T, copyOf func(*T) T, addr func(T) string) ([]T, error) {
	name, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.st.domains[name] == nil {
		return nil, fmt.Errorf("domain %s: %w", name, ErrNotFound)
	}
	var out []T
	for a, e := range table(&d.st) {
		if domainOf(a) == name {
			out = append(out, copyOf(e))
		}
	}
	sort.Slice(out, func(i, j int) bool { return addr(out[i]) < addr(out[j]) })
	return out, nil
}

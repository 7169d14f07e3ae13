package tenant

// Moving one tenant between servers: ExportTenant writes down everything
// the directory holds about a tenant (policy, domains, mailboxes with their
// argon2id hashes, aliases, DKIM keys with their private keys and rotation
// state) as a TenantArchive; ImportTenant recreates it on another server in
// one transaction, so users keep their passwords and the published DKIM
// records stay valid. The mail itself (the domains' Maildirs) travels
// beside the archive; the admin API packs both into one tar.
//
// An archive comes from outside: ImportTenant checks it as AddTenant,
// AddDomain, AddMailbox and AddAlias check their arguments, checks each
// private key against the key record it claims to be, and refuses the whole
// archive (nothing written) on the first problem or conflict.

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// ArchiveVersion is the version of the TenantArchive format this code
// writes and the only one it reads.
const ArchiveVersion = 1

// Limits on what one archive may hold, so that a hostile archive cannot
// make the directory do unbounded work.
const (
	maxArchiveDomains   = 10000
	maxArchiveMailboxes = 1000000
	maxArchiveAliases   = 1000000
	maxArchiveKeys      = 16 // per domain: two per rotation, a few rotations in flight at most
	maxPrivateKeyPEM    = 16 << 10
)

// TenantArchive is one tenant as the directory holds it, for moving it to
// another server. It is JSON; Version says its format.
type TenantArchive struct {
	Version   int               `json:"version"`
	Exported  time.Time         `json:"exported"`
	Tenant    Tenant            `json:"tenant"`
	Domains   []Domain          `json:"domains"`
	Mailboxes []Mailbox         `json:"mailboxes"` // with their password hashes
	Aliases   []Alias           `json:"aliases"`
	DKIMKeys  []ArchivedDKIMKey `json:"dkim_keys"`
}

// ArchivedDKIMKey is one DKIM key: its metadata and rotation state, and
// its private key (PKCS#8 PEM, as in the key file) unless it is still
// being generated.
type ArchivedDKIMKey struct {
	Domain        string    `json:"domain"`
	Selector      string    `json:"selector"`
	Algorithm     string    `json:"algorithm"`
	State         KeyState  `json:"state"`
	Created       time.Time `json:"created"`
	FirstSeen     time.Time `json:"first_seen,omitzero"`
	Activated     time.Time `json:"activated,omitzero"`
	RetiringSince time.Time `json:"retiring_since,omitzero"`
	TXT           string    `json:"txt,omitempty"`
	PrivateKeyPEM string    `json:"private_key_pem,omitempty"`
}

// DomainNames lists the archive's domains, in archive order.
func (a *TenantArchive) DomainNames() []string {
	out := make([]string, 0, len(a.Domains))
	for _, d := range a.Domains {
		out = append(out, d.Name)
	}
	return out
}

// ExportTenant returns everything the directory holds about a tenant. The
// archive holds secrets (password hashes, DKIM private keys): treat it as
// the directory itself.
func (d *Directory) ExportTenant(name string) (*TenantArchive, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t := d.st.tenants[name]
	if t == nil {
		return nil, fmt.Errorf("export: tenant %s: %w", name, ErrNotFound)
	}
	a := &TenantArchive{Version: ArchiveVersion, Exported: d.clock.Now().UTC(), Tenant: *t,
		Domains: []Domain{}, Mailboxes: []Mailbox{}, Aliases: []Alias{}, DKIMKeys: []ArchivedDKIMKey{}}
	a.Tenant.Policy.Networks = slices.Clone(t.Policy.Networks)
	a.Tenant.Policy.Quarantine = slices.Clone(t.Policy.Quarantine)
	names := map[string]bool{}
	for _, dom := range d.st.domains {
		if dom.Tenant == name {
			a.Domains = append(a.Domains, *dom)
			names[dom.Name] = true
		}
	}
	slices.SortFunc(a.Domains, func(x, y Domain) int { return strings.Compare(x.Name, y.Name) })
	for addr, m := range d.st.mailboxes {
		if names[domainOf(addr)] {
			a.Mailboxes = append(a.Mailboxes, *m)
		}
	}
	slices.SortFunc(a.Mailboxes, func(x, y Mailbox) int { return strings.Compare(x.Address, y.Address) })
	for addr, al := range d.st.aliases {
		if names[domainOf(addr)] {
			c := *al
			c.Targets = slices.Clone(al.Targets)
			a.Aliases = append(a.Aliases, c)
		}
	}
	slices.SortFunc(a.Aliases, func(x, y Alias) int { return strings.Compare(x.Address, y.Address) })
	for _, dom := range a.Domains {
		for _, k := range d.dkim.domains[dom.Name] {
			ak := ArchivedDKIMKey{Domain: k.Domain, Selector: k.Selector, Algorithm: k.Algorithm, State: k.State,
				Created: k.Created, FirstSeen: k.FirstSeen, Activated: k.Activated, RetiringSince: k.RetiringSince, TXT: k.TXT}
			if k.State != KeyGenerating {
				if k.signer == nil {
					return nil, fmt.Errorf("export: tenant %s: dkim key %s of %s: private key file missing or unreadable; rotate the domain's keys first",
						name, k.Selector, k.Domain)
				}
				der, err := x509.MarshalPKCS8PrivateKey(k.signer)
				if err != nil {
					return nil, fmt.Errorf("export: tenant %s: dkim key %s of %s: %w", name, k.Selector, k.Domain, err)
				}
				ak.PrivateKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
			}
			a.DKIMKeys = append(a.DKIMKeys, ak)
		}
	}
	d.log.Info("tenant exported", "tenant", name, "domains", len(a.Domains), "mailboxes", len(a.Mailboxes))
	return a, nil
}

// checkedArchive is an archive that passed the checks that need no
// directory, with its private keys parsed.
type checkedArchive struct {
	a       *TenantArchive
	domains map[string]bool
	keys    []*liveKey // in archive order; signer nil while generating
}

// ValidateArchive checks an archive on its own: version, names, policy,
// hashes, aliases and keys, with the rules the Add methods apply. It does
// not look at the directory; ImportTenant and CheckImport do.
func ValidateArchive(a *TenantArchive) error {
	_, err := checkArchive(a)
	return err
}

func checkArchive(a *TenantArchive) (*checkedArchive, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: tenant archive: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if a == nil {
		return nil, bad("empty")
	}
	if a.Version != ArchiveVersion {
		return nil, bad("version %d: this server reads version %d", a.Version, ArchiveVersion)
	}
	name := a.Tenant.Name
	if err := validTenantName(name); err != nil {
		return nil, fmt.Errorf("tenant archive: %w", err)
	}
	if len(a.Domains) > maxArchiveDomains || len(a.Mailboxes) > maxArchiveMailboxes || len(a.Aliases) > maxArchiveAliases ||
		len(a.DKIMKeys) > maxArchiveKeys*max(len(a.Domains), 1) {
		return nil, bad("too many objects")
	}
	// validPolicy completes the policy in place (default weight, masked
	// networks); work on a copy's slices so the caller's value is not shared.
	a.Tenant.Policy.Networks = slices.Clone(a.Tenant.Policy.Networks)
	a.Tenant.Policy.Quarantine = slices.Clone(a.Tenant.Policy.Quarantine)
	if err := (&Directory{}).validPolicy(name, &a.Tenant.Policy); err != nil {
		return nil, fmt.Errorf("tenant archive: %w", err)
	}
	c := &checkedArchive{a: a, domains: map[string]bool{}}
	for _, dom := range a.Domains {
		n, err := NormalizeDomain(dom.Name)
		if err != nil || n != dom.Name {
			return nil, bad("domain %q is not in stored form", dom.Name)
		}
		if dom.Tenant != name {
			return nil, bad("domain %s belongs to tenant %q, not %s", dom.Name, dom.Tenant, name)
		}
		if c.domains[n] {
			return nil, bad("domain %s listed twice", n)
		}
		c.domains[n] = true
	}
	addrs := map[string]string{} // address -> "mailbox" or "alias"
	for _, m := range a.Mailboxes {
		n, err := NormalizeAddress(m.Address)
		if err != nil || n != m.Address {
			return nil, bad("mailbox %q is not in stored form", m.Address)
		}
		if !c.domains[domainOf(n)] {
			return nil, bad("mailbox %s is not in one of the tenant's domains", n)
		}
		if m.Tenant != name {
			return nil, bad("mailbox %s belongs to tenant %q, not %s", n, m.Tenant, name)
		}
		if !validHash(m.Hash) {
			return nil, bad("mailbox %s: password hash is not an argon2id hash this server can check", n)
		}
		if addrs[n] != "" {
			return nil, bad("mailbox %s listed twice", n)
		}
		addrs[n] = "mailbox"
	}
	for _, al := range a.Aliases {
		n, err := NormalizeAddress(al.Address)
		if err != nil || n != al.Address {
			return nil, bad("alias %q is not in stored form", al.Address)
		}
		if !c.domains[domainOf(n)] {
			return nil, bad("alias %s is not in one of the tenant's domains", n)
		}
		if al.Tenant != name {
			return nil, bad("alias %s belongs to tenant %q, not %s", n, al.Tenant, name)
		}
		if addrs[n] != "" {
			return nil, bad("alias %s: already listed as a %s", n, addrs[n])
		}
		addrs[n] = "alias"
		if len(al.Targets) == 0 || len(al.Targets) > maxAliasTargets {
			return nil, bad("alias %s: %d targets: want 1 to %d", n, len(al.Targets), maxAliasTargets)
		}
		seen := map[string]bool{}
		for _, t := range al.Targets {
			tn, err := NormalizeAddress(t)
			if err != nil || tn != t {
				return nil, bad("alias %s: target %q is not in stored form", n, t)
			}
			if tn == n || seen[tn] {
				return nil, bad("alias %s: target %s points at itself or is listed twice", n, tn)
			}
			seen[tn] = true
		}
	}
	// Targets in the tenant's own domains must be its mailboxes (checked
	// once every mailbox is known).
	for _, al := range a.Aliases {
		for _, t := range al.Targets {
			if c.domains[domainOf(t)] && addrs[t] != "mailbox" {
				return nil, bad("alias %s: target %s is not a mailbox of the tenant", al.Address, t)
			}
		}
	}
	perDomain := map[string]int{}
	selectors := map[string]bool{}
	for _, k := range a.DKIMKeys {
		lk, err := checkArchivedKey(k, c.domains)
		if err != nil {
			return nil, bad("%v", err)
		}
		id := k.Domain + "\x00" + k.Selector
		if selectors[id] {
			return nil, bad("dkim key %s of %s listed twice", k.Selector, k.Domain)
		}
		selectors[id] = true
		if perDomain[k.Domain]++; perDomain[k.Domain] > maxArchiveKeys {
			return nil, bad("domain %s: more than %d dkim keys", k.Domain, maxArchiveKeys)
		}
		c.keys = append(c.keys, lk)
	}
	return c, nil
}

// checkArchivedKey checks one key's fields and, unless it is generating,
// that its private key is the one its TXT record publishes.
func checkArchivedKey(k ArchivedDKIMKey, domains map[string]bool) (*liveKey, error) {
	if !domains[k.Domain] {
		return nil, fmt.Errorf("dkim key %s: domain %q is not one of the tenant's", k.Selector, k.Domain)
	}
	if !validSelector(k.Selector) {
		return nil, fmt.Errorf("dkim key of %s: bad selector %q", k.Domain, k.Selector)
	}
	if !slices.Contains(dkimAlgorithms, k.Algorithm) {
		return nil, fmt.Errorf("dkim key %s of %s: unknown algorithm %q", k.Selector, k.Domain, k.Algorithm)
	}
	lk := &liveKey{dkimKey: dkimKey{Domain: k.Domain, Selector: k.Selector, Algorithm: k.Algorithm, State: k.State,
		Created: k.Created, FirstSeen: k.FirstSeen, Activated: k.Activated, RetiringSince: k.RetiringSince, TXT: k.TXT}}
	switch k.State {
	case KeyGenerating:
		if k.Algorithm != AlgorithmRSA || k.TXT != "" || k.PrivateKeyPEM != "" {
			return nil, fmt.Errorf("dkim key %s of %s: a generating key is RSA, with no record or private key yet", k.Selector, k.Domain)
		}
		return lk, nil
	case KeyPending, KeyActive, KeyRetiring:
	default:
		return nil, fmt.Errorf("dkim key %s of %s: state %q cannot be imported", k.Selector, k.Domain, k.State)
	}
	if len(k.PrivateKeyPEM) > maxPrivateKeyPEM {
		return nil, fmt.Errorf("dkim key %s of %s: private key larger than %d bytes", k.Selector, k.Domain, maxPrivateKeyPEM)
	}
	signer, err := parsePrivateKeyPEM([]byte(k.PrivateKeyPEM), k.Algorithm, k.TXT)
	if err != nil {
		return nil, fmt.Errorf("dkim key %s of %s: %w", k.Selector, k.Domain, err)
	}
	lk.signer = signer
	return lk, nil
}

// parsePrivateKeyPEM reads a PKCS#8 PEM private key and checks it against
// the key record it belongs to, as readKeyFile does for a key file.
func parsePrivateKeyPEM(buf []byte, alg, txt string) (crypto.Signer, error) {
	block, rest := pem.Decode(buf)
	if block == nil || block.Type != "PRIVATE KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("private key: want one PKCS#8 PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key: %T cannot sign", key)
	}
	got, err := keyRecordValue(alg, signer.Public())
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if got != txt {
		return nil, errors.New("private key does not match the key record")
	}
	return signer, nil
}

// validSelector allows DNS labels of letters, digits and '-' joined by
// dots: a selector is part of a DNS name and of a file name.
func validSelector(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validHash reports whether h is an argon2id PHC string verifyPassword
// accepts: version, parameters in its bounds, salt and key decodable.
func validHash(h string) bool {
	parts := strings.Split(h, "$")
	if len(h) > 512 || len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || n != 3 ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) ||
		m < 8*1024 || m > 1<<20 || t < 1 || t > 16 || p < 1 || p > 16 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	return err1 == nil && err2 == nil && len(salt) >= 8 && len(key) == argonKeyLen
}

// CheckImport says whether ImportTenant would accept the archive now:
// ValidateArchive's checks and conflicts with what the directory holds. The
// admin API asks it before it unpacks any mail.
func (d *Directory) CheckImport(a *TenantArchive) error {
	c, err := checkArchive(a)
	if err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.checkImportConflicts(c)
}

// checkImportConflicts refuses an archive whose tenant, domains, addresses
// or networks this directory already has, or whose aliases point at
// another tenant's addresses here. d.mu or the write lock held.
func (d *Directory) checkImportConflicts(c *checkedArchive) error {
	a := c.a
	if d.st.tenants[a.Tenant.Name] != nil {
		return fmt.Errorf("import: tenant %s: %w", a.Tenant.Name, ErrExists)
	}
	for _, dom := range a.Domains {
		if cur := d.st.domains[dom.Name]; cur != nil {
			return fmt.Errorf("import: domain %s: %w (held by tenant %s)", dom.Name, ErrExists, cur.Tenant)
		}
		if len(d.dkim.domains[dom.Name]) > 0 {
			return fmt.Errorf("import: domain %s: dkim keys %w", dom.Name, ErrExists)
		}
	}
	for _, m := range a.Mailboxes {
		if d.st.mailboxes[m.Address] != nil || d.st.aliases[m.Address] != nil {
			return fmt.Errorf("import: mailbox %s: %w", m.Address, ErrExists)
		}
	}
	for _, al := range a.Aliases {
		if d.st.mailboxes[al.Address] != nil || d.st.aliases[al.Address] != nil {
			return fmt.Errorf("import: alias %s: %w", al.Address, ErrExists)
		}
		for _, t := range al.Targets {
			if tdom := d.st.domains[domainOf(t)]; tdom != nil {
				return fmt.Errorf("%w: import: alias %s of tenant %s cannot point at %s of tenant %s",
					ErrInvalid, al.Address, a.Tenant.Name, t, tdom.Tenant)
			}
		}
	}
	if err := d.checkNetworksFree(a.Tenant.Name, a.Tenant.Policy.Networks); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// ImportTenant recreates an exported tenant in one transaction: the tenant,
// its domains, mailboxes (their passwords keep working), aliases and DKIM
// keys (key files written and synced before the commit, removed if it
// fails). It refuses an archive of an unknown version, one that fails
// ValidateArchive (ErrInvalid), and one whose tenant, domains or addresses
// exist here (ErrExists); then nothing is written.
func (d *Directory) ImportTenant(a *TenantArchive) error {
	c, err := checkArchive(a)
	if err != nil {
		return err
	}
	name := a.Tenant.Name
	return d.update(func(tx *txn) error {
		if err := d.checkImportConflicts(c); err != nil {
			return err
		}
		t := a.Tenant
		if err := tx.set(pfxTenant+name, &t); err != nil {
			return err
		}
		tx.afterCommit(func(st *state) { st.putTenant(&t) })
		for i := range a.Domains {
			dom := a.Domains[i]
			if err := tx.set(pfxDomain+dom.Name, &dom); err != nil {
				return err
			}
			tx.afterCommit(func(st *state) { st.domains[dom.Name] = &dom })
		}
		for i := range a.Mailboxes {
			m := a.Mailboxes[i]
			if err := tx.set(pfxMailbox+m.Address, &m); err != nil {
				return err
			}
			tx.afterCommit(func(st *state) { st.mailboxes[m.Address] = &m })
		}
		for i := range a.Aliases {
			al := a.Aliases[i]
			al.Targets = slices.Clone(al.Targets)
			if err := tx.set(pfxAlias+al.Address, &al); err != nil {
				return err
			}
			tx.afterCommit(func(st *state) { st.aliases[al.Address] = &al })
		}
		if err := d.stageImportedKeys(tx, c.keys); err != nil {
			return err
		}
		d.log.Info("tenant imported", "tenant", name, "domains", len(a.Domains), "mailboxes", len(a.Mailboxes),
			"aliases", len(a.Aliases), "dkim_keys", len(c.keys))
		return nil
	})
}

// stageImportedKeys writes the key files of imported keys (removed if tx
// aborts), stages their records, and loads them into memory after the
// commit; keys still generating are handed to the background pool.
func (d *Directory) stageImportedKeys(tx *txn, keys []*liveKey) error {
	byDomain := map[string][]*liveKey{}
	var written, dirs []string // ours, to remove if tx aborts: files first, then their directories
	tx.onAbort(func() {
		for _, p := range append(written, dirs...) {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				d.log.Error("dkim: remove key file of an aborted import", "path", p, "err", err)
			}
		}
	})
	for _, k := range keys {
		if k.signer != nil {
			dir := filepath.Join(d.dataDir, "dkim", k.Domain)
			if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
				dirs = append(dirs, dir)
			}
			path := d.keyPath(k.Domain, k.Selector)
			written = append(written, path)
			if err := writeKeyFile(path, k.signer); err != nil {
				return fmt.Errorf("import: dkim: %s: %w", k.Domain, err)
			}
		}
		if err := tx.set(k.dbKey(), &k.dkimKey); err != nil {
			return fmt.Errorf("import: dkim: %s: stage key %s: %w", k.Domain, k.Selector, err)
		}
		byDomain[k.Domain] = append(byDomain[k.Domain], k)
	}
	tx.afterCommit(func(*state) {
		for domain, ks := range byDomain {
			slices.SortFunc(ks, func(a, b *liveKey) int {
				if c := a.Created.Compare(b.Created); c != 0 {
					return c
				}
				if c := slices.Index(dkimAlgorithms, a.Algorithm) - slices.Index(dkimAlgorithms, b.Algorithm); c != 0 {
					return c
				}
				return strings.Compare(a.Selector, b.Selector)
			})
			d.dkim.domains[domain] = ks
			for _, k := range ks {
				if k.State == KeyGenerating {
					d.dkim.gen.add(keyRef{domain, k.Selector})
				}
			}
		}
	})
	return nil
}

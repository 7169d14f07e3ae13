package tenant

// DKIM keys and their rotation.
//
// Every hosted domain has keys of two algorithms, RSA-2048 and Ed25519
// (relay signs with both: Ed25519 is not yet verified everywhere, RFC 8463).
// Each key goes through
//
//	generating → pending → active → retiring → removed
//
//   - generating: the record is staged but the RSA key is still being made
//     in the background (bulk import, scheduled rotation); it survives a
//     restart, and loadDKIM resumes the work (dkim_gen.go).
//   - pending: the operator must publish its TXT record. It becomes active
//     once the record is seen in DNS with this key's p= value and
//     PublishDelay has passed since it was first seen, so that resolvers
//     everywhere have it before the first signature does.
//   - active: relay signs with it (DKIMSigners).
//   - retiring: a newer key of the same algorithm became active. It no
//     longer signs but stays published for RetireDelay, so that mail still
//     in flight verifies.
//   - removed: the record is deleted and the private key file removed; the
//     operator removes the TXT record.
//
// The transitions are one pure function, advance (dkim_rotate.go);
// TickDKIM feeds it DNS observations and the clock.
//
// Storage: the metadata is the Pebble record k\x00<domain>\x00<selector>
// (dkimKey, JSON); the private key is <data_dir>/dkim/<domain>/<selector>.pem
// (PKCS#8 PEM, mode 0600, directories 0700), written and synced before the
// record that names it commits, and removed if that commit fails. In
// memory, dkimState.domains is guarded like d.st: changed only in
// after-commit functions (write lock and d.mu held), read under d.mu shared
// or under the write lock.

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Resolver is the DNS the directory needs: TXT lookups to see DKIM keys
// published and to check records, MX for `dns check`. Lookups of names
// that do not exist, or hold no record of the type asked, return an error
// matching ErrDNSNotFound; other errors are failures to find out.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// RotationPolicy times DKIM key rotation.
type RotationPolicy struct {
	Interval     time.Duration // start a rotation this long after a key became active (default 90 days)
	PublishDelay time.Duration // a pending key activates this long after its TXT record was first seen (default 48 h)
	RetireDelay  time.Duration // a retiring key stays published this long before removal (default 48 h)
}

func (p RotationPolicy) withDefaults() RotationPolicy {
	if p.Interval <= 0 {
		p.Interval = 90 * 24 * time.Hour
	}
	if p.PublishDelay <= 0 {
		p.PublishDelay = 48 * time.Hour
	}
	if p.RetireDelay <= 0 {
		p.RetireDelay = 48 * time.Hour
	}
	return p
}

// DKIM key algorithms, named as in the k= tag of the key record.
const (
	AlgorithmRSA     = "rsa"
	AlgorithmEd25519 = "ed25519"
)

// dkimAlgorithms are the algorithms every domain has a key of, in the
// order they are created and listed.
var dkimAlgorithms = []string{AlgorithmRSA, AlgorithmEd25519}

const rsaBits = 2048

// KeyState is a DKIM key's place in its rotation.
type KeyState string

// Key states, in order; see the comment at the top of dkim.go.
const (
	KeyGenerating KeyState = "generating"
	KeyPending    KeyState = "pending"
	KeyActive     KeyState = "active"
	KeyRetiring   KeyState = "retiring"
	KeyRemoved    KeyState = "removed"
)

// published reports whether a key in state s must be in DNS.
func (s KeyState) published() bool {
	return s == KeyPending || s == KeyActive || s == KeyRetiring
}

// dkimKey is the stored metadata of one key (never the private key).
type dkimKey struct {
	Domain    string    `json:"domain"`
	Selector  string    `json:"selector"`
	Algorithm string    `json:"algorithm"`
	State     KeyState  `json:"state"`
	Created   time.Time `json:"created"`
	// FirstSeen is when the TXT record was first seen in DNS with this
	// key; zero while it is not (or no longer) there.
	FirstSeen     time.Time `json:"first_seen,omitzero"`
	Activated     time.Time `json:"activated,omitzero"`
	RetiringSince time.Time `json:"retiring_since,omitzero"`
	// TXT is the key record value to publish; empty while generating.
	TXT string `json:"txt,omitempty"`
}

func (k *dkimKey) dbKey() string { return dkimDBKey(k.Domain, k.Selector) }

func dkimDBKey(domain, selector string) string { return pfxDKIM + domain + "\x00" + selector }

// recordName is the DNS name of the key record, absolute.
func (k *dkimKey) recordName() string { return k.Selector + "._domainkey." + k.Domain + "." }

// liveKey is a key in memory: its metadata and, once the file is read, its
// private key. A liveKey is never changed once shared: a new state means a
// new liveKey.
type liveKey struct {
	dkimKey
	signer crypto.Signer // nil while generating, or if the file is unreadable
}

// dkimState is the in-memory DKIM part of the directory.
type dkimState struct {
	// domains maps a domain to its keys in creation order. Guarded like
	// d.st; the slices are replaced, never changed in place.
	domains  map[string][]*liveKey
	resolver Resolver
	gen      *keyPool // background RSA generation
}

// DKIMSigner is an active key for relay to sign with (go-msgauth's
// dkim.SignOptions takes Selector and Signer; Algorithm is informative).
type DKIMSigner struct {
	Selector  string
	Algorithm string
	Signer    crypto.Signer
}

// DKIMKeyStatus is one key as the operator sees it (`fairway dkim status`).
type DKIMKeyStatus struct {
	Selector      string    `json:"selector"`
	Algorithm     string    `json:"algorithm"`
	State         KeyState  `json:"state"`
	Created       time.Time `json:"created"`
	FirstSeen     time.Time `json:"first_seen,omitzero"` // TXT record first seen in DNS
	Activated     time.Time `json:"activated,omitzero"`
	RetiringSince time.Time `json:"retiring_since,omitzero"`
	// Next is when the key's next timed step is due: activation (pending,
	// once seen), the next scheduled rotation (active), removal (retiring).
	Next time.Time `json:"next,omitzero"`
	// Record is the TXT record to publish; empty while generating.
	Record DNSRecord `json:"record,omitzero"`
	// Action says in plain words what the operator must do, if anything.
	Action string `json:"action"`
}

// loadDKIM reads the key records, loads the private keys, removes key
// files that no record names (left by a crash between a commit and the
// file removal after it), and resumes background generation. Open calls
// it once the directory is loaded.
func (d *Directory) loadDKIM() error {
	st := &dkimState{domains: map[string][]*liveKey{}, resolver: d.opts.Resolver}
	if st.resolver == nil {
		st.resolver = NewDNSResolver("")
	}
	st.gen = newKeyPool(runtime.GOMAXPROCS(0), d.log, d.finishGenerating)

	iter, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfxDKIM), UpperBound: []byte("k\x01")})
	if err != nil {
		return fmt.Errorf("directory: load dkim: %w", err)
	}
	defer iter.Close()
	var resume []keyRef
	nkeys := 0
	for valid := iter.First(); valid; valid = iter.Next() {
		var k dkimKey
		if err := json.Unmarshal(iter.Value(), &k); err != nil {
			return fmt.Errorf("directory: record %q: %w", iter.Key(), err)
		}
		if _, ok := d.st.domains[k.Domain]; !ok {
			// Cannot happen: removing a domain removes its key records in
			// the same batch. Say so rather than sign for it.
			d.log.Error("dkim key record of a domain not in the directory, ignored", "domain", k.Domain, "selector", k.Selector)
			continue
		}
		lk := &liveKey{dkimKey: k}
		if k.State == KeyGenerating {
			resume = append(resume, keyRef{k.Domain, k.Selector})
		} else {
			lk.signer, err = readKeyFile(d.keyPath(k.Domain, k.Selector), k.Algorithm, k.TXT)
			if err != nil {
				// One domain's broken key must not stop the server: the key
				// is listed with an action and is not used to sign.
				d.log.Error("dkim private key unusable", "domain", k.Domain, "selector", k.Selector, "err", err)
			}
		}
		st.domains[k.Domain] = append(st.domains[k.Domain], lk)
		nkeys++
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("directory: load dkim: %w", err)
	}
	for _, keys := range st.domains {
		slices.SortFunc(keys, func(a, b *liveKey) int {
			if c := a.Created.Compare(b.Created); c != 0 {
				return c
			}
			if c := slices.Index(dkimAlgorithms, a.Algorithm) - slices.Index(dkimAlgorithms, b.Algorithm); c != 0 {
				return c
			}
			return strings.Compare(a.Selector, b.Selector)
		})
	}
	d.dkim = st
	d.sweepKeyFiles()
	d.log.Info("dkim keys loaded", "keys", nkeys, "generating", len(resume))
	st.gen.add(resume...)
	return nil
}

// closeDKIM stops background key generation and waits for it; records
// left generating are resumed by the next Open. Close must call it before
// it takes the write lock. Safe to call more than once.
func (d *Directory) closeDKIM() {
	if d.dkim != nil {
		d.dkim.gen.stop()
	}
}

// sweepKeyFiles removes key files and directories that no key record
// names. Run at load only, before anything else writes there.
func (d *Directory) sweepKeyFiles() {
	root := filepath.Join(d.dataDir, "dkim")
	doms, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.log.Error("dkim: list key directory", "err", err)
		}
		return
	}
	for _, de := range doms {
		domain := de.Name()
		keys, ok := d.dkim.domains[domain]
		if !ok {
			d.log.Warn("dkim: removing key files of a domain not in the directory", "domain", domain)
			if err := os.RemoveAll(filepath.Join(root, domain)); err != nil {
				d.log.Error("dkim: remove key files", "domain", domain, "err", err)
			}
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, domain))
		if err != nil {
			d.log.Error("dkim: list key files", "domain", domain, "err", err)
			continue
		}
		for _, f := range files {
			sel, isPEM := strings.CutSuffix(f.Name(), ".pem")
			if isPEM && slices.ContainsFunc(keys, func(k *liveKey) bool { return k.Selector == sel }) {
				continue
			}
			d.log.Warn("dkim: removing a key file no record names", "domain", domain, "file", f.Name())
			if err := os.RemoveAll(filepath.Join(root, domain, f.Name())); err != nil {
				d.log.Error("dkim: remove key file", "domain", domain, "err", err)
			}
		}
	}
}

// dkimAddDomain stages a new domain's keys in tx: one per algorithm,
// pending. With deferRSA (bulk import) the RSA key is staged generating
// and made in the background after the commit. Call it once per domain in
// a transaction.
func (d *Directory) dkimAddDomain(tx *txn, domain string, deferRSA bool) error {
	if len(d.dkim.domains[domain]) > 0 {
		return fmt.Errorf("dkim: %s already has keys: %w", domain, ErrExists)
	}
	return d.stageNewKeys(tx, domain, d.clock.Now(), deferRSA, nil)
}

// dkimRemoveDomain stages the removal of a domain's key records in tx;
// after the commit it forgets the keys and removes the key files. Do not
// add the same domain again in the same transaction.
func (d *Directory) dkimRemoveDomain(tx *txn, domain string) {
	start, end := []byte(pfxDKIM+domain+"\x00"), []byte(pfxDKIM+domain+"\x01")
	if err := tx.b.DeleteRange(start, end, nil); err != nil {
		// Pebble fails a range deletion only on a misused batch; the
		// signature leaves no way to refuse, so say it loudly.
		d.log.Error("dkim: stage removal of key records", "domain", domain, "err", err)
	}
	tx.afterCommit(func(*state) {
		delete(d.dkim.domains, domain)
		if err := os.RemoveAll(filepath.Join(d.dataDir, "dkim", domain)); err != nil {
			d.log.Error("dkim: remove key files", "domain", domain, "err", err)
		}
		d.log.Info("dkim keys removed", "domain", domain)
	})
}

// RotateDKIM starts a rotation of the domain's keys now: a new pending key
// of each algorithm. The current keys stay active until the new ones are
// published and have waited out the publish delay. It refuses (ErrExists)
// while a rotation is already in progress.
func (d *Directory) RotateDKIM(domain string) error {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	// Make the keys before taking the write lock: RSA-2048 takes tens of
	// milliseconds, during which every other change would wait.
	pre := map[string]crypto.Signer{}
	for _, alg := range dkimAlgorithms {
		if pre[alg], err = newPrivateKey(alg); err != nil {
			return fmt.Errorf("dkim: rotate %s: %w", domain, err)
		}
	}
	return d.update(func(tx *txn) error {
		if _, ok := d.st.domains[domain]; !ok {
			return fmt.Errorf("dkim: rotate %s: domain %w", domain, ErrNotFound)
		}
		for _, k := range d.dkim.domains[domain] {
			if k.State == KeyGenerating || k.State == KeyPending {
				return fmt.Errorf("dkim: rotate %s: a rotation is in progress (key %s is %s): %w",
					domain, k.Selector, k.State, ErrExists)
			}
		}
		d.log.Info("dkim rotation started", "domain", domain, "reason", "operator")
		return d.stageNewKeys(tx, domain, d.clock.Now(), false, pre)
	})
}

// stageNewKeys stages one new key per algorithm for domain in tx: key files
// written now (removed if tx aborts), records set, memory updated after the
// commit. pre holds keys already made, by algorithm; missing ones are made
// here, except RSA with deferRSA, which is staged generating.
func (d *Directory) stageNewKeys(tx *txn, domain string, now time.Time, deferRSA bool, pre map[string]crypto.Signer) error {
	existing := d.dkim.domains[domain]
	taken := func(sel string) bool {
		return slices.ContainsFunc(existing, func(k *liveKey) bool { return k.Selector == sel })
	}
	var added []*liveKey
	for _, alg := range dkimAlgorithms {
		k := &liveKey{dkimKey: dkimKey{
			Domain: domain, Selector: pickSelector(now, alg, taken), Algorithm: alg,
			State: KeyPending, Created: now,
		}}
		if alg == AlgorithmRSA && deferRSA && pre[alg] == nil {
			k.State = KeyGenerating
		} else {
			k.signer = pre[alg]
			if k.signer == nil {
				var err error
				if k.signer, err = newPrivateKey(alg); err != nil {
					return fmt.Errorf("dkim: %s: %w", domain, err)
				}
			}
			if err := d.stageKeyMaterial(tx, k); err != nil {
				return err
			}
		}
		if err := tx.set(k.dbKey(), &k.dkimKey); err != nil {
			return fmt.Errorf("dkim: %s: stage key %s: %w", domain, k.Selector, err)
		}
		added = append(added, k)
	}
	tx.afterCommit(func(*state) {
		d.dkim.domains[domain] = append(slices.Clone(d.dkim.domains[domain]), added...)
		for _, k := range added {
			if k.State == KeyGenerating {
				d.dkim.gen.add(keyRef{domain, k.Selector})
			}
		}
	})
	return nil
}

// stageKeyMaterial fills in k's TXT value from its signer and writes its
// key file, to be removed if tx does not commit.
func (d *Directory) stageKeyMaterial(tx *txn, k *liveKey) error {
	txt, err := keyRecordValue(k.Algorithm, k.signer.Public())
	if err != nil {
		return fmt.Errorf("dkim: %s: key %s: %w", k.Domain, k.Selector, err)
	}
	k.TXT = txt
	path := d.keyPath(k.Domain, k.Selector)
	if err := writeKeyFile(path, k.signer); err != nil {
		return fmt.Errorf("dkim: %s: %w", k.Domain, err)
	}
	tx.onAbort(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Error("dkim: remove key file of an aborted change", "domain", k.Domain, "selector", k.Selector, "err", err)
		}
	})
	return nil
}

// pickSelector names a new key after the month, fw<YYYYMM>r for RSA and
// fw<YYYYMM>e for Ed25519, with a number appended (fw202611r2, …) when the
// name is taken.
func pickSelector(now time.Time, alg string, taken func(string) bool) string {
	letter := "e"
	if alg == AlgorithmRSA {
		letter = "r"
	}
	base := "fw" + now.UTC().Format("200601") + letter
	sel := base
	for n := 2; taken(sel); n++ {
		sel = base + strconv.Itoa(n)
	}
	return sel
}

func (d *Directory) keyPath(domain, selector string) string {
	return filepath.Join(d.dataDir, "dkim", domain, selector+".pem")
}

// DKIMSigners returns the domain's active keys, for relay to sign with.
// The domain is in stored form (NormalizeDomain); an unknown domain has
// none.
func (d *Directory) DKIMSigners(domain string) []DKIMSigner {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []DKIMSigner
	for _, k := range d.dkim.domains[domain] {
		if k.State == KeyActive && k.signer != nil {
			out = append(out, DKIMSigner{Selector: k.Selector, Algorithm: k.Algorithm, Signer: k.signer})
		}
	}
	return out
}

// DKIMStatus returns the state of each of the domain's keys and what the
// operator must do about it.
func (d *Directory) DKIMStatus(domain string) ([]DKIMKeyStatus, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	d.mu.RLock()
	_, ok := d.st.domains[domain]
	keys := d.dkim.domains[domain]
	d.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("dkim status: domain %s: %w", domain, ErrNotFound)
	}
	now, p := d.clock.Now(), d.opts.DKIM
	out := make([]DKIMKeyStatus, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyStatus(k, now, p))
	}
	return out, nil
}

func keyStatus(k *liveKey, now time.Time, p RotationPolicy) DKIMKeyStatus {
	s := DKIMKeyStatus{
		Selector: k.Selector, Algorithm: k.Algorithm, State: k.State, Created: k.Created,
		FirstSeen: k.FirstSeen, Activated: k.Activated, RetiringSince: k.RetiringSince,
	}
	if k.TXT != "" {
		s.Record = DNSRecord{Name: k.recordName(), Type: "TXT", Value: k.TXT, Kind: RecordDKIM}
	}
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch k.State {
	case KeyGenerating:
		s.Action = "wait: the key is being generated; its TXT record will be shown here"
	case KeyPending:
		if k.FirstSeen.IsZero() {
			s.Action = "publish TXT " + s.Record.Name + " " + quoteTXT(k.TXT)
		} else {
			s.Next = k.FirstSeen.Add(p.PublishDelay)
			s.Action = "waiting for publication delay until " + at(s.Next) + "; the key then becomes active by itself"
		}
	case KeyActive:
		s.Next = k.Activated.Add(p.Interval)
		s.Action = "nothing to do"
	case KeyRetiring:
		s.Next = k.RetiringSince.Add(p.RetireDelay)
		s.Action = "remove TXT " + s.Record.Name + " after " + at(s.Next) + " (keep it published until then)"
	}
	if k.State.published() && k.signer == nil {
		s.Action = "private key file missing or unreadable: start a new rotation (fairway dkim rotate " + k.Domain + ")"
	}
	return s
}

// newPrivateKey makes a private key of the algorithm.
func newPrivateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgorithmRSA:
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		return k, nil
	case AlgorithmEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unknown dkim algorithm %q", alg)
}

// keyRecordValue is the DKIM key record (RFC 6376 §3.6.1) for a public
// key: RSA as SubjectPublicKeyInfo, Ed25519 as the raw 32 bytes (RFC 8463).
func keyRecordValue(alg string, pub crypto.PublicKey) (string, error) {
	var der []byte
	switch pk := pub.(type) {
	case *rsa.PublicKey:
		if alg != AlgorithmRSA {
			return "", fmt.Errorf("rsa public key for algorithm %q", alg)
		}
		var err error
		if der, err = x509.MarshalPKIXPublicKey(pk); err != nil {
			return "", fmt.Errorf("encode public key: %w", err)
		}
	case ed25519.PublicKey:
		if alg != AlgorithmEd25519 {
			return "", fmt.Errorf("ed25519 public key for algorithm %q", alg)
		}
		der = pk
	default:
		return "", fmt.Errorf("unsupported public key type %T", pub)
	}
	return "v=DKIM1; k=" + alg + "; p=" + base64.StdEncoding.EncodeToString(der), nil
}

// keyRecordP returns the p= value of a DKIM key record with all
// whitespace removed (whitespace may appear anywhere in it, RFC 6376
// §3.6.1, and the strings of a split TXT record are joined before this).
func keyRecordP(txt string) (string, bool) {
	for tag := range strings.SplitSeq(txt, ";") {
		tag = strings.Join(strings.Fields(tag), "")
		if v, ok := strings.CutPrefix(tag, "p="); ok {
			return v, true
		}
	}
	return "", false
}

// writeKeyFile writes a private key as PKCS#8 PEM, mode 0600, durably: a
// temporary file synced and renamed, the directory synced, directories
// created 0700 and their parents synced.
func writeKeyFile(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	buf := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	dir := filepath.Dir(path)
	if err := mkdirSynced(dir); err != nil {
		return err
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // left by a crash; recreated below with our mode
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// mkdirSynced creates dir and missing parents with mode 0700, syncing the
// parent of each directory it creates.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create key directory: %w", err)
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// readKeyFile reads a private key file and checks it against the key
// record it belongs to.
func readKeyFile(path, alg, txt string) (crypto.Signer, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	block, _ := pem.Decode(buf)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("key file %s: no PKCS#8 PEM block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key file %s: %T cannot sign", path, key)
	}
	got, err := keyRecordValue(alg, signer.Public())
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if got != txt {
		return nil, fmt.Errorf("key file %s does not match the key record", path)
	}
	return signer, nil
}

package mailstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"fairway/tenant"
)

// Directory is what mailstore needs of the tenant directory;
// *tenant.Directory implements it.
type Directory interface {
	MailboxTenant(address string) (string, bool)
	TenantPolicy(tenant string) (tenant.Policy, bool)
	// Authenticate returns tenant.ErrAuth on any failure, bare local part
	// included.
	Authenticate(address, password string) (tenant.Identity, error)
}

// Clock is mailstore's source of time (INTERNALDATE, file names,
// UIDVALIDITY).
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Store. Directory is required.
type Options struct {
	Directory Directory
	Clock     Clock // nil: the system clock
	Logger    *slog.Logger
	// MaxMessageSize caps one message at delivery and APPEND (default
	// 64 MiB).
	MaxMessageSize int64
	// MaxCachedMessages caps the messages whose index entries are kept in
	// memory across folders (default 2,000,000, roughly 0.5 GB); folders
	// no session has selected are dropped beyond it.
	MaxCachedMessages int
}

const (
	defaultMaxMessageSize = 64 << 20
	defaultMaxCached      = 2_000_000
)

// Store is the mail store. Its methods are safe for concurrent use.
type Store struct {
	mailDir string
	db      *pebble.DB
	dir     Directory
	clock   Clock
	log     *slog.Logger
	names   *nameSource
	maxSize int64

	mu        sync.Mutex // guards boxes, lastID, lastUIDV
	boxes     map[string]*mailbox
	lastID    uint32
	lastUIDV  uint32
	closed    bool
	usageMu   sync.Mutex       // leaf lock: usage, tenantUse
	usage     map[string]int64 // address -> bytes in all its folders
	tenantUse map[string]int64 // tenant -> bytes

	cacheMu       sync.Mutex // guards cachedMsgs, cachedFolders; never held while waiting for a folder lock
	cachedMsgs    int
	cachedFolders map[*folder]struct{}
	maxCached     int
}

// mailbox is one user's Maildir and its folders.
type mailbox struct {
	s      *Store
	addr   string
	tenant string // as of the first use in this process (usage is counted under it)
	root   string

	mu      sync.Mutex // guards folders, scanned
	folders map[string]*folder
	scanned bool // folder directories on disk reconciled with the index
}

// Open opens the store under dataDir: mail in <dataDir>/mail, the index in
// <dataDir>/mail/index (Pebble). Mailboxes whose Maildir has no index yet
// (restored from a backup, written by another tool, or an index lost) are
// indexed now, with a new UIDVALIDITY.
func Open(dataDir string, o Options) (*Store, error) {
	if o.Directory == nil {
		return nil, errors.New("mailstore: Options.Directory is required")
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = defaultMaxMessageSize
	}
	if o.MaxCachedMessages <= 0 {
		o.MaxCachedMessages = defaultMaxCached
	}
	mailDir := filepath.Join(dataDir, "mail")
	idxDir := filepath.Join(mailDir, "index")
	if err := os.MkdirAll(idxDir, 0o700); err != nil {
		return nil, fmt.Errorf("mailstore: %w", err)
	}
	log := o.Logger.With("component", "mailstore")
	db, err := pebble.Open(idxDir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("mailstore: open index %s: %w", idxDir, err)
	}
	s := &Store{
		mailDir: mailDir, db: db, dir: o.Directory, clock: o.Clock, log: log,
		names: newNameSource(), maxSize: o.MaxMessageSize,
		boxes: map[string]*mailbox{}, usage: map[string]int64{}, tenantUse: map[string]int64{},
		cachedFolders: map[*folder]struct{}{}, maxCached: o.MaxCachedMessages,
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.indexUnknownMailboxes(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// load reads the id counters and every folder's byte count into the usage
// counters.
func (s *Store) load() error {
	v, closer, err := s.db.Get([]byte(keyLastIDs))
	switch {
	case err == nil:
		if len(v) == 8 {
			s.lastID = binary.BigEndian.Uint32(v)
			s.lastUIDV = binary.BigEndian.Uint32(v[4:])
		}
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("mailstore: load: %w", err)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(keyFolderName), UpperBound: []byte("N\x01")})
	if err != nil {
		return fmt.Errorf("mailstore: load: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		rest := string(it.Key()[len(keyFolderName):])
		addr, _, ok := strings.Cut(rest, "\x00")
		if !ok || len(it.Value()) != 4 {
			continue
		}
		id := binary.BigEndian.Uint32(it.Value())
		m, err := s.getMeta(id)
		if err != nil {
			continue
		}
		s.usage[addr] += m.Bytes
	}
	for addr, n := range s.usage {
		if t, ok := s.dir.MailboxTenant(addr); ok {
			s.tenantUse[t] += n
		}
	}
	return it.Error()
}

// indexUnknownMailboxes indexes Maildirs on disk that the index does not
// know (its usage counters must include them).
func (s *Store) indexUnknownMailboxes() error {
	domains, err := os.ReadDir(s.mailDir)
	if err != nil {
		return fmt.Errorf("mailstore: %w", err)
	}
	for _, d := range domains {
		if !d.IsDir() || d.Name() == "index" {
			continue
		}
		users, err := os.ReadDir(filepath.Join(s.mailDir, d.Name()))
		if err != nil {
			return fmt.Errorf("mailstore: %w", err)
		}
		for _, u := range users {
			addr := strings.ReplaceAll(u.Name(), "%2F", "/") + "@" + d.Name()
			s.usageMu.Lock()
			_, known := s.usage[addr]
			s.usageMu.Unlock()
			if known || !u.IsDir() {
				continue
			}
			if _, ok := s.dir.MailboxTenant(addr); !ok {
				continue // not a mailbox (any more): left alone, not served
			}
			mb, err := s.mailbox(addr)
			if err != nil {
				return err
			}
			if err := mb.scan(); err != nil {
				return err
			}
			s.log.Info("indexed mailbox found on disk", "tenant", mb.tenant, "mailbox", addr)
		}
	}
	return nil
}

// Close closes the index. Deliveries in progress finish first.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	boxes := s.boxes
	s.mu.Unlock()
	// Wait for every folder operation to end by taking each folder lock.
	for _, mb := range boxes {
		mb.mu.Lock()
		for _, f := range mb.folders {
			f.mu.Lock()
			f.closed = true
			f.mu.Unlock()
		}
		mb.mu.Unlock()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("mailstore: close: %w", err)
	}
	return nil
}

var errClosed = errors.New("mailstore: closed")

// mailbox returns the (in-memory) mailbox of a normalized address known to
// the directory.
func (s *Store) mailbox(address string) (*mailbox, error) {
	addr, err := tenant.NormalizeAddress(address)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoMailbox, err)
	}
	t, ok := s.dir.MailboxTenant(addr)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoMailbox, addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	mb := s.boxes[addr]
	if mb == nil {
		root, err := mailboxDir(s.mailDir, addr)
		if err != nil {
			return nil, err
		}
		mb = &mailbox{s: s, addr: addr, tenant: t, root: root, folders: map[string]*folder{}}
		s.boxes[addr] = mb
	}
	return mb, nil
}

// Deliver stores one message for a mailbox address in folder ("" or
// FolderInbox for INBOX; other folders are created on demand). The message
// is durable (written to tmp, fsynced, renamed into new, directory fsynced,
// index committed) before Deliver returns nil. Errors: ErrNoMailbox,
// ErrOverQuota, ErrBadFolder (all wrapped).
func (s *Store) Deliver(ctx context.Context, address, folder string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if folder == "" {
		folder = FolderInbox
	}
	name, err := CheckFolderName(folder)
	if err != nil {
		return err
	}
	mb, err := s.mailbox(address)
	if err != nil {
		return err
	}
	if err := mb.ensureScanned(); err != nil {
		return err
	}
	f, err := mb.folder(name, true)
	if err != nil {
		return err
	}
	uid, err := f.appendMessage(toCRLF(body), 0, nil, time.Time{}, true)
	if err != nil {
		return err
	}
	s.log.Info("delivered", "tenant", mb.tenant, "mailbox", mb.addr, "folder", name, "uid", uid, "size", len(body))
	return nil
}

// CheckQuota says whether size more bytes fit in the mailbox now (nil), or
// not (ErrOverQuota wrapped).
func (s *Store) CheckQuota(address string, size int64) error {
	mb, err := s.mailbox(address)
	if err != nil {
		return err
	}
	if err := mb.ensureScanned(); err != nil {
		return err
	}
	return s.checkQuota(mb, size)
}

func (s *Store) checkQuota(mb *mailbox, size int64) error {
	if size > s.maxSize {
		return fmt.Errorf("%w: message of %d bytes is over the %d byte limit", ErrOverQuota, size, s.maxSize)
	}
	p, _ := s.dir.TenantPolicy(mb.tenant)
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	return quotaErr(p, mb.addr, s.usage[mb.addr], s.tenantUse[mb.tenant], size)
}

func quotaErr(p tenant.Policy, addr string, boxUse, tenantUse, size int64) error {
	if p.MailboxQuota > 0 && boxUse+size > p.MailboxQuota {
		return fmt.Errorf("%w: mailbox %s uses %d of %d bytes", ErrOverQuota, addr, boxUse, p.MailboxQuota)
	}
	if p.TenantQuota > 0 && tenantUse+size > p.TenantQuota {
		return fmt.Errorf("%w: tenant uses %d of %d bytes", ErrOverQuota, tenantUse, p.TenantQuota)
	}
	return nil
}

// reserve adds size bytes to the mailbox's and its tenant's usage if the
// quotas allow it (enforce) and returns the undo.
func (s *Store) reserve(mb *mailbox, size int64, enforce bool) (func(), error) {
	p, _ := s.dir.TenantPolicy(mb.tenant)
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	if enforce {
		if err := quotaErr(p, mb.addr, s.usage[mb.addr], s.tenantUse[mb.tenant], size); err != nil {
			return nil, err
		}
	}
	s.usage[mb.addr] += size
	s.tenantUse[mb.tenant] += size
	return func() { s.addUsage(mb, -size) }, nil
}

func (s *Store) addUsage(mb *mailbox, delta int64) {
	s.usageMu.Lock()
	s.usage[mb.addr] += delta
	s.tenantUse[mb.tenant] += delta
	s.usageMu.Unlock()
}

// MailboxUsage is the bytes stored in all folders of a mailbox.
func (s *Store) MailboxUsage(address string) (int64, error) {
	mb, err := s.mailbox(address)
	if err != nil {
		return 0, err
	}
	if err := mb.ensureScanned(); err != nil {
		return 0, err
	}
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	return s.usage[mb.addr], nil
}

// TenantUsage is the bytes stored in all mailboxes of a tenant's domains.
func (s *Store) TenantUsage(tenantName string) (int64, error) {
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	return s.tenantUse[tenantName], nil
}

// ensureScanned reconciles the folder directories on disk with the index
// once per process: folders made by other tools get indexed.
func (mb *mailbox) ensureScanned() error {
	mb.mu.Lock()
	done := mb.scanned
	mb.mu.Unlock()
	if done {
		return nil
	}
	return mb.scan()
}

// scan indexes every folder directory of the Maildir the index lacks.
func (mb *mailbox) scan() error {
	names, err := listFolderDirs(mb.root)
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := mb.folder(n, false); err != nil {
			return err
		}
	}
	mb.mu.Lock()
	mb.scanned = true
	mb.mu.Unlock()
	return nil
}

// folder returns a folder of the mailbox. A folder known to the index is
// returned as is; one on disk but not in the index is indexed (new
// UIDVALIDITY); one in neither is created if create is set, else
// ErrNoFolder.
func (mb *mailbox) folder(name string, create bool) (*folder, error) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if f := mb.folders[name]; f != nil {
		return f, nil
	}
	s := mb.s
	dir := folderDir(mb.root, name)
	id, meta, err := s.lookupFolder(mb.addr, name)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(filepath.Join(dir, "cur"))
	onDisk := statErr == nil
	fresh := false // indexed now from files on disk
	if id != 0 && !onDisk {
		// Removed behind our back: forget it, and start afresh if wanted.
		if err := s.dropFolderIndex(mb, name, id, meta); err != nil {
			return nil, err
		}
		id = 0
	}
	if id == 0 {
		if !onDisk && !create {
			return nil, fmt.Errorf("%w: %s", errNoFolder, name)
		}
		if len(mb.folders) >= maxFolders {
			return nil, fmt.Errorf("%w: too many folders", ErrBadFolder)
		}
		if err := makeMaildir(dir); err != nil {
			return nil, err
		}
		if id, meta, err = s.newFolderIndex(mb.addr, name, dir); err != nil {
			return nil, err
		}
		fresh = onDisk
	}
	f := newFolder(mb, name, id, meta)
	if fresh {
		// A Maildir restored, written by another tool, or whose index was
		// lost: index its files now so that usage counts them.
		if err := f.load(); err != nil {
			return nil, err
		}
	}
	mb.folders[name] = f
	return f, nil
}

var errNoFolder = errors.New("mailstore: no such folder")

func (s *Store) lookupFolder(addr, name string) (uint32, folderMeta, error) {
	v, closer, err := s.db.Get(nameKey(addr, name))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, folderMeta{}, nil
	}
	if err != nil {
		return 0, folderMeta{}, fmt.Errorf("mailstore: index: %w", err)
	}
	if len(v) != 4 {
		closer.Close()
		return 0, folderMeta{}, nil
	}
	id := binary.BigEndian.Uint32(v)
	closer.Close()
	m, err := s.getMeta(id)
	if err != nil {
		return 0, folderMeta{}, nil // a lost meta is a lost folder index
	}
	return id, m, nil
}

func (s *Store) getMeta(id uint32) (folderMeta, error) {
	v, closer, err := s.db.Get(metaKey(id))
	if err != nil {
		return folderMeta{}, err
	}
	defer closer.Close()
	return decodeMeta(v)
}

// uidValidityFile, in each folder directory, keeps the folder's last
// UIDVALIDITY so that an index rebuilt from the files never reuses it.
const uidValidityFile = "fairway-uidvalidity"

// newFolderIndex allocates a folder id and a fresh UIDVALIDITY: the
// current time in seconds, or one more than the last one issued by this
// index or recorded in the folder, whichever is largest, so that a folder
// deleted and created again, or an index lost and rebuilt, never reuses
// one.
func (s *Store) newFolderIndex(addr, name, dir string) (uint32, folderMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastID++
	uidv := uint32(s.clock.Now().Unix())
	if uidv <= s.lastUIDV {
		uidv = s.lastUIDV + 1
	}
	if b, err := os.ReadFile(filepath.Join(dir, uidValidityFile)); err == nil {
		if prev, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil && uint32(prev) >= uidv {
			uidv = uint32(prev) + 1
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, uidValidityFile), []byte(strconv.FormatUint(uint64(uidv), 10)+"\n")); err != nil {
		return 0, folderMeta{}, err
	}
	s.lastUIDV = uidv
	id := s.lastID
	meta := folderMeta{UIDValidity: uidv, UIDNext: 1, Subscribed: true}
	b := s.db.NewBatch()
	defer b.Close()
	ids := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, s.lastID), s.lastUIDV)
	_ = b.Set([]byte(keyLastIDs), ids, nil)
	_ = b.Set(nameKey(addr, name), binary.BigEndian.AppendUint32(nil, id), nil)
	_ = b.Set(metaKey(id), meta.encode(), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, folderMeta{}, fmt.Errorf("mailstore: index: %w", err)
	}
	return id, meta, nil
}

// dropFolderIndex removes a folder's index entries and its bytes from the
// usage counters.
func (s *Store) dropFolderIndex(mb *mailbox, name string, id uint32, meta folderMeta) error {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(nameKey(mb.addr, name), nil)
	_ = b.Delete(metaKey(id), nil)
	_ = b.DeleteRange(msgPrefix(id), msgPrefix(id+1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("mailstore: index: %w", err)
	}
	s.addUsage(mb, -meta.Bytes)
	return nil
}

// folderNames lists the mailbox's folders (after reconciling with disk).
func (mb *mailbox) folderNames() ([]string, error) {
	if err := mb.ensureScanned(); err != nil {
		return nil, err
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	var names []string
	for n, f := range mb.folders {
		if _, err := os.Stat(filepath.Join(f.dir, "cur")); err == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// deleteFolder removes a folder, its messages and its index. Subfolders
// stay (IMAP DELETE semantics).
func (mb *mailbox) deleteFolder(name string) error {
	if name == FolderInbox {
		return fmt.Errorf("%w: INBOX cannot be deleted", ErrBadFolder)
	}
	f, err := mb.folder(name, false)
	if err != nil {
		return err
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errClosed
	}
	// Rename first so that a crash leaves no half-deleted folder visible.
	trash := filepath.Join(mb.root, fmt.Sprintf("..deleted-%d", f.id))
	if err := os.Rename(f.dir, trash); err != nil {
		return fmt.Errorf("mailstore: delete folder: %w", err)
	}
	if err := mb.s.dropFolderIndex(mb, name, f.id, f.meta); err != nil {
		return err
	}
	f.gone = true
	if f.tracker != nil {
		for i := len(f.msgs); i > 0; i-- {
			f.tracker.QueueExpunge(uint32(i))
		}
	}
	f.msgs = nil
	delete(mb.folders, name)
	if err := os.RemoveAll(trash); err != nil {
		mb.s.log.Warn("delete folder: remove files", "tenant", mb.tenant, "mailbox", mb.addr, "err", err)
	}
	return nil
}

// renameFolder renames a folder and its subfolders, keeping UIDVALIDITY
// and UIDs.
func (mb *mailbox) renameFolder(oldName, newName string) error {
	if oldName == FolderInbox || newName == FolderInbox {
		return fmt.Errorf("%w: INBOX cannot be renamed", ErrBadFolder)
	}
	names, err := mb.folderNames()
	if err != nil {
		return err
	}
	var moving []string
	for _, n := range names {
		if n == oldName || strings.HasPrefix(n, oldName+string(Delim)) {
			moving = append(moving, n)
		}
		if n == newName || strings.HasPrefix(n, newName+string(Delim)) {
			return fmt.Errorf("%w: %s", errFolderExists, newName)
		}
	}
	if len(moving) == 0 {
		return fmt.Errorf("%w: %s", errNoFolder, oldName)
	}
	for _, n := range moving {
		to := newName + n[len(oldName):]
		if _, err := CheckFolderName(to); err != nil {
			return err
		}
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	s := mb.s
	for _, n := range moving {
		to := newName + n[len(oldName):]
		f := mb.folders[n]
		if f == nil {
			continue
		}
		f.mu.Lock()
		if err := os.Rename(f.dir, folderDir(mb.root, to)); err != nil {
			f.mu.Unlock()
			return fmt.Errorf("mailstore: rename folder: %w", err)
		}
		b := s.db.NewBatch()
		_ = b.Delete(nameKey(mb.addr, n), nil)
		_ = b.Set(nameKey(mb.addr, to), binary.BigEndian.AppendUint32(nil, f.id), nil)
		err := b.Commit(pebble.Sync)
		b.Close()
		if err != nil {
			f.mu.Unlock()
			return fmt.Errorf("mailstore: index: %w", err)
		}
		f.name, f.dir = to, folderDir(mb.root, to)
		f.mu.Unlock()
		delete(mb.folders, n)
		mb.folders[to] = f
	}
	return syncDir(mb.root)
}

var errFolderExists = errors.New("mailstore: folder exists")

type pebbleLogger struct{ log *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.log.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.log.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

// writeFileAtomic writes a small file through a synced temporary file and
// a rename.
func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("mailstore: %w", err)
	}
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("mailstore: %w", err)
	}
	return syncDir(filepath.Dir(name))
}

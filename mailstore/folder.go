package mailstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// folder is one Maildir folder and its index. Once loaded, its message
// list stays in memory (sorted by UID) and is shared by every IMAP session
// that selects it; deliveries to a folder not loaded only touch the index.
type folder struct {
	mb *mailbox
	id uint32

	mu      sync.Mutex // guards everything below
	name    string
	dir     string
	meta    folderMeta
	loaded  bool
	msgs    []*message
	tracker *imapserver.MailboxTracker // nil until loaded
	closed  bool                       // store closed
	gone    bool                       // folder deleted
	views   int                        // sessions that have it selected
	cached  int                        // messages counted in Store.cachedMsgs
}

func newFolder(mb *mailbox, name string, id uint32, meta folderMeta) *folder {
	return &folder{mb: mb, id: id, name: name, dir: folderDir(mb.root, name), meta: meta}
}

var errFolderGone = errors.New("mailstore: folder was deleted")

func (f *folder) usable() error {
	switch {
	case f.closed:
		return errClosed
	case f.gone:
		return errFolderGone
	}
	return nil
}

// load loads the index into memory, then reconciles it with the files.
func (f *folder) load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loadLocked()
}

func (f *folder) loadLocked() error {
	if err := f.usable(); err != nil {
		return err
	}
	if !f.loaded {
		msgs, err := f.readIndex()
		if err != nil {
			return err
		}
		f.msgs = msgs
		f.loaded = true
		f.cached = len(msgs)
		f.mb.s.noteLoaded(f, len(msgs))
	}
	return f.reconcileLocked()
}

// unloadLocked drops the in-memory message list of a folder no session
// has selected; the next use loads it again from the index.
func (f *folder) unloadLocked() {
	f.loaded = false
	f.msgs = nil
	f.tracker = nil
	f.cached = 0
}

// noteLoaded records a loaded folder for the cache cap.
func (s *Store) noteLoaded(f *folder, n int) {
	s.cacheMu.Lock()
	s.cachedMsgs += n
	s.cachedFolders[f] = struct{}{}
	s.cacheMu.Unlock()
}

// trimCache unloads folders no session has selected while the cached
// messages exceed the cap. It never waits for a folder lock (a folder in
// use is skipped), so it may be called from anywhere holding no folder
// lock.
func (s *Store) trimCache() {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.cachedMsgs <= s.maxCached {
		return
	}
	for f := range s.cachedFolders {
		if s.cachedMsgs <= s.maxCached {
			return
		}
		if !f.mu.TryLock() {
			continue
		}
		if f.views == 0 && f.loaded {
			s.cachedMsgs -= f.cached
			f.unloadLocked()
			delete(s.cachedFolders, f)
		} else if !f.loaded {
			s.cachedMsgs -= f.cached
			delete(s.cachedFolders, f)
		}
		f.mu.Unlock()
	}
}

func (f *folder) readIndex() ([]*message, error) {
	db := f.mb.s.db
	lo, hi := msgPrefix(f.id), msgPrefix(f.id+1)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("mailstore: read index: %w", err)
	}
	defer it.Close()
	// One slab of messages and one arena of record bytes instead of two
	// allocations per message: loading 100,000 messages is on the path of
	// the first SELECT.
	msgs := make([]*message, 0, f.meta.Count)
	slab := make([]message, f.meta.Count)
	var arena []byte
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(lo)+4 {
			continue
		}
		uid := uint32(k[len(k)-4])<<24 | uint32(k[len(k)-3])<<16 | uint32(k[len(k)-2])<<8 | uint32(k[len(k)-1])
		v := it.Value()
		if cap(arena)-len(arena) < len(v) {
			arena = make([]byte, 0, max(1<<20, len(v)))
		}
		start := len(arena)
		arena = append(arena, v...)
		if len(slab) == 0 {
			slab = make([]message, 1024)
		}
		m := &slab[0]
		if err := decodeMessageInto(m, uid, arena[start:len(arena):len(arena)]); err != nil {
			continue // the file is found again by reconcile and gets a new UID
		}
		slab = slab[1:]
		msgs = append(msgs, m)
	}
	return msgs, it.Error()
}

type diskFile struct {
	name  string
	inCur bool
	flags uint8
}

// reconcileLocked compares the index with the files in new/ and cur/:
// files gone are expunged, flags changed by other tools are taken over,
// new files get the next UIDs. Existing messages keep their UIDs.
func (f *folder) reconcileLocked() error {
	newInfo, err1 := os.Stat(filepath.Join(f.dir, "new"))
	curInfo, err2 := os.Stat(filepath.Join(f.dir, "cur"))
	if err1 != nil || err2 != nil {
		return fmt.Errorf("mailstore: folder %s: %w", f.name, errors.Join(err1, err2))
	}
	newMtime, curMtime := newInfo.ModTime().UnixNano(), curInfo.ModTime().UnixNano()
	if f.meta.NewMtime != 0 && newMtime == f.meta.NewMtime && curMtime == f.meta.CurMtime {
		// Nothing touched the folder since the index last matched it.
		if f.tracker == nil {
			f.tracker = imapserver.NewMailboxTracker(uint32(len(f.msgs)))
		}
		return nil
	}
	newNames, err := readNames(filepath.Join(f.dir, "new"))
	if err != nil {
		return fmt.Errorf("mailstore: scan %s: %w", f.name, err)
	}
	curNames, err := readNames(filepath.Join(f.dir, "cur"))
	if err != nil {
		return fmt.Errorf("mailstore: scan %s: %w", f.name, err)
	}
	disk := make(map[string]diskFile, len(newNames)+len(curNames))
	for _, n := range newNames {
		if n == "" || n[0] == '.' {
			continue
		}
		base, _ := splitName(n)
		disk[base] = diskFile{name: n}
	}
	for _, n := range curNames {
		if n == "" || n[0] == '.' {
			continue
		}
		base, info := splitName(n)
		disk[base] = diskFile{name: n, inCur: true, flags: infoFlags(info)}
	}

	s := f.mb.s
	b := s.db.NewBatch()
	defer b.Close()
	var removed []int // indexes into f.msgs, ascending
	var removedBytes int64
	for i, m := range f.msgs {
		d, ok := disk[m.base]
		if !ok {
			removed = append(removed, i)
			removedBytes += m.size
			_ = b.Delete(msgKey(f.id, m.uid), nil)
			continue
		}
		delete(disk, m.base)
		if d.inCur != m.inCur || (d.inCur && d.flags != m.flags) {
			m.inCur = d.inCur
			if d.inCur {
				m.flags = d.flags
			}
			_ = b.Set(msgKey(f.id, m.uid), m.encode(), nil)
			if f.tracker != nil {
				f.tracker.QueueMessageFlags(uint32(i+1), imap.UID(m.uid), m.flagList(), nil)
			}
		}
	}
	// New files, in name order (which starts with the delivery time).
	added := make([]diskFile, 0, len(disk))
	for _, d := range disk {
		added = append(added, d)
	}
	sort.Slice(added, func(i, j int) bool { return added[i].name < added[j].name })
	// Reading the files is the cost of indexing a Maildir another tool
	// wrote: several workers overlap the reads.
	parsed := make([]*message, len(added))
	parseErrs := make([]error, len(added))
	var wg sync.WaitGroup
	const indexWorkers = 4
	for w := 0; w < indexWorkers && w < len(added); w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("panic indexing message files", "tenant", f.mb.tenant, "mailbox", f.mb.addr, "panic", r)
				}
			}()
			for i := w; i < len(added); i += indexWorkers {
				parsed[i], parseErrs[i] = f.indexFile(added[i])
			}
		}(w)
	}
	wg.Wait()
	var addedMsgs []*message
	var addedBytes int64
	for i, d := range added {
		m, err := parsed[i], parseErrs[i]
		if err == nil && m == nil {
			err = errors.New("not indexed")
		}
		if err != nil {
			s.log.Warn("skipping unreadable message file", "tenant", f.mb.tenant, "mailbox", f.mb.addr,
				"folder", f.name, "file", d.name, "err", err)
			continue
		}
		m.uid = f.meta.UIDNext
		f.meta.UIDNext++
		addedMsgs = append(addedMsgs, m)
		addedBytes += m.size
		_ = b.Set(msgKey(f.id, m.uid), m.encode(), nil)
	}
	changed := !b.Empty()
	f.meta.Count = f.meta.Count - uint32(len(removed)) + uint32(len(addedMsgs))
	f.meta.Bytes += addedBytes - removedBytes
	f.meta.NewMtime, f.meta.CurMtime = newMtime, curMtime
	_ = b.Set(metaKey(f.id), f.meta.encode(), nil)
	opts := pebble.NoSync
	if changed {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("mailstore: index: %w", err)
	}
	if changed {
		s.addUsage(f.mb, addedBytes-removedBytes)
	}
	if f.meta.Count != uint32(len(f.msgs)-len(removed)+len(addedMsgs)) {
		// The meta drifted from the records (a crash between writes of an
		// older version): trust the records.
		f.meta.Count = uint32(len(f.msgs) - len(removed) + len(addedMsgs))
	}
	if len(removed) > 0 {
		kept := f.msgs[:0]
		ri := 0
		for i, m := range f.msgs {
			if ri < len(removed) && removed[ri] == i {
				ri++
				continue
			}
			kept = append(kept, m)
		}
		if f.tracker != nil {
			for i := len(removed) - 1; i >= 0; i-- {
				f.tracker.QueueExpunge(uint32(removed[i] + 1))
			}
		}
		clear(f.msgs[len(kept):])
		f.msgs = kept
	}
	f.msgs = append(f.msgs, addedMsgs...)
	if f.tracker == nil {
		f.tracker = imapserver.NewMailboxTracker(uint32(len(f.msgs)))
	} else if len(addedMsgs) > 0 {
		f.tracker.QueueNumMessages(uint32(len(f.msgs)))
	}
	return nil
}

// indexFile reads a message file found on disk (another tool's, or one
// whose index entry was lost).
func (f *folder) indexFile(d diskFile) (*message, error) {
	sub := "new"
	if d.inCur {
		sub = "cur"
	}
	p := filepath.Join(f.dir, sub, d.name)
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > f.mb.s.maxSize {
		return nil, fmt.Errorf("file of %d bytes is over the size limit", st.Size())
	}
	body, err := readMessageFile(p, st.Size())
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > f.mb.s.maxSize {
		return nil, fmt.Errorf("file of %d bytes is over the size limit", len(body))
	}
	body = toCRLF(body)
	base, _ := splitName(d.name)
	return &message{
		base:  base,
		inCur: d.inCur,
		flags: d.flags,
		date:  st.ModTime().UnixNano(),
		size:  int64(len(body)),
		env:   encodeEnvelope(headerOf(body)),
	}, nil
}

// dirTimes returns the modification times of new/ and cur/.
func (f *folder) dirTimes() (newMtime, curMtime int64, ok bool) {
	n, err1 := os.Stat(filepath.Join(f.dir, "new"))
	c, err2 := os.Stat(filepath.Join(f.dir, "cur"))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return n.ModTime().UnixNano(), c.ModTime().UnixNano(), true
}

// upToDateLocked says whether the index matched the files at the last
// scan and nothing changed them since. Our own changes keep it so (they
// record the new times); another tool's change makes the next load rescan.
func (f *folder) upToDateLocked() bool {
	n, c, ok := f.dirTimes()
	return ok && f.meta.NewMtime != 0 && n == f.meta.NewMtime && c == f.meta.CurMtime
}

// recordTimes sets meta's directory times to the current ones (after our
// own change, if the index was up to date before it).
func (f *folder) recordTimes(meta *folderMeta) {
	if n, c, ok := f.dirTimes(); ok {
		meta.NewMtime, meta.CurMtime = n, c
	}
}

var errTooBig = errors.New("mailstore: message too big")

// appendMessage stores body (CRLF) with the given flags and INTERNALDATE
// (zero: now) and returns its UID, durable on return.
func (f *folder) appendMessage(body []byte, flags uint8, keywords []string, date time.Time, enforceQuota bool) (uint32, error) {
	s := f.mb.s
	if int64(len(body)) > s.maxSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", errTooBig, len(body), s.maxSize)
	}
	now := s.clock.Now()
	base := s.names.next(now, int64(len(body)))
	tmp := filepath.Join(f.dir, "tmp", base)
	if err := writeSynced(tmp, body); err != nil {
		return 0, err
	}
	if date.IsZero() {
		date = now
	}
	m := &message{base: base, flags: flags, keywords: keywords, date: date.UnixNano(),
		size: int64(len(body)), env: encodeEnvelope(headerOf(body))}
	uid, err := f.commitFile(tmp, m, enforceQuota)
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return uid, nil
}

// writeSynced creates name with data and fsyncs it.
func writeSynced(name string, data []byte) error {
	fh, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("mailstore: write: %w", err)
	}
	_, err = fh.Write(data)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("mailstore: write: %w", err)
	}
	return nil
}

// commitFile moves a durable file from tmp/ into new/ (or cur/ if it has
// flags), fsyncs the directory and commits its index record; m gets the
// next UID.
func (f *folder) commitFile(tmp string, m *message, enforceQuota bool) (uint32, error) {
	s := f.mb.s
	undo, err := s.reserve(f.mb, m.size, enforceQuota)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		undo()
		return 0, err
	}
	m.inCur = m.flags != 0
	fresh := f.upToDateLocked()
	dst := filepath.Join(f.dir, m.relPath())
	if err := os.Rename(tmp, dst); err != nil {
		undo()
		return 0, fmt.Errorf("mailstore: deliver: %w", err)
	}
	meta := f.meta
	m.uid = meta.UIDNext
	meta.UIDNext++
	meta.Count++
	meta.Bytes += m.size
	if fresh {
		f.recordTimes(&meta)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(msgKey(f.id, m.uid), m.encode(), nil)
	_ = b.Set(metaKey(f.id), meta.encode(), nil)
	// The directory fsync and the index commit are independent: run them
	// together, one fsync latency instead of two. Both must succeed.
	dirDone := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				dirDone <- fmt.Errorf("mailstore: panic syncing directory: %v", r)
			}
		}()
		dirDone <- syncDir(filepath.Dir(dst))
	}()
	commitErr := b.Commit(pebble.Sync)
	dirErr := <-dirDone
	if dirErr != nil || commitErr != nil {
		if commitErr == nil {
			// Take the record back; a crash before this leaves a record
			// whose file may be missing, which the next scan expunges.
			undoB := s.db.NewBatch()
			_ = undoB.Delete(msgKey(f.id, m.uid), nil)
			_ = undoB.Set(metaKey(f.id), f.meta.encode(), nil)
			_ = undoB.Commit(pebble.Sync)
			undoB.Close()
		}
		os.Rename(dst, tmp)
		undo()
		return 0, fmt.Errorf("mailstore: deliver: %w", errors.Join(dirErr, commitErr))
	}
	f.meta = meta
	if f.loaded {
		f.msgs = append(f.msgs, m)
		f.tracker.QueueNumMessages(uint32(len(f.msgs)))
	}
	return m.uid, nil
}

// copyInto copies messages of src into f (COPY, MOVE), hard-linking the
// files where it can. It returns the source and destination UIDs.
func (f *folder) copyInto(src *folder, msgs []*message, enforceQuota bool) (srcUIDs, dstUIDs []uint32, err error) {
	s := f.mb.s
	for _, m := range msgs {
		src.mu.Lock()
		from := filepath.Join(src.dir, m.relPath())
		cp := *m
		cp.keywords = append([]string(nil), m.keywords...)
		src.mu.Unlock()
		cp.base = s.names.next(s.clock.Now(), cp.size)
		tmp := filepath.Join(f.dir, "tmp", cp.base)
		if err := os.Link(from, tmp); err != nil {
			data, rerr := os.ReadFile(from)
			if rerr != nil {
				return srcUIDs, dstUIDs, fmt.Errorf("mailstore: copy: %w", rerr)
			}
			if err := writeSynced(tmp, data); err != nil {
				return srcUIDs, dstUIDs, err
			}
		}
		uid, err := f.commitFile(tmp, &cp, enforceQuota)
		if err != nil {
			os.Remove(tmp)
			return srcUIDs, dstUIDs, err
		}
		srcUIDs = append(srcUIDs, m.uid)
		dstUIDs = append(dstUIDs, uid)
	}
	return srcUIDs, dstUIDs, nil
}

// readBody returns a message's content in CRLF form.
func (f *folder) readBody(m *message) ([]byte, error) {
	for try := 0; try < 3; try++ {
		f.mu.Lock()
		p := filepath.Join(f.dir, m.relPath())
		f.mu.Unlock()
		b, err := readMessageFile(p, m.size)
		if err == nil {
			return toCRLF(b), nil
		}
		if !os.IsNotExist(err) {
			return nil, fmt.Errorf("mailstore: read message: %w", err)
		}
		// Renamed by a flag change meanwhile, or expunged: look again.
		f.mu.Lock()
		i := f.indexOf(m.uid)
		live := i >= 0 && f.msgs[i] == m
		f.mu.Unlock()
		if !live {
			return nil, errExpunged
		}
	}
	return nil, fmt.Errorf("mailstore: message %d vanished", m.uid)
}

// errExpunged: the message was expunged while a command used it.
var errExpunged = errors.New("mailstore: message expunged meanwhile")

// flagList is the IMAP form of the message's flags.
func (m *message) flagList() []imap.Flag {
	l := make([]imap.Flag, 0, 2+len(m.keywords))
	for _, fl := range flagLetters {
		if m.flags&fl.bit != 0 {
			l = append(l, imap.Flag(fl.imap))
		}
	}
	for _, k := range m.keywords {
		l = append(l, imap.Flag(k))
	}
	return l
}

// parseFlags splits IMAP flags into Maildir flags and keywords (\Recent
// and unknown system flags are dropped).
func parseFlags(flags []imap.Flag) (uint8, []string) {
	var bits uint8
	var kw []string
outer:
	for _, fl := range flags {
		for _, l := range flagLetters {
			if equalFold(string(fl), l.imap) {
				bits |= l.bit
				continue outer
			}
		}
		if len(fl) == 0 || fl[0] == '\\' || len(fl) > 64 {
			continue
		}
		for _, k := range kw {
			if equalFold(k, string(fl)) {
				continue outer
			}
		}
		if len(kw) < 32 {
			kw = append(kw, string(fl))
		}
	}
	return bits, kw
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// storeFlags applies a STORE to the messages at the given indexes and
// returns the messages changed. Flag letters are mirrored in the file name
// (a rename into cur/); the index write is not fsynced: the file name is
// the durable record of the Maildir flags.
func (f *folder) storeFlags(idx []int, op imap.StoreFlagsOp, flags []imap.Flag, source *imapserver.SessionTracker) error {
	bits, kw := parseFlags(flags)
	s := f.mb.s
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	fresh := f.upToDateLocked()
	b := s.db.NewBatch()
	defer b.Close()
	var firstErr error
	for _, i := range idx {
		if i < 0 || i >= len(f.msgs) {
			continue
		}
		m := f.msgs[i]
		nb, nkw := m.flags, m.keywords
		switch op {
		case imap.StoreFlagsSet:
			nb, nkw = bits, kw
		case imap.StoreFlagsAdd:
			nb |= bits
			nkw = mergeKeywords(nkw, kw, true)
		case imap.StoreFlagsDel:
			nb &^= bits
			nkw = mergeKeywords(nkw, kw, false)
		}
		if nb == m.flags && sameKeywords(nkw, m.keywords) {
			continue
		}
		if nb != m.flags || !m.inCur {
			from := filepath.Join(f.dir, m.relPath())
			to := filepath.Join(f.dir, "cur", m.base+infoString(nb))
			if err := os.Rename(from, to); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("mailstore: store flags: %w", err)
				}
				continue
			}
			m.inCur = true
		}
		m.flags, m.keywords = nb, nkw
		_ = b.Set(msgKey(f.id, m.uid), m.encode(), nil)
		f.tracker.QueueMessageFlags(uint32(i+1), imap.UID(m.uid), m.flagList(), source)
	}
	if !b.Empty() {
		meta := f.meta
		if fresh {
			f.recordTimes(&meta)
		} else {
			meta.NewMtime, meta.CurMtime = 0, 0
		}
		_ = b.Set(metaKey(f.id), meta.encode(), nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("mailstore: index: %w", err)
		}
		f.meta = meta
	}
	return firstErr
}

func mergeKeywords(cur, change []string, add bool) []string {
	out := make([]string, 0, len(cur)+len(change))
	for _, k := range cur {
		drop := false
		for _, c := range change {
			if equalFold(k, c) {
				drop = true
			}
		}
		if !drop {
			out = append(out, k)
		}
	}
	if add {
		out = append(out, change...)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func sameKeywords(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// expunge removes the messages flagged \Deleted (among uids if not nil)
// and returns their sequence numbers as they were, highest first.
func (f *folder) expunge(uids *imap.UIDSet, only map[uint32]bool) ([]uint32, error) {
	s := f.mb.s
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return nil, err
	}
	fresh := f.upToDateLocked()
	b := s.db.NewBatch()
	defer b.Close()
	var seqs []uint32
	var freed int64
	kept := make([]*message, 0, len(f.msgs))
	for i, m := range f.msgs {
		del := m.flags&flagTrashed != 0
		if only != nil {
			del = only[m.uid]
		}
		if del && uids != nil && !uids.Contains(imap.UID(m.uid)) {
			del = false
		}
		if !del {
			kept = append(kept, m)
			continue
		}
		if err := os.Remove(filepath.Join(f.dir, m.relPath())); err != nil && !os.IsNotExist(err) {
			kept = append(kept, m)
			s.log.Warn("expunge: remove file", "tenant", f.mb.tenant, "mailbox", f.mb.addr, "err", err)
			continue
		}
		_ = b.Delete(msgKey(f.id, m.uid), nil)
		seqs = append(seqs, uint32(i+1))
		freed += m.size
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	f.meta.Count -= uint32(len(seqs))
	f.meta.Bytes -= freed
	if fresh {
		f.recordTimes(&f.meta)
	} else {
		f.meta.NewMtime, f.meta.CurMtime = 0, 0
	}
	_ = b.Set(metaKey(f.id), f.meta.encode(), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("mailstore: index: %w", err)
	}
	s.addUsage(f.mb, -freed)
	f.msgs = kept
	for i, j := 0, len(seqs)-1; i < j; i, j = i+1, j-1 {
		seqs[i], seqs[j] = seqs[j], seqs[i]
	}
	for _, sq := range seqs {
		f.tracker.QueueExpunge(sq)
	}
	return seqs, nil
}

// status is a folder's STATUS counters.
type status struct {
	messages, unseen, deleted uint32
	size                      int64
	uidNext, uidValidity      uint32
}

func (f *folder) status() (status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.loadLocked(); err != nil {
		return status{}, err
	}
	st := status{messages: uint32(len(f.msgs)), size: f.meta.Bytes, uidNext: f.meta.UIDNext, uidValidity: f.meta.UIDValidity}
	for _, m := range f.msgs {
		if m.flags&flagSeen == 0 {
			st.unseen++
		}
		if m.flags&flagTrashed != 0 {
			st.deleted++
		}
	}
	return st, nil
}

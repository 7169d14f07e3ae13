package mailstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

var errReadOnly = errors.New("mailstore: folder selected read-only")

// view is a session's selected folder: its own sequence numbering (the
// tracker) over the shared folder.
type view struct {
	f         *folder
	t         *imapserver.SessionTracker
	readOnly  bool
	searchRes imap.UIDSet
}

var permanentFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted,
	imap.FlagDraft, "$Forwarded", imap.FlagWildcard}

func openView(f *folder, readOnly bool) (*view, *imap.SelectData, error) {
	defer f.mb.s.trimCache()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.loadLocked(); err != nil {
		return nil, nil, err
	}
	f.views++
	v := &view{f: f, t: f.tracker.NewSession(), readOnly: readOnly}
	data := &imap.SelectData{
		Flags:          permanentFlags[:len(permanentFlags)-1],
		PermanentFlags: permanentFlags,
		NumMessages:    uint32(len(f.msgs)),
		UIDNext:        imap.UID(f.meta.UIDNext),
		UIDValidity:    f.meta.UIDValidity,
	}
	for i, m := range f.msgs {
		if m.flags&flagSeen == 0 {
			data.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	return v, data, nil
}

func (v *view) close() {
	v.f.mu.Lock()
	v.f.views--
	v.f.mu.Unlock()
	v.t.Close()
}

// poll picks up changes other tools made on disk, then writes the pending
// updates.
func (v *view) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	v.f.mu.Lock()
	err := v.f.loadLocked()
	v.f.mu.Unlock()
	if err != nil && !errors.Is(err, errFolderGone) {
		return err
	}
	return v.t.Poll(w, allowExpunge)
}

// idleRescan is how often IDLE looks for changes made by other tools;
// deliveries through the store are announced at once.
const idleRescan = 30 * time.Second

func (v *view) idle(w *imapserver.UpdateWriter, stop <-chan struct{}, log *slog.Logger) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in idle rescan", "panic", r)
			}
		}()
		tick := time.NewTicker(idleRescan)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				v.f.mu.Lock()
				if err := v.f.loadLocked(); err != nil && !errors.Is(err, errFolderGone) {
					log.Warn("idle rescan", "err", err)
				}
				v.f.mu.Unlock()
			}
		}
	}()
	return v.t.Idle(w, stop)
}

// resolveLocked turns a sequence or UID set into indexes of f.msgs, in
// ascending order. f.mu must be held.
func (v *view) resolveLocked(numSet imap.NumSet) []int {
	msgs := v.f.msgs
	if imap.IsSearchRes(numSet) {
		numSet = v.searchRes
	}
	var out []int
	switch set := numSet.(type) {
	case imap.SeqSet:
		max := uint32(len(msgs))
		for i := range set {
			staticRange(&set[i].Start, &set[i].Stop, max)
		}
		for i := range msgs {
			cs := v.t.EncodeSeqNum(uint32(i + 1))
			if cs != 0 && set.Contains(cs) {
				out = append(out, i)
			}
		}
	case imap.UIDSet:
		var max uint32
		if len(msgs) > 0 {
			max = msgs[len(msgs)-1].uid
		}
		for i := range set {
			staticRange((*uint32)(&set[i].Start), (*uint32)(&set[i].Stop), max)
		}
		for _, r := range set {
			lo := sort.Search(len(msgs), func(i int) bool { return msgs[i].uid >= uint32(r.Start) })
			for i := lo; i < len(msgs) && msgs[i].uid <= uint32(r.Stop); i++ {
				out = append(out, i)
			}
		}
		if len(set) > 1 {
			sort.Ints(out)
			out = dedupe(out)
		}
	}
	return out
}

func dedupe(s []int) []int {
	if len(s) < 2 {
		return s
	}
	j := 1
	for i := 1; i < len(s); i++ {
		if s[i] != s[j-1] {
			s[j] = s[i]
			j++
		}
	}
	return s[:j]
}

func staticRange(start, stop *uint32, max uint32) {
	dyn := false
	if *start == 0 {
		*start = max
		dyn = true
	}
	if *stop == 0 {
		*stop = max
		dyn = true
	}
	if dyn && *start > *stop {
		*start, *stop = *stop, *start
	}
}

// snap is a message as a command sees it, taken under the folder lock.
type snap struct {
	seq   uint32 // the session's sequence number
	m     *message
	flags []imap.Flag
	date  int64
}

func (v *view) snapshot(numSet imap.NumSet) ([]snap, error) {
	f := v.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return nil, err
	}
	idx := v.resolveLocked(numSet)
	out := make([]snap, 0, len(idx))
	for _, i := range idx {
		seq := v.t.EncodeSeqNum(uint32(i + 1))
		if seq == 0 {
			continue // not announced to this session yet
		}
		m := f.msgs[i]
		out = append(out, snap{seq: seq, m: m, flags: m.flagList(), date: m.date})
	}
	return out, nil
}

func (v *view) fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	markSeen := false
	for _, bs := range options.BodySection {
		if !bs.Peek {
			markSeen = !v.readOnly
		}
	}
	snaps, err := v.snapshot(numSet)
	if err != nil {
		return err
	}
	if markSeen {
		var idx []int
		v.f.mu.Lock()
		for i := range snaps {
			if snaps[i].m.flags&flagSeen == 0 {
				if j := v.f.indexOf(snaps[i].m.uid); j >= 0 {
					idx = append(idx, j)
				}
			}
		}
		v.f.mu.Unlock()
		if len(idx) > 0 {
			if err := v.f.storeFlags(idx, imap.StoreFlagsAdd, []imap.Flag{imap.FlagSeen}, v.t); err != nil {
				return err
			}
			for i := range snaps {
				if !hasFlag(snaps[i].flags, imap.FlagSeen) {
					snaps[i].flags = append(snaps[i].flags, imap.FlagSeen)
				}
			}
		}
	}
	vanished := false
	needBody := options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	for _, sn := range snaps {
		rw := w.CreateMessage(sn.seq)
		rw.WriteUID(imap.UID(sn.m.uid))
		if options.Flags || markSeen {
			rw.WriteFlags(sn.flags)
		}
		if options.InternalDate {
			rw.WriteInternalDate(time.Unix(0, sn.date))
		}
		if options.RFC822Size {
			rw.WriteRFC822Size(sn.m.size)
		}
		if options.Envelope {
			env := decodeEnvelope(sn.m.env)
			if env == nil {
				env = &imap.Envelope{}
			}
			rw.WriteEnvelope(env)
		}
		if needBody {
			body, err := v.f.readBody(sn.m)
			if errors.Is(err, errExpunged) {
				vanished = true
				if err := rw.Close(); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				rw.Close()
				return err
			}
			if options.BodyStructure != nil {
				rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(body)))
			}
			for _, bs := range options.BodySection {
				buf := imapserver.ExtractBodySection(bytes.NewReader(body), bs)
				if err := writeLiteral(rw.WriteBodySection(bs, int64(len(buf))), buf); err != nil {
					return err
				}
			}
			for _, bs := range options.BinarySection {
				buf := imapserver.ExtractBinarySection(bytes.NewReader(body), bs)
				if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(buf))), buf); err != nil {
					return err
				}
			}
			for _, bss := range options.BinarySectionSize {
				rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(body), bss))
			}
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if vanished {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "EXPUNGEISSUED", Text: "Some messages were expunged meanwhile"}
	}
	return nil
}

func writeLiteral(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

func hasFlag(l []imap.Flag, f imap.Flag) bool {
	for _, x := range l {
		if equalFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// indexOf finds a UID's index in f.msgs (f.mu held), -1 if gone.
func (f *folder) indexOf(uid uint32) int {
	i := sort.Search(len(f.msgs), func(i int) bool { return f.msgs[i].uid >= uid })
	if i < len(f.msgs) && f.msgs[i].uid == uid {
		return i
	}
	return -1
}

func (v *view) store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags) error {
	v.f.mu.Lock()
	idx := v.resolveLocked(numSet)
	v.f.mu.Unlock()
	if err := v.f.storeFlags(idx, flags.Op, flags.Flags, v.t); err != nil {
		return err
	}
	if flags.Silent {
		return nil
	}
	snaps, err := v.snapshot(numSet)
	if err != nil {
		return err
	}
	for _, sn := range snaps {
		rw := w.CreateMessage(sn.seq)
		rw.WriteUID(imap.UID(sn.m.uid))
		rw.WriteFlags(sn.flags)
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// setSubscribed records the folder's subscription.
func (f *folder) setSubscribed(on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	meta := f.meta
	meta.Subscribed = on
	if err := f.mb.s.db.Set(metaKey(f.id), meta.encode(), pebble.Sync); err != nil {
		return fmt.Errorf("mailstore: index: %w", err)
	}
	f.meta = meta
	return nil
}

// search runs SEARCH. Flags, dates, sizes and envelope fields come from the
// index; HEADER, BODY and TEXT read the files (header only when that is
// enough).
func (v *view) search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	f := v.f
	f.mu.Lock()
	v.staticCriteria(criteria)
	type cand struct {
		seq  uint32
		m    *message
		bits uint8
		kw   []string
	}
	cands := make([]cand, 0, len(f.msgs))
	for i, m := range f.msgs {
		cands = append(cands, cand{seq: v.t.EncodeSeqNum(uint32(i + 1)), m: m, bits: m.flags, kw: m.keywords})
	}
	f.mu.Unlock()

	// Criteria that read files run on several workers: the cost is the
	// file reads, which overlap.
	matched := make([]bool, len(cands))
	workers := 1
	if criteriaReadFiles(criteria) && len(cands) > 256 {
		workers = searchWorkers
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	chunk := (len(cands) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(cands))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs[w] = fmt.Errorf("mailstore: panic in search: %v", r)
				}
			}()
			for i := lo; i < hi; i++ {
				c := cands[i]
				mc := &matchCtx{v: v, seq: c.seq, m: c.m, bits: c.bits, kw: c.kw}
				ok, err := mc.match(criteria)
				if errors.Is(err, errExpunged) {
					ok, err = false, nil // gone: not a match
				}
				if err != nil {
					errs[w] = err
					return
				}
				matched[i] = ok
			}
		}(w, lo, hi)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var data imap.SearchData
	var seqSet imap.SeqSet
	var uidSet imap.UIDSet
	for i, c := range cands {
		if !matched[i] {
			continue
		}
		uidSet.AddNum(imap.UID(c.m.uid))
		var num uint32
		switch kind {
		case imapserver.NumKindSeq:
			if c.seq == 0 {
				continue
			}
			seqSet.AddNum(c.seq)
			num = c.seq
		case imapserver.NumKindUID:
			num = c.m.uid
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqSet
	} else {
		data.All = uidSet
	}
	if options.ReturnSave {
		v.searchRes = uidSet
	}
	return &data, nil
}

// searchWorkers is how many goroutines read files for one SEARCH.
const searchWorkers = 4

// criteriaReadFiles says whether evaluating c reads message files.
func criteriaReadFiles(c *imap.SearchCriteria) bool {
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 {
		return true
	}
	for i := range c.Not {
		if criteriaReadFiles(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if criteriaReadFiles(&c.Or[i][0]) || criteriaReadFiles(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

func (v *view) staticCriteria(c *imap.SearchCriteria) {
	n := uint32(len(v.f.msgs))
	var maxUID uint32
	if n > 0 {
		maxUID = v.f.msgs[n-1].uid
	}
	var seqs []imap.SeqSet
	for _, set := range c.SeqNum {
		if imap.IsSearchRes(set) {
			c.UID = append(c.UID, v.searchRes)
			continue
		}
		for i := range set {
			staticRange(&set[i].Start, &set[i].Stop, n)
		}
		seqs = append(seqs, set)
	}
	c.SeqNum = seqs
	for _, set := range c.UID {
		for i := range set {
			staticRange((*uint32)(&set[i].Start), (*uint32)(&set[i].Stop), maxUID)
		}
	}
	for i := range c.Not {
		v.staticCriteria(&c.Not[i])
	}
	for i := range c.Or {
		v.staticCriteria(&c.Or[i][0])
		v.staticCriteria(&c.Or[i][1])
	}
}

// matchCtx evaluates criteria on one message, reading its file at most
// once and only if a criterion needs it.
type matchCtx struct {
	v      *view
	seq    uint32
	m      *message
	bits   uint8
	kw     []string
	header *mail.Header
	body   []byte
}

func (mc *matchCtx) hasFlag(fl imap.Flag) bool {
	for _, l := range flagLetters {
		if equalFold(string(fl), l.imap) {
			return mc.bits&l.bit != 0
		}
	}
	if equalFold(string(fl), `\Recent`) {
		return false
	}
	for _, k := range mc.kw {
		if equalFold(k, string(fl)) {
			return true
		}
	}
	return false
}

func (mc *matchCtx) rawHeader() ([]byte, error) {
	if mc.body == nil {
		b, err := mc.v.f.readBody(mc.m)
		if err != nil {
			return nil, err
		}
		mc.body = b
	}
	return headerOf(mc.body), nil
}

// hasField says whether a raw header block has a field named key
// (case-insensitive).
func hasField(raw []byte, key string) bool {
	k := []byte(key)
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		if len(line) > len(k) && line[len(k)] == ':' && bytes.EqualFold(line[:len(k)], k) {
			return true
		}
		if len(line) > len(k) && (line[len(k)] == ' ' || line[len(k)] == '\t') && bytes.EqualFold(line[:len(k)], k) {
			rest := bytes.TrimLeft(line[len(k):], " \t")
			if len(rest) > 0 && rest[0] == ':' {
				return true
			}
		}
	}
	return false
}

func (mc *matchCtx) loadHeader() (*mail.Header, error) {
	if mc.header != nil {
		return mc.header, nil
	}
	raw, err := mc.rawHeader()
	if err != nil {
		return nil, err
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	mc.header = &mail.Header{Header: gomessage.Header{Header: h}}
	return mc.header, nil
}

func (mc *matchCtx) loadBody() ([]byte, error) {
	if mc.body == nil {
		b, err := mc.v.f.readBody(mc.m)
		if err != nil {
			return nil, err
		}
		mc.body = b
	}
	return mc.body, nil
}

func (mc *matchCtx) match(c *imap.SearchCriteria) (bool, error) {
	for _, set := range c.SeqNum {
		if mc.seq == 0 || !set.Contains(mc.seq) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		if !set.Contains(imap.UID(mc.m.uid)) {
			return false, nil
		}
	}
	if !matchDate(time.Unix(0, mc.m.date).UTC(), c.Since, c.Before) {
		return false, nil
	}
	for _, fl := range c.Flag {
		if !mc.hasFlag(fl) {
			return false, nil
		}
	}
	for _, fl := range c.NotFlag {
		if mc.hasFlag(fl) {
			return false, nil
		}
	}
	if c.Larger != 0 && mc.m.size <= c.Larger {
		return false, nil
	}
	if c.Smaller != 0 && mc.m.size >= c.Smaller {
		return false, nil
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		env := decodeEnvelope(mc.m.env)
		if env == nil || env.Date.IsZero() || !matchDate(env.Date, c.SentSince, c.SentBefore) {
			return false, nil
		}
	}
	for _, hc := range c.Header {
		if mc.header == nil {
			// Most messages lack the field asked for: say so without
			// parsing the header.
			raw, err := mc.rawHeader()
			if err != nil {
				return false, err
			}
			if !hasField(raw, hc.Key) {
				return false, nil
			}
		}
		h, err := mc.loadHeader()
		if err != nil {
			return false, err
		}
		if !matchHeaderFields(h.FieldsByKey(hc.Key), hc.Value) {
			return false, nil
		}
	}
	for _, s := range c.Body {
		b, err := mc.loadBody()
		if err != nil {
			return false, err
		}
		if !matchEntity(b, s, false) {
			return false, nil
		}
	}
	for _, s := range c.Text {
		b, err := mc.loadBody()
		if err != nil {
			return false, err
		}
		if !matchEntity(b, s, true) {
			return false, nil
		}
	}
	for i := range c.Not {
		ok, err := mc.match(&c.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		a, err := mc.match(&c.Or[i][0])
		if err != nil {
			return false, err
		}
		if a {
			continue
		}
		b, err := mc.match(&c.Or[i][1])
		if err != nil || !b {
			return false, err
		}
	}
	return true, nil
}

// matchDate compares dates only, ignoring time and zone (RFC 3501).
func matchDate(t, since, before time.Time) bool {
	t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && t.Before(since) {
		return false
	}
	if !before.IsZero() && !t.Before(before) {
		return false
	}
	return true
}

func matchHeaderFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

// matchEntity looks for pattern (case-insensitively) in the decoded text
// parts of a message, and in its headers if includeHeader.
func matchEntity(raw []byte, pattern string, includeHeader bool) bool {
	if pattern == "" {
		return true
	}
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		return bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(pattern)))
	}
	_ = err // unknown charsets still give a readable entity
	return matchPart(e, strings.ToLower(pattern), includeHeader, 0)
}

func matchPart(e *gomessage.Entity, pattern string, includeHeader bool, depth int) bool {
	if depth > 20 {
		return false
	}
	if includeHeader {
		fields := e.Header.Fields()
		if matchHeaderFields(fields, pattern) {
			return true
		}
	}
	if mr := e.MultipartReader(); mr != nil {
		for i := 0; i < 1000; i++ {
			p, err := mr.NextPart()
			if err != nil {
				return false
			}
			if matchPart(p, pattern, includeHeader, depth+1) {
				return true
			}
		}
		return false
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(e.Body, 64<<20))
	if err != nil && len(b) == 0 {
		return false
	}
	return bytes.Contains(bytes.ToLower(b), []byte(pattern))
}

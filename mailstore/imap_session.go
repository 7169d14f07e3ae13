package mailstore

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"fairway/tenant"
)

// session is one IMAP connection. Every folder it touches is looked up in
// the logged-in user's own mailbox: there is no way to name another's.
type session struct {
	srv     *IMAPServer
	store   *Store
	log     *slog.Logger
	ip      netip.Addr // the client's, for the login throttle
	user    string     // full address, after login
	tenant  string
	mb      *mailbox
	release func() // the connection caps, after login
	sel     *view
	closed  bool
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)
var _ imapserver.SessionAppendLimit = (*session)(nil)

// specialUse maps the default folders to their RFC 6154 attributes; they
// are created at first login.
var specialUse = map[string]imap.MailboxAttr{
	"Sent":    imap.MailboxAttrSent,
	"Drafts":  imap.MailboxAttrDrafts,
	"Trash":   imap.MailboxAttrTrash,
	"Junk":    imap.MailboxAttrJunk,
	"Archive": imap.MailboxAttrArchive,
}

var defaultFolders = []string{FolderInbox, "Drafts", "Sent", "Trash", "Junk", FolderQuarantine}

func (s *session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	if s.release != nil {
		s.release()
		s.srv.metrics.connections.WithLabelValues(s.tenant).Dec()
		s.release = nil
	}
	s.srv.wg.Done()
	return nil
}

// Login authenticates by full address (the directory refuses a bare local
// part) and takes a connection under the tenant's and the user's caps.
func (s *session) Login(username, password string) error {
	limiter := s.srv.o.AuthLimiter
	if s.ip.IsValid() && !limiter.Allow(s.ip, s.store.clock.Now()) {
		s.srv.metrics.logins.WithLabelValues("throttled").Inc()
		s.log.Info("imap login refused: too many failures from this address")
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: "Too many failed logins from your address, try again later"}
	}
	id, err := s.store.dir.Authenticate(username, password)
	if err != nil {
		if errors.Is(err, tenant.ErrAuth) && s.ip.IsValid() {
			limiter.Failed(s.ip, s.store.clock.Now())
		}
		s.srv.metrics.logins.WithLabelValues("failed").Inc()
		s.log.Info("imap login failed") // (neither the name tried nor the password)
		return imapserver.ErrAuthFailed
	}
	p, _ := s.store.dir.TenantPolicy(id.Tenant)
	tenantCap, userCap := p.IMAPConnections, p.IMAPUserConnections
	if tenantCap <= 0 {
		tenantCap = s.srv.o.DefaultTenantConnections
	}
	if userCap <= 0 {
		userCap = s.srv.o.DefaultUserConnections
	}
	release, scope := s.srv.limits.acquire(id.Tenant, id.Address, tenantCap, userCap)
	if release == nil {
		s.srv.metrics.logins.WithLabelValues("limited").Inc()
		s.srv.metrics.limited.WithLabelValues(id.Tenant, scope).Inc()
		s.log.Warn("imap login refused: connection cap", "tenant", id.Tenant, "user", id.Address, "scope", scope)
		text := "Too many IMAP connections for this account"
		if scope == "tenant" {
			text = "Too many IMAP connections for this organization"
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: text}
	}
	mb, err := s.store.mailbox(id.Address)
	if err == nil {
		err = mb.ensureScanned()
	}
	for _, n := range defaultFolders {
		if err == nil {
			_, err = mb.folder(n, true)
		}
	}
	if err != nil {
		release()
		s.log.Error("imap login: open mailbox", "tenant", id.Tenant, "user", id.Address, "err", err)
		return imapErr(err)
	}
	s.user, s.tenant, s.mb, s.release = id.Address, id.Tenant, mb, release
	s.log = s.log.With("tenant", id.Tenant, "user", id.Address)
	s.srv.metrics.logins.WithLabelValues("ok").Inc()
	s.srv.metrics.connections.WithLabelValues(id.Tenant).Inc()
	s.log.Info("imap login")
	return nil
}

// imapErr maps store errors to IMAP responses, in one place.
func imapErr(err error) error {
	var ie *imap.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return err
	case errors.Is(err, ErrOverQuota):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Quota exceeded"}
	case errors.Is(err, errTooBig):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too big"}
	case errors.Is(err, ErrBadFolder):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Invalid mailbox name"}
	case errors.Is(err, errNoFolder), errors.Is(err, errFolderGone):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	case errors.Is(err, errFolderExists):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox already exists"}
	case errors.Is(err, errReadOnly):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only (EXAMINE)"}
	case errors.Is(err, errClosed):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Server shutting down"}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error"}
}

// openFolder finds a folder of the user's own mailbox by IMAP name.
func (s *session) openFolder(name string, create bool) (*folder, error) {
	n, err := CheckFolderName(name)
	if err != nil {
		return nil, err
	}
	return s.mb.folder(n, create)
}

// logErr logs unexpected errors before they become NO [SERVERBUG].
func (s *session) logErr(op string, err error) error {
	mapped := imapErr(err)
	var ie *imap.Error
	if errors.As(mapped, &ie) && ie.Code == imap.ResponseCodeServerBug {
		s.log.Error("imap "+op, "err", err)
	}
	return mapped
}

func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	f, err := s.openFolder(name, false)
	if err != nil {
		return nil, s.logErr("select", err)
	}
	v, data, err := openView(f, options.ReadOnly)
	if err != nil {
		return nil, s.logErr("select", err)
	}
	s.sel = v
	return data, nil
}

func (s *session) Unselect() error {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	name = strings.TrimSuffix(name, string(Delim))
	n, err := CheckFolderName(name)
	if err != nil {
		return s.logErr("create", err)
	}
	if n == FolderInbox {
		return imapErr(errFolderExists)
	}
	if _, err := s.mb.folder(n, false); err == nil {
		return imapErr(errFolderExists)
	}
	// Parents first, so the hierarchy is always browsable.
	parts := strings.Split(n, string(Delim))
	for i := 1; i <= len(parts); i++ {
		if _, err := s.mb.folder(strings.Join(parts[:i], string(Delim)), true); err != nil {
			return s.logErr("create", err)
		}
	}
	return nil
}

func (s *session) Delete(name string) error {
	n, err := CheckFolderName(name)
	if err != nil {
		return s.logErr("delete", err)
	}
	return s.logErr("delete", s.mb.deleteFolder(n))
}

func (s *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	o, err := CheckFolderName(oldName)
	if err != nil {
		return s.logErr("rename", err)
	}
	n, err := CheckFolderName(strings.TrimSuffix(newName, string(Delim)))
	if err != nil {
		return s.logErr("rename", err)
	}
	return s.logErr("rename", s.mb.renameFolder(o, n))
}

func (s *session) Subscribe(name string) error   { return s.subscribe(name, true) }
func (s *session) Unsubscribe(name string) error { return s.subscribe(name, false) }

func (s *session) subscribe(name string, on bool) error {
	f, err := s.openFolder(name, false)
	if err != nil {
		return s.logErr("subscribe", err)
	}
	return s.logErr("subscribe", f.setSubscribed(on))
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: Delim}}}, nil
}

func (s *session) AppendLimit() uint32 {
	if s.store.maxSize > int64(^uint32(0)) {
		return ^uint32(0)
	}
	return uint32(s.store.maxSize)
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: Delim})
	}
	names, err := s.mb.folderNames()
	if err != nil {
		return s.logErr("list", err)
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	sort.Strings(names)
	for _, n := range names {
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(n, Delim, ref, p) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		f, err := s.mb.folder(n, false)
		if err != nil {
			continue // removed meanwhile
		}
		f.mu.Lock()
		subscribed := f.meta.Subscribed
		f.mu.Unlock()
		if options.SelectSubscribed && !subscribed {
			continue
		}
		su, isSpecial := specialUse[n]
		if options.SelectSpecialUse && !isSpecial {
			continue
		}
		data := &imap.ListData{Mailbox: n, Delim: Delim}
		children := false
		for _, o := range names {
			if strings.HasPrefix(o, n+string(Delim)) {
				children = true
				break
			}
		}
		if n == FolderInbox {
			children = false
		}
		if children {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if isSpecial {
			data.Attrs = append(data.Attrs, su)
		}
		if subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil {
			if st, err := s.status(n, options.ReturnStatus); err == nil {
				data.Status = st
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	n, err := CheckFolderName(name)
	if err != nil {
		return nil, s.logErr("status", err)
	}
	st, err := s.status(n, options)
	if err != nil {
		return nil, s.logErr("status", err)
	}
	return st, nil
}

func (s *session) status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.mb.folder(name, false)
	if err != nil {
		return nil, err
	}
	st, err := f.status()
	s.store.trimCache()
	if err != nil {
		return nil, err
	}
	data := &imap.StatusData{Mailbox: name}
	if options.NumMessages {
		data.NumMessages = &st.messages
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.uidNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.uidValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.deleted
	}
	if options.Size {
		data.Size = &st.size
	}
	if options.NumRecent {
		var zero uint32
		data.NumRecent = &zero
	}
	if options.AppendLimit {
		l := s.AppendLimit()
		data.AppendLimit = &l
	}
	return data, nil
}

func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	f, err := s.openFolder(name, false)
	if errors.Is(err, errNoFolder) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return nil, s.logErr("append", err)
	}
	if r.Size() > s.store.maxSize {
		return nil, imapErr(errTooBig)
	}
	// Refuse early, before reading the literal, if it cannot fit.
	if err := s.store.checkQuota(s.mb, r.Size()); err != nil {
		return nil, imapErr(err)
	}
	body, err := io.ReadAll(io.LimitReader(r, s.store.maxSize+1))
	if err != nil {
		return nil, err
	}
	bits, kw := parseFlags(options.Flags)
	uid, err := f.appendMessage(toCRLF(body), bits, kw, options.Time, true)
	if err != nil {
		return nil, s.logErr("append", err)
	}
	f.mu.Lock()
	uidv := f.meta.UIDValidity
	f.mu.Unlock()
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: uidv}, nil
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	return s.sel.poll(w, allowExpunge)
}

func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.sel == nil {
		<-stop
		return nil
	}
	return s.sel.idle(w, stop, s.log)
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if s.sel.readOnly {
		return imapErr(errReadOnly)
	}
	_, err := s.sel.f.expunge(uids, nil)
	return s.logErr("expunge", err)
}

func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	data, err := s.sel.search(kind, criteria, options)
	if err != nil {
		return nil, s.logErr("search", err)
	}
	return data, nil
}

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	return s.logErr("fetch", s.sel.fetch(w, numSet, options))
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if s.sel.readOnly {
		return imapErr(errReadOnly)
	}
	return s.logErr("store", s.sel.store(w, numSet, flags))
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	data, err := s.copyOrMove(numSet, dest, false)
	if err != nil {
		return nil, s.logErr("copy", err)
	}
	return data, nil
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if s.sel.readOnly {
		return imapErr(errReadOnly)
	}
	data, err := s.copyOrMove(numSet, dest, true)
	if err != nil {
		return s.logErr("move", err)
	}
	// The EXPUNGE responses follow from the folder's update queue.
	return w.WriteCopyData(data)
}

func (s *session) copyOrMove(numSet imap.NumSet, dest string, move bool) (*imap.CopyData, error) {
	to, err := s.openFolder(dest, false)
	if errors.Is(err, errNoFolder) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return nil, err
	}
	src := s.sel.f
	if move && to == src {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Source and destination are the same"}
	}
	src.mu.Lock()
	idx := s.sel.resolveLocked(numSet)
	msgs := make([]*message, len(idx))
	var size int64
	for i, j := range idx {
		msgs[i] = src.msgs[j]
		size += src.msgs[j].size
	}
	src.mu.Unlock()
	if !move {
		// All or nothing for quota: refuse before copying any.
		if err := s.store.checkQuota(s.mb, size); err != nil {
			return nil, err
		}
	}
	srcUIDs, dstUIDs, err := to.copyInto(src, msgs, !move)
	if err == nil && move {
		only := map[uint32]bool{}
		for _, u := range srcUIDs {
			only[u] = true
		}
		_, err = src.expunge(nil, only)
	}
	if err != nil {
		return nil, err
	}
	to.mu.Lock()
	uidv := to.meta.UIDValidity
	to.mu.Unlock()
	data := &imap.CopyData{UIDValidity: uidv}
	for i := range srcUIDs {
		data.SourceUIDs.AddNum(imap.UID(srcUIDs[i]))
		data.DestUIDs.AddNum(imap.UID(dstUIDs[i]))
	}
	return data, nil
}

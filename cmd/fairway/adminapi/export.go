package adminapi

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"fairway/tenant"
)

// Moving a tenant between servers (`fairway tenant export` / `import`):
//
//	GET  /v1/tenants/{name}/export   a tar (application/x-tar) of the tenant
//	POST /v1/tenants/import          such a tar; answers ImportedTenant
//
// The tar holds first ArchiveJSONName, the directory's tenant.TenantArchive
// (policy, domains, mailboxes with their password hashes, aliases, DKIM keys
// with their private keys), then every directory and regular file under
// <data_dir>/mail/<domain>/ of each of the tenant's domains, as
// mail/<domain>/...: the Maildirs as they are, readable by any Maildir tool.
// The archive holds secrets; treat it as the server's own data.
//
// An import trusts nothing in the tar. It reads and checks the JSON first
// (CheckImport: version, names, hashes, keys, conflicts with this server);
// refuses if a domain's mail directory already exists here; then unpacks the
// mail into a private staging directory inside <data_dir>/mail, checking
// each entry as it comes (a path under mail/<one of the archive's
// domains>/, no "..", nothing absolute, only regular files and directories,
// size limits); syncs it; moves each domain's directory into place; and
// only then imports the directory entries in one transaction. Any failure
// removes what was unpacked, so nothing is left half imported. The mail
// store indexes the new Maildirs when each mailbox is first used.

// noFollow makes opening a symbolic link fail: no file outside a Maildir
// is ever read or written through one.
const noFollow = syscall.O_NOFOLLOW

// ArchiveJSONName is the first member of a tenant archive.
const ArchiveJSONName = "fairway-tenant.json"

// archiveLimits bound what an import accepts.
type archiveLimits struct {
	jsonBytes  int64 // the TenantArchive
	fileBytes  int64 // one file of a Maildir
	totalBytes int64 // all files together
	entries    int   // members of the tar
}

var defaultArchiveLimits = archiveLimits{
	jsonBytes:  256 << 20,
	fileBytes:  1 << 30,
	totalBytes: 4 << 40,
	entries:    20_000_000,
}

// Idle limits of a transfer: each file written, each entry read, must make
// progress within these (the server's overall read and write timeouts are
// lifted for these two routes, which may run for hours).
const (
	exportWriteIdle = 2 * time.Minute
	importReadIdle  = 2 * time.Minute
)

// ExportDirectory is what tenant export and import need of the directory
// (*tenant.Directory).
type ExportDirectory interface {
	ExportTenant(name string) (*tenant.TenantArchive, error)
	CheckImport(a *tenant.TenantArchive) error
	ImportTenant(a *tenant.TenantArchive) error
}

// ImportedTenant answers POST /v1/tenants/import.
type ImportedTenant struct {
	Tenant    string   `json:"tenant"`
	Domains   []string `json:"domains"`
	Mailboxes int      `json:"mailboxes"`
	Aliases   int      `json:"aliases"`
	DKIMKeys  int      `json:"dkim_keys"`
	Files     int      `json:"files"` // Maildir files unpacked
	Bytes     int64    `json:"bytes"`
}

// HandleExport adds the tenant export and import routes; mail lives under
// dataDir/mail. Call it once, before serving.
func (a *API) HandleExport(dataDir string, dir ExportDirectory) {
	a.handleExport(dataDir, dir, defaultArchiveLimits)
}

func (a *API) handleExport(dataDir string, dir ExportDirectory, limits archiveLimits) {
	h := &exportHandlers{api: a, mailDir: filepath.Join(dataDir, "mail"), dir: dir, limits: limits, log: a.log}
	a.mux.HandleFunc("GET /v1/tenants/{name}/export", h.export)
	a.mux.HandleFunc("POST /v1/tenants/import", h.importTar)
}

type exportHandlers struct {
	// importMu runs one import at a time: between the check that a
	// domain's mail directory is free and the move into it, no other
	// import may take it, and a staging directory left by a crash can be
	// removed at the start of the next import.
	importMu sync.Mutex
	api      *API
	mailDir  string
	dir      ExportDirectory
	limits   archiveLimits
	log      *slog.Logger
}

// exportEntry is one directory or file to send.
type exportEntry struct {
	abs, name string // on disk; in the tar
	dir       bool
}

// export streams the tenant's archive. Everything that can be refused is
// checked before the 200; a failure while streaming (a disk error) aborts
// the connection, so the client sees a broken transfer, never a tar that
// looks whole.
func (h *exportHandlers) export(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	arc, err := h.dir.ExportTenant(name)
	if err != nil {
		writeError(h.log, w, r, err, "tenant", name)
		return
	}
	var plan []exportEntry
	for _, dom := range arc.DomainNames() {
		entries, err := planMailDir(h.mailDir, dom)
		if err != nil {
			writeError(h.log, w, r, withTenant(name, err), "tenant", name)
			return
		}
		plan = append(plan, entries...)
	}
	jsonBody, err := json.MarshalIndent(arc, "", "  ")
	if err != nil {
		writeError(h.log, w, r, withTenant(name, err), "tenant", name)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="fairway-tenant-`+name+`.tar"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	tw := tar.NewWriter(w)
	st := exportStats{}
	err = func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteIdle)) // not supported: the server's own timeout applies
		now := time.Now()
		if err := tw.WriteHeader(&tar.Header{Name: ArchiveJSONName, Typeflag: tar.TypeReg, Mode: 0o600,
			Size: int64(len(jsonBody)), ModTime: now}); err != nil {
			return err
		}
		if _, err := tw.Write(jsonBody); err != nil {
			return err
		}
		planned := map[string]bool{}
		for _, e := range plan {
			planned[e.abs] = true
		}
		for _, e := range plan {
			_ = rc.SetWriteDeadline(time.Now().Add(exportWriteIdle))
			if err := writeEntry(tw, e, planned, &st); err != nil {
				return err
			}
		}
		return tw.Close()
	}()
	if err != nil {
		h.log.Error("tenant export failed while streaming; connection aborted", "tenant", name, "err", err)
		panic(http.ErrAbortHandler) // net/http closes the connection without a clean end
	}
	h.log.Info("tenant exported", "tenant", name, "domains", len(arc.Domains), "files", st.files,
		"bytes", st.bytes, "vanished", st.vanished)
}

type exportStats struct {
	files, vanished int
	bytes           int64
}

// planMailDir lists a domain's mail directory: directories and regular
// files, sockets and devices skipped, a symbolic link refused (it would
// export what is outside the Maildir). A domain with no mail yet has none.
func planMailDir(mailDir, domain string) ([]exportEntry, error) {
	root := filepath.Join(mailDir, domain)
	fi, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("export: mail of %s: %w", domain, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("export: mail of %s: %s is not a directory", domain, root)
	}
	var out []exportEntry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != root {
				return nil // a Maildir file moved or expunged while listing
			}
			return err
		}
		rel, err := filepath.Rel(mailDir, p)
		if err != nil {
			return err
		}
		name := "mail/" + filepath.ToSlash(rel)
		switch t := d.Type(); {
		case t.IsDir():
			out = append(out, exportEntry{abs: p, name: name + "/", dir: true})
		case t.IsRegular():
			out = append(out, exportEntry{abs: p, name: name})
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: export: %s is a symbolic link; a Maildir holds none: remove it first", tenant.ErrInvalid, p)
		default: // socket, device, pipe: not mail
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export: mail of %s: %w", domain, err)
	}
	return out, nil
}

// writeEntry sends one planned entry. A file gone since the listing moved
// from new/ to cur/ (read by a client) or was expunged: the first is sent
// under its new name, the second skipped.
func writeEntry(tw *tar.Writer, e exportEntry, planned map[string]bool, st *exportStats) error {
	if e.dir {
		fi, err := os.Lstat(e.abs)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeDir, Mode: 0o700, ModTime: fi.ModTime()})
	}
	f, err := os.OpenFile(e.abs, os.O_RDONLY|noFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if moved := movedToCur(e.abs, planned); moved != "" {
			planned[moved] = true
			f, err = os.OpenFile(moved, os.O_RDONLY|noFollow, 0)
			e.name = path.Join(path.Dir(path.Dir(e.name)), "cur", filepath.Base(moved))
		}
		if errors.Is(err, fs.ErrNotExist) {
			st.vanished++
			return nil
		}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file", e.abs)
	}
	if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
		return err
	}
	n, err := io.CopyN(tw, f, fi.Size())
	if err != nil {
		return fmt.Errorf("%s: %d of %d bytes: %w", e.abs, n, fi.Size(), err)
	}
	st.files++
	st.bytes += n
	return nil
}

// movedToCur finds the cur/ file a vanished new/ file became (the same
// base name, with an info suffix ":2,..."), if it was not sent already.
func movedToCur(abs string, planned map[string]bool) string {
	if filepath.Base(filepath.Dir(abs)) != "new" {
		return ""
	}
	cur := filepath.Join(filepath.Dir(filepath.Dir(abs)), "cur")
	entries, err := os.ReadDir(cur)
	if err != nil {
		return ""
	}
	base := filepath.Base(abs)
	for _, de := range entries {
		if n := de.Name(); (n == base || strings.HasPrefix(n, base+":")) && !planned[filepath.Join(cur, n)] {
			return filepath.Join(cur, n)
		}
	}
	return ""
}

// importTar unpacks and imports a tenant archive; see the top of this file.
func (h *exportHandlers) importTar(w http.ResponseWriter, r *http.Request) {
	res, err := h.unpackAndImport(w, r)
	// The server's write timeout started with the request, which may have
	// been long: give the answer its own.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(exportWriteIdle))
	if err != nil {
		var te *tenantError
		var attrs []any
		if errors.As(err, &te) {
			attrs = append(attrs, "tenant", te.tenant)
		}
		writeError(h.log, w, r, err, attrs...)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

func (h *exportHandlers) unpackAndImport(w http.ResponseWriter, r *http.Request) (ImportedTenant, error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(importReadIdle))
	body := &tailReader{r: http.MaxBytesReader(w, r.Body, h.limits.totalBytes+h.limits.jsonBytes+(64<<20))}
	tr := tar.NewReader(body)
	arc, err := h.readArchiveJSON(tr)
	if err != nil {
		return ImportedTenant{}, err
	}
	name := arc.Tenant.Name
	if err := h.dir.CheckImport(arc); err != nil {
		return ImportedTenant{}, withTenant(name, err)
	}
	domains := arc.DomainNames()
	for _, dom := range domains {
		if _, err := os.Lstat(filepath.Join(h.mailDir, dom)); !errors.Is(err, fs.ErrNotExist) {
			return ImportedTenant{}, withTenant(name, fmt.Errorf("import: mail directory of %s: %w here; remove it first if it is stale", dom, tenant.ErrExists))
		}
	}
	h.importMu.Lock()
	defer h.importMu.Unlock()
	if err := os.MkdirAll(h.mailDir, 0o700); err != nil {
		return ImportedTenant{}, withTenant(name, fmt.Errorf("import: %w", err))
	}
	h.removeStaleStaging()
	// Staging inside the mail directory: same file system, so the final
	// moves are renames. The mail store skips it (no such domain).
	staging, err := os.MkdirTemp(h.mailDir, stagingPrefix)
	if err != nil {
		return ImportedTenant{}, withTenant(name, fmt.Errorf("import: %w", err))
	}
	defer func() {
		if err := os.RemoveAll(staging); err != nil {
			h.log.Error("import: remove staging directory", "dir", staging, "err", err)
		}
	}()
	res := ImportedTenant{Tenant: name, Domains: domains, Mailboxes: len(arc.Mailboxes), Aliases: len(arc.Aliases), DKIMKeys: len(arc.DKIMKeys)}
	if err := h.unpack(tr, rc, staging, domains, &res); err != nil {
		return ImportedTenant{}, withTenant(name, err)
	}
	if !body.endsWithMarker() {
		// archive/tar takes a stream cut at a member boundary for a whole
		// archive; the two zero blocks that end a tar say it is not cut.
		err := errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: no end-of-archive marker: the tar was cut short")
		return ImportedTenant{}, withTenant(name, err)
	}
	moved, err := h.moveIntoPlace(staging, domains)
	if err == nil {
		err = h.dir.ImportTenant(arc)
	}
	if err != nil {
		h.removeMoved(moved)
		return ImportedTenant{}, withTenant(name, err)
	}
	h.indexMailboxes(arc)
	if h.api != nil && h.api.queue != nil {
		if _, err := h.api.syncTenant(name); err != nil {
			return ImportedTenant{}, err
		}
	}
	h.log.Info("tenant imported", "tenant", name, "domains", len(domains), "mailboxes", res.Mailboxes,
		"files", res.Files, "bytes", res.Bytes)
	return res, nil
}

// MailboxIndexer is the optional capability of the Usage (*mailstore.Store)
// to index a mailbox now: asking its usage reads a Maildir it has not seen.
type MailboxIndexer interface {
	MailboxUsage(address string) (int64, error)
}

// indexMailboxes has the mail store index the imported Maildirs at once,
// so the tenant's usage and quotas count them from the start rather than
// from each mailbox's first use. The import is committed: a failure here
// is logged, and the store indexes the mailbox on first use instead.
func (h *exportHandlers) indexMailboxes(arc *tenant.TenantArchive) {
	if h.api == nil {
		return
	}
	ix, ok := h.api.usage.(MailboxIndexer)
	if !ok {
		return
	}
	for _, m := range arc.Mailboxes {
		if _, err := ix.MailboxUsage(m.Address); err != nil {
			h.log.Warn("import: indexing an imported mailbox; it is indexed on first use", "tenant", arc.Tenant.Name, "mailbox", m.Address, "err", err)
		}
	}
}

// stagingPrefix names import staging directories in the mail directory.
const stagingPrefix = ".import-"

// removeStaleStaging removes staging directories an interrupted import
// left (a crash between unpacking and the move into place). importMu held.
func (h *exportHandlers) removeStaleStaging() {
	entries, err := os.ReadDir(h.mailDir)
	if err != nil {
		h.log.Warn("import: listing the mail directory for stale staging", "err", err)
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), stagingPrefix) {
			p := filepath.Join(h.mailDir, e.Name())
			h.log.Warn("import: removing the staging directory of an interrupted import", "dir", p)
			if err := os.RemoveAll(p); err != nil {
				h.log.Error("import: removing stale staging", "dir", p, "err", err)
			}
		}
	}
}

// readArchiveJSON reads and decodes the first member, the TenantArchive.
func (h *exportHandlers) readArchiveJSON(tr *tar.Reader) (*tenant.TenantArchive, error) {
	hdr, err := tr.Next()
	if err != nil {
		return nil, archiveReadError(err)
	}
	if hdr.Name != ArchiveJSONName || hdr.Typeflag != tar.TypeReg {
		return nil, errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: the first member must be %s, not %q", ArchiveJSONName, hdr.Name)
	}
	if hdr.Size > h.limits.jsonBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, CodeInvalid, "tenant archive: %s larger than %d bytes", ArchiveJSONName, h.limits.jsonBytes)
	}
	dec := json.NewDecoder(tr)
	dec.DisallowUnknownFields()
	var arc tenant.TenantArchive
	if err := dec.Decode(&arc); err != nil {
		if isTooLarge(err) {
			return nil, archiveReadError(err)
		}
		return nil, errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: %s: %s", ArchiveJSONName, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: %s: more than one JSON value", ArchiveJSONName)
	}
	return &arc, nil
}

// archiveReadError says what went wrong reading the tar: too large, cut
// short or not a tar (the client's fault), or a timeout.
func archiveReadError(err error) error {
	if isTooLarge(err) {
		return errorf(http.StatusRequestEntityTooLarge, CodeInvalid, "tenant archive larger than the limit")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errorf(http.StatusRequestTimeout, CodeInvalid, "tenant archive: the upload stalled")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) ||
		errors.Is(err, tar.ErrFieldTooLong) || errors.Is(err, tar.ErrInsecurePath) {
		return errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: not a complete tar: %v", err)
	}
	return errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: reading: %v", err)
}

// archivePath checks a member name and returns its domain and its path
// below the domain's directory ("" for the domain directory itself).
func archivePath(name string, domains []string) (domain, rel string, err error) {
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: member %q: %s", name, why)
	}
	clean := strings.TrimSuffix(name, "/")
	switch {
	case clean == "" || len(name) > 4096:
		return "", "", bad("empty or too long a name")
	case strings.ContainsAny(name, "\\\x00") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", "", bad("backslash or control character in the name")
	case strings.HasPrefix(name, "/") || filepath.IsAbs(name) || filepath.VolumeName(name) != "":
		return "", "", bad("absolute path")
	case path.Clean(clean) != clean || slices.Contains(strings.Split(clean, "/"), ".."):
		return "", "", bad("not a clean relative path (., .. or //)")
	}
	rest, ok := strings.CutPrefix(clean, "mail/")
	if !ok {
		return "", "", bad("outside mail/")
	}
	domain, rel, _ = strings.Cut(rest, "/")
	if !slices.Contains(domains, domain) {
		return "", "", bad("not under the mail directory of one of the archive's domains")
	}
	return domain, rel, nil
}

// unpack writes the tar's mail members under staging, checking each
// before anything of it is written, and syncs files and directories.
func (h *exportHandlers) unpack(tr *tar.Reader, rc *http.ResponseController, staging string, domains []string, res *ImportedTenant) error {
	dirs := map[string]bool{staging: true}
	mkdir := func(p string) error {
		// Each missing directory from staging down, so each gets synced.
		rel, err := filepath.Rel(staging, p)
		if err != nil {
			return err
		}
		cur := staging
		for part := range strings.SplitSeq(rel, string(filepath.Separator)) {
			if part == "." {
				continue
			}
			cur = filepath.Join(cur, part)
			if dirs[cur] {
				continue
			}
			if err := os.Mkdir(cur, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if fi, err := os.Lstat(cur); err != nil || !fi.IsDir() {
				return errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: %s is both a file and a directory", cur)
			}
			dirs[cur] = true
		}
		return nil
	}
	var total int64
	for n := 0; ; n++ {
		_ = rc.SetReadDeadline(time.Now().Add(importReadIdle))
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return archiveReadError(err)
		}
		if n >= h.limits.entries {
			return errorf(http.StatusRequestEntityTooLarge, CodeInvalid, "tenant archive: more than %d members", h.limits.entries)
		}
		domain, rel, err := archivePath(hdr.Name, domains)
		if err != nil {
			return err
		}
		target := filepath.Join(staging, domain, filepath.FromSlash(rel))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdir(target); err != nil {
				return fmt.Errorf("import: %w", err)
			}
		case tar.TypeReg:
			if rel == "" {
				return errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: member %q: a domain's mail is a directory", hdr.Name)
			}
			if hdr.Size < 0 || hdr.Size > h.limits.fileBytes {
				return errorf(http.StatusRequestEntityTooLarge, CodeInvalid, "tenant archive: member %q: %d bytes, more than the %d a file may hold",
					hdr.Name, hdr.Size, h.limits.fileBytes)
			}
			if total += hdr.Size; total > h.limits.totalBytes {
				return errorf(http.StatusRequestEntityTooLarge, CodeInvalid, "tenant archive: more than %d bytes of mail", h.limits.totalBytes)
			}
			if err := mkdir(filepath.Dir(target)); err != nil {
				return fmt.Errorf("import: %w", err)
			}
			if err := writeMember(target, tr, hdr); err != nil {
				return err
			}
			res.Files++
			res.Bytes += hdr.Size
		default:
			return errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: member %q: %s; only regular files and directories are accepted",
				hdr.Name, typeName(hdr.Typeflag))
		}
	}
	// Deepest first, so each directory is synced after what it holds.
	order := make([]string, 0, len(dirs))
	for d := range dirs {
		order = append(order, d)
	}
	slices.SortFunc(order, func(a, b string) int { return len(b) - len(a) })
	for _, d := range order {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	return nil
}

// tailReader keeps the last bytes read through it, to see the two zero
// blocks (1024 bytes) that end a tar.
type tailReader struct {
	r    io.Reader
	tail [1024]byte
	n    int64
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n >= len(t.tail) {
		copy(t.tail[:], p[n-len(t.tail):n])
	} else if n > 0 {
		copy(t.tail[:], t.tail[n:])
		copy(t.tail[len(t.tail)-n:], p[:n])
	}
	t.n += int64(n)
	return n, err
}

func (t *tailReader) endsWithMarker() bool {
	return t.n >= int64(len(t.tail)) && !slices.ContainsFunc(t.tail[:], func(b byte) bool { return b != 0 })
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "a symbolic link"
	case tar.TypeLink:
		return "a hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "a device"
	case tar.TypeFifo:
		return "a named pipe"
	}
	return fmt.Sprintf("type %q", t)
}

// writeMember writes one file: created new (never over another member),
// mode 0600, synced, with the archive's modification time (mail readers
// take it as the delivery date).
func writeMember(target string, tr *tar.Reader, hdr *tar.Header) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errorf(http.StatusBadRequest, CodeInvalid, "tenant archive: member %q appears twice", hdr.Name)
		}
		return fmt.Errorf("import: %w", err)
	}
	_, err = io.CopyN(f, tr, hdr.Size)
	if err != nil {
		err = archiveReadError(err)
	} else if err = f.Sync(); err != nil {
		err = fmt.Errorf("import: %w", err)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("import: %w", cerr)
	}
	if err != nil {
		return err
	}
	if !hdr.ModTime.IsZero() {
		_ = os.Chtimes(target, hdr.ModTime, hdr.ModTime) // a date, not data: best effort
	}
	return nil
}

// moveIntoPlace renames each unpacked domain directory to mail/<domain>,
// refusing one that appeared meanwhile, and syncs the mail directory.
func (h *exportHandlers) moveIntoPlace(staging string, domains []string) (moved []string, err error) {
	for _, dom := range domains {
		src, dst := filepath.Join(staging, dom), filepath.Join(h.mailDir, dom)
		if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
			continue // no mail for this domain
		}
		if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
			return moved, fmt.Errorf("import: mail directory of %s: %w here", dom, tenant.ErrExists)
		}
		if err := os.Rename(src, dst); err != nil {
			return moved, fmt.Errorf("import: %w", err)
		}
		moved = append(moved, dst)
	}
	if err := syncDir(h.mailDir); err != nil {
		return moved, fmt.Errorf("import: %w", err)
	}
	return moved, nil
}

// removeMoved undoes moveIntoPlace after a failed import.
func (h *exportHandlers) removeMoved(moved []string) {
	for _, p := range moved {
		if err := os.RemoveAll(p); err != nil {
			h.log.Error("import: remove mail of a failed import", "dir", p, "err", err)
		}
	}
	if len(moved) > 0 {
		if err := syncDir(h.mailDir); err != nil {
			h.log.Error("import: sync mail directory", "err", err)
		}
	}
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// streamIdle bounds the wait for the next bytes of a streamed request or
// answer.
const streamIdle = 5 * time.Minute

// Stream sends a request whose body (nil for none) is sent as it is, with
// contentType, and returns the answer's body to read as a stream (tenant
// export and import, of any size). There is no overall time limit; the
// request fails when no bytes move either way for streamIdle. A refusal is
// an *Error, as with Do. Close the body.
func (c *Client) Stream(ctx context.Context, method, path, contentType string, body io.Reader) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	watchdog := time.AfterFunc(streamIdle, cancel)
	fail := func(err error) (io.ReadCloser, error) {
		watchdog.Stop()
		cancel()
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = &idleReader{r: body, watchdog: watchdog}
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://fairway"+path, rd)
	if err != nil {
		return fail(fmt.Errorf("request %s %s: %w", method, path, err))
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return fail(&UnreachableError{Socket: c.socketPath, Err: opErr.Err})
		}
		return fail(fmt.Errorf("admin API %s %s: %w", method, path, err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		e := &Error{}
		if err := json.Unmarshal(raw, e); err != nil || e.Message == "" {
			return fail(fmt.Errorf("admin API %s %s: %s", method, path, resp.Status))
		}
		e.Status = resp.StatusCode
		return fail(e)
	}
	return &idleBody{idleReader: idleReader{r: resp.Body, watchdog: watchdog}, body: resp.Body, cancel: cancel}, nil
}

// idleReader pushes the watchdog back on every read that makes progress.
type idleReader struct {
	r        io.Reader
	watchdog *time.Timer
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.watchdog.Reset(streamIdle)
	}
	return n, err
}

type idleBody struct {
	idleReader
	body   io.Closer
	cancel context.CancelFunc
}

func (b *idleBody) Close() error {
	b.watchdog.Stop()
	err := b.body.Close()
	b.cancel()
	return err
}

package mailstore

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"fairway/tenant"
)

// Limits on an imported archive.
const (
	maxImportEntries = 10_000_000
	maxImportPath    = 1024
)

// ExportDomain writes every Maildir of a domain into tw, as
// <domain>/<localpart>/... entries (cur/, new/, Maildir++ subfolders and
// their fairway-uidvalidity files; not tmp/, not the index). Any Maildir
// tool can read the result; ImportDomain loads it into another store.
func (s *Store) ExportDomain(tw *tar.Writer, domain string) error {
	d, err := tenant.NormalizeDomain(domain)
	if err != nil {
		return fmt.Errorf("mailstore: export: %w", err)
	}
	root := filepath.Join(s.mailDir, d)
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil // no mail yet
	}
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("mailstore: export: %w", err)
		}
		rel, err := filepath.Rel(s.mailDir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if de.IsDir() {
			if de.Name() == "tmp" || strings.HasPrefix(de.Name(), "..deleted-") {
				return fs.SkipDir
			}
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700})
		}
		if !de.Type().IsRegular() {
			return nil // symlinks and the like are not mail
		}
		info, err := de.Info()
		if err != nil {
			return fmt.Errorf("mailstore: export: %w", err)
		}
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // expunged or renamed meanwhile
			}
			return fmt.Errorf("mailstore: export: %w", err)
		}
		defer f.Close()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600,
			Size: info.Size(), ModTime: info.ModTime()}); err != nil {
			return fmt.Errorf("mailstore: export: %w", err)
		}
		if _, err := io.CopyN(tw, f, info.Size()); err != nil {
			return fmt.Errorf("mailstore: export %s: %w", name, err)
		}
		return nil
	})
}

// ImportDomain reads an archive made by ExportDomain (or any tar of
// <domain>/<localpart>/ Maildirs) and indexes the imported mailboxes, each
// folder with a new UIDVALIDITY. Only entries under domain are accepted,
// only for mailboxes the directory knows and that have no mail here yet;
// paths that would leave the store are refused.
func (s *Store) ImportDomain(tr *tar.Reader, domain string) error {
	d, err := tenant.NormalizeDomain(domain)
	if err != nil {
		return fmt.Errorf("mailstore: import: %w", err)
	}
	checked := map[string]bool{} // local part dir -> allowed
	var imported []string
	for n := 0; ; n++ {
		if n > maxImportEntries {
			return fmt.Errorf("mailstore: import: more than %d entries", maxImportEntries)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("mailstore: import: %w", err)
		}
		if h.Typeflag == tar.TypeDir && strings.TrimSuffix(h.Name, "/") == d {
			continue // the domain directory itself
		}
		local, rest, err := importPath(h.Name, d)
		if err != nil {
			return err
		}
		if _, ok := checked[local]; !ok {
			addr := strings.ReplaceAll(local, "%2F", "/") + "@" + d
			if _, known := s.dir.MailboxTenant(addr); !known {
				return fmt.Errorf("%w: import: %s", ErrNoMailbox, addr)
			}
			if _, err := os.Stat(filepath.Join(s.mailDir, d, local)); err == nil {
				return fmt.Errorf("mailstore: import: %s already has mail here", addr)
			}
			checked[local] = true
			imported = append(imported, addr)
		}
		dst := filepath.Join(s.mailDir, d, local, filepath.FromSlash(rest))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return fmt.Errorf("mailstore: import: %w", err)
			}
		case tar.TypeReg:
			if h.Size < 0 || h.Size > s.maxSize {
				return fmt.Errorf("mailstore: import: %s: %d bytes is over the size limit", h.Name, h.Size)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return fmt.Errorf("mailstore: import: %w", err)
			}
			f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("mailstore: import: %w", err)
			}
			_, err = io.CopyN(f, tr, h.Size)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("mailstore: import %s: %w", h.Name, err)
			}
			if !h.ModTime.IsZero() {
				os.Chtimes(dst, h.ModTime, h.ModTime) // INTERNALDATE
			}
		default:
			// Links, devices and the like are not mail: skipped.
		}
	}
	for _, addr := range imported {
		root, err := mailboxDir(s.mailDir, addr)
		if err != nil {
			return err
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			os.MkdirAll(filepath.Join(root, sub), 0o700)
		}
		mb, err := s.mailbox(addr)
		if err != nil {
			return err
		}
		if err := mb.scan(); err != nil {
			return err
		}
		s.log.Info("imported mailbox", "tenant", mb.tenant, "mailbox", addr)
	}
	return nil
}

// importPath checks an archive entry name: "<domain>/<localpart>/<rest>"
// with no "..", no absolute path, no empty or dot elements, and the local
// part directory one element. It returns the local part directory and the
// rest ("" for the mailbox directory itself).
func importPath(name, domain string) (local, rest string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: import: entry %q: %s", ErrBadFolder, name, why)
	}
	if len(name) > maxImportPath || strings.ContainsAny(name, "\\\x00") {
		return bad("not a plain path")
	}
	name = strings.TrimSuffix(name, "/")
	if path.IsAbs(name) || path.Clean(name) != name {
		return bad("not a clean relative path")
	}
	parts := strings.Split(name, "/")
	if len(parts) < 2 || parts[0] != domain {
		return bad("not under " + domain)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return bad("dot or empty element")
		}
	}
	local = parts[1]
	if _, err := tenant.NormalizeAddress(strings.ReplaceAll(local, "%2F", "/") + "@" + domain); err != nil {
		return bad("not a mailbox")
	}
	if len(parts) > 2 {
		if parts[2] == "tmp" || strings.HasPrefix(parts[2], "..") {
			return bad("tmp or a deleted folder")
		}
		if len(parts) > 5 {
			return bad("too deep")
		}
	}
	return local, strings.Join(parts[2:], "/"), nil
}

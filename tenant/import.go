package tenant

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Bulk onboarding from CSV: tenant,domain[,mailbox,password] per line, an
// optional header line. The whole file is validated before anything is
// written, then written in one commit. Missing tenants are created with the
// default policy; a domain line for a domain the tenant already has is fine
// (so several lines can add mailboxes to one domain).

const (
	maxImportBytes = 64 << 20
	maxImportLines = 200000
)

// LineError is one bad line of an import.
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// ImportError lists every bad line; nothing was written.
type ImportError struct{ Lines []LineError }

func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad line(s), nothing imported", len(e.Lines))
	for _, l := range e.Lines {
		b.WriteString("\n")
		b.WriteString(l.Error())
	}
	return b.String()
}

func (e *ImportError) Unwrap() error { return ErrInvalid }

// ImportResult counts what an import created.
type ImportResult struct {
	Tenants, Domains, Mailboxes int
}

type importRow struct {
	line                    int
	tenant, domain, mailbox string
	password                string
	hash                    string
}

// Import reads a CSV onboarding file and applies it in one commit.
func (d *Directory) Import(r io.Reader) (ImportResult, error) {
	lr := &io.LimitedReader{R: r, N: maxImportBytes + 1}
	rows, lineErrs := parseImport(lr)
	if lr.N <= 0 {
		return ImportResult{}, fmt.Errorf("%w: import file larger than %d bytes", ErrInvalid, maxImportBytes)
	}
	// Report conflicts with the directory in the same pass as syntax errors;
	// they are checked again under the write lock before writing.
	d.mu.RLock()
	lineErrs = append(lineErrs, d.checkImport(rows)...)
	d.mu.RUnlock()
	if len(lineErrs) > 0 {
		sort.SliceStable(lineErrs, func(i, j int) bool { return lineErrs[i].Line < lineErrs[j].Line })
		return ImportResult{}, &ImportError{Lines: lineErrs}
	}
	// Hash outside the write lock, in parallel (hashSlots bounds it).
	var wg sync.WaitGroup
	errs := make([]error, len(rows))
	for i := range rows {
		if rows[i].mailbox == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i].hash, errs[i] = hashPassword(rows[i].password)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return ImportResult{}, err
	}
	var res ImportResult
	err := d.update(func(tx *txn) error {
		res = ImportResult{}
		if errs := d.checkImport(rows); len(errs) > 0 {
			return &ImportError{Lines: errs}
		}
		newTenant, newDomain := map[string]bool{}, map[string]bool{}
		for _, row := range rows {
			if d.st.tenants[row.tenant] == nil && !newTenant[row.tenant] {
				t := &Tenant{Name: row.tenant, Policy: Policy{Weight: 1}, Created: d.clock.Now().UTC()}
				if err := tx.set(pfxTenant+t.Name, t); err != nil {
					return err
				}
				tx.afterCommit(func(st *state) { st.putTenant(t) })
				newTenant[row.tenant] = true
				res.Tenants++
			}
			if d.st.domains[row.domain] == nil && !newDomain[row.domain] {
				dom := &Domain{Name: row.domain, Tenant: row.tenant, Created: d.clock.Now().UTC()}
				if err := tx.set(pfxDomain+dom.Name, dom); err != nil {
					return err
				}
				if err := d.dkimAddDomain(tx, dom.Name, true); err != nil {
					return fmt.Errorf("line %d: domain %s: dkim keys: %w", row.line, dom.Name, err)
				}
				tx.afterCommit(func(st *state) { st.domains[dom.Name] = dom })
				newDomain[row.domain] = true
				res.Domains++
			}
			if row.mailbox != "" {
				m := &Mailbox{Address: row.mailbox, Tenant: row.tenant, Hash: row.hash, Created: d.clock.Now().UTC()}
				if err := tx.set(pfxMailbox+m.Address, m); err != nil {
					return err
				}
				tx.afterCommit(func(st *state) { st.mailboxes[m.Address] = m })
				res.Mailboxes++
			}
		}
		d.log.Info("import", "tenants", res.Tenants, "domains", res.Domains, "mailboxes", res.Mailboxes)
		return nil
	})
	return res, err
}

// parseImport reads and checks every line on its own (syntax, names,
// password strength, duplicates within the file).
func parseImport(r io.Reader) ([]importRow, []LineError) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	var rows []importRow
	var errs []LineError
	bad := func(line int, format string, args ...any) {
		errs = append(errs, LineError{Line: line, Err: fmt.Errorf(format, args...)})
	}
	seenMailbox := map[string]int{}
	domainTenant := map[string]string{}
	total := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		total++
		if total > maxImportLines {
			bad(line, "more than %d lines", maxImportLines)
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				bad(line, "reading: %v", err) // the reader failed: nothing more to read
				break
			}
			bad(pe.Line, "%v", pe.Err)
			continue
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		if total == 1 && len(rec) >= 2 && strings.EqualFold(rec[0], "tenant") && strings.EqualFold(rec[1], "domain") {
			continue // header
		}
		if len(rec) == 1 && rec[0] == "" {
			continue // blank line
		}
		if len(rec) != 2 && len(rec) != 4 {
			bad(line, "%d columns: want tenant,domain or tenant,domain,mailbox,password", len(rec))
			continue
		}
		row := importRow{line: line, tenant: rec[0]}
		if err := validTenantName(rec[0]); err != nil {
			bad(line, "%v", err)
			continue
		}
		dom, err := NormalizeDomain(rec[1])
		if err != nil {
			bad(line, "%v", err)
			continue
		}
		row.domain = dom
		if prev, ok := domainTenant[dom]; ok && prev != row.tenant {
			bad(line, "domain %s is given to tenant %s earlier in the file", dom, prev)
			continue
		}
		domainTenant[dom] = row.tenant
		if len(rec) == 4 {
			addr, err := NormalizeAddress(rec[2])
			if err != nil {
				bad(line, "%v", err)
				continue
			}
			if domainOf(addr) != dom {
				bad(line, "mailbox %s is not in domain %s", addr, dom)
				continue
			}
			if first, dup := seenMailbox[addr]; dup {
				bad(line, "mailbox %s already on line %d", addr, first)
				continue
			}
			seenMailbox[addr] = line
			if err := checkPassword(addr, rec[3]); err != nil {
				bad(line, "mailbox %s: %v", addr, err)
				continue
			}
			row.mailbox, row.password = addr, rec[3]
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 && len(errs) == 0 {
		errs = append(errs, LineError{Line: 1, Err: errors.New("no lines to import")})
	}
	return rows, errs
}

// checkImport checks rows against the directory. Write lock held.
func (d *Directory) checkImport(rows []importRow) []LineError {
	var errs []LineError
	for _, row := range rows {
		if dom := d.st.domains[row.domain]; dom != nil && dom.Tenant != row.tenant {
			errs = append(errs, LineError{row.line, fmt.Errorf("domain %s is held by another tenant", row.domain)})
			continue
		}
		if row.mailbox != "" {
			if d.st.mailboxes[row.mailbox] != nil {
				errs = append(errs, LineError{row.line, fmt.Errorf("mailbox %s already exists", row.mailbox)})
			} else if d.st.aliases[row.mailbox] != nil {
				errs = append(errs, LineError{row.line, fmt.Errorf("%s already exists as an alias", row.mailbox)})
			}
		}
	}
	return errs
}

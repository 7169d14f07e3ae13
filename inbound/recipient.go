package inbound

import (
	"errors"

	"fairway/tenant"
)

// recipient is a checked RCPT: what its copies become.
type recipient struct {
	Addr   string // normalized
	Tenant string // the tenant hosting Addr's domain; "" for the report and complaint addresses
	Kind   recipientKind
	// Local are the mailboxes that get a copy: the recipient itself, or
	// the local targets of an alias.
	Local []target
	// Forward are an alias's external targets, relayed through the spool
	// under Tenant.
	Forward []string
}

type recipientKind int

const (
	kindMailbox recipientKind = iota
	kindAlias
	kindReport
	kindComplaint
)

// target is one local mailbox and its tenant.
type target struct{ Addr, Tenant string }

// resolveRecipient checks a RCPT address (relay tricks, hosted domain,
// mailbox or alias) and expands an alias. Errors are *relayError or
// errUnknownUser.
func (m *MX) resolveRecipient(raw string) (*recipient, error) {
	addr, dom, err := splitRecipient(raw)
	var relay *relayError
	if errors.As(err, &relay) {
		return nil, err
	}
	if err == nil {
		switch {
		case m.reportAddr != "" && addr == m.reportAddr:
			return &recipient{Addr: addr, Kind: kindReport}, nil
		case m.complaintAddr != "" && addr == m.complaintAddr:
			return &recipient{Addr: addr, Kind: kindComplaint}, nil
		}
	}
	owner, hosted := m.opts.Directory.DomainTenant(dom)
	if !hosted {
		return nil, &relayError{Addr: raw, Why: "domain not hosted"}
	}
	if err != nil {
		return nil, err // errUnknownUser: a local part no mailbox can have
	}
	if t, ok := m.opts.Directory.MailboxTenant(addr); ok {
		return &recipient{Addr: addr, Tenant: owner, Kind: kindMailbox, Local: []target{{addr, t}}}, nil
	}
	targets, ok := m.opts.Directory.AliasTargets(addr)
	if !ok {
		return nil, errUnknownUser
	}
	r := &recipient{Addr: addr, Tenant: owner, Kind: kindAlias}
	for _, raw := range targets {
		t, err := tenant.NormalizeAddress(raw)
		if err != nil {
			continue
		}
		if _, hosted := m.opts.Directory.DomainTenant(domainOf(t)); !hosted {
			r.Forward = append(r.Forward, t)
			continue
		}
		// Aliases expand one level, to mailboxes: a target that is not
		// (or no longer) a mailbox gets nothing.
		if mt, ok := m.opts.Directory.MailboxTenant(t); ok {
			r.Local = append(r.Local, target{t, mt})
		} else {
			m.log.Warn("alias target is not a mailbox", "alias", addr, "target", t, "tenant", owner)
		}
	}
	if len(r.Local) == 0 && len(r.Forward) == 0 {
		return nil, errUnknownUser
	}
	return r, nil
}

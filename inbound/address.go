package inbound

import (
	"strings"

	"fairway/tenant"
)

// Recipient addresses as go-smtp hands them over: it has already dropped a
// source route ("<@a,@b:user@c>" arrives as "user@c", RFC 5321 §4.1.1.3
// says to ignore it) and unquoted a quoted local part ("\"a@b\"@c" arrives
// as "a@b@c"). What is left must be a plain dot-atom local part and a host
// name: anything else that could make a later hop route the mail elsewhere
// ('%', '!', a second '@', an address literal, a trailing dot) is refused
// as a relay attempt, before the domain is even looked up.

// splitRecipient returns the normalized address and domain of a recipient,
// or a *relayError.
func splitRecipient(raw string) (addr, domain string, err error) {
	at := strings.LastIndexByte(raw, '@')
	if at <= 0 || at == len(raw)-1 {
		return "", "", &relayError{Addr: raw, Why: "not local@domain"}
	}
	local, dom := raw[:at], raw[at+1:]
	switch {
	case strings.ContainsAny(local, "@%!"):
		return "", "", &relayError{Addr: raw, Why: "routing characters in the local part"}
	case strings.HasSuffix(dom, "."):
		return "", "", &relayError{Addr: raw, Why: "trailing dot in the domain"}
	case strings.HasPrefix(dom, "["):
		return "", "", &relayError{Addr: raw, Why: "address literal"}
	}
	d, err := tenant.NormalizeDomain(dom)
	if err != nil {
		return "", "", &relayError{Addr: raw, Why: "not a host name"}
	}
	a, err := tenant.NormalizeAddress(local + "@" + d)
	if err != nil {
		// The domain is a host name but the local part is not a plain
		// dot-atom (quoted, spaces): no mailbox can have it.
		return "", d, errUnknownUser
	}
	return a, d, nil
}

// domainOf returns the part of an address after its last '@' ("" if none).
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return addr[at+1:]
}

// Package inbound is the MX server (port 25): mail from remote MTAs enters
// here. It accepts only recipients of hosted domains that exist in tenant
// (anything else is a relay attempt), evaluates SPF, DKIM and DMARC for every
// message, adds Authentication-Results, applies the tenant's quarantine
// rules, takes in DMARC aggregate reports for analysis, and hands each
// message to mailstore's delivery API (or, for an alias to an external
// address, to fairq through an interface that cmd wires). It does not store
// mail itself.
package inbound

// Package tenant is the directory that every server consults: tenants, their
// domains, mailboxes, aliases and credentials (argon2id), per-tenant policy
// (fair-queue weight, send limits, pool override, quarantine rules) and DKIM
// keys with their rotation state, persisted in Pebble. relay asks it who a
// submitting user is and what it may send as, inbound and mailstore ask it
// which domains and mailboxes exist; it knows nothing of SMTP.
package tenant

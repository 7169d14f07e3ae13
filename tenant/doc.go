// Package tenant is fairway's directory: tenants, their domains, mailboxes,
// aliases and credentials, per-tenant policy, and each domain's DKIM keys
// with their rotation state. Every server asks it the questions asked on
// each SMTP or IMAP command (is this domain hosted, which tenant owns it,
// does this mailbox exist, is this password right), from memory; admin
// changes are written to Pebble and take effect at once, without a restart.
// It knows nothing of SMTP.
//
// # Identity
//
// A user is always a full address. Addresses are stored normalized: the
// domain in lower case with IDNs as A-labels, the local part in lower case.
// A bare local part never authenticates and a lookup never falls through to
// another domain.
//
// # Storage
//
// Pebble in <data_dir>/directory, one key per object, JSON values:
//
//	t\x00<tenant>                 Tenant (name, policy)
//	d\x00<domain>                 Domain (owning tenant)
//	m\x00<address>                Mailbox (argon2id hash)
//	a\x00<address>                Alias (targets)
//	k\x00<domain>\x00<selector>   DKIM key metadata and state (dkim.go)
//	T\x00<token id>               admin API token (SHA-256 of the secret)
//
// Private DKIM keys are files <data_dir>/dkim/<domain>/<selector>.pem, mode
// 0600 in 0700 directories. Every change is one batch committed with Sync;
// removing a domain removes its mailboxes, aliases and key records in the
// same batch.
package tenant

package tenant

// Seam for the DKIM work (keys, rotation, DNS publication). The helper
// implementing DKIM replaces this file.

import (
	"context"
	"net"
	"time"
)

// Resolver is the DNS the directory needs: TXT lookups to see DKIM keys
// published and to check records, MX for `dns check`.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// RotationPolicy times DKIM key rotation.
type RotationPolicy struct {
	Interval     time.Duration // start a rotation this long after a key became active (default 90 days)
	PublishDelay time.Duration // a pending key activates this long after its TXT record was first seen (default 48 h)
	RetireDelay  time.Duration // a retiring key stays published this long before removal (default 48 h)
}

func (p RotationPolicy) withDefaults() RotationPolicy {
	if p.Interval <= 0 {
		p.Interval = 90 * 24 * time.Hour
	}
	if p.PublishDelay <= 0 {
		p.PublishDelay = 48 * time.Hour
	}
	if p.RetireDelay <= 0 {
		p.RetireDelay = 48 * time.Hour
	}
	return p
}

type dkimState struct{}

func (d *Directory) loadDKIM() error { d.dkim = &dkimState{}; return nil }

// dkimAddDomain stages a new domain's keys in tx. With deferRSA (bulk
// import) the RSA key is generated in the background after the commit.
func (d *Directory) dkimAddDomain(tx *txn, domain string, deferRSA bool) error { return nil }

// dkimRemoveDomain stages the removal of a domain's keys in tx.
func (d *Directory) dkimRemoveDomain(tx *txn, domain string) {}

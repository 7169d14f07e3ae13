package tenant

import (
	"fmt"
	"strings"
	"testing"
)

// populate fills a directory with tenants × mailboxes (one domain per
// tenant), written through ordinary transactions but sharing one password
// hash: these benchmarks measure lookups, not hashing.
func populate(b *testing.B, d *Directory, tenants, mailboxes int) {
	hash, err := hashPassword(goodPassword)
	if err != nil {
		b.Fatal(err)
	}
	for t := range tenants {
		err := d.update(func(tx *txn) error {
			name := fmt.Sprintf("t%04d", t)
			ten := &Tenant{Name: name, Policy: Policy{Weight: 1}}
			dom := &Domain{Name: name + ".example", Tenant: name}
			tx.set(pfxTenant+name, ten)
			tx.set(pfxDomain+dom.Name, dom)
			mbs := make([]*Mailbox, mailboxes)
			for m := range mailboxes {
				mbs[m] = &Mailbox{Address: fmt.Sprintf("user%04d@%s", m, dom.Name), Tenant: name, Hash: hash}
				tx.set(pfxMailbox+mbs[m].Address, mbs[m])
			}
			tx.afterCommit(func(st *state) {
				st.putTenant(ten)
				st.domains[dom.Name] = dom
				for _, m := range mbs {
					st.mailboxes[m.Address] = m
				}
			})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

var benchDir *Directory

// BenchmarkLookup: the per-command questions, with 1,000 tenants × 1,000
// mailboxes in the directory (ns/lookup).
func BenchmarkLookup(b *testing.B) {
	if benchDir == nil {
		d, err := Open(b.TempDir(), Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		populate(b, d, 1000, 1000)
		benchDir = d
		b.Cleanup(func() { d.Close(); benchDir = nil })
	}
	d := benchDir
	addrs := make([]string, 4096)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("user%04d@t%04d.example", (i*7919)%1000, (i*104729)%1000)
	}
	b.Run("DomainTenant", func(b *testing.B) {
		for i := range b.N {
			if _, ok := d.DomainTenant(addrs[i%len(addrs)][9:]); !ok {
				b.Fatal("missing domain")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
	})
	b.Run("MailboxTenant", func(b *testing.B) {
		for i := range b.N {
			if _, ok := d.MailboxTenant(addrs[i%len(addrs)]); !ok {
				b.Fatal("missing mailbox")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
	})
	b.Run("MaySendAs", func(b *testing.B) {
		for i := range b.N {
			a := addrs[i%len(addrs)]
			if !d.MaySendAs(Identity{Address: a, Tenant: a[9:14]}, a) {
				b.Fatal("own address refused")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
	})
	b.Run("Parallel/MailboxTenant", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				d.MailboxTenant(addrs[i%len(addrs)])
				i++
			}
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
	})
}

// BenchmarkAuthenticate against the cost of one argon2id verification alone,
// in the same run: authentication is bound by argon2id.
func BenchmarkAuthenticate(b *testing.B) {
	d, err := Open(b.TempDir(), Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	populate(b, d, 10, 100)
	hash, _ := hashPassword(goodPassword)
	b.Run("Argon2idVerify", func(b *testing.B) {
		for range b.N {
			if !verifyPassword(hash, goodPassword) {
				b.Fatal("verify failed")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/auth")
	})
	b.Run("Authenticate", func(b *testing.B) {
		for i := range b.N {
			if _, err := d.Authenticate(fmt.Sprintf("user%04d@t%04d.example", i%100, i%10), goodPassword); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/auth")
	})
	b.Run("AuthenticateUnknownUser", func(b *testing.B) {
		for range b.N {
			if _, err := d.Authenticate("nobody@t0001.example", goodPassword); err == nil {
				b.Fatal("unknown user authenticated")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/auth")
	})
}

// BenchmarkImport1000Domains onboards 1,000 domains of 50 tenants from one
// CSV into an empty directory (s/import). RSA keys are generated in the
// background after the commit, so the import itself stays in seconds.
func BenchmarkImport1000Domains(b *testing.B) {
	var csv strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&csv, "tenant%02d,client%04d.example\n", i%50, i)
	}
	for range b.N {
		b.StopTimer()
		d, err := Open(b.TempDir(), Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := d.Import(strings.NewReader(csv.String()))
		b.StopTimer()
		if err != nil || res.Domains != 1000 || res.Tenants != 50 {
			b.Fatalf("Import = %+v, %v", res, err)
		}
		d.Close()
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/import")
}

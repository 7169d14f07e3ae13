package tenant

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDKIMDeferredAdd stages 1,000 domains' keys in one transaction
// with the RSA keys deferred, as Import does, then waits for the
// background generation. It reports the staging time (what the import
// waits for) and the background rate.
func BenchmarkDKIMDeferredAdd(b *testing.B) {
	const n = 1000
	for range b.N {
		b.StopTimer()
		d, err := Open(b.TempDir(), Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		err = d.update(func(tx *txn) error {
			for i := range n {
				name := fmt.Sprintf("client%04d.example", i)
				dom := &Domain{Name: name, Tenant: "t"}
				if err := tx.set(pfxDomain+name, dom); err != nil {
					return err
				}
				tx.afterCommit(func(st *state) { st.domains[name] = dom })
				if err := d.dkimAddDomain(tx, name, true); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		staged := time.Since(start)
		d.dkim.gen.wait()
		total := time.Since(start)
		b.StopTimer()
		b.ReportMetric(staged.Seconds(), "s/stage")
		b.ReportMetric(float64(n)/(total-staged).Seconds(), "rsa-keys/s")
		for _, k := range d.dkim.domains["client0999.example"] {
			if k.State != KeyPending {
				b.Fatalf("key %s %s after background generation", k.Selector, k.State)
			}
		}
		d.closeDKIM()
		d.Close()
		b.StartTimer()
	}
}

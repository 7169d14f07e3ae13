package inbound

import (
	"log/slog"
	"strings"
	"testing"

	"fairway/tenant"
)

// BenchmarkMXDelivery is one MX transaction end to end over loopback: a
// DKIM-signed message passing SPF, DKIM and DMARC against the loopback DNS
// server, rules of its tenant, headers added, stored (fsynced) in the real
// mailstore. Run: go test -run XXX -bench MXDelivery ./inbound/
func BenchmarkMXDelivery(b *testing.B) {
	e := newEnv(b, envConfig{logLevel: slog.LevelWarn, options: func(o *MXOptions) { o.MaxConnsPerIP = 1000 }})
	e.policy("acme", func(p *tenant.Policy) {
		p.Quarantine = []tenant.QuarantineRule{{Check: "attachment", Value: "exe,js", Action: "reject"}, {Check: "spf", Result: "fail", Action: "quarantine"}}
	})
	msg := buildMessage(b, "news@good.example", "good.example", "", strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 60))
	c := e.dial()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		if err := send(c, "bounce@good.example", []string{alice}, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

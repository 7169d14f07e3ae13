package tenant

// The DNS records a hosted domain must publish (`fairway dns records`) and
// the check that they are published (`fairway dns check`).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// RecordParams is what the records depend on beyond the directory.
type RecordParams struct {
	// Hostname is the MX target: the server's host name.
	Hostname string
	// PoolIPs are the source addresses of every pool the tenant may send
	// from; SPF authorizes exactly these.
	PoolIPs []netip.Addr
	// ReportAddress receives DMARC aggregate reports (rua), e.g.
	// dmarc-reports@mx.example.net; empty for none.
	ReportAddress string
}

// RecordKind says what a record is for.
type RecordKind string

// Record kinds.
const (
	RecordMX        RecordKind = "mx"
	RecordSPF       RecordKind = "spf"
	RecordDKIM      RecordKind = "dkim"
	RecordDMARC     RecordKind = "dmarc"
	RecordDMARCAuth RecordKind = "dmarc-report-auth" // RFC 7489 §7.1, in the report address's zone
)

// maxTXTStringSize is the longest character-string of a TXT record (RFC 1035 §3.3).
const maxTXTStringSize = 255

// DNSRecord is one record to publish. Name is absolute (trailing dot).
type DNSRecord struct {
	Name  string     `json:"name"`
	Type  string     `json:"type"`
	Value string     `json:"value"`
	Kind  RecordKind `json:"kind"`
}

// ZoneLine renders the record as a zone-file line. TXT values are quoted
// and split into strings of at most 255 bytes.
func (r DNSRecord) ZoneLine() string {
	v := r.Value
	if r.Type == "TXT" {
		v = quoteTXT(v)
	}
	return r.Name + " IN " + r.Type + " " + v
}

// quoteTXT renders a TXT value as quoted character-strings of at most 255
// bytes each, separated by spaces.
func quoteTXT(s string) string {
	var b strings.Builder
	for first := true; first || s != ""; first = false {
		n := min(len(s), maxTXTStringSize)
		if !first {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for i := 0; i < n; i++ {
			if s[i] == '"' || s[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		}
		b.WriteByte('"')
		s = s[n:]
	}
	return b.String()
}

// DNSRecords returns the records the domain must publish: MX, SPF, the
// TXT record of every DKIM key that must be in DNS (pending, active,
// retiring), DMARC, and, when the report address is in another domain, the
// authorization record that domain must publish for it.
func (d *Directory) DNSRecords(domain string, p RecordParams) ([]DNSRecord, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	host, err := NormalizeDomain(p.Hostname)
	if err != nil {
		return nil, fmt.Errorf("dns records: the server hostname %q cannot be the MX target (set hostname in the config to this server's fully qualified name): %w", p.Hostname, err)
	}
	report := ""
	if p.ReportAddress != "" {
		if report, err = NormalizeAddress(p.ReportAddress); err != nil {
			return nil, fmt.Errorf("dns records: report address: %w", err)
		}
	}
	d.mu.RLock()
	_, ok := d.st.domains[domain]
	keys := d.dkim.domains[domain]
	d.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("dns records: domain %s: %w", domain, ErrNotFound)
	}

	name := domain + "."
	recs := []DNSRecord{
		{Name: name, Type: "MX", Value: "10 " + host + ".", Kind: RecordMX},
		{Name: name, Type: "TXT", Value: spfValue(host, p.PoolIPs), Kind: RecordSPF},
	}
	for _, k := range keys {
		if k.State.published() && k.TXT != "" {
			recs = append(recs, DNSRecord{Name: k.recordName(), Type: "TXT", Value: k.TXT, Kind: RecordDKIM})
		}
	}
	// p=none is the safe starting policy: receivers report but change
	// nothing, so a sender the operator forgot shows up in the reports
	// instead of losing mail. Tighten to quarantine/reject once they are clean.
	dmarc := "v=DMARC1; p=none"
	if report != "" {
		dmarc += "; rua=mailto:" + report
	}
	recs = append(recs, DNSRecord{Name: "_dmarc." + name, Type: "TXT", Value: dmarc, Kind: RecordDMARC})
	if report != "" {
		if rd := domainOf(report); rd != domain {
			recs = append(recs, DNSRecord{Name: domain + "._report._dmarc." + rd + ".", Type: "TXT",
				Value: "v=DMARC1", Kind: RecordDMARCAuth})
		}
	}
	return recs, nil
}

// spfValue authorizes the pool addresses, sorted, IPv4 first. With none
// (no pools configured) mail leaves from the server's own address, so the
// host name's addresses are authorized instead.
func spfValue(host string, ips []netip.Addr) string {
	addrs := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if ip.IsValid() {
			addrs = append(addrs, ip.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	terms := []string{"v=spf1"}
	for _, ip := range addrs {
		if ip.Is4() {
			terms = append(terms, "ip4:"+ip.String())
		} else {
			terms = append(terms, "ip6:"+ip.String())
		}
	}
	if len(addrs) == 0 {
		terms = append(terms, "a:"+host)
	}
	return strings.Join(append(terms, "-all"), " ")
}

// CheckStatus is the outcome of checking one record.
type CheckStatus string

// Check outcomes.
const (
	CheckOK        CheckStatus = "ok"
	CheckMissing   CheckStatus = "missing"
	CheckDifferent CheckStatus = "different"
	CheckError     CheckStatus = "error" // the lookup failed; try again
)

// RecordCheck is what DNS holds for one record to publish.
type RecordCheck struct {
	Record DNSRecord   `json:"record"`
	Status CheckStatus `json:"status"`
	Found  []string    `json:"found,omitempty"` // the relevant records found
	Detail string      `json:"detail,omitempty"`
}

// CheckDNS looks up each record DNSRecords lists, through the resolver,
// and says whether it is published as it should be.
func (d *Directory) CheckDNS(ctx context.Context, domain string, p RecordParams) ([]RecordCheck, error) {
	recs, err := d.DNSRecords(domain, p)
	if err != nil {
		return nil, err
	}
	out := make([]RecordCheck, 0, len(recs))
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dns check: %w", err)
		}
		out = append(out, d.checkRecord(ctx, rec))
	}
	return out, nil
}

func (d *Directory) checkRecord(ctx context.Context, rec DNSRecord) RecordCheck {
	c := RecordCheck{Record: rec}
	r := d.dkim.resolver
	fail := func(err error) RecordCheck {
		if errors.Is(err, ErrDNSNotFound) {
			c.Status, c.Detail = CheckMissing, "no "+rec.Type+" record at "+rec.Name
		} else {
			c.Status, c.Detail = CheckError, err.Error()
		}
		return c
	}
	if rec.Kind == RecordMX {
		mxs, err := r.LookupMX(ctx, rec.Name)
		if err != nil {
			return fail(err)
		}
		want := strings.TrimPrefix(rec.Value, "10 ")
		c.Status = CheckDifferent
		for _, mx := range mxs {
			c.Found = append(c.Found, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
			if strings.EqualFold(dnsName(mx.Host), dnsName(want)) {
				c.Status = CheckOK
			}
		}
		if c.Status != CheckOK {
			c.Detail = "no MX record points to " + want
		}
		return c
	}

	txts, err := r.LookupTXT(ctx, rec.Name)
	if err != nil {
		return fail(err)
	}
	// Only records of the same kind count: an SPF record shares its name
	// with verification tokens and the like.
	prefix := map[RecordKind]string{RecordSPF: "v=spf1", RecordDMARC: "v=DMARC1", RecordDMARCAuth: "v=DMARC1"}[rec.Kind]
	for _, t := range txts {
		if prefix == "" || hasTag(t, prefix) {
			c.Found = append(c.Found, t)
		}
	}
	if len(c.Found) == 0 {
		c.Status, c.Detail = CheckMissing, "no "+string(rec.Kind)+" record at "+rec.Name
		if len(txts) > 0 {
			c.Detail += " (only other TXT records)"
		}
		return c
	}
	if len(c.Found) > 1 && rec.Kind != RecordDMARCAuth {
		c.Status, c.Detail = CheckDifferent, fmt.Sprintf("%d records where there must be exactly one", len(c.Found))
		return c
	}
	c.Status, c.Detail = CheckOK, ""
	switch found := c.Found[0]; rec.Kind {
	case RecordSPF:
		// Terms the operator added (other senders) are theirs to keep;
		// every term we need must be there.
		have := strings.Fields(strings.ToLower(found))
		var missing []string
		for _, t := range strings.Fields(strings.ToLower(rec.Value)) {
			if !slices.Contains(have, t) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			c.Status, c.Detail = CheckDifferent, "missing "+strings.Join(missing, " ")
		}
	case RecordDKIM:
		want, _ := keyRecordP(rec.Value)
		if got, _ := keyRecordP(found); got != want {
			c.Status, c.Detail = CheckDifferent, "the published p= is not this key's public key"
		}
	case RecordDMARC:
		// The policy is the operator's to tighten; the reports must come to us.
		if rua := dmarcTag(rec.Value, "rua"); rua != "" && !containsFold(strings.Split(dmarcTag(found, "rua"), ","), rua) {
			c.Status, c.Detail = CheckDifferent, "rua does not include "+rua
		}
	}
	return c
}

func dnsName(s string) string { return strings.TrimSuffix(s, ".") }

// hasTag reports whether a TXT value starts with the version tag v
// (e.g. "v=spf1"), case-insensitively, as a whole term.
func hasTag(txt, v string) bool {
	txt = strings.TrimSpace(txt)
	if len(txt) < len(v) || !strings.EqualFold(txt[:len(v)], v) {
		return false
	}
	rest := txt[len(v):]
	return rest == "" || rest[0] == ' ' || rest[0] == ';' || rest[0] == '\t'
}

// dmarcTag returns the value of a tag of a DMARC record, or "".
func dmarcTag(txt, name string) string {
	for tag := range strings.SplitSeq(txt, ";") {
		k, v, ok := strings.Cut(tag, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(e string) bool {
		// A URI may carry a size limit: mailto:a@b!10m.
		e, _, _ = strings.Cut(strings.TrimSpace(e), "!")
		return strings.EqualFold(e, s)
	})
}

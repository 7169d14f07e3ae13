package inbound

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/mail"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"fairway/tenant"
)

// Sender authentication of every MX message, in order:
//
//  1. SPF (RFC 7208, blitiri.com.ar/go/spf) of the client address for the
//     MAIL FROM domain, or the HELO name for the null sender.
//  2. DKIM (RFC 6376, go-msgauth/dkim): every signature, at most
//     maxDKIMSignatures of them.
//  3. DMARC (RFC 7489): the From: domain's record (go-msgauth/dmarc), found
//     at the From: domain or else at its organizational domain (public
//     suffix list, x/net/publicsuffix; sp= applies there). It passes when
//     an SPF pass or a valid DKIM signature is aligned with the From:
//     domain: strict alignment needs the same domain, relaxed the same
//     organizational domain. pct is not sampled: a failing message gets
//     the policy every time.
//
// All DNS goes through the injected Resolver. The results become one
// Authentication-Results field (RFC 8601) and feed the quarantine rules.

// maxDKIMSignatures bounds the signatures verified per message (each costs
// a DNS lookup and an RSA verification).
const maxDKIMSignatures = 5

// authResults is what the checks found for one message.
type authResults struct {
	SPF       string // pass, fail, softfail, neutral, none, temperror, permerror
	SPFDomain string // the domain SPF checked (MAIL FROM's, or HELO's)
	DKIM      []dkimResult
	DMARC     string // pass, fail, none, temperror, permerror
	// FromDomain is the From: header's domain ("" if there is not exactly
	// one From: address).
	FromDomain string
	// Policy is the DMARC policy that applies to a failure (p= or sp=);
	// "" when DMARC did not fail.
	Policy dmarc.Policy
}

type dkimResult struct {
	Result string // pass, fail, neutral, temperror, permerror
	Domain string
	Reason string
}

// dkimPass reports whether any signature verified.
func (a *authResults) dkimPass() bool {
	for _, d := range a.DKIM {
		if d.Result == "pass" {
			return true
		}
	}
	return false
}

// dkimSummary is the single DKIM result the rules compare with: pass if
// any signature passed, else the first signature's result, else none.
func (a *authResults) dkimSummary() string {
	if len(a.DKIM) == 0 {
		return "none"
	}
	if a.dkimPass() {
		return "pass"
	}
	return a.DKIM[0].Result
}

// authChecker runs the checks against one resolver.
type authChecker struct {
	res Resolver
}

// check evaluates SPF, DKIM and DMARC for a message from ip.
func (c *authChecker) check(ctx context.Context, ip netip.Addr, helo, mailFrom string, msg []byte, fromHeader []string) *authResults {
	a := &authResults{}
	a.SPF, a.SPFDomain = c.checkSPF(ctx, ip, helo, mailFrom)
	a.DKIM = c.checkDKIM(ctx, msg)
	c.checkDMARC(ctx, a, fromHeader)
	return a
}

func (c *authChecker) checkSPF(ctx context.Context, ip netip.Addr, helo, mailFrom string) (result, domain string) {
	domain = domainOf(mailFrom)
	if mailFrom == "" || domain == "" {
		// RFC 7208 §2.4: the null sender is checked as postmaster@HELO.
		domain = helo
		mailFrom = "postmaster@" + helo
	}
	if !ip.IsValid() {
		return "permerror", domain
	}
	r, _ := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, mailFrom,
		spf.WithContext(ctx), spf.WithResolver(spfResolver{c.res}))
	return string(r), strings.ToLower(domain)
}

func (c *authChecker) checkDKIM(ctx context.Context, msg []byte) []dkimResult {
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return lookupTXT(ctx, c.res, name) },
		MaxVerifications: maxDKIMSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// An unreadable header: no signature can be checked.
		return nil
	}
	out := make([]dkimResult, 0, len(verifs))
	for _, v := range verifs {
		r := dkimResult{Result: "pass", Domain: strings.ToLower(v.Domain)}
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			r.Result, r.Reason = "temperror", v.Err.Error()
		case dkim.IsPermFail(v.Err):
			r.Result, r.Reason = "permerror", v.Err.Error()
		default:
			r.Result, r.Reason = "fail", v.Err.Error()
		}
		out = append(out, r)
	}
	return out
}

// checkDMARC fills a.DMARC, a.FromDomain and a.Policy.
func (c *authChecker) checkDMARC(ctx context.Context, a *authResults, fromHeader []string) {
	from, ok := singleFromDomain(fromHeader)
	if !ok {
		// RFC 7489 §6.6.1: without exactly one From: domain there is
		// nothing to evaluate against.
		a.DMARC = "permerror"
		return
	}
	a.FromDomain = from
	org := orgDomain(from)
	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return lookupTXT(ctx, c.res, name) }}
	rec, err := dmarc.LookupWithOptions(from, lookup)
	sub := false
	if errors.Is(err, dmarc.ErrNoPolicy) && org != from {
		rec, err = dmarc.LookupWithOptions(org, lookup)
		sub = true
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		a.DMARC = "none"
		return
	case dmarc.IsTempFail(err):
		a.DMARC = "temperror"
		return
	case err != nil:
		a.DMARC = "permerror"
		return
	}
	spfAligned := a.SPF == "pass" && aligned(a.SPFDomain, from, rec.SPFAlignment)
	dkimAligned, tempAligned := false, false
	for _, d := range a.DKIM {
		if !aligned(d.Domain, from, rec.DKIMAlignment) {
			continue
		}
		switch d.Result {
		case "pass":
			dkimAligned = true
		case "temperror":
			tempAligned = true
		}
	}
	if a.SPF == "temperror" && aligned(a.SPFDomain, from, rec.SPFAlignment) {
		tempAligned = true
	}
	switch {
	case spfAligned || dkimAligned:
		a.DMARC = "pass"
	case tempAligned:
		// An aligned identifier might have passed: no policy on a guess.
		a.DMARC = "temperror"
	default:
		a.DMARC = "fail"
		a.Policy = rec.Policy
		if sub && rec.SubdomainPolicy != "" {
			a.Policy = rec.SubdomainPolicy
		}
	}
}

// aligned reports whether an authenticated domain is aligned with the From:
// domain (RFC 7489 §3.1): strict, the same name; relaxed (the default), the
// same organizational domain.
func aligned(authDomain, fromDomain string, mode dmarc.AlignmentMode) bool {
	authDomain, fromDomain = strings.ToLower(authDomain), strings.ToLower(fromDomain)
	if authDomain == "" || fromDomain == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return authDomain == fromDomain
	}
	return orgDomain(authDomain) == orgDomain(fromDomain)
}

// orgDomain is a domain's organizational domain (RFC 7489 §3.2): the
// public suffix plus one label. A name that is itself a public suffix is
// its own.
func orgDomain(domain string) string {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// singleFromDomain returns the domain of the one From: address, if the
// message has exactly one From: field with exactly one address.
func singleFromDomain(fromHeader []string) (string, bool) {
	if len(fromHeader) != 1 {
		return "", false
	}
	list, err := mail.ParseAddressList(fromHeader[0])
	if err != nil || len(list) != 1 {
		return "", false
	}
	d := domainOf(list[0].Address)
	if nd, err := tenant.NormalizeDomain(d); err == nil {
		return nd, true
	}
	return "", false
}

// authResultsField is the Authentication-Results field (with its name and
// CRLF) that records a.
func authResultsField(hostname string, a *authResults, mailFrom, helo string) string {
	results := []authres.Result{&authres.SPFResult{Value: authres.ResultValue(a.SPF), From: mailFrom, Helo: heloIfNull(mailFrom, helo)}}
	if len(a.DKIM) == 0 {
		results = append(results, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, d := range a.DKIM {
		results = append(results, &authres.DKIMResult{Value: authres.ResultValue(d.Result), Domain: d.Domain})
	}
	results = append(results, &authres.DMARCResult{Value: authres.ResultValue(a.DMARC), From: a.FromDomain})
	return foldField("Authentication-Results: " + authres.Format(hostname, results))
}

func heloIfNull(mailFrom, helo string) string {
	if mailFrom == "" {
		return helo
	}
	return ""
}

// spfResolver adapts a Resolver to the SPF library, which tells "no such
// record" from a failed lookup only by *net.DNSError's flags.
type spfResolver struct{ r Resolver }

func (s spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return lookupTXT(ctx, s.r, name)
}

func (s spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := s.r.LookupMX(ctx, name)
	return mxs, netDNSError(name, err)
}

func (s spfResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	addrs, err := s.r.LookupNetIP(ctx, host)
	if err != nil {
		return nil, netDNSError(host, err)
	}
	out := make([]net.IPAddr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, net.IPAddr{IP: net.IP(a.Unmap().AsSlice())})
	}
	return out, nil
}

func (s spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	if p, ok := s.r.(ptrResolver); ok {
		names, err := p.LookupAddr(ctx, addr)
		return names, netDNSError(addr, err)
	}
	return nil, &net.DNSError{Err: "no PTR lookups", Name: addr, IsNotFound: true}
}

// lookupTXT asks for TXT records, with errors as the msgauth and SPF
// libraries read them.
func lookupTXT(ctx context.Context, r Resolver, name string) ([]string, error) {
	txts, err := r.LookupTXT(ctx, name)
	return txts, netDNSError(name, err)
}

// netDNSError turns a Resolver error into *net.DNSError: not found
// (tenant.ErrDNSNotFound) or else temporary.
func netDNSError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tenant.ErrDNSNotFound):
		return &net.DNSError{Err: "no such record", Name: name, IsNotFound: true}
	default:
		return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
}

package inbound

import (
	"context"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"

	"fairway/fairq"
	"fairway/mailstore"
	"fairway/tenant"
)

// Hand-off of an accepted message, MX and DeliverLocal alike:
//
//  1. Report and complaint mail goes to its sink (an error: 451 4.3.0).
//  2. An alias's external targets are enqueued in the spool under the
//     alias's tenant (an error: 451 4.3.0). The envelope sender is kept
//     (no SRS): SPF fails at the next hop, DKIM signatures survive.
//  3. Each local mailbox gets its copy, in INBOX or Quarantine, through
//     mailstore or the external LMTP server.
//  4. Copies that failed after others were stored are not lost: they are
//     enqueued in the spool under their tenant, marked as inbound retries
//     (Extra) with the folder already decided, and relay hands them back
//     through DeliverLocal on fairq's retry schedule, bouncing to the
//     sender on a permanent failure or expiry. If that enqueue fails the
//     client gets 451 4.3.0 and retries: a duplicate beats a loss. If
//     nothing was stored at all, the client gets the failure itself (a
//     temporary one if any, so that it retries).

// retryMarker starts the Extra of the spool messages inbound queues for
// its own retries; the folder follows.
const retryMarker = "fairway-inbound-retry\x00"

func retryExtra(folder string) []byte { return []byte(retryMarker + folder) }

// parseRetryExtra returns the folder of an inbound retry.
func parseRetryExtra(extra []byte) (string, bool) {
	folder, ok := strings.CutPrefix(string(extra), retryMarker)
	if !ok || (folder != mailstore.FolderInbox && folder != mailstore.FolderQuarantine) {
		return "", false
	}
	return folder, true
}

// lmtpFolderField marks a copy for the Quarantine folder when delivering
// over LMTP, which has no folder argument: the store's filter (a Sieve
// rule on the field) files it.
const lmtpFolderField = "X-Fairway-Folder: " + mailstore.FolderQuarantine + "\r\n"

// checkTimeout bounds SPF, DKIM and DMARC together (each DNS exchange has
// its own bound too); what has not answered by then is a temperror.
const checkTimeout = 30 * time.Second

// incoming is a message received on the MX port.
type incoming struct {
	id, from, helo string
	ip             netip.Addr
	tls            bool
	rcpts          []*recipient
	data           []byte
}

// plan is where a message's copies go.
type plan struct {
	local    []localCopy
	forwards []forwardCopy
	reports  bool
	arf      bool
	// rejected counts the copies the tenants' rules rejected; in a plan
	// that is not empty they are in local (to Quarantine) or withheld.
	rejected int
}

type localCopy struct{ Addr, Tenant, Folder string }

type forwardCopy struct {
	Tenant string
	Rcpts  []string
}

func (p *plan) empty() bool {
	return len(p.local) == 0 && len(p.forwards) == 0 && !p.reports && !p.arf
}

// outcome is what became of a message, for the event log line.
type outcome struct {
	auth     *authResults
	tenants  []string
	rules    []string // tenant=verdict(rule)
	inbox    int
	quarant  int
	forward  int
	deferred int
	withheld int
	queued   []string
}

func (o *outcome) logAttrs() []any {
	var attrs []any
	if len(o.tenants) > 0 {
		attrs = append(attrs, "tenant", strings.Join(o.tenants, ","))
	}
	if o.auth != nil {
		attrs = append(attrs, "spf", o.auth.SPF, "dkim", o.auth.dkimSummary(), "dmarc", o.auth.DMARC)
		if o.auth.FromDomain != "" {
			attrs = append(attrs, "from_domain", o.auth.FromDomain)
		}
	}
	if len(o.rules) > 0 {
		attrs = append(attrs, "rules", strings.Join(o.rules, ";"))
	}
	attrs = append(attrs, "inbox", o.inbox, "quarantine", o.quarant, "forwarded", o.forward, "deferred", o.deferred)
	if o.withheld > 0 {
		attrs = append(attrs, "withheld", o.withheld)
	}
	if len(o.queued) > 0 {
		attrs = append(attrs, "queue_ids", strings.Join(o.queued, ","))
	}
	return attrs
}

func (o *outcome) addTenant(t string) {
	if t != "" && !slices.Contains(o.tenants, t) {
		o.tenants = append(o.tenants, t)
	}
}

// receive checks a message received on the MX port and hands it on.
func (m *MX) receive(ctx context.Context, log *slog.Logger, in incoming) (*outcome, error) {
	fields, rest := splitHeader(in.data)
	fromHeader := fieldValues(fields, "From")
	checkCtx, cancel := context.WithTimeout(ctx, checkTimeout)
	auth := m.auth.check(checkCtx, in.ip, in.helo, in.from, in.data, fromHeader)
	cancel()
	m.countChecks(auth)
	out := &outcome{auth: auth}
	for _, r := range in.rcpts {
		out.addTenant(r.Tenant)
	}
	if auth.DMARC == "fail" && auth.Policy == dmarc.PolicyReject {
		return out, &dmarcRejectError{Domain: auth.FromDomain}
	}
	facts := newMessageFacts(in.data, auth, in.from, fromHeader)
	p := m.plan(in.rcpts, facts, out, map[string]bool{})
	if p.empty() {
		return out, errPolicyReject
	}
	forRcpt := ""
	if len(in.rcpts) == 1 {
		forRcpt = in.rcpts[0].Addr
	}
	// Authentication-Results on top, above our Received (RFC 8601 §5).
	added := authResultsField(m.opts.Hostname, auth, in.from, in.helo) +
		receivedField(traceInfo{Helo: in.helo, IP: in.ip, Hostname: m.opts.Hostname, TLS: in.tls,
			ID: in.id, For: forRcpt, Time: m.opts.Clock.Now()})
	body := rebuild(added, fields, rest, func(f headerField) bool { return ourAuthResults(f, m.opts.Hostname) })
	return out, m.execute(ctx, log, in.id, in.from, p, body, out)
}

func (m *MX) countChecks(a *authResults) {
	m.metrics.checks.WithLabelValues("spf", a.SPF).Inc()
	m.metrics.checks.WithLabelValues("dkim", a.dkimSummary()).Inc()
	m.metrics.checks.WithLabelValues("dmarc", a.DMARC).Inc()
}

// plan decides each copy's fate by its receiving tenant's verdict. Copies
// of tenants that reject go to Quarantine when some other copy is
// accepted (one SMTP reply serves all recipients), and are dropped when
// none is (the caller then refuses the message). An external forward a
// tenant rejects is withheld in the mixed case: nothing to quarantine it
// in, and relaying refused mail would cost the tenant's reputation.
//
// seen holds the mailboxes and forwards already planned (one copy each,
// however many recipients or aliases lead to them); plan adds to it.
func (m *MX) plan(rcpts []*recipient, facts *messageFacts, out *outcome, seen map[string]bool) *plan {
	verdicts := map[string]verdict{}
	verdictOf := func(t string) verdict {
		if v, ok := verdicts[t]; ok {
			return v
		}
		pol, _ := m.opts.Directory.TenantPolicy(t)
		v, rule := decide(pol.Quarantine, facts)
		verdicts[t] = v
		if rule != "" {
			out.rules = append(out.rules, t+"="+v.String()+"("+rule+")")
		}
		return v
	}
	p := &plan{}
	var rejectedLocal []localCopy
	var rejectedForwards int
	for _, r := range rcpts {
		switch r.Kind {
		case kindReport:
			p.reports = true
			continue
		case kindComplaint:
			p.arf = true
			continue
		}
		for _, t := range r.Local {
			if seen[t.Addr] {
				continue
			}
			seen[t.Addr] = true
			out.addTenant(t.Tenant)
			switch verdictOf(t.Tenant) {
			case verdictInbox:
				p.local = append(p.local, localCopy{t.Addr, t.Tenant, mailstore.FolderInbox})
			case verdictQuarantine:
				p.local = append(p.local, localCopy{t.Addr, t.Tenant, mailstore.FolderQuarantine})
			case verdictReject:
				rejectedLocal = append(rejectedLocal, localCopy{t.Addr, t.Tenant, mailstore.FolderQuarantine})
			}
		}
		var fwd []string
		for _, f := range r.Forward {
			if !seen[r.Tenant+"\x00"+f] {
				seen[r.Tenant+"\x00"+f] = true
				fwd = append(fwd, f)
			}
		}
		if len(fwd) == 0 {
			continue
		}
		if verdictOf(r.Tenant) == verdictReject {
			rejectedForwards += len(fwd)
			m.metrics.deliveries.WithLabelValues(r.Tenant, "withheld").Add(float64(len(fwd)))
			continue
		}
		i := slices.IndexFunc(p.forwards, func(f forwardCopy) bool { return f.Tenant == r.Tenant })
		if i < 0 {
			p.forwards = append(p.forwards, forwardCopy{Tenant: r.Tenant})
			i = len(p.forwards) - 1
		}
		p.forwards[i].Rcpts = append(p.forwards[i].Rcpts, fwd...)
	}
	p.rejected = len(rejectedLocal) + rejectedForwards
	if !p.empty() {
		p.local = append(p.local, rejectedLocal...)
		out.withheld = rejectedForwards
	}
	return p
}

// execute hands on a planned message (steps 1 to 4 above).
func (m *MX) execute(ctx context.Context, log *slog.Logger, msgid, from string, p *plan, body []byte, out *outcome) error {
	stored := false
	if p.reports {
		if err := m.opts.Reports.Ingest(ctx, body); err != nil {
			return fmt.Errorf("%w: %w", errSink, err)
		}
		stored = true
	}
	if p.arf {
		if err := m.opts.Complaints.IngestARF(ctx, body); err != nil {
			return fmt.Errorf("%w: %w", errSink, err)
		}
		stored = true
	}
	for _, f := range p.forwards {
		id, err := m.opts.Spool.Enqueue(ctx, &fairq.Message{Tenant: f.Tenant, From: from, Recipients: f.Rcpts, Body: body})
		if err != nil {
			return fmt.Errorf("%w: forward for tenant %s: %w", errQueue, f.Tenant, err)
		}
		stored = true
		out.forward += len(f.Rcpts)
		out.queued = append(out.queued, id.String())
		m.metrics.deliveries.WithLabelValues(f.Tenant, "forwarded").Add(float64(len(f.Rcpts)))
	}
	errs := m.storeCopies(ctx, from, p.local, body)
	var failed []localCopy
	var firstTemp, firstErr error
	for i, c := range p.local {
		if errs[i] == nil {
			stored = true
			if c.Folder == mailstore.FolderQuarantine {
				out.quarant++
				m.metrics.deliveries.WithLabelValues(c.Tenant, "quarantine").Inc()
			} else {
				out.inbox++
				m.metrics.deliveries.WithLabelValues(c.Tenant, "inbox").Inc()
			}
			continue
		}
		log.Info("copy not stored", "msgid", msgid, "tenant", c.Tenant, "recipient", c.Addr, "folder", c.Folder, "error", errs[i].Error())
		failed = append(failed, c)
		if firstErr == nil {
			firstErr = errs[i]
		}
		if firstTemp == nil && isTemporary(errs[i]) {
			firstTemp = errs[i]
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if !stored {
		for _, c := range failed {
			m.metrics.deliveries.WithLabelValues(c.Tenant, "failed").Inc()
		}
		if firstTemp != nil {
			return firstTemp
		}
		return firstErr
	}
	// Some copies are stored: the rest wait in the spool, by tenant and
	// folder.
	type group struct{ tenant, folder string }
	groups := map[group][]string{}
	var order []group
	for _, c := range failed {
		g := group{c.Tenant, c.Folder}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], c.Addr)
	}
	for _, g := range order {
		id, err := m.opts.Spool.Enqueue(ctx, &fairq.Message{Tenant: g.tenant, From: from, Recipients: groups[g],
			Body: body, Extra: retryExtra(g.folder)})
		if err != nil {
			return fmt.Errorf("%w: retry for tenant %s: %w", errQueue, g.tenant, err)
		}
		out.deferred += len(groups[g])
		out.queued = append(out.queued, id.String())
		m.metrics.deliveries.WithLabelValues(g.tenant, "deferred").Add(float64(len(groups[g])))
	}
	return nil
}

// storeCopies stores each copy through mailstore or LMTP; one error (or
// nil) per copy.
func (m *MX) storeCopies(ctx context.Context, from string, copies []localCopy, body []byte) []error {
	errs := make([]error, len(copies))
	if m.opts.LMTP == "" {
		for i, c := range copies {
			if err := m.opts.Store.Deliver(ctx, c.Addr, c.Folder, body); err != nil {
				errs[i] = fmt.Errorf("store %s/%s: %w", c.Addr, c.Folder, err)
			}
		}
		return errs
	}
	for _, folder := range []string{mailstore.FolderInbox, mailstore.FolderQuarantine} {
		var idx []int
		var addrs []string
		for i, c := range copies {
			if c.Folder == folder {
				idx = append(idx, i)
				addrs = append(addrs, c.Addr)
			}
		}
		if len(idx) == 0 {
			continue
		}
		b := body
		if folder == mailstore.FolderQuarantine {
			b = append([]byte(lmtpFolderField), body...)
		}
		for j, err := range m.lmtpDeliver(ctx, from, addrs, b) {
			errs[idx[j]] = err
		}
	}
	return errs
}

// DeliverLocal is the entry point relay's delivery workers use for
// recipients in hosted domains: mail one of our users submitted to another
// hosted domain, or a retry inbound itself queued. The same recipient
// checks, alias expansion and receiving-tenant rules as the MX path,
// minus SPF, DKIM and DMARC: the sender authenticated on submission, which
// Authentication-Results records as auth=pass; the spf, dkim, dmarc and
// noauth rules do not fire, attachment, size and sender rules do. extra is
// fairq.Record.Extra: an inbound retry (retryExtra) is stored in its
// decided folder without being checked again.
//
// One result per recipient, in order: nil = delivered (or durably queued
// for a retry), else *smtp.SMTPError whose code class says temporary (4xx)
// or permanent (5xx).
func (m *MX) DeliverLocal(ctx context.Context, from string, recipients []string, body []byte, extra []byte) []error {
	results := make([]error, len(recipients))
	msgid := fmt.Sprintf("%016x", mathrand.Uint64())
	log := m.log.With("msgid", msgid, "path", "local")
	if folder, ok := parseRetryExtra(extra); ok {
		for i, rc := range recipients {
			results[i] = m.deliverRetry(ctx, log, from, rc, folder, body)
		}
		return results
	}
	fields, rest := splitHeader(body)
	fromHeader := fieldValues(fields, "From")
	facts := newMessageFacts(body, nil, from, fromHeader)
	added := foldField("Authentication-Results: " + authres.Format(m.opts.Hostname,
		[]authres.Result{&authres.AuthResult{Value: authres.ResultPass, Auth: from}}))
	withAR := rebuild(added, fields, rest, func(f headerField) bool { return ourAuthResults(f, m.opts.Hostname) })
	seen := map[string]bool{} // one copy per mailbox for the whole call
	for i, rc := range recipients {
		out := &outcome{}
		err := func() error {
			r, err := m.resolveRecipient(rc)
			if err != nil {
				return err
			}
			out.addTenant(r.Tenant)
			p := m.plan([]*recipient{r}, facts, out, seen)
			switch {
			case p.empty() && p.rejected > 0:
				return errPolicyReject
			case p.empty():
				return nil // every copy already planned for an earlier recipient
			}
			return m.execute(ctx, log, msgid, from, p, withAR, out)
		}()
		attrs := append([]any{"from", echoSafe(from), "recipient", echoSafe(rc)}, out.logAttrs()...)
		if err != nil {
			r, reason := mxReply(err)
			results[i] = r
			log.Info("local delivery refused", append(attrs, "reason", reason, "reply", replyCode(r), "error", err.Error())...)
			continue
		}
		log.Info("local delivery", attrs...)
	}
	return results
}

// deliverRetry stores one recipient of an inbound retry.
func (m *MX) deliverRetry(ctx context.Context, log *slog.Logger, from, rcpt, folder string, body []byte) error {
	addr, err := tenant.NormalizeAddress(rcpt)
	if err != nil {
		err = errUnknownUser
	}
	var t string
	if err == nil {
		var ok bool
		if t, ok = m.opts.Directory.MailboxTenant(addr); !ok {
			err = mailstore.ErrNoMailbox
		}
	}
	if err == nil {
		err = m.storeCopies(ctx, from, []localCopy{{addr, t, folder}}, body)[0]
	}
	if err != nil {
		r, reason := mxReply(err)
		log.Info("retry not stored", "tenant", t, "recipient", echoSafe(rcpt), "folder", folder, "reason", reason, "reply", replyCode(r), "error", err.Error())
		return r
	}
	result := "inbox"
	if folder == mailstore.FolderQuarantine {
		result = "quarantine"
	}
	m.metrics.deliveries.WithLabelValues(t, result).Inc()
	log.Info("retry stored", "tenant", t, "recipient", addr, "folder", folder)
	return nil
}

// Package reputation turns delivery results into pool assignments, so that
// one tenant's bad mail damages only its own standing and IPs.
//
// Data flow:
//
//  1. relay's delivery workers call Record after every transaction with the
//     tenant, the source IP, the destination site and the outcome
//     (OutcomeOf maps the reply: delivered, hard bounce, 5.7.x policy
//     rejection, deferral). Record only counts, in memory: bucketed
//     counters (5-minute buckets for the hour, hourly for the day and the
//     week) per tenant, per source IP, and per (source IP, site) with the
//     least recently used sites dropped past a cap. It also reads a
//     deferral's reply (Classify): a 4xx saying "rate limited" or "blocked"
//     halves that (IP, site) pair's rate and backs it off with jitter;
//     deliveries restore the rate step by step. Other IPs and sites are
//     untouched, and a 5xx rejection only counts against the tenant, so
//     one tenant's rejected mail does not slow the others' on a shared IP.
//  2. inbound hands feedback reports (ARF, RFC 5965; JMRP-shaped reports
//     too) to IngestARF, which attributes each to the tenant of the
//     original message (DKIM d=, From:, Return-Path) and counts a
//     complaint.
//  3. cmd calls Tick every minute or so: each tenant's windows go through
//     the pure tier function (nextTier: demotion on the hour or the day
//     over a tier's limits, promotion one step after a clean day with
//     volume; trusted after a clean week), with hysteresis between
//     demotion and Clean limits. A tier change is logged with its reason
//     and figures and passed to Options.OnChange, so cmd moves the tenant's
//     queue to its new pool (fairq relanes queued mail: the next dispatch
//     leaves from the new pool). A tenant sending 10× its baseline within
//     the hour (spike), or falling to the suspended tier, is held: the
//     directory suspends it (451 at submission, queue held, nothing lost)
//     until an operator resumes it, which Tick notices (or cmd calls
//     Release).
//  4. relay asks TenantPool (fixed policy pool, else the tier's pool) and,
//     before each transaction, PickSource(pool, site): round-robin over the
//     pool's sources, skipping those backing off from the site, over their
//     rate, at their warm-up cap for the day (traffic spills to the
//     others), or listed on a DNSBL.
//  5. cmd calls CheckBlocklists on a schedule: each source IP is looked up
//     in each DNSBL zone through the resolver; a 127.0.0.x answer lists
//     it (with the TXT reason) until a later check finds NXDOMAIN.
//  6. Report feeds `fairway reputation show [TENANT] [--json]`.
//
// It never sends mail. Memory is fixed per tracked thing: about 6 KB per
// tenant (180 buckets), 6 KB per source address and 1 KB per (source,
// site), with the counts of tenants, sources and sites per source capped
// (Options.MaxTenants, MaxSources, MaxSitesPerSource).
//
// On-disk layout: a Pebble store (cmd passes <data_dir>/reputation),
// written by Tick (only what changed, one batch) and by Close (fsynced):
//
//	v            "1", the layout version
//	t/<tenant>   JSON: tier, tier since, first/last seen, hold, the last
//	             tier changes, and the non-empty buckets of its rings as
//	             [slot, delivered, hard bounce, policy, deferral, complaint]
//	s/<ip>       JSON: the source's buckets, its blocklist listings, and per
//	             site its buckets, feedback backoff and rate, and today's
//	             warm-up count
//
// Counts since the last Tick are lost in a crash; the scores are
// statistics, not mail.
package reputation

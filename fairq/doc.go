// Package fairq is the durable, tenant-fair outbound queue at the center of
// fairway. Submission (relay) and inbound alias forwarding hand it messages;
// relay's delivery workers take work from it and report results back. It never
// speaks SMTP and never reads message bodies beyond storing and returning them.
//
// # Data flow
//
//  1. Enqueue stores the body once and one delivery record per destination
//     domain in a single Pebble batch committed with Sync. Concurrent Enqueue
//     calls share WAL fsyncs: Pebble's commit pipeline folds every batch that is
//     waiting into the next sync (group commit), so 64 producers cost about as
//     many fsyncs as one.
//  2. Deliveries that are due wait in a FIFO per (tenant, destination domain).
//     Deliveries waiting for a retry wait in one min-heap keyed by due time.
//  3. Next picks a tenant by weighted fair queueing (stride scheduling over a
//     heap of tenants that have dispatchable work: O(log tenants)), then one of
//     that tenant's destination queues round-robin, then the oldest delivery of
//     that queue (O(1)). A destination whose lane (source pool, destination
//     site) is in backoff or at its concurrency limit is parked on the lane and
//     leaves the tenant's ring; it comes back when the lane frees a slot or its
//     backoff ends. A freed slot goes to the parked tenant with the lowest
//     pass on that lane (stride scheduling again, O(log tenants)), so a
//     receiver's slots are shared by weight too. Nothing waits on a blocked
//     lane, so one tenant's backlog or one receiver's 4xx wall never delays
//     another tenant.
//  4. Before a lease is returned its attempt is recorded (attempts+1 and the
//     next retry time written to the record), so a crash during delivery never
//     turns into an immediate retry loop.
//  5. The worker reports per-recipient results: delivered recipients are
//     removed, temporary failures are retried on an exponential, jittered,
//     capped schedule (RetryDelay), and permanent failures or deliveries older
//     than the maximum age (default 5 days) go to the Bounce callback. The body
//     is deleted with the last delivery of its message.
//  6. Open rebuilds the in-memory index from the delivery records alone; bodies
//     are never read at recovery. Every delivery not removed is scheduled again
//     (at-least-once).
//
// # Storage
//
// Pebble v2 (github.com/cockroachdb/pebble/v2) in its own directory: v2 is the
// maintained line (v1 only receives critical fixes), and the queue needs nothing
// from v1's older on-disk formats. Keys:
//
//	v                          schema version ("fairq/1")
//	n                          highest message ID issued, saved at Close
//	b <msgid:8>                message body
//	d <msgid:8> <index:2>      delivery record (record.go): tenant, sender,
//	                           domain, recipients, attempts, next attempt,
//	                           last error, relay's opaque envelope data
//	h <tenant>                 tenant hold clock (hold.go)
//	x <original key>           quarantined entry that could not be decoded
//
// Message IDs are 64-bit, increasing, and start from the clock in microseconds,
// so an ID also dates its message. Enqueue commits with Sync; attempt marks,
// deferrals and removals commit without Sync, because losing one in a crash only
// repeats a delivery, it never loses one.
//
// # Holds
//
// A held tenant (suspension) keeps its deliveries durable; they are neither
// dispatched nor aged while held. Each tenant has a hold clock H(t), the total
// time it has spent held; a delivery's age is its wall-clock age minus the time
// its tenant was held since it was created, so release rewrites nothing.
package fairq

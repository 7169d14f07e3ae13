// Package relay is the outbound path on both sides of the queue. On the way
// in it runs the submission server (587 STARTTLS, 465 implicit TLS):
// authenticates the user by full address through tenant, checks sender
// ownership and the per-mailbox and per-account rate limits, DKIM-signs the
// message and enqueues it in fairq. On the way out its delivery workers take
// the deliveries fairq dispatches, resolve MX (or a static route), bind a
// source IP from the tenant's pool, deliver with connection reuse and
// STARTTLS, report the result back to fairq (ack, defer or bounce) and to
// reputation, and send DSN bounces. Which tenant goes next is fairq's
// decision, never relay's.
package relay

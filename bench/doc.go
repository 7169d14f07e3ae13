// Package bench is the load benchmark suite, standing outside the data flow
// and measuring it over SMTP only: a load generator that submits many
// tenants' mail, a recording SMTP sink that plays the remote MXes, the
// scenarios of fairway's three problems (reputation collapse, queue
// back-pressure, authentication cross-talk) and their reports. It can aim
// the same load at any SMTP relay, Postfix for instance, for side-by-side
// figures, so it never imports server internals for its measurements.
//
// A run, in order:
//
//  1. Sinks (StartSink) listen on 127.0.0.1, one per destination, each
//     answering at once, slowly (Behavior.Delay), or with chosen codes for
//     every MAIL (Behavior.MailCode, e.g. a 421 wall) or for recipient
//     domains (Behavior.RcptCodes). They share one Recorder that keeps each
//     arrival's stamp, time, sink and source IP.
//  2. A target starts relaying to them: a fairway binary driven from outside
//     (FairwayFactory: a config with one [[route]] per destination, `fairway
//     serve`, tenants, domains and mailboxes added with the admin CLI), a
//     private Postfix instance (PostfixFactory and postfix.sh, routes as
//     relayhost and transport_maps), or any relay (ExternalFactory).
//  3. The generator (Generate) submits each tenant's mail over its own
//     connections, closed loop or at a rate, STARTTLS and AUTH where the
//     target has tenants; every message carries a StampHeader with its
//     unique id, tenant and submit time, and every reply is kept.
//  4. The scenario waits, bounded, for the accepted messages to arrive and
//     turns submissions and arrivals into a Report: a table on stdout and
//     <out>/<scenario>-<target>.json (the only files the suite writes
//     besides its temp dirs, which it removes).
//
// Latency is submit 250 -> first arrival at a sink, both read from this
// process's clock. Target CPU and peak RSS come from /proc (utime+stime,
// VmHWM). With no DNS server the fairway target's DKIM keys stay pending,
// so it sends unsigned; every fairway report says so.
package bench

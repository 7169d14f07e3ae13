// Package bench is the load benchmark suite, standing outside the data flow
// and measuring it over SMTP only: a load generator that submits many
// tenants' mail, a recording SMTP sink that plays the remote MXes, the
// scenarios of fairway's three problems (reputation collapse, queue
// back-pressure, authentication cross-talk) and their reports. It can aim
// the same load at any SMTP relay, Postfix for instance, for side-by-side
// figures, so it never imports server internals for its measurements.
package bench

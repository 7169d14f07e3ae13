// Package reputation turns delivery results into pool assignments. It keeps
// per-tenant and per-source-IP statistics (bounces, deferrals, complaints,
// volume) over sliding windows, fed by relay's delivery results and by ARF
// complaint intake; from them it derives each tenant's tier, with
// hysteresis, and the IP pool that tier sends from, caps new IPs during
// warm-up and detects volume spikes. relay asks it for a tenant's pool when
// it dials; it never sends mail itself.
package reputation

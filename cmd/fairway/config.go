package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"fairway/reputation"
	"fairway/tenant"
)

// Config is the daemon's configuration, read from a TOML file by loadConfig.
// The comment on each field documents its key; a key not listed here is an
// error. A key that is absent keeps its default (see defaultConfig); for a
// listener, an explicit "" disables it. fairway.example.toml beside this file
// shows every key and is checked against this struct by the tests.
type Config struct {
	// Hostname is the server's own name: the SMTP banner and EHLO name, and
	// the reporting MTA in DSNs. Default: the operating system's host name,
	// or "localhost" if that is not a valid domain name.
	Hostname string `toml:"hostname"`

	// DataDir holds everything fairway stores: the queue in <data_dir>/queue,
	// the mail in <data_dir>/mail, the admin socket and the generated
	// certificate. A relative path is relative to the working directory. It
	// is created with mode 0700 if missing. Default "./data".
	DataDir string `toml:"data_dir"`

	// Listen is the [listen] table: the address of each server.
	Listen ListenConfig `toml:"listen"`

	// TLS is the [tls] table: the certificate for all TLS listeners.
	TLS TLSConfig `toml:"tls"`

	// DNS is the [dns] table: how MX, TXT and address lookups are made.
	DNS DNSConfig `toml:"dns"`

	// Routes are the [[route]] entries: static next hops for outbound mail,
	// checked before any MX lookup (like Postfix's transport_maps). Default:
	// none.
	Routes []RouteConfig `toml:"route"`

	// Pools are the [[pool]] entries: named sets of outbound source IPs that
	// tenants are assigned to. Default: none (the system picks the source).
	Pools []PoolConfig `toml:"pool"`
	// DKIM is the [dkim] table: when keys rotate and how often DNS is
	// checked for their records.
	DKIM DKIMConfig `toml:"dkim"`
	// Inbound is the [inbound] table: the MX's limits, its special
	// addresses, and an optional external LMTP store.
	Inbound InboundConfig `toml:"inbound"`
	// IMAP is the [imap] table: connection caps.
	IMAP IMAPConfig `toml:"imap"`
	// Reputation is the [reputation] table: which pool each tier sends
	// from, blocklists, and how often scores are evaluated.
	Reputation ReputationConfig `toml:"reputation"`
}

// ReputationConfig tunes package reputation.
type ReputationConfig struct {
	// TierPools maps a tier (trusted, standard, probation, quarantine,
	// suspended) to the [[pool]] its tenants send from. A tier not listed
	// sends from the default pool (the first [[pool]]). Default: none, so
	// containment needs at least quarantine = "<a pool of its own>".
	TierPools map[string]string `toml:"tier_pools"`
	// DNSBL are the blocklist zones every source address is checked
	// against, e.g. ["zen.spamhaus.org"]. Default: none.
	DNSBL []string `toml:"dnsbl"`
	// CheckInterval is how often tiers, spikes and holds are evaluated
	// (default "1m"); DNSBLInterval how often the blocklists are asked
	// (default "15m").
	CheckInterval Duration `toml:"check_interval"`
	DNSBLInterval Duration `toml:"dnsbl_interval"`
}

// InboundConfig tunes the MX (package inbound).
type InboundConfig struct {
	// LMTP, if set, delivers accepted mail to an external LMTP server (a
	// Dovecot that stays the store) instead of fairway's mailstore:
	// "unix:/path/to/socket" or "host:port". Default "".
	LMTP string `toml:"lmtp"`
	// MaxMessageBytes is the largest message accepted. Default 26214400
	// (25 MiB).
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// MaxRecipients is the most recipients per message. Default 100.
	MaxRecipients int `toml:"max_recipients"`
	// MaxConnectionsPerIP caps concurrent connections from one client
	// address. Default 20.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// DMARCReportAddress receives DMARC aggregate reports for every hosted
	// domain; `fairway dns records` prints it as the rua. Default
	// "dmarc-reports@<hostname>".
	DMARCReportAddress string `toml:"dmarc_report_address"`
	// ComplaintAddress receives ARF feedback-loop reports from receivers
	// (register it with their FBL programs). Default
	// "fbl@<hostname>".
	ComplaintAddress string `toml:"complaint_address"`
}

// IMAPConfig caps IMAP connections; a tenant's policy may set its own.
type IMAPConfig struct {
	// TenantConnections caps one tenant's concurrent connections (all its
	// users together). Default 200.
	TenantConnections int `toml:"tenant_connections"`
	// UserConnections caps one user's concurrent connections. Default 20.
	UserConnections int `toml:"user_connections"`
}

// DKIMConfig times DKIM key rotation. Durations are Go duration strings
// ("48h", "90m").
type DKIMConfig struct {
	// PublishDelay is how long a new key's TXT record must have been seen in
	// DNS before the key signs (caches must hold it). Default "48h".
	PublishDelay Duration `toml:"publish_delay"`
	// RetireDelay is how long a replaced key stays published, so mail signed
	// just before the switch still verifies. Default "48h".
	RetireDelay Duration `toml:"retire_delay"`
	// RotationInterval is how long a key signs before a rotation starts by
	// itself. Default "2160h" (90 days).
	RotationInterval Duration `toml:"rotation_interval"`
	// CheckInterval is how often DNS is checked for pending keys and
	// rotation states advance. Default "1m".
	CheckInterval Duration `toml:"check_interval"`
}

// Duration is a time.Duration read from a TOML string like "48h".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (like \"48h\" or \"90m\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration back in Go's form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ListenConfig holds one "host:port" per listener. The host is an IP
// address, a name, or empty for every address; port 0 picks a free port.
// An explicit "" disables the listener.
type ListenConfig struct {
	// MX is the inbound MX server (port 25 in production). Default
	// "127.0.0.1:2525".
	MX string `toml:"mx"`

	// Submission is message submission with STARTTLS, AUTH required (587 in
	// production). Default "127.0.0.1:5870".
	Submission string `toml:"submission"`

	// Submissions is message submission over implicit TLS, AUTH required
	// (465 in production). Default "127.0.0.1:4650".
	Submissions string `toml:"submissions"`

	// IMAP is IMAP with STARTTLS (143 in production). Default
	// "127.0.0.1:1430".
	IMAP string `toml:"imap"`

	// IMAPS is IMAP over implicit TLS (993 in production). Default
	// "127.0.0.1:9930".
	IMAPS string `toml:"imaps"`

	// Admin is the HTTP admin API and Prometheus /metrics. Default
	// "127.0.0.1:8025".
	Admin string `toml:"admin"`
}

// TLSConfig names the certificate served on every TLS listener.
type TLSConfig struct {
	// Cert is the path of the PEM certificate chain. Set together with Key;
	// both empty (the default) means a self-signed certificate generated in
	// data_dir.
	Cert string `toml:"cert"`

	// Key is the path of the PEM private key for Cert.
	Key string `toml:"key"`
}

// DNSConfig chooses the DNS resolver.
type DNSConfig struct {
	// Resolver is the "ip:port" of a DNS server to ask. Default "": the
	// system resolver.
	Resolver string `toml:"resolver"`
}

// RouteConfig is one static next hop.
type RouteConfig struct {
	// Domain is the recipient domain the route applies to: "*" for every
	// domain, "example.com" for that domain only, ".example.com" for its
	// subdomains (not example.com itself). Matched case-insensitively.
	Domain string `toml:"domain"`

	// To is the "host:port" mail for Domain is delivered to instead of the
	// domain's MX.
	To string `toml:"to"`
}

// PoolConfig is one named outbound IP pool.
type PoolConfig struct {
	// Name identifies the pool in tenant policy and reputation tiers; unique
	// and non-empty.
	Name string `toml:"name"`

	// Sources are the pool's source addresses, at least one.
	Sources []SourceConfig `toml:"sources"`
}

// SourceConfig is one outbound source address of a pool.
type SourceConfig struct {
	// IP is the local address bound when dialing a remote MX; it must be
	// configured on this host.
	IP string `toml:"ip"`

	// EHLO is the name announced when sending from IP; it should match the
	// IP's reverse DNS. Default "": hostname.
	EHLO string `toml:"ehlo"`

	// WarmupStart, for a new address, is the day ("2026-11-25") its
	// warm-up began: it then sends at most WarmupDay1 messages per site on
	// the first day, doubling daily for WarmupDays days (defaults 50 and
	// 14), and the rest of its pool takes what it may not. Default "": an
	// established address.
	WarmupStart string `toml:"warmup_start"`
	WarmupDay1  int    `toml:"warmup_day1"`
	WarmupDays  int    `toml:"warmup_days"`
}

// defaultConfig returns the configuration used when no file is given, and
// the values a file's absent keys keep.
func defaultConfig() Config {
	return Config{
		Hostname: defaultHostname(),
		DataDir:  "./data",
		Listen: ListenConfig{
			MX:          "127.0.0.1:2525",
			Submission:  "127.0.0.1:5870",
			Submissions: "127.0.0.1:4650",
			IMAP:        "127.0.0.1:1430",
			IMAPS:       "127.0.0.1:9930",
			Admin:       "127.0.0.1:8025",
		},
		Inbound: InboundConfig{
			MaxMessageBytes:     25 << 20,
			MaxRecipients:       100,
			MaxConnectionsPerIP: 20,
		},
		IMAP:       IMAPConfig{TenantConnections: 200, UserConnections: 20},
		Reputation: ReputationConfig{CheckInterval: Duration(time.Minute), DNSBLInterval: Duration(15 * time.Minute)},
		DKIM: DKIMConfig{
			PublishDelay:     Duration(48 * time.Hour),
			RetireDelay:      Duration(48 * time.Hour),
			RotationInterval: Duration(90 * 24 * time.Hour),
			CheckInterval:    Duration(time.Minute),
		},
	}
}

// defaultHostname is the operating system's host name when it is usable as a
// domain name, else "localhost".
func defaultHostname() string {
	name, err := os.Hostname()
	if err != nil || !validDomain(name) {
		return "localhost"
	}
	return name
}

// loadConfig reads and validates the config file at path; an empty path
// means the defaults.
func loadConfig(path string) (Config, error) {
	if path == "" {
		cfg := defaultConfig()
		return cfg, cfg.validate()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return parseConfig(path, data)
}

// parseConfig decodes data, named name in errors, over the defaults and
// validates the result. Unknown keys are an error naming each key and its
// line.
func parseConfig(name string, data []byte) (Config, error) {
	cfg := defaultConfig()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, decodeError(name, err)
	}
	for i := range cfg.Routes {
		cfg.Routes[i].Domain = strings.ToLower(cfg.Routes[i].Domain)
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// decodeError rewrites go-toml's errors into "file:line: problem" form.
func decodeError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		msgs := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			line, _ := e.Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d: unknown key %q", name, line, strings.Join(e.Key(), ".")))
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if key := de.Key(); len(key) > 0 {
			return fmt.Errorf("%s:%d:%d: %s: %s", name, line, col, strings.Join(key, "."), msg)
		}
		return fmt.Errorf("%s:%d:%d: %s", name, line, col, msg)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// validateInbound checks [inbound] and [imap].
func (c *Config) validateInbound(bad func(key, format string, args ...any)) {
	in := &c.Inbound
	if in.LMTP != "" {
		if path, ok := strings.CutPrefix(in.LMTP, "unix:"); ok {
			if !strings.HasPrefix(path, "/") {
				bad("inbound.lmtp", "%q: want unix:/absolute/path or host:port", in.LMTP)
			}
		} else if err := checkHostPort(in.LMTP, false, false); err != nil {
			bad("inbound.lmtp", "%q: %v (want unix:/path or host:port)", in.LMTP, err)
		}
	}
	if in.MaxMessageBytes < 1024 || in.MaxMessageBytes > 1<<30 {
		bad("inbound.max_message_bytes", "%d: want 1024 to 1073741824", in.MaxMessageBytes)
	}
	if in.MaxRecipients < 1 || in.MaxRecipients > 10000 {
		bad("inbound.max_recipients", "%d: want 1 to 10000", in.MaxRecipients)
	}
	if in.MaxConnectionsPerIP < 1 {
		bad("inbound.max_connections_per_ip", "%d: want at least 1", in.MaxConnectionsPerIP)
	}
	for key, addr := range map[string]string{
		"inbound.dmarc_report_address": in.DMARCReportAddress,
		"inbound.complaint_address":    in.ComplaintAddress,
	} {
		if addr == "" {
			continue // the default at the hostname
		}
		if norm, err := tenant.NormalizeAddress(addr); err != nil || norm != addr {
			bad(key, "%q: want a mail address in lower case, like dmarc-reports@mx.example.net", addr)
		}
	}
	if c.IMAP.TenantConnections < 1 {
		bad("imap.tenant_connections", "%d: want at least 1", c.IMAP.TenantConnections)
	}
	if c.IMAP.UserConnections < 1 || c.IMAP.UserConnections > max(c.IMAP.TenantConnections, 1) {
		bad("imap.user_connections", "%d: want 1 to tenant_connections", c.IMAP.UserConnections)
	}
}

// validateReputation checks [reputation] and the pools' warm-up keys.
func (c *Config) validateReputation(bad func(key, format string, args ...any)) {
	r := &c.Reputation
	pools := map[string]bool{}
	for _, p := range c.Pools {
		pools[p.Name] = true
	}
	for tier, pool := range r.TierPools {
		if _, err := reputation.ParseTier(tier); err != nil {
			bad("reputation.tier_pools."+tier, "not a tier (want trusted, standard, probation, quarantine or suspended)")
		} else if !pools[pool] {
			bad("reputation.tier_pools."+tier, "%q is not a [[pool]] name", pool)
		}
	}
	for i, z := range r.DNSBL {
		if !validDomain(z) {
			bad(fmt.Sprintf("reputation.dnsbl[%d]", i), "%q is not a DNS zone", z)
		}
	}
	if r.CheckInterval < Duration(time.Second) {
		bad("reputation.check_interval", "at least 1s")
	}
	if r.DNSBLInterval < Duration(time.Minute) {
		bad("reputation.dnsbl_interval", "at least 1m")
	}
	for i, p := range c.Pools {
		for j, src := range p.Sources {
			key := fmt.Sprintf("pool[%d].sources[%d]", i, j)
			if src.WarmupStart != "" {
				if _, err := time.Parse(time.DateOnly, src.WarmupStart); err != nil {
					bad(key+".warmup_start", "%q: want a date like 2026-11-25", src.WarmupStart)
				}
			} else if src.WarmupDay1 != 0 || src.WarmupDays != 0 {
				bad(key, "warmup_day1 and warmup_days need warmup_start")
			}
			if src.WarmupDay1 < 0 || src.WarmupDays < 0 || src.WarmupDays > 365 {
				bad(key, "warm-up numbers must be positive (warmup_days at most 365)")
			}
		}
	}
}

// dmarcReportAddress is where DMARC aggregate reports come.
func (c *Config) dmarcReportAddress() string {
	if c.Inbound.DMARCReportAddress != "" {
		return c.Inbound.DMARCReportAddress
	}
	return dmarcReportLocalPart + "@" + c.Hostname
}

// complaintAddress is where feedback-loop complaints come.
func (c *Config) complaintAddress() string {
	if c.Inbound.ComplaintAddress != "" {
		return c.Inbound.ComplaintAddress
	}
	return complaintLocalPart + "@" + c.Hostname
}

// validate reports every problem in c, each naming its key, in one error.
func (c *Config) validate() error {
	var problems []string
	bad := func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	}

	if !validDomain(c.Hostname) {
		bad("hostname", "%q is not a valid domain name", c.Hostname)
	}
	for key, d := range map[string]Duration{"dkim.publish_delay": c.DKIM.PublishDelay, "dkim.retire_delay": c.DKIM.RetireDelay,
		"dkim.rotation_interval": c.DKIM.RotationInterval, "dkim.check_interval": c.DKIM.CheckInterval} {
		if d <= 0 {
			bad(key, "must be positive")
		}
	}
	if c.DKIM.CheckInterval > 0 && c.DKIM.CheckInterval < Duration(time.Second) {
		bad("dkim.check_interval", "at least 1s")
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	c.validateInbound(bad)
	c.validateReputation(bad)

	for _, l := range []struct{ key, addr string }{
		{"listen.mx", c.Listen.MX},
		{"listen.submission", c.Listen.Submission},
		{"listen.submissions", c.Listen.Submissions},
		{"listen.imap", c.Listen.IMAP},
		{"listen.imaps", c.Listen.IMAPS},
		{"listen.admin", c.Listen.Admin},
	} {
		if l.addr == "" {
			continue // disabled
		}
		if err := checkHostPort(l.addr, true, true); err != nil {
			bad(l.key, "%q: %v", l.addr, err)
		}
	}

	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key must be set together (cert %q, key %q)", c.TLS.Cert, c.TLS.Key)
	}

	if c.DNS.Resolver != "" {
		if err := checkHostPort(c.DNS.Resolver, false, false); err != nil {
			bad("dns.resolver", "%q: %v", c.DNS.Resolver, err)
		} else if host, _, _ := net.SplitHostPort(c.DNS.Resolver); !isIP(host) {
			bad("dns.resolver", "%q: host must be an IP address", c.DNS.Resolver)
		}
	}

	routeAt := make(map[string]int)
	for i, r := range c.Routes {
		key := fmt.Sprintf("route[%d]", i)
		if !validRouteDomain(r.Domain) {
			bad(key+".domain", "%q: want \"*\", a domain like \"example.com\", or \".example.com\" for its subdomains", r.Domain)
		} else if j, dup := routeAt[r.Domain]; dup {
			bad(key+".domain", "%q is already routed by route[%d]", r.Domain, j)
		} else {
			routeAt[r.Domain] = i
		}
		if r.To == "" {
			bad(key+".to", "must be set to the next hop's host:port")
		} else if err := checkHostPort(r.To, false, false); err != nil {
			bad(key+".to", "%q: %v", r.To, err)
		}
	}

	poolAt := make(map[string]int)
	for i, p := range c.Pools {
		key := fmt.Sprintf("pool[%d]", i)
		if p.Name == "" {
			bad(key+".name", "must not be empty")
		} else if j, dup := poolAt[p.Name]; dup {
			bad(key+".name", "%q is already the name of pool[%d]", p.Name, j)
		} else {
			poolAt[p.Name] = i
		}
		if len(p.Sources) == 0 {
			bad(key+".sources", "needs at least one source")
		}
		ipAt := make(map[netip.Addr]int)
		for k, s := range p.Sources {
			skey := fmt.Sprintf("%s.sources[%d]", key, k)
			ip, err := netip.ParseAddr(s.IP)
			switch {
			case err != nil:
				bad(skey+".ip", "%q is not an IP address", s.IP)
			case ip.Zone() != "":
				bad(skey+".ip", "%q: zones are not supported", s.IP)
			default:
				if j, dup := ipAt[ip]; dup {
					bad(skey+".ip", "%s is already sources[%d] of this pool", ip, j)
				}
				ipAt[ip] = k
			}
			if s.EHLO != "" && !validDomain(s.EHLO) {
				bad(skey+".ehlo", "%q is not a valid domain name", s.EHLO)
			}
		}
	}

	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// checkHostPort checks that addr is "host:port" with a numeric port and a
// host that is an IP address or a domain name. A listen address may leave
// the host empty (every address) and use port 0 (any free port).
func checkHostPort(addr string, emptyHostOK, portZeroOK bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("not host:port (%s)", ae.Err)
		}
		return errors.New("not host:port")
	}
	switch {
	case host == "" && !emptyHostOK:
		return errors.New("host is missing")
	case host != "" && !isIP(host) && !validDomain(host):
		return fmt.Errorf("host %q is neither an IP address nor a domain name", host)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if n == 0 && !portZeroOK {
		return errors.New("port must not be 0")
	}
	return nil
}

// isIP reports whether s is an IP address literal.
func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// validRouteDomain reports whether s is a route's domain: "*", a domain, or
// a domain with a leading dot.
func validRouteDomain(s string) bool {
	return s == "*" || validDomain(strings.TrimPrefix(s, "."))
}

// validDomain reports whether s is a syntactically valid domain name (letters,
// digits and hyphens in dot-separated labels of at most 63 characters, at
// most 253 in all, no trailing dot). A single label, like "localhost", is
// allowed.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

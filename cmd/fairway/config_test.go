package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatalf("loadConfig(\"\"): %v", err)
	}
	want := Config{
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
		DKIM: DKIMConfig{
			PublishDelay:     Duration(48 * time.Hour),
			RetireDelay:      Duration(48 * time.Hour),
			RotationInterval: Duration(90 * 24 * time.Hour),
			CheckInterval:    Duration(time.Minute),
		},
		Inbound:    InboundConfig{MaxMessageBytes: 25 << 20, MaxRecipients: 100, MaxConnectionsPerIP: 20},
		IMAP:       IMAPConfig{TenantConnections: 200, UserConnections: 20},
		Reputation: ReputationConfig{CheckInterval: Duration(time.Minute), DNSBLInterval: Duration(15 * time.Minute)},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.Hostname == "" {
		t.Error("default hostname is empty")
	}
}

func TestParseConfig(t *testing.T) {
	defaults := defaultConfig()
	tests := []struct {
		name string
		toml string
		// check, when set, inspects a successful decode.
		check func(t *testing.T, cfg Config)
		// wantErr, when set, are substrings the error must contain.
		wantErr []string
	}{
		{
			name: "empty file keeps every default",
			toml: "",
			check: func(t *testing.T, cfg Config) {
				if !reflect.DeepEqual(cfg, defaults) {
					t.Errorf("got %+v, want defaults %+v", cfg, defaults)
				}
			},
		},
		{
			name: "explicit empty listener is disabled, absent ones keep defaults",
			toml: "[listen]\nmx = \"\"\nimap = \"0.0.0.0:143\"\n",
			check: func(t *testing.T, cfg Config) {
				want := defaults.Listen
				want.MX = ""
				want.IMAP = "0.0.0.0:143"
				if cfg.Listen != want {
					t.Errorf("listen = %+v, want %+v", cfg.Listen, want)
				}
			},
		},
		{
			name: "listen accepts empty host, IPv6 and port 0",
			toml: "[listen]\nmx = \":25\"\nadmin = \"[::1]:0\"\nimaps = \"localhost:993\"\n",
			check: func(t *testing.T, cfg Config) {
				if cfg.Listen.MX != ":25" || cfg.Listen.Admin != "[::1]:0" || cfg.Listen.IMAPS != "localhost:993" {
					t.Errorf("listen = %+v", cfg.Listen)
				}
			},
		},
		{
			name: "routes, pools, tls and dns decode",
			toml: `hostname = "mx.example.net"
data_dir = "/var/lib/fairway"
[tls]
cert = "/etc/fairway/cert.pem"
key = "/etc/fairway/key.pem"
[dns]
resolver = "127.0.0.1:5353"
[[route]]
domain = "Example.COM"
to = "relay.example.net:25"
[[route]]
domain = ".example.org"
to = "[::1]:2600"
[[pool]]
name = "standard"
sources = [{ ip = "127.0.0.2", ehlo = "out1.example.net" }, { ip = "::1" }]
[[pool]]
name = "cold"
sources = [{ ip = "127.0.0.3" }]
`,
			check: func(t *testing.T, cfg Config) {
				want := defaults
				want.Hostname = "mx.example.net"
				want.DataDir = "/var/lib/fairway"
				want.TLS = TLSConfig{Cert: "/etc/fairway/cert.pem", Key: "/etc/fairway/key.pem"}
				want.DNS = DNSConfig{Resolver: "127.0.0.1:5353"}
				want.Routes = []RouteConfig{
					{Domain: "example.com", To: "relay.example.net:25"},
					{Domain: ".example.org", To: "[::1]:2600"},
				}
				want.Pools = []PoolConfig{
					{Name: "standard", Sources: []SourceConfig{{IP: "127.0.0.2", EHLO: "out1.example.net"}, {IP: "::1"}}},
					{Name: "cold", Sources: []SourceConfig{{IP: "127.0.0.3"}}},
				}
				if !reflect.DeepEqual(cfg, want) {
					t.Errorf("\n got %+v\nwant %+v", cfg, want)
				}
			},
		},

		// Unknown keys and malformed TOML: the error names key and line.
		{
			name:    "unknown top-level key",
			toml:    "hostname = \"a.example\"\nhostnme = \"b\"\n",
			wantErr: []string{`test.toml:2: unknown key "hostnme"`},
		},
		{
			name:    "unknown key in a table",
			toml:    "[listen]\nmx = \"\"\nsmtp = \"127.0.0.1:25\"\n",
			wantErr: []string{`test.toml:3: unknown key "listen.smtp"`},
		},
		{
			name:    "unknown table",
			toml:    "[queue]\nmax_age = \"5d\"\n",
			wantErr: []string{`test.toml:1: unknown key "queue"`},
		},
		{
			name:    "unknown key in an array of tables, every one reported",
			toml:    "[[route]]\ndomain = \"*\"\nto = \"127.0.0.1:25\"\nvia = \"x\"\n[[pool]]\nname = \"p\"\nsources = [{ ip = \"127.0.0.2\", helo = \"x\" }]\n",
			wantErr: []string{`test.toml:4: unknown key "route.via"`, `test.toml:7: unknown key "pool.helo"`},
		},
		{
			name:    "syntax error names the line",
			toml:    "hostname = \"mx.example.net\"\ndata_dir = \n",
			wantErr: []string{"test.toml:2:"},
		},
		{
			name:    "wrong type names the key",
			toml:    "data_dir = 7\n",
			wantErr: []string{"test.toml:1:", "data_dir"},
		},

		// Validation: each error names the offending key.
		{
			name:    "dkim durations",
			toml:    "[dkim]\npublish_delay = \"1s\"\nretire_delay = \"0s\"\ncheck_interval = \"10ms\"\n",
			wantErr: []string{"dkim.retire_delay: must be positive", "dkim.check_interval: at least 1s"},
		},
		{
			name:    "dkim duration that is not one",
			toml:    "[dkim]\npublish_delay = \"two days\"\n",
			wantErr: []string{"test.toml:2:", `"two days" is not a duration`},
		},
		{
			name:    "invalid hostname",
			toml:    "hostname = \"mx example\"\n",
			wantErr: []string{`hostname: "mx example" is not a valid domain name`},
		},
		{
			name: "inbound and imap limits",
			toml: "[inbound]\nlmtp = \"unix:relative/sock\"\nmax_message_bytes = 10\nmax_recipients = 0\n" +
				"max_connections_per_ip = -1\ndmarc_report_address = \"not an address\"\ncomplaint_address = \"FBL@Example.net\"\n" +
				"[imap]\ntenant_connections = 5\nuser_connections = 6\n",
			wantErr: []string{`inbound.lmtp: "unix:relative/sock"`, "inbound.max_message_bytes: 10", "inbound.max_recipients: 0",
				"inbound.max_connections_per_ip: -1", `inbound.dmarc_report_address: "not an address"`,
				`inbound.complaint_address: "FBL@Example.net"`, "imap.user_connections: 6"},
		},
		{
			name: "reputation keys",
			toml: "[[pool]]\nname = \"std\"\nsources = [{ ip = \"127.0.0.2\", warmup_start = \"yesterday\" }, { ip = \"127.0.0.3\", warmup_days = 3 }]\n" +
				"[reputation]\ntier_pools = { gold = \"std\", quarantine = \"nowhere\" }\ndnsbl = [\"not a zone\"]\ncheck_interval = \"10ms\"\ndnsbl_interval = \"1s\"\n",
			wantErr: []string{"reputation.tier_pools.gold: not a tier", `reputation.tier_pools.quarantine: "nowhere" is not a [[pool]]`,
				`reputation.dnsbl[0]: "not a zone"`, "reputation.check_interval: at least 1s", "reputation.dnsbl_interval: at least 1m",
				`pool[0].sources[0].warmup_start: "yesterday"`, "pool[0].sources[1]: warmup_day1 and warmup_days need warmup_start"},
		},
		{
			name:    "lmtp host without port",
			toml:    "[inbound]\nlmtp = \"dovecot.internal\"\n",
			wantErr: []string{`inbound.lmtp: "dovecot.internal"`},
		},
		{
			name:    "empty data_dir",
			toml:    "data_dir = \"\"\n",
			wantErr: []string{"data_dir: must not be empty"},
		},
		{
			name:    "listen address without port",
			toml:    "[listen]\nmx = \"127.0.0.1\"\n",
			wantErr: []string{`listen.mx: "127.0.0.1": not host:port`},
		},
		{
			name:    "listen port not a number",
			toml:    "[listen]\nsubmission = \"127.0.0.1:smtp\"\n",
			wantErr: []string{`listen.submission: "127.0.0.1:smtp": port "smtp"`},
		},
		{
			name:    "listen port out of range",
			toml:    "[listen]\nimaps = \"127.0.0.1:99999\"\n",
			wantErr: []string{`listen.imaps: "127.0.0.1:99999": port "99999"`},
		},
		{
			name:    "listen bad host",
			toml:    "[listen]\nadmin = \"no_such host:8025\"\n",
			wantErr: []string{`listen.admin: "no_such host:8025": host "no_such host"`},
		},
		{
			name:    "all bad listeners reported together",
			toml:    "[listen]\nsubmissions = \"x\"\nimap = \"y\"\n",
			wantErr: []string{"listen.submissions:", "listen.imap:"},
		},
		{
			name:    "tls cert without key",
			toml:    "[tls]\ncert = \"cert.pem\"\n",
			wantErr: []string{"tls: cert and key must be set together"},
		},
		{
			name:    "tls key without cert",
			toml:    "[tls]\nkey = \"key.pem\"\n",
			wantErr: []string{"tls: cert and key must be set together"},
		},
		{
			name:    "dns resolver without port",
			toml:    "[dns]\nresolver = \"127.0.0.1\"\n",
			wantErr: []string{`dns.resolver: "127.0.0.1": not host:port`},
		},
		{
			name:    "dns resolver by name",
			toml:    "[dns]\nresolver = \"dns.example:53\"\n",
			wantErr: []string{`dns.resolver: "dns.example:53": host must be an IP address`},
		},
		{
			name:    "route domain malformed",
			toml:    "[[route]]\ndomain = \"*.example.com\"\nto = \"127.0.0.1:25\"\n",
			wantErr: []string{`route[0].domain: "*.example.com": want`},
		},
		{
			name:    "route domain empty",
			toml:    "[[route]]\nto = \"127.0.0.1:25\"\n",
			wantErr: []string{`route[0].domain: "": want`},
		},
		{
			name:    "route domain duplicate, case-insensitively",
			toml:    "[[route]]\ndomain = \"example.com\"\nto = \"127.0.0.1:25\"\n[[route]]\ndomain = \"EXAMPLE.com\"\nto = \"127.0.0.1:26\"\n",
			wantErr: []string{`route[1].domain: "example.com" is already routed by route[0]`},
		},
		{
			name:    "route to missing",
			toml:    "[[route]]\ndomain = \"*\"\n",
			wantErr: []string{"route[0].to: must be set"},
		},
		{
			name:    "route to without port",
			toml:    "[[route]]\ndomain = \"*\"\nto = \"relay.example.net\"\n",
			wantErr: []string{`route[0].to: "relay.example.net": not host:port`},
		},
		{
			name:    "route to without host",
			toml:    "[[route]]\ndomain = \"*\"\nto = \":25\"\n",
			wantErr: []string{`route[0].to: ":25": host is missing`},
		},
		{
			name:    "route to port 0",
			toml:    "[[route]]\ndomain = \"*\"\nto = \"127.0.0.1:0\"\n",
			wantErr: []string{`route[0].to: "127.0.0.1:0": port must not be 0`},
		},
		{
			name:    "pool name empty",
			toml:    "[[pool]]\nsources = [{ ip = \"127.0.0.2\" }]\n",
			wantErr: []string{"pool[0].name: must not be empty"},
		},
		{
			name:    "pool name duplicate",
			toml:    "[[pool]]\nname = \"a\"\nsources = [{ ip = \"127.0.0.2\" }]\n[[pool]]\nname = \"a\"\nsources = [{ ip = \"127.0.0.3\" }]\n",
			wantErr: []string{`pool[1].name: "a" is already the name of pool[0]`},
		},
		{
			name:    "pool without sources",
			toml:    "[[pool]]\nname = \"a\"\n",
			wantErr: []string{"pool[0].sources: needs at least one source"},
		},
		{
			name:    "pool source ip malformed",
			toml:    "[[pool]]\nname = \"a\"\nsources = [{ ip = \"127.0.0.2\" }, { ip = \"127.0.0.300\" }]\n",
			wantErr: []string{`pool[0].sources[1].ip: "127.0.0.300" is not an IP address`},
		},
		{
			name:    "pool source ip missing",
			toml:    "[[pool]]\nname = \"a\"\nsources = [{ ehlo = \"out.example.net\" }]\n",
			wantErr: []string{`pool[0].sources[0].ip: "" is not an IP address`},
		},
		{
			name:    "pool source ip duplicate",
			toml:    "[[pool]]\nname = \"a\"\nsources = [{ ip = \"127.0.0.2\" }, { ip = \"127.0.0.2\" }]\n",
			wantErr: []string{"pool[0].sources[1].ip: 127.0.0.2 is already sources[0]"},
		},
		{
			name:    "pool source ehlo malformed",
			toml:    "[[pool]]\nname = \"a\"\nsources = [{ ip = \"127.0.0.2\", ehlo = \"out_1\" }]\n",
			wantErr: []string{`pool[0].sources[0].ehlo: "out_1" is not a valid domain name`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig("test.toml", []byte(tt.toml))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tt.check(t, cfg)
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fairway.toml")
	if err := os.WriteFile(path, []byte("[listen]\nmx = \"\"\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path+`:3: unknown key "listen.bogus"`) {
		t.Errorf("loadConfig: error %v, want it to name file, line and key", err)
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Error("loadConfig of a missing file: no error")
	}
}

// TestExampleConfig checks fairway.example.toml against Config: it decodes
// strictly and validates (so it names no key Config lacks), it sets every
// key Config has, and its listen values are the defaults, so the example
// and the struct do not drift apart.
func TestExampleConfig(t *testing.T) {
	const path = "fairway.example.toml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(path, data)
	if err != nil {
		t.Fatalf("example does not load: %v", err)
	}
	def := defaultConfig()
	if cfg.DataDir != def.DataDir || cfg.Listen != def.Listen || cfg.TLS != def.TLS || cfg.DNS != def.DNS {
		t.Errorf("example's values differ from the defaults it claims to show:\n got %+v\nwant %+v", cfg, def)
	}

	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var inExample []string
	docKeys("", doc, &inExample)
	var inStruct []string
	structKeys("", reflect.TypeFor[Config](), &inStruct)
	for _, k := range inStruct {
		// A map-valued key (tier_pools) shows in the example as its entries.
		if !slices.ContainsFunc(inExample, func(e string) bool { return e == k || strings.HasPrefix(e, k+".") }) {
			t.Errorf("key %q of Config is missing from %s", k, path)
		}
	}
}

// structKeys appends the dotted TOML key of every leaf field of typ, with
// arrays of tables contributing their element's keys.
func structKeys(prefix string, typ reflect.Type, keys *[]string) {
	for f := range typ.Fields() {
		key := prefix + f.Tag.Get("toml")
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			structKeys(key+".", ft, keys)
			continue
		}
		*keys = append(*keys, key)
	}
}

// docKeys appends the dotted key of every leaf value in a decoded TOML
// document, in the same form as structKeys.
func docKeys(prefix string, v any, keys *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			docKeys(prefix+k+".", e, keys)
		}
	case []any:
		for _, e := range v {
			docKeys(prefix, e, keys)
		}
	default:
		*keys = append(*keys, strings.TrimSuffix(prefix, "."))
	}
}

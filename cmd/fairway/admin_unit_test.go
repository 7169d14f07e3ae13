package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRecordParams(t *testing.T) {
	cfg := defaultConfig()
	cfg.Hostname = "mx.example.net"
	cfg.Pools = []PoolConfig{
		{Name: "a", Sources: []SourceConfig{{IP: "192.0.2.1"}, {IP: "2001:db8::1"}}},
		{Name: "b", Sources: []SourceConfig{{IP: "192.0.2.2"}}},
	}
	p := recordParams(cfg)
	if p.Hostname != "mx.example.net" || p.ReportAddress != "dmarc-reports@mx.example.net" {
		t.Errorf("params %+v", p)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.2")}
	if !slices.Equal(p.PoolIPs, want) {
		t.Errorf("pool IPs %v, want %v", p.PoolIPs, want)
	}
}

func TestReadPassword(t *testing.T) {
	tests := []struct {
		in, want string
		usage    bool
	}{
		{"secret password\n", "secret password", false},
		{"secret password\r\nsecond line\n", "secret password", false},
		{"no newline at end", "no newline at end", false},
		{"  spaces kept  \n", "  spaces kept  ", false},
		{"\n", "", true},
		{"", "", true},
		{strings.Repeat("x", maxPasswordInput+1), "", true},
	}
	for _, tt := range tests {
		got, err := readPassword(strings.NewReader(tt.in), &bytes.Buffer{})
		var ue *usageError
		if tt.usage != errors.As(err, &ue) || got != tt.want {
			t.Errorf("readPassword(%.20q) = %q, %v; want %q, usage error %t", tt.in, got, err, tt.want, tt.usage)
		}
	}
}

func TestParseNetworks(t *testing.T) {
	got, err := parseNetworks([]string{"192.0.2.0/24", "2001:db8::/32", "198.51.100.7"})
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.7/32")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseNetworks = %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "fe80::1%eth0"} {
		var ue *usageError
		if _, err := parseNetworks([]string{bad}); !errors.As(err, &ue) {
			t.Errorf("parseNetworks(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, exitOK},
		{[]string{"tenant", "add", "--help"}, exitOK},
		{[]string{"bogus"}, exitUsage},
		{[]string{"tenant"}, exitUsage},
		{[]string{"tenant", "add"}, exitUsage},
		{[]string{"tenant", "list", "extra"}, exitUsage},
		{[]string{"serve", "extra"}, exitUsage},
		{[]string{"--config", "/nonexistent/fairway.toml", "tenant", "list"}, exitRefused},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tt.args, strings.NewReader(""), &out, &errOut); code != tt.code {
			t.Errorf("fairway %s: exit %d, want %d\n%s", strings.Join(tt.args, " "), code, tt.code, errOut.String())
		}
	}
}

// panickyTicker panics on its first tick and reports every tick on called.
type panickyTicker struct {
	calls  atomic.Int32
	called chan struct{}
}

func (p *panickyTicker) TickDKIM(context.Context) error {
	defer func() { p.called <- struct{}{} }()
	if p.calls.Add(1) == 1 {
		panic("boom")
	}
	return nil
}

func TestDKIMTicksSurvivePanics(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	p := &panickyTicker{called: make(chan struct{}, 10)}
	tickDKIM(context.Background(), p, log) // must not panic
	<-p.called
	if !strings.Contains(logBuf.String(), "dkim tick panicked") {
		t.Errorf("panic not logged: %s", logBuf.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runDKIMTicks(ctx, p, slog.New(slog.DiscardHandler), time.Hour)
	}()
	select {
	case <-p.called: // the first tick runs at once
	case <-time.After(10 * time.Second):
		t.Fatal("runDKIMTicks did not tick at start")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("runDKIMTicks did not return after cancel")
	}
	if n := p.calls.Load(); n != 2 {
		t.Errorf("%d ticks, want 2 (one now, none within the hour)", n)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1024": 1024, "500K": 500 << 10, "20M": 20 << 20, "2G": 2 << 30, "2GB": 2 << 30,
		"2GiB": 2 << 30, "1t": 1 << 40, " 7 ": 7,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5G", "G", "12X", "9999999999999T"} {
		if got, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", bad, got)
		}
	}
}

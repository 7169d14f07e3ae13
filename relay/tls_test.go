package relay

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedCertificate(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c, err := LoadOrCreateCertificate("", "", dir, "mx.example.net", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || leaf.VerifyHostname("mx.example.net") != nil {
		t.Fatalf("certificate %v: %v", leaf.DNSNames, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls-selfsigned.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	again, err := LoadOrCreateCertificate("", "", dir, "mx.example.net", now.Add(24*time.Hour))
	if err != nil || string(again.Certificate[0]) != string(c.Certificate[0]) {
		t.Fatal("certificate not reused")
	}
	renewed, err := LoadOrCreateCertificate("", "", dir, "mx.example.net", now.Add(340*24*time.Hour))
	if err != nil || string(renewed.Certificate[0]) == string(c.Certificate[0]) {
		t.Fatal("expiring certificate not renewed")
	}
	other, err := LoadOrCreateCertificate("", "", dir, "other.example.net", now.Add(340*24*time.Hour))
	if err != nil || string(other.Certificate[0]) == string(renewed.Certificate[0]) {
		t.Fatal("certificate for another hostname reused")
	}
	if _, err := LoadOrCreateCertificate(filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key"), dir, "x", now); err == nil {
		t.Fatal("missing configured certificate accepted")
	}
}

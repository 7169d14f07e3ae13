package relay

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"fairway/tenant"
)

// testSigners makes an RSA-2048 and an Ed25519 key and the TXT records
// that publish them.
func testSigners(t testing.TB) ([]tenant.DKIMSigner, map[string]string) {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	signers := []tenant.DKIMSigner{
		{Selector: "r1", Algorithm: tenant.AlgorithmRSA, Signer: rsaKey},
		{Selector: "e1", Algorithm: tenant.AlgorithmEd25519, Signer: edKey},
	}
	records := map[string]string{
		"r1._domainkey.acme.example": "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPub),
		"e1._domainkey.acme.example": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edKey.Public().(ed25519.PublicKey)),
	}
	return signers, records
}

func verifyWith(records map[string]string, msg []byte) ([]*dkim.Verification, error) {
	return dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := records[strings.TrimSuffix(name, ".")]; ok {
				return []string{v}, nil
			}
			return nil, errors.New("no such record")
		},
	})
}

func TestDKIMSignatures(t *testing.T) {
	signers, records := testSigners(t)
	msg := []byte("Received: from x\r\n\tby y; Wed, 25 Nov 2026 13:04:00 +0000\r\n" +
		"From: Alice <alice@acme.example>\r\nTo: x@example.com\r\nSubject: hi\r\nX-Mailer: test\r\n" +
		"\r\nbody   \r\n\r\n\r\n")
	fields, _, err := parseHeader(msg)
	if err != nil {
		t.Fatal(err)
	}
	keys := dkimHeaderKeys(fields)
	if !slices.Equal(keys, []string{"From", "To", "Subject", "From"}) {
		t.Fatalf("signed fields %q", keys)
	}
	sigs, err := dkimSignatures(msg, fields, "acme.example", signers)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(sigs, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d signatures", n)
	}
	signed := append(slices.Clone(sigs), msg...)
	vs, err := verifyWith(records, signed)
	if err != nil || len(vs) != 2 {
		t.Fatalf("%d verifications: %v", len(vs), err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Fatalf("%s: %v", v.Domain, v.Err)
		}
	}
	// Relaxed body: trailing space and empty lines at the end do not count.
	relaxed := bytes.Replace(signed, []byte("body   \r\n\r\n\r\n"), []byte("body\r\n"), 1)
	if vs, _ := verifyWith(records, relaxed); vs[0].Err != nil || vs[1].Err != nil {
		t.Fatal("relaxed body canonicalization not used")
	}
	// A second From: added on the way breaks both (From is over-signed).
	forged := append(slices.Clone(sigs), append([]byte("From: mallory@evil.example\r\n"), msg...)...)
	if vs, _ := verifyWith(records, forged); vs[0].Err == nil || vs[1].Err == nil {
		t.Fatal("an added From: field verifies")
	}
	// No signers, no signatures.
	if sigs, err := dkimSignatures(msg, fields, "acme.example", nil); sigs != nil || err != nil {
		t.Fatalf("%q %v", sigs, err)
	}
	// A key go-msgauth cannot use is an error, not a panic.
	bad := []tenant.DKIMSigner{{Selector: "x", Signer: badSigner{}}}
	if _, err := dkimSignatures(msg, fields, "acme.example", bad); err == nil {
		t.Fatal("unusable key accepted")
	}
}

type badSigner struct{}

func (badSigner) Public() crypto.PublicKey { return "not a key" }

func (badSigner) Sign(_ io.Reader, _ []byte, _ crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("no")
}

// BenchmarkSignRSA2048 is the cost of signing a 4 KB message with one
// RSA-2048 key, relaxed/relaxed, as submission does.
func BenchmarkSignRSA2048(b *testing.B) {
	signers, _ := testSigners(b)
	benchSign(b, signers[:1])
}

// BenchmarkSignRSAAndEd25519 is submission's real cost per message once a
// domain has both keys active.
func BenchmarkSignRSAAndEd25519(b *testing.B) {
	signers, _ := testSigners(b)
	benchSign(b, signers)
}

func benchSign(b *testing.B, signers []tenant.DKIMSigner) {
	msg := []byte("From: Alice <alice@acme.example>\r\nTo: x@example.com\r\nSubject: bench\r\n" +
		"Date: Wed, 25 Nov 2026 13:04:00 +0000\r\nMessage-ID: <bench@acme.example>\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 78)+"\r\n", 50))
	fields, _, err := parseHeader(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dkimSignatures(msg, fields, "acme.example", signers); err != nil {
			b.Fatal(err)
		}
	}
}

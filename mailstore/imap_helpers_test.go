package mailstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "imap.test"},
		DNSNames:     []string{"imap.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// imapEnv is an env with an IMAP server on two loopback listeners.
type imapEnv struct {
	*env
	srv      *IMAPServer
	reg      *prometheus.Registry
	plain    string // STARTTLS listener
	implicit string // implicit TLS listener
	tls      *tls.Config
}

func newIMAPEnv(t testing.TB, e *env, o IMAPOptions) *imapEnv {
	t.Helper()
	ie := &imapEnv{env: e, reg: prometheus.NewRegistry(), tls: selfSigned(t)}
	ie.start(o)
	return ie
}

func (ie *imapEnv) start(o IMAPOptions) {
	t := ie.t
	o.Store = ie.store
	o.TLS = ie.tls
	o.Logger = testLogger(t)
	ie.reg = prometheus.NewRegistry()
	o.Registerer = ie.reg
	srv, err := NewIMAPServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ie.srv = srv
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ie.plain, ie.implicit = ln1.Addr().String(), ln2.Addr().String()
	go srv.ServeSTARTTLS(ln1)
	go srv.ServeImplicitTLS(ln2)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}

// restart stops the server, restarts the store and starts a new server.
func (ie *imapEnv) restart(o IMAPOptions) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ie.srv.Shutdown(ctx); err != nil {
		ie.t.Fatal(err)
	}
	ie.env.restart()
	ie.start(o)
}

func (ie *imapEnv) clientOpts(h *imapclient.UnilateralDataHandler) *imapclient.Options {
	return &imapclient.Options{
		TLSConfig:             &tls.Config{InsecureSkipVerify: true},
		UnilateralDataHandler: h,
		Dialer:                &net.Dialer{Timeout: 5 * time.Second},
	}
}

// dial connects over implicit TLS.
func (ie *imapEnv) dial(h *imapclient.UnilateralDataHandler) *imapclient.Client {
	ie.t.Helper()
	c, err := imapclient.DialTLS(ie.implicit, ie.clientOpts(h))
	if err != nil {
		ie.t.Fatal(err)
	}
	ie.t.Cleanup(func() { c.Close() })
	return c
}

// login connects over implicit TLS and logs in.
func (ie *imapEnv) login(user string) *imapclient.Client {
	ie.t.Helper()
	c := ie.dial(nil)
	if err := c.Login(user, testPassword).Wait(); err != nil {
		ie.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func appendMsg(t testing.TB, c *imapclient.Client, folder string, body []byte, flags ...imap.Flag) (*imap.AppendData, error) {
	t.Helper()
	cmd := c.Append(folder, int64(len(body)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(body); err != nil {
		return nil, err
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	return cmd.Wait()
}

// metricValue reads a gauge or counter.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	}
	return -1
}

// gatheredSeries counts the series of a metric family in the registry.
func gatheredSeries(ie *imapEnv, name string) (int, error) {
	fams, err := ie.reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric()), nil
		}
	}
	return 0, nil
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

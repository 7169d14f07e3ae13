package conncap

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":           "192.0.2.7/32",
		"::ffff:192.0.2.7":    "192.0.2.7/32",
		"2001:db8:1:2:3::4":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::": "2001:db8:1:2::/64",
	} {
		if got := ClientKey(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("ClientKey(%s) = %s, want %s", in, got, want)
		}
	}
	if ClientKey(netip.Addr{}).IsValid() {
		t.Error("an invalid address has a key")
	}
}

// pipeConn is a net.Conn with a chosen remote address.
type pipeConn struct {
	net.Conn
	remote net.Addr
}

func (p pipeConn) RemoteAddr() net.Addr { return p.remote }

func conn(ip string) net.Conn {
	a, _ := net.Pipe()
	return pipeConn{Conn: a, remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1234}}
}

func TestTrackerCaps(t *testing.T) {
	tr := New(2, 3, "c")
	a1, err := tr.Admit(conn("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Admit(conn("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Admit(conn("192.0.2.1")); !errors.Is(err, ErrPerAddress) {
		t.Fatalf("third from one address: %v", err)
	}
	if _, err := tr.Admit(conn("192.0.2.2")); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Admit(conn("192.0.2.3")); !errors.Is(err, ErrTotal) {
		t.Fatalf("over the total: %v", err)
	}
	if a1.ID != "c1" || Of(a1) != a1 {
		t.Errorf("id %q, Of %v", a1.ID, Of(a1))
	}
	a1.Close()
	a1.Close() // twice: released once
	if per, total := tr.Counts(netip.MustParseAddr("192.0.2.1")); per != 1 || total != 2 {
		t.Fatalf("after a close: %d from the address, %d in all", per, total)
	}
	if _, err := tr.Admit(conn("192.0.2.1")); err != nil {
		t.Fatalf("a freed place was not given back: %v", err)
	}
	tr.CloseAll()
	if _, total := tr.Counts(netip.Addr{}); total != 0 {
		t.Fatalf("%d live after CloseAll", total)
	}
}

func TestRefuser(t *testing.T) {
	r := NewRefuser(1, time.Second, nil)
	a, b := net.Pipe()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := b.Read(buf)
		got <- string(buf[:n])
	}()
	r.Refuse(a, func(c net.Conn) { c.Write([]byte("421 busy\r\n")) })
	if s := <-got; s != "421 busy\r\n" {
		t.Fatalf("refused with %q", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatal("refusal did not end")
	}
	// Once stopped, a connection is closed without a word.
	c, d := net.Pipe()
	wrote := false
	r.Refuse(c, func(net.Conn) { wrote = true })
	if _, err := d.Read(make([]byte, 1)); err == nil || wrote {
		t.Fatalf("a stopped refuser answered (err %v, wrote %v)", err, wrote)
	}
}

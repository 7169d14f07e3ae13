package relay

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedServer is a bare SMTP server that offers PIPELINING and records,
// for each read after EHLO, the commands that arrived in one batch.
type scriptedServer struct {
	addr    string
	mu      sync.Mutex
	batches []string
}

func startScriptedServer(t *testing.T, rcptReply func(rcpt string) string) *scriptedServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &scriptedServer{addr: ln.Addr().String()}
	go func() {
		for range 10 {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn, rcptReply)
		}
	}()
	return s
}

func (s *scriptedServer) serve(conn net.Conn, rcptReply func(string) string) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	write := func(lines ...string) { conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")) }
	write("220 scripted ESMTP")
	inData := false
	for range 1000 {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if inData {
			if line == ".\r\n" {
				inData = false
				write("250 2.0.0 stored")
			}
			continue
		}
		batch := line
		for r.Buffered() > 0 && !strings.HasPrefix(strings.ToUpper(line), "DATA") {
			more, err := r.ReadString('\n')
			if err != nil {
				return
			}
			batch += more
			if strings.HasPrefix(strings.ToUpper(more), "DATA") {
				break
			}
		}
		s.mu.Lock()
		s.batches = append(s.batches, batch)
		s.mu.Unlock()
		var replies []string
		for _, cmd := range strings.SplitAfter(batch, "\r\n") {
			verb := strings.ToUpper(strings.TrimSpace(cmd))
			switch {
			case verb == "":
			case strings.HasPrefix(verb, "EHLO"):
				replies = append(replies, "250-scripted", "250-PIPELINING", "250 8BITMIME")
			case strings.HasPrefix(verb, "MAIL"), strings.HasPrefix(verb, "RSET"):
				replies = append(replies, "250 2.1.0 ok")
			case strings.HasPrefix(verb, "RCPT"):
				rcpt := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(cmd)[len("RCPT TO:"):], "<"), ">")
				replies = append(replies, rcptReply(rcpt))
			case strings.HasPrefix(verb, "DATA"):
				replies = append(replies, "354 go ahead")
				inData = true
			case strings.HasPrefix(verb, "QUIT"):
				write("221 bye")
				return
			default:
				replies = append(replies, "502 5.5.2 what")
			}
		}
		write(replies...)
	}
}

func TestDeliveryPipelinesMailRcptData(t *testing.T) {
	srv := startScriptedServer(t, func(rcpt string) string {
		if strings.HasPrefix(rcpt, "gone@") {
			return "550 5.1.1 no such user"
		}
		return "250 2.1.5 ok"
	})
	e := newDlvEnv(t, func(o *DeliveryOptions) { o.Routes = []Route{{Domain: "*", To: srv.addr}} })
	id := e.send("t1", "alice@sender.test", "a@dest.test", "gone@dest.test", "b@dest.test")
	e.waitIdle()
	if recs := e.records(id); len(recs) != 0 {
		t.Fatalf("still queued: %+v", recs[0])
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var tx string
	for _, b := range srv.batches {
		if strings.Contains(b, "MAIL FROM:<alice@sender.test>") {
			tx = b
		}
	}
	// One batch: MAIL, the three RCPTs and DATA, in order.
	want := "MAIL FROM:<alice@sender.test> BODY=8BITMIME\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<gone@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n"
	if tx != want {
		t.Fatalf("transaction arrived as %q\nwant one batch %q\nall batches: %q", tx, want, srv.batches)
	}
	if got := e.counter("fairway_deliveries_total", map[string]string{"tenant": "t1", "result": "bounced"}); got != 1 {
		t.Errorf("bounced %v, want 1 (gone@)", got)
	}
}

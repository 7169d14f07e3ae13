package inbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"fairway/mailstore"
)

// lmtpServer is a go-smtp LMTP server (Dovecot's part in production) that
// answers per recipient as told: a RCPT error, or a status after DATA.
type lmtpServer struct {
	mu        sync.Mutex
	rcptErr   map[string]*smtp.SMTPError
	dataErr   map[string]*smtp.SMTPError
	delivered map[string][][]byte
}

func startLMTP(t *testing.T, network string) (*lmtpServer, string) {
	t.Helper()
	ls := &lmtpServer{rcptErr: map[string]*smtp.SMTPError{}, dataErr: map[string]*smtp.SMTPError{}, delivered: map[string][][]byte{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &lmtpSession{s: ls}, nil }))
	srv.LMTP = true
	srv.Domain = "store.test"
	var ln net.Listener
	var err error
	var target string
	if network == "unix" {
		path := filepath.Join(t.TempDir(), "lmtp.sock")
		ln, err = net.Listen("unix", path)
		target = "unix:" + path
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			target = ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ls, target
}

func (ls *lmtpServer) got(rcpt string) [][]byte {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.delivered[rcpt]
}

type lmtpSession struct {
	s     *lmtpServer
	rcpts []string
}

func (s *lmtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *lmtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	if err := s.s.rcptErr[to]; err != nil {
		return err
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *lmtpSession) Data(io.Reader) error { return errors.New("LMTPData expected") }
func (s *lmtpSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	for _, rc := range s.rcpts {
		if err := s.s.dataErr[rc]; err != nil {
			status.SetStatus(rc, err)
			continue
		}
		s.s.delivered[rc] = append(s.s.delivered[rc], body)
		status.SetStatus(rc, nil)
	}
	return nil
}
func (s *lmtpSession) Reset()        { s.rcpts = nil }
func (s *lmtpSession) Logout() error { return nil }

// TestLMTP: delivery to an external LMTP server with its per-recipient
// answers passed on: a 4xx after DATA is retried through the spool when
// another copy was stored, or given to the client when none was; a 5xx
// at RCPT reaches the client; quarantined copies carry the folder field.
func TestLMTP(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ls, target := startLMTP(t, network)
			ls.dataErr[bob] = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox is full"}
			ls.rcptErr[carol] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
			e := newEnv(t, envConfig{options: func(o *MXOptions) {
				o.LMTP = target
				o.Store = nil
			}})
			c := e.dial()
			msg := buildMessage(t, "x@good.example", "good.example", "", "via lmtp\r\n")
			if err := send(c, "x@good.example", []string{alice, bob}, msg); err != nil {
				t.Fatalf("alice+bob: %v", err)
			}
			if n := len(ls.got(alice)); n != 1 {
				t.Fatalf("alice got %d over LMTP", n)
			}
			q := e.queued()
			if len(q) != 1 || q[0].Record.Tenant != "acme" {
				t.Fatalf("spool %+v", q)
			}
			if f, ok := parseRetryExtra(q[0].Record.Extra); !ok || f != mailstore.FolderInbox {
				t.Errorf("retry extra %q", q[0].Record.Extra)
			}
			body, err := e.q.Body(q[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if res := e.mx.DeliverLocal(context.Background(), "x@good.example", []string{bob}, body, q[0].Record.Extra); code(res[0]) != "452 4.2.2" {
				t.Errorf("retry over LMTP = %q, want 452 4.2.2", code(res[0]))
			}

			if got := code(send(c, "x@good.example", []string{bob}, msg)); got != "452 4.2.2" {
				t.Errorf("bob alone = %q, want 452 4.2.2", got)
			}
			if got := code(send(c, "x@good.example", []string{carol}, msg)); got != "550 5.1.1" {
				t.Errorf("carol = %q, want 550 5.1.1", got)
			}

			q1 := buildMessage(t, "x@quar.example", "", "", "quarantine over lmtp\r\n")
			if err := send(c, "x@quar.example", []string{alice}, q1); err != nil {
				t.Fatal(err)
			}
			got := ls.got(alice)
			if len(got) != 2 || !bytes.HasPrefix(got[1], []byte(lmtpFolderField)) || bytes.HasPrefix(got[0], []byte("X-Fairway-Folder")) {
				t.Errorf("folder field: first %q..., second %q...", head(got, 0), head(got, 1))
			}
		})
	}
}

// TestLMTPDown: an LMTP server that is not there is a temporary failure.
func TestLMTPDown(t *testing.T) {
	e := newEnv(t, envConfig{options: func(o *MXOptions) {
		o.LMTP = "unix:" + filepath.Join(t.TempDir(), "absent.sock")
		o.Store = nil
	}})
	msg := buildMessage(t, "x@good.example", "good.example", "", "nowhere\r\n")
	if got := code(send(e.dial(), "x@good.example", []string{alice}, msg)); got != "451 4.3.0" {
		t.Errorf("LMTP down = %q, want 451 4.3.0", got)
	}
}

func head(msgs [][]byte, i int) string {
	if i >= len(msgs) {
		return ""
	}
	return string(msgs[i][:min(40, len(msgs[i]))])
}

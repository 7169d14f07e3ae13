package relay

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"fairway/fairq"
)

// hostedStore stands in for the local path behind relay's LocalDelivery
// interface (inbound is wired in by cmd and tested end to end there): it
// stores per address and answers with the replies it was told to give.
type hostedStore struct {
	domains map[string]bool
	mu      sync.Mutex
	got     map[string][]string // address -> extras seen, one per delivery
	replies map[string]error
}

func (h *hostedStore) Hosted(domain string) bool { return h.domains[domain] }

func (h *hostedStore) DeliverLocal(_ context.Context, _ string, rcpts []string, body []byte, extra []byte) []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]error, len(rcpts))
	for i, r := range rcpts {
		if err := h.replies[r]; err != nil {
			out[i] = err
			continue
		}
		if !strings.Contains(string(body), "Subject: test") {
			out[i] = errors.New("body not passed")
			continue
		}
		h.got[r] = append(h.got[r], string(extra))
	}
	return out
}

func TestDeliveryHostedDomainsGoLocalNotToTheNetwork(t *testing.T) {
	s := startSink(t, sinkOptions{})
	local := &hostedStore{domains: map[string]bool{"hosted.test": true}, got: map[string][]string{},
		replies: map[string]error{
			"full@hosted.test":    &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"},
			"nobody@hosted.test":  &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
			"broken@hosted.test":  errors.New("disk on fire"),
			"refused@hosted.test": &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected by policy"},
		}}
	e := newDlvEnv(t, func(o *DeliveryOptions) {
		routeTo(s, "*")(o)
		o.Local = local
	})
	id := e.send("t1", "alice@sender.test", "bob@hosted.test", "full@hosted.test", "nobody@hosted.test", "broken@hosted.test")
	rec := e.waitDeferred(id, 1)
	if !slices.Equal(rec.Recipients, []string{"full@hosted.test", "broken@hosted.test"}) {
		t.Fatalf("queued for retry: %v, want the 452 and the local error", rec.Recipients)
	}
	if !strings.HasPrefix(rec.LastError, "local local: 452 4.2.2 mailbox full") && !strings.HasPrefix(rec.LastError, "local local: 4.3.0 disk on fire") {
		t.Errorf("last error %q", rec.LastError)
	}
	local.mu.Lock()
	if len(local.got["bob@hosted.test"]) != 1 {
		t.Errorf("bob@ got %d deliveries", len(local.got["bob@hosted.test"]))
	}
	local.mu.Unlock()
	// The permanent failure bounced to the sender, through the network;
	// nothing for hosted.test went to the sink.
	msgs := waitMessages(t, s, 1)
	for _, m := range msgs {
		for _, r := range m.Rcpts {
			if strings.HasSuffix(r, "@hosted.test") {
				t.Errorf("the sink got mail for %s", r)
			}
		}
	}
	if msgs[0].From != "" || !slices.Equal(msgs[0].Rcpts, []string{"alice@sender.test"}) {
		t.Fatalf("sink got %v from %q, want the DSN to alice@", msgs[0].Rcpts, msgs[0].From)
	}
	d := parseDSN(t, msgs[0].Data)
	if len(d.recipients) != 1 || d.recipients[0].Get("Final-Recipient") != "rfc822; nobody@hosted.test" || d.recipients[0].Get("Status") != "5.1.1" {
		t.Fatalf("DSN recipients %v", d.recipients)
	}
}

func TestDeliveryLocalPassesExtraThrough(t *testing.T) {
	local := &hostedStore{domains: map[string]bool{"hosted.test": true}, got: map[string][]string{}}
	e := newDlvEnv(t, func(o *DeliveryOptions) { o.Local = local })
	body := "From: <a@x.test>\r\nSubject: test extra\r\n\r\nhi\r\n"
	if _, err := e.q.Enqueue(context.Background(), &fairq.Message{Tenant: "t1", From: "a@x.test",
		Recipients: []string{"bob@hosted.test"}, Body: []byte(body), Extra: []byte("inbound-retry folder=Quarantine")}); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
	local.mu.Lock()
	defer local.mu.Unlock()
	if got := local.got["bob@hosted.test"]; len(got) != 1 || got[0] != "inbound-retry folder=Quarantine" {
		t.Fatalf("extras seen %q", got)
	}
}

package bench

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// startTestSink starts a sink on a free loopback port, closed with the test.
func startTestSink(t *testing.T, name string, b Behavior, rec *Recorder) *Sink {
	t.Helper()
	s, err := StartSink(name, "127.0.0.1:0", b, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestGeneratorAgainstSink aims the generator straight at a sink (the sink
// playing the relay): every accepted message is recorded once with its
// stamp and source, refused recipients get the sink's codes.
func TestGeneratorAgainstSink(t *testing.T) {
	rec := NewRecorder()
	sink := startTestSink(t, "mx", Behavior{RcptCodes: map[string]int{"refused.test": 550, "later@later.test": 451}}, rec)
	load := Load{Target: sink.Addr(), RunID: "it", Size: 2048, Conns: 2, Count: 30, Duration: 30 * time.Second,
		Senders: []Sender{
			{Tenant: "t1", From: "a@t1.test", To: []string{"x@ok.test", "y@refused.test", "later@later.test"}},
			{Tenant: "t2", From: "b@t2.test", To: []string{"x@ok.test"}},
		}}
	res, err := Generate(context.Background(), load)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Submissions); got != 60 {
		t.Fatalf("%d submissions, want 60 (30 per sender)", got)
	}
	if c := res.CodeCounts("t1"); c[250] != 10 || c[550] != 10 || c[451] != 10 {
		t.Errorf("t1 reply codes %v, want 10 each of 250, 550, 451", c)
	}
	if c := res.CodeCounts("t2"); c[250] != 30 {
		t.Errorf("t2 reply codes %v, want 30 x 250", c)
	}
	ids := res.Accepted("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if missing := rec.WaitFor(ctx, ids, 5*time.Second); missing != 0 {
		t.Fatalf("%d accepted messages never arrived", missing)
	}
	counts := rec.Counts()
	if len(counts) != 40 {
		t.Errorf("%d distinct ids arrived, want 40 (refused ones must not)", len(counts))
	}
	bySub := map[string]Submission{}
	for _, s := range res.Submissions {
		bySub[s.ID] = s
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s arrived %d times", id, n)
		}
		a := rec.Arrivals(id)[0]
		s, ok := bySub[id]
		if !ok || !s.OK() {
			t.Errorf("%s arrived but was not accepted", id)
			continue
		}
		if a.Tenant != s.Tenant || !a.Submit.Equal(s.Start) || a.Source != "127.0.0.1" || a.Sink != "mx" {
			t.Errorf("arrival %+v does not match submission %+v", a, s)
		}
		if a.At.Before(a.Submit) {
			t.Errorf("%s arrived before it was submitted", id)
		}
	}
	if lat := latencies(res, rec.First(), "t2"); len(lat) != 30 {
		t.Errorf("%d latencies for t2, want 30", len(lat))
	}
	if rec.Unstamped() != 0 {
		t.Errorf("%d unstamped arrivals", rec.Unstamped())
	}
	if got := len(rec.Attempts("mx")); got != 60 {
		t.Errorf("sink saw %d MAIL commands, want 60", got)
	}
}

// TestGeneratorRateAndWall: an open-loop sender stops at its count, and a
// sink answering 421 to MAIL refuses all while counting the attempts.
func TestGeneratorRateAndWall(t *testing.T) {
	rec := NewRecorder()
	wall := startTestSink(t, "wall", Behavior{MailCode: 421}, rec)
	load := Load{Target: wall.Addr(), RunID: "rw", Size: 512, Conns: 1, Count: 5, Rate: 200, Duration: 30 * time.Second,
		Senders: []Sender{{Tenant: "t", From: "a@t.test", To: []string{"x@y.test"}}}}
	res, err := Generate(context.Background(), load)
	if err != nil {
		t.Fatal(err)
	}
	if c := res.CodeCounts(""); len(res.Submissions) != 5 || c[421] != 5 {
		t.Errorf("%d submissions with codes %v, want 5 x 421", len(res.Submissions), c)
	}
	if got := len(rec.Attempts("wall")); got != 5 {
		t.Errorf("wall saw %d attempts, want 5", got)
	}
	// A 421 closes the connection: each attempt reconnects.
	if got := rec.Conns("wall"); got != 5 {
		t.Errorf("wall accepted %d connections, want 5", got)
	}
	if len(rec.Counts()) != 0 {
		t.Error("the wall recorded an arrival")
	}
}

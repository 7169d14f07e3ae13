package bench

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, c := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is max", hundred, 100, 100 * time.Millisecond},
		{"p0 is min", hundred, 0, 1 * time.Millisecond},
		{"p50 of 4 rounds up rank", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p51 of 4", ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
	} {
		if got := Percentile(c.in, c.p); got != c.want {
			t.Errorf("%s: Percentile(p%v) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
}

func TestSummarizeSortsAndRounds(t *testing.T) {
	s := Summarize([]time.Duration{3 * time.Millisecond, 1500 * time.Microsecond, 10 * time.Millisecond, 2 * time.Millisecond})
	if s.Count != 4 || s.P50ms != 2 || s.P99ms != 10 || s.MaxMs != 10 {
		t.Errorf("Summarize = %+v, want count 4, p50 2, p99 10, max 10", s)
	}
	if z := Summarize(nil); z != (LatencySummary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", z)
	}
}

func TestJain(t *testing.T) {
	for _, c := range []struct {
		name string
		xs   []float64
		want float64
	}{
		{"equal", []float64{5, 5, 5, 5}, 1},
		{"one has all of 4", []float64{8, 0, 0, 0}, 0.25},
		{"one has all of 2", []float64{0, 3}, 0.5},
		{"1 and 3", []float64{1, 3}, 16.0 / 20},
		{"empty", nil, 0},
		{"all zero", []float64{0, 0}, 0},
	} {
		if got := Jain(c.xs); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: Jain(%v) = %v, want %v", c.name, c.xs, got, c.want)
		}
	}
}

func TestWindows(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	events := []Event{
		{"a", at(-1)},   // before start: ignored
		{"a", at(0)},    // window 0
		{"b", at(999)},  // window 0
		{"a", at(1000)}, // window 1
		{"a", at(2500)}, // window 2, the partial last one: dropped
	}
	w := Windows(events, t0, at(2600), time.Second)
	if len(w) != 2 {
		t.Fatalf("got %d windows, want 2 (a partial last window is dropped)", len(w))
	}
	if w[0]["a"] != 1 || w[0]["b"] != 1 || w[1]["a"] != 1 || w[1]["b"] != 0 {
		t.Errorf("windows = %v", w)
	}
	if Windows(events, t0, t0, time.Second) != nil {
		t.Error("an empty span has windows")
	}
}

func TestSeqOf(t *testing.T) {
	for id, want := range map[string]int{"run.t1.1": 1, "run.t1.42": 42, "x": 0, "a.b.1007": 1007} {
		if got := seqOf(id); got != want {
			t.Errorf("seqOf(%q) = %d, want %d", id, got, want)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// Fields 14-17: utime 250, stime 50, cutime 30, cstime 20 ticks. The
	// command name holds spaces and a ')'.
	stat := "4242 (fair way) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 12 0 100 1000000 500 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
	got, err := parseProcStatCPU(stat, false)
	if err != nil || got != 3 {
		t.Errorf("parseProcStatCPU = %v, %v; want 3 s", got, err)
	}
	got, err = parseProcStatCPU(stat, true)
	if err != nil || got != 3.5 {
		t.Errorf("parseProcStatCPU with children = %v, %v; want 3.5 s", got, err)
	}
	if _, err := parseProcStatCPU("12 (x) S 1 2", false); err == nil {
		t.Error("short stat parsed")
	}
	status := "Name:\tfairway\nVmPeak:\t  999 kB\nVmHWM:\t  20480 kB\nVmRSS:\t 100 kB\n"
	if got := parseVmHWM(status); got != 20480 {
		t.Errorf("parseVmHWM = %d, want 20480", got)
	}
}

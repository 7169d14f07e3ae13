package bench

import (
	"math"
	"runtime"
	"slices"
	"time"
)

// LatencySummary is a distribution of latencies, in milliseconds for JSON.
type LatencySummary struct {
	Count int     `json:"count"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// Percentile returns the p-th percentile (0..100) of sorted by the
// nearest-rank method; 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summarize sorts ds in place and summarizes it.
func Summarize(ds []time.Duration) LatencySummary {
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }
	s := LatencySummary{Count: len(ds)}
	if len(ds) > 0 {
		s.P50ms = ms(Percentile(ds, 50))
		s.P99ms = ms(Percentile(ds, 99))
		s.MaxMs = ms(ds[len(ds)-1])
	}
	return s
}

// Jain returns Jain's fairness index (Σx)²/(n·Σx²) of xs: 1 when all are
// equal, 1/n when one has everything. It returns 0 for no values or all
// zeros.
func Jain(xs []float64) float64 {
	var sum, sumSq float64
	for _, x := range xs {
		sum += x
		sumSq += x * x
	}
	if len(xs) == 0 || sumSq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sumSq)
}

// Windows counts events per key in consecutive windows of width w from
// start up to (not including) end: out[i][k] is key k's count in window i.
// Events outside [start, end) are ignored; a partial last window is dropped.
func Windows(events []Event, start, end time.Time, w time.Duration) []map[string]int {
	if w <= 0 || !end.After(start) {
		return nil
	}
	n := int(end.Sub(start) / w)
	out := make([]map[string]int, n)
	for i := range out {
		out[i] = map[string]int{}
	}
	for _, e := range events {
		if e.At.Before(start) {
			continue
		}
		i := int(e.At.Sub(start) / w)
		if i >= n {
			continue
		}
		out[i][e.Key]++
	}
	return out
}

// Event is one timed occurrence attributed to a key (a tenant).
type Event struct {
	Key string
	At  time.Time
}

// numCPU is the number of CPUs this process may use.
func numCPU() int { return runtime.NumCPU() }

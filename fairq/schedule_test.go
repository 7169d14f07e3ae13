package fairq

import (
	"testing"
	"time"
)

func TestRetryDelayBounds(t *testing.T) {
	tests := []struct {
		attempts int
		u        float64
		want     time.Duration
	}{
		{1, 0.5, 5 * time.Minute},              // no jitter at the midpoint
		{0, 0.5, 5 * time.Minute},              // below 1 counts as the first attempt
		{2, 0.5, 10 * time.Minute},             // doubles
		{3, 0.5, 20 * time.Minute},             //
		{1, 0, 4 * time.Minute},                // -20%
		{1, 0.999999, 6 * time.Minute},         // just under +20% (checked with tolerance)
		{6, 0.5, 160 * time.Minute},            // 5m·2^5
		{7, 0.5, 4 * time.Hour},                // capped (5m·2^6 = 320m > 240m)
		{1000, 0.5, 4 * time.Hour},             // no overflow far past the cap
		{7, 0, 4 * time.Hour * 8 / 10},         // jitter applies after the cap
		{1 << 30, 0.5, 4 * time.Hour},          // huge attempt count
		{1, -1, 5 * time.Minute},               // out-of-range jitter input → midpoint
		{1, 1, 5 * time.Minute},                //
		{1 << 20, 0.999999, 288 * time.Minute}, // the largest delay there is: cap·1.2
	}
	for _, tt := range tests {
		got := RetryDelay(tt.attempts, tt.u)
		if diff := got - tt.want; diff < -time.Second || diff > time.Second {
			t.Errorf("RetryDelay(%d, %v) = %v, want %v", tt.attempts, tt.u, got, tt.want)
		}
	}
}

func TestRetryDelayJitterSpreads(t *testing.T) {
	// Deliveries that failed together must not come back together.
	seen := map[time.Duration]bool{}
	for i := range 100 {
		seen[RetryDelay(3, float64(i)/100)] = true
	}
	if len(seen) < 90 {
		t.Fatalf("only %d distinct delays from 100 jitter inputs", len(seen))
	}
}

func TestLaneBackoffBounds(t *testing.T) {
	tests := []struct {
		failures int
		u        float64
		min, max time.Duration
	}{
		{1, 0.5, 30 * time.Second, 30 * time.Second},
		{1, 0, 24 * time.Second, 24 * time.Second},
		{2, 0.5, time.Minute, time.Minute},
		{6, 0.5, 16 * time.Minute, 16 * time.Minute},
		{7, 0.5, 30 * time.Minute, 30 * time.Minute}, // 32m capped
		{50, 0.999999, 35 * time.Minute, 36 * time.Minute},
		{-3, 0.5, 30 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		got := LaneBackoff(tt.failures, tt.u)
		if got < tt.min-time.Millisecond || got > tt.max+time.Millisecond {
			t.Errorf("LaneBackoff(%d, %v) = %v, want in [%v, %v]", tt.failures, tt.u, got, tt.min, tt.max)
		}
	}
}

func TestRetryDelayNeverShrinks(t *testing.T) {
	prev := time.Duration(0)
	for a := 1; a < 40; a++ {
		d := RetryDelay(a, 0.5)
		if d < prev {
			t.Fatalf("attempt %d delay %v shorter than attempt %d's %v", a, d, a-1, prev)
		}
		prev = d
	}
}

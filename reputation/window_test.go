package reputation

import (
	"testing"
	"time"
)

func TestCountersSlide(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	c := newCounters(weekSlots)
	c.add(t0.Unix(), HardBounce, 3)
	c.add(t0.Add(30*time.Minute).Unix(), Delivered, 10)
	c.add(t0.Add(3*time.Hour).Unix(), Delivered, 100)
	for _, tc := range []struct {
		at              time.Duration
		hour, day, week int // sent
		sinceDayBounce  int
	}{
		{3 * time.Hour, 100, 113, 113, 3},
		{3*time.Hour + 59*time.Minute, 100, 113, 113, 3},
		{4 * time.Hour, 0, 113, 113, 3},                 // the hour's buckets have slid past
		{23*time.Hour + 59*time.Minute, 0, 113, 113, 3}, // t0's hourly bucket is the 24th
		{24 * time.Hour, 0, 100, 113, 0},
		{27 * time.Hour, 0, 0, 113, 0},
		{168*time.Hour - time.Second, 0, 0, 113, 0},
		{171 * time.Hour, 0, 0, 0, 0},
	} {
		w := c.windows(t0.Add(tc.at), time.Time{})
		if w.Hour.Sent() != tc.hour || w.Day.Sent() != tc.day || w.Week.Sent() != tc.week || w.Day.HardBounce != tc.sinceDayBounce {
			t.Errorf("at +%v: hour %d day %d week %d (day bounces %d); want %d %d %d (%d)", tc.at,
				w.Hour.Sent(), w.Day.Sent(), w.Week.Sent(), w.Day.HardBounce, tc.hour, tc.day, tc.week, tc.sinceDayBounce)
		}
	}
	// since: only buckets that began at or after it
	w := c.windows(t0.Add(3*time.Hour), t0.Add(time.Hour))
	if w.Day.Sent() != 100 || w.Hour.Sent() != 100 {
		t.Errorf("since +1h: day %d hour %d, want 100 100", w.Day.Sent(), w.Hour.Sent())
	}
	// a bucket reused a week later starts from zero
	c.add(t0.Add(168*time.Hour).Unix(), Deferral, 1)
	if w := c.windows(t0.Add(168*time.Hour), time.Time{}); w.Week.HardBounce != 0 || w.Week.Deferral != 1 {
		t.Errorf("reused bucket: %+v", w.Week)
	}
}

func TestRingExportLoad(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	a := newCounters(weekSlots)
	for i := range 50 {
		a.add(t0.Add(time.Duration(i)*17*time.Minute).Unix(), Outcome(i%int(numOutcomes)), i+1)
	}
	b := newCounters(weekSlots)
	b.fine.load(a.fine.export())
	b.coarse.load(a.coarse.export())
	now := t0.Add(50 * 17 * time.Minute)
	if wa, wb := a.windows(now, time.Time{}), b.windows(now, time.Time{}); wa != wb {
		t.Errorf("loaded windows %+v, want %+v", wb, wa)
	}
	// counts saturate instead of wrapping
	a.add(t0.Unix(), Delivered, 1<<31)
	a.add(t0.Unix(), Delivered, 1<<31)
	a.add(t0.Unix(), Delivered, 1<<31)
	if got := a.coarse.b[t0.Unix()/3600%weekSlots].n[Delivered]; got != 1<<32-1 {
		t.Errorf("saturated count %d", got)
	}
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		code     int
		enhanced string
		want     Outcome
	}{
		{250, "2.0.0", Delivered},
		{550, "5.1.1", HardBounce},
		{552, "5.2.2", HardBounce},
		{550, "5.7.1", PolicyRejection},
		{554, "5.7.606", PolicyRejection},
		{421, "4.7.0", Deferral},
		{451, "4.3.0", Deferral},
		{0, "4.4.1", Deferral},
		{0, "5.1.2", HardBounce},
		{0, "", Deferral},
	} {
		if got := OutcomeOf(tc.code, tc.enhanced); got != tc.want {
			t.Errorf("OutcomeOf(%d, %s) = %s, want %s", tc.code, tc.enhanced, got, tc.want)
		}
	}
}

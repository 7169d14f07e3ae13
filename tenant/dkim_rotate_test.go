package tenant

import (
	"testing"
	"time"
)

func TestAdvance(t *testing.T) {
	p := RotationPolicy{Interval: 90 * 24 * time.Hour, PublishDelay: 48 * time.Hour, RetireDelay: 48 * time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const s = time.Second
	key := func(sel, alg string, st KeyState, created time.Time) dkimKey {
		return dkimKey{Domain: "example.com", Selector: sel, Algorithm: alg, State: st, Created: created}
	}
	pending := func(sel string, firstSeen time.Time) dkimKey {
		k := key(sel, AlgorithmRSA, KeyPending, t0)
		k.FirstSeen = firstSeen
		return k
	}
	active := func(sel, alg string, activated time.Time) dkimKey {
		k := key(sel, alg, KeyActive, t0.Add(-time.Hour))
		k.Activated = activated
		return k
	}
	retiring := func(sel string, since time.Time) dkimKey {
		k := key(sel, AlgorithmRSA, KeyRetiring, t0.Add(-time.Hour))
		k.RetiringSince = since
		return k
	}
	type want struct {
		state     KeyState
		firstSeen time.Time
	}
	tests := []struct {
		name   string
		keys   []dkimKey
		obs    map[string]observation
		now    time.Time
		want   []want
		rotate bool
	}{
		{"pending, not published", []dkimKey{pending("a", time.Time{})}, map[string]observation{"a": obsAbsent}, at(0),
			[]want{{KeyPending, time.Time{}}}, false},
		{"pending, not looked up", []dkimKey{pending("a", time.Time{})}, nil, at(0),
			[]want{{KeyPending, time.Time{}}}, false},
		{"pending, seen for the first time", []dkimKey{pending("a", time.Time{})}, map[string]observation{"a": obsPublished}, at(0),
			[]want{{KeyPending, at(0)}}, false},
		{"pending, seen, a second before the delay", []dkimKey{pending("a", at(0))}, map[string]observation{"a": obsPublished}, at(48*time.Hour - s),
			[]want{{KeyPending, at(0)}}, false},
		{"pending, seen, delay passed", []dkimKey{pending("a", at(0))}, map[string]observation{"a": obsPublished}, at(48 * time.Hour),
			[]want{{KeyActive, at(0)}}, false},
		{"pending, delay passed but lookup failed", []dkimKey{pending("a", at(0))}, map[string]observation{"a": obsUnknown}, at(72 * time.Hour),
			[]want{{KeyPending, at(0)}}, false},
		{"pending, delay passed but record gone", []dkimKey{pending("a", at(0))}, map[string]observation{"a": obsAbsent}, at(72 * time.Hour),
			[]want{{KeyPending, time.Time{}}}, false},
		{"activation retires the old key of the same algorithm only",
			[]dkimKey{active("old", AlgorithmRSA, at(-50*24*time.Hour)), active("olde", AlgorithmEd25519, at(-50*24*time.Hour)), pending("new", at(0))},
			map[string]observation{"new": obsPublished}, at(48 * time.Hour),
			[]want{{KeyRetiring, time.Time{}}, {KeyActive, time.Time{}}, {KeyActive, at(0)}}, false},
		{"retiring, a second before the delay", []dkimKey{retiring("a", at(0))}, nil, at(48*time.Hour - s),
			[]want{{KeyRetiring, time.Time{}}}, false},
		{"retiring, delay passed", []dkimKey{retiring("a", at(0))}, nil, at(48 * time.Hour),
			[]want{{KeyRemoved, time.Time{}}}, false},
		{"active, a second before the interval", []dkimKey{active("a", AlgorithmRSA, at(0))}, nil, at(90*24*time.Hour - s),
			[]want{{KeyActive, time.Time{}}}, false},
		{"active, interval passed", []dkimKey{active("a", AlgorithmRSA, at(0))}, nil, at(90 * 24 * time.Hour),
			[]want{{KeyActive, time.Time{}}}, true},
		{"interval passed, rotation in progress", []dkimKey{active("a", AlgorithmRSA, at(0)), pending("b", time.Time{})}, nil, at(200 * 24 * time.Hour),
			[]want{{KeyActive, time.Time{}}, {KeyPending, time.Time{}}}, false},
		{"interval passed, key generating", []dkimKey{active("a", AlgorithmRSA, at(0)), key("b", AlgorithmRSA, KeyGenerating, t0)}, nil, at(200 * 24 * time.Hour),
			[]want{{KeyActive, time.Time{}}, {KeyGenerating, time.Time{}}}, false},
		{"generating keys wait", []dkimKey{key("b", AlgorithmRSA, KeyGenerating, t0)}, map[string]observation{"b": obsPublished}, at(1000 * time.Hour),
			[]want{{KeyGenerating, time.Time{}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]dkimKey(nil), tc.keys...)
			next, rotate := advance(tc.keys, tc.obs, tc.now, p)
			if rotate != tc.rotate {
				t.Errorf("rotate = %v, want %v", rotate, tc.rotate)
			}
			for i, w := range tc.want {
				k := next[i]
				if k.State != w.state || !k.FirstSeen.Equal(w.firstSeen) {
					t.Errorf("key %s: %s first seen %v, want %s first seen %v", k.Selector, k.State, k.FirstSeen, w.state, w.firstSeen)
				}
				if k.State == KeyActive && in[i].State != KeyActive && !k.Activated.Equal(tc.now) {
					t.Errorf("key %s: activated %v, want %v", k.Selector, k.Activated, tc.now)
				}
				if k.State == KeyRetiring && in[i].State != KeyRetiring && !k.RetiringSince.Equal(tc.now) {
					t.Errorf("key %s: retiring since %v, want %v", k.Selector, k.RetiringSince, tc.now)
				}
			}
			for i := range in {
				if !sameKey(in[i], tc.keys[i]) {
					t.Errorf("advance changed its input")
				}
			}
		})
	}
}

func TestPickSelector(t *testing.T) {
	now := time.Date(2026, 11, 30, 23, 0, 0, 0, time.FixedZone("x", 5*3600))
	taken := map[string]bool{}
	has := func(s string) bool { return taken[s] }
	for _, want := range []string{"fw202611r", "fw202611r2", "fw202611r3"} {
		if got := pickSelector(now, AlgorithmRSA, has); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		taken[want] = true
	}
	if got := pickSelector(now, AlgorithmEd25519, has); got != "fw202611e" {
		t.Errorf("ed25519: %s", got)
	}
	// UTC month, not the local one.
	if got := pickSelector(time.Date(2026, 12, 1, 2, 0, 0, 0, time.FixedZone("x", 5*3600)), AlgorithmRSA, has); got != "fw202611r4" {
		t.Errorf("UTC month: %s", got)
	}
}

func TestKeyRecordP(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v=DKIM1; k=rsa; p=ABC+/=", "ABC+/="},
		{"v=DKIM1;k=ed25519;p=AB C\tD ; n=x", "ABCD"},
		{" p = AB", "AB"},
		{"v=DKIM1; k=rsa", ""},
	} {
		if got, _ := keyRecordP(tc.in); got != tc.want {
			t.Errorf("keyRecordP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

package relay

import (
	"net"
	"slices"
	"testing"
)

func TestRouteTableMostSpecificWins(t *testing.T) {
	rt, err := newRouteTable([]Route{
		{Domain: "*", To: "127.0.0.1:2600"},
		{Domain: ".example.com", To: "sub.example.net:25"},
		{Domain: ".deep.example.com", To: "deep.example.net:25"},
		{Domain: "Example.com.", To: "EXACT.example.net:2525"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ domain, want string }{
		{"example.com", "exact.example.net:2525"},
		{"a.example.com", "sub.example.net:25"},
		{"x.deep.example.com", "deep.example.net:25"},
		{"deep.example.com", "sub.example.net:25"}, // ".deep.example.com" is subdomains only
		{"notexample.com", "127.0.0.1:2600"},
		{"other.org", "127.0.0.1:2600"},
	} {
		got, ok := rt.lookup(tc.domain)
		if !ok || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.domain, got, ok, tc.want)
		}
	}

	rt, err = newRouteTable([]Route{{Domain: ".example.com", To: "h:25"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"example.com", "other.org"} {
		if got, ok := rt.lookup(d); ok {
			t.Errorf("%s routed to %q without a wildcard", d, got)
		}
	}
}

func TestRouteTableRejectsBadRoutes(t *testing.T) {
	for _, routes := range [][]Route{
		{{Domain: "example.com", To: "no-port"}},
		{{Domain: "example.com", To: ":25"}},
		{{Domain: "example.com", To: "h:99999"}},
		{{Domain: "", To: "h:25"}},
		{{Domain: "*.example.com", To: "h:25"}},
		{{Domain: "a..b", To: "h:25"}},
		{{Domain: "*", To: "h:25"}, {Domain: "*", To: "i:25"}},
		{{Domain: "x.org", To: "h:25"}, {Domain: "X.org", To: "i:25"}},
	} {
		if _, err := newRouteTable(routes); err == nil {
			t.Errorf("%v accepted", routes)
		}
	}
}

func TestOrderMX(t *testing.T) {
	mxs := []*net.MX{
		{Host: "c.example.", Pref: 20},
		{Host: "B.example.", Pref: 10},
		{Host: "a.example.", Pref: 10},
		{Host: "d.example.", Pref: 5},
		{Host: "a.example", Pref: 30}, // duplicate host at a worse preference
	}
	noShuffle := func(int, func(i, j int)) {}
	reverse := func(n int, swap func(i, j int)) {
		for i := 0; i < n/2; i++ {
			swap(i, n-1-i)
		}
	}
	if got := orderMX(mxs, noShuffle); !slices.Equal(got, []string{"d.example", "b.example", "a.example", "c.example"}) {
		t.Errorf("unshuffled: %v", got)
	}
	// Only hosts of equal preference change places.
	if got := orderMX(mxs, reverse); !slices.Equal(got, []string{"d.example", "a.example", "b.example", "c.example"}) {
		t.Errorf("shuffled: %v", got)
	}
	if got := mxSite(mxs); got != "d.example" {
		t.Errorf("site %q", got)
	}
	// Among equals, the smallest name, whatever the order.
	tie := []*net.MX{{Host: "mx2.example.", Pref: 10}, {Host: "MX1.example.", Pref: 10}}
	if got := mxSite(tie); got != "mx1.example" {
		t.Errorf("site of a tie %q", got)
	}
}

func TestNullMX(t *testing.T) {
	for _, tc := range []struct {
		mxs  []*net.MX
		want bool
	}{
		{[]*net.MX{{Host: ".", Pref: 0}}, true},
		{[]*net.MX{{Host: "", Pref: 0}}, true},
		{[]*net.MX{{Host: ".", Pref: 0}, {Host: "mx.example.", Pref: 10}}, false}, // not RFC 7505; "." is skipped
		{[]*net.MX{{Host: "mx.example.", Pref: 0}}, false},
		{nil, false},
	} {
		if got := isNullMX(tc.mxs); got != tc.want {
			t.Errorf("%v: %v", tc.mxs, got)
		}
	}
	mixed := []*net.MX{{Host: ".", Pref: 0}, {Host: "mx.example.", Pref: 10}}
	if got := orderMX(mixed, func(int, func(i, j int)) {}); !slices.Equal(got, []string{"mx.example"}) {
		t.Errorf("mixed: %v", got)
	}
	if got := mxSite(mixed); got != "mx.example" {
		t.Errorf("mixed site %q", got)
	}
}

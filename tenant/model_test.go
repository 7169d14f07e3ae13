package tenant

import (
	"errors"
	"testing"
)

func TestQuarantineRuleValidate(t *testing.T) {
	for _, tc := range []struct {
		rule QuarantineRule
		ok   bool
	}{
		{QuarantineRule{Check: "spf", Result: "fail", Action: "quarantine"}, true},
		{QuarantineRule{Check: "dmarc", Result: "none", Action: "reject"}, true},
		{QuarantineRule{Check: "dkim", Result: "permerror", Action: "quarantine"}, true},
		{QuarantineRule{Check: "noauth", Action: "quarantine"}, true},
		{QuarantineRule{Check: "attachment", Value: "exe, .js,scr", Action: "reject"}, true},
		{QuarantineRule{Check: "size", Value: "10485760", Action: "quarantine"}, true},
		{QuarantineRule{Check: "sender", Value: "@spam.example", Action: "reject"}, true},
		{QuarantineRule{Check: "sender", Value: "boss@partner.example", Action: "accept"}, true},

		{QuarantineRule{Check: "spam", Result: "fail", Action: "quarantine"}, false},
		{QuarantineRule{Check: "spf", Result: "bad", Action: "quarantine"}, false},
		{QuarantineRule{Check: "spf", Result: "fail", Value: "x", Action: "quarantine"}, false},
		{QuarantineRule{Check: "spf", Result: "fail", Action: "accept"}, false},
		{QuarantineRule{Check: "spf", Result: "fail", Action: "drop"}, false},
		{QuarantineRule{Check: "noauth", Result: "fail", Action: "quarantine"}, false},
		{QuarantineRule{Check: "attachment", Value: "", Action: "reject"}, false},
		{QuarantineRule{Check: "attachment", Value: "exe,,js", Action: "reject"}, false},
		{QuarantineRule{Check: "attachment", Value: "../x", Action: "reject"}, false},
		{QuarantineRule{Check: "size", Value: "0", Action: "reject"}, false},
		{QuarantineRule{Check: "size", Value: "10MB", Action: "reject"}, false},
		{QuarantineRule{Check: "sender", Value: "not an address", Action: "reject"}, false},
		{QuarantineRule{Check: "sender", Value: "@", Action: "reject"}, false},
	} {
		err := tc.rule.Validate()
		if tc.ok && err != nil {
			t.Errorf("%+v: %v", tc.rule, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: accepted (err %v)", tc.rule, err)
		}
	}
}

func TestEditTenantRefusalWritesNothing(t *testing.T) {
	d := openTestDir(t)
	d.must(d.AddTenant("a", Policy{Weight: 3}))
	refused := errors.New("no")
	if err := d.EditTenant("a", func(p *Policy) error { p.Weight = 9; return refused }); !errors.Is(err, refused) {
		t.Fatalf("EditTenant: %v", err)
	}
	d.reopen()
	if p, _ := d.TenantPolicy("a"); p.Weight != 3 {
		t.Fatalf("weight %d after a refused edit, want 3", p.Weight)
	}
}

package adminapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"fairway/tenant"
)

func TestQuarantineRulesEditedInPlace(t *testing.T) {
	f := newFixture(t)
	h := f.api.SocketHandler()
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme"}), http.StatusCreated)

	add := func(r NewRule) response { return do(t, h, "POST", "/v1/tenants/acme/rules", r) }
	mustStatus(t, add(NewRule{Rule: tenant.QuarantineRule{Check: "spf", Result: "fail", Action: "quarantine"}}), http.StatusCreated)
	mustStatus(t, add(NewRule{Rule: tenant.QuarantineRule{Check: "size", Value: "1000", Action: "reject"}}), http.StatusCreated)
	// An allow-list entry goes first.
	mustStatus(t, add(NewRule{Rule: tenant.QuarantineRule{Check: "sender", Value: "@partner.example", Action: "accept"}, Position: 1}), http.StatusCreated)

	checks := func() []string {
		p, _ := f.dir.TenantPolicy("acme")
		var out []string
		for _, r := range p.Quarantine {
			out = append(out, r.Check)
		}
		return out
	}
	if got := checks(); len(got) != 3 || got[0] != "sender" || got[1] != "spf" || got[2] != "size" {
		t.Fatalf("rules %v, want sender spf size", got)
	}

	// Bad rules, positions and numbers are refused and change nothing.
	for _, r := range []NewRule{
		{Rule: tenant.QuarantineRule{Check: "spf", Result: "maybe", Action: "quarantine"}},
		{Rule: tenant.QuarantineRule{Check: "size", Value: "1000", Action: "accept"}},
		{Rule: tenant.QuarantineRule{Check: "noauth", Action: "quarantine"}, Position: 5},
		{Rule: tenant.QuarantineRule{Check: "noauth", Action: "quarantine"}, Position: -1},
	} {
		resp := add(r)
		mustStatus(t, resp, http.StatusBadRequest)
		if e := resp.error(t); e.Code != CodeInvalid {
			t.Errorf("%+v: code %q", r, e.Code)
		}
	}
	mustStatus(t, do(t, h, "DELETE", "/v1/tenants/acme/rules/4", nil), http.StatusNotFound)
	mustStatus(t, do(t, h, "DELETE", "/v1/tenants/acme/rules/zero", nil), http.StatusBadRequest)
	mustStatus(t, do(t, h, "POST", "/v1/tenants/ghost/rules", NewRule{Rule: tenant.QuarantineRule{Check: "noauth", Action: "reject"}}), http.StatusNotFound)
	if got := checks(); len(got) != 3 {
		t.Fatalf("refused edits changed the rules: %v", got)
	}

	resp := do(t, h, "DELETE", "/v1/tenants/acme/rules/2", nil)
	mustStatus(t, resp, http.StatusOK)
	var tn tenant.Tenant
	if err := json.Unmarshal(resp.body, &tn); err != nil {
		t.Fatal(err)
	}
	if got := checks(); len(got) != 2 || got[0] != "sender" || got[1] != "size" || len(tn.Policy.Quarantine) != 2 {
		t.Fatalf("after removing rule 2: %v (answer %+v)", got, tn.Policy.Quarantine)
	}
}

func TestQuotaAndIMAPCapsUpdate(t *testing.T) {
	f := newFixture(t)
	h := f.api.SocketHandler()
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme"}), http.StatusCreated)
	mustStatus(t, do(t, h, "PATCH", "/v1/tenants/acme",
		`{"mailbox_quota":1073741824,"tenant_quota":10737418240,"imap_connections":50,"imap_user_connections":5}`), http.StatusOK)
	p, _ := f.dir.TenantPolicy("acme")
	if p.MailboxQuota != 1<<30 || p.TenantQuota != 10<<30 || p.IMAPConnections != 50 || p.IMAPUserConnections != 5 {
		t.Fatalf("policy %+v", p)
	}
	mustStatus(t, do(t, h, "PATCH", "/v1/tenants/acme", `{"mailbox_quota":-1}`), http.StatusBadRequest)
	if p, _ := f.dir.TenantPolicy("acme"); p.MailboxQuota != 1<<30 {
		t.Fatalf("refused update changed the quota: %+v", p)
	}
}

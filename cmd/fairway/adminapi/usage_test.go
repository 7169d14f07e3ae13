package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"fairway/mailstore"
)

func TestTenantShowReportsStorageUsed(t *testing.T) {
	f := newFixture(t)
	store, err := mailstore.Open(t.TempDir(), mailstore.Options{Directory: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	api := New(Config{Directory: f.dir, Tokens: f.dir, Keys: f.dir, Queue: f.queue, Usage: store})
	h := api.SocketHandler()
	mustStatus(t, do(t, h, "POST", "/v1/tenants", NewTenant{Name: "acme"}), http.StatusCreated)
	if err := f.dir.AddDomain("acme.example", "acme"); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.AddMailbox("bob@acme.example", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	msg := []byte("From: a@b.example\r\nSubject: x\r\n\r\nhello there\r\n")
	if err := store.Deliver(context.Background(), "bob@acme.example", mailstore.FolderInbox, msg); err != nil {
		t.Fatal(err)
	}
	resp := do(t, h, "GET", "/v1/tenants/acme", nil)
	mustStatus(t, resp, http.StatusOK)
	var d TenantDetail
	if err := json.Unmarshal(resp.body, &d); err != nil {
		t.Fatal(err)
	}
	if d.StorageUsed == nil || *d.StorageUsed < int64(len(msg)) {
		t.Fatalf("storage_used %v, want at least %d", d.StorageUsed, len(msg))
	}
	// Without a store there is no figure, rather than a false zero.
	resp = do(t, f.api.SocketHandler(), "GET", "/v1/tenants/acme", nil)
	d = TenantDetail{}
	if err := json.Unmarshal(resp.body, &d); err != nil || d.StorageUsed != nil {
		t.Fatalf("without a store: %s", resp.body)
	}
}

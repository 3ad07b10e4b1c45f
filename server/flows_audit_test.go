package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// Every change to a flow writes exactly one audit row, in its transaction, naming the actor and the
// changed fields; a no-op writes none (PRODUCT §5.17, §2.1 Updates).
func TestFlowsAuditRows(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Manager)
	ctx := context.Background()
	send := func(method, path, body string, want int) map[string]any {
		t.Helper()
		hdr := http.Header{"Authorization": {"Bearer " + tok}}
		var rd io.Reader
		if body != "" {
			hdr.Set("Content-Type", "application/json")
			rd = strings.NewReader(body)
		}
		resp, b := e.Send(t, method, path, hdr, rd)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
		}
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return out
	}
	rows := func(id int64) []store.AuditLog {
		t.Helper()
		r, err := store.ListAuditForResource(ctx, e.DB.DB, "flow", id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// expect checks that exactly one new row appeared, newest first, with the action and fields.
	expect := func(id int64, before int, action string, fields ...string) {
		t.Helper()
		r := rows(id)
		if len(r) != before+1 {
			t.Fatalf("%s: %d audit rows, want %d", action, len(r), before+1)
		}
		got := r[0]
		if got.Action != action || got.ActorType != store.ActorUser || got.ActorUserID == nil || *got.ActorUserID != u.ID || got.RequestID == nil {
			t.Fatalf("%s: row %+v", action, got)
		}
		if len(fields) > 0 {
			var ch struct{ Fields []string }
			if got.Changes == nil || json.Unmarshal(*got.Changes, &ch) != nil || !slices.Equal(ch.Fields, fields) {
				t.Fatalf("%s: changes %v, want fields %v", action, got.Changes, fields)
			}
		}
	}

	created := send("POST", "/api/v1/flows", `{"name":"Audited","data":{"nodes":[{"id":"t","data":{"type":"trigger-manual"}}],"edges":[]}}`, 201)
	id := int64(created["id"].(float64))
	path := fmt.Sprintf("/api/v1/flows/%d", id)
	expect(id, 0, "flow.create")
	send("PATCH", path, `{}`, 200)
	if n := len(rows(id)); n != 1 {
		t.Fatalf("an empty PATCH wrote an audit row (%d rows)", n)
	}
	send("PATCH", path, `{"name":"Audited 2","description":"d"}`, 200)
	expect(id, 1, "flow.update", "name", "description")
	send("POST", path+"/publish", ``, 200)
	expect(id, 2, "flow.publish", "status", "published_version")
	send("POST", path+"/unpublish", ``, 200)
	expect(id, 3, "flow.unpublish", "status", "published_version")
	send("POST", path+"/versions", `{"name":"snap"}`, 201)
	expect(id, 4, "flow.version_created")
	send("POST", path+"/versions/1/restore", ``, 200)
	expect(id, 5, "flow.version_restored", "data")
	dup := send("POST", path+"/duplicate", ``, 201)
	expect(int64(dup["id"].(float64)), 0, "flow.duplicate")
	send("DELETE", path, ``, 204)
	expect(id, 6, "flow.delete")

	// A refused change writes nothing.
	other := send("POST", "/api/v1/flows", `{"name":"Other"}`, 201)
	oid := int64(other["id"].(float64))
	send("PATCH", fmt.Sprintf("/api/v1/flows/%d", oid), `{"data":{"nodes":[{"id":"a","data":{"type":"response-data"}},{"id":"a","data":{"type":"response-data"}}],"edges":[]}}`, 422)
	if n := len(rows(oid)); n != 1 {
		t.Fatalf("a refused update wrote an audit row (%d rows)", n)
	}
}

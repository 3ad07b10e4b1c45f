package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth/casdoortest"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// alReq sends a raw request with optional extra headers; a non-empty body is sent as JSON.
func alReq(t *testing.T, e *testEnv, method, path, tok, body string, extra ...string) (*http.Response, []byte) {
	t.Helper()
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	if body == "" {
		return e.Send(t, method, path, h, nil)
	}
	h.Set("Content-Type", "application/json")
	return e.Send(t, method, path, h, strings.NewReader(body))
}

// alList calls GET /audit-logs with a raw query and decodes the page.
func alList(t *testing.T, e *testEnv, tok, query string) api.AuditLogPage {
	t.Helper()
	resp, body := alReq(t, e, http.MethodGet, "/api/v1/audit-logs?"+query, tok, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /audit-logs?%s: %d %s", query, resp.StatusCode, body)
	}
	var page api.AuditLogPage
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	return page
}

func alIDs(items []api.AuditLog) []int64 {
	out := make([]int64, len(items))
	for i, a := range items {
		out[i] = a.Id
	}
	return out
}

// alRows reads audit rows of an action straight from the database, newest first.
func alRows(t *testing.T, e *testEnv, action string) []store.AuditLog {
	t.Helper()
	var rows []store.AuditLog
	if err := e.DB.Where("action = ?", action).Order("id DESC").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

func alCreated(t *testing.T, resp *http.Response, body []byte) int64 {
	t.Helper()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var out struct{ ID int64 }
	if err := json.Unmarshal(body, &out); err != nil || out.ID == 0 {
		t.Fatalf("create: %v %s", err, body)
	}
	return out.ID
}

func nullStr(n interface{ Get() (string, error) }) string {
	v, err := n.Get()
	if err != nil {
		return "<null>"
	}
	return v
}

// The audit log API: entries with their actor (user or API token), request id, IP, User-Agent and
// changes; every filter; the cursor and its binding to the filters (PRODUCT §2.3, §5.17).
func TestAuditLogList(t *testing.T) {
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	ed, edTok := e.User(rbac.Editor)
	partner, partnerID := tpScopedToken(t, e, ed, "flow:create", "flow:read", "flow:update")

	// Four changes: a flow by the editor, a flow under the editor's API token, an update, a team.
	resp, body := alReq(t, e, http.MethodPost, "/api/v1/flows", edTok, `{"name":"Audit A"}`,
		"X-Request-ID", "req-audit-a", "User-Agent", "audit-test/1.0")
	flowA := alCreated(t, resp, body)
	resp, body = alReq(t, e, http.MethodPost, "/api/v1/flows", partner, `{"name":"Audit B"}`, "X-Request-ID", "req-audit-b")
	flowB := alCreated(t, resp, body)
	if resp, body := alReq(t, e, http.MethodPatch, fmt.Sprintf("/api/v1/flows/%d", flowA), edTok, `{"name":"Audit A2"}`); resp.StatusCode != 200 {
		t.Fatalf("patch: %d %s", resp.StatusCode, body)
	}
	resp, body = alReq(t, e, http.MethodPost, "/api/v1/teams", adminTok, `{"name":"Audited team"}`)
	team := alCreated(t, resp, body)

	all := alList(t, e, adminTok, "")
	if len(all.Items) != 4 || all.HasMore || !all.NextCursor.IsNull() {
		t.Fatalf("all entries: %+v", all)
	}
	if !slices.IsSortedFunc(all.Items, func(a, b api.AuditLog) int { return int(b.Id - a.Id) }) {
		t.Fatalf("not newest first: %v", alIDs(all.Items))
	}
	byAction := map[string][]api.AuditLog{}
	for _, it := range all.Items {
		byAction[it.Action] = append(byAction[it.Action], it)
	}
	creates := byAction["flow.create"]
	if len(creates) != 2 || len(byAction["flow.update"]) != 1 || len(byAction["team.created"]) != 1 {
		t.Fatalf("actions %v", byAction)
	}
	// Under the user's own token.
	a := creates[1]
	if a.Actor.Type != api.AuditActorType("user") || nullInt(a.Actor.UserId) != ed.ID || !a.Actor.ApiTokenId.IsNull() || a.Actor.Display != ed.Name ||
		nullInt(a.ResourceId) != flowA || a.ResourceType != "flow" || a.Status != api.AuditStatus("success") ||
		nullStr(a.RequestId) != "req-audit-a" || nullStr(a.Ip) != "127.0.0.1" || nullStr(a.UserAgent) != "audit-test/1.0" {
		t.Errorf("user entry %+v", a)
	}
	// Under an API token: the token and its owner (PRODUCT §3.3).
	b := creates[0]
	if b.Actor.Type != api.AuditActorType("api_token") || nullInt(b.Actor.UserId) != ed.ID || nullInt(b.Actor.ApiTokenId) != partnerID ||
		nullInt(b.ResourceId) != flowB || nullStr(b.RequestId) != "req-audit-b" {
		t.Errorf("token entry %+v", b)
	}
	// Details: the changed field names with their before and after values.
	u := byAction["flow.update"][0]
	if !slices.Equal(u.Details.Fields, []string{"name"}) || u.Details.Before["name"] != "Audit A" || u.Details.After["name"] != "Audit A2" ||
		!u.Details.Operation.IsNull() || !u.Details.MissingPermission.IsNull() || !u.Details.Reason.IsNull() {
		t.Errorf("update details %+v", u.Details)
	}

	// One entry.
	gr, err := e.Client(adminTok).GetAuditLogWithResponse(context.Background(), u.Id)
	if err != nil || gr.StatusCode() != http.StatusOK || gr.JSON200 == nil || gr.JSON200.Id != u.Id || gr.JSON200.Action != "flow.update" {
		t.Fatalf("GET one: %v %d %s", err, gr.StatusCode(), gr.Body)
	}
	resp, body = alReq(t, e, http.MethodGet, fmt.Sprintf("/api/v1/audit-logs/%d", u.Id+1000), adminTok, "")
	uaProblem(t, resp, body, http.StatusNotFound, "not-found")

	// Spread the entries over four hours so from/to select a known window.
	base := store.Now().Add(-10 * time.Hour)
	for i, id := range alIDs(all.Items) { // newest first: the oldest gets base, the newest base+3h
		at := base.Add(time.Duration(len(all.Items)-1-i) * time.Hour)
		if err := e.DB.Model(&store.AuditLog{}).Where("id = ?", id).Update("occurred_at", at).Error; err != nil {
			t.Fatal(err)
		}
	}
	ids := alIDs(all.Items) // newest first: team, update, create B, create A
	paris := time.FixedZone("CET", 3600)
	q := url.QueryEscape
	filters := []struct {
		query string
		want  []int64
	}{
		{fmt.Sprintf("actor_user_id=%d", ed.ID), ids[1:]},
		{fmt.Sprintf("api_token_id=%d", partnerID), ids[2:3]},
		{"action=flow.", ids[1:]},
		{"action=flow.create", ids[2:]},
		{"action=team.", ids[:1]},
		{"resource_type=flow", ids[1:]},
		{fmt.Sprintf("resource_type=flow&resource_id=%d", flowA), []int64{ids[1], ids[3]}},
		{fmt.Sprintf("resource_type=team&resource_id=%d", team), ids[:1]},
		{"status=success", ids},
		{"status=denied", []int64{}},
		{"from=" + q(base.Add(time.Hour).Format(time.RFC3339Nano)) + "&to=" + q(base.Add(3*time.Hour).Format(time.RFC3339Nano)), ids[1:3]},
		// Any offset is accepted and normalised.
		{"from=" + q(base.Add(2*time.Hour).In(paris).Format(time.RFC3339Nano)), ids[:2]},
		{fmt.Sprintf("actor_user_id=%d&action=flow.update", ed.ID), ids[1:2]},
	}
	for _, f := range filters {
		if got := alIDs(alList(t, e, adminTok, f.query).Items); !slices.Equal(got, f.want) {
			t.Errorf("%s: ids %v, want %v", f.query, got, f.want)
		}
	}

	// Cursor paging: one at a time through the flow entries, then the end.
	var walked []int64
	cursor := ""
	for range 5 {
		query := "action=flow.&limit=1"
		if cursor != "" {
			query += "&cursor=" + cursor
		}
		page := alList(t, e, adminTok, query)
		walked = append(walked, alIDs(page.Items)...)
		if !page.HasMore {
			if !page.NextCursor.IsNull() {
				t.Fatalf("last page has next_cursor %v", page.NextCursor)
			}
			break
		}
		cursor = nullStr(page.NextCursor)
	}
	if !slices.Equal(walked, ids[1:]) {
		t.Fatalf("walked %v, want %v", walked, ids[1:])
	}
	first := alList(t, e, adminTok, "action=flow.&limit=2")
	next := nullStr(first.NextCursor)
	if !first.HasMore || len(first.Items) != 2 {
		t.Fatalf("first batch %+v", first)
	}
	if got := alIDs(alList(t, e, adminTok, "limit=2&action=flow.&cursor="+next).Items); !slices.Equal(got, ids[3:]) {
		t.Fatalf("second batch %v, want %v", got, ids[3:])
	}

	// A malformed cursor, or one issued for other filters: 400 at #/query/cursor.
	forged, _ := json.Marshal(map[string]any{"v": 2, "id": ids[0], "f": "0000000000000000"})
	for _, bad := range []string{
		"!!!", strings.Repeat("a", 257), "bm90LWpzb24", base64.RawURLEncoding.EncodeToString(forged),
		base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"id":-4,"f":"00"}`)),
	} {
		resp, body := alReq(t, e, http.MethodGet, "/api/v1/audit-logs?action=flow.&cursor="+url.QueryEscape(bad), adminTok, "")
		uaProblem(t, resp, body, http.StatusBadRequest, "validation-error", "#/query/cursor")
	}
	for _, other := range []string{"action=team.", "action=flow.&status=success", "", fmt.Sprintf("action=flow.&actor_user_id=%d", ed.ID)} {
		resp, body := alReq(t, e, http.MethodGet, "/api/v1/audit-logs?limit=2&"+other+"&cursor="+next, adminTok, "")
		uaProblem(t, resp, body, http.StatusBadRequest, "validation-error", "#/query/cursor")
	}
	for _, bad := range []string{"limit=0", "limit=201", "actor_user_id=0", "action=Flow", "status=ok", "from=yesterday"} {
		resp, body := alReq(t, e, http.MethodGet, "/api/v1/audit-logs?"+bad, adminTok, "")
		uaProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	}

	// Only audit:read (admin roles) may read the log.
	_, mgrTok := e.User(rbac.Manager)
	resp, body = alReq(t, e, http.MethodGet, "/api/v1/audit-logs", mgrTok, "")
	uaForbidden(t, resp, body, "audit:read")
	resp, body = alReq(t, e, http.MethodGet, fmt.Sprintf("/api/v1/audit-logs/%d", ids[0]), mgrTok, "")
	uaForbidden(t, resp, body, "audit:read")
}

func nullInt(n interface{ Get() (int64, error) }) int64 {
	v, err := n.Get()
	if err != nil {
		return -1
	}
	return v
}

// Every 403 `forbidden` to an authenticated caller writes permission.denied, outside the refused
// change, at most once per (principal, operation) per minute; 401 and account-disabled write none.
func TestAuditPermissionDenied(t *testing.T) {
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	viewer, viewerTok := e.User(rbac.Viewer)
	owner, ownerTok := e.User(rbac.Editor)
	other, otherTok := e.User(rbac.Editor)

	// The authorisation step: a missing permission.
	resp, body := alReq(t, e, http.MethodPost, "/api/v1/flows", viewerTok, `{"name":"nope"}`)
	uaForbidden(t, resp, body, "flow:create")
	rows := alRows(t, e, "permission.denied")
	if len(rows) != 1 {
		t.Fatalf("%d permission.denied rows, want 1", len(rows))
	}
	d := rows[0]
	if d.Status != store.AuditDenied || d.ActorType != store.ActorUser || d.ActorUserID == nil || *d.ActorUserID != viewer.ID ||
		d.ResourceType != "flow" || d.ResourceID != nil || d.RequestID == nil || *d.RequestID != resp.Header.Get("X-Request-ID") ||
		d.Changes != nil || d.Metadata == nil {
		t.Fatalf("denied row %+v", d)
	}
	var meta map[string]string
	if err := json.Unmarshal(*d.Metadata, &meta); err != nil || meta["operation"] != "createFlow" || meta["missing_permission"] != "flow:create" {
		t.Fatalf("denied metadata %s", *d.Metadata)
	}

	// The same refusal again within the minute: no second row (flood guard).
	for range 3 {
		resp, body = alReq(t, e, http.MethodPost, "/api/v1/flows", viewerTok, `{"name":"nope"}`)
		uaForbidden(t, resp, body, "flow:create")
	}
	if n := len(alRows(t, e, "permission.denied")); n != 1 {
		t.Fatalf("%d rows after repeats, want 1", n)
	}

	// Another operation is another row, naming the resource of the path.
	flowID := azFlow(t, e, owner)
	resp, body = alReq(t, e, http.MethodDelete, fmt.Sprintf("/api/v1/flows/%d", flowID), viewerTok, "")
	uaForbidden(t, resp, body, "flow:delete")
	rows = alRows(t, e, "permission.denied")
	if len(rows) != 2 || rows[0].ResourceID == nil || *rows[0].ResourceID != flowID {
		t.Fatalf("second refusal rows %+v", rows)
	}

	// A handler's ownership refusal (403 without a missing permission) is recorded too, and the
	// refused change writes nothing else.
	if err := e.DB.Model(&store.Flow{}).Where("id = ?", flowID).Update("visibility", "public").Error; err != nil {
		t.Fatal(err)
	}
	resp, body = alReq(t, e, http.MethodPatch, fmt.Sprintf("/api/v1/flows/%d", flowID), otherTok, `{"name":"hijack"}`)
	if p := uaProblem(t, resp, body, http.StatusForbidden, "forbidden"); p.MissingPermission != "" {
		t.Fatalf("ownership refusal names %q", p.MissingPermission)
	}
	rows = alRows(t, e, "permission.denied")
	if len(rows) != 3 || *rows[0].ActorUserID != other.ID || *rows[0].ResourceID != flowID {
		t.Fatalf("ownership refusal rows %+v", rows)
	}
	meta = nil
	if err := json.Unmarshal(*rows[0].Metadata, &meta); err != nil || meta["operation"] != "updateFlow" || meta["missing_permission"] != "" {
		t.Fatalf("ownership metadata %s", *rows[0].Metadata)
	}
	if n := len(alRows(t, e, "flow.update")); n != 0 {
		t.Fatalf("a refused update wrote %d flow.update rows", n)
	}

	// Under an API token: the token is the actor.
	partner, partnerID := tpScopedToken(t, e, owner, "flow:read")
	resp, body = alReq(t, e, http.MethodPost, "/api/v1/flows", partner, `{"name":"nope"}`)
	uaForbidden(t, resp, body, "flow:create")
	rows = alRows(t, e, "permission.denied")
	if len(rows) != 4 || rows[0].ActorType != store.ActorAPIToken || rows[0].APITokenID == nil || *rows[0].APITokenID != partnerID ||
		*rows[0].ActorUserID != owner.ID {
		t.Fatalf("token refusal rows %+v", rows)
	}

	// 401 (no or a bad credential) and 403 account-disabled are not permission decisions.
	resp, body = alReq(t, e, http.MethodPost, "/api/v1/flows", "", `{"name":"nope"}`)
	azUnauthenticated(t, "no token", resp, body)
	resp, body = alReq(t, e, http.MethodPost, "/api/v1/flows", "garbage-token", `{"name":"nope"}`)
	azUnauthenticated(t, "bad token", resp, body)
	off, offTok := e.User(rbac.Viewer)
	if err := e.DB.Model(&store.User{}).Where("id = ?", off.ID).Update("is_active", false).Error; err != nil {
		t.Fatal(err)
	}
	resp, body = alReq(t, e, http.MethodPost, "/api/v1/flows", offTok, `{"name":"nope"}`)
	uaProblem(t, resp, body, http.StatusForbidden, "account-disabled")
	if n := len(alRows(t, e, "permission.denied")); n != 4 {
		t.Fatalf("%d rows after 401s and account-disabled, want 4", n)
	}

	// The rows read back through the API.
	page := alList(t, e, adminTok, "action=permission.denied&status=denied")
	if len(page.Items) != 4 || nullStr(page.Items[3].Details.Operation) != "createFlow" ||
		nullStr(page.Items[3].Details.MissingPermission) != "flow:create" || !page.Items[1].Details.MissingPermission.IsNull() {
		t.Fatalf("denied entries %+v", page.Items)
	}
	_ = ownerTok
}

// A refused sign-in writes auth.login_failed (at most once per client address and reason a minute);
// a successful one writes none.
func TestAuditLoginFailed(t *testing.T) {
	e, f := ssoNew(t)
	cu := casdoortest.User{Name: "carol", Email: "carol@example.com", Tag: "editor"}

	r := ssoCallback(t, e, "some-code", "unknown-state")
	ssoProblem(t, "unknown state", r.HTTPResponse, r.Body, http.StatusUnprocessableEntity, "invalid-oauth-state")
	r = ssoCallback(t, e, "some-code", "another-unknown-state")
	ssoProblem(t, "unknown state again", r.HTTPResponse, r.Body, http.StatusUnprocessableEntity, "invalid-oauth-state")
	rows := alRows(t, e, "auth.login_failed")
	if len(rows) != 1 {
		t.Fatalf("%d login_failed rows after two unknown states, want 1", len(rows))
	}
	reason := func(a store.AuditLog) string {
		t.Helper()
		var m map[string]string
		if a.Metadata == nil || json.Unmarshal(*a.Metadata, &m) != nil {
			t.Fatalf("metadata of %+v", a)
		}
		return m["reason"]
	}
	if got := rows[0]; reason(got) != "invalid-state" || got.Status != store.AuditFailure || got.ActorType != store.ActorSystem ||
		got.ActorDisplay != "anonymous" || got.IP == nil || *got.IP != ssoIP || got.ResourceType != "user" {
		t.Fatalf("invalid-state row %+v", got)
	}

	// Casdoor rejects the code.
	lu, _ := ssoStart(t, e, nil)
	r = ssoCallback(t, e, "not-a-code", lu.State)
	ssoProblem(t, "bad code", r.HTTPResponse, r.Body, http.StatusUnauthorized, "unauthenticated")
	if rows = alRows(t, e, "auth.login_failed"); len(rows) != 2 || reason(rows[0]) != "code-rejected" {
		t.Fatalf("code-rejected rows %+v", rows)
	}

	// A successful sign-in writes none; a disabled account's is recorded against the user.
	tr := ssoLogin(t, e, f, cu)
	if n := len(alRows(t, e, "auth.login_failed")); n != 2 {
		t.Fatalf("a successful login wrote login_failed (%d rows)", n)
	}
	if err := e.DB.Model(&store.User{}).Where("id = ?", tr.User.Id).Update("is_active", false).Error; err != nil {
		t.Fatal(err)
	}
	lu, ch := ssoStart(t, e, nil)
	r = ssoCallback(t, e, f.IssueCode(cu, lu.RedirectUri, ch), lu.State)
	ssoProblem(t, "disabled", r.HTTPResponse, r.Body, http.StatusForbidden, "account-disabled")
	rows = alRows(t, e, "auth.login_failed")
	if len(rows) != 3 || reason(rows[0]) != "account-disabled" || rows[0].Status != store.AuditDenied ||
		rows[0].ActorType != store.ActorUser || *rows[0].ActorUserID != tr.User.Id || *rows[0].ResourceID != tr.User.Id {
		t.Fatalf("account-disabled rows %+v", rows)
	}
	if n := len(alRows(t, e, "auth.login")); n != 1 {
		t.Fatalf("%d auth.login rows, want 1", n)
	}
}

// Organisation settings (PRODUCT §5.22): defaults, partial updates with their audit row, no-ops,
// validation that changes nothing, and the settings permissions.
func TestSettingsAPI(t *testing.T) {
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	_, mgrTok := e.User(rbac.Manager)
	_, edTok := e.User(rbac.Editor)
	ctx := context.Background()

	gr, err := e.Client(adminTok).GetSettingsWithResponse(ctx)
	if err != nil || gr.StatusCode() != http.StatusOK || gr.JSON200 == nil {
		t.Fatalf("GET settings: %v %d %s", err, gr.StatusCode(), gr.Body)
	}
	s := *gr.JSON200
	if s.OrgName != "WataOmi" || s.DefaultTimezone != "UTC" || s.DefaultLanguage != "en" || !s.DefaultAiModel.IsNull() ||
		!s.AutoHandoffOnAgentReply || !s.ResetBotOnResolve || s.BotFallbackMessage != "Sorry, something went wrong. An agent will reply shortly." ||
		s.ConversationReopenHours != 24 || s.AutoResolveAfterHours != 0 || s.SendReadReceipts || s.MessengerHumanAgentTag {
		t.Fatalf("defaults %+v", s)
	}
	// settings:read is a manager's; settings:update only the admin roles'.
	if r, _ := e.Client(mgrTok).GetSettingsWithResponse(ctx); r.StatusCode() != http.StatusOK {
		t.Fatalf("manager GET: %d", r.StatusCode())
	}
	resp, body := alReq(t, e, http.MethodGet, "/api/v1/settings", edTok, "")
	uaForbidden(t, resp, body, "settings:read")
	resp, body = alReq(t, e, http.MethodPatch, "/api/v1/settings", mgrTok, `{"org_name":"Mine"}`)
	uaForbidden(t, resp, body, "settings:update")

	patch := func(body string) api.Settings {
		t.Helper()
		resp, b := alReq(t, e, http.MethodPatch, "/api/v1/settings", adminTok, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PATCH %s: %d %s", body, resp.StatusCode, b)
		}
		var out api.Settings
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	audits := func() []store.AuditLog { return alRows(t, e, "settings.update") }

	// {} changes nothing: 200, no write, no audit row.
	if got := patch(`{}`); got.UpdatedAt != s.UpdatedAt || got.OrgName != s.OrgName {
		t.Fatalf("{} changed %+v", got)
	}
	if n := len(audits()); n != 0 {
		t.Fatalf("{} wrote %d audit rows", n)
	}

	got := patch(`{"org_name":"Acme","default_timezone":"Europe/Paris","default_ai_model":"gpt-4o","auto_resolve_after_hours":48,"send_read_receipts":true,"default_language":"pt-BR"}`)
	if got.OrgName != "Acme" || got.DefaultTimezone != "Europe/Paris" || nullStr(got.DefaultAiModel) != "gpt-4o" || got.AutoResolveAfterHours != 48 ||
		!got.SendReadReceipts || got.DefaultLanguage != "pt-BR" || !got.ResetBotOnResolve || got.ConversationReopenHours != 24 {
		t.Fatalf("after PATCH %+v", got)
	}
	rows := audits()
	if len(rows) != 1 || rows[0].ResourceType != "settings" || rows[0].ResourceID != nil || rows[0].ActorType != store.ActorUser {
		t.Fatalf("settings.update rows %+v", rows)
	}
	var ch struct {
		Fields        []string
		Before, After map[string]any
	}
	if err := json.Unmarshal(*rows[0].Changes, &ch); err != nil {
		t.Fatal(err)
	}
	wantFields := []string{"org_name", "default_timezone", "default_language", "default_ai_model", "auto_resolve_after_hours", "send_read_receipts"}
	if !slices.Equal(ch.Fields, wantFields) || ch.Before["org_name"] != "WataOmi" || ch.After["org_name"] != "Acme" ||
		ch.Before["default_ai_model"] != nil || ch.After["default_ai_model"] != "gpt-4o" || ch.Before["auto_resolve_after_hours"] != float64(0) ||
		ch.After["send_read_receipts"] != true {
		t.Fatalf("changes %+v", ch)
	}
	// The store accessor the engine uses sees the change.
	st, err := store.GetSettings(ctx, e.DB.DB)
	if err != nil || st.Location().String() != "Europe/Paris" || st.AIModel(e.Config.AIDefaultModel) != "gpt-4o" {
		t.Fatalf("store settings %+v, %v", st, err)
	}

	// The same values again: no change, no row. null clears default_ai_model: one row.
	patch(`{"org_name":"Acme","send_read_receipts":true}`)
	if n := len(audits()); n != 1 {
		t.Fatalf("an equal PATCH wrote an audit row (%d rows)", n)
	}
	if got := patch(`{"default_ai_model":null}`); !got.DefaultAiModel.IsNull() {
		t.Fatalf("null did not clear default_ai_model: %+v", got)
	}
	if rows := audits(); len(rows) != 2 || !strings.Contains(string(*rows[0].Changes), `"default_ai_model"`) {
		t.Fatalf("clearing rows %+v", rows)
	}

	// Refusals change nothing and write no row.
	before, err := store.GetSettings(ctx, e.DB.DB)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		body, pointer string
		status        int
		slug          string
	}{
		{`{"default_timezone":"Mars/Olympus"}`, "/default_timezone", 400, "validation-error"},
		{`{"default_timezone":"Local"}`, "/default_timezone", 400, "validation-error"},
		{`{"default_language":"EN_us"}`, "/default_language", 400, "validation-error"},
		{`{"conversation_reopen_hours":-1}`, "/conversation_reopen_hours", 400, "validation-error"},
		{`{"auto_resolve_after_hours":8761}`, "/auto_resolve_after_hours", 400, "validation-error"},
		{`{"org_name":""}`, "/org_name", 400, "validation-error"},
		{`{"org_name":null}`, "/org_name", 400, "validation-error"},
		{`{"bot_fallback_message":"` + strings.Repeat("x", 1001) + `"}`, "/bot_fallback_message", 400, "validation-error"},
		{`{"updated_at":"2026-01-01T00:00:00Z"}`, "/updated_at", 400, "validation-error"},
		{`{"send_read_receipts":"yes"}`, "/send_read_receipts", 400, "validation-error"},
		{`{"org_name":"X","default_ai_model":"gpt-9"}`, "/default_ai_model", 422, "model-unknown"},
		{`{"default_ai_model":"gemini-embedding-001"}`, "/default_ai_model", 422, "model-unknown"},
	} {
		resp, b := alReq(t, e, http.MethodPatch, "/api/v1/settings", adminTok, c.body)
		uaProblem(t, resp, b, c.status, c.slug, c.pointer)
	}
	after, err := store.GetSettings(ctx, e.DB.DB)
	if err != nil || *after != *before {
		t.Fatalf("refused updates changed the settings:\n%+v\n%+v", before, after)
	}
	if n := len(audits()); n != 2 {
		t.Fatalf("refused updates wrote audit rows (%d)", n)
	}
}

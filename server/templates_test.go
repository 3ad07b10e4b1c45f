package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed tt).

// ttGraph is a graph a template may hold: complete except for the HTTP URL, left empty.
const ttGraph = `{"nodes":[` +
	`{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-manual","label":"Start","config":{}}},` +
	`{"id":"h1","type":"custom","position":{"x":200,"y":0},"data":{"type":"action-http","label":"Call","config":{"url":"","method":"GET"}}}` +
	`],"edges":[{"id":"e1","source":"t1","target":"h1"}]}`

// ttGraphFull is complete: nothing for a user to fill.
const ttGraphFull = `{"nodes":[` +
	`{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-manual","config":{}}},` +
	`{"id":"r1","type":"custom","position":{"x":200,"y":0},"data":{"type":"response-data","config":{"status":201}}}` +
	`],"edges":[{"id":"e1","source":"t1","target":"r1"}]}`

func ttPath(id int64, rest ...string) string {
	return fmt.Sprintf("%s/templates/%d%s", BasePath, id, strings.Join(rest, ""))
}

// ttDo sends a JSON request ("" for no body), checks the status and decodes a 2xx body into out.
func ttDo(t *testing.T, e *testEnv, method, path, tok, body string, want int, out any) *http.Response {
	t.Helper()
	resp, b := flReq(t, e, method, path, tok, body, nil)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		// Decode into a zero value: json.Unmarshal merges into the maps of a reused one.
		v := reflect.ValueOf(out).Elem()
		v.Set(reflect.Zero(v.Type()))
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp
}

func ttCreate(t *testing.T, e *testEnv, tok, body string) api.Template {
	t.Helper()
	var tpl api.Template
	resp := ttDo(t, e, http.MethodPost, BasePath+"/templates", tok, body, http.StatusCreated, &tpl)
	if got, want := resp.Header.Get("Location"), ttPath(tpl.Id); got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	return tpl
}

func ttGet(t *testing.T, e *testEnv, tok string, id int64) api.Template {
	t.Helper()
	var tpl api.Template
	ttDo(t, e, http.MethodGet, ttPath(id), tok, "", http.StatusOK, &tpl)
	return tpl
}

func ttList(t *testing.T, e *testEnv, tok, query string) api.TemplateSummaryPage {
	t.Helper()
	var page api.TemplateSummaryPage
	ttDo(t, e, http.MethodGet, BasePath+"/templates"+query, tok, "", http.StatusOK, &page)
	return page
}

func ttNames(p api.TemplateSummaryPage) []string {
	out := []string{}
	for _, it := range p.Items {
		out = append(out, it.Name)
	}
	return out
}

// ttJSON re-encodes v for a semantic comparison (PostgreSQL reformats jsonb).
func ttJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ttAudit lists the audit rows of a resource, newest first.
func ttAudit(t *testing.T, e *testEnv, typ string, id int64) []store.AuditLog {
	t.Helper()
	rows, err := store.ListAuditForResource(context.Background(), e.DB.DB, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// ttAuditFields decodes an audit row's changed field names.
func ttAuditFields(t *testing.T, row store.AuditLog) []string {
	t.Helper()
	var ch struct{ Fields []string }
	if row.Changes != nil {
		if err := json.Unmarshal(*row.Changes, &ch); err != nil {
			t.Fatal(err)
		}
	}
	return ch.Fields
}

// ttCountAudit counts audit rows with the action.
func ttCountAudit(t *testing.T, e *testEnv, action string) int64 {
	t.Helper()
	var n int64
	if err := e.DB.Model(&store.AuditLog{}).Where("action = ?", action).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// ---------------------------------------------------------------------------------------------------

func TestTemplatesCRUD(t *testing.T) {
	e := newTestEnv(t)
	editor, tok := e.User(rbac.Editor)
	_, viewerTok := e.User(rbac.Viewer)
	_, adminTok := e.User(rbac.Admin)

	tpl := ttCreate(t, e, tok, `{"name":"Lookup","description":"Calls an API","icon":"FiZap","data":`+ttGraph+`}`)
	if tpl.IsSystem || tpl.SystemKey.IsSpecified() && !tpl.SystemKey.IsNull() || tpl.UsageCount != 0 ||
		tpl.CreatedBy.MustGet() != editor.ID || !tpl.SourceFlowId.IsNull() || tpl.Icon.MustGet() != "FiZap" {
		t.Fatalf("created %+v", tpl)
	}
	// The empty required URL is what a user has to fill.
	if !slices.Equal(tpl.Placeholders, []string{"/nodes/1/data/config/url"}) {
		t.Fatalf("placeholders %v", tpl.Placeholders)
	}
	got := ttGet(t, e, viewerTok, tpl.Id) // organisation-wide: a viewer reads it
	if !sameJSON(ttJSON(t, got.Data), ttJSON(t, tpl.Data)) || got.Name != "Lookup" || got.Description.MustGet() != "Calls an API" {
		t.Fatalf("get %+v", got)
	}

	// A complete graph has no placeholders; the editor's run-time keys are dropped.
	full := ttCreate(t, e, tok, `{"name":"Answer","data":`+strings.Replace(ttGraphFull, `"config":{"status":201}`,
		`"config":{"status":201},"executionStatus":"success"`, 1)+`}`)
	if len(full.Placeholders) != 0 || strings.Contains(string(ttJSON(t, full.Data)), "executionStatus") {
		t.Fatalf("complete template: placeholders %v, data %s", full.Placeholders, ttJSON(t, full.Data))
	}

	// From a flow the caller can read: the flow's graph, and source_flow_id.
	src := flCreate(t, e, tok, api.FlowCreate{Name: "Source", Data: flGraph(t, ttGraphFull)})
	fromFlow := ttCreate(t, e, tok, fmt.Sprintf(`{"name":"From flow","from_flow_id":%d}`, src.Id))
	if fromFlow.SourceFlowId.MustGet() != src.Id || !sameJSON(ttJSON(t, fromFlow.Data), ttJSON(t, src.Data)) {
		t.Fatalf("from flow: %+v", fromFlow)
	}

	// List: newest first by default, search, is_system, sort and paging.
	if names := ttNames(ttList(t, e, viewerTok, "")); !slices.Equal(names, []string{"From flow", "Answer", "Lookup"}) {
		t.Fatalf("list %v", names)
	}
	if p := ttList(t, e, tok, "?search=CALLS%20an"); p.Total != 1 || p.Items[0].Id != tpl.Id {
		t.Fatalf("search: %+v", p)
	}
	if p := ttList(t, e, tok, "?is_system=true"); p.Total != 0 {
		t.Fatalf("is_system=true: %+v", p)
	}
	if names := ttNames(ttList(t, e, tok, "?is_system=false&sort=name")); !slices.Equal(names, []string{"Answer", "From flow", "Lookup"}) {
		t.Fatalf("sort=name %v", names)
	}
	if p := ttList(t, e, tok, "?sort=-name&page=2&page_size=2"); p.Total != 3 || p.TotalPages != 2 || p.HasNext || !p.HasPrev ||
		!slices.Equal(ttNames(p), []string{"Answer"}) {
		t.Fatalf("page 2: %+v", p)
	}
	resp, b := flReq(t, e, http.MethodGet, BasePath+"/templates?sort=owner", tok, "", nil)
	flWantProblem(t, resp, b, http.StatusBadRequest, "validation-error")

	// Update: partial; icon null clears; a new graph recomputes the placeholders.
	var upd api.Template
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"name":"Lookup v2","icon":null}`, http.StatusOK, &upd)
	if upd.Name != "Lookup v2" || !upd.Icon.IsNull() || upd.Description.MustGet() != "Calls an API" || len(upd.Placeholders) != 1 {
		t.Fatalf("update %+v", upd)
	}
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"data":`+ttGraphFull+`}`, http.StatusOK, &upd)
	if len(upd.Placeholders) != 0 || !sameJSON(ttJSON(t, upd.Data), ttJSON(t, full.Data)) {
		t.Fatalf("update data: %s\nwant %s", ttJSON(t, upd.Data), ttJSON(t, full.Data))
	}
	before := ttGet(t, e, tok, tpl.Id)
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{}`, http.StatusOK, &upd)
	if after := ttGet(t, e, tok, tpl.Id); after.UpdatedAt != before.UpdatedAt {
		t.Fatal("an empty update changed updated_at")
	}
	resp, b = flReq(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"name":null}`, nil)
	flWantProblem(t, resp, b, http.StatusBadRequest, "validation-error", "/name")

	// Duplicate: "(Copy)", the caller's, with the same graph and placeholders and no uses.
	_, otherTok := e.User(rbac.Manager)
	var dup api.Template
	resp = ttDo(t, e, http.MethodPost, ttPath(fromFlow.Id, "/duplicate"), otherTok, "", http.StatusCreated, &dup)
	if dup.Name != "From flow (Copy)" || dup.IsSystem || dup.UsageCount != 0 || dup.CreatedBy.MustGet() == editor.ID ||
		!sameJSON(ttJSON(t, dup.Data), ttJSON(t, fromFlow.Data)) || resp.Header.Get("Location") != ttPath(dup.Id) {
		t.Fatalf("duplicate %+v", dup)
	}
	long := ttCreate(t, e, tok, `{"name":"`+strings.Repeat("é", 200)+`","data":`+ttGraph+`}`)
	ttDo(t, e, http.MethodPost, ttPath(long.Id, "/duplicate"), tok, "", http.StatusCreated, &dup)
	if n := len([]rune(dup.Name)); n != 200 || !strings.HasSuffix(dup.Name, " (Copy)") || !slices.Equal(dup.Placeholders, long.Placeholders) {
		t.Fatalf("duplicate of a 200-character name: %d runes %q", n, dup.Name)
	}

	// Deleting the source flow keeps the template, with source_flow_id null.
	if r, err := e.Client(adminTok).DeleteFlowWithResponse(flCtx, src.Id); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete flow: %v", err)
	}
	if g := ttGet(t, e, tok, fromFlow.Id); !g.SourceFlowId.IsNull() {
		t.Fatalf("source_flow_id after the flow's deletion: %v", g.SourceFlowId)
	}

	// Delete: template:delete is an admin permission; a later GET is 404.
	resp, b = flReq(t, e, http.MethodDelete, ttPath(tpl.Id), tok, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusForbidden, "forbidden"); p.MissingPermission != "template:delete" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
	ttDo(t, e, http.MethodDelete, ttPath(tpl.Id), adminTok, "", http.StatusNoContent, nil)
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		resp, b = flReq(t, e, m, ttPath(tpl.Id), adminTok, "", nil)
		flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "", "{}"}, {http.MethodPost, "/duplicate", ""}, {http.MethodPost, "/flows", "{}"},
	} {
		resp, b = flReq(t, e, c.method, ttPath(tpl.Id, c.path), adminTok, c.body, nil)
		flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	}
	// A viewer reads but does not write.
	resp, b = flReq(t, e, http.MethodPost, BasePath+"/templates", viewerTok, `{"name":"x","data":`+ttGraph+`}`, nil)
	flWantProblem(t, resp, b, http.StatusForbidden, "forbidden")
}

// Refused requests answer the right problem and change nothing.
func TestTemplatesValidation(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, otherTok := e.User(rbac.Editor)
	private := flCreate(t, e, otherTok, api.FlowCreate{Name: "Not yours", Data: flGraph(t, ttGraphFull)})
	count := func() int64 {
		var n int64
		if err := e.DB.Model(&store.Template{}).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	cases := []struct {
		name, body string
		status     int
		slug       string
		pointers   []string
	}{
		{"neither data nor from_flow_id", `{"name":"x"}`, 422, "unprocessable", []string{"/data unprocessable"}},
		{"both data and from_flow_id", `{"name":"x","data":` + ttGraph + `,"from_flow_id":1}`, 422, "unprocessable", []string{"/data"}},
		{"a flow the caller cannot read", fmt.Sprintf(`{"name":"x","from_flow_id":%d}`, private.Id), 422, "unprocessable", []string{"/from_flow_id"}},
		{"no such flow", `{"name":"x","from_flow_id":999999}`, 422, "unprocessable", []string{"/from_flow_id"}},
		{"duplicate node ids", `{"name":"x","data":{"nodes":[{"id":"a","data":{"type":"trigger-manual"}},{"id":"a","data":{"type":"response-data"}}],"edges":[]}}`,
			422, "invalid-graph", []string{"/data/nodes/1/id duplicate-id"}},
		{"unknown node type", `{"name":"x","data":{"nodes":[{"id":"a","data":{"type":"action-code"}}],"edges":[]}}`,
			422, "invalid-graph", []string{"/data/nodes/0/data/type unknown-node-type"}},
		{"a cycle", `{"name":"x","data":{"nodes":[{"id":"a","data":{"type":"response-data"}},{"id":"b","data":{"type":"response-data"}}],` +
			`"edges":[{"id":"e1","source":"a","target":"b"},{"id":"e2","source":"b","target":"a"}]}}`, 422, "invalid-graph", []string{"/data/nodes/* cycle"}},
		{"empty name", `{"name":"","data":` + ttGraph + `}`, 400, "validation-error", []string{"/name minLength"}},
		{"missing name", `{"data":` + ttGraph + `}`, 400, "validation-error", []string{"/name required"}},
		{"unknown member", `{"name":"x","data":` + ttGraph + `,"is_system":true}`, 400, "validation-error", []string{"/is_system"}},
		{"description too long", `{"name":"x","description":"` + strings.Repeat("d", 2001) + `","data":` + ttGraph + `}`, 400, "validation-error", []string{"/description maxLength"}},
		{"graph without edges", `{"name":"x","data":{"nodes":[]}}`, 400, "validation-error", []string{"/data/edges required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := count()
			resp, b := flReq(t, e, http.MethodPost, BasePath+"/templates", tok, tc.body, nil)
			flWantProblem(t, resp, b, tc.status, tc.slug, tc.pointers...)
			if count() != before {
				t.Fatal("a refused create stored a template")
			}
		})
	}

	// A refused update leaves the template as it was.
	tpl := ttCreate(t, e, tok, `{"name":"Keep","data":`+ttGraph+`}`)
	resp, b := flReq(t, e, http.MethodPut, ttPath(tpl.Id), tok,
		`{"name":"Changed","data":{"nodes":[{"id":"a","data":{"type":"x-unknown"}}],"edges":[]}}`, nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "invalid-graph", "/data/nodes/0/data/type")
	if got := ttGet(t, e, tok, tpl.Id); got.Name != "Keep" || !sameJSON(ttJSON(t, got.Data), ttJSON(t, tpl.Data)) {
		t.Fatalf("after a refused update: %+v", got)
	}
}

// POST /templates/{id}/flows creates a draft flow with template_id set and counts the use in the
// same transaction (PRODUCT §5.5).
func TestTemplateCreateFlow(t *testing.T) {
	e := newTestEnv(t)
	editor, tok := e.User(rbac.Editor)
	admin, adminTok := e.User(rbac.Admin)
	_, viewerTok := e.User(rbac.Viewer)
	tpl := ttCreate(t, e, tok, `{"name":"Lookup","description":"Calls an API","data":`+ttGraph+`}`)

	var f api.Flow
	resp := ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, "", http.StatusCreated, &f)
	if resp.Header.Get("Location") != flPath(f.Id) || resp.Header.Get("ETag") != etag(f.Revision) {
		t.Fatalf("headers: Location %q ETag %q", resp.Header.Get("Location"), resp.Header.Get("ETag"))
	}
	if f.TemplateId.MustGet() != tpl.Id || f.Name != "Lookup" || f.Description.MustGet() != "Calls an API" || f.Status != "draft" ||
		f.Visibility != "private" || f.OwnerId != editor.ID || f.Version != 1 || !sameJSON(ttJSON(t, f.Data), ttJSON(t, tpl.Data)) {
		t.Fatalf("flow %+v", f)
	}
	// The flow is incomplete exactly at the template's placeholders.
	var issues []string
	for _, is := range f.Validation.Issues {
		issues = append(issues, strings.TrimPrefix(is.Pointer, "/data"))
	}
	if f.Validation.Valid || !slices.Equal(issues, tpl.Placeholders) {
		t.Fatalf("validation %+v, placeholders %v", f.Validation, tpl.Placeholders)
	}
	if n := flVersionCount(t, e, f.Id); n != 1 {
		t.Fatalf("%d versions", n)
	}
	if got := ttGet(t, e, tok, tpl.Id); got.UsageCount != 1 || got.UpdatedAt != tpl.UpdatedAt {
		t.Fatalf("after one use: usage_count %d, updated_at %v -> %v", got.UsageCount, tpl.UpdatedAt, got.UpdatedAt)
	}
	rows := ttAudit(t, e, "flow", f.Id)
	if len(rows) != 1 || rows[0].Action != "flow.create" || rows[0].ActorUserID == nil || *rows[0].ActorUserID != editor.ID ||
		rows[0].Changes == nil {
		t.Fatalf("audit %+v", rows)
	}
	var changes struct{ After map[string]any }
	if err := json.Unmarshal(*rows[0].Changes, &changes); err != nil || changes.After["template_id"] != float64(tpl.Id) {
		t.Fatalf("audit details %s: %v", *rows[0].Changes, err)
	}

	// With a body: name, description and visibility.
	var pub api.Flow
	ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, `{"name":"Mine","description":null,"visibility":"public"}`, http.StatusCreated, &pub)
	if pub.Name != "Mine" || !pub.Description.IsNull() || pub.Visibility != "public" || pub.TemplateId.MustGet() != tpl.Id {
		t.Fatalf("flow with a body %+v", pub)
	}
	// team visibility needs a team the owner belongs to.
	resp, b := flReq(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, `{"visibility":"team"}`, nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/team_id")
	team := tpCreateTeam(t, e, adminTok, "Growth", nil)
	resp, b = flReq(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, fmt.Sprintf(`{"visibility":"team","team_id":%d}`, team.Id), nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/team_id")
	tpSetMembers(t, e, adminTok, team.Id, editor.ID, admin.ID)
	var teamFlow api.Flow
	ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, fmt.Sprintf(`{"visibility":"team","team_id":%d}`, team.Id), http.StatusCreated, &teamFlow)
	if teamFlow.TeamId.MustGet() != team.Id {
		t.Fatalf("team flow %+v", teamFlow)
	}
	// Refusals count no use: a viewer lacks flow:create, an unknown member is 400.
	resp, b = flReq(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), viewerTok, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusForbidden, "forbidden"); p.MissingPermission != "flow:create" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
	resp, b = flReq(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, `{"template_id":1}`, nil)
	flWantProblem(t, resp, b, http.StatusBadRequest, "validation-error", "/template_id")
	if got := ttGet(t, e, tok, tpl.Id); got.UsageCount != 3 {
		t.Fatalf("usage_count %d, want 3", got.UsageCount)
	}

	// Flows list by template; a duplicate keeps template_id.
	other := ttCreate(t, e, tok, `{"name":"Other","data":`+ttGraphFull+`}`)
	var otherFlow api.Flow
	ttDo(t, e, http.MethodPost, ttPath(other.Id, "/flows"), tok, "", http.StatusCreated, &otherFlow)
	var dup api.Flow
	ttDo(t, e, http.MethodPost, flPath(f.Id, "/duplicate"), tok, "", http.StatusCreated, &dup)
	if dup.TemplateId.MustGet() != tpl.Id {
		t.Fatalf("duplicate template_id %v", dup.TemplateId)
	}
	page := flList(t, e, tok, api.ListFlowsParams{TemplateId: &tpl.Id})
	var ids []int64
	for _, it := range page.Items {
		ids = append(ids, it.Id)
		if it.TemplateId.MustGet() != tpl.Id {
			t.Fatalf("summary template_id %v", it.TemplateId)
		}
	}
	slices.Sort(ids)
	if want := []int64{f.Id, pub.Id, teamFlow.Id, dup.Id}; !slices.Equal(ids, want) || page.Total != 4 {
		t.Fatalf("flows of the template %v, want %v", ids, want)
	}

	// Deleting the template leaves its flows, with template_id null.
	ttDo(t, e, http.MethodDelete, ttPath(tpl.Id), adminTok, "", http.StatusNoContent, nil)
	if g := flGet(t, e, tok, f.Id); !g.TemplateId.IsNull() {
		t.Fatalf("template_id after the template's deletion: %v", g.TemplateId)
	}
	if p := flList(t, e, tok, api.ListFlowsParams{TemplateId: &tpl.Id}); p.Total != 0 {
		t.Fatalf("flows of a deleted template: %+v", p)
	}
}

// The built-in catalogue is seeded idempotently; force resets drifted system templates; system
// templates are read-only but can be duplicated and used (PRODUCT §5.5, §4.3).
func TestTemplatesSeed(t *testing.T) {
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	_, tok := e.User(rbac.Editor)
	builtins := flow.BuiltinTemplates()
	seed := func(query string, inserted, updated int) {
		t.Helper()
		var res api.TemplateSeedResult
		ttDo(t, e, http.MethodPost, BasePath+"/templates/seed"+query, adminTok, "", http.StatusOK, &res)
		if res.Inserted != inserted || res.Updated != updated {
			t.Fatalf("seed%s: %+v, want inserted %d updated %d", query, res, inserted, updated)
		}
	}
	resp, b := flReq(t, e, http.MethodPost, BasePath+"/templates/seed", tok, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusForbidden, "forbidden"); p.MissingPermission != "settings:update" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
	seed("", len(builtins), 0)
	if n := ttCountAudit(t, e, "template.seed"); n != int64(len(builtins)) {
		t.Fatalf("%d template.seed rows, want %d", n, len(builtins))
	}
	seed("", 0, 0)
	seed("?force=true", 0, 0) // nothing drifted
	if n := ttCountAudit(t, e, "template.seed"); n != int64(len(builtins)) {
		t.Fatalf("a seed that changed nothing wrote audit rows (%d)", n)
	}
	page := ttList(t, e, tok, "?is_system=true&sort=name")
	if page.Total != int64(len(builtins)) {
		t.Fatalf("system templates: %+v", page)
	}

	for _, bt := range builtins {
		row, err := store.GetTemplateBySystemKey(context.Background(), e.DB.DB, bt.Key)
		if err != nil {
			t.Fatal(err)
		}
		tpl := ttGet(t, e, tok, row.ID)
		if !tpl.IsSystem || tpl.SystemKey.MustGet() != bt.Key || tpl.Name != bt.Name || !tpl.CreatedBy.IsNull() ||
			!slices.Equal(tpl.Placeholders, bt.Placeholders) || !sameJSON(ttJSON(t, tpl.Data), bt.Graph) {
			t.Fatalf("%s: stored %+v", bt.Key, tpl)
		}
		// Read-only: update and delete are 409 system-resource, even for an admin, and change nothing.
		resp, b := flReq(t, e, http.MethodPut, ttPath(tpl.Id), adminTok, `{"name":"Mine now"}`, nil)
		flWantProblem(t, resp, b, http.StatusConflict, "system-resource")
		resp, b = flReq(t, e, http.MethodDelete, ttPath(tpl.Id), adminTok, "", nil)
		flWantProblem(t, resp, b, http.StatusConflict, "system-resource")
		if got := ttGet(t, e, tok, tpl.Id); got.Name != bt.Name || got.UpdatedAt != tpl.UpdatedAt {
			t.Fatalf("%s changed by a refused request: %+v", bt.Key, got)
		}
		if rows := ttAudit(t, e, "template", tpl.Id); len(rows) != 1 || rows[0].Action != "template.seed" ||
			rows[0].ActorUserID == nil || rows[0].ActorType != store.ActorUser {
			t.Fatalf("%s audit rows %+v", bt.Key, rows)
		}
		// Duplicating gives an ordinary template.
		var dup api.Template
		ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/duplicate"), tok, "", http.StatusCreated, &dup)
		if dup.IsSystem || !dup.SystemKey.IsNull() || dup.Name != bt.Name+" (Copy)" || !slices.Equal(dup.Placeholders, bt.Placeholders) {
			t.Fatalf("%s duplicate %+v", bt.Key, dup)
		}
		var upd api.Template
		ttDo(t, e, http.MethodPut, ttPath(dup.Id), tok, `{"name":"Mine now"}`, http.StatusOK, &upd)
		// A flow from it passes the structural checks and is incomplete exactly at the placeholders.
		var f api.Flow
		ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, "", http.StatusCreated, &f)
		var issues []string
		for _, is := range f.Validation.Issues {
			issues = append(issues, strings.TrimPrefix(is.Pointer, "/data"))
		}
		if !slices.Equal(issues, bt.Placeholders) {
			t.Fatalf("%s: flow issues %+v, placeholders %v", bt.Key, f.Validation.Issues, bt.Placeholders)
		}
	}

	// Drift one system template (as an older release would have left it): force resets it and keeps
	// its usage count.
	key := builtins[0].Key
	if err := e.DB.Model(&store.Template{}).Where("system_key = ?", key).
		Updates(map[string]any{"name": "Old name", "placeholders": "[]"}).Error; err != nil {
		t.Fatal(err)
	}
	seed("", 0, 0) // without force, existing rows are left alone
	seed("?force=true", 0, 1)
	row, err := store.GetTemplateBySystemKey(context.Background(), e.DB.DB, key)
	if err != nil {
		t.Fatal(err)
	}
	if row.Name != builtins[0].Name || !slices.Equal(row.Placeholders, builtins[0].Placeholders) || row.UsageCount != 1 {
		t.Fatalf("after force: %+v", row)
	}
	rows := ttAudit(t, e, "template", row.ID)
	if rows[0].Action != "template.seed" || !slices.Equal(ttAuditFields(t, rows[0]), []string{"name", "placeholders"}) {
		t.Fatalf("force audit row %+v", rows[0])
	}
	// A deleted system row (by hand) comes back.
	if err := e.DB.Where("system_key = ?", key).Delete(&store.Template{}).Error; err != nil {
		t.Fatal(err)
	}
	seed("", 1, 0)
}

// SeedTemplates is also what startup and `wataomi seed` run: without a principal, the system is the
// actor.
func TestTemplatesSeedBySystem(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	res, err := SeedTemplates(ctx, e.DB, false)
	if err != nil || res.Inserted != len(flow.BuiltinTemplates()) || res.Updated != 0 {
		t.Fatalf("first seed: %+v %v", res, err)
	}
	if res, err = SeedTemplates(ctx, e.DB, true); err != nil || res != (SeedResult{}) {
		t.Fatalf("second seed: %+v %v", res, err)
	}
	var rows []store.AuditLog
	if err := e.DB.Where("action = ?", "template.seed").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.ActorType != store.ActorSystem || r.ActorUserID != nil {
			t.Fatalf("seed audit row %+v", r)
		}
	}
}

// Every change to a template writes exactly one audit row; a no-op or a refusal writes none.
func TestTemplatesAuditRows(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Admin)
	expect := func(id int64, n int, action string, fields ...string) {
		t.Helper()
		rows := ttAudit(t, e, "template", id)
		if len(rows) != n {
			t.Fatalf("%s: %d rows, want %d", action, len(rows), n)
		}
		r := rows[0]
		if r.Action != action || r.ActorUserID == nil || *r.ActorUserID != u.ID || r.RequestID == nil {
			t.Fatalf("%s: row %+v", action, r)
		}
		if len(fields) > 0 && !slices.Equal(ttAuditFields(t, r), fields) {
			t.Fatalf("%s: fields %v, want %v", action, ttAuditFields(t, r), fields)
		}
	}
	tpl := ttCreate(t, e, tok, `{"name":"Audited","data":`+ttGraph+`}`)
	expect(tpl.Id, 1, "template.create")
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{}`, http.StatusOK, nil)
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"name":"Audited"}`, http.StatusOK, nil) // same value: no change
	expect(tpl.Id, 1, "template.create")
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"name":"Audited 2","description":"d"}`, http.StatusOK, nil)
	expect(tpl.Id, 2, "template.update", "name", "description")
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"data":`+ttGraphFull+`}`, http.StatusOK, nil)
	expect(tpl.Id, 3, "template.update", "data", "placeholders")
	resp, b := flReq(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"data":{"nodes":[{"id":"a","data":{"type":"nope"}}],"edges":[]}}`, nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "invalid-graph")
	expect(tpl.Id, 3, "template.update")
	var dup api.Template
	ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/duplicate"), tok, "", http.StatusCreated, &dup)
	expect(dup.Id, 1, "template.duplicate")
	var f api.Flow
	ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/flows"), tok, "", http.StatusCreated, &f)
	if rows := ttAudit(t, e, "flow", f.Id); len(rows) != 1 || rows[0].Action != "flow.create" {
		t.Fatalf("flow from template: audit %+v", rows)
	}
	expect(tpl.Id, 3, "template.update") // counting a use is not an edit
	ttDo(t, e, http.MethodDelete, ttPath(tpl.Id), tok, "", http.StatusNoContent, nil)
	expect(tpl.Id, 4, "template.delete")
	before := ttCountAudit(t, e, "template.create")
	resp, b = flReq(t, e, http.MethodPost, BasePath+"/templates", tok, `{"name":"x"}`, nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable")
	if ttCountAudit(t, e, "template.create") != before {
		t.Fatal("a refused create wrote an audit row")
	}
}

// Deleting a user moves the templates they created to the heir (PRODUCT §3.5).
func TestTemplatesFollowUserDeletion(t *testing.T) {
	e := newTestEnv(t)
	leaver, tok := e.User(rbac.Editor)
	heir, _ := e.User(rbac.Editor)
	_, superTok := e.User(rbac.SuperAdmin)
	tpl := ttCreate(t, e, tok, `{"name":"Left behind","data":`+ttGraph+`}`)
	ttDo(t, e, http.MethodDelete, fmt.Sprintf("%s/users/%d?transfer_to=%d", BasePath, leaver.ID, heir.ID), superTok, "", http.StatusNoContent, nil)
	if got := ttGet(t, e, superTok, tpl.Id); got.CreatedBy.MustGet() != heir.ID {
		t.Fatalf("created_by %v, want %d", got.CreatedBy, heir.ID)
	}
}

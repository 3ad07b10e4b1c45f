package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed fl to share package server with other test files).

var flCtx = context.Background()

// flGraphOK is a complete graph: one trigger and one action it reaches.
const flGraphOK = `{"nodes":[` +
	`{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-manual","label":"Start","config":{}}},` +
	`{"id":"a1","type":"custom","position":{"x":200,"y":0},"data":{"type":"response-data","config":{"body":{"message":"hi"}}}}` +
	`],"edges":[{"id":"e1","source":"t1","target":"a1"}]}`

// flGraphLoose is structurally valid but incomplete: no trigger, and a1 unreachable.
const flGraphLoose = `{"nodes":[{"id":"a1","data":{"type":"response-data"}},{"id":"a2","data":{"type":"response-data"}}],` +
	`"edges":[{"id":"e1","source":"a1","target":"a2"}]}`

func flGraph(t *testing.T, s string) *api.Graph {
	t.Helper()
	var g api.Graph
	if err := json.Unmarshal([]byte(s), &g); err != nil {
		t.Fatalf("graph %s: %v", s, err)
	}
	return &g
}

func flPtr[T any](v T) *T { return &v }

func flCreate(t *testing.T, e *testEnv, tok string, body api.FlowCreate) *api.Flow {
	t.Helper()
	resp, err := e.Client(tok).CreateFlowWithResponse(flCtx, nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
		t.Fatalf("create %q: %d %s", body.Name, resp.StatusCode(), resp.Body)
	}
	return resp.JSON201
}

func flNamed(t *testing.T, e *testEnv, tok, name string) *api.Flow {
	t.Helper()
	return flCreate(t, e, tok, api.FlowCreate{Name: name})
}

// flComplete creates a flow whose graph is complete (publishable).
func flComplete(t *testing.T, e *testEnv, tok, name string) *api.Flow {
	t.Helper()
	return flCreate(t, e, tok, api.FlowCreate{Name: name, Data: flGraph(t, flGraphOK)})
}

func flGet(t *testing.T, e *testEnv, tok string, id int64) *api.Flow {
	t.Helper()
	resp, err := e.Client(tok).GetFlowWithResponse(flCtx, id)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK {
		t.Fatalf("get flow %d: %d %s", id, resp.StatusCode(), resp.Body)
	}
	if got, want := resp.HTTPResponse.Header.Get("ETag"), etag(resp.JSON200.Revision); got != want {
		t.Fatalf("get flow %d: ETag %q, want %q", id, got, want)
	}
	return resp.JSON200
}

func flPatch(t *testing.T, e *testEnv, tok string, id int64, body api.FlowUpdate) *api.Flow {
	t.Helper()
	resp, err := e.Client(tok).UpdateFlowWithResponse(flCtx, id, nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK {
		t.Fatalf("patch flow %d: %d %s", id, resp.StatusCode(), resp.Body)
	}
	flCheckETag(t, resp.HTTPResponse, resp.JSON200)
	return resp.JSON200
}

func flPublish(t *testing.T, e *testEnv, tok string, id int64, version *int32) *api.Flow {
	t.Helper()
	resp, err := e.Client(tok).PublishFlowWithResponse(flCtx, id, api.FlowPublish{Version: version})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK {
		t.Fatalf("publish flow %d: %d %s", id, resp.StatusCode(), resp.Body)
	}
	flCheckETag(t, resp.HTTPResponse, resp.JSON200)
	return resp.JSON200
}

func flCheckETag(t *testing.T, r *http.Response, f *api.Flow) {
	t.Helper()
	if got, want := r.Header.Get("ETag"), etag(f.Revision); got != want {
		t.Fatalf("%s %s: ETag %q, want %q", r.Request.Method, r.Request.URL.Path, got, want)
	}
}

// flReq sends a raw request with optional extra headers; a non-empty body is sent as JSON.
func flReq(t *testing.T, e *testEnv, method, path, tok, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	h := http.Header{}
	if body != "" {
		rd = strings.NewReader(body)
		h.Set("Content-Type", "application/json")
	}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return e.Send(t, method, path, h, rd)
}

func flPath(id int64, rest ...string) string {
	return fmt.Sprintf("%s/flows/%d%s", BasePath, id, strings.Join(rest, ""))
}

// flWantProblem checks a problem's status, slug, and that every pointer (with its code when given as
// "pointer code") is among errors[]. A pointer ending in "*" matches by prefix.
func flWantProblem(t *testing.T, resp *http.Response, body []byte, status int, slug string, pointers ...string) problemBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	p := problemOf(t, resp, body)
	if p.Type != "urn:wataomi:problem:"+slug {
		t.Fatalf("type %q, want slug %q: %s", p.Type, slug, body)
	}
	if p.Instance != resp.Request.URL.Path {
		t.Errorf("instance %q, want %q", p.Instance, resp.Request.URL.Path)
	}
	flWantErrors(t, p, body, pointers...)
	return p
}

// flHasError reports whether errors[] holds the pointer ("pointer" or "pointer code"; a pointer ending
// in "*" matches by prefix).
func flHasError(p problemBody, want string) bool {
	ptr, code, _ := strings.Cut(want, " ")
	for _, fe := range p.Errors {
		okPtr := fe.Pointer == ptr || strings.HasSuffix(ptr, "*") && strings.HasPrefix(fe.Pointer, strings.TrimSuffix(ptr, "*"))
		if okPtr && (code == "" || fe.Code == code) && fe.Detail != "" {
			return true
		}
	}
	return false
}

// flWantErrors checks that errors[] holds every wanted pointer.
func flWantErrors(t *testing.T, p problemBody, body []byte, pointers ...string) {
	t.Helper()
	for _, want := range pointers {
		if !flHasError(p, want) {
			t.Fatalf("no error %q in %s", want, body)
		}
	}
}

// flState is what "the database is unchanged" compares: row counts and one flow row as JSON.
type flState struct {
	Flows, Versions int64
	Row             string
}

func flRow(t *testing.T, e *testEnv, id int64) (*store.Flow, bool) {
	t.Helper()
	var f store.Flow
	err := e.DB.Where("id = ?", id).Limit(1).Find(&f).Error
	if err != nil {
		t.Fatal(err)
	}
	return &f, f.ID != 0
}

func flSnap(t *testing.T, e *testEnv, id int64) flState {
	t.Helper()
	var s flState
	if err := e.DB.Model(&store.Flow{}).Count(&s.Flows).Error; err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Model(&store.FlowVersion{}).Count(&s.Versions).Error; err != nil {
		t.Fatal(err)
	}
	if f, ok := flRow(t, e, id); ok {
		b, _ := json.Marshal(f)
		s.Row = string(b)
	}
	return s
}

func flSame(t *testing.T, before, after flState) {
	t.Helper()
	if before != after {
		t.Fatalf("the database changed:\n before %+v\n after  %+v", before, after)
	}
}

func flVersionCount(t *testing.T, e *testEnv, flowID int64) int64 {
	t.Helper()
	var n int64
	if err := e.DB.Model(&store.FlowVersion{}).Where("flow_id = ?", flowID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// flTeam inserts a team with members, as rows (teams have no API yet).
func flTeam(t *testing.T, e *testEnv, name string, members ...int64) int64 {
	t.Helper()
	team := &store.Team{Name: name, SearchText: store.SearchText(name)}
	if err := e.DB.Create(team).Error; err != nil {
		t.Fatal(err)
	}
	for _, u := range members {
		if err := e.DB.Create(&store.TeamMember{TeamID: team.ID, UserID: u}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return team.ID
}

func flSetStatus(t *testing.T, e *testEnv, id int64, status string) {
	t.Helper()
	upd := map[string]any{"status": status}
	if status == "archived" {
		upd["archived_at"] = store.Now()
	}
	if err := e.DB.Model(&store.Flow{}).Where("id = ?", id).Updates(upd).Error; err != nil {
		t.Fatal(err)
	}
}

// flCanon re-encodes JSON so documents compare regardless of key order and spacing.
func flCanon(t *testing.T, v any) string {
	t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	case store.JSON:
		b = x
	default:
		var err error
		if b, err = json.Marshal(x); err != nil {
			t.Fatal(err)
		}
	}
	var anyv any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&anyv); err != nil {
		t.Fatalf("canon %s: %v", b, err)
	}
	out, _ := json.Marshal(anyv)
	return string(out)
}

func flIDs(items []api.FlowSummary) []int64 {
	out := make([]int64, 0, len(items))
	for _, it := range items {
		out = append(out, it.Id)
	}
	return out
}

func flNames(items []api.FlowSummary) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}

func flList(t *testing.T, e *testEnv, tok string, p api.ListFlowsParams) *api.FlowSummaryPage {
	t.Helper()
	resp, err := e.Client(tok).ListFlowsWithResponse(flCtx, &p)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK {
		t.Fatalf("list: %d %s", resp.StatusCode(), resp.Body)
	}
	return resp.JSON200
}

// flListRaw lists with a raw query string (for repeatable and odd parameters).
func flListRaw(t *testing.T, e *testEnv, tok, query string) *api.FlowSummaryPage {
	t.Helper()
	resp, body := flReq(t, e, http.MethodGet, BasePath+"/flows?"+query, tok, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list ?%s: %d %s", query, resp.StatusCode, body)
	}
	var page api.FlowSummaryPage
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(`"data"`)) {
		t.Fatalf("list items carry data: %s", body)
	}
	return &page
}

var flMsTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// ---------------------------------------------------------------------------------------------------
// CRUD

func TestFlowsCreateDefaults(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Editor)
	resp, err := e.Client(tok).CreateFlowWithResponse(flCtx, nil, api.FlowCreate{Name: "Hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode(), resp.Body)
	}
	f := resp.JSON201
	if loc := resp.HTTPResponse.Header.Get("Location"); loc != flPath(f.Id) {
		t.Errorf("Location %q, want %q", loc, flPath(f.Id))
	}
	if tag := resp.HTTPResponse.Header.Get("ETag"); tag != `"r1"` {
		t.Errorf("ETag %q, want \"r1\"", tag)
	}
	if f.Name != "Hello" || f.Status != api.FlowStatusDraft || f.Visibility != api.FlowVisibilityPrivate || f.OwnerId != u.ID ||
		f.Revision != 1 || f.Version != 1 || f.NodeCount != 0 || f.HasUnpublishedChanges {
		t.Errorf("defaults: %+v", f)
	}
	for name, n := range map[string]interface{ IsNull() bool }{"description": f.Description, "team_id": f.TeamId,
		"published_version": f.PublishedVersion, "archived_at": f.ArchivedAt} {
		if !n.IsNull() {
			t.Errorf("%s should be null", name)
		}
	}
	if got := flCanon(t, f.Data); got != `{"edges":[],"nodes":[]}` {
		t.Errorf("default data %s", got)
	}
	// An empty graph is a valid draft but incomplete: validation says why.
	if f.Validation.Valid || len(f.Validation.Issues) != 1 || f.Validation.Issues[0].Code != "missing-trigger" ||
		f.Validation.Issues[0].Pointer != "/data/nodes" {
		t.Errorf("validation %+v", f.Validation)
	}
	var raw map[string]any
	_ = json.Unmarshal(resp.Body, &raw)
	for _, k := range []string{"created_at", "updated_at"} {
		if s, _ := raw[k].(string); !flMsTime.MatchString(s) {
			t.Errorf("%s = %q, want RFC 3339 UTC with milliseconds", k, raw[k])
		}
	}
	// Version 1 "Initial version" is a snapshot of the working copy.
	var fv store.FlowVersion
	if err := e.DB.Where("flow_id = ? AND version = 1", f.Id).Take(&fv).Error; err != nil {
		t.Fatal(err)
	}
	if fv.Name != "Initial version" || fv.CreatedBy == nil || *fv.CreatedBy != u.ID || flCanon(t, fv.Data) != flCanon(t, f.Data) {
		t.Errorf("initial version %+v", fv)
	}
	if n := flVersionCount(t, e, f.Id); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}
	// GET returns the same resource and ETag.
	got := flGet(t, e, tok, f.Id)
	if got.Name != f.Name || got.Revision != 1 || !got.CreatedAt.Equal(f.CreatedAt.Time) {
		t.Errorf("get %+v", got)
	}
}

func TestFlowsCreateWithFields(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Editor)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Full", Description: nullable.NewNullableWithValue("Greets"),
		Visibility: flPtr(api.FlowVisibilityPublic), Data: flGraph(t, flGraphOK)})
	if f.Description.MustGet() != "Greets" || f.Visibility != api.FlowVisibilityPublic || f.NodeCount != 2 || f.OwnerId != u.ID ||
		!f.Validation.Valid || len(f.Validation.Issues) != 0 || f.Status != api.FlowStatusDraft {
		t.Fatalf("created %+v", f)
	}
	// status published publishes version 1 at once.
	p := flCreate(t, e, tok, api.FlowCreate{Name: "Live", Status: flPtr(api.FlowWriteStatusPublished), Data: flGraph(t, flGraphOK)})
	if p.Status != api.FlowStatusPublished || p.PublishedVersion.MustGet() != 1 || p.Version != 1 || p.HasUnpublishedChanges {
		t.Fatalf("published on create %+v", p)
	}
	if n := flVersionCount(t, e, p.Id); n != 1 {
		t.Fatalf("%d versions after a published create, want 1", n)
	}
	// status draft is simply the default.
	d := flCreate(t, e, tok, api.FlowCreate{Name: "Draft", Status: flPtr(api.FlowWriteStatusDraft)})
	if d.Status != api.FlowStatusDraft || !d.PublishedVersion.IsNull() {
		t.Fatalf("draft create %+v", d)
	}
	// Publishing an incomplete graph on create is refused and creates nothing.
	before := flSnap(t, e, 0)
	resp, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok,
		`{"name":"Bad","status":"published","data":`+flGraphLoose+`}`, nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "invalid-graph", "/data/nodes missing-trigger")
	resp, body = flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"Bad","status":"published"}`, nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "invalid-graph", "/data/nodes missing-trigger")
	flSame(t, before, flSnap(t, e, 0))
	// A non-ASCII name of exactly 200 characters is accepted (length counts characters).
	long := strings.Repeat("é", 200)
	if f := flNamed(t, e, tok, long); f.Name != long {
		t.Fatalf("name %q", f.Name)
	}
}

// flVerb abstracts PUT and PATCH, which take the same partial body.
type flVerb func(e *testEnv, tok string, id int64, ifMatch *string, body api.FlowUpdate) (int, *api.Flow, *http.Response, []byte)

var flVerbs = []struct {
	name string
	do   flVerb
}{
	{"PUT", func(e *testEnv, tok string, id int64, ifMatch *string, body api.FlowUpdate) (int, *api.Flow, *http.Response, []byte) {
		r, err := e.Client(tok).PutFlowWithResponse(flCtx, id, &api.PutFlowParams{IfMatch: ifMatch}, body)
		if err != nil {
			e.t.Fatal(err)
		}
		return r.StatusCode(), r.JSON200, r.HTTPResponse, r.Body
	}},
	{"PATCH", func(e *testEnv, tok string, id int64, ifMatch *string, body api.FlowUpdate) (int, *api.Flow, *http.Response, []byte) {
		r, err := e.Client(tok).UpdateFlowWithResponse(flCtx, id, &api.UpdateFlowParams{IfMatch: ifMatch}, body)
		if err != nil {
			e.t.Fatal(err)
		}
		return r.StatusCode(), r.JSON200, r.HTTPResponse, r.Body
	}},
}

func TestFlowsUpdatePartial(t *testing.T) {
	for _, verb := range flVerbs {
		t.Run(verb.name, func(t *testing.T) {
			e := newTestEnv(t)
			_, tok := e.User(rbac.Editor)
			base := flCreate(t, e, tok, api.FlowCreate{Name: "Orig", Description: nullable.NewNullableWithValue("Desc"),
				Data: flGraph(t, flGraphOK)})
			update := func(body api.FlowUpdate) *api.Flow {
				t.Helper()
				st, f, r, raw := verb.do(e, tok, base.Id, nil, body)
				if st != http.StatusOK {
					t.Fatalf("%s: %d %s", verb.name, st, raw)
				}
				flCheckETag(t, r, f)
				return f
			}

			// {} is a no-op: 200, nothing changes, not even updated_at.
			before := flSnap(t, e, base.Id)
			f := update(api.FlowUpdate{})
			if f.Revision != 1 || f.Name != "Orig" {
				t.Fatalf("{}: %+v", f)
			}
			flSame(t, before, flSnap(t, e, base.Id))

			// Writing the current values is a no-op too (same name, same graph).
			f = update(api.FlowUpdate{Name: flPtr("Orig"), Description: nullable.NewNullableWithValue("Desc"),
				Data: flGraph(t, flGraphOK), Visibility: flPtr(api.FlowVisibilityPrivate)})
			if f.Revision != 1 {
				t.Fatalf("identical values bumped the revision: %+v", f)
			}
			flSame(t, before, flSnap(t, e, base.Id))

			// Name only: description and data are unchanged; revision +1.
			f = update(api.FlowUpdate{Name: flPtr("Renamed")})
			if f.Name != "Renamed" || f.Description.MustGet() != "Desc" || f.Revision != 2 || f.NodeCount != 2 ||
				flCanon(t, f.Data) != flCanon(t, flGraphOK) {
				t.Fatalf("name only: %+v", f)
			}
			if row, _ := flRow(t, e, base.Id); row.SearchText != "renamed desc" {
				t.Fatalf("search_text %q not refreshed", row.SearchText)
			}
			// description null clears it.
			f = update(api.FlowUpdate{Description: nullable.NewNullNullable[string]()})
			if !f.Description.IsNull() || f.Name != "Renamed" || f.Revision != 3 {
				t.Fatalf("description null: %+v", f)
			}
			// data replaces the graph whole; node_count follows.
			f = update(api.FlowUpdate{Data: flGraph(t, `{"nodes":[{"id":"only","data":{"type":"trigger-manual"}}],"edges":[]}`)})
			if f.NodeCount != 1 || f.Revision != 4 || !f.Validation.Valid || f.Name != "Renamed" {
				t.Fatalf("data: %+v", f)
			}
			// visibility.
			f = update(api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityPublic)})
			if f.Visibility != api.FlowVisibilityPublic || f.Revision != 5 {
				t.Fatalf("visibility: %+v", f)
			}
			got := flGet(t, e, tok, base.Id)
			if got.Revision != 5 || got.Visibility != api.FlowVisibilityPublic || !got.Description.IsNull() || got.UpdatedAt.Before(base.UpdatedAt.Time) {
				t.Fatalf("get after updates: %+v", got)
			}
			if n := flVersionCount(t, e, base.Id); n != 1 {
				t.Fatalf("updates created versions: %d", n)
			}
			// Unknown flow: 404.
			st, _, r, raw := verb.do(e, tok, 999999, nil, api.FlowUpdate{Name: flPtr("x")})
			if st != http.StatusNotFound {
				t.Fatalf("unknown flow: %d", st)
			}
			flWantProblem(t, r, raw, http.StatusNotFound, "not-found")
		})
	}
}

func TestFlowsDelete(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Manager) // editors lack flow:delete
	f := flComplete(t, e, tok, "Doomed")
	flPublish(t, e, tok, f.Id, nil)
	keep := flNamed(t, e, tok, "Kept")
	if n := flVersionCount(t, e, f.Id); n != 2 {
		t.Fatalf("%d versions, want 2", n)
	}
	resp, err := e.Client(tok).DeleteFlowWithResponse(flCtx, f.Id)
	if err != nil || resp.StatusCode() != http.StatusNoContent || len(resp.Body) != 0 {
		t.Fatalf("delete: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	r, body := flReq(t, e, http.MethodGet, flPath(f.Id), tok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
	r, body = flReq(t, e, http.MethodGet, flPath(f.Id, "/versions"), tok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
	if n := flVersionCount(t, e, f.Id); n != 0 {
		t.Fatalf("%d versions left after delete", n)
	}
	r, body = flReq(t, e, http.MethodDelete, flPath(f.Id), tok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
	// The other flow is untouched.
	if got := flGet(t, e, tok, keep.Id); got.Name != "Kept" || flVersionCount(t, e, keep.Id) != 1 {
		t.Fatalf("other flow changed: %+v", got)
	}
	// An editor has no flow:delete: 403 naming the permission, even on their own flow.
	_, etok := e.User(rbac.Editor)
	own := flNamed(t, e, etok, "Mine")
	before := flSnap(t, e, own.Id)
	r, body = flReq(t, e, http.MethodDelete, flPath(own.Id), etok, "", nil)
	if p := flWantProblem(t, r, body, http.StatusForbidden, "forbidden"); p.MissingPermission != "flow:delete" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
	flSame(t, before, flSnap(t, e, own.Id))
}

// ---------------------------------------------------------------------------------------------------
// Publish, unpublish, status writes, duplicate, validate

func TestFlowsPublishUnpublish(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	c := e.Client(tok)

	// An incomplete graph cannot be published; nothing changes.
	loose := flCreate(t, e, tok, api.FlowCreate{Name: "Loose", Data: flGraph(t, flGraphLoose)})
	if loose.Validation.Valid {
		t.Fatalf("incomplete graph reported valid: %+v", loose.Validation)
	}
	before := flSnap(t, e, loose.Id)
	r, body := flReq(t, e, http.MethodPost, flPath(loose.Id, "/publish"), tok, "", nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", "/data/nodes missing-trigger")
	r, body = flReq(t, e, http.MethodPatch, flPath(loose.Id), tok, `{"status":"published"}`, nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", "/data/nodes missing-trigger")
	flSame(t, before, flSnap(t, e, loose.Id))
	// Unreachable nodes block publishing too.
	unreach := flCreate(t, e, tok, api.FlowCreate{Name: "Unreach", Data: flGraph(t,
		`{"nodes":[{"id":"t","data":{"type":"trigger-manual"}},{"id":"x","data":{"type":"response-data"}}],"edges":[]}`)})
	if unreach.Validation.Valid || unreach.Validation.Issues[0].Code != "unreachable" || unreach.Validation.Issues[0].Pointer != "/data/nodes/1" {
		t.Fatalf("validation %+v", unreach.Validation)
	}
	r, body = flReq(t, e, http.MethodPost, flPath(unreach.Id, "/publish"), tok, "{}", nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", "/data/nodes/1 unreachable")

	// Publish snapshots a new version and publishes it.
	f := flComplete(t, e, tok, "Pub")
	p := flPublish(t, e, tok, f.Id, nil)
	if p.Status != api.FlowStatusPublished || p.Version != 2 || p.PublishedVersion.MustGet() != 2 || p.Revision != 2 || p.HasUnpublishedChanges {
		t.Fatalf("publish: %+v", p)
	}
	var fv store.FlowVersion
	if err := e.DB.Where("flow_id = ? AND version = 2", f.Id).Take(&fv).Error; err != nil || fv.Name != "Version 2" {
		t.Fatalf("published snapshot %+v %v", fv, err)
	}
	// Publishing again without changes is a no-op: no version, no revision.
	before = flSnap(t, e, f.Id)
	if p2 := flPublish(t, e, tok, f.Id, nil); p2.Revision != 2 || p2.Version != 2 {
		t.Fatalf("republish without changes: %+v", p2)
	}
	if p2 := flPatch(t, e, tok, f.Id, api.FlowUpdate{Status: flPtr(api.FlowWriteStatusPublished)}); p2.Revision != 2 || p2.Version != 2 {
		t.Fatalf("status published without changes: %+v", p2)
	}
	flSame(t, before, flSnap(t, e, f.Id))

	// Moving a node (position, label, viewport) is not an unpublished change.
	moved := strings.Replace(flGraphOK, `"x":200,"y":0`, `"x":321.5,"y":-40`, 1)
	moved = strings.Replace(moved, `"label":"Start"`, `"label":"Begin"`, 1)
	moved = strings.TrimSuffix(moved, "}") + `,"viewport":{"x":10,"y":20,"zoom":1.5}}`
	m := flPatch(t, e, tok, f.Id, api.FlowUpdate{Data: flGraph(t, moved)})
	if m.HasUnpublishedChanges || m.Revision != 3 {
		t.Fatalf("moving a node: %+v", m)
	}
	// Changing a config is.
	changed := strings.Replace(flGraphOK, `"message":"hi"`, `"message":"bye"`, 1)
	m = flPatch(t, e, tok, f.Id, api.FlowUpdate{Data: flGraph(t, changed)})
	if !m.HasUnpublishedChanges || m.Status != api.FlowStatusPublished || m.PublishedVersion.MustGet() != 2 {
		t.Fatalf("config change: %+v", m)
	}
	list := flList(t, e, tok, api.ListFlowsParams{})
	for _, it := range list.Items {
		if it.Id == f.Id && !it.HasUnpublishedChanges {
			t.Fatalf("summary lacks has_unpublished_changes: %+v", it)
		}
	}
	// status: published on a flow with changes republishes: version 3.
	m = flPatch(t, e, tok, f.Id, api.FlowUpdate{Status: flPtr(api.FlowWriteStatusPublished)})
	if m.Version != 3 || m.PublishedVersion.MustGet() != 3 || m.HasUnpublishedChanges {
		t.Fatalf("republish by status: %+v", m)
	}
	// Publishing an older snapshot: published_version moves back, and the working copy now differs.
	m = flPublish(t, e, tok, f.Id, flPtr[int32](1))
	if m.PublishedVersion.MustGet() != 1 || m.Version != 3 || !m.HasUnpublishedChanges || m.Status != api.FlowStatusPublished {
		t.Fatalf("publish version 1: %+v", m)
	}
	// Publishing the already published version again changes nothing.
	rev := m.Revision
	if m = flPublish(t, e, tok, f.Id, flPtr[int32](1)); m.Revision != rev {
		t.Fatalf("re-publishing the same version bumped the revision")
	}
	// An unknown version: 422 at /version, nothing changes.
	before = flSnap(t, e, f.Id)
	r, body = flReq(t, e, http.MethodPost, flPath(f.Id, "/publish"), tok, `{"version":99}`, nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "unprocessable", "/version")
	flSame(t, before, flSnap(t, e, f.Id))
	// A version whose graph is incomplete cannot be published.
	lv := flCreate(t, e, tok, api.FlowCreate{Name: "LV", Data: flGraph(t, flGraphLoose)})
	flPatch(t, e, tok, lv.Id, api.FlowUpdate{Data: flGraph(t, flGraphOK)})
	r, body = flReq(t, e, http.MethodPost, flPath(lv.Id, "/publish"), tok, `{"version":1}`, nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", "/data/nodes missing-trigger")

	// Unpublish: draft, no published version, no unpublished changes.
	u, err := c.UnpublishFlowWithResponse(flCtx, f.Id)
	if err != nil || u.StatusCode() != http.StatusOK {
		t.Fatalf("unpublish: %v %d %s", err, u.StatusCode(), u.Body)
	}
	flCheckETag(t, u.HTTPResponse, u.JSON200)
	if g := u.JSON200; g.Status != api.FlowStatusDraft || !g.PublishedVersion.IsNull() || g.HasUnpublishedChanges || g.Revision != rev+1 {
		t.Fatalf("unpublished: %+v", g)
	}
	if row, _ := flRow(t, e, f.Id); row.PublishedHash != nil || row.PublishedVersion != nil {
		t.Fatalf("unpublished row keeps published_version %v / published_hash %v", row.PublishedVersion, row.PublishedHash)
	}
	// Unpublishing a draft is a no-op.
	before = flSnap(t, e, f.Id)
	if u, _ = c.UnpublishFlowWithResponse(flCtx, f.Id); u.StatusCode() != http.StatusOK || u.JSON200.Revision != rev+1 {
		t.Fatalf("second unpublish: %d %s", u.StatusCode(), u.Body)
	}
	if g := flPatch(t, e, tok, f.Id, api.FlowUpdate{Status: flPtr(api.FlowWriteStatusDraft)}); g.Revision != rev+1 {
		t.Fatalf("status draft on a draft bumped the revision")
	}
	flSame(t, before, flSnap(t, e, f.Id))
	// status published through PUT, then status draft through PUT.
	pr, err := c.PutFlowWithResponse(flCtx, f.Id, nil, api.FlowUpdate{Status: flPtr(api.FlowWriteStatusPublished)})
	if err != nil || pr.StatusCode() != http.StatusOK || pr.JSON200.Status != api.FlowStatusPublished || pr.JSON200.PublishedVersion.MustGet() != 4 {
		t.Fatalf("PUT published: %d %s", pr.StatusCode(), pr.Body)
	}
	pr, err = c.PutFlowWithResponse(flCtx, f.Id, nil, api.FlowUpdate{Status: flPtr(api.FlowWriteStatusDraft)})
	if err != nil || pr.StatusCode() != http.StatusOK || pr.JSON200.Status != api.FlowStatusDraft || !pr.JSON200.PublishedVersion.IsNull() {
		t.Fatalf("PUT draft: %d %s", pr.StatusCode(), pr.Body)
	}
	// Name and status in one write: both apply, one revision.
	pr, _ = c.PutFlowWithResponse(flCtx, f.Id, nil, api.FlowUpdate{Name: flPtr("Both"), Status: flPtr(api.FlowWriteStatusPublished)})
	if pr.StatusCode() != http.StatusOK || pr.JSON200.Name != "Both" || pr.JSON200.Status != api.FlowStatusPublished ||
		pr.JSON200.Revision != flRevision(t, e, f.Id) {
		t.Fatalf("name+status: %d %s", pr.StatusCode(), pr.Body)
	}
	// Data and status in one write: the new graph is what is snapshotted and published.
	d2 := strings.Replace(flGraphOK, `"message":"hi"`, `"message":"third"`, 1)
	pr, _ = c.PutFlowWithResponse(flCtx, f.Id, nil, api.FlowUpdate{Data: flGraph(t, d2), Status: flPtr(api.FlowWriteStatusPublished)})
	if pr.StatusCode() != http.StatusOK || pr.JSON200.HasUnpublishedChanges {
		t.Fatalf("data+status: %d %s", pr.StatusCode(), pr.Body)
	}
	var last store.FlowVersion
	_ = e.DB.Where("flow_id = ? AND version = ?", f.Id, pr.JSON200.PublishedVersion.MustGet()).Take(&last).Error
	if !strings.Contains(string(last.Data), "third") {
		t.Fatalf("published snapshot is not the new graph: %s", last.Data)
	}
}

func flRevision(t *testing.T, e *testEnv, id int64) int {
	t.Helper()
	f, ok := flRow(t, e, id)
	if !ok {
		t.Fatalf("flow %d gone", id)
	}
	return f.Revision
}

func TestFlowsArchivedIsReadOnly(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "Old")
	flSetStatus(t, e, f.Id, "archived")
	before := flSnap(t, e, f.Id)
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPatch, flPath(f.Id), `{"name":"New"}`},
		{http.MethodPut, flPath(f.Id), `{"name":"New"}`},
		{http.MethodPost, flPath(f.Id, "/publish"), ""},
		{http.MethodPost, flPath(f.Id, "/unpublish"), ""},
		{http.MethodPost, flPath(f.Id, "/versions"), ""},
		{http.MethodPost, flPath(f.Id, "/versions/1/restore"), ""},
	} {
		r, body := flReq(t, e, tc.method, tc.path, tok, tc.body, nil)
		flWantProblem(t, r, body, http.StatusConflict, "invalid-state")
	}
	flSame(t, before, flSnap(t, e, f.Id))
	// Still readable and duplicable.
	if g := flGet(t, e, tok, f.Id); g.Status != api.FlowStatusArchived || g.ArchivedAt.IsNull() {
		t.Fatalf("archived flow: %+v", g)
	}
	d, err := e.Client(tok).DuplicateFlowWithResponse(flCtx, f.Id, nil, api.FlowDuplicate{})
	if err != nil || d.StatusCode() != http.StatusCreated || d.JSON201.Status != api.FlowStatusDraft || !d.JSON201.ArchivedAt.IsNull() {
		t.Fatalf("duplicate archived: %d %s", d.StatusCode(), d.Body)
	}
}

func TestFlowsDuplicate(t *testing.T) {
	e := newTestEnv(t)
	owner, otok := e.User(rbac.Editor)
	other, tok := e.User(rbac.Editor)
	team := flTeam(t, e, "dup-team", owner.ID)
	src := flCreate(t, e, otok, api.FlowCreate{Name: "Src", Description: nullable.NewNullableWithValue("d"),
		Visibility: flPtr(api.FlowVisibilityTeam), TeamId: nullable.NewNullableWithValue(team), Data: flGraph(t, flGraphOK),
		Status: flPtr(api.FlowWriteStatusPublished)})
	flPatch(t, e, otok, src.Id, api.FlowUpdate{Name: flPtr("Src")}) // no-op, keeps revision 1
	flPatch(t, e, otok, src.Id, api.FlowUpdate{Data: flGraph(t, strings.Replace(flGraphOK, "hi", "ho", 1))})

	check := func(d *api.Flow, resp *http.Response, name string, caller int64) {
		t.Helper()
		if d.Name != name || d.OwnerId != caller || d.Visibility != api.FlowVisibilityPrivate || !d.TeamId.IsNull() ||
			d.Status != api.FlowStatusDraft || !d.PublishedVersion.IsNull() || d.Version != 1 || d.Revision != 1 ||
			d.HasUnpublishedChanges || d.Id == src.Id {
			t.Fatalf("copy %+v", d)
		}
		if loc := resp.Header.Get("Location"); loc != flPath(d.Id) {
			t.Fatalf("Location %q", loc)
		}
		if tag := resp.Header.Get("ETag"); tag != `"r1"` {
			t.Fatalf("ETag %q", tag)
		}
		s := flGet(t, e, otok, src.Id)
		if flCanon(t, d.Data) != flCanon(t, s.Data) || d.NodeCount != s.NodeCount {
			t.Fatalf("copy data %s, want %s", flCanon(t, d.Data), flCanon(t, s.Data))
		}
		var vs []store.FlowVersion
		_ = e.DB.Where("flow_id = ?", d.Id).Find(&vs).Error
		if len(vs) != 1 || vs[0].Version != 1 || vs[0].Name != "Initial version" || flCanon(t, vs[0].Data) != flCanon(t, s.Data) {
			t.Fatalf("copy versions %+v", vs)
		}
	}
	// The owner duplicates with the default name.
	r, err := e.Client(otok).DuplicateFlowWithResponse(flCtx, src.Id, nil, api.FlowDuplicate{})
	if err != nil || r.StatusCode() != http.StatusCreated {
		t.Fatalf("duplicate: %v %d %s", err, r.StatusCode(), r.Body)
	}
	check(r.JSON201, r.HTTPResponse, "Src (Copy)", owner.ID)
	// Without a body at all.
	raw, body := flReq(t, e, http.MethodPost, flPath(src.Id, "/duplicate"), otok, "", nil)
	if raw.StatusCode != http.StatusCreated {
		t.Fatalf("duplicate without body: %d %s", raw.StatusCode, body)
	}
	// A chosen name.
	r, _ = e.Client(otok).DuplicateFlowWithResponse(flCtx, src.Id, nil, api.FlowDuplicate{Name: flPtr("Mine now")})
	check(r.JSON201, r.HTTPResponse, "Mine now", owner.ID)
	// A stranger cannot see the team flow: 404, nothing created.
	before := flSnap(t, e, src.Id)
	raw, body = flReq(t, e, http.MethodPost, flPath(src.Id, "/duplicate"), tok, "{}", nil)
	flWantProblem(t, raw, body, http.StatusNotFound, "not-found")
	flSame(t, before, flSnap(t, e, src.Id))
	// A public flow can be duplicated by anyone; the copy is theirs.
	flPatch(t, e, otok, src.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityPublic)})
	r, _ = e.Client(tok).DuplicateFlowWithResponse(flCtx, src.Id, nil, api.FlowDuplicate{})
	if r.StatusCode() != http.StatusCreated {
		t.Fatalf("duplicate public: %d %s", r.StatusCode(), r.Body)
	}
	check(r.JSON201, r.HTTPResponse, "Src (Copy)", other.ID)
	// A long name still fits the 200-character limit, and the copy keeps its suffix.
	for _, long := range []string{strings.Repeat("n", 200), strings.Repeat("é", 195), strings.Repeat("n", 193)} {
		lf := flNamed(t, e, otok, long)
		r, _ = e.Client(otok).DuplicateFlowWithResponse(flCtx, lf.Id, nil, api.FlowDuplicate{})
		want := string([]rune(long)[:193]) + " (Copy)"
		if r.StatusCode() != http.StatusCreated || r.JSON201.Name != want {
			t.Fatalf("duplicate %d-character name: %d %s", len([]rune(long)), r.StatusCode(), r.Body)
		}
	}
	// A viewer has no flow:create.
	_, vtok := e.User(rbac.Viewer)
	raw, body = flReq(t, e, http.MethodPost, flPath(src.Id, "/duplicate"), vtok, "", nil)
	if p := flWantProblem(t, raw, body, http.StatusForbidden, "forbidden"); p.MissingPermission != "flow:create" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
}

func TestFlowsValidate(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "V")
	c := e.Client(tok)
	r, err := c.ValidateFlowWithBodyWithResponse(flCtx, f.Id, "application/json", nil)
	if err != nil || r.StatusCode() != http.StatusOK || !r.JSON200.Valid || len(r.JSON200.Issues) != 0 {
		t.Fatalf("validate working copy: %v %d %s", err, r.StatusCode(), r.Body)
	}
	before := flSnap(t, e, f.Id)
	// A given graph is checked, structural and completeness issues alike, and nothing is saved.
	bad := `{"data":{"nodes":[{"id":"a","data":{"type":"response-data"}},{"id":"a","data":{"type":"response-data"}}],"edges":[{"id":"e","source":"a","target":"zz"}]}}`
	raw, body := flReq(t, e, http.MethodPost, flPath(f.Id, "/validate"), tok, bad, nil)
	if raw.StatusCode != http.StatusOK {
		t.Fatalf("validate: %d %s", raw.StatusCode, body)
	}
	var v api.FlowValidation
	_ = json.Unmarshal(body, &v)
	want := map[string]string{"/data/nodes/1/id": "duplicate-id", "/data/edges/0/target": "dangling-edge", "/data/nodes": "missing-trigger"}
	got := map[string]string{}
	for _, is := range v.Issues {
		got[is.Pointer] = is.Code
		if is.Severity != "error" || is.Message == "" {
			t.Errorf("issue %+v", is)
		}
	}
	if v.Valid || !reflect.DeepEqual(got, want) {
		t.Fatalf("issues %v, want %v", got, want)
	}
	flSame(t, before, flSnap(t, e, f.Id))
	// The working copy of an incomplete flow.
	l := flCreate(t, e, tok, api.FlowCreate{Name: "L", Data: flGraph(t, flGraphLoose)})
	r, _ = c.ValidateFlowWithResponse(flCtx, l.Id, api.FlowValidateRequest{})
	if r.StatusCode() != http.StatusOK || r.JSON200.Valid || r.JSON200.Issues[0].Code != "missing-trigger" {
		t.Fatalf("validate incomplete: %d %s", r.StatusCode(), r.Body)
	}
}

// ---------------------------------------------------------------------------------------------------
// ETag / If-Match

func TestFlowsIfMatch(t *testing.T) {
	for _, verb := range flVerbs {
		t.Run(verb.name, func(t *testing.T) {
			e := newTestEnv(t)
			_, tok := e.User(rbac.Editor)
			f := flNamed(t, e, tok, "E")
			flPatch(t, e, tok, f.Id, api.FlowUpdate{Name: flPtr("E2")}) // revision 2
			before := flSnap(t, e, f.Id)
			for _, stale := range []string{`"r1"`, `"r3"`, `r2`, `W/"r2"`, `"x"`} {
				st, _, r, body := verb.do(e, tok, f.Id, flPtr(stale), api.FlowUpdate{Name: flPtr("Lost")})
				if st != http.StatusPreconditionFailed {
					t.Fatalf("If-Match %s: %d %s", stale, st, body)
				}
				flWantProblem(t, r, body, http.StatusPreconditionFailed, "precondition-failed")
			}
			// A stale If-Match on an empty body is refused too.
			st, _, _, body := verb.do(e, tok, f.Id, flPtr(`"r1"`), api.FlowUpdate{})
			if st != http.StatusPreconditionFailed {
				t.Fatalf("stale If-Match with {}: %d %s", st, body)
			}
			flSame(t, before, flSnap(t, e, f.Id))
			// The current ETag passes and yields the next one; "*" always passes.
			st, g, r, body := verb.do(e, tok, f.Id, flPtr(`"r2"`), api.FlowUpdate{Name: flPtr("E3")})
			if st != http.StatusOK || g.Revision != 3 || g.Name != "E3" {
				t.Fatalf("matching If-Match: %d %s", st, body)
			}
			flCheckETag(t, r, g)
			st, g, _, body = verb.do(e, tok, f.Id, flPtr(`*`), api.FlowUpdate{Name: flPtr("E4")})
			if st != http.StatusOK || g.Revision != 4 {
				t.Fatalf("If-Match *: %d %s", st, body)
			}
			// If-Match is a list: any matching tag passes.
			st, g, _, body = verb.do(e, tok, f.Id, flPtr(`"r1", "r4" ,"r9"`), api.FlowUpdate{Name: flPtr("E5")})
			if st != http.StatusOK || g.Revision != 5 {
				t.Fatalf("If-Match list: %d %s", st, body)
			}
			st, _, _, body = verb.do(e, tok, f.Id, flPtr(`"r1", "r4"`), api.FlowUpdate{Name: flPtr("E6")})
			if st != http.StatusPreconditionFailed {
				t.Fatalf("If-Match list without the current tag: %d %s", st, body)
			}
			// The ETag of GET is what the next write must send.
			tag := flReqETag(t, e, tok, f.Id)
			st, _, _, body = verb.do(e, tok, f.Id, &tag, api.FlowUpdate{Description: nullable.NewNullableWithValue("x")})
			if st != http.StatusOK {
				t.Fatalf("If-Match from GET: %d %s", st, body)
			}
			// If-Match is checked after visibility: an unknown flow is 404, not 412.
			st, _, _, _ = verb.do(e, tok, 999999, flPtr(`"r1"`), api.FlowUpdate{Name: flPtr("x")})
			if st != http.StatusNotFound {
				t.Fatalf("unknown flow with If-Match: %d", st)
			}
		})
	}
}

func flReqETag(t *testing.T, e *testEnv, tok string, id int64) string {
	t.Helper()
	r, body := flReq(t, e, http.MethodGet, flPath(id), tok, "", nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("get: %d %s", r.StatusCode, body)
	}
	return r.Header.Get("ETag")
}

// ---------------------------------------------------------------------------------------------------
// Lists

func TestFlowsListPaging(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	var ids []int64
	for i := 0; i < 5; i++ {
		ids = append(ids, flNamed(t, e, tok, fmt.Sprintf("f%d", i)).Id)
	}
	slices.Reverse(ids) // default sort -created_at, newest first
	cases := []struct {
		page, size, n, totalPages int
		next, prev                bool
		first                     int
	}{
		{1, 2, 2, 3, true, false, 0},
		{2, 2, 2, 3, true, true, 2},
		{3, 2, 1, 3, false, true, 4},
		{4, 2, 0, 3, false, true, -1},
		{1, 5, 5, 1, false, false, 0},
		{1, 100, 5, 1, false, false, 0},
		{99, 1, 0, 5, false, true, -1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("page%d_size%d", tc.page, tc.size), func(t *testing.T) {
			p := flList(t, e, tok, api.ListFlowsParams{Page: &tc.page, PageSize: &tc.size})
			if p.Total != 5 || p.Page != tc.page || p.PageSize != tc.size || len(p.Items) != tc.n ||
				p.TotalPages != tc.totalPages || p.HasNext != tc.next || p.HasPrev != tc.prev || p.Stats != nil {
				t.Fatalf("page %+v", p)
			}
			if tc.first >= 0 && !slices.Equal(flIDs(p.Items), ids[tc.first:tc.first+tc.n]) {
				t.Fatalf("ids %v, want %v", flIDs(p.Items), ids[tc.first:tc.first+tc.n])
			}
		})
	}
	// Defaults: page 1, page_size 25. An empty list has total_pages 0.
	p := flListRaw(t, e, tok, "")
	if p.Page != 1 || p.PageSize != 25 || p.Total != 5 {
		t.Fatalf("defaults %+v", p)
	}
	_, tok2 := e.User(rbac.Editor)
	p = flList(t, e, tok2, api.ListFlowsParams{})
	if p.Total != 0 || p.TotalPages != 0 || p.HasNext || p.HasPrev || p.Items == nil || len(p.Items) != 0 {
		t.Fatalf("empty %+v", p)
	}
	r, body := flReq(t, e, http.MethodGet, BasePath+"/flows", tok2, "", nil)
	if r.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"items":[]`)) {
		t.Fatalf("empty list body %s", body)
	}
	p = flList(t, e, tok2, api.ListFlowsParams{Page: flPtr(2)})
	if p.Total != 0 || p.TotalPages != 0 || p.HasPrev || len(p.Items) != 0 {
		t.Fatalf("empty page 2 %+v", p)
	}
}

func TestFlowsListSortAndFilters(t *testing.T) {
	e := newTestEnv(t)
	me, tok := e.User(rbac.Editor)
	other, otok := e.User(rbac.Editor)
	mk := func(tok, name string, vis api.FlowVisibility) int64 {
		time.Sleep(2 * time.Millisecond) // distinct timestamps, so the expected orders do not rest on ties
		return flCreate(t, e, tok, api.FlowCreate{Name: name, Visibility: &vis, Data: flGraph(t, flGraphOK)}).Id
	}
	bravo := mk(tok, "bravo", api.FlowVisibilityPrivate)
	alpha := mk(tok, "alpha", api.FlowVisibilityPublic)
	delta := mk(tok, "delta", api.FlowVisibilityPrivate)
	charlie := mk(otok, "charlie", api.FlowVisibilityPublic) // another user's public flow: visible
	hidden := mk(otok, "hidden", api.FlowVisibilityPrivate)  // another user's private flow: never visible
	echo := mk(tok, "echo", api.FlowVisibilityPrivate)
	flPublish(t, e, tok, delta, nil)
	flSetStatus(t, e, echo, "archived")
	time.Sleep(5 * time.Millisecond)
	flPatch(t, e, tok, bravo, api.FlowUpdate{Description: nullable.NewNullableWithValue("touched")}) // newest updated_at

	sorts := []struct {
		sort string
		want []int64
	}{
		{"", []int64{charlie, delta, alpha, bravo}},
		{"-created_at", []int64{charlie, delta, alpha, bravo}},
		{"created_at", []int64{bravo, alpha, delta, charlie}},
		{"name", []int64{alpha, bravo, charlie, delta}},
		{"-name", []int64{delta, charlie, bravo, alpha}},
		{"-updated_at", []int64{bravo, delta, charlie, alpha}},
		{"status,name", []int64{alpha, bravo, charlie, delta}},
		{"-status,name", []int64{delta, alpha, bravo, charlie}},
		{"-status,-name", []int64{delta, charlie, bravo, alpha}},
	}
	for _, tc := range sorts {
		t.Run("sort="+tc.sort, func(t *testing.T) {
			q := ""
			if tc.sort != "" {
				q = "sort=" + tc.sort
			}
			if got := flIDs(flListRaw(t, e, tok, q).Items); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	_ = hidden
	filters := []struct {
		query string
		want  []int64
	}{
		{"status=draft&sort=name", []int64{alpha, bravo, charlie}},
		{"status=published", []int64{delta}},
		{"status=archived", []int64{echo}},
		{"status=draft&status=archived&sort=name", []int64{alpha, bravo, charlie, echo}},
		{"status=draft&status=published&status=archived&sort=name", []int64{alpha, bravo, charlie, delta, echo}},
		{"visibility=public&sort=name", []int64{alpha, charlie}},
		{"visibility=private&sort=name", []int64{bravo, delta}},
		{"visibility=team", nil},
		{"owner_id=me&sort=name", []int64{alpha, bravo, delta}},
		{"owner_id=me&status=archived", []int64{echo}},
		{"owner_id=" + strconv.FormatInt(other.ID, 10), []int64{charlie}},
		{"owner_id=" + strconv.FormatInt(me.ID, 10) + "&visibility=public", []int64{alpha}},
		{"owner_id=999999", nil},
		{"owner_id=me&visibility=public&status=published", nil},
		{"unknown_param=1&sort=name", []int64{alpha, bravo, charlie, delta}},
	}
	for _, tc := range filters {
		t.Run(tc.query, func(t *testing.T) {
			p := flListRaw(t, e, tok, tc.query)
			if got := flIDs(p.Items); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if p.Total != int64(len(tc.want)) {
				t.Fatalf("total %d, want %d", p.Total, len(tc.want))
			}
		})
	}
	// Summaries carry the list fields.
	for _, it := range flListRaw(t, e, tok, "status=published").Items {
		if it.Status != api.FlowStatusPublished || it.PublishedVersion.MustGet() != 2 || it.NodeCount != 2 || it.OwnerId != me.ID {
			t.Fatalf("summary %+v", it)
		}
	}
	// Paging follows the sort with its id tiebreaker: equal statuses page consistently.
	var seen []int64
	for page := 1; page <= 4; page++ {
		p := flListRaw(t, e, tok, fmt.Sprintf("sort=status&page_size=1&page=%d", page))
		seen = append(seen, flIDs(p.Items)...)
	}
	slices.Sort(seen)
	want := []int64{bravo, alpha, delta, charlie}
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Fatalf("paging by status saw %v, want each of %v once", seen, want)
	}
}

func TestFlowsListSearch(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, otok := e.User(rbac.Editor)
	id := func(name, desc string) int64 {
		b := api.FlowCreate{Name: name}
		if desc != "" {
			b.Description = nullable.NewNullableWithValue(desc)
		}
		return flCreate(t, e, tok, b).Id
	}
	hello := id("Hello World", "")
	pct := id("100% Done", "")
	under := id("under_score", "")
	underx := id("underXscore", "")
	uni := id("Ünïcödé Straße", "")
	magic := id("Plain", "Contains the MAGIC word")
	back := id(`back\slash`, "")
	id("zzz 100 Done", "")                                     // would match "100% Done" if % were a wildcard
	flCreate(t, e, otok, api.FlowCreate{Name: "hello secret"}) // private to someone else

	cases := []struct {
		q    string
		want []int64
	}{
		{"hello", []int64{hello}},
		{"WORLD", []int64{hello}},
		{"o w", []int64{hello}},
		{"%", []int64{pct}},
		{"100%", []int64{pct}},
		{"_", []int64{under}},
		{"r_s", []int64{under}},
		{"underxscore", []int64{underx}},
		{`\`, []int64{back}},
		{`k\s`, []int64{back}},
		{"ünïcödé", []int64{uni}},
		{"ÜNÏCÖDÉ", []int64{uni}},
		{"STRASSE", nil},
		{"straße", []int64{uni}},
		{"magic", []int64{magic}},
		{"contains the", []int64{magic}},
		{"nothing-matches", nil},
		{"secret", nil},
	}
	for _, tc := range cases {
		t.Run(tc.q, func(t *testing.T) {
			p := flList(t, e, tok, api.ListFlowsParams{Search: &tc.q, Sort: &[]api.ListFlowsParamsSort{api.ListFlowsParamsSortCreatedAt}})
			got := flIDs(p.Items)
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("search %q: got %v (%v), want %v", tc.q, got, flNames(p.Items), tc.want)
			}
			if p.Total != int64(len(tc.want)) {
				t.Fatalf("search %q: total %d", tc.q, p.Total)
			}
		})
	}
	// Decomposed input (e + combining acute) finds the precomposed name.
	q := "Ünïcöde\u0301"
	if p := flList(t, e, tok, api.ListFlowsParams{Search: &q}); p.Total != 1 || p.Items[0].Id != uni {
		t.Fatalf("NFC search: %+v", p)
	}
	// A renamed flow is found by its new name only.
	flPatch(t, e, tok, hello, api.FlowUpdate{Name: flPtr("Goodbye")})
	for q, n := range map[string]int64{"hello": 0, "goodbye": 1} {
		if p := flList(t, e, tok, api.ListFlowsParams{Search: &q}); p.Total != n {
			t.Fatalf("after rename, search %q: total %d", q, p.Total)
		}
	}
	// Clearing the description drops it from the search text.
	flPatch(t, e, tok, magic, api.FlowUpdate{Description: nullable.NewNullNullable[string]()})
	if q := "magic"; flList(t, e, tok, api.ListFlowsParams{Search: &q}).Total != 0 {
		t.Fatalf("cleared description still matches")
	}
}

func TestFlowsListStats(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, otok := e.User(rbac.Editor)
	_, atok := e.User(rbac.Admin)
	a := flComplete(t, e, tok, "a")
	flPublish(t, e, tok, a.Id, nil)
	flNamed(t, e, tok, "b")
	c := flNamed(t, e, tok, "c")
	flSetStatus(t, e, c.Id, "archived")
	// Someone else's: a private draft, a private published one and a public draft.
	flNamed(t, e, otok, "hidden draft")
	hp := flComplete(t, e, otok, "hidden published")
	flPublish(t, e, otok, hp.Id, nil)
	flCreate(t, e, otok, api.FlowCreate{Name: "shared", Visibility: flPtr(api.FlowVisibilityPublic)})

	stats := func(tok, query string) (*api.FlowListStats, int64) {
		p := flListRaw(t, e, tok, query)
		if p.Stats == nil {
			t.Fatalf("no stats for ?%s", query)
		}
		return p.Stats, p.Total
	}
	s, total := stats(tok, "include_stats=true")
	if *s != (api.FlowListStats{Total: 4, Published: 1, Draft: 2, Archived: 1}) || total != 3 {
		t.Fatalf("editor stats %+v total %d", *s, total)
	}
	// Stats ignore the list's other filters.
	if s2, total := stats(tok, "include_stats=true&search=zzz&status=archived"); *s2 != *s || total != 0 {
		t.Fatalf("filtered stats %+v total %d", *s2, total)
	}
	s, total = stats(atok, "include_stats=true")
	if *s != (api.FlowListStats{Total: 6, Published: 2, Draft: 3, Archived: 1}) || total != 5 {
		t.Fatalf("admin stats %+v total %d", *s, total)
	}
	if p := flListRaw(t, e, tok, "include_stats=false"); p.Stats != nil {
		t.Fatalf("stats without include_stats")
	}
	if r, body := flReq(t, e, http.MethodGet, BasePath+"/flows", tok, "", nil); bytes.Contains(body, []byte(`"stats"`)) {
		t.Fatalf("stats by default: %d %s", r.StatusCode, body)
	}
}

// ---------------------------------------------------------------------------------------------------
// Ownership and visibility (PRODUCT §4.3)

type flOp struct {
	name, method, rest, body string
	write                    bool   // changes the flow (so 403 for a reader who may not edit)
	ok                       int    // status for someone allowed
	perm                     string // the permission the operation needs
}

var flOps = []flOp{
	{"get", http.MethodGet, "", "", false, http.StatusOK, "flow:read"},
	{"put", http.MethodPut, "", `{"name":"Hacked"}`, true, http.StatusOK, "flow:update"},
	{"patch", http.MethodPatch, "", `{"name":"Hacked"}`, true, http.StatusOK, "flow:update"},
	{"patch-empty", http.MethodPatch, "", `{}`, true, http.StatusOK, "flow:update"},
	{"publish", http.MethodPost, "/publish", "", true, http.StatusOK, "flow:update"},
	{"unpublish", http.MethodPost, "/unpublish", "", true, http.StatusOK, "flow:update"},
	{"duplicate", http.MethodPost, "/duplicate", "", false, http.StatusCreated, "flow:create"},
	{"validate", http.MethodPost, "/validate", "", false, http.StatusOK, "flow:read"},
	{"versions", http.MethodGet, "/versions", "", false, http.StatusOK, "flow:read"},
	{"version", http.MethodGet, "/versions/1", "", false, http.StatusOK, "flow:read"},
	{"snapshot", http.MethodPost, "/versions", "", true, http.StatusCreated, "flow:update"},
	{"restore", http.MethodPost, "/versions/1/restore", "", true, http.StatusOK, "flow:update"},
	{"delete", http.MethodDelete, "", "", true, http.StatusNoContent, "flow:delete"},
}

func TestFlowsOwnershipPrivate(t *testing.T) {
	e := newTestEnv(t)
	_, otok := e.User(rbac.Editor)
	_, stok := e.User(rbac.Manager) // a non-admin with every flow permission
	_, vtok := e.User(rbac.Viewer)
	f := flComplete(t, e, otok, "Private")
	for _, who := range []struct {
		role rbac.Role
		tok  string
	}{{rbac.Manager, stok}, {rbac.Viewer, vtok}} {
		tok := who.tok
		for _, op := range flOps {
			t.Run(string(who.role)+"/"+op.name, func(t *testing.T) {
				before := flSnap(t, e, f.Id)
				r, body := flReq(t, e, op.method, flPath(f.Id, op.rest), tok, op.body, nil)
				if !rbac.Has(who.role, op.perm) {
					// A missing permission is checked first (403 naming it; nothing about the row leaks).
					if p := flWantProblem(t, r, body, http.StatusForbidden, "forbidden"); p.MissingPermission != op.perm {
						t.Fatalf("missing_permission %q, want %q", p.MissingPermission, op.perm)
					}
				} else {
					flWantProblem(t, r, body, http.StatusNotFound, "not-found")
				}
				flSame(t, before, flSnap(t, e, f.Id))
			})
		}
		// Absent from lists, totals and stats.
		p := flListRaw(t, e, tok, "include_stats=true&status=draft&status=published&status=archived")
		if p.Total != 0 || len(p.Items) != 0 || p.Stats.Total != 0 || p.Stats.Draft != 0 {
			t.Fatalf("private flow leaks into the list: %+v %+v", p, p.Stats)
		}
		if p := flListRaw(t, e, tok, "owner_id="+strconv.FormatInt(f.OwnerId, 10)); p.Total != 0 {
			t.Fatalf("private flow leaks by owner_id")
		}
	}
	// The owner still sees it unchanged.
	if g := flGet(t, e, otok, f.Id); g.Name != "Private" || g.Revision != 1 {
		t.Fatalf("owner sees %+v", g)
	}
}

func TestFlowsOwnershipAdmins(t *testing.T) {
	for _, role := range []rbac.Role{rbac.Admin, rbac.SuperAdmin} {
		t.Run(string(role), func(t *testing.T) {
			e := newTestEnv(t)
			_, otok := e.User(rbac.Editor)
			_, atok := e.User(role)
			if p := flList(t, e, atok, api.ListFlowsParams{}); p.Total != 0 {
				t.Fatalf("fresh list %+v", p)
			}
			for _, op := range flOps {
				t.Run(op.name, func(t *testing.T) {
					f := flComplete(t, e, otok, "Theirs "+op.name)
					if op.name == "unpublish" {
						flPublish(t, e, otok, f.Id, nil)
					}
					r, body := flReq(t, e, op.method, flPath(f.Id, op.rest), atok, op.body, nil)
					if r.StatusCode != op.ok {
						t.Fatalf("%s: %d %s", op.name, r.StatusCode, body)
					}
				})
			}
			p := flList(t, e, atok, api.ListFlowsParams{PageSize: flPtr(100)})
			if p.Total < int64(len(flOps)) {
				t.Fatalf("admin list total %d", p.Total)
			}
			// An admin may change another user's visibility.
			f := flNamed(t, e, otok, "vis")
			if g := flPatch(t, e, atok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityPublic)}); g.Visibility != api.FlowVisibilityPublic || g.OwnerId != f.OwnerId {
				t.Fatalf("admin visibility change %+v", g)
			}
		})
	}
}

func TestFlowsOwnershipPublic(t *testing.T) {
	e := newTestEnv(t)
	_, otok := e.User(rbac.Editor)
	_, stok := e.User(rbac.Manager)
	f := flCreate(t, e, otok, api.FlowCreate{Name: "Shared", Visibility: flPtr(api.FlowVisibilityPublic), Data: flGraph(t, flGraphOK)})
	flPublish(t, e, otok, f.Id, nil)
	for _, op := range flOps {
		t.Run(op.name, func(t *testing.T) {
			before := flSnap(t, e, f.Id)
			r, body := flReq(t, e, op.method, flPath(f.Id, op.rest), stok, op.body, nil)
			if op.write {
				flWantProblem(t, r, body, http.StatusForbidden, "forbidden")
				flSame(t, before, flSnap(t, e, f.Id))
				return
			}
			if r.StatusCode != op.ok {
				t.Fatalf("%s: %d %s", op.name, r.StatusCode, body)
			}
		})
	}
	if p := flList(t, e, stok, api.ListFlowsParams{}); p.Total != 2 { // the public flow and the stranger's copy
		t.Fatalf("list %+v", p)
	}
	// Visibility changes are the owner's: a stranger's is 403, with nothing changed.
	before := flSnap(t, e, f.Id)
	r, body := flReq(t, e, http.MethodPatch, flPath(f.Id), stok, `{"visibility":"private"}`, nil)
	flWantProblem(t, r, body, http.StatusForbidden, "forbidden")
	flSame(t, before, flSnap(t, e, f.Id))
	// Once private again, the stranger gets 404 rather than 403.
	flPatch(t, e, otok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityPrivate)})
	r, body = flReq(t, e, http.MethodPatch, flPath(f.Id), stok, `{"name":"x"}`, nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
}

func TestFlowsOwnershipTeam(t *testing.T) {
	e := newTestEnv(t)
	owner, otok := e.User(rbac.Manager)
	member, mtok := e.User(rbac.Manager)
	_, ntok := e.User(rbac.Manager) // not a member
	_, atok := e.User(rbac.Admin)
	team := flTeam(t, e, "Support", owner.ID, member.ID)
	other := flTeam(t, e, "Sales", member.ID)
	f := flCreate(t, e, otok, api.FlowCreate{Name: "TeamFlow", Visibility: flPtr(api.FlowVisibilityTeam),
		TeamId: nullable.NewNullableWithValue(team), Data: flGraph(t, flGraphOK)})
	if f.TeamId.MustGet() != team || f.Visibility != api.FlowVisibilityTeam {
		t.Fatalf("team flow %+v", f)
	}
	// The non-member sees nothing.
	for _, op := range flOps {
		before := flSnap(t, e, f.Id)
		r, body := flReq(t, e, op.method, flPath(f.Id, op.rest), ntok, op.body, nil)
		flWantProblem(t, r, body, http.StatusNotFound, "not-found")
		flSame(t, before, flSnap(t, e, f.Id))
	}
	if p := flListRaw(t, e, ntok, "include_stats=true"); p.Total != 0 || p.Stats.Total != 0 {
		t.Fatalf("non-member list %+v", p)
	}
	// The member reads and edits, publishes, snapshots and restores.
	if p := flListRaw(t, e, mtok, "visibility=team&include_stats=true"); p.Total != 1 || p.Items[0].Id != f.Id || p.Stats.Total != 1 {
		t.Fatalf("member list %+v", p)
	}
	g := flPatch(t, e, mtok, f.Id, api.FlowUpdate{Name: flPtr("Edited by member"), Data: flGraph(t, strings.Replace(flGraphOK, "hi", "yo", 1))})
	if g.Name != "Edited by member" || g.OwnerId != owner.ID {
		t.Fatalf("member edit %+v", g)
	}
	flPublish(t, e, mtok, f.Id, nil)
	for _, op := range []struct{ method, rest string }{{http.MethodPost, "/versions"}, {http.MethodPost, "/versions/1/restore"},
		{http.MethodPost, "/unpublish"}, {http.MethodPost, "/validate"}, {http.MethodGet, "/versions/2"}} {
		if r, body := flReq(t, e, op.method, flPath(f.Id, op.rest), mtok, "", nil); r.StatusCode >= 300 {
			t.Fatalf("member %s %s: %d %s", op.method, op.rest, r.StatusCode, body)
		}
	}
	// ...but may not change visibility or team, nor delete: 403 and nothing changes.
	for _, tc := range []struct{ method, body string }{
		{http.MethodPatch, `{"visibility":"public"}`},
		{http.MethodPut, `{"visibility":"team"}`},
		{http.MethodPatch, fmt.Sprintf(`{"team_id":%d}`, other)},
		{http.MethodPatch, `{"name":"sneaky","team_id":null}`},
		{http.MethodDelete, ""},
	} {
		before := flSnap(t, e, f.Id)
		r, body := flReq(t, e, tc.method, flPath(f.Id), mtok, tc.body, nil)
		flWantProblem(t, r, body, http.StatusForbidden, "forbidden")
		flSame(t, before, flSnap(t, e, f.Id))
	}
	// Leaving the team removes access at once.
	if err := e.DB.Where("team_id = ? AND user_id = ?", team, member.ID).Delete(&store.TeamMember{}).Error; err != nil {
		t.Fatal(err)
	}
	r, body := flReq(t, e, http.MethodGet, flPath(f.Id), mtok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
	// The owner and an admin may delete.
	if r, body := flReq(t, e, http.MethodDelete, flPath(f.Id), atok, "", nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("admin delete: %d %s", r.StatusCode, body)
	}
}

func TestFlowsTeamRules(t *testing.T) {
	e := newTestEnv(t)
	owner, tok := e.User(rbac.Editor)
	_, atok := e.User(rbac.Admin)
	mine := flTeam(t, e, "Mine", owner.ID)
	notMine := flTeam(t, e, "NotMine")

	bad := []struct {
		name, body string
		code       string
	}{
		{"team_id without visibility", fmt.Sprintf(`{"name":"x","team_id":%d}`, mine), ""},
		{"team_id with public", fmt.Sprintf(`{"name":"x","visibility":"public","team_id":%d}`, mine), ""},
		{"team_id with private", fmt.Sprintf(`{"name":"x","visibility":"private","team_id":%d}`, mine), ""},
		{"team without team_id", `{"name":"x","visibility":"team"}`, ""},
		{"team with null team_id", `{"name":"x","visibility":"team","team_id":null}`, ""},
		{"unknown team", `{"name":"x","visibility":"team","team_id":999999}`, ""},
		{"owner not a member", fmt.Sprintf(`{"name":"x","visibility":"team","team_id":%d}`, notMine), ""},
	}
	for _, tc := range bad {
		t.Run("create/"+tc.name, func(t *testing.T) {
			before := flSnap(t, e, 0)
			r, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, tc.body, nil)
			flWantProblem(t, r, body, http.StatusUnprocessableEntity, "unprocessable", "/team_id")
			flSame(t, before, flSnap(t, e, 0))
		})
	}
	// team_id null without team visibility is simply "no team".
	if f := flCreate(t, e, tok, api.FlowCreate{Name: "n", TeamId: nullable.NewNullNullable[int64]()}); !f.TeamId.IsNull() {
		t.Fatalf("null team_id %+v", f)
	}
	// An admin may put a flow in a team they do not belong to.
	af := flCreate(t, e, atok, api.FlowCreate{Name: "admin", Visibility: flPtr(api.FlowVisibilityTeam), TeamId: nullable.NewNullableWithValue(notMine)})
	if af.TeamId.MustGet() != notMine {
		t.Fatalf("admin team flow %+v", af)
	}

	f := flNamed(t, e, tok, "upd")
	badUpd := []struct{ name, body string }{
		{"team_id on a private flow", fmt.Sprintf(`{"team_id":%d}`, mine)},
		{"team_id with public", fmt.Sprintf(`{"visibility":"public","team_id":%d}`, mine)},
		{"team without team_id", `{"visibility":"team"}`},
		{"team with null team_id", `{"visibility":"team","team_id":null}`},
		{"unknown team", `{"visibility":"team","team_id":999999}`},
		{"owner not a member", fmt.Sprintf(`{"visibility":"team","team_id":%d}`, notMine)},
	}
	for _, tc := range badUpd {
		t.Run("update/"+tc.name, func(t *testing.T) {
			before := flSnap(t, e, f.Id)
			r, body := flReq(t, e, http.MethodPatch, flPath(f.Id), tok, tc.body, nil)
			flWantProblem(t, r, body, http.StatusUnprocessableEntity, "unprocessable", "/team_id")
			flSame(t, before, flSnap(t, e, f.Id))
		})
	}
	// Into the team, then out of it: leaving team visibility clears team_id.
	g := flPatch(t, e, tok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityTeam), TeamId: nullable.NewNullableWithValue(mine)})
	if g.Visibility != api.FlowVisibilityTeam || g.TeamId.MustGet() != mine || g.Revision != 2 {
		t.Fatalf("into team %+v", g)
	}
	// Clearing team_id while staying a team flow is refused.
	r, body := flReq(t, e, http.MethodPatch, flPath(f.Id), tok, `{"team_id":null}`, nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "unprocessable", "/team_id")
	g = flPatch(t, e, tok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityPublic)})
	if g.Visibility != api.FlowVisibilityPublic || !g.TeamId.IsNull() {
		t.Fatalf("out of team %+v", g)
	}
	// The admin may move the editor's flow into a team the editor is not in.
	g = flPatch(t, e, atok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityTeam), TeamId: nullable.NewNullableWithValue(notMine)})
	if g.TeamId.MustGet() != notMine {
		t.Fatalf("admin move %+v", g)
	}
	// The owner still sees and edits it (owner), but may not re-save it into a team they are not in.
	g = flPatch(t, e, tok, f.Id, api.FlowUpdate{Name: flPtr("still mine")})
	if g.Name != "still mine" {
		t.Fatalf("owner edit %+v", g)
	}
}

// ---------------------------------------------------------------------------------------------------
// Bad inputs

func TestFlowsBadInputs(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "Target")
	id := strconv.FormatInt(f.Id, 10)
	flowsPath := BasePath + "/flows"
	fp := flowsPath + "/" + id
	long := func(n int) string { return strings.Repeat("x", n) }
	node := func(extra string) string {
		return `{"name":"g","data":{"nodes":[{"id":"n1","data":{"type":"response-data"` + extra + `}}],"edges":[]}}`
	}

	cases := []struct {
		name, method, path, body, ctype string
		status                          int
		slug                            string
		pointers                        []string
	}{
		{"unknown field", "POST", flowsPath, `{"name":"x","bogus":1}`, "", 400, "validation-error", []string{"/bogus additionalProperties"}},
		{"unknown field patch", "PATCH", fp, `{"bogus":1}`, "", 400, "validation-error", []string{"/bogus additionalProperties"}},
		{"read-only owner_id", "PATCH", fp, `{"owner_id":5}`, "", 400, "validation-error", []string{"/owner_id additionalProperties"}},
		{"read-only revision", "PUT", fp, `{"revision":9}`, "", 400, "validation-error", []string{"/revision additionalProperties"}},
		{"tags not in contract", "POST", flowsPath, `{"name":"x","tag_ids":[1]}`, "", 400, "validation-error", []string{"/tag_ids additionalProperties"}},
		{"wrong type name", "POST", flowsPath, `{"name":5}`, "", 400, "validation-error", []string{"/name type"}},
		{"wrong type patch", "PATCH", fp, `{"name":true}`, "", 400, "validation-error", []string{"/name type"}},
		{"null name", "PATCH", fp, `{"name":null}`, "", 400, "validation-error", []string{"/name type"}},
		{"null visibility", "PATCH", fp, `{"visibility":null}`, "", 400, "validation-error", []string{"/visibility"}},
		{"missing name", "POST", flowsPath, `{}`, "", 400, "validation-error", []string{"/name required"}},
		{"empty name", "POST", flowsPath, `{"name":""}`, "", 400, "validation-error", []string{"/name minLength"}},
		{"name too long", "POST", flowsPath, `{"name":"` + long(201) + `"}`, "", 400, "validation-error", []string{"/name maxLength"}},
		{"name too long patch", "PATCH", fp, `{"name":"` + long(201) + `"}`, "", 400, "validation-error", []string{"/name maxLength"}},
		{"description too long", "POST", flowsPath, `{"name":"x","description":"` + long(2001) + `"}`, "", 400, "validation-error", []string{"/description maxLength"}},
		{"description too long put", "PUT", fp, `{"description":"` + long(2001) + `"}`, "", 400, "validation-error", []string{"/description maxLength"}},
		{"status archived", "POST", flowsPath, `{"name":"x","status":"archived"}`, "", 400, "validation-error", []string{"/status enum"}},
		{"status archived patch", "PATCH", fp, `{"status":"archived"}`, "", 400, "validation-error", []string{"/status enum"}},
		{"visibility x", "POST", flowsPath, `{"name":"x","visibility":"x"}`, "", 400, "validation-error", []string{"/visibility enum"}},
		{"team_id zero", "POST", flowsPath, `{"name":"x","visibility":"team","team_id":0}`, "", 400, "validation-error", []string{"/team_id minimum"}},
		{"team_id string", "PATCH", fp, `{"team_id":"1"}`, "", 400, "validation-error", []string{"/team_id type"}},
		{"several errors", "POST", flowsPath, `{"name":5,"visibility":"x","bogus":1}`, "", 400, "validation-error", []string{"/name type", "/visibility enum", "/bogus additionalProperties"}},
		{"data not an object", "POST", flowsPath, `{"name":"x","data":[]}`, "", 400, "validation-error", []string{"/data type"}},
		{"data without edges", "PATCH", fp, `{"data":{"nodes":[]}}`, "", 400, "validation-error", []string{"/data/edges required"}},
		{"node without id", "POST", flowsPath, `{"name":"g","data":{"nodes":[{"data":{"type":"response-data"}}],"edges":[]}}`, "", 400, "validation-error", []string{"/data/nodes/0/id required"}},
		{"node id pattern", "POST", flowsPath, `{"name":"g","data":{"nodes":[{"id":"a b","data":{"type":"response-data"}}],"edges":[]}}`, "", 400, "validation-error", []string{"/data/nodes/0/id pattern"}},
		{"node data type missing", "POST", flowsPath, `{"name":"g","data":{"nodes":[{"id":"a","data":{}}],"edges":[]}}`, "", 400, "validation-error", []string{"/data/nodes/0/data/type required"}},
		{"node label too long", "POST", flowsPath, node(`,"label":"` + long(101) + `"`), "", 400, "validation-error", []string{"/data/nodes/0/data/label maxLength"}},
		{"node on_error enum", "POST", flowsPath, node(`,"on_error":"explode"`), "", 400, "validation-error", []string{"/data/nodes/0/data/on_error enum"}},
		{"node retry range", "POST", flowsPath, node(`,"retry":{"max_attempts":9}`), "", 400, "validation-error", []string{"/data/nodes/0/data/retry/max_attempts maximum"}},
		{"edge without target", "PATCH", fp, `{"data":{"nodes":[],"edges":[{"id":"e","source":"a"}]}}`, "", 400, "validation-error", []string{"/data/edges/0/target required"}},
		{"viewport zoom type", "PATCH", fp, `{"data":{"nodes":[],"edges":[],"viewport":{"x":0,"y":0,"zoom":"big"}}}`, "", 400, "validation-error", []string{"/data/viewport/zoom type"}},
		{"page_size 0", "GET", flowsPath + "?page_size=0", "", "", 400, "validation-error", []string{"#/query/page_size minimum"}},
		{"page_size 101", "GET", flowsPath + "?page_size=101", "", "", 400, "validation-error", []string{"#/query/page_size maximum"}},
		{"page_size abc", "GET", flowsPath + "?page_size=abc", "", "", 400, "validation-error", []string{"#/query/page_size"}},
		{"page 0", "GET", flowsPath + "?page=0", "", "", 400, "validation-error", []string{"#/query/page minimum"}},
		{"page too big", "GET", flowsPath + "?page=1000001", "", "", 400, "validation-error", []string{"#/query/page maximum"}},
		{"bad sort", "GET", flowsPath + "?sort=owner_id", "", "", 400, "validation-error", []string{"#/query/sort*"}},
		{"bad sort second key", "GET", flowsPath + "?sort=name,bogus", "", "", 400, "validation-error", []string{"#/query/sort*"}},
		{"duplicate sort key", "GET", flowsPath + "?sort=name,name", "", "", 400, "validation-error", []string{"#/query/sort*"}},
		{"bad status", "GET", flowsPath + "?status=deleted", "", "", 400, "validation-error", []string{"#/query/status*"}},
		{"bad visibility", "GET", flowsPath + "?visibility=x", "", "", 400, "validation-error", []string{"#/query/visibility*"}},
		{"bad owner_id", "GET", flowsPath + "?owner_id=abc", "", "", 400, "validation-error", []string{"#/query/owner_id*"}},
		{"owner_id none", "GET", flowsPath + "?owner_id=none", "", "", 400, "validation-error", []string{"#/query/owner_id*"}},
		{"search too long", "GET", flowsPath + "?search=" + long(201), "", "", 400, "validation-error", []string{"#/query/search*"}},
		{"include_stats bad", "GET", flowsPath + "?include_stats=maybe", "", "", 400, "validation-error", []string{"#/query/include_stats*"}},
		{"malformed json", "POST", flowsPath, `{"name":`, "", 400, "validation-error", []string{" malformed-json"}},
		{"malformed json patch", "PATCH", fp, `{"name":"x",}`, "", 400, "validation-error", []string{" malformed-json"}},
		{"trailing garbage", "PUT", fp, `{"name":"x"} {}`, "", 400, "validation-error", []string{" malformed-json"}},
		{"not an object", "POST", flowsPath, `"name"`, "", 400, "validation-error", nil},
		{"wrong content type", "POST", flowsPath, `{"name":"x"}`, "text/plain", 415, "unsupported-media-type", nil},
		{"form content type", "PATCH", fp, `name=x`, "application/x-www-form-urlencoded", 415, "unsupported-media-type", nil},
		{"merge-patch content type", "PATCH", fp, `{"name":"x"}`, "application/merge-patch+json", 415, "unsupported-media-type", nil},
		{"missing body", "POST", flowsPath, "", "", 400, "validation-error", nil},
		{"bad path id", "GET", flowsPath + "/abc", "", "", 400, "validation-error", []string{"#/path/id"}},
		{"zero path id", "PATCH", flowsPath + "/0", `{"name":"x"}`, "", 400, "validation-error", []string{"#/path/id"}},
		{"negative path id", "GET", flowsPath + "/-1", "", "", 400, "validation-error", []string{"#/path/id"}},
		{"huge path id", "GET", flowsPath + "/99999999999999999999", "", "", 400, "validation-error", []string{"#/path/id"}},
		{"publish version 0", "POST", fp + "/publish", `{"version":0}`, "", 400, "validation-error", []string{"/version minimum"}},
		{"publish version string", "POST", fp + "/publish", `{"version":"1"}`, "", 400, "validation-error", []string{"/version type"}},
		{"publish unknown field", "POST", fp + "/publish", `{"versions":1}`, "", 400, "validation-error", []string{"/versions additionalProperties"}},
		{"publish unknown version", "POST", fp + "/publish", `{"version":42}`, "", 422, "unprocessable", []string{"/version"}},
		{"duplicate empty name", "POST", fp + "/duplicate", `{"name":""}`, "", 400, "validation-error", []string{"/name minLength"}},
		{"duplicate long name", "POST", fp + "/duplicate", `{"name":"` + long(201) + `"}`, "", 400, "validation-error", []string{"/name maxLength"}},
		{"duplicate unknown field", "POST", fp + "/duplicate", `{"visibility":"public"}`, "", 400, "validation-error", []string{"/visibility additionalProperties"}},
		{"validate unknown field", "POST", fp + "/validate", `{"graph":{}}`, "", 400, "validation-error", []string{"/graph additionalProperties"}},
		{"validate bad graph schema", "POST", fp + "/validate", `{"data":{"nodes":{}, "edges":[]}}`, "", 400, "validation-error", []string{"/data/nodes type"}},
		{"unknown route", "GET", BasePath + "/flowz", "", "", 404, "not-found", nil},
		{"method not allowed", "PATCH", flowsPath, `{}`, "", 405, "method-not-allowed", nil},
		{"no token", "GET", fp, "", "-", 401, "unauthenticated", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := flSnap(t, e, f.Id)
			var r *http.Response
			var body []byte
			switch tc.ctype {
			case "":
				r, body = flReq(t, e, tc.method, tc.path, tok, tc.body, nil)
			case "-":
				r, body = flReq(t, e, tc.method, tc.path, "", tc.body, nil)
			default:
				r, body = e.Do(tc.method, tc.path, tok, tc.ctype, strings.NewReader(tc.body))
			}
			p := flWantProblem(t, r, body, tc.status, tc.slug)
			flSame(t, before, flSnap(t, e, f.Id))
			flWantErrors(t, p, body, tc.pointers...)
			if tc.status == 400 && len(p.Errors) == 0 {
				t.Fatalf("400 without errors[]: %s", body)
			}
			if tc.status == 405 && r.Header.Get("Allow") == "" {
				t.Fatalf("405 without Allow")
			}
			flSame(t, before, flSnap(t, e, f.Id))
		})
	}
}

// The body limit of flow operations is FLOW_MAX_BYTES + 256 KiB; other operations keep the default.
func TestFlowsBodyLimits(t *testing.T) {
	e := newTestEnv(t, map[string]string{"FLOW_MAX_BYTES": "4096", "API_MAX_BODY_BYTES": "8192"})
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "Limits")
	limit := 4096 + 256<<10
	// A body just over the limit: 413 whether or not a Content-Length announces it.
	over := `{"name":"x","description":"` + strings.Repeat("y", limit) + `"}`
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, BasePath + "/flows"},
		{http.MethodPut, flPath(f.Id)},
		{http.MethodPatch, flPath(f.Id)},
		{http.MethodPost, flPath(f.Id, "/validate")},
	} {
		before := flSnap(t, e, f.Id)
		r, body := flReq(t, e, tc.method, tc.path, tok, over, nil)
		flWantProblem(t, r, body, http.StatusRequestEntityTooLarge, "payload-too-large")
		// Chunked: the limit is found while reading.
		r, body = e.Do(tc.method, tc.path, tok, "application/json", io.MultiReader(strings.NewReader(over)))
		flWantProblem(t, r, body, http.StatusRequestEntityTooLarge, "payload-too-large")
		flSame(t, before, flSnap(t, e, f.Id))
	}
	// Within the flow body limit but over FLOW_MAX_BYTES as a graph: 422 too-large at /data.
	big := `{"nodes":[],"edges":[],"blob":"` + strings.Repeat("z", 5000) + `"}`
	before := flSnap(t, e, f.Id)
	r, body := flReq(t, e, http.MethodPatch, flPath(f.Id), tok, `{"data":`+big+`}`, nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", "/data too-large")
	r, body = flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"big","data":`+big+`}`, nil)
	flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", "/data too-large")
	flSame(t, before, flSnap(t, e, f.Id))
	// Ops without x-body-limit keep API_MAX_BODY_BYTES.
	r, body = flReq(t, e, http.MethodPost, flPath(f.Id, "/versions"), tok, `{"name":"`+strings.Repeat("v", 9000)+`"}`, nil)
	flWantProblem(t, r, body, http.StatusRequestEntityTooLarge, "payload-too-large")
	r, body = flReq(t, e, http.MethodPost, flPath(f.Id, "/duplicate"), tok, `{"name":"`+strings.Repeat("v", 9000)+`"}`, nil)
	flWantProblem(t, r, body, http.StatusRequestEntityTooLarge, "payload-too-large")
	// A flow body between the default and the flow limit is read (and answered on its merits).
	r, body = flReq(t, e, http.MethodPatch, flPath(f.Id), tok, `{"description":"`+strings.Repeat("d", 9000)+`"}`, nil)
	flWantProblem(t, r, body, http.StatusBadRequest, "validation-error", "/description maxLength")
	flSame(t, before, flSnap(t, e, f.Id))
}

// Each structural check of PRODUCT §6.2 answers 422 invalid-graph with a pointer from the body root, on
// create and on update, and changes nothing; validate reports the same issues with 200.
func TestFlowsInvalidGraphs(t *testing.T) {
	e := newTestEnv(t, map[string]string{"FLOW_MAX_NODES": "4", "FLOW_MAX_EDGES": "3", "FLOW_MAX_BYTES": "2048"})
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "Target")
	n := func(id, typ string) string { return `{"id":"` + id + `","data":{"type":"` + typ + `"}}` }
	ed := func(id, s, d string) string { return `{"id":"` + id + `","source":"` + s + `","target":"` + d + `"}` }
	g := func(nodes, edges []string) string {
		return `{"nodes":[` + strings.Join(nodes, ",") + `],"edges":[` + strings.Join(edges, ",") + `]}`
	}
	nodes := func(k int) []string {
		var out []string
		for i := 0; i < k; i++ {
			out = append(out, n(fmt.Sprintf("n%d", i), "response-data"))
		}
		return out
	}
	cases := []struct {
		name, graph, pointer, code string
	}{
		{"reserved id", g([]string{n("a", "response-data"), n("trigger", "response-data")}, nil), "/data/nodes/1/id", "reserved-id"},
		{"reserved id nodes", g([]string{n("nodes", "response-data")}, nil), "/data/nodes/0/id", "reserved-id"},
		{"duplicate node id", g([]string{n("a", "response-data"), n("b", "response-data"), n("a", "response-data")}, nil), "/data/nodes/2/id", "duplicate-id"},
		{"duplicate node id at 0", g([]string{n("a", "response-data"), n("a", "response-data")}, nil), "/data/nodes/1/id", "duplicate-id"},
		{"duplicate edge id", g([]string{n("a", "response-data"), n("b", "response-data"), n("c", "response-data")}, []string{ed("e", "a", "b"), ed("e", "b", "c")}), "/data/edges/1/id", "duplicate-id"},
		{"dangling source", g([]string{n("a", "response-data")}, []string{ed("e", "zz", "a")}), "/data/edges/0/source", "dangling-edge"},
		{"dangling target", g([]string{n("a", "response-data")}, []string{ed("e", "a", "zz")}), "/data/edges/0/target", "dangling-edge"},
		{"self loop", g([]string{n("a", "response-data"), n("b", "response-data")}, []string{ed("e0", "a", "b"), ed("e1", "b", "b")}), "/data/edges/1/target", "dangling-edge"},
		{"duplicate edge", g([]string{n("a", "response-data"), n("b", "response-data")}, []string{ed("e0", "a", "b"), ed("e1", "a", "b")}), "/data/edges/1", "bad-handle"},
		{"two triggers", g([]string{n("t1", "trigger-manual"), n("a", "response-data"), n("t2", "trigger-webhook")}, nil), "/data/nodes/2/data/type", "multiple-triggers"},
		{"edge into trigger", g([]string{n("a", "response-data"), n("t", "trigger-manual")}, []string{ed("e", "a", "t")}), "/data/edges/0/target", "multiple-triggers"},
		{"cycle", g([]string{n("a", "response-data"), n("b", "response-data"), n("c", "response-data")}, []string{ed("e0", "a", "b"), ed("e1", "b", "c"), ed("e2", "c", "a")}), "/data/nodes/0/id", "cycle"},
		{"two-node cycle", g([]string{n("t", "trigger-manual"), n("a", "response-data"), n("b", "response-data")}, []string{ed("e0", "t", "a"), ed("e1", "a", "b"), ed("e2", "b", "a")}), "/data/nodes/1/id", "cycle"},
		{"too many nodes", g(nodes(5), nil), "/data/nodes", "too-large"},
		{"too many edges", g(nodes(4), []string{ed("e0", "n0", "n1"), ed("e1", "n1", "n2"), ed("e2", "n2", "n3"), ed("e3", "n0", "n3")}), "/data/edges", "too-large"},
		{"too many bytes", `{"nodes":[],"edges":[],"pad":"` + strings.Repeat("p", 2100) + `"}`, "/data", "too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := flSnap(t, e, f.Id)
			r, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"bad","data":`+tc.graph+`}`, nil)
			p := flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", tc.pointer+" "+tc.code)
			for _, fe := range p.Errors {
				if !strings.HasPrefix(fe.Pointer, "/data") {
					t.Fatalf("pointer %q not from the body root", fe.Pointer)
				}
			}
			for _, verb := range []string{http.MethodPatch, http.MethodPut} {
				r, body = flReq(t, e, verb, flPath(f.Id), tok, `{"name":"changed","data":`+tc.graph+`}`, nil)
				flWantProblem(t, r, body, http.StatusUnprocessableEntity, "invalid-graph", tc.pointer+" "+tc.code)
			}
			flSame(t, before, flSnap(t, e, f.Id))
			// validate reports it without saving.
			r, body = flReq(t, e, http.MethodPost, flPath(f.Id, "/validate"), tok, `{"data":`+tc.graph+`}`, nil)
			if r.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"code":"`+tc.code+`"`)) ||
				!bytes.Contains(body, []byte(`"pointer":"`+tc.pointer+`"`)) || !bytes.Contains(body, []byte(`"valid":false`)) {
				t.Fatalf("validate: %d %s", r.StatusCode, body)
			}
			flSame(t, before, flSnap(t, e, f.Id))
		})
	}
	// At the limits exactly, the graph is accepted.
	ok := g(nodes(4), []string{ed("e0", "n0", "n1"), ed("e1", "n1", "n2"), ed("e2", "n2", "n3")})
	if r, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"edge","data":`+ok+`}`, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("graph at the limits: %d %s", r.StatusCode, body)
	}
	// A graph just under FLOW_MAX_BYTES as compact JSON stays valid once stored, although PostgreSQL
	// gives jsonb back with spaces: the size is measured as compact JSON, so it can be published.
	var cfg []string
	for i := 0; len(strings.Join(cfg, ",")) < 1700; i++ {
		cfg = append(cfg, fmt.Sprintf(`"_k%03d":[%d,%d]`, i, i, i)) // UI keys (_…): kept and not checked
	}
	near := `{"nodes":[{"id":"t","data":{"type":"trigger-manual","config":{` + strings.Join(cfg, ",") + `}}},` + n("a", "response-data") +
		`],"edges":[` + ed("e", "t", "a") + `]}`
	r, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"near","data":`+near+`}`, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("graph near the byte limit: %d %s", r.StatusCode, body)
	}
	var nf api.Flow
	_ = json.Unmarshal(body, &nf)
	if got := flGet(t, e, tok, nf.Id); !got.Validation.Valid {
		t.Fatalf("stored graph near the limit reported invalid: %+v", got.Validation)
	}
	flPublish(t, e, tok, nf.Id, nil)
	if r, body := flReq(t, e, http.MethodPost, flPath(nf.Id, "/validate"), tok, "", nil); !bytes.Contains(body, []byte(`"valid":true`)) {
		t.Fatalf("validate near the limit: %d %s", r.StatusCode, body)
	}
	// Distinct handles make distinct edges; an edge out of the trigger is fine.
	branches := `{"nodes":[` + n("t", "trigger-manual") + `,` +
		`{"id":"c","data":{"type":"logic-condition","config":{"condition_type":"is_empty","value1":"x"}}},` + n("a", "response-data") + `],"edges":[` +
		`{"id":"et","source":"t","target":"c"},` +
		`{"id":"e0","source":"c","target":"a","sourceHandle":"true"},{"id":"e1","source":"c","target":"a","sourceHandle":"false"}]}`
	if r, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"branches","data":`+branches+`}`, nil); r.StatusCode != http.StatusCreated {
		t.Fatalf("branches: %d %s", r.StatusCode, body)
	}
}

// ---------------------------------------------------------------------------------------------------
// Graph round trip

func TestFlowsGraphRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	in := `{
	  "nodes": [
	    {"id":"t1","type":"custom","position":{"x":123.5,"y":-7.25,"z_ui":1},"width":150,"selected":true,"_ui":{"collapsed":false},
	     "data":{"type":"trigger-manual","label":"Start","config":{"_note":"kept","_x":[1,2,{"deep":null}]},
	             "executionStatus":"running","executionError":"boom","executionOutput":{"a":1},"_meta":{"color":"red"},"custom":"yes"}},
	    {"id":"a1","position":{"x":0,"y":0},"data":{"type":"response-data","on_error":"continue","retry":{"max_attempts":3,"backoff_ms":500,"exponential":false,"jitter":true},
	     "executionStatus":"success"}}
	  ],
	  "edges": [{"id":"e1","source":"t1","target":"a1","sourceHandle":null,"targetHandle":"in","type":"smoothstep","label":"go","animated":true,"style":{"stroke":"#f00"}}],
	  "viewport": {"x":10.5,"y":-20,"zoom":0.75,"extra":"v"},
	  "meta": {"editor":"v2"}
	}`
	want := `{
	  "nodes": [
	    {"id":"t1","type":"custom","position":{"x":123.5,"y":-7.25,"z_ui":1},"width":150,"selected":true,"_ui":{"collapsed":false},
	     "data":{"type":"trigger-manual","label":"Start","config":{"_note":"kept","_x":[1,2,{"deep":null}]},"_meta":{"color":"red"},"custom":"yes"}},
	    {"id":"a1","position":{"x":0,"y":0},"data":{"type":"response-data","on_error":"continue","retry":{"max_attempts":3,"backoff_ms":500,"exponential":false,"jitter":true}}}
	  ],
	  "edges": [{"id":"e1","source":"t1","target":"a1","sourceHandle":null,"targetHandle":"in","type":"smoothstep","label":"go","animated":true,"style":{"stroke":"#f00"}}],
	  "viewport": {"x":10.5,"y":-20,"zoom":0.75,"extra":"v"},
	  "meta": {"editor":"v2"}
	}`
	r, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"rt","data":`+in+`}`, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, body)
	}
	var created struct {
		ID   int64           `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &created)
	check := func(where string, got []byte) {
		t.Helper()
		if flCanon(t, got) != flCanon(t, want) {
			t.Fatalf("%s:\n got  %s\n want %s", where, flCanon(t, got), flCanon(t, want))
		}
	}
	check("create response", created.Data)
	_, body = flReq(t, e, http.MethodGet, flPath(created.ID), tok, "", nil)
	var got struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &got)
	check("get", got.Data)
	row, _ := flRow(t, e, created.ID)
	check("stored", row.Data)
	if bytes.Contains(row.Data, []byte("execution")) {
		t.Fatalf("run-time keys stored: %s", row.Data)
	}
	var fv store.FlowVersion
	_ = e.DB.Where("flow_id = ? AND version = 1", created.ID).Take(&fv).Error
	check("version 1", fv.Data)
	_, body = flReq(t, e, http.MethodGet, flPath(created.ID, "/versions/1"), tok, "", nil)
	_ = json.Unmarshal(body, &got)
	check("version 1 GET", got.Data)

	// The same through PATCH, and run-time keys alone are no change at all.
	rev := flRevision(t, e, created.ID)
	r, body = flReq(t, e, http.MethodPatch, flPath(created.ID), tok, `{"data":`+in+`}`, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("patch: %d %s", r.StatusCode, body)
	}
	_ = json.Unmarshal(body, &got)
	check("patch response", got.Data)
	if n := flRevision(t, e, created.ID); n != rev {
		t.Fatalf("re-saving the same graph with run-time keys bumped the revision %d → %d", rev, n)
	}
}

// Positions are doubles: a value float32 cannot hold must survive the round trip.
func TestFlowsGraphFloatPositions(t *testing.T) {
	if reflect.TypeOf(api.GraphPosition{}.X).Kind() != reflect.Float64 {
		t.Fatal("gen/api is stale: GraphPosition.X is float32 because openapi.bundled.yaml lost `format: double`; run `task generate`")
	}
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	in := `{"nodes":[{"id":"a","position":{"x":123.456789,"y":-98765.4321},"data":{"type":"response-data"}}],"edges":[],"viewport":{"x":0.1,"y":1e-7,"zoom":1.23456789}}`
	r, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"f","data":`+in+`}`, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, body)
	}
	var f struct {
		ID   int64           `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &f)
	var a, b any
	_ = json.Unmarshal(f.Data, &a)
	_ = json.Unmarshal([]byte(in), &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("positions changed:\n got  %s\n want %s", f.Data, in)
	}
	_, body = flReq(t, e, http.MethodGet, flPath(f.ID), tok, "", nil)
	_ = json.Unmarshal(body, &f)
	_ = json.Unmarshal(f.Data, &a)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("positions changed on GET:\n got  %s\n want %s", f.Data, in)
	}
}

// ---------------------------------------------------------------------------------------------------
// Concurrency: the locked re-read serialises writers.

func TestFlowsConcurrentWrites(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	const n = 6
	run := func(method, path string, hdr map[string]string, body func(i int) string) []int {
		t.Helper()
		codes := make([]int, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var rd io.Reader
				if b := body(i); b != "" {
					rd = strings.NewReader(b)
				}
				req, err := http.NewRequest(method, e.HTTP.URL+path, rd)
				if err != nil {
					errs[i] = err
					return
				}
				req.Header.Set("Authorization", "Bearer "+tok)
				if rd != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs[i] = err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}(i)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(codes)
		return codes
	}
	noBody := func(int) string { return "" }

	// Writers racing on the same ETag: exactly one wins, the rest get 412.
	f := flComplete(t, e, tok, "Race")
	codes := run(http.MethodPatch, flPath(f.Id), map[string]string{"If-Match": `"r1"`}, func(i int) string {
		return fmt.Sprintf(`{"name":"writer %d"}`, i)
	})
	if codes[0] != http.StatusOK || codes[1] != http.StatusPreconditionFailed || codes[n-1] != http.StatusPreconditionFailed {
		t.Fatalf("racing If-Match writers: %v", codes)
	}
	if rev := flRevision(t, e, f.Id); rev != 2 {
		t.Fatalf("revision %d after one winning write", rev)
	}
	// Racing publishes snapshot once.
	codes = run(http.MethodPost, flPath(f.Id, "/publish"), nil, noBody)
	if codes[0] != http.StatusOK || codes[n-1] != http.StatusOK {
		t.Fatalf("racing publishes: %v", codes)
	}
	if v := flVersionCount(t, e, f.Id); v != 2 {
		t.Fatalf("%d versions after racing publishes, want 2", v)
	}
	g := flGet(t, e, tok, f.Id)
	if g.Version != 2 || g.PublishedVersion.MustGet() != 2 || g.Revision != 3 {
		t.Fatalf("after racing publishes %+v", g)
	}
	// Racing snapshots get distinct, consecutive numbers.
	codes = run(http.MethodPost, flPath(f.Id, "/versions"), nil, noBody)
	if codes[0] != http.StatusCreated || codes[n-1] != http.StatusCreated {
		t.Fatalf("racing snapshots: %v", codes)
	}
	p := flVersions(t, e, tok, f.Id, api.ListFlowVersionsParams{})
	if !slices.Equal(flVersionNums(p), []int{8, 7, 6, 5, 4, 3, 2, 1}) {
		t.Fatalf("versions %v", flVersionNums(p))
	}
	if g := flGet(t, e, tok, f.Id); g.Version != 8 || g.Revision != 3+n {
		t.Fatalf("after racing snapshots %+v", g)
	}
}

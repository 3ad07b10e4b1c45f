package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/oapi-codegen/nullable"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

func flSnapshot(t *testing.T, e *testEnv, tok string, id int64, body *api.FlowVersionCreate) *api.FlowVersion {
	t.Helper()
	c := e.Client(tok)
	var (
		r   *api.CreateFlowVersionResponse
		err error
	)
	if body == nil {
		r, err = c.CreateFlowVersionWithBodyWithResponse(flCtx, id, nil, "application/json", nil)
	} else {
		r, err = c.CreateFlowVersionWithResponse(flCtx, id, nil, *body)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusCreated {
		t.Fatalf("snapshot flow %d: %d %s", id, r.StatusCode(), r.Body)
	}
	if loc, want := r.HTTPResponse.Header.Get("Location"), flPath(id, fmt.Sprintf("/versions/%d", r.JSON201.Version)); loc != want {
		t.Fatalf("Location %q, want %q", loc, want)
	}
	return r.JSON201
}

func flVersions(t *testing.T, e *testEnv, tok string, id int64, p api.ListFlowVersionsParams) *api.FlowVersionSummaryPage {
	t.Helper()
	r, err := e.Client(tok).ListFlowVersionsWithResponse(flCtx, id, &p)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusOK {
		t.Fatalf("versions of %d: %d %s", id, r.StatusCode(), r.Body)
	}
	if strings.Contains(string(r.Body), `"data"`) {
		t.Fatalf("version summaries carry data: %s", r.Body)
	}
	return r.JSON200
}

func flVersionNums(p *api.FlowVersionSummaryPage) []int {
	out := []int{}
	for _, it := range p.Items {
		out = append(out, it.Version)
	}
	return out
}

func flRestore(t *testing.T, e *testEnv, tok string, id int64, v int32, ifMatch *string) (*api.RestoreFlowVersionResponse, error) {
	t.Helper()
	return e.Client(tok).RestoreFlowVersionWithResponse(flCtx, id, v, &api.RestoreFlowVersionParams{IfMatch: ifMatch})
}

func TestFlowVersionsCreateListGet(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "Versioned")

	// Version 1 exists from the start.
	p := flVersions(t, e, tok, f.Id, api.ListFlowVersionsParams{})
	if p.Total != 1 || len(p.Items) != 1 || p.Page != 1 || p.PageSize != 25 || p.TotalPages != 1 || p.HasNext || p.HasPrev {
		t.Fatalf("initial page %+v", p)
	}
	v1 := p.Items[0]
	if v1.Version != 1 || v1.Name != "Initial version" || !v1.Description.IsNull() || v1.CreatedBy.MustGet() != u.ID || v1.IsPublished {
		t.Fatalf("version 1 %+v", v1)
	}

	// A labelled snapshot: the flow is not renamed; its version and revision go up.
	v2 := flSnapshot(t, e, tok, f.Id, &api.FlowVersionCreate{Name: flPtr("Before launch"), Description: nullable.NewNullableWithValue("safe point")})
	if v2.Version != 2 || v2.Name != "Before launch" || v2.Description.MustGet() != "safe point" || v2.CreatedBy.MustGet() != u.ID ||
		v2.IsPublished || flCanon(t, v2.Data) != flCanon(t, flGraphOK) {
		t.Fatalf("version 2 %+v", v2)
	}
	if !flMsTime.MatchString(v2.CreatedAt.Format("2006-01-02T15:04:05.000Z07:00")) {
		t.Fatalf("created_at %v", v2.CreatedAt)
	}
	g := flGet(t, e, tok, f.Id)
	if g.Name != "Versioned" || g.Version != 2 || g.Revision != 2 || !g.PublishedVersion.IsNull() {
		t.Fatalf("flow after snapshot %+v", g)
	}
	// Without a body, and with {}: the default label is "Version <n>", description null.
	v3 := flSnapshot(t, e, tok, f.Id, nil)
	v4 := flSnapshot(t, e, tok, f.Id, &api.FlowVersionCreate{})
	if v3.Name != "Version 3" || v4.Name != "Version 4" || !v3.Description.IsNull() || !v4.Description.IsNull() {
		t.Fatalf("default labels %q %q", v3.Name, v4.Name)
	}
	// A null description is simply none.
	v5 := flSnapshot(t, e, tok, f.Id, &api.FlowVersionCreate{Description: nullable.NewNullNullable[string]()})
	if !v5.Description.IsNull() || v5.Version != 5 {
		t.Fatalf("null description %+v", v5)
	}

	// Snapshots are immutable: a later edit does not touch them.
	edited := strings.Replace(flGraphOK, `"message":"hi"`, `"message":"later"`, 1)
	flPatch(t, e, tok, f.Id, api.FlowUpdate{Data: flGraph(t, edited)})
	gv, err := e.Client(tok).GetFlowVersionWithResponse(flCtx, f.Id, 2)
	if err != nil || gv.StatusCode() != http.StatusOK {
		t.Fatalf("get version 2: %v %d %s", err, gv.StatusCode(), gv.Body)
	}
	if gv.JSON200.Name != "Before launch" || flCanon(t, gv.JSON200.Data) != flCanon(t, flGraphOK) {
		t.Fatalf("version 2 changed: %+v", gv.JSON200)
	}
	v6 := flSnapshot(t, e, tok, f.Id, nil)
	if flCanon(t, v6.Data) != flCanon(t, edited) {
		t.Fatalf("version 6 is not the working copy: %s", flCanon(t, v6.Data))
	}

	// Newest first, paged.
	p = flVersions(t, e, tok, f.Id, api.ListFlowVersionsParams{})
	if !slices.Equal(flVersionNums(p), []int{6, 5, 4, 3, 2, 1}) || p.Total != 6 {
		t.Fatalf("versions %v", flVersionNums(p))
	}
	pages := []struct {
		page, size int
		want       []int
		next, prev bool
	}{
		{1, 4, []int{6, 5, 4, 3}, true, false},
		{2, 4, []int{2, 1}, false, true},
		{3, 4, []int{}, false, true},
		{2, 1, []int{5}, true, true},
	}
	for _, pg := range pages {
		p = flVersions(t, e, tok, f.Id, api.ListFlowVersionsParams{Page: &pg.page, PageSize: &pg.size})
		if !slices.Equal(flVersionNums(p), pg.want) || p.Total != 6 || p.HasNext != pg.next || p.HasPrev != pg.prev ||
			p.TotalPages != (6+pg.size-1)/pg.size {
			t.Fatalf("page %d/%d: %+v", pg.page, pg.size, p)
		}
	}
	// Versions of one flow only.
	other := flNamed(t, e, tok, "Other")
	if p := flVersions(t, e, tok, other.Id, api.ListFlowVersionsParams{}); p.Total != 1 {
		t.Fatalf("other flow versions %+v", p)
	}
	r, body := flReq(t, e, http.MethodGet, flPath(other.Id, "/versions/2"), tok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
	r, body = flReq(t, e, http.MethodGet, flPath(f.Id, "/versions/99"), tok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
	r, body = flReq(t, e, http.MethodGet, flPath(999999, "/versions/1"), tok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
	r, body = flReq(t, e, http.MethodGet, flPath(999999, "/versions"), tok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
}

func TestFlowVersionsIsPublished(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "P")
	flSnapshot(t, e, tok, f.Id, nil) // 2
	published := func() []int {
		var out []int
		for _, it := range flVersions(t, e, tok, f.Id, api.ListFlowVersionsParams{}).Items {
			if it.IsPublished {
				out = append(out, it.Version)
			}
		}
		return out
	}
	if got := published(); len(got) != 0 {
		t.Fatalf("published before publishing: %v", got)
	}
	flPublish(t, e, tok, f.Id, flPtr[int32](2))
	if got := published(); !slices.Equal(got, []int{2}) {
		t.Fatalf("published %v, want [2]", got)
	}
	gv, _ := e.Client(tok).GetFlowVersionWithResponse(flCtx, f.Id, 2)
	if !gv.JSON200.IsPublished {
		t.Fatalf("GET version 2 is_published false")
	}
	flPublish(t, e, tok, f.Id, flPtr[int32](1))
	if got := published(); !slices.Equal(got, []int{1}) {
		t.Fatalf("published %v, want [1]", got)
	}
	// Publishing the working copy (identical content to version 1, but published_version is the
	// snapshot named) creates version 3 only when there are unpublished changes: none here.
	if g := flPublish(t, e, tok, f.Id, nil); g.Version != 2 || g.PublishedVersion.MustGet() != 1 {
		t.Fatalf("publish without changes %+v", g)
	}
	if _, err := e.Client(tok).UnpublishFlowWithResponse(flCtx, f.Id); err != nil {
		t.Fatal(err)
	}
	if got := published(); len(got) != 0 {
		t.Fatalf("published after unpublish: %v", got)
	}
}

func TestFlowVersionsRestore(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "R") // v1 = flGraphOK
	pub := flPublish(t, e, tok, f.Id, nil)
	if pub.Version != 2 || pub.PublishedVersion.MustGet() != 2 {
		t.Fatalf("publish %+v", pub)
	}
	edited := strings.Replace(flGraphOK, `"message":"hi"`, `"message":"draft work"`, 1)
	edited = strings.Replace(edited, `"x":200`, `"x":999`, 1)
	g := flPatch(t, e, tok, f.Id, api.FlowUpdate{Data: flGraph(t, edited), Name: flPtr("R2")})
	if !g.HasUnpublishedChanges {
		t.Fatalf("edit %+v", g)
	}
	rev := g.Revision

	// Restore version 1: the working copy becomes its graph, the name stays, the published version
	// stays, no version is created, the revision goes up.
	r, err := flRestore(t, e, tok, f.Id, 1, nil)
	if err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("restore: %v %d %s", err, r.StatusCode(), r.Body)
	}
	flCheckETag(t, r.HTTPResponse, r.JSON200)
	got := r.JSON200
	if flCanon(t, got.Data) != flCanon(t, flGraphOK) || got.Name != "R2" || got.Revision != rev+1 || got.Version != 2 ||
		got.PublishedVersion.MustGet() != 2 || got.Status != api.FlowStatusPublished || got.HasUnpublishedChanges || got.NodeCount != 2 {
		t.Fatalf("restored %+v", got)
	}
	if n := flVersionCount(t, e, f.Id); n != 2 {
		t.Fatalf("restore created a version: %d", n)
	}
	row, _ := flRow(t, e, f.Id)
	if flCanon(t, row.Data) != flCanon(t, flGraphOK) {
		t.Fatalf("stored %s", row.Data)
	}
	// Restoring identical content still bumps the revision.
	r, _ = flRestore(t, e, tok, f.Id, 1, nil)
	if r.StatusCode() != http.StatusOK || r.JSON200.Revision != rev+2 {
		t.Fatalf("second restore: %d %s", r.StatusCode(), r.Body)
	}
	// Restoring a graph with a different node count updates node_count and validation.
	l := flCreate(t, e, tok, api.FlowCreate{Name: "L"}) // v1: empty graph
	flPatch(t, e, tok, l.Id, api.FlowUpdate{Data: flGraph(t, flGraphOK)})
	r, _ = flRestore(t, e, tok, l.Id, 1, nil)
	if r.StatusCode() != http.StatusOK || r.JSON200.NodeCount != 0 || r.JSON200.Validation.Valid {
		t.Fatalf("restore empty: %d %s", r.StatusCode(), r.Body)
	}

	// If-Match: stale → 412 and nothing changes; current → 200; "*" → 200.
	before := flSnap(t, e, f.Id)
	cur := etag(rev + 2)
	for _, stale := range []string{etag(rev + 1), etag(rev + 3), `"nope"`} {
		r, _ = flRestore(t, e, tok, f.Id, 2, &stale)
		if r.StatusCode() != http.StatusPreconditionFailed {
			t.Fatalf("stale %s: %d %s", stale, r.StatusCode(), r.Body)
		}
		flWantProblem(t, r.HTTPResponse, r.Body, http.StatusPreconditionFailed, "precondition-failed")
	}
	flSame(t, before, flSnap(t, e, f.Id))
	r, _ = flRestore(t, e, tok, f.Id, 2, &cur)
	if r.StatusCode() != http.StatusOK || r.JSON200.Revision != rev+3 {
		t.Fatalf("matching If-Match: %d %s", r.StatusCode(), r.Body)
	}
	r, _ = flRestore(t, e, tok, f.Id, 2, flPtr("*"))
	if r.StatusCode() != http.StatusOK || r.JSON200.Revision != rev+4 {
		t.Fatalf("If-Match *: %d %s", r.StatusCode(), r.Body)
	}
	// Unknown version: 404, nothing changes.
	before = flSnap(t, e, f.Id)
	r, _ = flRestore(t, e, tok, f.Id, 42, nil)
	flWantProblem(t, r.HTTPResponse, r.Body, http.StatusNotFound, "not-found")
	flSame(t, before, flSnap(t, e, f.Id))
	// The restored working copy can be published as is; an earlier draft restore shows as a change.
	flPatch(t, e, tok, f.Id, api.FlowUpdate{Data: flGraph(t, edited)})
	snap := flSnapshot(t, e, tok, f.Id, nil)
	r, _ = flRestore(t, e, tok, f.Id, int32(snap.Version), nil)
	if !r.JSON200.HasUnpublishedChanges {
		t.Fatalf("restoring an unpublished snapshot: %+v", r.JSON200)
	}
}

func TestFlowVersionsAccess(t *testing.T) {
	e := newTestEnv(t)
	owner, otok := e.User(rbac.Editor)
	_, stok := e.User(rbac.Editor)
	_, atok := e.User(rbac.Admin)
	f := flComplete(t, e, otok, "Private")
	cases := []struct{ method, rest string }{
		{http.MethodGet, "/versions"},
		{http.MethodPost, "/versions"},
		{http.MethodGet, "/versions/1"},
		{http.MethodPost, "/versions/1/restore"},
		{http.MethodPost, "/versions/99/restore"},
		{http.MethodGet, "/versions/99"},
	}
	// A stranger: 404 for everything, even for versions that do not exist.
	for _, c := range cases {
		before := flSnap(t, e, f.Id)
		r, body := flReq(t, e, c.method, flPath(f.Id, c.rest), stok, "", nil)
		flWantProblem(t, r, body, http.StatusNotFound, "not-found")
		flSame(t, before, flSnap(t, e, f.Id))
	}
	// Public: readable, not writable (403).
	flPatch(t, e, otok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityPublic)})
	before := flSnap(t, e, f.Id)
	for _, c := range cases[:3] {
		r, body := flReq(t, e, c.method, flPath(f.Id, c.rest), stok, "", nil)
		if c.method == http.MethodGet {
			if r.StatusCode != http.StatusOK {
				t.Fatalf("public %s %s: %d %s", c.method, c.rest, r.StatusCode, body)
			}
			continue
		}
		flWantProblem(t, r, body, http.StatusForbidden, "forbidden")
	}
	r, body := flReq(t, e, http.MethodPost, flPath(f.Id, "/versions/1/restore"), stok, "", nil)
	flWantProblem(t, r, body, http.StatusForbidden, "forbidden")
	flSame(t, before, flSnap(t, e, f.Id))
	// An admin may do everything; the snapshot records who made it.
	flPatch(t, e, otok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibilityPrivate)})
	admin := flSnapshot(t, e, atok, f.Id, &api.FlowVersionCreate{Name: flPtr("by admin")})
	if admin.CreatedBy.MustGet() == owner.ID {
		t.Fatalf("created_by %v", admin.CreatedBy)
	}
	if r, err := flRestore(t, e, atok, f.Id, 1, nil); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("admin restore: %v %d", err, r.StatusCode())
	}
	// Deleting the flow deletes its versions.
	_, mtok := e.User(rbac.Admin)
	if r, body := flReq(t, e, http.MethodDelete, flPath(f.Id), mtok, "", nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.StatusCode, body)
	}
	if n := flVersionCount(t, e, f.Id); n != 0 {
		t.Fatalf("%d versions survive their flow", n)
	}
	r, body = flReq(t, e, http.MethodGet, flPath(f.Id, "/versions/1"), atok, "", nil)
	flWantProblem(t, r, body, http.StatusNotFound, "not-found")
}

func TestFlowVersionsBadInputs(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "B")
	vp := flPath(f.Id, "/versions")
	cases := []struct {
		name, method, path, body, ctype string
		status                          int
		slug                            string
		pointer                         string
	}{
		{"unknown field", "POST", vp, `{"name":"x","data":{}}`, "", 400, "validation-error", "/data additionalProperties"},
		{"name empty", "POST", vp, `{"name":""}`, "", 400, "validation-error", "/name minLength"},
		{"name too long", "POST", vp, `{"name":"` + strings.Repeat("n", 101) + `"}`, "", 400, "validation-error", "/name maxLength"},
		{"name null", "POST", vp, `{"name":null}`, "", 400, "validation-error", "/name type"},
		{"name wrong type", "POST", vp, `{"name":1}`, "", 400, "validation-error", "/name type"},
		{"description too long", "POST", vp, `{"description":"` + strings.Repeat("d", 501) + `"}`, "", 400, "validation-error", "/description maxLength"},
		{"malformed", "POST", vp, `{"name":`, "", 400, "validation-error", " malformed-json"},
		{"content type", "POST", vp, `{"name":"x"}`, "text/plain", 415, "unsupported-media-type", ""},
		{"page_size 0", "GET", vp + "?page_size=0", "", "", 400, "validation-error", "#/query/page_size minimum"},
		{"page_size 101", "GET", vp + "?page_size=101", "", "", 400, "validation-error", "#/query/page_size maximum"},
		{"page 0", "GET", vp + "?page=0", "", "", 400, "validation-error", "#/query/page minimum"},
		{"version 0", "GET", vp + "/0", "", "", 400, "validation-error", "#/path/version"},
		{"version abc", "GET", vp + "/abc", "", "", 400, "validation-error", "#/path/version"},
		{"version too big", "POST", vp + "/3000000000/restore", "", "", 400, "validation-error", "#/path/version"},
		{"bad flow id", "GET", BasePath + "/flows/abc/versions", "", "", 400, "validation-error", "#/path/id"},
		{"If-Match too long", "POST", vp + "/1/restore", "", "if-match", 400, "validation-error", "#/header/If-Match maxLength"},
		{"restore method", "GET", vp + "/1/restore", "", "", 405, "method-not-allowed", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := flSnap(t, e, f.Id)
			var r *http.Response
			var body []byte
			switch tc.ctype {
			case "":
				r, body = flReq(t, e, tc.method, tc.path, tok, tc.body, nil)
			case "if-match":
				r, body = flReq(t, e, tc.method, tc.path, tok, tc.body, map[string]string{"If-Match": `"` + strings.Repeat("r", 70) + `"`})
			default:
				r, body = e.Do(tc.method, tc.path, tok, tc.ctype, strings.NewReader(tc.body))
			}
			var ptrs []string
			if tc.pointer != "" {
				ptrs = append(ptrs, tc.pointer)
			}
			p := flWantProblem(t, r, body, tc.status, tc.slug)
			flSame(t, before, flSnap(t, e, f.Id))
			flWantErrors(t, p, body, ptrs...)
		})
	}
	// The graph of a version is its own: GET returns data in full.
	r, body := flReq(t, e, http.MethodGet, vp+"/1", tok, "", nil)
	var v struct {
		Data json.RawMessage `json:"data"`
	}
	if r.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil || flCanon(t, v.Data) != flCanon(t, flGraphOK) {
		t.Fatalf("version 1: %d %s", r.StatusCode, body)
	}
	var n int64
	e.DB.Model(&store.FlowVersion{}).Where("flow_id = ?", f.Id).Count(&n)
	if n != 1 {
		t.Fatalf("bad inputs created versions: %d", n)
	}
}

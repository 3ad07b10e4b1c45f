package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed md).

func mdAudit(t *testing.T, e *testEnv, resourceType string, id int64) []store.AuditLog {
	t.Helper()
	rows, err := store.ListAuditForResource(t.Context(), e.DB.DB, resourceType, id)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func mdWantAudit(t *testing.T, e *testEnv, resourceType string, id int64, actions ...string) {
	t.Helper()
	rows := mdAudit(t, e, resourceType, id)
	got := make([]string, len(rows))
	for i, r := range rows {
		got[len(rows)-1-i] = r.Action // oldest first
	}
	if fmt.Sprint(got) != fmt.Sprint(actions) {
		t.Fatalf("%s %d audit actions %v, want %v", resourceType, id, got, actions)
	}
}

func mdTag(t *testing.T, e *testEnv, tok, name string) api.Tag {
	t.Helper()
	var tag api.Tag
	resp := ttDo(t, e, http.MethodPost, BasePath+"/metadata/tags", tok, `{"name":"`+name+`"}`, http.StatusCreated, &tag)
	if got, want := resp.Header.Get("Location"), fmt.Sprintf("%s/metadata/tags/%d", BasePath, tag.Id); got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	return tag
}

func mdGetTag(t *testing.T, e *testEnv, tok string, id int64) api.Tag {
	t.Helper()
	var tag api.Tag
	ttDo(t, e, http.MethodGet, fmt.Sprintf("%s/metadata/tags/%d", BasePath, id), tok, "", http.StatusOK, &tag)
	return tag
}

func mdCategory(t *testing.T, e *testEnv, tok, body string) api.Category {
	t.Helper()
	var c api.Category
	ttDo(t, e, http.MethodPost, BasePath+"/metadata/categories", tok, body, http.StatusCreated, &c)
	return c
}

func mdFlow(t *testing.T, e *testEnv, tok, body string) api.Flow {
	t.Helper()
	var f api.Flow
	ttDo(t, e, http.MethodPost, BasePath+"/flows", tok, body, http.StatusCreated, &f)
	return f
}

func mdCatPath(id int64) string { return fmt.Sprintf("%s/metadata/categories/%d", BasePath, id) }

// ---------------------------------------------------------------------------------------------------

// TestMetadataTags: create with defaults, case-insensitive uniqueness (409 with existing_id), get,
// partial update, {} no-op, list search and sort, delete; one audit row per change, none for refusals.
func TestMetadataTags(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, admin := e.User(rbac.Admin)

	a := mdTag(t, e, tok, "Popular")
	if a.Color != "#6366f1" || a.UsageCount != 0 || !a.Description.IsNull() {
		t.Fatalf("defaults: %+v", a)
	}
	b := mdTag(t, e, tok, "Beginner Friendly")

	resp, body := flReq(t, e, http.MethodPost, BasePath+"/metadata/tags", tok, `{"name":"POPULAR"}`, nil)
	if p := flWantProblem(t, resp, body, http.StatusConflict, "already-exists"); p.ExistingID == nil || *p.ExistingID != a.Id {
		t.Fatalf("existing_id %v, want %d", p.ExistingID, a.Id)
	}
	resp, body = flReq(t, e, http.MethodPost, BasePath+"/metadata/tags", tok, `{"name":"x","color":"red"}`, nil)
	flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error", "/color")
	resp, body = flReq(t, e, http.MethodPost, BasePath+"/metadata/tags", tok, `{"name":""}`, nil)
	flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error", "/name")

	path := fmt.Sprintf("%s/metadata/tags/%d", BasePath, b.Id)
	var got api.Tag
	ttDo(t, e, http.MethodPatch, path, tok, `{"color":"#10B981","description":"For new users"}`, http.StatusOK, &got)
	if got.Color != "#10B981" || got.Description.MustGet() != "For new users" || got.Name != "Beginner Friendly" {
		t.Fatalf("patched: %+v", got)
	}
	ttDo(t, e, http.MethodPatch, path, tok, `{}`, http.StatusOK, &got)
	resp, body = flReq(t, e, http.MethodPatch, path, tok, `{"name":"popular"}`, nil)
	flWantProblem(t, resp, body, http.StatusConflict, "already-exists")
	mdWantAudit(t, e, "tag", b.Id, "tag.create", "tag.update")

	var page api.TagPage
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/tags?search=FRIEND", tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != b.Id {
		t.Fatalf("search: %+v", page)
	}
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/tags?sort=-name", tok, "", http.StatusOK, &page)
	if page.Total != 2 || page.Items[0].Id != a.Id {
		t.Fatalf("sort -name: %+v", page)
	}

	// Editors may not delete (metadata:delete is admin-only); admins may.
	resp, body = flReq(t, e, http.MethodDelete, path, tok, "", nil)
	flWantProblem(t, resp, body, http.StatusForbidden, "forbidden")
	ttDo(t, e, http.MethodDelete, path, admin, "", http.StatusNoContent, nil)
	resp, body = flReq(t, e, http.MethodGet, path, tok, "", nil)
	flWantProblem(t, resp, body, http.StatusNotFound, "not-found")
	mdWantAudit(t, e, "tag", b.Id, "tag.create", "tag.update", "tag.delete")

	// A viewer reads but does not write.
	_, viewer := e.User(rbac.Viewer)
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/tags", viewer, "", http.StatusOK, &page)
	resp, body = flReq(t, e, http.MethodPost, BasePath+"/metadata/tags", viewer, `{"name":"Nope"}`, nil)
	if p := flWantProblem(t, resp, body, http.StatusForbidden, "forbidden"); p.MissingPermission != "metadata:create" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
}

// TestMetadataCategories: nesting (same entity_type, depth <= 3, no cycles), uniqueness per
// entity_type, filters, in-use deletes, and immutable system categories.
func TestMetadataCategories(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, admin := e.User(rbac.Admin)

	root := mdCategory(t, e, tok, `{"name":"Support","slug":"support","entity_type":"flow","icon":"FiHeadphones"}`)
	if root.Color != "#6366f1" || root.Order != 0 || root.IsSystem || !root.ParentId.IsNull() {
		t.Fatalf("defaults: %+v", root)
	}
	mid := mdCategory(t, e, tok, fmt.Sprintf(`{"name":"Email","slug":"email","entity_type":"flow","parent_id":%d,"order":2}`, root.Id))
	leaf := mdCategory(t, e, tok, fmt.Sprintf(`{"name":"Refunds","slug":"refunds","entity_type":"flow","parent_id":%d}`, mid.Id))
	// A fourth level is refused, as is a parent of another entity type or none at all.
	for _, body := range []string{
		fmt.Sprintf(`{"name":"Deep","slug":"deep","entity_type":"flow","parent_id":%d}`, leaf.Id),
		fmt.Sprintf(`{"name":"Other","slug":"other","entity_type":"template","parent_id":%d}`, root.Id),
		`{"name":"Orphan","slug":"orphan","entity_type":"flow","parent_id":999999}`,
	} {
		resp, b := flReq(t, e, http.MethodPost, BasePath+"/metadata/categories", tok, body, nil)
		flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/parent_id")
	}
	// Names and slugs are unique per entity type (case-insensitively for names), not across types.
	for _, body := range []string{`{"name":"SUPPORT","slug":"support-2","entity_type":"flow"}`, `{"name":"Help","slug":"support","entity_type":"flow"}`} {
		resp, b := flReq(t, e, http.MethodPost, BasePath+"/metadata/categories", tok, body, nil)
		if p := flWantProblem(t, resp, b, http.StatusConflict, "already-exists"); p.ExistingID == nil || *p.ExistingID != root.Id {
			t.Fatalf("existing_id %v, want %d", p.ExistingID, root.Id)
		}
	}
	resp, b := flReq(t, e, http.MethodPost, BasePath+"/metadata/categories", tok, `{"name":"x","slug":"Bad Slug","entity_type":"flow"}`, nil)
	flWantProblem(t, resp, b, http.StatusBadRequest, "validation-error", "/slug")
	tplCat := mdCategory(t, e, tok, `{"name":"Support","slug":"support","entity_type":"template"}`)

	// A cycle and a too-deep move are refused; a legal move works.
	resp, b = flReq(t, e, http.MethodPatch, mdCatPath(root.Id), tok, fmt.Sprintf(`{"parent_id":%d}`, leaf.Id), nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/parent_id")
	resp, b = flReq(t, e, http.MethodPatch, mdCatPath(root.Id), tok, fmt.Sprintf(`{"parent_id":%d}`, root.Id), nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/parent_id")
	other := mdCategory(t, e, tok, `{"name":"Sales","slug":"sales","entity_type":"flow"}`)
	resp, b = flReq(t, e, http.MethodPatch, mdCatPath(mid.Id), tok, fmt.Sprintf(`{"parent_id":%d}`, leaf.Id), nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/parent_id")
	var got api.Category
	ttDo(t, e, http.MethodPatch, mdCatPath(mid.Id), tok, fmt.Sprintf(`{"parent_id":%d,"name":"E-mail"}`, other.Id), http.StatusOK, &got)
	if got.ParentId.MustGet() != other.Id || got.Name != "E-mail" {
		t.Fatalf("moved: %+v", got)
	}
	ttDo(t, e, http.MethodPatch, mdCatPath(mid.Id), tok, `{}`, http.StatusOK, &got)
	mdWantAudit(t, e, "category", mid.Id, "category.create", "category.update")

	var page api.CategoryPage
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/categories?entity_type=flow&parent_id=none", tok, "", http.StatusOK, &page)
	if page.Total != 2 || page.Items[0].Id != other.Id && page.Items[0].Id != root.Id {
		t.Fatalf("roots: %+v", page)
	}
	ttDo(t, e, http.MethodGet, fmt.Sprintf("%s/metadata/categories?parent_id=%d", BasePath, other.Id), tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != mid.Id {
		t.Fatalf("children: %+v", page)
	}
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/categories?entity_type=template", tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != tplCat.Id {
		t.Fatalf("template categories: %+v", page)
	}

	// A category with children, or with flows in it, is in use.
	resp, b = flReq(t, e, http.MethodDelete, mdCatPath(other.Id), admin, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusConflict, "in-use"); len(p.References) != 1 || p.References[0].Type != "category" || p.References[0].ID != mid.Id {
		t.Fatalf("references %+v", p.References)
	}
	fl := mdFlow(t, e, tok, fmt.Sprintf(`{"name":"Filed","category_id":%d}`, leaf.Id))
	ttDo(t, e, http.MethodGet, mdCatPath(leaf.Id), tok, "", http.StatusOK, &got)
	if got.UsageCount != 1 {
		t.Fatalf("usage_count %d, want 1", got.UsageCount)
	}
	resp, b = flReq(t, e, http.MethodDelete, mdCatPath(leaf.Id), admin, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusConflict, "in-use"); len(p.References) != 1 || p.References[0].Type != "flow" || p.References[0].ID != fl.Id {
		t.Fatalf("references %+v", p.References)
	}
	ttDo(t, e, http.MethodDelete, mdCatPath(tplCat.Id), admin, "", http.StatusNoContent, nil)
	mdWantAudit(t, e, "category", tplCat.Id, "category.create", "category.delete")

	// System categories are immutable, and refusals leave no audit row.
	if _, err := SeedTemplates(t.Context(), e.DB, false); err != nil {
		t.Fatal(err)
	}
	sys, err := store.GetCategoryBySlug(t.Context(), e.DB.DB, "template", "customer-support")
	if err != nil || !sys.IsSystem {
		t.Fatalf("seeded category: %+v %v", sys, err)
	}
	before := len(mdAudit(t, e, "category", sys.ID))
	resp, b = flReq(t, e, http.MethodPatch, mdCatPath(sys.ID), admin, `{"name":"Mine now"}`, nil)
	flWantProblem(t, resp, b, http.StatusConflict, "system-resource")
	resp, b = flReq(t, e, http.MethodDelete, mdCatPath(sys.ID), admin, "", nil)
	flWantProblem(t, resp, b, http.StatusConflict, "system-resource")
	if n := len(mdAudit(t, e, "category", sys.ID)); n != before {
		t.Fatalf("refusals wrote %d audit rows", n-before)
	}
}

// TestMetadataIconsAndStats: icon defaults, uniqueness, partial updates, filters, usage counted from
// categories and templates, and the stats counts.
func TestMetadataIconsAndStats(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, admin := e.User(rbac.Admin)

	var zap, star api.Icon
	resp := ttDo(t, e, http.MethodPost, BasePath+"/metadata/icons", tok, `{"name":"FiZap","tags":["fast"]}`, http.StatusCreated, &zap)
	if resp.Header.Get("Location") != fmt.Sprintf("%s/metadata/icons/%d", BasePath, zap.Id) ||
		zap.Library != "react-icons/fi" || zap.Category != "general" || zap.IsFavorite || len(zap.Tags) != 1 {
		t.Fatalf("created: %+v", zap)
	}
	ttDo(t, e, http.MethodPost, BasePath+"/metadata/icons", tok, `{"name":"FiStar","category":"social"}`, http.StatusCreated, &star)
	r, b := flReq(t, e, http.MethodPost, BasePath+"/metadata/icons", tok, `{"name":"FiZap"}`, nil)
	if p := flWantProblem(t, r, b, http.StatusConflict, "already-exists"); p.ExistingID == nil || *p.ExistingID != zap.Id {
		t.Fatalf("existing_id %v", p.ExistingID)
	}
	r, b = flReq(t, e, http.MethodPost, BasePath+"/metadata/icons", tok, `{"name":"fi-zap"}`, nil)
	flWantProblem(t, r, b, http.StatusBadRequest, "validation-error", "/name")
	r, b = flReq(t, e, http.MethodPatch, fmt.Sprintf("%s/metadata/icons/%d", BasePath, star.Id), tok, `{"name":"Renamed"}`, nil)
	flWantProblem(t, r, b, http.StatusBadRequest, "validation-error", "/name")

	ttDo(t, e, http.MethodPatch, fmt.Sprintf("%s/metadata/icons/%d", BasePath, star.Id), tok, `{"is_favorite":true,"tags":["rating","fav"]}`, http.StatusOK, &star)
	if !star.IsFavorite || len(star.Tags) != 2 || star.Category != "social" {
		t.Fatalf("patched: %+v", star)
	}
	mdCategory(t, e, tok, `{"name":"Fast","slug":"fast","entity_type":"bot","icon":"FiZap"}`)
	mdCategory(t, e, tok, `{"name":"Faster","slug":"faster","entity_type":"channel","icon":"FiZap"}`)

	var page api.IconPage
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/icons", tok, "", http.StatusOK, &page)
	if page.Total != 2 || page.Items[0].Id != star.Id || page.Items[1].Id != zap.Id || page.Items[1].UsageCount != 2 {
		t.Fatalf("list (favourites first, usage counted): %+v", page)
	}
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/icons?favorites_only=true", tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != star.Id {
		t.Fatalf("favorites_only: %+v", page)
	}
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/icons?search=rating", tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != star.Id {
		t.Fatalf("search over tags: %+v", page)
	}
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/icons?category=general", tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != zap.Id {
		t.Fatalf("category: %+v", page)
	}
	mdTag(t, e, tok, "New")
	var st api.MetadataStats
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/stats", tok, "", http.StatusOK, &st)
	if st.Tags != 1 || st.Categories != 2 || st.Icons != 2 {
		t.Fatalf("stats %+v", st)
	}
	ttDo(t, e, http.MethodDelete, fmt.Sprintf("%s/metadata/icons/%d", BasePath, star.Id), admin, "", http.StatusNoContent, nil)
	mdWantAudit(t, e, "icon", star.Id, "icon.create", "icon.update", "icon.delete")
}

// TestFlowTagsAndCategory: PUT /flows/{id}/tags replaces the set, keeps usage_count right under tag,
// untag, duplicate, flow delete and tag delete, bumps the revision only on a change, refuses unknown
// tags and over-long sets without changing anything; category_id is checked; both filters work.
func TestFlowTagsAndCategory(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, admin := e.User(rbac.Admin)
	a, b, c := mdTag(t, e, tok, "Alpha"), mdTag(t, e, tok, "Beta"), mdTag(t, e, tok, "Gamma")
	flowCat := mdCategory(t, e, tok, `{"name":"Ops","slug":"ops","entity_type":"flow"}`)
	tplCat := mdCategory(t, e, tok, `{"name":"Ops","slug":"ops","entity_type":"template"}`)

	resp, body := flReq(t, e, http.MethodPost, BasePath+"/flows", tok, fmt.Sprintf(`{"name":"x","category_id":%d}`, tplCat.Id), nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "/category_id")
	resp, body = flReq(t, e, http.MethodPost, BasePath+"/flows", tok, `{"name":"x","category_id":999999}`, nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "/category_id")

	f := mdFlow(t, e, tok, fmt.Sprintf(`{"name":"Tagged","category_id":%d}`, flowCat.Id))
	other := mdFlow(t, e, tok, `{"name":"Plain"}`)
	if f.CategoryId.MustGet() != flowCat.Id || len(f.Tags) != 0 {
		t.Fatalf("created: %+v", f)
	}
	tags := flPath(f.Id, "/tags")
	var got api.Flow
	resp = ttDo(t, e, http.MethodPut, tags, tok, fmt.Sprintf(`{"tag_ids":[%d,%d]}`, b.Id, a.Id), http.StatusOK, &got)
	if got.Revision != f.Revision+1 || resp.Header.Get("ETag") != etag(got.Revision) || len(got.Tags) != 2 ||
		got.Tags[0].Name != "Alpha" || got.Tags[1].Name != "Beta" {
		t.Fatalf("tagged: rev %d etag %q tags %+v", got.Revision, resp.Header.Get("ETag"), got.Tags)
	}
	if mdGetTag(t, e, tok, a.Id).UsageCount != 1 || mdGetTag(t, e, tok, b.Id).UsageCount != 1 {
		t.Fatal("usage_count after tagging")
	}
	// The same set changes nothing: no revision, no audit row.
	audits := len(mdAudit(t, e, "flow", f.Id))
	ttDo(t, e, http.MethodPut, tags, tok, fmt.Sprintf(`{"tag_ids":[%d,%d]}`, a.Id, b.Id), http.StatusOK, &got)
	if got.Revision != f.Revision+1 || len(mdAudit(t, e, "flow", f.Id)) != audits {
		t.Fatalf("no-op put changed revision %d or audit", got.Revision)
	}
	// Unknown tags (422) and sets over 20 (400) change nothing.
	resp, body = flReq(t, e, http.MethodPut, tags, tok, fmt.Sprintf(`{"tag_ids":[%d,999999]}`, c.Id), nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "/tag_ids/1")
	many := "1"
	for i := 2; i <= 21; i++ {
		many += fmt.Sprintf(",%d", i)
	}
	resp, body = flReq(t, e, http.MethodPut, tags, tok, `{"tag_ids":[`+many+`]}`, nil)
	flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error", "/tag_ids")
	if mdGetTag(t, e, tok, c.Id).UsageCount != 0 || len(mdAudit(t, e, "flow", f.Id)) != audits {
		t.Fatal("a refused put changed something")
	}
	// Untag one, tag another.
	ttDo(t, e, http.MethodPut, tags, tok, fmt.Sprintf(`{"tag_ids":[%d,%d]}`, b.Id, c.Id), http.StatusOK, &got)
	if got.Revision != f.Revision+2 {
		t.Fatalf("revision %d", got.Revision)
	}
	for tag, want := range map[int64]int{a.Id: 0, b.Id: 1, c.Id: 1} {
		if n := mdGetTag(t, e, tok, tag).UsageCount; n != want {
			t.Fatalf("tag %d usage_count %d, want %d", tag, n, want)
		}
	}
	if rows := mdAudit(t, e, "flow", f.Id); len(rows) != audits+1 || rows[0].Action != "flow.update" {
		t.Fatalf("audit rows %d", len(rows))
	}

	// Filters, and tags in summaries.
	var page api.FlowSummaryPage
	ttDo(t, e, http.MethodGet, fmt.Sprintf("%s/flows?tag_id=%d", BasePath, c.Id), tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != f.Id || len(page.Items[0].Tags) != 2 {
		t.Fatalf("tag filter: %+v", page)
	}
	ttDo(t, e, http.MethodGet, fmt.Sprintf("%s/flows?category_id=%d", BasePath, flowCat.Id), tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != f.Id || page.Items[0].CategoryId.MustGet() != flowCat.Id {
		t.Fatalf("category filter: %+v", page)
	}
	ttDo(t, e, http.MethodGet, BasePath+"/flows", tok, "", http.StatusOK, &page)
	if page.Total != 2 {
		t.Fatalf("unfiltered: %+v", page)
	}

	// Clearing and setting category_id through PUT /flows/{id}.
	ttDo(t, e, http.MethodPut, flPath(other.Id), tok, fmt.Sprintf(`{"category_id":%d}`, tplCat.Id), http.StatusUnprocessableEntity, nil)
	ttDo(t, e, http.MethodPut, flPath(other.Id), tok, fmt.Sprintf(`{"category_id":%d}`, flowCat.Id), http.StatusOK, &got)
	if got.CategoryId.MustGet() != flowCat.Id {
		t.Fatalf("category not set: %+v", got.CategoryId)
	}
	ttDo(t, e, http.MethodPut, flPath(other.Id), tok, `{"category_id":null}`, http.StatusOK, &got)
	if !got.CategoryId.IsNull() {
		t.Fatal("category not cleared")
	}

	// A duplicate copies the tags (and counts them); deleting flows and tags keeps the counts right.
	var dup api.Flow
	ttDo(t, e, http.MethodPost, flPath(f.Id, "/duplicate"), tok, "", http.StatusCreated, &dup)
	if len(dup.Tags) != 2 || dup.CategoryId.MustGet() != flowCat.Id || mdGetTag(t, e, tok, c.Id).UsageCount != 2 {
		t.Fatalf("duplicate: %+v", dup)
	}
	ttDo(t, e, http.MethodDelete, flPath(dup.Id), admin, "", http.StatusNoContent, nil)
	if mdGetTag(t, e, tok, c.Id).UsageCount != 1 || mdGetTag(t, e, tok, b.Id).UsageCount != 1 {
		t.Fatal("usage_count after deleting a flow")
	}
	ttDo(t, e, http.MethodDelete, fmt.Sprintf("%s/metadata/tags/%d", BasePath, b.Id), admin, "", http.StatusNoContent, nil)
	ttDo(t, e, http.MethodGet, flPath(f.Id), tok, "", http.StatusOK, &got)
	if len(got.Tags) != 1 || got.Tags[0].Id != c.Id {
		t.Fatalf("tags after deleting a tag: %+v", got.Tags)
	}

	// A viewer may not tag.
	_, viewer := e.User(rbac.Viewer)
	resp, body = flReq(t, e, http.MethodPut, tags, viewer, `{"tag_ids":[]}`, nil)
	flWantProblem(t, resp, body, http.StatusForbidden, "forbidden")
}

// TestTemplateTagsAndCategory: template tags keep usage_count right, system templates refuse them,
// category_id is checked and filterable, deletes decrement, and the seed files the built-in
// templates under their system categories.
func TestTemplateTagsAndCategory(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, admin := e.User(rbac.Admin)
	a := mdTag(t, e, tok, "Alpha")
	flowCat := mdCategory(t, e, tok, `{"name":"Ops","slug":"ops","entity_type":"flow"}`)
	tplCat := mdCategory(t, e, tok, `{"name":"Ops","slug":"ops","entity_type":"template"}`)

	resp, body := flReq(t, e, http.MethodPost, BasePath+"/templates", tok,
		fmt.Sprintf(`{"name":"x","data":%s,"category_id":%d}`, ttGraph, flowCat.Id), nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "/category_id")
	tpl := ttCreate(t, e, tok, fmt.Sprintf(`{"name":"Mine","data":%s,"category_id":%d}`, ttGraph, tplCat.Id))
	if tpl.CategoryId.MustGet() != tplCat.Id || len(tpl.Tags) != 0 {
		t.Fatalf("created: %+v", tpl)
	}
	var got api.Template
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id, "/tags"), tok, fmt.Sprintf(`{"tag_ids":[%d]}`, a.Id), http.StatusOK, &got)
	if len(got.Tags) != 1 || mdGetTag(t, e, tok, a.Id).UsageCount != 1 {
		t.Fatalf("tagged: %+v", got.Tags)
	}
	resp, body = flReq(t, e, http.MethodPut, ttPath(tpl.Id, "/tags"), tok, `{"tag_ids":[999999]}`, nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "/tag_ids/0")

	var page api.TemplateSummaryPage
	ttDo(t, e, http.MethodGet, fmt.Sprintf("%s/templates?tag_id=%d", BasePath, a.Id), tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != tpl.Id || len(page.Items[0].Tags) != 1 {
		t.Fatalf("tag filter: %+v", page)
	}
	ttDo(t, e, http.MethodGet, fmt.Sprintf("%s/templates?category_id=%d", BasePath, tplCat.Id), tok, "", http.StatusOK, &page)
	if page.Total != 1 || page.Items[0].Id != tpl.Id {
		t.Fatalf("category filter: %+v", page)
	}
	ttDo(t, e, http.MethodPut, ttPath(tpl.Id), tok, `{"category_id":null}`, http.StatusOK, &got)
	if !got.CategoryId.IsNull() {
		t.Fatal("category not cleared")
	}

	var dup api.Template
	ttDo(t, e, http.MethodPost, ttPath(tpl.Id, "/duplicate"), tok, "", http.StatusCreated, &dup)
	if len(dup.Tags) != 1 || mdGetTag(t, e, tok, a.Id).UsageCount != 2 {
		t.Fatalf("duplicate: %+v", dup.Tags)
	}
	ttDo(t, e, http.MethodDelete, ttPath(dup.Id), admin, "", http.StatusNoContent, nil)
	ttDo(t, e, http.MethodDelete, ttPath(tpl.Id), admin, "", http.StatusNoContent, nil)
	if n := mdGetTag(t, e, tok, a.Id).UsageCount; n != 0 {
		t.Fatalf("usage_count %d after deleting the templates", n)
	}

	// The seed inserts the system template categories and files the built-in templates under them.
	var res api.TemplateSeedResult
	ttDo(t, e, http.MethodPost, BasePath+"/templates/seed", admin, "", http.StatusOK, &res)
	ttDo(t, e, http.MethodGet, BasePath+"/metadata/categories?entity_type=template&page_size=100", tok, "", http.StatusOK, &api.CategoryPage{})
	for _, slug := range []string{"customer-support", "sales", "content", "automation"} {
		c, err := store.GetCategoryBySlug(t.Context(), e.DB.DB, "template", slug)
		if err != nil || !c.IsSystem {
			t.Fatalf("category %s: %+v %v", slug, c, err)
		}
	}
	sys, err := store.GetTemplateBySystemKey(t.Context(), e.DB.DB, "webhook-ai-http")
	if err != nil {
		t.Fatal(err)
	}
	automation, _ := store.GetCategoryBySlug(t.Context(), e.DB.DB, "template", "automation")
	if sys.CategoryID == nil || *sys.CategoryID != automation.ID {
		t.Fatalf("webhook-ai-http category %v, want %d", sys.CategoryID, automation.ID)
	}
	var again api.TemplateSeedResult
	ttDo(t, e, http.MethodPost, BasePath+"/templates/seed", admin, "", http.StatusOK, &again)
	if again.Inserted != 0 || again.Updated != 0 {
		t.Fatalf("second seed %+v", again)
	}
	audits := len(mdAudit(t, e, "template", sys.ID))
	resp, body = flReq(t, e, http.MethodPut, ttPath(sys.ID, "/tags"), tok, fmt.Sprintf(`{"tag_ids":[%d]}`, a.Id), nil)
	flWantProblem(t, resp, body, http.StatusConflict, "system-resource")
	if len(mdAudit(t, e, "template", sys.ID)) != audits || mdGetTag(t, e, tok, a.Id).UsageCount != 0 {
		t.Fatal("a refused system template tagging changed something")
	}
}

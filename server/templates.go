package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

const maxTemplateName = 200

func templateLocation(id int64) string { return fmt.Sprintf("%s/templates/%d", BasePath, id) }

func templateErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Template")
	}
	return err
}

// systemTemplate is 409 system-resource: seeded templates are read-only (PRODUCT §4.3).
func systemTemplate(verb string) *Problem {
	return conflict("system-resource", "Built-in templates cannot be "+verb+"; duplicate the template and change the copy.")
}

// templatePlaceholders are the pointers into a graph (from its root) at the required config values it
// leaves empty: what the editor asks a user to fill after creating a flow from the template.
func templatePlaceholders(data []byte) (store.StringList, error) {
	g, err := flow.Parse(data)
	if err != nil {
		return nil, err
	}
	out := store.StringList{}
	for _, is := range g.CheckCompleteness("") {
		if is.Code == "missing-config" {
			out = append(out, is.Pointer)
		}
	}
	return out, nil
}

func templateSummary(t *store.Template, tags []store.Tag) api.TemplateSummary {
	return api.TemplateSummary{
		CategoryId: NullableFrom(t.CategoryID), Tags: tagRefs(tags),
		Id: t.ID, Name: t.Name, Description: NullableFrom(t.Description), Icon: NullableFrom(t.Icon),
		SourceFlowId: NullableFrom(t.SourceFlowID), IsSystem: t.IsSystem, SystemKey: NullableFrom(t.SystemKey),
		UsageCount: t.UsageCount, CreatedBy: NullableFrom(t.CreatedBy),
		CreatedAt: apitime.From(t.CreatedAt), UpdatedAt: apitime.From(t.UpdatedAt),
	}
}

// templateFull maps a template with its graph and tags.
func (srv *Server) templateFull(ctx context.Context, t *store.Template) (api.Template, error) {
	tags, err := store.TemplateTags(ctx, srv.deps.DB.DB, []int64{t.ID})
	if err != nil {
		return api.Template{}, err
	}
	var g api.Graph
	if err := json.Unmarshal(t.Data, &g); err != nil {
		return api.Template{}, fmt.Errorf("template %d: stored graph: %w", t.ID, err)
	}
	s := templateSummary(t, tags[t.ID])
	placeholders := []string(t.Placeholders)
	if placeholders == nil {
		placeholders = []string{}
	}
	return api.Template{
		Id: s.Id, Name: s.Name, Description: s.Description, Icon: s.Icon, SourceFlowId: s.SourceFlowId,
		CategoryId: s.CategoryId, Tags: s.Tags,
		IsSystem: s.IsSystem, SystemKey: s.SystemKey, UsageCount: s.UsageCount, CreatedBy: s.CreatedBy,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Data: g, Placeholders: placeholders,
	}, nil
}

// nullableString is the value of an optional, clearable string of a request body: nil when absent
// or null.
func nullableString(specified, null bool, get func() string) *string {
	if !specified || null {
		return nil
	}
	v := get()
	return &v
}

func (h *handlers) ListTemplates(ctx context.Context, req api.ListTemplatesRequestObject) (api.ListTemplatesResponseObject, error) {
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.TemplateFilter{IsSystem: prm.IsSystem, Page: page, PageSize: size}
	if prm.CategoryId != nil {
		f.CategoryID = *prm.CategoryId
	}
	if prm.TagId != nil {
		f.TagID = *prm.TagId
	}
	if prm.Search != nil {
		f.Search = *prm.Search
	}
	f.Sort = sortKeys(prm.Sort)
	db := h.s.deps.DB.DB
	rows, total, err := store.ListTemplates(ctx, db, f)
	if err != nil {
		return nil, err
	}
	ids := rowIDs(rows, func(r *store.Template) int64 { return r.ID })
	tags, err := store.TemplateTags(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	out := api.TemplateSummaryPage{Items: make([]api.TemplateSummary, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, templateSummary(&rows[i], tags[rows[i].ID]))
	}
	return api.ListTemplates200JSONResponse{Body: out}, nil
}

func (h *handlers) CreateTemplate(ctx context.Context, req api.CreateTemplateRequestObject) (api.CreateTemplateResponseObject, error) {
	p, v := viewerOf(ctx)
	b := req.Body
	if (b.Data == nil) == (b.FromFlowId == nil) {
		return nil, unprocessable("unprocessable", "Give exactly one of data and from_flow_id.",
			FieldError{Pointer: "/data", Detail: "exactly one of data and from_flow_id is required", Code: "unprocessable"})
	}
	t := &store.Template{Name: b.Name, CreatedBy: &p.UserID,
		Description: nullableString(b.Description.IsSpecified(), b.Description.IsNull(), b.Description.MustGet),
		Icon:        nullableString(b.Icon.IsSpecified(), b.Icon.IsNull(), b.Icon.MustGet)}
	after := map[string]any{"name": t.Name}
	if b.CategoryId.IsSpecified() && !b.CategoryId.IsNull() {
		c := b.CategoryId.MustGet()
		t.CategoryID = &c
		after["category_id"] = c
		if err := checkCategory(ctx, h.s.deps.DB.DB, t.CategoryID, "template"); err != nil {
			return nil, err
		}
	}
	if b.Data != nil {
		g, err := h.s.readGraph(b.Data, "/data")
		if err != nil {
			return nil, err
		}
		t.Data = g.data
	} else {
		src, err := store.GetFlow(ctx, h.s.deps.DB.DB, v, *b.FromFlowId)
		if errors.Is(err, store.ErrNotFound) {
			return nil, unprocessable("unprocessable", "from_flow_id names no flow you can read.",
				FieldError{Pointer: "/from_flow_id", Detail: "names no flow you can read", Code: "unprocessable"})
		}
		if err != nil {
			return nil, err
		}
		// The working copy passed the structural checks when it was saved; re-encode it compactly
		// (PostgreSQL hands jsonb back reformatted).
		if t.Data, err = cleanGraph(src.Data); err != nil {
			return nil, err
		}
		t.SourceFlowID = &src.ID
		after["source_flow_id"] = src.ID
	}
	var err error
	if t.Placeholders, err = templatePlaceholders(t.Data); err != nil {
		return nil, err
	}
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.SaveTemplate(ctx, tx, t); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "template.create", ResourceType: "template", ResourceID: t.ID, After: after})
	})
	if err != nil {
		return nil, err
	}
	out, err := h.s.templateFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.CreateTemplate201JSONResponse{Body: out, Headers: api.CreateTemplate201ResponseHeaders{Location: templateLocation(t.ID)}}, nil
}

func (h *handlers) GetTemplate(ctx context.Context, req api.GetTemplateRequestObject) (api.GetTemplateResponseObject, error) {
	t, err := store.GetTemplate(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, templateErr(err)
	}
	out, err := h.s.templateFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.GetTemplate200JSONResponse{Body: out}, nil
}

func (h *handlers) UpdateTemplate(ctx context.Context, req api.UpdateTemplateRequestObject) (api.UpdateTemplateResponseObject, error) {
	db := h.s.deps.DB.DB
	t, err := store.GetTemplate(ctx, db, req.Id)
	if err != nil {
		return nil, templateErr(err)
	}
	if t.IsSystem {
		return nil, systemTemplate("changed")
	}
	b := req.Body
	// Check the graph before taking any lock: it is pure.
	var g *graphInput
	var placeholders store.StringList
	if b.Data != nil {
		gi, err := h.s.readGraph(b.Data, "/data")
		if err != nil {
			return nil, err
		}
		if placeholders, err = templatePlaceholders(gi.data); err != nil {
			return nil, err
		}
		g = &gi
	}
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		cur, err := store.GetTemplateForUpdate(ctx, tx, req.Id)
		if err != nil {
			return templateErr(err)
		}
		t = cur
		if t.IsSystem {
			return systemTemplate("changed")
		}
		var fields []string
		if b.Name != nil && *b.Name != t.Name {
			t.Name, fields = *b.Name, append(fields, "name")
		}
		if b.Description.IsSpecified() {
			if d := nullableString(true, b.Description.IsNull(), b.Description.MustGet); !equalPtr(d, t.Description) {
				t.Description, fields = d, append(fields, "description")
			}
		}
		if b.Icon.IsSpecified() {
			if i := nullableString(true, b.Icon.IsNull(), b.Icon.MustGet); !equalPtr(i, t.Icon) {
				t.Icon, fields = i, append(fields, "icon")
			}
		}
		if b.CategoryId.IsSpecified() {
			var c *int64
			if !b.CategoryId.IsNull() {
				v := b.CategoryId.MustGet()
				c = &v
			}
			if !equalPtr(c, t.CategoryID) {
				if err := checkCategory(ctx, tx, c, "template"); err != nil {
					return err
				}
				t.CategoryID, fields = c, append(fields, "category_id")
			}
		}
		if g != nil && !sameJSON(g.data, t.Data) {
			t.Data, fields = g.data, append(fields, "data")
			if !slices.Equal(placeholders, t.Placeholders) {
				t.Placeholders, fields = placeholders, append(fields, "placeholders")
			}
		}
		if len(fields) == 0 {
			return nil
		}
		if err := store.SaveTemplate(ctx, tx, t); err != nil {
			return templateErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "template.update", ResourceType: "template", ResourceID: t.ID, Fields: fields})
	})
	if err != nil {
		return nil, err
	}
	out, err := h.s.templateFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.UpdateTemplate200JSONResponse{Body: out}, nil
}

func (h *handlers) DeleteTemplate(ctx context.Context, req api.DeleteTemplateRequestObject) (api.DeleteTemplateResponseObject, error) {
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		t, err := store.GetTemplateForUpdate(ctx, tx, req.Id)
		if err != nil {
			return templateErr(err)
		}
		if t.IsSystem {
			return systemTemplate("deleted")
		}
		if err := store.DropTemplateTags(ctx, tx, t.ID); err != nil {
			return err
		}
		if err := store.DeleteTemplate(ctx, tx, t.ID); err != nil {
			return templateErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "template.delete", ResourceType: "template", ResourceID: t.ID,
			Before: map[string]any{"name": t.Name}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteTemplate204Response{}, nil
}

func (h *handlers) DuplicateTemplate(ctx context.Context, req api.DuplicateTemplateRequestObject) (api.DuplicateTemplateResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	src, err := store.GetTemplate(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, templateErr(err)
	}
	data, err := cleanGraph(src.Data) // compact again: PostgreSQL hands jsonb back reformatted
	if err != nil {
		return nil, err
	}
	// The " (Copy)" suffix stays within the limit by shortening the source's name.
	const suffix = " (Copy)"
	t := &store.Template{Name: truncateRunes(src.Name, maxTemplateName-len(suffix)) + suffix, Description: src.Description,
		Icon: src.Icon, Data: data, Placeholders: src.Placeholders, SourceFlowID: src.SourceFlowID, CategoryID: src.CategoryID, CreatedBy: &p.UserID}
	tagIDs, err := store.TemplateTagIDs(ctx, h.s.deps.DB.DB, src.ID)
	if err != nil {
		return nil, err
	}
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.SaveTemplate(ctx, tx, t); err != nil {
			return err
		}
		if _, _, err := store.SetTemplateTags(ctx, tx, t.ID, tagIDs); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "template.duplicate", ResourceType: "template", ResourceID: t.ID,
			Before: map[string]any{"source_template_id": src.ID}, After: map[string]any{"name": t.Name}})
	})
	if err != nil {
		return nil, err
	}
	out, err := h.s.templateFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.DuplicateTemplate201JSONResponse{Body: out, Headers: api.DuplicateTemplate201ResponseHeaders{Location: templateLocation(t.ID)}}, nil
}

func (h *handlers) CreateTemplateFlow(ctx context.Context, req api.CreateTemplateFlowRequestObject) (api.CreateTemplateFlowResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	db := h.s.deps.DB.DB
	t, err := store.GetTemplate(ctx, db, req.Id)
	if err != nil {
		return nil, templateErr(err)
	}
	b := req.Body
	if b == nil {
		b = &api.TemplateFlowCreate{}
	}
	data, err := cleanGraph(t.Data)
	if err != nil {
		return nil, err
	}
	g, err := flow.Parse(data)
	if err != nil {
		return nil, err
	}
	f := &store.Flow{Name: truncateRunes(t.Name, maxFlowName), Description: t.Description, OwnerID: p.UserID, Status: "draft",
		Visibility: "private", Data: data, ContentHash: g.Hash(), NodeCount: g.NodeCount(), TemplateID: &t.ID, Revision: 1, Version: 1}
	if b.Name != nil {
		f.Name = *b.Name
	}
	if b.Description.IsSpecified() {
		f.Description = nullableString(true, b.Description.IsNull(), b.Description.MustGet)
	}
	if b.Visibility != nil {
		f.Visibility = string(*b.Visibility)
	}
	if b.TeamId.IsSpecified() && !b.TeamId.IsNull() {
		team := b.TeamId.MustGet()
		f.TeamID = &team
	}
	if err := checkTeam(ctx, db, p, f.Visibility, f.TeamID, p.UserID); err != nil {
		return nil, err
	}
	countUse := func(tx *gorm.DB) error { return templateErr(store.IncrementTemplateUsage(ctx, tx, t.ID)) }
	out, tag, err := h.s.insertFlow(ctx, p, f, "flow.create", 0, nil, countUse)
	if err != nil {
		return nil, err
	}
	return api.CreateTemplateFlow201JSONResponse{Body: out,
		Headers: api.CreateTemplateFlow201ResponseHeaders{Location: flowLocation(f.ID), ETag: &tag}}, nil
}

func (h *handlers) SeedTemplates(ctx context.Context, req api.SeedTemplatesRequestObject) (api.SeedTemplatesResponseObject, error) {
	force := req.Params.Force != nil && *req.Params.Force
	res, err := SeedTemplates(ctx, h.s.deps.DB, force)
	if err != nil {
		return nil, err
	}
	return api.SeedTemplates200JSONResponse{Body: api.TemplateSeedResult{Inserted: res.Inserted, Updated: res.Updated}}, nil
}

// SeedResult counts what a seed changed.
type SeedResult struct {
	Inserted, Updated int
}

// SeedTemplates inserts the built-in templates (flow.BuiltinTemplates) that are missing, keyed on
// system_key, and with force resets every system template whose stored definition differs from the
// shipped one (usage_count is kept). It is idempotent: a second run changes nothing. All of it is one
// transaction, with a template.seed audit row per inserted or reset template; the actor is the
// request's principal, or the system (startup, `wataomi seed`). It is what POST /templates/seed,
// SEED_ON_START and the CLI run.
func SeedTemplates(ctx context.Context, db *store.DB, force bool) (SeedResult, error) {
	res, err := seedTemplates(ctx, db, force)
	if errors.Is(err, store.ErrConflict) {
		// Another replica inserted the same system_key meanwhile: run again, which now finds it.
		res, err = seedTemplates(ctx, db, force)
	}
	return res, err
}

// builtinTemplateCategories are the system template categories the built-in templates are filed
// under (PRODUCT §5.5, §5.12), by slug.
var builtinTemplateCategories = []struct{ Slug, Name, Icon string }{
	{"customer-support", "Customer Support", "FiHeadphones"},
	{"sales", "Sales", "FiTrendingUp"},
	{"content", "Content", "FiFile"},
	{"automation", "Automation", "FiZap"},
}

// seedTemplateCategories inserts the missing built-in template categories as system categories and
// returns every one's id by slug. An existing category with the slug is used as it is.
func seedTemplateCategories(ctx context.Context, tx *gorm.DB) (map[string]int64, error) {
	ids := map[string]int64{}
	for i, bc := range builtinTemplateCategories {
		cur, err := store.GetCategoryBySlug(ctx, tx, "template", bc.Slug)
		if err == nil {
			ids[bc.Slug] = cur.ID
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		icon := bc.Icon
		c := &store.Category{Name: bc.Name, Slug: bc.Slug, EntityType: "template", Icon: &icon, Color: defaultColor, Order: i, IsSystem: true}
		if err := store.SaveCategory(ctx, tx, c); err != nil {
			return nil, err
		}
		if err := writeAudit(ctx, tx, auditEntry{Action: "category.seed", ResourceType: "category", ResourceID: c.ID,
			After: map[string]any{"slug": c.Slug, "entity_type": c.EntityType, "result": "inserted"}}); err != nil {
			return nil, err
		}
		ids[bc.Slug] = c.ID
	}
	return ids, nil
}

func seedTemplates(ctx context.Context, db *store.DB, force bool) (SeedResult, error) {
	var res SeedResult
	err := db.Tx(ctx, func(tx *gorm.DB) error {
		res = SeedResult{}
		categories, err := seedTemplateCategories(ctx, tx)
		if err != nil {
			return err
		}
		for _, b := range flow.BuiltinTemplates() {
			data, err := cleanGraph(b.Graph)
			if err != nil {
				return fmt.Errorf("built-in template %s: %w", b.Key, err)
			}
			key, desc, icon := b.Key, b.Description, b.Icon
			want := store.Template{Name: b.Name, Description: &desc, Icon: &icon, Data: data,
				Placeholders: store.StringList(b.Placeholders), IsSystem: true, SystemKey: &key}
			if id, ok := categories[b.Category]; ok {
				want.CategoryID = &id
			}
			cur, err := store.GetTemplateBySystemKey(ctx, tx, key)
			result := ""
			var fields []string
			switch {
			case errors.Is(err, store.ErrNotFound):
				cur, result = &want, "inserted"
				res.Inserted++
			case err != nil:
				return err
			case !force && cur.CategoryID == nil && want.CategoryID != nil:
				// Seeded before categories existed: file it under its category.
				cur.CategoryID, result, fields = want.CategoryID, "categorised", []string{"category_id"}
			case !force:
				continue
			default:
				if cur.Name != want.Name {
					fields = append(fields, "name")
				}
				if !equalPtr(cur.Description, want.Description) {
					fields = append(fields, "description")
				}
				if !equalPtr(cur.Icon, want.Icon) {
					fields = append(fields, "icon")
				}
				if !sameJSON(cur.Data, want.Data) {
					fields = append(fields, "data")
				}
				if !slices.Equal(cur.Placeholders, want.Placeholders) {
					fields = append(fields, "placeholders")
				}
				if !cur.IsSystem {
					fields = append(fields, "is_system")
				}
				if !equalPtr(cur.CategoryID, want.CategoryID) {
					fields = append(fields, "category_id")
				}
				if len(fields) == 0 {
					continue
				}
				cur.Name, cur.Description, cur.Icon, cur.Data, cur.Placeholders, cur.IsSystem, cur.CategoryID =
					want.Name, want.Description, want.Icon, want.Data, want.Placeholders, true, want.CategoryID
				result = "updated"
				res.Updated++
			}
			if err := store.SaveTemplate(ctx, tx, cur); err != nil {
				return err
			}
			if err := writeAudit(ctx, tx, auditEntry{Action: "template.seed", ResourceType: "template", ResourceID: cur.ID,
				Fields: fields, After: map[string]any{"system_key": key, "result": result}}); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

func (h *handlers) SetTemplateTags(ctx context.Context, req api.SetTemplateTagsRequestObject) (api.SetTemplateTagsResponseObject, error) {
	ids := req.Body.TagIds
	var t *store.Template
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, err = store.GetTemplateForUpdate(ctx, tx, req.Id); err != nil {
			return templateErr(err)
		}
		if t.IsSystem {
			return systemTemplate("changed")
		}
		if err := checkTagIDs(ctx, tx, ids); err != nil {
			return err
		}
		before, changed, err := store.SetTemplateTags(ctx, tx, t.ID, ids)
		if err != nil || !changed {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "template.update", ResourceType: "template", ResourceID: t.ID,
			Fields: []string{"tags"}, Before: map[string]any{"tag_ids": before}, After: map[string]any{"tag_ids": ids}})
	})
	if err != nil {
		return nil, err
	}
	out, err := h.s.templateFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.SetTemplateTags200JSONResponse{Body: out}, nil
}

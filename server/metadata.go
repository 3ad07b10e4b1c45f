package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/store"
)

// Metadata (PRODUCT §5.12): tags, categories and icons, organisation-wide (the permission is enough).
// Every change writes its audit row (tag.*, category.*, icon.*) in its own transaction; refusals
// change nothing and write none.

const (
	defaultColor       = "#6366f1"
	maxCategoryDepth   = 3
	defaultIconLibrary = "react-icons/fi"
	defaultIconGroup   = "general"
)

func metadataLocation(kind string, id int64) string {
	return fmt.Sprintf("%s/metadata/%s/%d", BasePath, kind, id)
}

func notFoundAs(what string) func(error) error {
	return func(err error) error {
		if errors.Is(err, store.ErrNotFound) {
			return notFound(what)
		}
		return err
	}
}

var (
	tagErr      = notFoundAs("Tag")
	categoryErr = notFoundAs("Category")
	iconErr     = notFoundAs("Icon")
)

// ---- tags

func tagOut(t *store.Tag) api.Tag {
	return api.Tag{Id: t.ID, Name: t.Name, Color: t.Color, Description: NullableFrom(t.Description), UsageCount: t.UsageCount,
		CreatedAt: apitime.From(t.CreatedAt), UpdatedAt: apitime.From(t.UpdatedAt)}
}

func tagRefs(tags []store.Tag) []api.TagRef {
	out := make([]api.TagRef, 0, len(tags))
	for _, t := range tags {
		out = append(out, api.TagRef{Id: t.ID, Name: t.Name, Color: t.Color})
	}
	return out
}

// tagConflict turns a duplicate tag name into 409 already-exists; it runs after the transaction.
func tagConflict(ctx context.Context, db *gorm.DB, name string, err error) error {
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	p := conflict("already-exists", "A tag with this name already exists.")
	if t, err := store.GetTagByName(ctx, db, name); err == nil {
		p.ExistingID = &t.ID
	}
	return p
}

func (h *handlers) ListTags(ctx context.Context, req api.ListTagsRequestObject) (api.ListTagsResponseObject, error) {
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.TagFilter{Page: page, PageSize: size}
	if prm.Search != nil {
		f.Search = *prm.Search
	}
	f.Sort = sortKeys(prm.Sort)
	rows, total, err := store.ListTags(ctx, h.s.deps.DB.DB, f)
	if err != nil {
		return nil, err
	}
	out := api.TagPage{Items: make([]api.Tag, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, tagOut(&rows[i]))
	}
	return api.ListTags200JSONResponse{Body: out}, nil
}

func (h *handlers) CreateTag(ctx context.Context, req api.CreateTagRequestObject) (api.CreateTagResponseObject, error) {
	b := req.Body
	t := &store.Tag{Name: b.Name, Color: defaultColor,
		Description: nullableString(b.Description.IsSpecified(), b.Description.IsNull(), b.Description.MustGet)}
	if b.Color != nil {
		t.Color = *b.Color
	}
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.SaveTag(ctx, tx, t); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "tag.create", ResourceType: "tag", ResourceID: t.ID,
			After: map[string]any{"name": t.Name, "color": t.Color}})
	})
	if err != nil {
		return nil, tagConflict(ctx, h.s.deps.DB.DB, t.Name, err)
	}
	return api.CreateTag201JSONResponse{Body: tagOut(t), Headers: api.CreateTag201ResponseHeaders{Location: metadataLocation("tags", t.ID)}}, nil
}

func (h *handlers) GetTag(ctx context.Context, req api.GetTagRequestObject) (api.GetTagResponseObject, error) {
	t, err := store.GetTag(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, tagErr(err)
	}
	return api.GetTag200JSONResponse{Body: tagOut(t)}, nil
}

func (h *handlers) UpdateTag(ctx context.Context, req api.UpdateTagRequestObject) (api.UpdateTagResponseObject, error) {
	b := req.Body
	var t *store.Tag
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, err = store.GetTagForUpdate(ctx, tx, req.Id); err != nil {
			return tagErr(err)
		}
		var fields []string
		before, after := map[string]any{}, map[string]any{}
		if b.Name != nil && *b.Name != t.Name {
			before["name"], after["name"] = t.Name, *b.Name
			t.Name, fields = *b.Name, append(fields, "name")
		}
		if b.Color != nil && *b.Color != t.Color {
			before["color"], after["color"] = t.Color, *b.Color
			t.Color, fields = *b.Color, append(fields, "color")
		}
		if b.Description.IsSpecified() {
			if d := nullableString(true, b.Description.IsNull(), b.Description.MustGet); !equalPtr(d, t.Description) {
				before["description"], after["description"] = t.Description, d
				t.Description, fields = d, append(fields, "description")
			}
		}
		if len(fields) == 0 {
			return nil
		}
		t.UpdatedAt = store.Now()
		if err := store.SaveTag(ctx, tx, t); err != nil {
			return tagErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "tag.update", ResourceType: "tag", ResourceID: t.ID, Fields: fields, Before: before, After: after})
	})
	if err != nil {
		name := ""
		if b.Name != nil {
			name = *b.Name
		}
		return nil, tagConflict(ctx, h.s.deps.DB.DB, name, err)
	}
	return api.UpdateTag200JSONResponse{Body: tagOut(t)}, nil
}

func (h *handlers) DeleteTag(ctx context.Context, req api.DeleteTagRequestObject) (api.DeleteTagResponseObject, error) {
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		t, err := store.GetTagForUpdate(ctx, tx, req.Id)
		if err != nil {
			return tagErr(err)
		}
		if err := store.DeleteTag(ctx, tx, t.ID); err != nil {
			return tagErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "tag.delete", ResourceType: "tag", ResourceID: t.ID,
			Before: map[string]any{"name": t.Name, "usage_count": t.UsageCount}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteTag204Response{}, nil
}

// checkTagIDs answers 422 for ids that name no tag, pointing at each of them in tag_ids.
func checkTagIDs(ctx context.Context, db *gorm.DB, ids []int64) error {
	missing, err := store.MissingTags(ctx, db, ids)
	if err != nil || len(missing) == 0 {
		return err
	}
	var errs []FieldError
	for i, id := range ids {
		if slices.Contains(missing, id) {
			errs = append(errs, FieldError{Pointer: "/tag_ids/" + strconv.Itoa(i), Detail: fmt.Sprintf("names no tag (%d)", id), Code: "unprocessable"})
		}
	}
	return unprocessable("unprocessable", fmt.Sprintf("%d tag id(s) name no tag.", len(errs)), errs...)
}

// ---- categories

func categoryOut(c *store.Category, usage int) api.Category {
	return api.Category{Id: c.ID, Name: c.Name, Slug: c.Slug, EntityType: api.CategoryEntityType(c.EntityType),
		Icon: NullableFrom(c.Icon), Color: c.Color, Description: NullableFrom(c.Description), ParentId: NullableFrom(c.ParentID),
		Order: c.Order, IsSystem: c.IsSystem, UsageCount: usage,
		CreatedAt: apitime.From(c.CreatedAt), UpdatedAt: apitime.From(c.UpdatedAt)}
}

func (s *Server) categoryFull(ctx context.Context, c *store.Category) (api.Category, error) {
	usage, err := store.CategoryUsage(ctx, s.deps.DB.DB, []int64{c.ID})
	if err != nil {
		return api.Category{}, err
	}
	return categoryOut(c, usage[c.ID]), nil
}

// systemCategory is 409 system-resource: seeded categories are immutable (PRODUCT §4.3).
func systemCategory(verb string) *Problem {
	return conflict("system-resource", "Built-in categories cannot be "+verb+".")
}

// categoryConflict turns a duplicate name or slug into 409 already-exists; it runs after the
// transaction.
func categoryConflict(ctx context.Context, db *gorm.DB, entityType, name, slug string, exceptID int64, err error) error {
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	p := conflict("already-exists", "A category of this entity type already has this name or slug.")
	if c, err := store.FindCategoryClash(ctx, db, entityType, name, slug, exceptID); err == nil {
		p.ExistingID = &c.ID
	}
	return p
}

func parentProblem(detail string) *Problem {
	return unprocessable("unprocessable", "The parent category is not allowed: "+detail+".",
		FieldError{Pointer: "/parent_id", Detail: detail, Code: "unprocessable"})
}

// checkParent applies the nesting rules to category id (0 when new) under parentID: the parent
// exists with the same entity type, is not the category or one of its descendants, and the tree
// stays at most maxCategoryDepth levels deep.
func checkParent(ctx context.Context, tx *gorm.DB, id int64, entityType string, parentID int64) error {
	parent, err := store.GetCategory(ctx, tx, parentID)
	if errors.Is(err, store.ErrNotFound) {
		return parentProblem("names no category")
	}
	if err != nil {
		return err
	}
	if parent.EntityType != entityType {
		return parentProblem("has another entity_type (" + parent.EntityType + ")")
	}
	height := 1
	if id != 0 {
		cycle, err := store.IsCategoryAncestor(ctx, tx, id, parentID)
		if err != nil {
			return err
		}
		if cycle {
			return parentProblem("is the category itself or one of its descendants")
		}
		if height, err = store.CategoryHeight(ctx, tx, id); err != nil {
			return err
		}
	}
	depth, err := store.CategoryDepth(ctx, tx, parentID)
	if err != nil {
		return err
	}
	if depth+height > maxCategoryDepth {
		return parentProblem(fmt.Sprintf("the tree would be %d levels deep; at most %d are allowed", depth+height, maxCategoryDepth))
	}
	return nil
}

// checkCategory is the rule for category_id on flows and templates: it names a category of the
// entity type (422 otherwise).
func checkCategory(ctx context.Context, db *gorm.DB, id *int64, entityType string) error {
	if id == nil {
		return nil
	}
	c, err := store.GetCategory(ctx, db, *id)
	if errors.Is(err, store.ErrNotFound) {
		return unprocessable("unprocessable", "category_id names no category.",
			FieldError{Pointer: "/category_id", Detail: "names no category", Code: "unprocessable"})
	}
	if err != nil {
		return err
	}
	if c.EntityType != entityType {
		return unprocessable("unprocessable", "category_id names a category for "+c.EntityType+", not "+entityType+".",
			FieldError{Pointer: "/category_id", Detail: "is a category with entity_type " + c.EntityType + ", not " + entityType, Code: "unprocessable"})
	}
	return nil
}

func (h *handlers) ListCategories(ctx context.Context, req api.ListCategoriesRequestObject) (api.ListCategoriesResponseObject, error) {
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.CategoryFilter{Page: page, PageSize: size}
	if prm.EntityType != nil {
		f.EntityType = string(*prm.EntityType)
	}
	if prm.ParentId != nil {
		if *prm.ParentId == "none" {
			f.RootsOnly = true
		} else {
			id, _ := strconv.ParseInt(*prm.ParentId, 10, 64) // the contract's pattern guarantees digits
			f.ParentID = &id
		}
	}
	f.Sort = sortKeys(prm.Sort)
	db := h.s.deps.DB.DB
	rows, total, err := store.ListCategories(ctx, db, f)
	if err != nil {
		return nil, err
	}
	ids := rowIDs(rows, func(r *store.Category) int64 { return r.ID })
	usage, err := store.CategoryUsage(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	out := api.CategoryPage{Items: make([]api.Category, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, categoryOut(&rows[i], usage[rows[i].ID]))
	}
	return api.ListCategories200JSONResponse{Body: out}, nil
}

func (h *handlers) CreateCategory(ctx context.Context, req api.CreateCategoryRequestObject) (api.CreateCategoryResponseObject, error) {
	b := req.Body
	c := &store.Category{Name: b.Name, Slug: b.Slug, EntityType: string(b.EntityType), Color: defaultColor,
		Icon:        nullableString(b.Icon.IsSpecified(), b.Icon.IsNull(), b.Icon.MustGet),
		Description: nullableString(b.Description.IsSpecified(), b.Description.IsNull(), b.Description.MustGet)}
	if b.Color != nil {
		c.Color = *b.Color
	}
	if b.Order != nil {
		c.Order = *b.Order
	}
	if b.ParentId.IsSpecified() && !b.ParentId.IsNull() {
		pid := b.ParentId.MustGet()
		c.ParentID = &pid
	}
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if c.ParentID != nil {
			if err := checkParent(ctx, tx, 0, c.EntityType, *c.ParentID); err != nil {
				return err
			}
		}
		if err := store.SaveCategory(ctx, tx, c); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "category.create", ResourceType: "category", ResourceID: c.ID,
			After: map[string]any{"name": c.Name, "slug": c.Slug, "entity_type": c.EntityType, "parent_id": c.ParentID}})
	})
	if err != nil {
		return nil, categoryConflict(ctx, h.s.deps.DB.DB, c.EntityType, c.Name, c.Slug, 0, err)
	}
	return api.CreateCategory201JSONResponse{Body: categoryOut(c, 0),
		Headers: api.CreateCategory201ResponseHeaders{Location: metadataLocation("categories", c.ID)}}, nil
}

func (h *handlers) GetCategory(ctx context.Context, req api.GetCategoryRequestObject) (api.GetCategoryResponseObject, error) {
	c, err := store.GetCategory(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, categoryErr(err)
	}
	out, err := h.s.categoryFull(ctx, c)
	if err != nil {
		return nil, err
	}
	return api.GetCategory200JSONResponse{Body: out}, nil
}

func (h *handlers) UpdateCategory(ctx context.Context, req api.UpdateCategoryRequestObject) (api.UpdateCategoryResponseObject, error) {
	b := req.Body
	var c *store.Category
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if c, err = store.GetCategoryForUpdate(ctx, tx, req.Id); err != nil {
			return categoryErr(err)
		}
		if c.IsSystem {
			return systemCategory("changed")
		}
		var fields []string
		before, after := map[string]any{}, map[string]any{}
		set := func(name string, was, now any) {
			fields = append(fields, name)
			before[name], after[name] = was, now
		}
		if b.Name != nil && *b.Name != c.Name {
			set("name", c.Name, *b.Name)
			c.Name = *b.Name
		}
		if b.Slug != nil && *b.Slug != c.Slug {
			set("slug", c.Slug, *b.Slug)
			c.Slug = *b.Slug
		}
		if b.Color != nil && *b.Color != c.Color {
			set("color", c.Color, *b.Color)
			c.Color = *b.Color
		}
		if b.Order != nil && *b.Order != c.Order {
			set("order", c.Order, *b.Order)
			c.Order = *b.Order
		}
		if b.Icon.IsSpecified() {
			if v := nullableString(true, b.Icon.IsNull(), b.Icon.MustGet); !equalPtr(v, c.Icon) {
				set("icon", c.Icon, v)
				c.Icon = v
			}
		}
		if b.Description.IsSpecified() {
			if v := nullableString(true, b.Description.IsNull(), b.Description.MustGet); !equalPtr(v, c.Description) {
				set("description", c.Description, v)
				c.Description = v
			}
		}
		if b.ParentId.IsSpecified() {
			var pid *int64
			if !b.ParentId.IsNull() {
				v := b.ParentId.MustGet()
				pid = &v
			}
			if !equalPtr(pid, c.ParentID) {
				if pid != nil {
					if err := checkParent(ctx, tx, c.ID, c.EntityType, *pid); err != nil {
						return err
					}
				}
				set("parent_id", c.ParentID, pid)
				c.ParentID = pid
			}
		}
		if len(fields) == 0 {
			return nil
		}
		c.UpdatedAt = store.Now()
		if err := store.SaveCategory(ctx, tx, c); err != nil {
			return categoryErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "category.update", ResourceType: "category", ResourceID: c.ID,
			Fields: fields, Before: before, After: after})
	})
	if err != nil {
		if c == nil {
			return nil, err
		}
		return nil, categoryConflict(ctx, h.s.deps.DB.DB, c.EntityType, c.Name, c.Slug, c.ID, err)
	}
	out, err := h.s.categoryFull(ctx, c)
	if err != nil {
		return nil, err
	}
	return api.UpdateCategory200JSONResponse{Body: out}, nil
}

func (h *handlers) DeleteCategory(ctx context.Context, req api.DeleteCategoryRequestObject) (api.DeleteCategoryResponseObject, error) {
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		c, err := store.GetCategoryForUpdate(ctx, tx, req.Id)
		if err != nil {
			return categoryErr(err)
		}
		if c.IsSystem {
			return systemCategory("deleted")
		}
		children, err := store.CategoryChildren(ctx, tx, c.ID)
		if err != nil {
			return err
		}
		flows, templates, err := store.CategoryUsers(ctx, tx, c.ID, 20)
		if err != nil {
			return err
		}
		if len(children)+len(flows)+len(templates) > 0 {
			p := conflict("in-use", "The category still has child categories, flows or templates; move them first.")
			for _, id := range children {
				p.References = append(p.References, Reference{Type: "category", ID: id})
			}
			for _, id := range flows {
				p.References = append(p.References, Reference{Type: "flow", ID: id})
			}
			for _, id := range templates {
				p.References = append(p.References, Reference{Type: "template", ID: id})
			}
			return p
		}
		if err := store.DeleteCategory(ctx, tx, c.ID); err != nil {
			return categoryErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "category.delete", ResourceType: "category", ResourceID: c.ID,
			Before: map[string]any{"name": c.Name, "slug": c.Slug, "entity_type": c.EntityType}})
	})
	if errors.Is(err, store.ErrForeignKey) {
		// A flow or template joined the category meanwhile.
		return nil, conflict("in-use", "The category is in use.")
	}
	if err != nil {
		return nil, err
	}
	return api.DeleteCategory204Response{}, nil
}

// ---- icons

func iconOut(i *store.IconRow) api.Icon {
	tags := []string(i.Tags)
	if tags == nil {
		tags = []string{}
	}
	return api.Icon{Id: i.ID, Name: i.Name, Library: i.Library, Category: i.Category, Tags: tags, IsFavorite: i.IsFavorite,
		UsageCount: i.UsageCount, CreatedAt: apitime.From(i.CreatedAt), UpdatedAt: apitime.From(i.UpdatedAt)}
}

func (h *handlers) ListIcons(ctx context.Context, req api.ListIconsRequestObject) (api.ListIconsResponseObject, error) {
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.IconFilter{Page: page, PageSize: size, FavoritesOnly: prm.FavoritesOnly != nil && *prm.FavoritesOnly}
	if prm.Search != nil {
		f.Search = *prm.Search
	}
	if prm.Category != nil {
		f.Category = *prm.Category
	}
	rows, total, err := store.ListIcons(ctx, h.s.deps.DB.DB, f)
	if err != nil {
		return nil, err
	}
	out := api.IconPage{Items: make([]api.Icon, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, iconOut(&rows[i]))
	}
	return api.ListIcons200JSONResponse{Body: out}, nil
}

func (h *handlers) CreateIcon(ctx context.Context, req api.CreateIconRequestObject) (api.CreateIconResponseObject, error) {
	b := req.Body
	i := &store.Icon{Name: b.Name, Library: defaultIconLibrary, Category: defaultIconGroup, Tags: store.StringList{}}
	if b.Library != nil {
		i.Library = *b.Library
	}
	if b.Category != nil {
		i.Category = *b.Category
	}
	if b.Tags != nil {
		i.Tags = store.StringList(*b.Tags)
	}
	if b.IsFavorite != nil {
		i.IsFavorite = *b.IsFavorite
	}
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.SaveIcon(ctx, tx, i); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "icon.create", ResourceType: "icon", ResourceID: i.ID,
			After: map[string]any{"name": i.Name, "category": i.Category}})
	})
	if errors.Is(err, store.ErrConflict) {
		p := conflict("already-exists", "An icon with this name already exists.")
		if cur, err := store.GetIconByName(ctx, h.s.deps.DB.DB, i.Name); err == nil {
			p.ExistingID = &cur.ID
		}
		return nil, p
	}
	if err != nil {
		return nil, err
	}
	row, err := store.GetIcon(ctx, h.s.deps.DB.DB, i.ID)
	if err != nil {
		return nil, err
	}
	return api.CreateIcon201JSONResponse{Body: iconOut(row), Headers: api.CreateIcon201ResponseHeaders{Location: metadataLocation("icons", i.ID)}}, nil
}

func (h *handlers) GetIcon(ctx context.Context, req api.GetIconRequestObject) (api.GetIconResponseObject, error) {
	i, err := store.GetIcon(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, iconErr(err)
	}
	return api.GetIcon200JSONResponse{Body: iconOut(i)}, nil
}

func (h *handlers) UpdateIcon(ctx context.Context, req api.UpdateIconRequestObject) (api.UpdateIconResponseObject, error) {
	b := req.Body
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var i store.Icon
		if err := tx.WithContext(ctx).Scopes(lockRow).Where("id = ?", req.Id).Take(&i).Error; err != nil {
			return iconErr(store.Classify(err))
		}
		var fields []string
		before, after := map[string]any{}, map[string]any{}
		if b.Category != nil && *b.Category != i.Category {
			before["category"], after["category"] = i.Category, *b.Category
			i.Category, fields = *b.Category, append(fields, "category")
		}
		if b.IsFavorite != nil && *b.IsFavorite != i.IsFavorite {
			before["is_favorite"], after["is_favorite"] = i.IsFavorite, *b.IsFavorite
			i.IsFavorite, fields = *b.IsFavorite, append(fields, "is_favorite")
		}
		if b.Tags != nil && !slices.Equal(*b.Tags, []string(i.Tags)) {
			i.Tags, fields = store.StringList(*b.Tags), append(fields, "tags")
		}
		if len(fields) == 0 {
			return nil
		}
		i.UpdatedAt = store.Now()
		if err := store.SaveIcon(ctx, tx, &i); err != nil {
			return iconErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "icon.update", ResourceType: "icon", ResourceID: i.ID, Fields: fields, Before: before, After: after})
	})
	if err != nil {
		return nil, err
	}
	row, err := store.GetIcon(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, iconErr(err)
	}
	return api.UpdateIcon200JSONResponse{Body: iconOut(row)}, nil
}

// lockRow locks the row read on PostgreSQL until the transaction ends.
func lockRow(q *gorm.DB) *gorm.DB { return store.ForUpdate(q) }

func (h *handlers) DeleteIcon(ctx context.Context, req api.DeleteIconRequestObject) (api.DeleteIconResponseObject, error) {
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var i store.Icon
		if err := tx.WithContext(ctx).Scopes(lockRow).Where("id = ?", req.Id).Take(&i).Error; err != nil {
			return iconErr(store.Classify(err))
		}
		if err := store.DeleteIcon(ctx, tx, i.ID); err != nil {
			return iconErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "icon.delete", ResourceType: "icon", ResourceID: i.ID, Before: map[string]any{"name": i.Name}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteIcon204Response{}, nil
}

func (h *handlers) GetMetadataStats(ctx context.Context, _ api.GetMetadataStatsRequestObject) (api.GetMetadataStatsResponseObject, error) {
	tags, cats, icons, err := store.MetadataCounts(ctx, h.s.deps.DB.DB)
	if err != nil {
		return nil, err
	}
	return api.GetMetadataStats200JSONResponse{Body: api.MetadataStats{Tags: int(tags), Categories: int(cats), Icons: int(icons)}}, nil
}

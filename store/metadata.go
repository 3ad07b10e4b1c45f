package store

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
)

// Metadata (PRODUCT §5.12): tags, categories and icons, organisation-wide. Tags link to flows and
// templates; tags.usage_count counts those links and is changed only in the transaction that changes
// them (SetFlowTags, SetTemplateTags, DropFlowTags, DropTemplateTags).

// Tag is a label for flows and templates.
type Tag struct {
	ID          int64     `gorm:"column:id;primaryKey"`
	Name        string    `gorm:"column:name;not null"`
	NameKey     string    `gorm:"column:name_key;not null"` // NameKey(name); unique
	Color       string    `gorm:"column:color;not null"`
	Description *string   `gorm:"column:description"`
	UsageCount  int       `gorm:"column:usage_count;not null"`
	SearchText  string    `gorm:"column:search_text;not null"` // SearchText(name)
	CreatedAt   time.Time `gorm:"column:created_at;not null"`
	UpdatedAt   time.Time `gorm:"column:updated_at;not null"`
}

func (Tag) TableName() string { return "tags" }

// Category groups flows, templates, bots or channels (EntityType). UsageCount is not a column: it is
// counted from the rows that use the category (CategoryUsage).
type Category struct {
	ID          int64     `gorm:"column:id;primaryKey"`
	Name        string    `gorm:"column:name;not null"`
	NameKey     string    `gorm:"column:name_key;not null"` // unique per entity_type
	Slug        string    `gorm:"column:slug;not null"`     // unique per entity_type
	EntityType  string    `gorm:"column:entity_type;not null"`
	Icon        *string   `gorm:"column:icon"`
	Color       string    `gorm:"column:color;not null"`
	Description *string   `gorm:"column:description"`
	ParentID    *int64    `gorm:"column:parent_id"`
	Order       int       `gorm:"column:sort_order;not null"`
	IsSystem    bool      `gorm:"column:is_system;not null"`
	CreatedAt   time.Time `gorm:"column:created_at;not null"`
	UpdatedAt   time.Time `gorm:"column:updated_at;not null"`
}

func (Category) TableName() string { return "categories" }

// Icon is an entry of the editor's icon set. Its usage (categories and templates naming it) is
// counted on read.
type Icon struct {
	ID         int64      `gorm:"column:id;primaryKey"`
	Name       string     `gorm:"column:name;not null"` // unique
	Library    string     `gorm:"column:library;not null"`
	Category   string     `gorm:"column:category;not null"`
	Tags       StringList `gorm:"column:tags;not null"`
	IsFavorite bool       `gorm:"column:is_favorite;not null"`
	SearchText string     `gorm:"column:search_text;not null"` // SearchText(name, tags...)
	CreatedAt  time.Time  `gorm:"column:created_at;not null"`
	UpdatedAt  time.Time  `gorm:"column:updated_at;not null"`
}

func (Icon) TableName() string { return "icons" }

// IconRow is an icon read with its usage: the categories and templates that name it.
type IconRow struct {
	Icon
	UsageCount int `gorm:"column:usage_count"`
}

// FlowTag and TemplateTag are the tag links.
type FlowTag struct {
	FlowID int64 `gorm:"column:flow_id;primaryKey;autoIncrement:false"`
	TagID  int64 `gorm:"column:tag_id;primaryKey;autoIncrement:false"`
}

func (FlowTag) TableName() string { return "flow_tags" }

type TemplateTag struct {
	TemplateID int64 `gorm:"column:template_id;primaryKey;autoIncrement:false"`
	TagID      int64 `gorm:"column:tag_id;primaryKey;autoIncrement:false"`
}

func (TemplateTag) TableName() string { return "template_tags" }

// NameKey is the case-insensitive identity of a name: what the unique indexes compare.
func NameKey(name string) string { return fold(name) }

// ---- tags

// TagFilter is a page request over tags.
type TagFilter struct {
	Search   string
	Sort     []string
	Page     int
	PageSize int
}

var tagSortColumns = map[string]string{"usage_count": "tags.usage_count", "name": "tags.name_key"}

// ListTags returns one page of tags, by default the most used first.
func ListTags(ctx context.Context, db *gorm.DB, f TagFilter) ([]Tag, int64, error) {
	q := db.WithContext(ctx).Model(&Tag{})
	if f.Search != "" {
		q = q.Where(`tags.search_text LIKE ? ESCAPE '\'`, LikeContains(f.Search))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	sort := f.Sort
	if len(sort) == 0 {
		sort = []string{"-usage_count", "name"}
	}
	var rows []Tag
	err := paginate(q.Order(orderBy(sort, tagSortColumns, "", "tags.id")), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// GetTag reads one tag.
func GetTag(ctx context.Context, db *gorm.DB, id int64) (*Tag, error) {
	var t Tag
	if err := db.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// GetTagForUpdate reads a tag in a transaction, locking it on PostgreSQL.
func GetTagForUpdate(ctx context.Context, tx *gorm.DB, id int64) (*Tag, error) {
	var t Tag
	if err := forUpdate(tx.WithContext(ctx)).Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// GetTagByName finds the tag whose name equals name case-insensitively.
func GetTagByName(ctx context.Context, db *gorm.DB, name string) (*Tag, error) {
	var t Tag
	if err := db.WithContext(ctx).Where("name_key = ?", NameKey(name)).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// SaveTag inserts a tag or writes its editable columns (usage_count is left alone).
func SaveTag(ctx context.Context, db *gorm.DB, t *Tag) error {
	t.NameKey, t.SearchText = NameKey(t.Name), SearchText(t.Name)
	if t.ID == 0 {
		return Classify(db.WithContext(ctx).Create(t).Error)
	}
	return updated(db.WithContext(ctx).Model(t).Select("name", "name_key", "color", "description", "search_text", "updated_at").Updates(t))
}

// DeleteTag removes a tag and, through the cascade, every link to it.
func DeleteTag(ctx context.Context, tx *gorm.DB, id int64) error {
	return updated(tx.WithContext(ctx).Delete(&Tag{}, id))
}

func updated(res *gorm.DB) error {
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// MissingTags returns the ids among ids that name no tag.
func MissingTags(ctx context.Context, db *gorm.DB, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var found []int64
	if err := db.WithContext(ctx).Model(&Tag{}).Where("id IN ?", ids).Pluck("id", &found).Error; err != nil {
		return nil, Classify(err)
	}
	var missing []int64
	for _, id := range ids {
		if !slices.Contains(found, id) {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// tagLinks describes one link table.
type tagLinks struct{ table, owner string }

var (
	flowTagLinks     = tagLinks{"flow_tags", "flow_id"}
	templateTagLinks = tagLinks{"template_tags", "template_id"}
)

func (l tagLinks) current(ctx context.Context, tx *gorm.DB, ownerID int64) ([]int64, error) {
	var ids []int64
	err := tx.WithContext(ctx).Table(l.table).Where(l.owner+" = ?", ownerID).Order("tag_id").Pluck("tag_id", &ids).Error
	return ids, Classify(err)
}

// set replaces the owner's tag set with ids and moves usage_count by the difference, in tx. It
// returns the previous set (sorted) and whether anything changed.
func (l tagLinks) set(ctx context.Context, tx *gorm.DB, ownerID int64, ids []int64) ([]int64, bool, error) {
	cur, err := l.current(ctx, tx, ownerID)
	if err != nil {
		return nil, false, err
	}
	var add, drop []int64
	for _, id := range ids {
		if !slices.Contains(cur, id) && !slices.Contains(add, id) {
			add = append(add, id)
		}
	}
	for _, id := range cur {
		if !slices.Contains(ids, id) {
			drop = append(drop, id)
		}
	}
	if len(add) == 0 && len(drop) == 0 {
		return cur, false, nil
	}
	q := tx.WithContext(ctx)
	if len(drop) > 0 {
		if err := q.Exec("DELETE FROM "+l.table+" WHERE "+l.owner+" = ? AND tag_id IN ?", ownerID, drop).Error; err != nil {
			return nil, false, Classify(err)
		}
		if err := q.Exec("UPDATE tags SET usage_count = usage_count - 1 WHERE id IN ?", drop).Error; err != nil {
			return nil, false, Classify(err)
		}
	}
	if len(add) > 0 {
		for _, id := range add {
			if err := q.Exec("INSERT INTO "+l.table+" ("+l.owner+", tag_id) VALUES (?, ?)", ownerID, id).Error; err != nil {
				return nil, false, Classify(err)
			}
		}
		if err := q.Exec("UPDATE tags SET usage_count = usage_count + 1 WHERE id IN ?", add).Error; err != nil {
			return nil, false, Classify(err)
		}
	}
	return cur, true, nil
}

// drop removes every link of the owner and lowers usage_count accordingly (before the owner's row is
// deleted, whose cascade would otherwise remove the links uncounted).
func (l tagLinks) drop(ctx context.Context, tx *gorm.DB, ownerID int64) error {
	_, _, err := l.set(ctx, tx, ownerID, nil)
	return err
}

// load returns the tags of each owner among ownerIDs, by name, in one query.
func (l tagLinks) load(ctx context.Context, db *gorm.DB, ownerIDs []int64) (map[int64][]Tag, error) {
	out := map[int64][]Tag{}
	if len(ownerIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		OwnerID int64 `gorm:"column:owner_id"`
		Tag
	}
	err := db.WithContext(ctx).Table(l.table+" AS l").Select("l."+l.owner+" AS owner_id, tags.*").
		Joins("JOIN tags ON tags.id = l.tag_id").Where("l."+l.owner+" IN ?", ownerIDs).
		Order("tags.name_key, tags.id").Scan(&rows).Error
	if err != nil {
		return nil, Classify(err)
	}
	for _, r := range rows {
		out[r.OwnerID] = append(out[r.OwnerID], r.Tag)
	}
	return out, nil
}

// SetFlowTags replaces a flow's tags in tx, keeping usage_count right; see tagLinks.set.
func SetFlowTags(ctx context.Context, tx *gorm.DB, flowID int64, ids []int64) ([]int64, bool, error) {
	return flowTagLinks.set(ctx, tx, flowID, ids)
}

// SetTemplateTags replaces a template's tags in tx, keeping usage_count right.
func SetTemplateTags(ctx context.Context, tx *gorm.DB, templateID int64, ids []int64) ([]int64, bool, error) {
	return templateTagLinks.set(ctx, tx, templateID, ids)
}

// DropFlowTags unlinks every tag of a flow about to be deleted, in its transaction.
func DropFlowTags(ctx context.Context, tx *gorm.DB, flowID int64) error {
	return flowTagLinks.drop(ctx, tx, flowID)
}

// DropTemplateTags unlinks every tag of a template about to be deleted, in its transaction.
func DropTemplateTags(ctx context.Context, tx *gorm.DB, templateID int64) error {
	return templateTagLinks.drop(ctx, tx, templateID)
}

// FlowTags loads the tags of a page of flows in one query.
func FlowTags(ctx context.Context, db *gorm.DB, flowIDs []int64) (map[int64][]Tag, error) {
	return flowTagLinks.load(ctx, db, flowIDs)
}

// TemplateTags loads the tags of a page of templates in one query.
func TemplateTags(ctx context.Context, db *gorm.DB, templateIDs []int64) (map[int64][]Tag, error) {
	return templateTagLinks.load(ctx, db, templateIDs)
}

// FlowTagIDs is the sorted tag set of a flow.
func FlowTagIDs(ctx context.Context, db *gorm.DB, flowID int64) ([]int64, error) {
	return flowTagLinks.current(ctx, db, flowID)
}

// TemplateTagIDs is the sorted tag set of a template.
func TemplateTagIDs(ctx context.Context, db *gorm.DB, templateID int64) ([]int64, error) {
	return templateTagLinks.current(ctx, db, templateID)
}

// ---- categories

// CategoryFilter is a page request over categories.
type CategoryFilter struct {
	EntityType string
	ParentID   *int64 // with RootsOnly false: children of this category
	RootsOnly  bool   // parent_id=none
	Sort       []string
	Page       int
	PageSize   int
}

var categorySortColumns = map[string]string{"order": "categories.sort_order", "name": "categories.name_key"}

// ListCategories returns one page of categories, by default by order then name.
func ListCategories(ctx context.Context, db *gorm.DB, f CategoryFilter) ([]Category, int64, error) {
	q := db.WithContext(ctx).Model(&Category{})
	if f.EntityType != "" {
		q = q.Where("categories.entity_type = ?", f.EntityType)
	}
	if f.RootsOnly {
		q = q.Where("categories.parent_id IS NULL")
	} else if f.ParentID != nil {
		q = q.Where("categories.parent_id = ?", *f.ParentID)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	sort := f.Sort
	if len(sort) == 0 {
		sort = []string{"order", "name"}
	}
	var rows []Category
	err := paginate(q.Order(orderBy(sort, categorySortColumns, "", "categories.id")), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// GetCategory reads one category.
func GetCategory(ctx context.Context, db *gorm.DB, id int64) (*Category, error) {
	var c Category
	if err := db.WithContext(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		return nil, Classify(err)
	}
	return &c, nil
}

// GetCategoryForUpdate reads a category in a transaction, locking it on PostgreSQL.
func GetCategoryForUpdate(ctx context.Context, tx *gorm.DB, id int64) (*Category, error) {
	var c Category
	if err := forUpdate(tx.WithContext(ctx)).Where("id = ?", id).Take(&c).Error; err != nil {
		return nil, Classify(err)
	}
	return &c, nil
}

// FindCategoryClash returns the category of entityType with the same slug or (case-insensitively)
// name as the given ones, other than exceptID.
func FindCategoryClash(ctx context.Context, db *gorm.DB, entityType, name, slug string, exceptID int64) (*Category, error) {
	var c Category
	err := db.WithContext(ctx).Where("entity_type = ? AND (name_key = ? OR slug = ?) AND id <> ?", entityType, NameKey(name), slug, exceptID).
		Order("id").Take(&c).Error
	if err != nil {
		return nil, Classify(err)
	}
	return &c, nil
}

// GetCategoryBySlug reads the category of entityType with that slug.
func GetCategoryBySlug(ctx context.Context, db *gorm.DB, entityType, slug string) (*Category, error) {
	var c Category
	if err := db.WithContext(ctx).Where("entity_type = ? AND slug = ?", entityType, slug).Take(&c).Error; err != nil {
		return nil, Classify(err)
	}
	return &c, nil
}

// SaveCategory inserts a category or writes its editable columns.
func SaveCategory(ctx context.Context, db *gorm.DB, c *Category) error {
	c.NameKey = NameKey(c.Name)
	if c.ID == 0 {
		return Classify(db.WithContext(ctx).Create(c).Error)
	}
	return updated(db.WithContext(ctx).Model(c).Select("name", "name_key", "slug", "icon", "color", "description", "parent_id",
		"sort_order", "is_system", "updated_at").Updates(c))
}

// DeleteCategory removes a category.
func DeleteCategory(ctx context.Context, tx *gorm.DB, id int64) error {
	return updated(tx.WithContext(ctx).Delete(&Category{}, id))
}

// CategoryChildren lists the ids of a category's direct children.
func CategoryChildren(ctx context.Context, db *gorm.DB, id int64) ([]int64, error) {
	var ids []int64
	err := db.WithContext(ctx).Model(&Category{}).Where("parent_id = ?", id).Order("id").Pluck("id", &ids).Error
	return ids, Classify(err)
}

// CategoryUsers lists up to limit flows and templates that use a category, as (type, id) pairs.
func CategoryUsers(ctx context.Context, db *gorm.DB, id int64, limit int) (flows, templates []int64, err error) {
	q := db.WithContext(ctx)
	if err = q.Model(&Flow{}).Where("category_id = ?", id).Order("id").Limit(limit).Pluck("id", &flows).Error; err != nil {
		return nil, nil, Classify(err)
	}
	err = q.Model(&Template{}).Where("category_id = ?", id).Order("id").Limit(limit).Pluck("id", &templates).Error
	return flows, templates, Classify(err)
}

// CategoryUsage counts, per category id, the flows and templates that use it, in two grouped queries.
func CategoryUsage(ctx context.Context, db *gorm.DB, ids []int64) (map[int64]int, error) {
	out := map[int64]int{}
	if len(ids) == 0 {
		return out, nil
	}
	for _, table := range []string{"flows", "templates"} {
		var rows []struct {
			CategoryID int64
			N          int
		}
		err := db.WithContext(ctx).Table(table).Select("category_id, count(*) AS n").Where("category_id IN ?", ids).
			Group("category_id").Scan(&rows).Error
		if err != nil {
			return nil, Classify(err)
		}
		for _, r := range rows {
			out[r.CategoryID] += r.N
		}
	}
	return out, nil
}

// CategoryDepth is the number of levels from the root down to id (a root is 1).
func CategoryDepth(ctx context.Context, db *gorm.DB, id int64) (int, error) {
	depth := 0
	for cur := &id; cur != nil; depth++ {
		if depth > 16 {
			break // a cycle would be a bug; stop rather than loop
		}
		c, err := GetCategory(ctx, db, *cur)
		if err != nil {
			return 0, err
		}
		cur = c.ParentID
	}
	return depth, nil
}

// CategoryHeight is the number of levels of the subtree under id, id included (a leaf is 1).
func CategoryHeight(ctx context.Context, db *gorm.DB, id int64) (int, error) {
	level := []int64{id}
	height := 0
	for len(level) > 0 && height <= 16 {
		height++
		var next []int64
		if err := db.WithContext(ctx).Model(&Category{}).Where("parent_id IN ?", level).Pluck("id", &next).Error; err != nil {
			return 0, Classify(err)
		}
		level = next
	}
	return height, nil
}

// IsCategoryAncestor reports whether ancestor is id itself or one of its ancestors.
func IsCategoryAncestor(ctx context.Context, db *gorm.DB, ancestor, id int64) (bool, error) {
	for cur, n := &id, 0; cur != nil && n <= 16; n++ {
		if *cur == ancestor {
			return true, nil
		}
		c, err := GetCategory(ctx, db, *cur)
		if err != nil {
			return false, err
		}
		cur = c.ParentID
	}
	return false, nil
}

// ---- icons

// IconFilter is a page request over icons.
type IconFilter struct {
	Category      string
	Search        string
	FavoritesOnly bool
	Page          int
	PageSize      int
}

// iconUsage counts the categories and templates that name the icon.
const iconUsage = "((SELECT count(*) FROM categories c WHERE c.icon = icons.name) + " +
	"(SELECT count(*) FROM templates t WHERE t.icon = icons.name)) AS usage_count"

// ListIcons returns one page of icons: favourites first, then the most used, then by name.
func ListIcons(ctx context.Context, db *gorm.DB, f IconFilter) ([]IconRow, int64, error) {
	q := db.WithContext(ctx).Model(&Icon{})
	if f.Category != "" {
		q = q.Where("icons.category = ?", f.Category)
	}
	if f.FavoritesOnly {
		q = q.Where("icons.is_favorite = ?", true)
	}
	if f.Search != "" {
		q = q.Where(`icons.search_text LIKE ? ESCAPE '\'`, LikeContains(f.Search))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	var rows []IconRow
	err := paginate(q.Select("icons.*, "+iconUsage).Order("icons.is_favorite DESC, usage_count DESC, icons.name ASC, icons.id ASC"),
		f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// GetIcon reads one icon with its usage.
func GetIcon(ctx context.Context, db *gorm.DB, id int64) (*IconRow, error) {
	var i IconRow
	if err := db.WithContext(ctx).Model(&Icon{}).Select("icons.*, "+iconUsage).Where("icons.id = ?", id).Take(&i).Error; err != nil {
		return nil, Classify(err)
	}
	return &i, nil
}

// GetIconByName reads the icon with that name.
func GetIconByName(ctx context.Context, db *gorm.DB, name string) (*Icon, error) {
	var i Icon
	if err := db.WithContext(ctx).Where("name = ?", name).Take(&i).Error; err != nil {
		return nil, Classify(err)
	}
	return &i, nil
}

// SaveIcon inserts an icon or writes its editable columns.
func SaveIcon(ctx context.Context, db *gorm.DB, i *Icon) error {
	if i.Tags == nil {
		i.Tags = StringList{}
	}
	i.SearchText = SearchText(append([]string{i.Name}, i.Tags...)...)
	if i.ID == 0 {
		return Classify(db.WithContext(ctx).Create(i).Error)
	}
	return updated(db.WithContext(ctx).Model(i).Select("library", "category", "tags", "is_favorite", "search_text", "updated_at").Updates(i))
}

// DeleteIcon removes an icon.
func DeleteIcon(ctx context.Context, tx *gorm.DB, id int64) error {
	return updated(tx.WithContext(ctx).Delete(&Icon{}, id))
}

// MetadataCounts counts tags, categories and icons.
func MetadataCounts(ctx context.Context, db *gorm.DB) (tags, categories, icons int64, err error) {
	q := db.WithContext(ctx)
	if err = q.Model(&Tag{}).Count(&tags).Error; err != nil {
		return 0, 0, 0, Classify(err)
	}
	if err = q.Model(&Category{}).Count(&categories).Error; err != nil {
		return 0, 0, 0, Classify(err)
	}
	err = q.Model(&Icon{}).Count(&icons).Error
	return tags, categories, icons, Classify(err)
}

// ForUpdate locks the rows a query reads on PostgreSQL until the transaction ends (SQLite has one
// writer already).
func ForUpdate(q *gorm.DB) *gorm.DB { return forUpdate(q) }

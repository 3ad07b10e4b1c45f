package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Template is a reusable graph (PRODUCT §5.5). Seeded templates are IsSystem with a unique SystemKey
// and no creator; they are immutable through the API. Placeholders are RFC 6901 pointers into Data
// at the values a user must fill after creating a flow from it.
type Template struct {
	ID           int64      `gorm:"column:id;primaryKey"`
	Name         string     `gorm:"column:name;not null"`
	Description  *string    `gorm:"column:description"`
	Icon         *string    `gorm:"column:icon"`
	Data         JSON       `gorm:"column:data;not null"`
	Placeholders StringList `gorm:"column:placeholders;not null"` // nil is written as []
	SourceFlowID *int64     `gorm:"column:source_flow_id"`        // null once that flow is deleted (SET NULL)
	CategoryID   *int64     `gorm:"column:category_id"`           // a category with entity_type template
	IsSystem     bool       `gorm:"column:is_system;not null"`
	SystemKey    *string    `gorm:"column:system_key"` // unique
	UsageCount   int        `gorm:"column:usage_count;not null"`
	CreatedBy    *int64     `gorm:"column:created_by"`           // null for seeded templates and once the user is deleted
	SearchText   string     `gorm:"column:search_text;not null"` // SearchText(name, description)
	CreatedAt    time.Time  `gorm:"column:created_at;not null"`
	UpdatedAt    time.Time  `gorm:"column:updated_at;not null"`
}

func (Template) TableName() string { return "templates" }

// TemplateFilter is a page request over templates.
type TemplateFilter struct {
	IsSystem   *bool
	CategoryID int64
	TagID      int64
	Search     string
	Sort       []string // signed keys from the contract's allow-list, e.g. "-usage_count"
	Page       int
	PageSize   int
}

var templateSortColumns = map[string]string{
	"created_at": "templates.created_at", "name": "templates.name", "usage_count": "templates.usage_count",
}

// templateSummaryColumns leave out the graph and the placeholders.
var templateSummaryColumns = []string{
	"id", "name", "description", "icon", "source_flow_id", "category_id", "is_system", "system_key", "usage_count",
	"created_by", "created_at", "updated_at",
}

// ListTemplates returns one page of template summaries (Data and Placeholders are nil) and the total
// over every filter. Templates are organisation-wide (PRODUCT §4.3): there is no row scope.
func ListTemplates(ctx context.Context, db *gorm.DB, f TemplateFilter) ([]Template, int64, error) {
	q := db.WithContext(ctx).Model(&Template{})
	if f.IsSystem != nil {
		q = q.Where("templates.is_system = ?", *f.IsSystem)
	}
	if f.CategoryID > 0 {
		q = q.Where("templates.category_id = ?", f.CategoryID)
	}
	if f.TagID > 0 {
		q = q.Where("templates.id IN (SELECT template_id FROM template_tags WHERE tag_id = ?)", f.TagID)
	}
	if f.Search != "" {
		q = q.Where(`templates.search_text LIKE ? ESCAPE '\'`, LikeContains(f.Search))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	order := orderBy(f.Sort, templateSortColumns, "-created_at", "templates.id")
	var rows []Template
	err := paginate(q.Select(templateSummaryColumns).Order(order), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// GetTemplate reads one template with its graph.
func GetTemplate(ctx context.Context, db *gorm.DB, id int64) (*Template, error) {
	var t Template
	if err := db.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// GetTemplateForUpdate reads one template inside a transaction and, on PostgreSQL, locks its row
// until the transaction ends, so a partial update never overwrites a concurrent one with the values
// it read. Call it first in the transaction.
func GetTemplateForUpdate(ctx context.Context, tx *gorm.DB, id int64) (*Template, error) {
	var t Template
	if err := forUpdate(tx.WithContext(ctx)).Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// GetTemplateBySystemKey reads the seeded template with that key.
func GetTemplateBySystemKey(ctx context.Context, db *gorm.DB, key string) (*Template, error) {
	var t Template
	if err := db.WithContext(ctx).Where("system_key = ?", key).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// SaveTemplate inserts a new template or writes the editable columns of an existing one, and
// refreshes its search text. An existing template deleted meanwhile is ErrNotFound, never
// re-inserted. usage_count is left alone: only IncrementTemplateUsage changes it.
func SaveTemplate(ctx context.Context, db *gorm.DB, t *Template) error {
	desc := ""
	if t.Description != nil {
		desc = *t.Description
	}
	t.SearchText = SearchText(t.Name, desc)
	if t.Data == nil {
		t.Data = DefaultFlowData()
	}
	if t.ID == 0 {
		return Classify(db.WithContext(ctx).Create(t).Error)
	}
	res := db.WithContext(ctx).Model(t).
		Select("name", "description", "icon", "category_id", "data", "placeholders", "is_system", "system_key", "search_text", "updated_at").
		Updates(t)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// IncrementTemplateUsage counts one more flow created from the template, in the caller's
// transaction. It is a counter, not an edit: updated_at does not move.
func IncrementTemplateUsage(ctx context.Context, tx *gorm.DB, id int64) error {
	res := tx.WithContext(ctx).Exec("UPDATE templates SET usage_count = usage_count + 1 WHERE id = ?", id)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteTemplate removes a template; flows created from it keep running with template_id null
// (ON DELETE SET NULL).
func DeleteTemplate(ctx context.Context, tx *gorm.DB, id int64) error {
	res := tx.WithContext(ctx).Delete(&Template{}, id)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Viewer is who a scoped query answers for. Admin is rbac.BypassesOwnership of the viewer's role.
type Viewer struct {
	UserID int64
	Admin  bool
}

// ScopeVisible limits a query on an owner-scoped table (owner_id, visibility, team_id) to the rows
// the viewer may see — rbac.CanSee as SQL: their own, `public` ones, and `team` ones of their teams;
// admins see every row. Lists, counts and single reads share it, so nothing is filtered after
// fetching and a row the caller may not see is simply not found (404).
func ScopeVisible(table string, v Viewer) func(*gorm.DB) *gorm.DB {
	return func(q *gorm.DB) *gorm.DB {
		if v.Admin {
			return q
		}
		return q.Where(table+`.owner_id = ? OR `+table+`.visibility = 'public' OR (`+table+`.visibility = 'team' AND `+
			table+`.team_id IN (SELECT team_id FROM team_members WHERE user_id = ?))`, v.UserID, v.UserID)
	}
}

func scopeFlows(v Viewer) func(*gorm.DB) *gorm.DB { return ScopeVisible("flows", v) }

// FlowFilter is a page request over flows.
type FlowFilter struct {
	Statuses   []string
	Visibility string
	OwnerID    int64
	TemplateID int64
	CategoryID int64
	TagID      int64
	Search     string
	Sort       []string // signed keys from the contract's allow-list, e.g. "-created_at"
	Page       int
	PageSize   int
}

// FlowStats counts the flows a viewer can see, by status.
type FlowStats struct {
	Total, Published, Draft, Archived int64
}

var flowSortColumns = map[string]string{
	"created_at": "flows.created_at", "updated_at": "flows.updated_at", "name": "flows.name", "status": "flows.status",
}

// summaryColumns leaves out the heavy data column.
var summaryColumns = []string{
	"id", "name", "description", "status", "visibility", "team_id", "owner_id", "revision", "version",
	"published_version", "content_hash", "published_hash", "node_count", "archived_at", "template_id", "category_id", "created_at", "updated_at",
}

// ListFlows returns one page of flow summaries (Data is nil) and the total over every filter.
func ListFlows(ctx context.Context, db *gorm.DB, v Viewer, f FlowFilter) ([]Flow, int64, error) {
	q := db.WithContext(ctx).Model(&Flow{}).Scopes(scopeFlows(v))
	if len(f.Statuses) > 0 {
		q = q.Where("flows.status IN ?", f.Statuses)
	} else {
		q = q.Where("flows.status <> ?", "archived")
	}
	if f.Visibility != "" {
		q = q.Where("flows.visibility = ?", f.Visibility)
	}
	if f.OwnerID > 0 {
		q = q.Where("flows.owner_id = ?", f.OwnerID)
	}
	if f.TemplateID > 0 {
		q = q.Where("flows.template_id = ?", f.TemplateID)
	}
	if f.CategoryID > 0 {
		q = q.Where("flows.category_id = ?", f.CategoryID)
	}
	if f.TagID > 0 {
		q = q.Where("flows.id IN (SELECT flow_id FROM flow_tags WHERE tag_id = ?)", f.TagID)
	}
	if f.Search != "" {
		q = q.Where(`flows.search_text LIKE ? ESCAPE '\'`, LikeContains(f.Search))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	order := orderBy(f.Sort, flowSortColumns, "-created_at", "flows.id")
	var rows []Flow
	err := paginate(q.Select(summaryColumns).Order(order), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// CountFlowsByStatus counts every flow the viewer can see, ignoring other filters.
func CountFlowsByStatus(ctx context.Context, db *gorm.DB, v Viewer) (FlowStats, error) {
	var rows []struct {
		Status string
		N      int64
	}
	err := db.WithContext(ctx).Model(&Flow{}).Scopes(scopeFlows(v)).Select("flows.status AS status, count(*) AS n").Group("flows.status").Scan(&rows).Error
	var s FlowStats
	for _, r := range rows {
		s.Total += r.N
		switch r.Status {
		case "published":
			s.Published = r.N
		case "draft":
			s.Draft = r.N
		case "archived":
			s.Archived = r.N
		}
	}
	return s, Classify(err)
}

// GetFlow reads one flow the viewer can see; anything else is ErrNotFound, so existence never leaks.
func GetFlow(ctx context.Context, db *gorm.DB, v Viewer, id int64) (*Flow, error) {
	var f Flow
	err := db.WithContext(ctx).Scopes(scopeFlows(v)).Where("flows.id = ?", id).Take(&f).Error
	if err != nil {
		return nil, Classify(err)
	}
	return &f, nil
}

// IsTeamMember reports whether the user belongs to the team.
func IsTeamMember(ctx context.Context, db *gorm.DB, teamID, userID int64) (bool, error) {
	var n int64
	err := db.WithContext(ctx).Model(&TeamMember{}).Where("team_id = ? AND user_id = ?", teamID, userID).Count(&n).Error
	return n > 0, Classify(err)
}

// TeamExists reports whether a team row exists.
func TeamExists(ctx context.Context, db *gorm.DB, teamID int64) (bool, error) {
	var n int64
	err := db.WithContext(ctx).Model(&Team{}).Where("id = ?", teamID).Count(&n).Error
	return n > 0, Classify(err)
}

// ListFlowVersions returns one page of a flow's versions, newest first, without their data.
func ListFlowVersions(ctx context.Context, db *gorm.DB, flowID int64, page, size int) ([]FlowVersion, int64, error) {
	q := db.WithContext(ctx).Model(&FlowVersion{}).Where("flow_id = ?", flowID)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	var rows []FlowVersion
	err := paginate(q.Select("id", "flow_id", "version", "name", "description", "content_hash", "created_by", "created_at").
		Order("version DESC"), page, size).Find(&rows).Error
	return rows, total, Classify(err)
}

// GetFlowVersion reads one snapshot with its data.
func GetFlowVersion(ctx context.Context, db *gorm.DB, flowID int64, version int) (*FlowVersion, error) {
	var fv FlowVersion
	err := db.WithContext(ctx).Where("flow_id = ? AND version = ?", flowID, version).Take(&fv).Error
	if err != nil {
		return nil, Classify(err)
	}
	return &fv, nil
}

// SaveFlow writes the whole working copy and refreshes its search text.
func SaveFlow(ctx context.Context, db *gorm.DB, f *Flow) error {
	desc := ""
	if f.Description != nil {
		desc = *f.Description
	}
	f.SearchText = SearchText(f.Name, desc)
	if f.ID == 0 {
		return Classify(db.WithContext(ctx).Create(f).Error)
	}
	return Classify(db.WithContext(ctx).Save(f).Error)
}

// GetFlowForUpdate re-reads a flow inside a transaction, locking the row on PostgreSQL so concurrent
// writers serialise (SQLite has one writer already).
func GetFlowForUpdate(ctx context.Context, tx *gorm.DB, dialect string, id int64) (*Flow, error) {
	q := tx.WithContext(ctx)
	if dialect == "postgres" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var f Flow
	if err := q.Where("id = ?", id).Take(&f).Error; err != nil {
		return nil, Classify(err)
	}
	return &f, nil
}

// CreateFlowVersion inserts a snapshot.
func CreateFlowVersion(ctx context.Context, tx *gorm.DB, fv *FlowVersion) error {
	return Classify(tx.WithContext(ctx).Create(fv).Error)
}

// DeleteFlow removes a flow; versions go with it (ON DELETE CASCADE).
func DeleteFlow(ctx context.Context, tx *gorm.DB, id int64) error {
	res := tx.WithContext(ctx).Delete(&Flow{}, id)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

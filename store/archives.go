package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Archive is one archive record (PRODUCT §5.13): the full entity as JSON at the time it was archived,
// with its status before the archive. OwnerID, Visibility and TeamID copy the snapshot's ownership so
// that ScopeVisible applies to archives as to the entity. EntityID has no FK: the entity may be
// deleted meanwhile (a restore then recreates it, and EntityID follows the new row).
type Archive struct {
	ID             int64      `gorm:"column:id;primaryKey"`
	EntityType     string     `gorm:"column:entity_type;not null"`
	EntityID       int64      `gorm:"column:entity_id;not null"`
	EntityName     string     `gorm:"column:entity_name;not null"`
	Snapshot       JSON       `gorm:"column:snapshot;not null"`
	PreviousStatus string     `gorm:"column:previous_status;not null"`
	Reason         *string    `gorm:"column:reason"`
	OwnerID        *int64     `gorm:"column:owner_id"` // null once that user is deleted
	Visibility     string     `gorm:"column:visibility;not null;default:private"`
	TeamID         *int64     `gorm:"column:team_id"`
	ArchivedBy     *int64     `gorm:"column:archived_by"`
	ArchivedAt     time.Time  `gorm:"column:archived_at;not null"`
	IsRestored     bool       `gorm:"column:is_restored;not null"`
	RestoredAt     *time.Time `gorm:"column:restored_at"`
	RestoredBy     *int64     `gorm:"column:restored_by"`
}

func (Archive) TableName() string { return "archives" }

// Archive entity types (PRODUCT §5.13).
const (
	ArchiveFlow = "flow"
	ArchiveBot  = "bot"
)

// ArchiveEntityTypes lists every entity type an archive record may hold, in the contract's order.
var ArchiveEntityTypes = []string{ArchiveFlow, ArchiveBot}

func scopeArchives(v Viewer) func(*gorm.DB) *gorm.DB { return ScopeVisible("archives", v) }

// ArchiveFilter is a page request over archive records.
type ArchiveFilter struct {
	EntityType string
	IsRestored *bool // nil: both
	ArchivedBy int64
	Sort       []string
	Page       int
	PageSize   int
}

var archiveSortColumns = map[string]string{"archived_at": "archives.archived_at"}

// archiveSummaryColumns leave out the heavy snapshot.
var archiveSummaryColumns = []string{
	"id", "entity_type", "entity_id", "entity_name", "previous_status", "reason", "owner_id", "visibility", "team_id",
	"archived_by", "archived_at", "is_restored", "restored_at", "restored_by",
}

// ListArchives returns one page of the archive records the viewer may see (Snapshot is nil) and the
// total over every filter.
func ListArchives(ctx context.Context, db *gorm.DB, v Viewer, f ArchiveFilter) ([]Archive, int64, error) {
	q := db.WithContext(ctx).Model(&Archive{}).Scopes(scopeArchives(v))
	if f.EntityType != "" {
		q = q.Where("archives.entity_type = ?", f.EntityType)
	}
	if f.IsRestored != nil {
		q = q.Where("archives.is_restored = ?", *f.IsRestored)
	}
	if f.ArchivedBy > 0 {
		q = q.Where("archives.archived_by = ?", f.ArchivedBy)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	order := orderBy(f.Sort, archiveSortColumns, "-archived_at", "archives.id")
	var rows []Archive
	err := paginate(q.Select(archiveSummaryColumns).Order(order), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// CountOpenArchives counts the unrestored records the viewer may see, by entity type, in one GROUP BY.
func CountOpenArchives(ctx context.Context, db *gorm.DB, v Viewer) (map[string]int64, error) {
	var rows []struct {
		EntityType string
		N          int64
	}
	err := db.WithContext(ctx).Model(&Archive{}).Scopes(scopeArchives(v)).Where("archives.is_restored = ?", false).
		Select("archives.entity_type AS entity_type, count(*) AS n").Group("archives.entity_type").Scan(&rows).Error
	out := map[string]int64{}
	for _, r := range rows {
		out[r.EntityType] = r.N
	}
	return out, Classify(err)
}

// GetArchive reads one record the viewer may see; anything else is ErrNotFound.
func GetArchive(ctx context.Context, db *gorm.DB, v Viewer, id int64) (*Archive, error) {
	var a Archive
	if err := db.WithContext(ctx).Scopes(scopeArchives(v)).Where("archives.id = ?", id).Take(&a).Error; err != nil {
		return nil, Classify(err)
	}
	return &a, nil
}

// GetArchiveForUpdate re-reads a record inside a transaction, locked on PostgreSQL.
func GetArchiveForUpdate(ctx context.Context, tx *gorm.DB, dialect string, id int64) (*Archive, error) {
	q := tx.WithContext(ctx)
	if dialect == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var a Archive
	if err := q.Where("id = ?", id).Take(&a).Error; err != nil {
		return nil, Classify(err)
	}
	return &a, nil
}

// SaveArchive inserts or rewrites a record. A second unrestored record for the same entity is
// ErrConflict (the partial unique index).
func SaveArchive(ctx context.Context, db *gorm.DB, a *Archive) error {
	if a.ID == 0 {
		return Classify(db.WithContext(ctx).Create(a).Error)
	}
	return Classify(db.WithContext(ctx).Save(a).Error)
}

// DeleteArchive removes a record; an unknown id is ErrNotFound.
func DeleteArchive(ctx context.Context, tx *gorm.DB, id int64) error {
	res := tx.WithContext(ctx).Delete(&Archive{}, id)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// UserIsActive reports whether a user exists and is active.
func UserIsActive(ctx context.Context, db *gorm.DB, id int64) (bool, error) {
	var n int64
	err := db.WithContext(ctx).Model(&User{}).Where("id = ? AND is_active = ?", id, true).Count(&n).Error
	return n > 0, Classify(err)
}

package store

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The audit log's reading side (PRODUCT §5.17) and its retention (§9.2). The
// model and InsertAudit live with the identity aggregate in identity.go.

// AuditFilter selects audit entries. Zero values do not filter. Entries come
// newest first, by id (which follows occurred_at: rows are only appended).
type AuditFilter struct {
	ActorUserID  int64
	APITokenID   int64
	ActionPrefix string // "flow." matches flow.create, flow.update, …; "flow.update" matches itself
	ResourceType string
	ResourceID   int64
	Status       string
	From, To     *time.Time // occurred_at >= From, occurred_at < To
	BeforeID     int64      // keyset: only ids below this one (the cursor); 0 starts at the newest
	Limit        int        // <= 0: no limit
}

// likePrefix is the argument of `col LIKE ? ESCAPE '\'` matching values that start with p. Unlike
// LikeContains it does not fold case: actions are stored as written.
func likePrefix(p string) string { return likeEscaper.Replace(p) + "%" }

// ListAudit returns the entries matching f, newest first, at most f.Limit of them.
func ListAudit(ctx context.Context, db *gorm.DB, f AuditFilter) ([]AuditLog, error) {
	q := db.WithContext(ctx).Model(&AuditLog{})
	if f.ActorUserID > 0 {
		q = q.Where("actor_user_id = ?", f.ActorUserID)
	}
	if f.APITokenID > 0 {
		q = q.Where("api_token_id = ?", f.APITokenID)
	}
	if p := strings.TrimSpace(f.ActionPrefix); p != "" {
		q = q.Where(`action LIKE ? ESCAPE '\'`, likePrefix(p))
	}
	if f.ResourceType != "" {
		q = q.Where("resource_type = ?", f.ResourceType)
	}
	if f.ResourceID > 0 {
		q = q.Where("resource_id = ?", f.ResourceID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.From != nil {
		q = q.Where("occurred_at >= ?", f.From.UTC())
	}
	if f.To != nil {
		q = q.Where("occurred_at < ?", f.To.UTC())
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	q = q.Order("id DESC")
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	rows := []AuditLog{}
	return rows, Classify(q.Find(&rows).Error)
}

// GetAudit reads one entry; an unknown id is ErrNotFound.
func GetAudit(ctx context.Context, db *gorm.DB, id int64) (*AuditLog, error) {
	var a AuditLog
	if err := db.WithContext(ctx).Where("id = ?", id).Take(&a).Error; err != nil {
		return nil, Classify(err)
	}
	return &a, nil
}

// AuditPurgeBatch is the most rows one purge statement deletes: a short statement at a time, so
// the purge never holds SQLite's single connection (or PostgreSQL locks) for long.
const AuditPurgeBatch = 500

// PurgeAuditBefore deletes every audit entry that occurred before cutoff (PRODUCT §9.2:
// AUDIT_RETENTION_DAYS), AuditPurgeBatch rows per statement, each statement its own transaction,
// until none is left; it returns how many it deleted. Call it outside any transaction. A cancelled
// ctx stops it between batches with the count so far.
func PurgeAuditBefore(ctx context.Context, db *gorm.DB, cutoff time.Time) (int64, error) {
	cutoff = cutoff.UTC()
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		// The oldest rows go first; occurred_at (not id) decides, through the audit_logs_occurred_at
		// index, so a row is never deleted before its retention ends.
		res := db.WithContext(ctx).Exec(
			`DELETE FROM audit_logs WHERE id IN (
			   SELECT id FROM audit_logs WHERE occurred_at < ? ORDER BY occurred_at, id LIMIT ?)`,
			cutoff, AuditPurgeBatch)
		if res.Error != nil {
			return total, Classify(res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < AuditPurgeBatch {
			return total, nil
		}
	}
}

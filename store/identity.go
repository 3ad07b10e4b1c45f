package store

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// The identity aggregate (PRODUCT §3, §5.17): refresh token families, API
// tokens, user administration and the audit log. The models mirror
// migrations/*/00002_identity.sql. Every query takes a *gorm.DB so that the
// caller can pass the transaction of the business operation.

// RefreshToken is one opaque refresh token of a family (PRODUCT §3.2.1). Only
// its SHA-256 is stored. Rotation marks a token used and points it at its
// successor; reuse of a used or revoked token revokes the whole family.
type RefreshToken struct {
	ID           int64      `gorm:"column:id;primaryKey"`
	FamilyID     string     `gorm:"column:family_id;not null"` // the access token's sid
	UserID       int64      `gorm:"column:user_id;not null"`   // CASCADE
	TokenHash    string     `gorm:"column:token_hash;not null"`
	IssuedAt     time.Time  `gorm:"column:issued_at;not null"` // Now() when zero on create
	ExpiresAt    time.Time  `gorm:"column:expires_at;not null"`
	UsedAt       *time.Time `gorm:"column:used_at"`
	RevokedAt    *time.Time `gorm:"column:revoked_at"`
	ReplacedByID *int64     `gorm:"column:replaced_by_id"` // the successor; SET NULL when it is deleted
	IP           *string    `gorm:"column:ip"`
	UserAgent    *string    `gorm:"column:user_agent"`
}

func (RefreshToken) TableName() string { return "refresh_tokens" }

// APIToken is a partner's service token (PRODUCT §3.3), unique per (owner,
// name), stored as the SHA-256 of the secret. A revoked token stays listed.
type APIToken struct {
	ID         int64      `gorm:"column:id;primaryKey"`
	OwnerID    int64      `gorm:"column:owner_id;not null"` // CASCADE
	Name       string     `gorm:"column:name;not null"`
	Prefix     string     `gorm:"column:prefix;not null"`
	TokenHash  string     `gorm:"column:token_hash;not null"`
	Scopes     StringList `gorm:"column:scopes;not null"` // nil is written as []
	ExpiresAt  time.Time  `gorm:"column:expires_at;not null"`
	LastUsedAt *time.Time `gorm:"column:last_used_at"` // see TouchAPIToken
	LastUsedIP *string    `gorm:"column:last_used_ip"`
	RevokedAt  *time.Time `gorm:"column:revoked_at"`
	CreatedAt  time.Time  `gorm:"column:created_at;not null"`
	UpdatedAt  time.Time  `gorm:"column:updated_at;not null"`
}

func (APIToken) TableName() string { return "api_tokens" }

// Audit actor types (PRODUCT §5.17).
const (
	ActorUser     = "user"
	ActorAPIToken = "api_token"
	ActorSystem   = "system"
	ActorWebhook  = "webhook"
)

// Audit statuses (PRODUCT §5.17).
const (
	AuditSuccess = "success"
	AuditFailure = "failure"
	AuditDenied  = "denied"
)

// AuditLog is one audit entry (PRODUCT §5.17). ActorUserID, APITokenID and
// ResourceID have no foreign key: the entry outlives what it names, and
// ActorDisplay keeps who acted. Changes holds
// {"fields": [...], "before": {...}, "after": {...}} as the caller gives it
// (never a secret); Metadata is any other JSON object. Both are NULL when nil.
type AuditLog struct {
	ID           int64     `gorm:"column:id;primaryKey"`
	OccurredAt   time.Time `gorm:"column:occurred_at;not null"` // Now() when zero on insert
	Action       string    `gorm:"column:action;not null"`      // e.g. "flow.update"
	Status       string    `gorm:"column:status;not null;default:success"`
	ActorType    string    `gorm:"column:actor_type;not null"` // ActorUser, ActorAPIToken, ActorSystem, ActorWebhook
	ActorUserID  *int64    `gorm:"column:actor_user_id"`
	ActorDisplay string    `gorm:"column:actor_display;not null"`
	APITokenID   *int64    `gorm:"column:api_token_id"`
	ResourceType string    `gorm:"column:resource_type;not null"`
	ResourceID   *int64    `gorm:"column:resource_id"`
	RequestID    *string   `gorm:"column:request_id"`
	IP           *string   `gorm:"column:ip"`
	UserAgent    *string   `gorm:"column:user_agent"`
	Changes      *JSON     `gorm:"column:changes"`
	Metadata     *JSON     `gorm:"column:metadata"`
}

func (AuditLog) TableName() string { return "audit_logs" }

// StringList is a list of strings stored as a JSON array: jsonb on
// PostgreSQL, text on SQLite. nil is written as [] and read back as an empty,
// non-nil list.
type StringList []string

// Value writes the list as a JSON array.
func (l StringList) Value() (driver.Value, error) {
	if l == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]string(l))
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// Scan reads a JSON array; SQL NULL gives nil.
func (l *StringList) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*l = nil
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("store: cannot scan %T into StringList", src)
	}
	out := []string{}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("store: scan StringList: %w", err)
	}
	*l = out
	return nil
}

// GormDataType is the generic type name GORM uses for the field.
func (StringList) GormDataType() string { return "json" }

// GormDBDataType is the column type per dialect.
func (StringList) GormDBDataType(db *gorm.DB, _ *schema.Field) string {
	if db.Dialector.Name() == Postgres {
		return "jsonb"
	}
	return "text"
}

// forUpdate locks the rows a query reads until the transaction ends, on
// PostgreSQL; SQLite has a single writer (transactions begin IMMEDIATE).
func forUpdate(q *gorm.DB) *gorm.DB {
	if q.Dialector.Name() == Postgres {
		return q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return q
}

// nullIfEmpty maps "" to SQL NULL.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ---- Refresh token families ----

// CreateRefreshToken inserts a token; IssuedAt defaults to Now(). A duplicate
// hash is ErrConflict, an unknown user ErrForeignKey.
func CreateRefreshToken(ctx context.Context, db *gorm.DB, t *RefreshToken) error {
	if t.IssuedAt.IsZero() {
		t.IssuedAt = Now()
	}
	return Classify(db.WithContext(ctx).Create(t).Error)
}

// GetRefreshTokenByHash reads a token by the SHA-256 of its secret. On
// PostgreSQL it locks the row until the transaction ends (pass one), so two
// refreshes with the same token serialise: the second sees the first's UsedAt.
// Whether the token is used, revoked or expired is the caller's to judge.
func GetRefreshTokenByHash(ctx context.Context, db *gorm.DB, hash string) (*RefreshToken, error) {
	var t RefreshToken
	if err := forUpdate(db.WithContext(ctx)).Where("token_hash = ?", hash).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// MarkRefreshUsed marks a token used at `at` and points it at its successor
// (replacedBy; 0 leaves it NULL). It is a guarded UPDATE that only touches a
// token neither used nor revoked, so of two concurrent rotations exactly one
// gets true; false means another request won (or the token is gone).
func MarkRefreshUsed(ctx context.Context, db *gorm.DB, id, replacedBy int64, at time.Time) (bool, error) {
	var successor *int64
	if replacedBy != 0 {
		successor = &replacedBy
	}
	res := db.WithContext(ctx).Exec(
		`UPDATE refresh_tokens SET used_at = ?, replaced_by_id = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL`,
		at, successor, id)
	if res.Error != nil {
		return false, Classify(res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RevokeFamily revokes every token of a family not revoked yet and returns how
// many it revoked (0 when the family was already revoked or is unknown).
func RevokeFamily(ctx context.Context, db *gorm.DB, familyID string, at time.Time) (int64, error) {
	res := db.WithContext(ctx).Exec(
		`UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`, at, familyID)
	return res.RowsAffected, Classify(res.Error)
}

// RevokeUserFamilies revokes every unrevoked token of a user in one statement
// (deactivation, deletion, role change) and returns, sorted and without
// duplicates, the families that had a live token: unrevoked and not expired at
// `at`. Those sids may still be carried by access tokens, so the caller puts
// them on the deny-list.
func RevokeUserFamilies(ctx context.Context, db *gorm.DB, userID int64, at time.Time) ([]string, error) {
	var rows []struct {
		FamilyID string `gorm:"column:family_id"`
		Live     bool   `gorm:"column:live"`
	}
	// RETURNING (PostgreSQL, SQLite ≥ 3.35) reports exactly the rows this
	// statement revoked, even if a login adds a family concurrently.
	err := db.WithContext(ctx).Raw(
		`UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL
		 RETURNING family_id, (CASE WHEN expires_at > ? THEN 1 ELSE 0 END) AS live`,
		at, userID, at).Scan(&rows).Error
	if err != nil {
		return nil, Classify(err)
	}
	seen := map[string]bool{}
	families := []string{}
	for _, r := range rows {
		if r.Live && !seen[r.FamilyID] {
			seen[r.FamilyID] = true
			families = append(families, r.FamilyID)
		}
	}
	slices.Sort(families)
	return families, nil
}

// ---- API tokens ----

// CreateAPIToken inserts a token. A duplicate (owner_id, name) or hash is
// ErrConflict.
func CreateAPIToken(ctx context.Context, db *gorm.DB, t *APIToken) error {
	if t.Scopes == nil {
		t.Scopes = StringList{}
	}
	return Classify(db.WithContext(ctx).Create(t).Error)
}

// GetAPITokenByHash reads a token by the SHA-256 of its secret, whatever its
// state; the caller checks revoked_at, expires_at and the owner.
func GetAPITokenByHash(ctx context.Context, db *gorm.DB, hash string) (*APIToken, error) {
	var t APIToken
	if err := db.WithContext(ctx).Where("token_hash = ?", hash).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// GetAPIToken reads one of the owner's tokens; another owner's is ErrNotFound.
func GetAPIToken(ctx context.Context, db *gorm.DB, ownerID, id int64) (*APIToken, error) {
	var t APIToken
	if err := db.WithContext(ctx).Where("id = ? AND owner_id = ?", id, ownerID).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// apiTokenSortColumns: a never-used token sorts after the used ones in both
// directions, the same on both dialects (their NULL orders differ).
var apiTokenSortColumns = map[string]string{
	"created_at":   "api_tokens.created_at",
	"last_used_at": "api_tokens.last_used_at IS NULL, api_tokens.last_used_at",
	"name":         "api_tokens.name",
}

// ListAPITokens returns one page of the owner's tokens, revoked ones included,
// and their total. Sort keys: created_at, last_used_at, name, "-" for
// descending; default -created_at; id breaks ties.
func ListAPITokens(ctx context.Context, db *gorm.DB, ownerID int64, sort []string, page, size int) ([]APIToken, int64, error) {
	q := db.WithContext(ctx).Model(&APIToken{}).Where("api_tokens.owner_id = ?", ownerID)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	rows := []APIToken{}
	err := paginate(q.Order(orderBy(sort, apiTokenSortColumns, "-created_at", "api_tokens.id")), page, size).Find(&rows).Error
	return rows, total, Classify(err)
}

// RevokeAPIToken revokes one of the owner's tokens at `at`. It is idempotent:
// an already revoked token keeps its first revoked_at. Another owner's token
// is ErrNotFound.
func RevokeAPIToken(ctx context.Context, db *gorm.DB, ownerID, id int64, at time.Time) error {
	// Both dialects count a matched row as affected even when nothing changes.
	res := db.WithContext(ctx).Exec(
		`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?),
		 updated_at = CASE WHEN revoked_at IS NULL THEN ? ELSE updated_at END
		 WHERE id = ? AND owner_id = ?`, at, at, id, ownerID)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// APITokenTouchInterval is how often TouchAPIToken writes last_used_*
// (PRODUCT §3.3: at most once a minute).
const APITokenTouchInterval = time.Minute

// TouchAPIToken records a use of the token (at, from ip; "" is NULL) when
// last_used_at is NULL or at least APITokenTouchInterval older than at. It is
// one guarded UPDATE, so a busy token costs a write a minute, not a write a
// request. An unknown id is not an error.
func TouchAPIToken(ctx context.Context, db *gorm.DB, id int64, ip string, at time.Time) error {
	return Classify(db.WithContext(ctx).Exec(
		`UPDATE api_tokens SET last_used_at = ?, last_used_ip = ?
		 WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`,
		at, nullIfEmpty(ip), id, at.Add(-APITokenTouchInterval)).Error)
}

// ---- Users ----

// GetUser reads a user by id.
func GetUser(ctx context.Context, db *gorm.DB, id int64) (*User, error) {
	var u User
	if err := db.WithContext(ctx).Where("id = ?", id).Take(&u).Error; err != nil {
		return nil, Classify(err)
	}
	return &u, nil
}

// GetUserByEmail reads a user by email, ignoring case as the unique index
// users(lower(email)) does.
func GetUserByEmail(ctx context.Context, db *gorm.DB, email string) (*User, error) {
	var u User
	if err := db.WithContext(ctx).Where("lower(email) = lower(?)", email).Take(&u).Error; err != nil {
		return nil, Classify(err)
	}
	return &u, nil
}

// GetUserByExternalID reads a user by Casdoor sub.
func GetUserByExternalID(ctx context.Context, db *gorm.DB, externalID string) (*User, error) {
	var u User
	if err := db.WithContext(ctx).Where("external_id = ?", externalID).Take(&u).Error; err != nil {
		return nil, Classify(err)
	}
	return &u, nil
}

// UserFilter is a page request over users (PRODUCT §3.5). Zero values do not
// filter. Search matches email and name.
type UserFilter struct {
	Role     string
	IsActive *bool
	TeamID   int64
	Search   string
	Sort     []string // created_at, email, name, last_login_at; "-" for descending; default -created_at
	Page     int
	PageSize int // <= 0: no limit
}

// userSortColumns: a user who never logged in sorts last in both directions.
var userSortColumns = map[string]string{
	"created_at":    "users.created_at",
	"email":         "users.email",
	"name":          "users.name",
	"last_login_at": "users.last_login_at IS NULL, users.last_login_at",
}

// ListUsers returns one page of users and the total over every filter.
func ListUsers(ctx context.Context, db *gorm.DB, f UserFilter) ([]User, int64, error) {
	q := db.WithContext(ctx).Model(&User{})
	if f.Role != "" {
		q = q.Where("users.role = ?", f.Role)
	}
	if f.IsActive != nil {
		q = q.Where("users.is_active = ?", *f.IsActive)
	}
	if f.TeamID > 0 {
		q = q.Where("users.id IN (SELECT user_id FROM team_members WHERE team_id = ?)", f.TeamID)
	}
	if s := strings.TrimSpace(f.Search); s != "" {
		q = q.Where(`users.search_text LIKE ? ESCAPE '\'`, LikeContains(s))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	rows := []User{}
	err := paginate(q.Order(orderBy(f.Sort, userSortColumns, "-created_at", "users.id")), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// ListDirectory returns one page of active users, by name then id, for the
// assignee pickers, and their total. search matches the name only, never the
// email: search_text is SearchText(name, email), an email holds no space, so
// a match followed by a later space lies in the name.
func ListDirectory(ctx context.Context, db *gorm.DB, search string, page, size int) ([]User, int64, error) {
	q := db.WithContext(ctx).Model(&User{}).Where("users.is_active = ?", true)
	if s := strings.TrimSpace(search); s != "" {
		q = q.Where(`users.search_text LIKE ? ESCAPE '\'`, LikeContains(s)+" %")
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	rows := []User{}
	err := paginate(q.Order("users.name ASC, users.id ASC"), page, size).Find(&rows).Error
	return rows, total, Classify(err)
}

// TeamIDsOf returns the team ids of each user, ascending, in one query. Every
// requested user is a key; one without teams maps to an empty, non-nil slice.
func TeamIDsOf(ctx context.Context, db *gorm.DB, userIDs []int64) (map[int64][]int64, error) {
	out := make(map[int64][]int64, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	for _, id := range userIDs {
		out[id] = []int64{}
	}
	var rows []struct {
		UserID int64 `gorm:"column:user_id"`
		TeamID int64 `gorm:"column:team_id"`
	}
	err := db.WithContext(ctx).Model(&TeamMember{}).Select("user_id", "team_id").
		Where("user_id IN ?", userIDs).Order("user_id, team_id").Scan(&rows).Error
	if err != nil {
		return nil, Classify(err)
	}
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], r.TeamID)
	}
	return out, nil
}

// CountActiveSuperAdmins counts the active super_admins, for the
// last-super-admin rule (PRODUCT §3.5). Call it in the transaction that
// changes the user.
func CountActiveSuperAdmins(ctx context.Context, db *gorm.DB) (int64, error) {
	var n int64
	err := db.WithContext(ctx).Model(&User{}).Where("role = ? AND is_active = ?", "super_admin", true).Count(&n).Error
	return n, Classify(err)
}

// SaveUser inserts (ID 0) or writes the whole user, refreshing its search
// text. A duplicate email (any case) or external id is ErrConflict.
func SaveUser(ctx context.Context, db *gorm.DB, u *User) error {
	u.SearchText = SearchText(u.Name, u.Email)
	if u.ID == 0 {
		return Classify(db.WithContext(ctx).Create(u).Error)
	}
	return Classify(db.WithContext(ctx).Save(u).Error)
}

// TransferOwnership gives every flow of fromUserID to toUserID in two
// set-based statements: first a `team` flow whose team does not hold the new
// owner (or that has no team) becomes `private` without a team, then owner_id
// moves. Each changed flow gets a new revision (so its ETag changes). The
// templates the user created and the media they uploaded move too (PRODUCT §3.5), and so do the
// archive records of their entities. An unknown toUserID is
// ErrForeignKey. Call it in the transaction that deletes the user.
func TransferOwnership(ctx context.Context, db *gorm.DB, fromUserID, toUserID int64) error {
	if fromUserID == toUserID {
		return nil
	}
	now := Now()
	db = db.WithContext(ctx)
	if err := db.Exec(
		`UPDATE flows SET visibility = 'private', team_id = NULL, revision = revision + 1, updated_at = ?
		 WHERE owner_id = ? AND visibility = 'team'
		   AND (team_id IS NULL OR team_id NOT IN (SELECT team_id FROM team_members WHERE user_id = ?))`,
		now, fromUserID, toUserID).Error; err != nil {
		return Classify(err)
	}
	if err := db.Exec(
		`UPDATE flows SET owner_id = ?, revision = revision + 1, updated_at = ? WHERE owner_id = ?`,
		toUserID, now, fromUserID).Error; err != nil {
		return Classify(err)
	}
	// Archive records follow the archived entity's owner, with the same team rule.
	if err := db.Exec(
		`UPDATE archives SET visibility = 'private', team_id = NULL
		 WHERE owner_id = ? AND visibility = 'team'
		   AND (team_id IS NULL OR team_id NOT IN (SELECT team_id FROM team_members WHERE user_id = ?))`,
		fromUserID, toUserID).Error; err != nil {
		return Classify(err)
	}
	if err := db.Exec(`UPDATE archives SET owner_id = ? WHERE owner_id = ?`, toUserID, fromUserID).Error; err != nil {
		return Classify(err)
	}
	if err := db.Exec(`UPDATE media SET uploaded_by = ? WHERE uploaded_by = ?`, toUserID, fromUserID).Error; err != nil {
		return Classify(err)
	}
	return Classify(db.Exec(`UPDATE templates SET created_by = ? WHERE created_by = ?`, toUserID, fromUserID).Error)
}

// DeleteUser deletes a user. Team memberships, refresh tokens and API tokens
// go with it (CASCADE); audit rows stay. A user still owning flows is
// ErrForeignKey (RESTRICT: call TransferOwnership first); an unknown id is
// ErrNotFound.
func DeleteUser(ctx context.Context, db *gorm.DB, id int64) error {
	res := db.WithContext(ctx).Delete(&User{}, id)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// ---- Audit ----

// AuditChanges is the details of an audit row (PRODUCT §5.17): the changed field names and the
// before/after values of non-secret fields; nil when there is nothing to record.
func AuditChanges(fields []string, before, after map[string]any) (*JSON, error) {
	if len(fields) == 0 && before == nil && after == nil {
		return nil, nil
	}
	b, err := json.Marshal(map[string]any{"fields": fields, "before": before, "after": after})
	if err != nil {
		return nil, err
	}
	j := JSON(b)
	return &j, nil
}

// InsertAudit writes an audit entry; OccurredAt defaults to Now() and Status
// to "success". Write it in the business transaction.
func InsertAudit(ctx context.Context, db *gorm.DB, a *AuditLog) error {
	if a.OccurredAt.IsZero() {
		a.OccurredAt = Now()
	}
	return Classify(db.WithContext(ctx).Create(a).Error)
}

// ListAuditForResource returns every entry about one resource, newest first.
func ListAuditForResource(ctx context.Context, db *gorm.DB, resourceType string, resourceID int64) ([]AuditLog, error) {
	rows := []AuditLog{}
	err := db.WithContext(ctx).Where("resource_type = ? AND resource_id = ?", resourceType, resourceID).
		Order("occurred_at DESC, id DESC").Find(&rows).Error
	return rows, Classify(err)
}

// userAdminLockKey is the PostgreSQL advisory lock key that user writes take in turn.
const userAdminLockKey int64 = 0x7761_7461_0001 // "wata" 1

// LockUserAdmin makes every write to users (administration, sign-in upserts, the CLI) of every
// replica take turns for the rest of the transaction. Without it, on PostgreSQL (READ COMMITTED),
// two super_admins demoting or deactivating each other both count two active super_admins and leave
// none, and two changes of one user each write back the row they read, losing the other's change.
// SQLite already has a single writer (transactions begin IMMEDIATE).
func LockUserAdmin(ctx context.Context, tx *gorm.DB) error {
	if tx.Dialector.Name() != Postgres {
		return nil
	}
	return Classify(tx.WithContext(ctx).Exec("SELECT pg_advisory_xact_lock(?)", userAdminLockKey).Error)
}

package store

import (
	"database/sql/driver"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// The models mirror migrations/*/00001_init.sql; a test checks that every
// field has a column and every column a field, on both dialects.
//
// The DDL holds the defaults. A `default:` tag is used only where Go's zero
// value is never a valid value (an empty role or status, revision 0): GORM
// then writes the default in place of the zero value. IsActive has no default
// tag on purpose, because GORM would turn an explicit false into true; set it.

// User is a person who signs in through Casdoor (PRODUCT §3.4).
type User struct {
	ID          int64      `gorm:"column:id;primaryKey"`
	ExternalID  *string    `gorm:"column:external_id"`    // Casdoor sub; unique, null when pre-provisioned
	Email       string     `gorm:"column:email;not null"` // unique on lower(email)
	Name        string     `gorm:"column:name;not null"`
	AvatarURL   *string    `gorm:"column:avatar_url"`
	Role        string     `gorm:"column:role;not null;default:user"`
	IsActive    bool       `gorm:"column:is_active;not null"`
	LastLoginAt *time.Time `gorm:"column:last_login_at"`
	SearchText  string     `gorm:"column:search_text;not null"` // SearchText(name, email)
	CreatedAt   time.Time  `gorm:"column:created_at;not null"`
	UpdatedAt   time.Time  `gorm:"column:updated_at;not null"`
}

func (User) TableName() string { return "users" }

// Team groups users; flows with visibility "team" are shared with it.
type Team struct {
	ID          int64     `gorm:"column:id;primaryKey"`
	Name        string    `gorm:"column:name;not null"` // unique
	Description *string   `gorm:"column:description"`
	SearchText  string    `gorm:"column:search_text;not null"`
	CreatedAt   time.Time `gorm:"column:created_at;not null"`
	UpdatedAt   time.Time `gorm:"column:updated_at;not null"`
}

func (Team) TableName() string { return "teams" }

// TeamMember links a user to a team; it goes with either of them.
type TeamMember struct {
	TeamID    int64     `gorm:"column:team_id;primaryKey;autoIncrement:false"`
	UserID    int64     `gorm:"column:user_id;primaryKey;autoIncrement:false"`
	CreatedAt time.Time `gorm:"column:created_at;not null"`
}

func (TeamMember) TableName() string { return "team_members" }

// Flow is the working copy of a flow (PRODUCT §5.1). Its owner cannot be
// deleted while it exists (RESTRICT); deleting its team makes team_id null.
type Flow struct {
	ID               int64      `gorm:"column:id;primaryKey"`
	Name             string     `gorm:"column:name;not null"`
	Description      *string    `gorm:"column:description"`
	Status           string     `gorm:"column:status;not null;default:draft"`
	Visibility       string     `gorm:"column:visibility;not null;default:private"`
	TeamID           *int64     `gorm:"column:team_id"`
	OwnerID          int64      `gorm:"column:owner_id;not null"`
	Data             JSON       `gorm:"column:data;not null"` // must be set (nil is NULL); see DefaultFlowData
	Revision         int        `gorm:"column:revision;not null;default:1"`
	Version          int        `gorm:"column:version;not null;default:1"`
	PublishedVersion *int       `gorm:"column:published_version"`
	NodeCount        int        `gorm:"column:node_count;not null"` // kept with data so lists need not read it
	ContentHash      string     `gorm:"column:content_hash;not null"`
	PublishedHash    *string    `gorm:"column:published_hash"`
	ArchivedAt       *time.Time `gorm:"column:archived_at"`
	WebhookKey       *string    `gorm:"column:webhook_key"`          // the trigger-webhook endpoint key; unique
	TemplateID       *int64     `gorm:"column:template_id"`          // the template it was created from; null once deleted
	CategoryID       *int64     `gorm:"column:category_id"`          // a category with entity_type flow
	SearchText       string     `gorm:"column:search_text;not null"` // SearchText(name, description)
	CreatedAt        time.Time  `gorm:"column:created_at;not null"`
	UpdatedAt        time.Time  `gorm:"column:updated_at;not null"`
}

func (Flow) TableName() string { return "flows" }

// FlowVersion is an immutable snapshot of a flow (PRODUCT §5.2), unique per
// (flow_id, version) and deleted with its flow.
type FlowVersion struct {
	ID          int64     `gorm:"column:id;primaryKey"`
	FlowID      int64     `gorm:"column:flow_id;not null"`
	Version     int       `gorm:"column:version;not null"`
	Name        string    `gorm:"column:name;not null"`
	Description *string   `gorm:"column:description"`
	Data        JSON      `gorm:"column:data;not null"`
	ContentHash string    `gorm:"column:content_hash;not null"`
	CreatedBy   *int64    `gorm:"column:created_by"` // null once the user is deleted
	CreatedAt   time.Time `gorm:"column:created_at;not null"`
}

func (FlowVersion) TableName() string { return "flow_versions" }

// DefaultFlowData returns the graph of a new flow created without data
// (PRODUCT §5.1), the same as the column's DDL default.
func DefaultFlowData() JSON { return JSON(`{"nodes":[],"edges":[]}`) }

// JSON is raw JSON stored as jsonb on PostgreSQL and text on SQLite. It is
// not validated here. PostgreSQL reformats jsonb (key order, spaces), so hash
// the JSON in Go before writing, never the value read back.
type JSON []byte

// Value writes nil as SQL NULL.
func (j JSON) Value() (driver.Value, error) {
	if j == nil {
		return nil, nil
	}
	return string(j), nil
}

// Scan copies the bytes, because the driver may reuse its buffer.
func (j *JSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case []byte:
		*j = append(JSON(nil), v...)
	case string:
		*j = JSON(v)
	default:
		return fmt.Errorf("store: cannot scan %T into JSON", src)
	}
	return nil
}

// MarshalJSON writes the raw JSON, or null for nil.
func (j JSON) MarshalJSON() ([]byte, error) {
	if j == nil {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON keeps a copy of the raw JSON.
func (j *JSON) UnmarshalJSON(data []byte) error {
	if j == nil {
		return fmt.Errorf("store: UnmarshalJSON on nil *JSON")
	}
	*j = append(JSON(nil), data...)
	return nil
}

// GormDataType is the generic type name GORM uses for the field.
func (JSON) GormDataType() string { return "json" }

// GormDBDataType is the column type per dialect.
func (JSON) GormDBDataType(db *gorm.DB, _ *schema.Field) string {
	if db.Dialector.Name() == Postgres {
		return "jsonb"
	}
	return "text"
}

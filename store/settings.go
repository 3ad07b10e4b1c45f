package store

import (
	"context"
	"errors"
	"time"
	// The zone database travels with the binary (DESIGN §4): default_timezone is checked and used
	// with time.LoadLocation, which a minimal container image could not otherwise serve.
	_ "time/tzdata"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SettingsID is the id of the one settings row.
const SettingsID int64 = 1

// Settings are the organisation settings (PRODUCT §5.22): one row, id 1, created by the migration
// with the defaults of DefaultSettings. DefaultAIModel nil means AI_DEFAULT_MODEL.
type Settings struct {
	ID                      int64     `gorm:"column:id;primaryKey;autoIncrement:false"`
	OrgName                 string    `gorm:"column:org_name;not null"`
	DefaultTimezone         string    `gorm:"column:default_timezone;not null"` // IANA
	DefaultLanguage         string    `gorm:"column:default_language;not null"`
	DefaultAIModel          *string   `gorm:"column:default_ai_model"`
	AutoHandoffOnAgentReply bool      `gorm:"column:auto_handoff_on_agent_reply;not null"`
	ResetBotOnResolve       bool      `gorm:"column:reset_bot_on_resolve;not null"`
	BotFallbackMessage      string    `gorm:"column:bot_fallback_message;not null"`
	ConversationReopenHours int       `gorm:"column:conversation_reopen_hours;not null"`
	AutoResolveAfterHours   int       `gorm:"column:auto_resolve_after_hours;not null"` // 0 = off
	SendReadReceipts        bool      `gorm:"column:send_read_receipts;not null"`
	MessengerHumanAgentTag  bool      `gorm:"column:messenger_human_agent_tag;not null"`
	UpdatedAt               time.Time `gorm:"column:updated_at;not null"`
}

func (Settings) TableName() string { return "settings" }

// DefaultSettings are the settings of a new deployment, the same as the migration's column defaults.
func DefaultSettings() Settings {
	return Settings{
		ID: SettingsID, OrgName: "WataOmi", DefaultTimezone: "UTC", DefaultLanguage: "en",
		AutoHandoffOnAgentReply: true, ResetBotOnResolve: true,
		BotFallbackMessage:      "Sorry, something went wrong. An agent will reply shortly.",
		ConversationReopenHours: 24,
	}
}

// GetSettings reads the organisation settings. The engine calls it for the default time zone and
// AI model. If the row is missing (it is created by the migration), the defaults are returned.
func GetSettings(ctx context.Context, db *gorm.DB) (*Settings, error) {
	return getSettings(db.WithContext(ctx))
}

// GetSettingsForUpdate reads the settings and, on PostgreSQL, locks the row until the transaction
// ends, so two concurrent updates apply one after the other. Pass the transaction.
func GetSettingsForUpdate(ctx context.Context, tx *gorm.DB) (*Settings, error) {
	return getSettings(forUpdate(tx.WithContext(ctx)))
}

func getSettings(q *gorm.DB) (*Settings, error) {
	var s Settings
	err := q.Where("id = ?", SettingsID).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		d := DefaultSettings()
		return &d, nil
	}
	if err != nil {
		return nil, Classify(err)
	}
	return &s, nil
}

// SaveSettings writes the whole settings row (inserting it if it is missing); UpdatedAt is set to
// Now().
func SaveSettings(ctx context.Context, db *gorm.DB, s *Settings) error {
	s.ID = SettingsID
	s.UpdatedAt = Now()
	return Classify(db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		UpdateAll: true,
	}).Create(s).Error)
}

// AIModel is the default AI model: default_ai_model, or configDefault (AI_DEFAULT_MODEL) when unset.
func (s *Settings) AIModel(configDefault string) string {
	if s.DefaultAIModel != nil && *s.DefaultAIModel != "" {
		return *s.DefaultAIModel
	}
	return configDefault
}

// Location is default_timezone as a *time.Location (UTC if the stored name is unknown to this
// build; the API accepts only names time.LoadLocation knows).
func (s *Settings) Location() *time.Location {
	if loc, err := time.LoadLocation(s.DefaultTimezone); err == nil {
		return loc
	}
	return time.UTC
}

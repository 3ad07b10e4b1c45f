package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// Agent config defaults (PRODUCT §5.14), applied on create when the body leaves them out.
const (
	DefaultPersonality = "friendly"
	DefaultTone        = "informal"
	DefaultLanguage    = "en"
)

// AgentConfig is the persona of a flow's AI nodes (PRODUCT §5.14): at most one per flow, deleted with
// it. Temperature, MaxTokens and Model are nil when not set here: they store no defaults, so the
// engine's precedence chain (node config → agent config → settings → AI_DEFAULT_MODEL) can tell
// "unset" from a value.
type AgentConfig struct {
	ID           int64     `gorm:"column:id;primaryKey"`
	FlowID       int64     `gorm:"column:flow_id;not null"` // unique
	Name         string    `gorm:"column:name;not null"`
	Personality  string    `gorm:"column:personality;not null;default:friendly"`
	Tone         string    `gorm:"column:tone;not null;default:informal"`
	Language     string    `gorm:"column:language;not null;default:en"`
	SystemPrompt string    `gorm:"column:system_prompt;not null"`
	Temperature  *float64  `gorm:"column:temperature"`
	MaxTokens    *int      `gorm:"column:max_tokens"`
	Model        *string   `gorm:"column:model"`
	CreatedAt    time.Time `gorm:"column:created_at;not null"`
	UpdatedAt    time.Time `gorm:"column:updated_at;not null"`
}

func (AgentConfig) TableName() string { return "agent_configs" }

// GetAgentConfig returns the flow's agent config, or nil, nil when the flow has none. It does not
// check that the caller may see the flow: the engine calls it for a flow it is already running.
func GetAgentConfig(ctx context.Context, db *gorm.DB, flowID int64) (*AgentConfig, error) {
	var c AgentConfig
	err := db.WithContext(ctx).Where("flow_id = ?", flowID).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, Classify(err)
	}
	return &c, nil
}

// GetAgentConfigForUpdate reads a flow's agent config inside a transaction, locking the row on
// PostgreSQL; none is ErrNotFound.
func GetAgentConfigForUpdate(ctx context.Context, tx *gorm.DB, flowID int64) (*AgentConfig, error) {
	var c AgentConfig
	if err := forUpdate(tx.WithContext(ctx)).Where("flow_id = ?", flowID).Take(&c).Error; err != nil {
		return nil, Classify(err)
	}
	return &c, nil
}

// SaveAgentConfig inserts a new config (a second one for the same flow is ErrConflict) or writes
// every column of an existing one; an existing one deleted meanwhile is ErrNotFound.
func SaveAgentConfig(ctx context.Context, db *gorm.DB, c *AgentConfig) error {
	if c.ID == 0 {
		return Classify(db.WithContext(ctx).Create(c).Error)
	}
	res := db.WithContext(ctx).Model(c).
		Select("name", "personality", "tone", "language", "system_prompt", "temperature", "max_tokens", "model", "updated_at").
		Updates(c)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteAgentConfig removes a flow's agent config; none is ErrNotFound.
func DeleteAgentConfig(ctx context.Context, tx *gorm.DB, flowID int64) error {
	res := tx.WithContext(ctx).Where("flow_id = ?", flowID).Delete(&AgentConfig{})
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

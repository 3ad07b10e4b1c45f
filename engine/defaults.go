package engine

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/store"
)

// PersonaPrompt joins a persona line (personality, tone, language) with the
// agent config's system prompt: the effective system prompt of PRODUCT §5.14.
func PersonaPrompt(c *store.AgentConfig) string {
	return fmt.Sprintf("You are %s, a %s assistant. Use a %s tone and answer in the language %q.\n\n%s",
		c.Name, c.Personality, c.Tone, c.Language, c.SystemPrompt)
}

// StoreAgent reads a flow's agent config from db for the AI nodes.
func StoreAgent(db *store.DB) func(ctx context.Context, flowID int64) (*AgentDefaults, error) {
	return func(ctx context.Context, flowID int64) (*AgentDefaults, error) {
		c, err := store.GetAgentConfig(ctx, db.DB, flowID)
		if err != nil || c == nil {
			return nil, err
		}
		return &AgentDefaults{SystemPrompt: PersonaPrompt(c), Model: c.Model, Temperature: c.Temperature, MaxTokens: c.MaxTokens}, nil
	}
}

// StoreDefaultModel is settings.default_ai_model, else AI_DEFAULT_MODEL.
func StoreDefaultModel(db *store.DB, configDefault string) func(ctx context.Context) string {
	return func(ctx context.Context) string {
		s, err := store.GetSettings(ctx, db.DB)
		if err != nil {
			return configDefault
		}
		return s.AIModel(configDefault)
	}
}

// StoreDefaultTimezone is the organisation's timezone (settings), read in the
// caller's transaction; UTC when it cannot be read.
func StoreDefaultTimezone(ctx context.Context, tx *gorm.DB) string {
	s, err := store.GetSettings(ctx, tx)
	if err != nil {
		return "UTC"
	}
	return s.Location().String()
}

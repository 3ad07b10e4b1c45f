package server

import (
	"context"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/store"
)

// knownAIModel reports whether id names a chat model of the catalogue (PRODUCT §5.18), which
// default_ai_model may hold; embedding models are not.
func knownAIModel(id string) bool {
	m, ok := ai.LookupModel(id)
	return ok && m.Kind == ai.KindChat
}

func settingsOf(s *store.Settings) api.Settings {
	return api.Settings{
		OrgName: s.OrgName, DefaultTimezone: s.DefaultTimezone, DefaultLanguage: s.DefaultLanguage,
		DefaultAiModel: NullableFrom(s.DefaultAIModel), AutoHandoffOnAgentReply: s.AutoHandoffOnAgentReply,
		ResetBotOnResolve: s.ResetBotOnResolve, BotFallbackMessage: s.BotFallbackMessage,
		ConversationReopenHours: s.ConversationReopenHours, AutoResolveAfterHours: s.AutoResolveAfterHours,
		SendReadReceipts: s.SendReadReceipts, MessengerHumanAgentTag: s.MessengerHumanAgentTag,
		UpdatedAt: apitime.From(s.UpdatedAt),
	}
}

func (h *handlers) GetSettings(ctx context.Context, req api.GetSettingsRequestObject) (api.GetSettingsResponseObject, error) {
	s, err := store.GetSettings(ctx, h.s.deps.DB.DB)
	if err != nil {
		return nil, err
	}
	return api.GetSettings200JSONResponse{SettingsJSONResponse: api.SettingsJSONResponse{Body: settingsOf(s)}}, nil
}

// settingChange applies one property of an update: unchanged when absent or equal, else recorded
// with its before and after values (every settings field is a non-secret scalar).
func settingChange[T comparable](name string, in *T, cur *T, fields *[]string, before, after map[string]any) {
	if in == nil || *in == *cur {
		return
	}
	*fields = append(*fields, name)
	before[name], after[name] = *cur, *in
	*cur = *in
}

func (h *handlers) UpdateSettings(ctx context.Context, req api.UpdateSettingsRequestObject) (api.UpdateSettingsResponseObject, error) {
	b := req.Body
	// The catalogue check is pure: answer 422 before taking any lock.
	if b.DefaultAiModel.IsSpecified() && !b.DefaultAiModel.IsNull() && !knownAIModel(b.DefaultAiModel.MustGet()) {
		return nil, unprocessable("model-unknown", "default_ai_model is not a catalogue model.",
			FieldError{Pointer: "/default_ai_model", Detail: "names no model of the catalogue (GET /ai/models)", Code: "model-unknown"})
	}
	var out *store.Settings
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		s, err := store.GetSettingsForUpdate(ctx, tx)
		if err != nil {
			return err
		}
		out = s
		var fields []string
		before, after := map[string]any{}, map[string]any{}
		settingChange("org_name", b.OrgName, &s.OrgName, &fields, before, after)
		settingChange("default_timezone", b.DefaultTimezone, &s.DefaultTimezone, &fields, before, after)
		settingChange("default_language", b.DefaultLanguage, &s.DefaultLanguage, &fields, before, after)
		if b.DefaultAiModel.IsSpecified() {
			var m *string
			if !b.DefaultAiModel.IsNull() {
				v := b.DefaultAiModel.MustGet()
				m = &v
			}
			if !equalPtr(m, s.DefaultAIModel) {
				fields = append(fields, "default_ai_model")
				before["default_ai_model"], after["default_ai_model"] = s.DefaultAIModel, m
				s.DefaultAIModel = m
			}
		}
		settingChange("auto_handoff_on_agent_reply", b.AutoHandoffOnAgentReply, &s.AutoHandoffOnAgentReply, &fields, before, after)
		settingChange("reset_bot_on_resolve", b.ResetBotOnResolve, &s.ResetBotOnResolve, &fields, before, after)
		settingChange("bot_fallback_message", b.BotFallbackMessage, &s.BotFallbackMessage, &fields, before, after)
		settingChange("conversation_reopen_hours", b.ConversationReopenHours, &s.ConversationReopenHours, &fields, before, after)
		settingChange("auto_resolve_after_hours", b.AutoResolveAfterHours, &s.AutoResolveAfterHours, &fields, before, after)
		settingChange("send_read_receipts", b.SendReadReceipts, &s.SendReadReceipts, &fields, before, after)
		settingChange("messenger_human_agent_tag", b.MessengerHumanAgentTag, &s.MessengerHumanAgentTag, &fields, before, after)
		if len(fields) == 0 {
			return nil // {} or only equal values: no write, no audit row
		}
		if err := store.SaveSettings(ctx, tx, s); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "settings.update", ResourceType: "settings", Fields: fields, Before: before, After: after})
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateSettings200JSONResponse{SettingsJSONResponse: api.SettingsJSONResponse{Body: settingsOf(out)}}, nil
}

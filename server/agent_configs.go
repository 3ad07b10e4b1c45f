package server

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/store"
)

func agentConfigLocation(flowID int64) string {
	return fmt.Sprintf("%s/agent-configs/%d", BasePath, flowID)
}

func agentConfigErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Agent config")
	}
	return err
}

func agentConfigOut(c *store.AgentConfig) api.AgentConfig {
	return api.AgentConfig{
		Id: c.ID, FlowId: c.FlowID, Name: c.Name, Personality: api.AgentPersonality(c.Personality), Tone: api.AgentTone(c.Tone),
		Language: c.Language, SystemPrompt: c.SystemPrompt, Temperature: NullableFrom(c.Temperature),
		MaxTokens: NullableFrom(c.MaxTokens), Model: NullableFrom(c.Model),
		CreatedAt: apitime.From(c.CreatedAt), UpdatedAt: apitime.From(c.UpdatedAt),
	}
}

// checkAgentModel is 422 model-unknown unless the model is a chat model of the AI catalogue.
func checkAgentModel(model *string) error {
	if model == nil {
		return nil
	}
	if m, ok := ai.LookupModel(*model); ok && m.Kind == ai.KindChat {
		return nil
	}
	return unprocessable("model-unknown", fmt.Sprintf("%q is not a chat model of the AI catalogue.", *model),
		FieldError{Pointer: "/model", Detail: "is not a chat model of the catalogue", Code: "model-unknown"})
}

// agentConfigFlow reads the flow an agent config belongs to as the caller may see it (404 otherwise,
// PRODUCT §4.3: configs follow their flow) and, for a change, checks that the caller may edit the
// flow (403).
func (s *Server) agentConfigFlow(ctx context.Context, flowID int64, edit bool) (*store.Flow, error) {
	p, v := viewerOf(ctx)
	db := s.deps.DB.DB
	f, err := store.GetFlow(ctx, db, v, flowID)
	if err != nil {
		return nil, flowErr(err)
	}
	if !edit {
		return f, nil
	}
	ok, err := canEdit(ctx, db, p, f)
	if err != nil {
		return nil, err
	}
	if !ok {
		pr := forbidden("")
		pr.Detail = "Only the flow's owner, an admin or a member of its team may change its agent config."
		return nil, pr
	}
	return f, nil
}

func (h *handlers) GetAgentConfig(ctx context.Context, req api.GetAgentConfigRequestObject) (api.GetAgentConfigResponseObject, error) {
	f, err := h.s.agentConfigFlow(ctx, req.FlowId, false)
	if err != nil {
		return nil, err
	}
	c, err := store.GetAgentConfig(ctx, h.s.deps.DB.DB, f.ID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, notFound("Agent config")
	}
	return api.GetAgentConfig200JSONResponse{Body: agentConfigOut(c)}, nil
}

func (h *handlers) CreateAgentConfig(ctx context.Context, req api.CreateAgentConfigRequestObject) (api.CreateAgentConfigResponseObject, error) {
	b := req.Body
	f, err := h.s.agentConfigFlow(ctx, b.FlowId, true)
	if err != nil {
		return nil, err
	}
	c := &store.AgentConfig{FlowID: f.ID, Name: b.Name, SystemPrompt: b.SystemPrompt,
		Personality: store.DefaultPersonality, Tone: store.DefaultTone, Language: store.DefaultLanguage}
	if b.Personality != nil {
		c.Personality = string(*b.Personality)
	}
	if b.Tone != nil {
		c.Tone = string(*b.Tone)
	}
	if b.Language != nil {
		c.Language = *b.Language
	}
	if b.Temperature.IsSpecified() && !b.Temperature.IsNull() {
		v := b.Temperature.MustGet()
		c.Temperature = &v
	}
	if b.MaxTokens.IsSpecified() && !b.MaxTokens.IsNull() {
		v := b.MaxTokens.MustGet()
		c.MaxTokens = &v
	}
	c.Model = nullableString(b.Model.IsSpecified(), b.Model.IsNull(), b.Model.MustGet)
	if err := checkAgentModel(c.Model); err != nil {
		return nil, err
	}
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.SaveAgentConfig(ctx, tx, c); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "agent_config.create", ResourceType: "agent_config", ResourceID: c.ID,
			After: map[string]any{"flow_id": c.FlowID, "name": c.Name}})
	})
	if errors.Is(err, store.ErrConflict) {
		// After the rollback: PostgreSQL refuses statements in a failed transaction, and SQLite's one
		// connection was the transaction's.
		p := conflict("already-exists", "This flow already has an agent config; update it instead.")
		if cur, gerr := store.GetAgentConfig(ctx, h.s.deps.DB.DB, f.ID); gerr == nil && cur != nil {
			p.ExistingID = &cur.ID
		}
		return nil, p
	}
	if err != nil {
		return nil, err
	}
	return api.CreateAgentConfig201JSONResponse{Body: agentConfigOut(c),
		Headers: api.CreateAgentConfig201ResponseHeaders{Location: agentConfigLocation(f.ID)}}, nil
}

func (h *handlers) UpdateAgentConfig(ctx context.Context, req api.UpdateAgentConfigRequestObject) (api.UpdateAgentConfigResponseObject, error) {
	f, err := h.s.agentConfigFlow(ctx, req.FlowId, true)
	if err != nil {
		return nil, err
	}
	b := req.Body
	if b.Model.IsSpecified() && !b.Model.IsNull() {
		m := b.Model.MustGet()
		if err := checkAgentModel(&m); err != nil {
			return nil, err
		}
	}
	var c *store.AgentConfig
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if c, err = store.GetAgentConfigForUpdate(ctx, tx, f.ID); err != nil {
			return agentConfigErr(err)
		}
		var fields []string
		set := func(name string, changed bool) {
			if changed {
				fields = append(fields, name)
			}
		}
		if b.Name != nil {
			set("name", *b.Name != c.Name)
			c.Name = *b.Name
		}
		if b.Personality != nil {
			set("personality", string(*b.Personality) != c.Personality)
			c.Personality = string(*b.Personality)
		}
		if b.Tone != nil {
			set("tone", string(*b.Tone) != c.Tone)
			c.Tone = string(*b.Tone)
		}
		if b.Language != nil {
			set("language", *b.Language != c.Language)
			c.Language = *b.Language
		}
		if b.SystemPrompt != nil {
			set("system_prompt", *b.SystemPrompt != c.SystemPrompt)
			c.SystemPrompt = *b.SystemPrompt
		}
		if b.Temperature.IsSpecified() {
			var v *float64
			if !b.Temperature.IsNull() {
				t := b.Temperature.MustGet()
				v = &t
			}
			set("temperature", !equalPtr(v, c.Temperature))
			c.Temperature = v
		}
		if b.MaxTokens.IsSpecified() {
			var v *int
			if !b.MaxTokens.IsNull() {
				t := b.MaxTokens.MustGet()
				v = &t
			}
			set("max_tokens", !equalPtr(v, c.MaxTokens))
			c.MaxTokens = v
		}
		if b.Model.IsSpecified() {
			v := nullableString(true, b.Model.IsNull(), b.Model.MustGet)
			set("model", !equalPtr(v, c.Model))
			c.Model = v
		}
		if len(fields) == 0 {
			return nil
		}
		if err := store.SaveAgentConfig(ctx, tx, c); err != nil {
			return agentConfigErr(err)
		}
		// The prompt is the user's content: its name is recorded, never its text.
		return writeAudit(ctx, tx, auditEntry{Action: "agent_config.update", ResourceType: "agent_config", ResourceID: c.ID,
			Fields: fields, After: map[string]any{"flow_id": c.FlowID}})
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateAgentConfig200JSONResponse{Body: agentConfigOut(c)}, nil
}

func (h *handlers) DeleteAgentConfig(ctx context.Context, req api.DeleteAgentConfigRequestObject) (api.DeleteAgentConfigResponseObject, error) {
	f, err := h.s.agentConfigFlow(ctx, req.FlowId, true)
	if err != nil {
		return nil, err
	}
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		c, err := store.GetAgentConfigForUpdate(ctx, tx, f.ID)
		if err != nil {
			return agentConfigErr(err)
		}
		if err := store.DeleteAgentConfig(ctx, tx, f.ID); err != nil {
			return agentConfigErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "agent_config.delete", ResourceType: "agent_config", ResourceID: c.ID,
			Before: map[string]any{"flow_id": c.FlowID, "name": c.Name}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteAgentConfig204Response{}, nil
}

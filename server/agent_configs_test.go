package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/oapi-codegen/nullable"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

func acPath(flowID int64) string { return fmt.Sprintf("%s/agent-configs/%d", BasePath, flowID) }

// acRow reads a flow's config straight from the store (nil when none).
func acRow(t *testing.T, e *testEnv, flowID int64) *store.AgentConfig {
	t.Helper()
	c, err := store.GetAgentConfig(context.Background(), e.DB.DB, flowID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAgentConfigs(t *testing.T) {
	e := newTestEnv(t)
	owner, tok := e.User(rbac.Editor)
	_, otherTok := e.User(rbac.Editor)
	_, viewerTok := e.User(rbac.Viewer)
	_, adminTok := e.User(rbac.Admin)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Support", Data: flGraph(t, ttGraphFull)})

	// None yet: GET is 404, and the engine's accessor answers nil, nil.
	resp, b := flReq(t, e, http.MethodGet, acPath(f.Id), tok, "", nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	if acRow(t, e, f.Id) != nil {
		t.Fatal("GetAgentConfig found a config that does not exist")
	}

	// Create with only the required fields: the defaults are applied, the AI fields stay null.
	var c api.AgentConfig
	resp = ttDo(t, e, http.MethodPost, BasePath+"/agent-configs", tok,
		fmt.Sprintf(`{"flow_id":%d,"name":"Ava","system_prompt":"Be brief."}`, f.Id), http.StatusCreated, &c)
	if resp.Header.Get("Location") != acPath(f.Id) {
		t.Fatalf("Location %q", resp.Header.Get("Location"))
	}
	if c.FlowId != f.Id || c.Name != "Ava" || c.Personality != "friendly" || c.Tone != "informal" || c.Language != "en" ||
		c.SystemPrompt != "Be brief." || !c.Temperature.IsNull() || !c.MaxTokens.IsNull() || !c.Model.IsNull() {
		t.Fatalf("created %+v", c)
	}
	row := acRow(t, e, f.Id)
	if row == nil || row.ID != c.Id || row.Temperature != nil || row.MaxTokens != nil || row.Model != nil {
		t.Fatalf("stored %+v: the AI fields must store no default", row)
	}

	// One per flow.
	resp, b = flReq(t, e, http.MethodPost, BasePath+"/agent-configs", tok,
		fmt.Sprintf(`{"flow_id":%d,"name":"Bob","system_prompt":"x"}`, f.Id), nil)
	if p := flWantProblem(t, resp, b, http.StatusConflict, "already-exists"); p.ExistingID == nil || *p.ExistingID != c.Id {
		t.Fatalf("existing_id %v, want %d", p.ExistingID, c.Id)
	}

	// Partial update; {} and same values change nothing; null clears an AI field.
	var upd api.AgentConfig
	ttDo(t, e, http.MethodPut, acPath(f.Id), tok, `{"tone":"formal","temperature":0.2,"max_tokens":512,"model":"gpt-4o-mini"}`, http.StatusOK, &upd)
	if upd.Tone != "formal" || upd.Temperature.MustGet() != 0.2 || upd.MaxTokens.MustGet() != 512 || upd.Model.MustGet() != "gpt-4o-mini" ||
		upd.Name != "Ava" || upd.Personality != "friendly" {
		t.Fatalf("update %+v", upd)
	}
	before := acRow(t, e, f.Id)
	ttDo(t, e, http.MethodPut, acPath(f.Id), tok, `{}`, http.StatusOK, &upd)
	ttDo(t, e, http.MethodPut, acPath(f.Id), tok, `{"tone":"formal","model":"gpt-4o-mini"}`, http.StatusOK, &upd)
	if after := acRow(t, e, f.Id); !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatal("an update without changes moved updated_at")
	}
	ttDo(t, e, http.MethodPut, acPath(f.Id), tok, `{"temperature":null,"model":null,"language":"pt-BR"}`, http.StatusOK, &upd)
	if !upd.Temperature.IsNull() || !upd.Model.IsNull() || upd.MaxTokens.MustGet() != 512 || upd.Language != "pt-BR" {
		t.Fatalf("clearing update %+v", upd)
	}
	if r := acRow(t, e, f.Id); r.Temperature != nil || r.Model != nil || r.MaxTokens == nil || *r.MaxTokens != 512 {
		t.Fatalf("stored after clearing %+v", r)
	}
	var got api.AgentConfig
	ttDo(t, e, http.MethodGet, acPath(f.Id), tok, "", http.StatusOK, &got)
	if got.Tone != "formal" || got.Language != "pt-BR" || got.Id != c.Id {
		t.Fatalf("get %+v", got)
	}

	// The config follows its flow (PRODUCT §4.3): a private flow's config is 404 to others, and a
	// public one is readable by every holder of flow:read but editable only by who may edit the flow.
	for _, other := range []string{otherTok, viewerTok} {
		resp, b = flReq(t, e, http.MethodGet, acPath(f.Id), other, "", nil)
		flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	}
	resp, b = flReq(t, e, http.MethodPut, acPath(f.Id), otherTok, `{"name":"Hijack"}`, nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	flPatch(t, e, tok, f.Id, api.FlowUpdate{Visibility: flPtr(api.FlowVisibility("public"))})
	ttDo(t, e, http.MethodGet, acPath(f.Id), viewerTok, "", http.StatusOK, &got)
	for _, req := range []struct{ method, body string }{{http.MethodPut, `{"name":"Hijack"}`}, {http.MethodDelete, ""}} {
		resp, b = flReq(t, e, req.method, acPath(f.Id), otherTok, req.body, nil)
		flWantProblem(t, resp, b, http.StatusForbidden, "forbidden")
	}
	resp, b = flReq(t, e, http.MethodPost, BasePath+"/agent-configs", otherTok, fmt.Sprintf(`{"flow_id":%d,"name":"x","system_prompt":"x"}`, f.Id), nil)
	flWantProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = flReq(t, e, http.MethodPut, acPath(f.Id), viewerTok, `{"name":"Hijack"}`, nil)
	if p := flWantProblem(t, resp, b, http.StatusForbidden, "forbidden"); p.MissingPermission != "flow:update" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
	if r := acRow(t, e, f.Id); r.Name != "Ava" {
		t.Fatalf("a refused update changed the config: %+v", r)
	}
	ttDo(t, e, http.MethodPut, acPath(f.Id), adminTok, `{"name":"Ava 2"}`, http.StatusOK, &upd) // admins bypass ownership

	// A team flow's members may edit its config.
	member, memberTok := e.User(rbac.Editor)
	team := tpCreateTeam(t, e, adminTok, "Support team", nil)
	tpSetMembers(t, e, adminTok, team.Id, owner.ID, member.ID)
	tf := flCreate(t, e, tok, api.FlowCreate{Name: "Team flow", Visibility: flPtr(api.FlowVisibility("team")), TeamId: nullable.NewNullableWithValue(team.Id)})
	ttDo(t, e, http.MethodPost, BasePath+"/agent-configs", memberTok,
		fmt.Sprintf(`{"flow_id":%d,"name":"Team","system_prompt":"x","personality":"casual","model":"gemini-2.5-flash"}`, tf.Id), http.StatusCreated, &c)
	if c.Personality != "casual" || c.Model.MustGet() != "gemini-2.5-flash" {
		t.Fatalf("team config %+v", c)
	}

	// Delete: 204, then 404; deleting the flow deletes its config.
	ttDo(t, e, http.MethodDelete, acPath(f.Id), tok, "", http.StatusNoContent, nil)
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		resp, b = flReq(t, e, m, acPath(f.Id), tok, "", nil)
		flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	}
	resp, b = flReq(t, e, http.MethodPut, acPath(f.Id), tok, `{"name":"x"}`, nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	ttDo(t, e, http.MethodDelete, flPath(tf.Id), adminTok, "", http.StatusNoContent, nil)
	var n int64
	if err := e.DB.Model(&store.AgentConfig{}).Where("flow_id = ?", tf.Id).Count(&n).Error; err != nil || n != 0 {
		t.Fatalf("%d configs left after the flow's deletion (%v)", n, err)
	}
	// Creating for a flow that does not exist is 404.
	resp, b = flReq(t, e, http.MethodPost, BasePath+"/agent-configs", tok, `{"flow_id":999999,"name":"x","system_prompt":"x"}`, nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
}

func TestAgentConfigsValidation(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Support", Data: flGraph(t, ttGraphFull)})
	body := func(extra string) string {
		return fmt.Sprintf(`{"flow_id":%d,"name":"Ava","system_prompt":"x"%s}`, f.Id, extra)
	}
	cases := []struct {
		name, body string
		status     int
		slug       string
		pointer    string
	}{
		{"unknown model", body(`,"model":"gpt-9"`), 422, "model-unknown", "/model model-unknown"},
		{"an embedding model", body(`,"model":"gemini-embedding-001"`), 422, "model-unknown", "/model"},
		{"temperature above 2", body(`,"temperature":2.5`), 400, "validation-error", "/temperature maximum"},
		{"negative temperature", body(`,"temperature":-0.1`), 400, "validation-error", "/temperature minimum"},
		{"max_tokens 0", body(`,"max_tokens":0`), 400, "validation-error", "/max_tokens minimum"},
		{"max_tokens over 8192", body(`,"max_tokens":8193`), 400, "validation-error", "/max_tokens maximum"},
		{"unknown personality", body(`,"personality":"grumpy"`), 400, "validation-error", "/personality enum"},
		{"unknown tone", body(`,"tone":"loud"`), 400, "validation-error", "/tone enum"},
		{"bad language tag", body(`,"language":"english!"`), 400, "validation-error", "/language pattern"},
		{"empty system prompt", fmt.Sprintf(`{"flow_id":%d,"name":"Ava","system_prompt":""}`, f.Id), 400, "validation-error", "/system_prompt minLength"},
		{"missing system prompt", fmt.Sprintf(`{"flow_id":%d,"name":"Ava"}`, f.Id), 400, "validation-error", "/system_prompt required"},
		{"name too long", fmt.Sprintf(`{"flow_id":%d,"name":"%0101d","system_prompt":"x"}`, f.Id, 0), 400, "validation-error", "/name maxLength"},
		{"unknown member", body(`,"flow":1`), 400, "validation-error", "/flow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := flReq(t, e, http.MethodPost, BasePath+"/agent-configs", tok, tc.body, nil)
			flWantProblem(t, resp, b, tc.status, tc.slug, tc.pointer)
			if acRow(t, e, f.Id) != nil {
				t.Fatal("a refused create stored a config")
			}
		})
	}
	ttDo(t, e, http.MethodPost, BasePath+"/agent-configs", tok, body(""), http.StatusCreated, nil)
	for _, tc := range []struct{ body, slug, pointer string }{
		{`{"model":"nope"}`, "model-unknown", "/model"},
		{`{"name":null}`, "validation-error", "/name"},
		{`{"system_prompt":null}`, "validation-error", "/system_prompt"},
		{`{"max_tokens":1.5}`, "validation-error", "/max_tokens"},
	} {
		resp, b := flReq(t, e, http.MethodPut, acPath(f.Id), tok, tc.body, nil)
		status := http.StatusBadRequest
		if tc.slug == "model-unknown" {
			status = http.StatusUnprocessableEntity
		}
		flWantProblem(t, resp, b, status, tc.slug, tc.pointer)
	}
	if r := acRow(t, e, f.Id); r.Model != nil || r.Name != "Ava" {
		t.Fatalf("refused updates changed the config: %+v", r)
	}
}

// Every change to an agent config writes one audit row, never with the prompt's text; no-ops and
// refusals write none.
func TestAgentConfigsAuditRows(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Editor)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Support", Data: flGraph(t, ttGraphFull)})
	var c api.AgentConfig
	ttDo(t, e, http.MethodPost, BasePath+"/agent-configs", tok,
		fmt.Sprintf(`{"flow_id":%d,"name":"Ava","system_prompt":"secret-ish prompt text"}`, f.Id), http.StatusCreated, &c)
	expect := func(n int, action string, fields ...string) {
		t.Helper()
		rows := ttAudit(t, e, "agent_config", c.Id)
		if len(rows) != n {
			t.Fatalf("%s: %d rows, want %d", action, len(rows), n)
		}
		r := rows[0]
		if r.Action != action || r.ActorUserID == nil || *r.ActorUserID != u.ID {
			t.Fatalf("%s: row %+v", action, r)
		}
		if len(fields) > 0 && !slices.Equal(ttAuditFields(t, r), fields) {
			t.Fatalf("%s: fields %v, want %v", action, ttAuditFields(t, r), fields)
		}
		if r.Changes != nil && (strings.Contains(string(*r.Changes), "secret-ish") || strings.Contains(string(*r.Changes), "new prompt")) {
			t.Fatalf("%s: the audit row holds the prompt: %s", action, *r.Changes)
		}
	}
	expect(1, "agent_config.create")
	ttDo(t, e, http.MethodPut, acPath(f.Id), tok, `{}`, http.StatusOK, nil)
	ttDo(t, e, http.MethodPut, acPath(f.Id), tok, `{"name":"Ava"}`, http.StatusOK, nil)
	expect(1, "agent_config.create")
	ttDo(t, e, http.MethodPut, acPath(f.Id), tok, `{"name":"Ava 2","system_prompt":"new prompt","temperature":1}`, http.StatusOK, nil)
	expect(2, "agent_config.update", "name", "system_prompt", "temperature")
	resp, b := flReq(t, e, http.MethodPut, acPath(f.Id), tok, `{"name":"Ava 3","model":"nope"}`, nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "model-unknown")
	resp, b = flReq(t, e, http.MethodPost, BasePath+"/agent-configs", tok, fmt.Sprintf(`{"flow_id":%d,"name":"x","system_prompt":"x"}`, f.Id), nil)
	flWantProblem(t, resp, b, http.StatusConflict, "already-exists")
	expect(2, "agent_config.update")
	ttDo(t, e, http.MethodDelete, acPath(f.Id), tok, "", http.StatusNoContent, nil)
	expect(3, "agent_config.delete")
}

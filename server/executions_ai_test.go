package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/ai/aitest"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
)

// AI nodes run against a fake Gemini and take their model from the precedence chain of PRODUCT §6.3:
// the node's config, then the flow's agent config (§5.14, with its persona as the system prompt), then
// settings.default_ai_model, then AI_DEFAULT_MODEL.
func TestExecutionsAIPrecedence(t *testing.T) {
	t.Parallel()
	gem := aitest.NewGemini(t)
	e := newTestEnv(t, map[string]string{"GEMINI_BASE_URL": gem.URL, "GOOGLE_API_KEY": "test-gemini-key", "AI_DEFAULT_MODEL": "gemini-2.5-flash"})
	_, tok := e.User(rbac.Admin)
	graph := func(cfg string) string {
		return `{"nodes":[` +
			`{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-manual","config":{}}},` +
			`{"id":"ai_1","type":"custom","position":{"x":1,"y":0},"data":{"type":"ai-gemini","config":{"prompt":"Say hi to {{input.who}}"` + cfg + `}}},` +
			`{"id":"r1","type":"custom","position":{"x":2,"y":0},"data":{"type":"response-data","config":{"body":{"said":"{{ai_1.response}}","model":"{{ai_1.model}}"}}}}` +
			`],"edges":[{"id":"e1","source":"t1","target":"ai_1"},{"id":"e2","source":"ai_1","target":"r1"}]}`
	}
	run := func(flowID int64) (api.Execution, aitest.Request) {
		t.Helper()
		_, ex, b := exRun(t, e, tok, flowID, map[string]any{"who": "Ada"}, 10000)
		if ex == nil || ex.Status != api.ExecutionStatus("completed") {
			t.Fatalf("run: %s", b)
		}
		req, ok := gem.LastRequest()
		if !ok {
			t.Fatal("the fake Gemini saw no request")
		}
		return *ex, req
	}

	// 1. Nothing set anywhere: AI_DEFAULT_MODEL; the key from config; the prompt resolved.
	plain := flCreate(t, e, tok, api.FlowCreate{Name: "AI", Data: flGraph(t, graph(""))})
	ex, req := run(plain.Id)
	if req.Model != "gemini-2.5-flash" || req.APIKey != "test-gemini-key" || len(req.Messages) != 1 || req.Messages[0].Content != "Say hi to Ada" {
		t.Fatalf("request = model %s key %q messages %+v", req.Model, req.APIKey, req.Messages)
	}
	if !strings.Contains(fmt.Sprint(ex.OutputData), "echo: Say hi to Ada") {
		t.Fatalf("output_data = %v", ex.OutputData)
	}

	// 2. settings.default_ai_model beats AI_DEFAULT_MODEL.
	r, b := e.Do(http.MethodPatch, BasePath+"/settings", tok, "application/json", strings.NewReader(`{"default_ai_model":"gemini-2.0-flash"}`))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("settings: %d %s", r.StatusCode, b)
	}
	if _, req = run(plain.Id); req.Model != "gemini-2.0-flash" {
		t.Fatalf("with settings, model = %s", req.Model)
	}

	// 3. The agent config beats settings, and its persona becomes the system prompt.
	r, b = e.Do(http.MethodPost, BasePath+"/agent-configs", tok, "application/json", strings.NewReader(fmt.Sprintf(
		`{"flow_id":%d,"name":"Ava","personality":"professional","tone":"formal","language":"fr","system_prompt":"Only talk about coffee.","model":"gemini-2.5-pro","temperature":0.2,"max_tokens":300}`, plain.Id)))
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("agent config: %d %s", r.StatusCode, b)
	}
	_, req = run(plain.Id)
	if req.Model != "gemini-2.5-pro" || req.Temperature == nil || *req.Temperature != 0.2 || req.MaxTokens == nil || *req.MaxTokens != 300 {
		t.Fatalf("with agent config: model %s temperature %v max_tokens %v", req.Model, req.Temperature, req.MaxTokens)
	}
	if !strings.Contains(req.System, "Only talk about coffee.") || !strings.Contains(req.System, "professional") || !strings.Contains(req.System, `"fr"`) {
		t.Fatalf("system prompt = %q", req.System)
	}

	// 4. The node's own config beats everything; an OpenAI model in the chain of ai-gemini is skipped.
	own := flCreate(t, e, tok, api.FlowCreate{Name: "AI own", Data: flGraph(t, graph(`,"model":"gemini-2.5-flash","temperature":1.5`))})
	if _, req = run(own.Id); req.Model != "gemini-2.5-flash" || req.Temperature == nil || *req.Temperature != 1.5 {
		t.Fatalf("node config: model %s temperature %v", req.Model, req.Temperature)
	}
	r, b = e.Do(http.MethodPatch, BasePath+"/settings", tok, "application/json", strings.NewReader(`{"default_ai_model":"gpt-4o"}`))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("settings: %d %s", r.StatusCode, b)
	}
	other := flCreate(t, e, tok, api.FlowCreate{Name: "AI other", Data: flGraph(t, graph(""))})
	if _, req = run(other.Id); req.Model != "gemini-2.5-flash" {
		t.Fatalf("an OpenAI default was not skipped for ai-gemini: %s", req.Model)
	}

	// A provider failure fails the node with its code (not retried without a retry policy).
	gem.Fail(http.StatusBadRequest, "bad request from the fake")
	_, fx, fb := exRun(t, e, tok, plain.Id, map[string]any{"who": "x"}, 10000)
	if fx == nil || fx.Status != api.ExecutionStatus("failed") {
		t.Fatalf("failing provider: %s", fb)
	}
	if ev, _ := fx.Error.Get(); ev.Code != "ai-rejected" {
		t.Fatalf("error = %+v", ev)
	}
	if strings.Contains(string(fb), "test-gemini-key") {
		t.Fatal("the provider key reached a response")
	}
}

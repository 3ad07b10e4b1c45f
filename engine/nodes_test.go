package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wataomi/wataomi/ai/aitest"
	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/netguard"
)

func TestConditionBranches(t *testing.T) {
	r := newRig(t)
	input := map[string]any{
		"n": 10, "s": "Hello World", "tags": []any{"a", "b"}, "obj": map[string]any{"k": 1},
		"blank": "   ", "t1": "2030-01-01T10:00:00Z", "t2": "2030-01-01T11:00:00+02:00",
	}
	cases := []struct {
		op      string
		v1, v2  any
		cs      bool
		want    bool
		comment string
	}{
		{"equals", "{{t.input.n}}", "10.0", false, true, "numbers compare numerically"},
		{"equals", "{{t.input.s}}", " hello world ", false, true, "strings: trimmed, case-insensitive"},
		{"equals", "{{t.input.s}}", "hello world", true, false, "case_sensitive"},
		{"equals", "{{t.input.obj}}", `{"k": 1.0}`, false, true, "objects as canonical JSON"},
		{"not_equals", "{{t.input.n}}", 11, false, true, "different numbers"},
		{"not_equals", "{{t.input.s}}", "HELLO WORLD", false, false, "equal strings in another case"},
		{"contains", "{{t.input.s}}", "WORLD", false, true, "substring"},
		{"contains", "{{t.input.tags}}", "b", false, true, "array element"},
		{"contains", "{{t.input.tags}}", "c", false, false, "no such element"},
		{"contains", "{{t.input.obj}}", "k", false, true, "object key"},
		{"greater_than", "{{t.input.n}}", 9.5, false, true, "int against float"},
		{"greater_than", "{{t.input.n}}", "11", false, false, "a numeric string"},
		{"less_than", "{{t.input.t1}}", "{{t.input.t2}}", false, false, "timestamps in time: t2 is 09:00Z"},
		{"less_than", "{{t.input.t2}}", "{{t.input.t1}}", false, true, "timestamps reversed"},
		{"is_empty", "{{t.input.blank}}", nil, false, true, "whitespace"},
		{"is_empty", "{{t.input.missing}}", nil, false, true, "a missing key is empty"},
		{"is_empty", "{{t.input.tags}}", nil, false, false, "a non-empty array"},
		{"is_not_empty", "{{t.input.s}}", nil, false, true, "a string"},
		{"is_not_empty", "{{t.input.missing}}", nil, false, false, "a missing key"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[tc.op] = true
		name := tc.op + "/" + tc.comment
		t.Run(name, func(t *testing.T) {
			c := condition("c", tc.op, tc.v1, tc.v2)
			if tc.cs {
				c.cfg["case_sensitive"] = true
			}
			g := buildGraph(t, []gnode{
				manual(), c,
				transform("yes", map[string]any{"v": `"yes"`}), transform("yes_after", map[string]any{"v": `1`}),
				transform("no", map[string]any{"v": `"no"`}), transform("no_after", map[string]any{"v": `1`}),
			}, []gedge{{"t", "c", ""}, {"c", "yes", "true"}, {"yes", "yes_after", ""}, {"c", "no", "false"}, {"no", "no_after", ""}})
			out, sink := r.run(t, g, input)
			wantOutcome(t, out, "completed", "")
			run, skip := "yes", "no"
			if !tc.want {
				run, skip = skip, run
			}
			wantStatuses(t, sink, map[string]string{
				run: NodeCompleted, run + "_after": NodeCompleted,
				skip: NodeSkipped, skip + "_after": NodeSkipped,
			})
			rec := record(t, sink, "c")
			o := rec.Output.(map[string]any)
			if o["result"] != tc.want || o["operator"] != tc.op || rec.Handle != map[bool]string{true: "true", false: "false"}[tc.want] {
				t.Errorf("condition output %v, handle %q", o, rec.Handle)
			}
		})
	}
	if len(seen) != 7 {
		t.Errorf("only %d operators covered", len(seen))
	}

	mismatches := []struct {
		name, op string
		v1, v2   any
	}{
		{"greater_than on a string", "greater_than", "{{t.input.s}}", 5},
		{"less_than number vs timestamp", "less_than", "{{t.input.n}}", "{{t.input.t1}}"},
		{"greater_than on a missing key", "greater_than", "{{t.input.missing}}", 1},
		{"contains on a number", "contains", "{{t.input.n}}", "1"},
	}
	for _, tc := range mismatches {
		t.Run("type-mismatch/"+tc.name, func(t *testing.T) {
			g := buildGraph(t, []gnode{manual(), condition("c", tc.op, tc.v1, tc.v2),
				transform("yes", map[string]any{"v": `1`}), transform("no", map[string]any{"v": `1`})},
				[]gedge{{"t", "c", ""}, {"c", "yes", "true"}, {"c", "no", "false"}})
			out, sink := r.run(t, g, input)
			wantOutcome(t, out, "failed", "type-mismatch")
			if out.ErrorNode != "c" {
				t.Errorf("error node %q", out.ErrorNode)
			}
			wantStatuses(t, sink, map[string]string{"c": NodeFailed, "yes": "", "no": ""})
		})
	}
}

func TestSwitch(t *testing.T) {
	r := newRig(t)
	sw := gnode{id: "sw", typ: "logic-switch", cfg: map[string]any{
		"value": "{{t.input.level}}",
		"cases": []any{
			map[string]any{"id": "high", "operator": "greater_than", "compare_to": 10},
			map[string]any{"id": "also-high", "operator": "greater_than", "compare_to": 5},
			map[string]any{"id": "low", "operator": "less_than", "compare_to": "{{t.input.floor}}"},
		},
	}}
	g := buildGraph(t, []gnode{manual(), sw,
		transform("on_high", map[string]any{"v": `1`}), transform("on_also", map[string]any{"v": `1`}),
		transform("on_low", map[string]any{"v": `1`}), transform("on_default", map[string]any{"v": `1`}),
	}, []gedge{{"t", "sw", ""}, {"sw", "on_high", "high"}, {"sw", "on_also", "also-high"}, {"sw", "on_low", "low"}, {"sw", "on_default", "default"}})
	cases := []struct {
		level  any
		handle string
		runs   string
	}{
		{50, "high", "on_high"}, // the first match wins over also-high
		{7, "also-high", "on_also"},
		{1, "low", "on_low"},
		{4, "default", "on_default"},
	}
	all := []string{"on_high", "on_also", "on_low", "on_default"}
	for _, tc := range cases {
		t.Run(tc.handle, func(t *testing.T) {
			out, sink := r.run(t, g, map[string]any{"level": tc.level, "floor": 3})
			wantOutcome(t, out, "completed", "")
			want := map[string]string{}
			for _, id := range all {
				want[id] = NodeSkipped
			}
			want[tc.runs] = NodeCompleted
			wantStatuses(t, sink, want)
			rec := record(t, sink, "sw")
			var matched any = tc.handle
			if tc.handle == "default" {
				matched = nil
			}
			if rec.Handle != tc.handle {
				t.Errorf("handle %q, want %q", rec.Handle, tc.handle)
			}
			jsonEqual(t, "switch output", rec.Output, map[string]any{"matched_case": matched})
		})
	}
}

func TestSetVariableThenTransform(t *testing.T) {
	r := newRig(t)
	g := buildGraph(t, []gnode{
		manual(),
		{id: "sv", typ: "logic-set-variable", cfg: map[string]any{"variables": map[string]any{
			"x": `21 * 2`, "who": `"user " + trigger.input.name`,
		}}},
		transform("tr", map[string]any{"y": `vars.x + 1`, "who": `vars.who`, "from_node": `sv.x`}),
		response("r", map[string]any{"y": "{{tr.y}}", "x": "{{vars.x}}", "line": "{{vars.who}}!"}),
	}, chain("t", "sv", "tr", "r"))
	out, sink := r.run(t, g, map[string]any{"name": "Ada"})
	wantOutcome(t, out, "completed", "")
	jsonEqual(t, "set-variable output", record(t, sink, "sv").Output, map[string]any{"x": 42, "who": "user Ada"})
	jsonEqual(t, "transform output", record(t, sink, "tr").Output, map[string]any{"y": 43, "who": "user Ada", "from_node": 42})
	jsonEqual(t, "body", out.OutputData.(map[string]any)["body"], map[string]any{"y": 43, "x": 42, "line": "user Ada!"})
}

func TestAIClassify(t *testing.T) {
	cats := []any{"complaint", "question", "praise"}
	nodes := []gnode{manual(),
		{id: "cl", typ: "ai-classify", cfg: map[string]any{"text": "{{t.input.msg}}", "categories": cats, "instructions": "Be strict."}},
		transform("on_complaint", map[string]any{"v": `1`}), transform("on_question", map[string]any{"v": `1`}),
		transform("on_praise", map[string]any{"v": `1`}), transform("on_fallback", map[string]any{"v": `1`}),
	}
	edges := []gedge{{"t", "cl", ""}, {"cl", "on_complaint", "complaint"}, {"cl", "on_question", "question"},
		{"cl", "on_praise", "praise"}, {"cl", "on_fallback", "fallback"}}
	cases := []struct {
		name   string
		reply  any
		handle string
		output map[string]any
	}{
		{"match", map[string]any{"category": "complaint", "confidence": 0.9}, "complaint",
			map[string]any{"category": "complaint", "confidence": 0.9, "matched": true}},
		{"match ignores case", map[string]any{"category": "Praise", "confidence": 0.6}, "praise",
			map[string]any{"category": "praise", "confidence": 0.6, "matched": true}},
		{"unknown category", map[string]any{"category": "spam", "confidence": 0.4}, "fallback",
			map[string]any{"category": nil, "confidence": 0.4, "matched": false}},
		{"null category", map[string]any{"category": nil}, "fallback",
			map[string]any{"category": nil, "matched": false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.gemini.ReplyJSON(tc.reply)
			g := buildGraph(t, nodes, edges)
			out, sink := r.run(t, g, map[string]any{"msg": "My order arrived broken"})
			wantOutcome(t, out, "completed", "")
			rec := record(t, sink, "cl")
			if rec.Handle != tc.handle {
				t.Errorf("handle %q, want %q", rec.Handle, tc.handle)
			}
			jsonEqual(t, "classify output", rec.Output, tc.output)
			want := map[string]string{}
			for _, h := range []string{"complaint", "question", "praise", "fallback"} {
				want["on_"+h] = NodeSkipped
			}
			want["on_"+tc.handle] = NodeCompleted
			wantStatuses(t, sink, want)

			req, ok := r.gemini.LastRequest()
			if !ok || !req.JSON || req.Model != "gemini-2.5-flash" {
				t.Fatalf("request %+v", req)
			}
			if len(req.Messages) != 1 || !strings.Contains(req.Messages[0].Content, "My order arrived broken") ||
				!strings.Contains(req.Messages[0].Content, `["complaint","question","praise"]`) {
				t.Errorf("user message %+v", req.Messages)
			}
			if !strings.Contains(req.System, "Be strict.") {
				t.Errorf("system prompt %q lacks the instructions", req.System)
			}
		})
	}
}

func TestAIChatConfig(t *testing.T) {
	r := newRig(t)
	r.gemini.Reply("pong")
	g := buildGraph(t, []gnode{manual(),
		{id: "ai", typ: "ai-gemini", cfg: map[string]any{
			"prompt": "Say {{t.input.word}}", "system_prompt": "Answer in {{t.input.lang}}.",
			"model": "gemini-2.5-pro", "temperature": 0.2, "max_tokens": 256,
		}},
		response("r", map[string]any{"answer": "{{ai.response}}"}),
	}, chain("t", "ai", "r"))
	out, sink := r.run(t, g, map[string]any{"word": "ping", "lang": "French"})
	wantOutcome(t, out, "completed", "")
	req, _ := r.gemini.LastRequest()
	if req.Model != "gemini-2.5-pro" || req.Temperature == nil || *req.Temperature != 0.2 || req.MaxTokens == nil || *req.MaxTokens != 256 {
		t.Errorf("the fake saw model %q temperature %v max_tokens %v", req.Model, deref(req.Temperature), deref(req.MaxTokens))
	}
	if req.System != "Answer in French." || len(req.Messages) != 1 || req.Messages[0] != (aitest.Message{Role: "user", Content: "Say ping"}) {
		t.Errorf("the fake saw system %q messages %+v", req.System, req.Messages)
	}
	o := record(t, sink, "ai").Output.(map[string]any)
	if o["response"] != "pong" || o["model"] != "gemini-2.5-pro" || o["provider"] != "gemini" || o["finish_reason"] != "stop" || o["usage"] == nil {
		t.Errorf("output %v", o)
	}
	jsonEqual(t, "body", out.OutputData.(map[string]any)["body"], map[string]any{"answer": "pong"})
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestAIPrecedence(t *testing.T) {
	str := func(s string) *string { return &s }
	f64 := func(f float64) *float64 { return &f }
	num := func(n int) *int { return &n }
	cases := []struct {
		name         string
		typ          string
		cfg          map[string]any
		agent        *AgentDefaults
		defaultModel string
		provider     string
		model        string
		temperature  float64
		maxTokens    int
		system       string
	}{
		{"node config wins", "ai-gemini", map[string]any{"model": "gemini-2.5-pro", "temperature": 1.5, "max_tokens": 50},
			&AgentDefaults{Model: str("gemini-2.0-flash"), Temperature: f64(0.1), MaxTokens: num(99), SystemPrompt: "agent"}, "gemini-2.5-flash-lite",
			"gemini", "gemini-2.5-pro", 1.5, 50, "agent"},
		{"agent config", "ai-gemini", nil,
			&AgentDefaults{Model: str("gemini-2.0-flash"), Temperature: f64(0.1), MaxTokens: num(99), SystemPrompt: "You are Omi."}, "gemini-2.5-flash-lite",
			"gemini", "gemini-2.0-flash", 0.1, 99, "You are Omi."},
		{"agent model of another provider is skipped", "ai-gemini", nil,
			&AgentDefaults{Model: str("gpt-4o")}, "gemini-2.5-flash-lite",
			"gemini", "gemini-2.5-flash-lite", 0.7, 1024, ""},
		{"settings default", "ai-gemini", nil, nil, "gemini-2.5-flash-lite",
			"gemini", "gemini-2.5-flash-lite", 0.7, 1024, ""},
		{"type default", "ai-gemini", nil, nil, "",
			"gemini", "gemini-2.5-flash", 0.7, 1024, ""},
		{"openai skips a gemini default", "ai-openai", nil, nil, "gemini-2.5-flash-lite",
			"openai", "gpt-4o", 0.7, 1024, ""},
		{"ai-chat takes the agent's openai model", "ai-chat", map[string]any{"temperature": 0},
			&AgentDefaults{Model: str("gpt-4.1-mini"), Temperature: f64(0.9)}, "gemini-2.5-flash-lite",
			"openai", "gpt-4.1-mini", 0, 1024, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			var agentCalls atomic.Int32
			r.x.Services.Agent = func(_ context.Context, flowID int64) (*AgentDefaults, error) {
				agentCalls.Add(1)
				if flowID != 1 {
					t.Errorf("agent config asked for flow %d", flowID)
				}
				return tc.agent, nil
			}
			if tc.defaultModel != "" {
				r.x.Services.DefaultModel = func(context.Context) string { return tc.defaultModel }
			}
			cfg := map[string]any{"prompt": "hi"}
			for k, v := range tc.cfg {
				cfg[k] = v
			}
			g := buildGraph(t, []gnode{manual(), {id: "ai", typ: tc.typ, cfg: cfg}}, chain("t", "ai"))
			out, sink := r.run(t, g, nil)
			wantOutcome(t, out, "completed", "")
			fake := r.gemini
			if tc.provider == "openai" {
				fake = r.openai
			}
			req, ok := fake.LastRequest()
			if !ok {
				t.Fatalf("the %s fake saw no request", tc.provider)
			}
			if req.Model != tc.model {
				t.Errorf("model %q, want %q", req.Model, tc.model)
			}
			if req.Temperature == nil || *req.Temperature != tc.temperature {
				t.Errorf("temperature %v, want %v", deref(req.Temperature), tc.temperature)
			}
			if req.MaxTokens == nil || *req.MaxTokens != tc.maxTokens {
				t.Errorf("max tokens %v, want %v", deref(req.MaxTokens), tc.maxTokens)
			}
			if req.System != tc.system {
				t.Errorf("system %q, want %q", req.System, tc.system)
			}
			if agentCalls.Load() != 1 {
				t.Errorf("agent config read %d times", agentCalls.Load())
			}
			if o := record(t, sink, "ai").Output.(map[string]any); o["model"] != tc.model || o["provider"] != tc.provider {
				t.Errorf("output model %v provider %v", o["model"], o["provider"])
			}
		})
	}
}

func TestAIOpenAIJSON(t *testing.T) {
	r := newRig(t)
	r.openai.ReplyJSON(map[string]any{"answer": 42, "tags": []any{"x"}})
	g := buildGraph(t, []gnode{manual(),
		{id: "ai", typ: "ai-openai", cfg: map[string]any{"prompt": "Answer as JSON", "json_output": true}},
		response("r", map[string]any{"answer": "{{ai.json.answer}}"}),
	}, chain("t", "ai", "r"))
	out, sink := r.run(t, g, nil)
	wantOutcome(t, out, "completed", "")
	req, _ := r.openai.LastRequest()
	if !req.JSON || req.Model != "gpt-4o" {
		t.Errorf("request JSON=%v model %q", req.JSON, req.Model)
	}
	o := record(t, sink, "ai").Output.(map[string]any)
	jsonEqual(t, "json", o["json"], map[string]any{"answer": 42, "tags": []any{"x"}})
	if o["provider"] != "openai" {
		t.Errorf("provider %v", o["provider"])
	}
	jsonEqual(t, "body", out.OutputData.(map[string]any)["body"], map[string]any{"answer": 42})

	// Without json_output there is no json key.
	r.openai.ReplyJSON(map[string]any{"answer": 1})
	g = buildGraph(t, []gnode{manual(), {id: "ai", typ: "ai-openai", cfg: map[string]any{"prompt": "hi"}}}, chain("t", "ai"))
	out, sink = r.run(t, g, nil)
	wantOutcome(t, out, "completed", "")
	if o := record(t, sink, "ai").Output.(map[string]any); o["json"] != nil {
		t.Errorf("json without json_output: %v", o["json"])
	}
}

func TestAIRetry(t *testing.T) {
	cases := []struct {
		name     string
		steps    []aitest.Step
		retry    map[string]any
		status   string
		attempt  int
		requests int
		sleeps   []time.Duration
		code     string
	}{
		{"429 then success", []aitest.Step{{Status: 429, Message: "slow down"}, {Text: "ok"}},
			map[string]any{"max_attempts": 2, "backoff_ms": 100}, NodeCompleted, 2, 2, []time.Duration{100 * time.Millisecond}, ""},
		{"503 twice then success", []aitest.Step{{Status: 503, Message: "busy"}, {Status: 503, Message: "busy"}, {Text: "ok"}},
			map[string]any{"max_attempts": 3, "backoff_ms": 100, "exponential": true}, NodeCompleted, 3, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, ""},
		{"429 without a retry policy", []aitest.Step{{Status: 429, Message: "slow down"}},
			nil, NodeFailed, 1, 1, nil, "ai-rate-limited"},
		{"400 is not retried", []aitest.Step{{Status: 400, Message: "bad"}},
			map[string]any{"max_attempts": 3, "backoff_ms": 100}, NodeFailed, 1, 1, nil, "ai-rejected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.gemini.Push(tc.steps...)
			n := gnode{id: "ai", typ: "ai-gemini", cfg: map[string]any{"prompt": "hi"}, retry: tc.retry}
			g := buildGraph(t, []gnode{manual(), n}, chain("t", "ai"))
			out, sink := r.run(t, g, nil)
			rec := record(t, sink, "ai")
			if rec.Status != tc.status || rec.Attempt != tc.attempt {
				t.Errorf("status %s attempt %d, want %s attempt %d (%v)", rec.Status, rec.Attempt, tc.status, tc.attempt, rec.Error)
			}
			if got := len(r.gemini.Requests()); got != tc.requests {
				t.Errorf("requests %d, want %d", got, tc.requests)
			}
			if got := r.slept(); !reflect.DeepEqual(got, tc.sleeps) {
				t.Errorf("backoffs %v, want %v", got, tc.sleeps)
			}
			if tc.status == NodeCompleted {
				wantOutcome(t, out, "completed", "")
				if rec.Output.(map[string]any)["response"] != "ok" {
					t.Errorf("output %v", rec.Output)
				}
			} else {
				wantOutcome(t, out, "failed", tc.code)
			}
		})
	}
}

func TestAIContentWriter(t *testing.T) {
	r := newRig(t)
	r.openai.Reply("Fresh coffee, every morning.")
	g := buildGraph(t, []gnode{manual(),
		{id: "w", typ: "ai-content-writer", cfg: map[string]any{
			"content_type": "ad_copy", "topic": "our {{t.input.product}} launch", "tone": "friendly", "length": "short", "model": "gpt-4o-mini",
		}},
	}, chain("t", "w"))
	out, sink := r.run(t, g, map[string]any{"product": "cold brew"})
	wantOutcome(t, out, "completed", "")
	req, ok := r.openai.LastRequest()
	if !ok || req.Model != "gpt-4o-mini" || len(req.Messages) != 1 {
		t.Fatalf("request %+v", req)
	}
	prompt := req.Messages[0].Content
	for _, want := range []string{"our cold brew launch", "ad copy", "friendly", "about 100 words"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt %q lacks %q", prompt, want)
		}
	}
	if req.System == "" {
		t.Errorf("no system prompt")
	}
	if o := record(t, sink, "w").Output.(map[string]any); o["response"] != "Fresh coffee, every morning." {
		t.Errorf("output %v", o)
	}
	if n := len(r.gemini.Requests()); n != 0 {
		t.Errorf("the gemini fake saw %d requests", n)
	}
}

func TestHTTPNode(t *testing.T) {
	r := newRig(t)
	var got struct {
		method, path, query, auth, ctype, body string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b := make([]byte, 1024)
		n, _ := req.Body.Read(b)
		got.method, got.path, got.query = req.Method, req.URL.Path, req.URL.RawQuery
		got.auth, got.ctype, got.body = req.Header.Get("Authorization"), req.Header.Get("Content-Type"), string(b[:n])
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Secret-Internal", "hidden")
		w.Header().Set("X-Request-Id", "rq-1")
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"id": 7}`))
	}))
	t.Cleanup(srv.Close)
	h := gnode{id: "h", typ: "action-http", cfg: map[string]any{
		"url":     srv.URL + "/items/{{t.input.id}}",
		"method":  "POST",
		"query":   map[string]any{"q": "{{t.input.q}}"},
		"headers": map[string]any{"Authorization": "Bearer {{t.input.token}}"},
		"body":    map[string]any{"n": "{{t.input.n}}", "name": "x"},
	}}
	g := buildGraph(t, []gnode{manual(), h}, chain("t", "h"))
	out, sink := r.run(t, g, map[string]any{"id": "a1", "q": "x y", "token": "s3cret", "n": 5})
	wantOutcome(t, out, "completed", "")
	if got.method != "POST" || got.path != "/items/a1" || got.query != "q=x+y" || got.auth != "Bearer s3cret" ||
		got.ctype != "application/json" || got.body != `{"n":5,"name":"x"}` {
		t.Errorf("the server saw %+v", got)
	}
	rec := record(t, sink, "h")
	o := rec.Output.(map[string]any)
	jsonEqual(t, "status and body", map[string]any{"status": o["status"], "body": o["body"]}, map[string]any{"status": 201, "body": map[string]any{"id": 7}})
	jsonEqual(t, "allow-listed headers", o["headers"], map[string]any{"content-type": "application/json", "content-length": "9", "x-request-id": "rq-1"})
	// The stored input has the secret redacted.
	in, _ := json.Marshal(rec.Input)
	if strings.Contains(string(in), "s3cret") || !strings.Contains(string(in), `"Authorization":"[redacted]"`) {
		t.Errorf("stored input %s", in)
	}
	// The executor checkpoints around a node with side effects.
	if sink.Checkpoints < 2 {
		t.Errorf("checkpoints %d", sink.Checkpoints)
	}
}

func TestSSRFThroughTheNode(t *testing.T) {
	srv, hits := jsonServer(t, 200, map[string]any{})
	guard, err := netguard.New(netguard.Options{BlockPrivate: true}) // no allow-list
	if err != nil {
		t.Fatal(err)
	}
	targets := []struct{ name, url string }{
		{"loopback httptest server", srv.URL + "/x"},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/"},
		{"IPv6 loopback", "http://[::1]:9/"},
		{"RFC 1918", "http://10.0.0.1/"},
	}
	for _, tc := range targets {
		u := tc.url
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.x.Services.HTTP = guard.Client()
			h := httpNode("h", u)
			h.retry = map[string]any{"max_attempts": 3, "backoff_ms": 100}
			g := buildGraph(t, []gnode{manual(), h}, chain("t", "h"))
			start := time.Now()
			out, sink := r.run(t, g, nil)
			wantOutcome(t, out, "failed", "ssrf-blocked")
			if time.Since(start) > 2*time.Second {
				t.Errorf("the refusal took %s", time.Since(start))
			}
			rec := record(t, sink, "h")
			if rec.Attempt != 1 || len(r.slept()) != 0 {
				t.Errorf("an SSRF refusal was retried: attempt %d, sleeps %v", rec.Attempt, r.slept())
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("the loopback server was reached %d times", hits.Load())
	}
}

func TestRegistryCoverage(t *testing.T) {
	var registered []string
	for _, nt := range flow.NodeTypes() {
		registered = append(registered, nt.ID)
	}
	implemented := Implemented()
	slices.Sort(registered)
	slices.Sort(implemented)
	for _, id := range registered {
		if _, ok := handlers[id]; !ok {
			t.Errorf("node type %q is in the catalogue but the executor cannot run it", id)
		}
	}
	for _, id := range implemented {
		if _, ok := flow.LookupNodeType(id); !ok {
			t.Errorf("the executor implements %q, which the catalogue does not list", id)
		}
	}
	if !slices.Equal(registered, implemented) {
		t.Errorf("catalogue %v\nexecutor  %v", registered, implemented)
	}
	// Pure node types must not need the network: the executor skips their
	// checkpoints and timeouts.
	for _, nt := range flow.NodeTypes() {
		if nt.Pure && (nt.Category == "ai" || nt.Category == "action") {
			t.Errorf("%s is marked pure", nt.ID)
		}
	}
}

func TestRedact(t *testing.T) {
	keys := []struct {
		key    string
		secret bool
	}{
		{"Authorization", true}, {"authorization", true}, {"X-Api-Key", true}, {"api_key", true}, {"APIKEY", true},
		{"api key", false}, {"client_secret", true}, {"PASSWORD", true}, {"passwd", true}, {"access_token", true},
		{"Cookie", true}, {"Set-Cookie", true}, {"X-Hub-Signature-256", true}, {"name", false}, {"url", false},
		{"Content-Type", false}, {"apix", false}, {"", false}, {"tökenized", false}, {"secrét", false}, {"mot_de_passe_secret_é", true},
		{"\u212Aey", false}, {"api\u212Aey", true}, // the Kelvin sign folds to k
		{"pa\u017F\u017Fword", true}, // long s folds to s
	}
	for _, tc := range keys {
		if got := isSecretKey(tc.key); got != tc.secret {
			t.Errorf("isSecretKey(%q) = %v, want %v", tc.key, got, tc.secret)
		}
		if got, re := isSecretKey(tc.key), secretKey.MatchString(tc.key); got != re {
			t.Errorf("isSecretKey(%q) = %v, the regexp says %v", tc.key, got, re)
		}
	}
	in := map[string]any{
		"headers": map[string]any{"Authorization": "Bearer x", "Accept": "a"},
		"list":    []any{map[string]any{"token": "t", "keep": 1}, "plain"},
		"Secret":  map[string]any{"nested": "gone"},
	}
	jsonEqual(t, "redacted", redact(in), map[string]any{
		"headers": map[string]any{"Authorization": "[redacted]", "Accept": "a"},
		"list":    []any{map[string]any{"token": "[redacted]", "keep": 1}, "plain"},
		"Secret":  "[redacted]",
	})
	if in["headers"].(map[string]any)["Authorization"] != "Bearer x" {
		t.Errorf("redact changed its input")
	}
}

package ai_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/ai/aitest"
)

const (
	geminiKey = "AIzaSyFAKE-gemini-key-0123456789"
	openAIKey = "sk-proj-FAKE-openai-key-0123456789abcdef"
)

type env struct {
	g, o *aitest.Fake
	r    *ai.Router
}

func newEnv(t *testing.T, mod ...func(*ai.Options)) env {
	t.Helper()
	e := env{g: aitest.NewGemini(t), o: aitest.NewOpenAI(t)}
	opts := ai.Options{GeminiBaseURL: e.g.URL, GeminiKey: geminiKey, OpenAIBaseURL: e.o.URL, OpenAIKey: openAIKey}
	for _, m := range mod {
		m(&opts)
	}
	e.r = ai.New(opts)
	return e
}

// provider describes one provider for the tests that run on both.
type provider struct {
	name  string
	model string // a catalogue chat model of that provider
	key   string
	fake  func(env) *aitest.Fake
	// vocabulary of the provider for the finish reason "length"
	lengthReason string
}

var providers = []provider{
	{name: "gemini", model: "gemini-2.5-flash", key: geminiKey, fake: func(e env) *aitest.Fake { return e.g }, lengthReason: "MAX_TOKENS"},
	{name: "openai", model: "gpt-4o", key: openAIKey, fake: func(e env) *aitest.Fake { return e.o }, lengthReason: "length"},
}

func ptr[T any](v T) *T { return &v }

func user(s string) ai.Message { return ai.Message{Role: ai.RoleUser, Content: s} }

func asError(t *testing.T, err error) *ai.Error {
	t.Helper()
	var e *ai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *ai.Error", err, err)
	}
	return e
}

func lastRequest(t *testing.T, f *aitest.Fake) aitest.Request {
	t.Helper()
	r, ok := f.LastRequest()
	if !ok {
		t.Fatal("the fake received no request")
	}
	return r
}

func TestWireRequest(t *testing.T) {
	cases := []struct {
		name       string
		req        ai.Request
		wantSystem string
		wantMsgs   []aitest.Message
		wantTemp   *float64
		wantMax    *int
		wantJSON   bool
	}{
		{
			name:     "provider defaults are not overridden",
			req:      ai.Request{Messages: []ai.Message{user("hello")}},
			wantMsgs: []aitest.Message{{Role: "user", Content: "hello"}},
		},
		{
			name:     "zero temperature is sent, and max tokens",
			req:      ai.Request{Messages: []ai.Message{user("hello")}, Temperature: ptr(0.0), MaxTokens: ptr(256)},
			wantMsgs: []aitest.Message{{Role: "user", Content: "hello"}},
			wantTemp: ptr(0.0), wantMax: ptr(256),
		},
		{
			name:     "other temperature and max tokens",
			req:      ai.Request{Messages: []ai.Message{user("hello")}, Temperature: ptr(1.3), MaxTokens: ptr(8192)},
			wantMsgs: []aitest.Message{{Role: "user", Content: "hello"}},
			wantTemp: ptr(1.3), wantMax: ptr(8192),
		},
		{
			name: "system prompt and history keep their order and roles",
			req: ai.Request{System: "You are terse.", Messages: []ai.Message{
				user("first"), {Role: ai.RoleAssistant, Content: "answer one"}, user("second"),
			}},
			wantSystem: "You are terse.",
			wantMsgs: []aitest.Message{
				{Role: "user", Content: "first"}, {Role: "assistant", Content: "answer one"}, {Role: "user", Content: "second"},
			},
		},
		{
			name: "system messages are folded into the system prompt",
			req: ai.Request{System: "You are terse.", Messages: []ai.Message{
				{Role: ai.RoleSystem, Content: "Answer in French."}, user("hello"),
			}},
			wantSystem: "You are terse.\n\nAnswer in French.",
			wantMsgs:   []aitest.Message{{Role: "user", Content: "hello"}},
		},
		{
			name:       "json mode",
			req:        ai.Request{System: "Reply as JSON.", Messages: []ai.Message{user("colours")}, JSON: true},
			wantSystem: "Reply as JSON.",
			wantMsgs:   []aitest.Message{{Role: "user", Content: "colours"}},
			wantJSON:   true,
		},
	}
	for _, p := range providers {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t)
				req := tc.req
				req.Model = p.model
				resp, err := e.r.Chat(context.Background(), req)
				if err != nil {
					t.Fatalf("Chat: %v", err)
				}
				got := lastRequest(t, p.fake(e))
				if !got.Valid {
					t.Fatalf("the fake refused the request: %s", got.Body)
				}
				if got.Model != p.model {
					t.Errorf("model sent %q, want %q", got.Model, p.model)
				}
				if got.APIKey != p.key {
					t.Errorf("key sent %q, want %q", got.APIKey, p.key)
				}
				if got.System != tc.wantSystem {
					t.Errorf("system sent %q, want %q", got.System, tc.wantSystem)
				}
				if !reflect.DeepEqual(got.Messages, tc.wantMsgs) {
					t.Errorf("messages sent %+v, want %+v", got.Messages, tc.wantMsgs)
				}
				if !reflect.DeepEqual(got.Temperature, tc.wantTemp) {
					t.Errorf("temperature sent %v, want %v", deref(got.Temperature), deref(tc.wantTemp))
				}
				if !reflect.DeepEqual(got.MaxTokens, tc.wantMax) {
					t.Errorf("max tokens sent %v, want %v", deref(got.MaxTokens), deref(tc.wantMax))
				}
				if got.JSON != tc.wantJSON {
					t.Errorf("json mode sent %v, want %v", got.JSON, tc.wantJSON)
				}
				if resp.Provider != p.name || resp.Model != p.model {
					t.Errorf("response provider/model %q/%q, want %q/%q", resp.Provider, resp.Model, p.name, p.model)
				}
				if tc.wantJSON {
					if want := map[string]any{"echo": "colours"}; !reflect.DeepEqual(resp.JSON, want) {
						t.Errorf("response JSON %#v, want %#v", resp.JSON, want)
					}
				} else if resp.JSON != nil {
					t.Errorf("response JSON %#v without JSON mode", resp.JSON)
				}
			})
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func rawBody(t *testing.T, r aitest.Request) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("request body: %v", err)
	}
	return m
}

// TestGeminiWireShape checks the exact Gemini JSON: systemInstruction at
// the top level (not a content), roles user/model, generationConfig only
// when something is set.
func TestGeminiWireShape(t *testing.T) {
	e := newEnv(t)
	_, err := e.r.Chat(context.Background(), ai.Request{Model: "gemini-2.5-pro", System: "Be kind.",
		Messages: []ai.Message{user("q1"), {Role: ai.RoleAssistant, Content: "a1"}, user("q2")}})
	if err != nil {
		t.Fatal(err)
	}
	got := lastRequest(t, e.g)
	if got.Path != "/v1beta/models/gemini-2.5-pro:generateContent" {
		t.Errorf("path %q", got.Path)
	}
	body := rawBody(t, got)
	if _, ok := body["generationConfig"]; ok {
		t.Errorf("generationConfig sent although nothing was set: %s", got.Body)
	}
	si, _ := body["systemInstruction"].(map[string]any)
	if si == nil {
		t.Fatalf("no systemInstruction in %s", got.Body)
	}
	if !reflect.DeepEqual(si["parts"], []any{map[string]any{"text": "Be kind."}}) {
		t.Errorf("systemInstruction %v", si)
	}
	var roles []any
	for _, c := range body["contents"].([]any) {
		roles = append(roles, c.(map[string]any)["role"])
	}
	if !reflect.DeepEqual(roles, []any{"user", "model", "user"}) {
		t.Errorf("content roles %v, want user, model, user", roles)
	}

	_, err = e.r.Chat(context.Background(), ai.Request{Model: "gemini-2.0-flash", Messages: []ai.Message{user("q")},
		Temperature: ptr(0.2), MaxTokens: ptr(50), JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := rawBody(t, lastRequest(t, e.g))["generationConfig"].(map[string]any)
	want := map[string]any{"temperature": 0.2, "maxOutputTokens": 50.0, "responseMimeType": "application/json"}
	if !reflect.DeepEqual(gc, want) {
		t.Errorf("generationConfig %v, want %v", gc, want)
	}
}

// TestOpenAIWireShape checks the exact OpenAI JSON: the system prompt as
// the first message, max_completion_tokens (or max_tokens in legacy mode),
// json_object with the word JSON present, no temperature for fixed-
// temperature models.
func TestOpenAIWireShape(t *testing.T) {
	e := newEnv(t)
	_, err := e.r.Chat(context.Background(), ai.Request{Model: "gpt-4.1-mini", System: "Be kind.",
		Messages: []ai.Message{user("list three colours")}, MaxTokens: ptr(64), Temperature: ptr(0.5), JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	got := lastRequest(t, e.o)
	if got.Path != "/v1/chat/completions" {
		t.Errorf("path %q", got.Path)
	}
	body := rawBody(t, got)
	msgs := body["messages"].([]any)
	first := msgs[0].(map[string]any)
	if first["role"] != "system" || !strings.HasPrefix(first["content"].(string), "Be kind.") {
		t.Errorf("first message %v, want the system prompt", first)
	}
	if !strings.Contains(strings.ToLower(first["content"].(string)), "json") {
		t.Errorf("JSON mode without the word JSON in the messages (OpenAI refuses that): %v", first)
	}
	if body["max_completion_tokens"] != 64.0 || body["max_tokens"] != nil {
		t.Errorf("max_completion_tokens %v, max_tokens %v", body["max_completion_tokens"], body["max_tokens"])
	}
	if !reflect.DeepEqual(body["response_format"], map[string]any{"type": "json_object"}) {
		t.Errorf("response_format %v", body["response_format"])
	}
	if body["temperature"] != 0.5 {
		t.Errorf("temperature %v", body["temperature"])
	}

	_, err = e.r.Chat(context.Background(), ai.Request{Model: "gpt-5-mini", Messages: []ai.Message{user("q")}, Temperature: ptr(0.3)})
	if err != nil {
		t.Fatal(err)
	}
	if body := rawBody(t, lastRequest(t, e.o)); body["temperature"] != nil {
		t.Errorf("temperature %v sent to a fixed-temperature model", body["temperature"])
	}

	legacy := newEnv(t, func(o *ai.Options) { o.OpenAILegacyMaxTokens = true })
	if _, err := legacy.r.Chat(context.Background(), ai.Request{Model: "gpt-4o", Messages: []ai.Message{user("q")}, MaxTokens: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	if body := rawBody(t, lastRequest(t, legacy.o)); body["max_tokens"] != 10.0 || body["max_completion_tokens"] != nil {
		t.Errorf("legacy mode: max_tokens %v, max_completion_tokens %v", body["max_tokens"], body["max_completion_tokens"])
	}
}

func TestResponseMapping(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t)
			f := p.fake(e)
			f.Push(
				aitest.Step{Text: "hi there", Usage: &aitest.Usage{PromptTokens: 11, CompletionTokens: 7, TotalTokens: 18}},
				aitest.Step{Text: "cut sh", FinishReason: p.lengthReason, NoUsage: true},
			)
			req := ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}}

			resp, err := e.r.Chat(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			want := &ai.Response{Text: "hi there", Model: p.model, ProviderModel: p.model, Provider: p.name,
				FinishReason: "stop", Usage: &ai.Usage{PromptTokens: 11, CompletionTokens: 7, TotalTokens: 18}}
			if !reflect.DeepEqual(resp, want) {
				t.Errorf("response %+v (usage %+v), want %+v (usage %+v)", resp, resp.Usage, want, want.Usage)
			}

			resp, err = e.r.Chat(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != "cut sh" || resp.FinishReason != "length" || resp.Usage != nil {
				t.Errorf("response %+v, want text %q, finish length and no usage", resp, "cut sh")
			}
		})
	}
}

// TestGeminiThoughts: thought parts are not the answer, and thinking
// tokens count as output.
func TestGeminiThoughts(t *testing.T) {
	e := newEnv(t)
	e.g.Push(aitest.Step{Body: `{
	  "candidates": [{"content": {"role": "model", "parts": [
	      {"text": "Let me think about it", "thought": true},
	      {"text": "Forty-two."}]},
	    "finishReason": "STOP", "index": 0}],
	  "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 20, "totalTokenCount": 28},
	  "modelVersion": "gemini-2.5-flash-preview-09-2025"
	}`})
	resp, err := e.r.Chat(context.Background(), ai.Request{Messages: []ai.Message{user("q")}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != "Forty-two." {
		t.Errorf("text %q", resp.Text)
	}
	if *resp.Usage != (ai.Usage{PromptTokens: 5, CompletionTokens: 23, TotalTokens: 28}) {
		t.Errorf("usage %+v", *resp.Usage)
	}
	if resp.Model != "gemini-2.5-flash" || resp.ProviderModel != "gemini-2.5-flash-preview-09-2025" {
		t.Errorf("model %q, provider model %q", resp.Model, resp.ProviderModel)
	}
}

func TestProviderErrors(t *testing.T) {
	type want struct {
		code       string
		retryable  bool
		status     int
		message    string
		retryAfter time.Duration
	}
	cases := []struct {
		name  string
		only  string // provider, or "" for both
		step  aitest.Step
		want  want
		extra func(t *testing.T, e *ai.Error)
	}{
		{name: "429 is rate limited and retryable", step: aitest.Step{Status: 429, Message: "slow down", RetryAfter: 7 * time.Second},
			want: want{ai.CodeRateLimited, true, 429, "slow down", 7 * time.Second}},
		{name: "503 is unavailable and retryable", step: aitest.Step{Status: 503, Message: "The model is overloaded."},
			want: want{ai.CodeUnavailable, true, 503, "The model is overloaded.", 0}},
		{name: "500 is unavailable and retryable", step: aitest.Step{Status: 500, Message: "internal"},
			want: want{ai.CodeUnavailable, true, 500, "internal", 0}},
		{name: "400 is rejected", step: aitest.Step{Status: 400, Message: "bad request"},
			want: want{ai.CodeRejected, false, 400, "bad request", 0}},
		{name: "401 is rejected", step: aitest.Step{Status: 401, Message: "who are you"},
			want: want{ai.CodeRejected, false, 401, "who are you", 0}},
		{name: "404 is rejected", step: aitest.Step{Status: 404, Message: "no such model"},
			want: want{ai.CodeRejected, false, 404, "no such model", 0}},
		{name: "a gateway's HTML page", step: aitest.Step{Status: 502, Body: "<html><body>Bad Gateway</body></html>"},
			want: want{ai.CodeUnavailable, true, 502, "Bad Gateway", 0}},
		{name: "exhausted quota is not worth retrying", only: "openai",
			step: aitest.Step{Status: 429, Message: "You exceeded your current quota.", ErrorCode: "insufficient_quota"},
			want: want{ai.CodeRateLimited, false, 429, "You exceeded your current quota.", 0}},
		{name: "undecodable success body", step: aitest.Step{Body: "{not json"},
			want: want{ai.CodeUnavailable, false, 200, "the response could not be decoded", 0}},
		{name: "blocked", step: aitest.Step{Blocked: "SAFETY"},
			want: want{ai.CodeBlocked, false, 200, "", 0}},
		{name: "no text", step: aitest.Step{Empty: true},
			want: want{ai.CodeEmpty, false, 200, "no text", 0}},
		{name: "no text, cut by the safety filter", only: "gemini", step: aitest.Step{Empty: true, FinishReason: "SAFETY"},
			want: want{ai.CodeBlocked, false, 200, "SAFETY", 0}},
		{name: "no text, cut by the content filter", only: "openai", step: aitest.Step{Empty: true, FinishReason: "content_filter"},
			want: want{ai.CodeBlocked, false, 200, "content filter", 0}},
		{name: "no text, max tokens used up by thinking", only: "gemini", step: aitest.Step{Empty: true, FinishReason: "MAX_TOKENS"},
			want: want{ai.CodeEmpty, false, 200, "MAX_TOKENS", 0}},
		{name: "response over the cap", step: aitest.Step{Body: `{"x":"` + strings.Repeat("a", ai.MaxResponseBytes) + `"}`},
			want: want{ai.CodeUnavailable, false, 200, "larger than", 0}},
	}
	for _, p := range providers {
		for _, tc := range cases {
			if tc.only != "" && tc.only != p.name {
				continue
			}
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t)
				p.fake(e).Push(tc.step)
				resp, err := e.r.Chat(context.Background(), ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}})
				if err == nil {
					t.Fatalf("no error; response %+v", resp)
				}
				ae := asError(t, err)
				if ae.Code != tc.want.code || ae.Retryable != tc.want.retryable || ae.Status != tc.want.status {
					t.Errorf("got code %s retryable %v status %d, want %s %v %d (%v)",
						ae.Code, ae.Retryable, ae.Status, tc.want.code, tc.want.retryable, tc.want.status, err)
				}
				if !strings.Contains(ae.Message, tc.want.message) {
					t.Errorf("message %q does not contain %q", ae.Message, tc.want.message)
				}
				if ae.RetryAfter != tc.want.retryAfter {
					t.Errorf("retry after %v, want %v", ae.RetryAfter, tc.want.retryAfter)
				}
				if ae.Provider != p.name {
					t.Errorf("provider %q", ae.Provider)
				}
				if ai.IsRetryable(err) != tc.want.retryable {
					t.Errorf("IsRetryable %v", ai.IsRetryable(err))
				}
			})
		}
	}
}

func TestScriptedQueue(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t)
			f := p.fake(e)
			f.Fail(503, "overloaded").Reply("second time lucky")
			req := ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}}
			_, err := e.r.Chat(context.Background(), req)
			if !ai.IsRetryable(err) {
				t.Fatalf("first call: %v, want a retryable error", err)
			}
			resp, err := e.r.Chat(context.Background(), req)
			if err != nil || resp.Text != "second time lucky" {
				t.Fatalf("second call: %+v, %v", resp, err)
			}
			resp, err = e.r.Chat(context.Background(), req)
			if err != nil || resp.Text != "echo: hi" {
				t.Fatalf("third call (default echo): %+v, %v", resp, err)
			}
			if n := len(f.Requests()); n != 3 || f.Pending() != 0 {
				t.Errorf("requests %d, pending %d", n, f.Pending())
			}
		})
	}
}

func TestJSONAnswers(t *testing.T) {
	cases := []struct {
		name string
		step aitest.Step
		want any    // when no error
		code string // when an error
	}{
		{name: "object", step: aitest.Step{JSON: map[string]any{"category": "billing", "confidence": 0.9}},
			want: map[string]any{"category": "billing", "confidence": 0.9}},
		{name: "fenced", step: aitest.Step{Text: "```json\n{\"a\": [1, 2]}\n```"},
			want: map[string]any{"a": []any{1.0, 2.0}}},
		{name: "prose", step: aitest.Step{Text: "Sure! Here it is."}, code: ai.CodeBadJSON},
		{name: "trailing text", step: aitest.Step{Text: `{"a": 1} and more`}, code: ai.CodeBadJSON},
		{name: "truncated", step: aitest.Step{Text: `{"a": `, FinishReason: "length"}, code: ai.CodeBadJSON},
	}
	for _, p := range providers {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t)
				p.fake(e).Push(tc.step)
				resp, err := e.r.Chat(context.Background(), ai.Request{Model: p.model, JSON: true,
					Messages: []ai.Message{user("classify this")}})
				if tc.code != "" {
					if ae := asError(t, err); ae.Code != tc.code || ae.Retryable {
						t.Errorf("error %v, want a non-retryable %s", err, tc.code)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(resp.JSON, tc.want) {
					t.Errorf("JSON %#v, want %#v", resp.JSON, tc.want)
				}
			})
		}
	}
}

func TestNotConfigured(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, func(o *ai.Options) { o.GeminiKey, o.OpenAIKey = "", "" })
			_, err := e.r.Chat(context.Background(), ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}})
			if ae := asError(t, err); ae.Code != ai.CodeNotConfigured || ae.Retryable || ae.Provider != p.name {
				t.Errorf("error %v, want %s for %s", err, ai.CodeNotConfigured, p.name)
			}
			if n := len(p.fake(e).Requests()); n != 0 {
				t.Errorf("%d requests reached the provider", n)
			}
			if e.r.Configured(context.Background(), p.name) {
				t.Error("Configured says yes without a key")
			}
		})
	}
}

func TestKeysFunc(t *testing.T) {
	lookupFailed := errors.New("integration store down")
	e := newEnv(t)
	e.r.Keys = func(_ context.Context, provider string) (string, error) {
		switch provider {
		case "gemini":
			return "AIza-from-integration", nil
		case "openai":
			return "", nil // no integration: fall back to OPENAI_API_KEY
		}
		return "", lookupFailed
	}
	for _, p := range providers {
		if _, err := e.r.Chat(context.Background(), ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}}); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	if got := lastRequest(t, e.g).APIKey; got != "AIza-from-integration" {
		t.Errorf("gemini key %q, want the integration's", got)
	}
	if got := lastRequest(t, e.o).APIKey; got != openAIKey {
		t.Errorf("openai key %q, want the static one", got)
	}

	e.r.Keys = func(context.Context, string) (string, error) { return "", lookupFailed }
	_, err := e.r.Chat(context.Background(), ai.Request{Model: "gpt-4o", Messages: []ai.Message{user("hi")}})
	if ae := asError(t, err); ae.Code != ai.CodeUnavailable || !ae.Retryable || !errors.Is(err, lookupFailed) {
		t.Errorf("key lookup failure gave %v", err)
	}
	if strings.Contains(err.Error(), lookupFailed.Error()) {
		t.Errorf("the lookup's own error leaks into the message: %v", err)
	}
}

func TestCancellationAbortsSlowCall(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t)
			p.fake(e).Delay(time.Minute)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, err := e.r.Chat(ctx, ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}})
			// Not a speed assertion: without cancellation the call would take
			// the fake's full minute.
			if elapsed := time.Since(start); elapsed > 20*time.Second {
				t.Errorf("the call took %v after cancellation", elapsed)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want one wrapping context.Canceled", err)
			}
			if ai.IsRetryable(err) {
				t.Error("a cancelled call is retryable")
			}
		})
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, func(o *ai.Options) { o.Timeout = 100 * time.Millisecond })
			p.fake(e).Delay(time.Minute)
			_, err := e.r.Chat(context.Background(), ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}})
			ae := asError(t, err)
			if ae.Code != ai.CodeUnavailable || !ae.Retryable || ae.Status != 0 || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v, want a retryable %s after the timeout", err, ai.CodeUnavailable)
			}
			if errors.Is(err, context.Canceled) {
				t.Error("a timeout looks like a cancellation")
			}
		})
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			check := func(t *testing.T, err error) {
				t.Helper()
				if err == nil {
					t.Fatal("no error")
				}
				ae := asError(t, err)
				for _, s := range []string{err.Error(), ae.Message} {
					if strings.Contains(s, p.key) {
						t.Errorf("the key appears in %q", s)
					}
				}
			}
			req := ai.Request{Model: p.model, Messages: []ai.Message{user("hi")}}

			e := newEnv(t)
			p.fake(e).Fail(400, "API key "+p.key+" is not valid for this project")
			_, err := e.r.Chat(context.Background(), req)
			check(t, err)
			if ae := asError(t, err); !strings.Contains(ae.Message, "[redacted]") {
				t.Errorf("message %q, want the key replaced by [redacted]", ae.Message)
			}

			p.fake(e).RequireKey("another-key-entirely")
			_, err = e.r.Chat(context.Background(), req)
			check(t, err)
			if ae := asError(t, err); ae.Code != ai.CodeRejected {
				t.Errorf("wrong key gave %v", err)
			}

			p.fake(e).Close()
			_, err = e.r.Chat(context.Background(), req)
			check(t, err)
			if ae := asError(t, err); ae.Code != ai.CodeUnavailable || !ae.Retryable {
				t.Errorf("provider down gave %v, want a retryable %s", err, ai.CodeUnavailable)
			}
		})
	}
}

func TestRouterDispatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hi := []ai.Message{user("hi")}

	for _, id := range []string{"gemini-2.5-pro", "gemini-2.0-flash", "gpt-4.1", "gpt-4o-mini"} {
		m, _ := ai.LookupModel(id)
		resp, err := e.r.Chat(ctx, ai.Request{Model: id, Messages: hi})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		f := e.g
		if m.Provider == "openai" {
			f = e.o
		}
		if got := lastRequest(t, f).Model; got != m.ProviderModelID || resp.Provider != m.Provider || resp.Model != id {
			t.Errorf("%s: sent as %q, response %s/%s", id, got, resp.Provider, resp.Model)
		}
	}

	resp, err := e.r.Chat(ctx, ai.Request{Messages: hi})
	if err != nil || resp.Model != "gemini-2.5-flash" || resp.Provider != "gemini" {
		t.Errorf("empty model: %+v, %v; want the built-in default gemini-2.5-flash", resp, err)
	}
	withDefault := newEnv(t, func(o *ai.Options) { o.DefaultModel = "gpt-4o-mini" })
	resp, err = withDefault.r.Chat(ctx, ai.Request{Messages: hi})
	if err != nil || resp.Model != "gpt-4o-mini" || lastRequest(t, withDefault.o).Model != "gpt-4o-mini" {
		t.Errorf("empty model with DefaultModel: %+v, %v", resp, err)
	}

	before := len(e.g.Requests()) + len(e.o.Requests())
	for _, id := range []string{"gpt-9", "gemini-embedding-001", "text-embedding-3-small", "models/gemini-2.5-flash"} {
		_, err := e.r.Chat(ctx, ai.Request{Model: id, Messages: hi})
		if ae := asError(t, err); ae.Code != ai.CodeModelUnknown || ae.Retryable {
			t.Errorf("%s: %v, want %s", id, err, ai.CodeModelUnknown)
		}
	}
	if after := len(e.g.Requests()) + len(e.o.Requests()); after != before {
		t.Errorf("refused models reached a provider (%d requests)", after-before)
	}

	if p := e.r.Provider("gemini"); p == nil || p.Name() != "gemini" {
		t.Errorf("Provider(gemini) = %v", p)
	}
	if p := e.r.Provider("openai"); p == nil || p.Name() != "openai" {
		t.Errorf("Provider(openai) = %v", p)
	}
	if p := e.r.Provider("anthropic"); p != nil {
		t.Errorf("Provider(anthropic) = %v, want nil", p)
	}
	if !e.r.Configured(ctx, "gemini") || e.r.Configured(ctx, "anthropic") {
		t.Error("Configured")
	}
}

// TestProviderDirect: a Provider used without the Router sends models it
// does not know as they are (OpenAI-compatible servers) and defaults an
// empty one.
func TestProviderDirect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	o := e.r.Provider("openai")
	resp, err := o.Chat(ctx, ai.Request{Model: "llama-3.1-8b-instruct", Messages: []ai.Message{user("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := lastRequest(t, e.o).Model; got != "llama-3.1-8b-instruct" || resp.Model != "llama-3.1-8b-instruct" {
		t.Errorf("sent %q, response model %q", got, resp.Model)
	}
	if _, err := e.r.Provider("gemini").Chat(ctx, ai.Request{Messages: []ai.Message{user("hi")}}); err != nil {
		t.Fatal(err)
	}
	if got := lastRequest(t, e.g).Model; got != "gemini-2.5-flash" {
		t.Errorf("empty model sent as %q, want the provider default", got)
	}
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	cases := []struct {
		name string
		msgs []ai.Message
	}{
		{"no messages", nil},
		{"only a system message", []ai.Message{{Role: ai.RoleSystem, Content: "be kind"}}},
		{"unknown role", []ai.Message{{Role: "tool", Content: "x"}}},
	}
	for _, p := range providers {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t)
				_, err := e.r.Chat(context.Background(), ai.Request{Model: p.model, Messages: tc.msgs})
				if ae := asError(t, err); ae.Code != ai.CodeRejected || ae.Retryable || ae.Status != 0 {
					t.Errorf("error %v, want a local %s", err, ai.CodeRejected)
				}
				if n := len(p.fake(e).Requests()); n != 0 {
					t.Errorf("%d requests sent", n)
				}
			})
		}
	}
}

func TestErrorString(t *testing.T) {
	cases := []struct {
		err  *ai.Error
		want string
	}{
		{&ai.Error{Code: ai.CodeRateLimited, Provider: "gemini", Status: 429, Message: "quota"}, "ai-rate-limited (gemini, HTTP 429): quota"},
		{&ai.Error{Code: ai.CodeNotConfigured, Provider: "openai", Message: "no key"}, "ai-not-configured (openai): no key"},
		{&ai.Error{Code: ai.CodeModelUnknown, Message: `unknown model "x"`}, `model-unknown: unknown model "x"`},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

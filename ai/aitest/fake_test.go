package aitest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/wataomi/wataomi/ai/aitest"
)

type call struct {
	path, key, body string
}

func post(t *testing.T, f *aitest.Fake, provider string, c call) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		if provider == aitest.Gemini {
			req.Header.Set("x-goog-api-key", c.key)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("answer is not JSON: %s", data)
	}
	return resp.StatusCode, m
}

const (
	geminiPath = "/v1beta/models/gemini-2.5-flash:generateContent"
	openAIPath = "/chat/completions"
	geminiOK   = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	openAIOK   = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
)

// TestRefusals: the fakes refuse what the real APIs refuse, in their
// error format, without consuming a scripted step.
func TestRefusals(t *testing.T) {
	cases := []struct {
		name     string
		provider string
		call     call
		status   int
		message  string
	}{
		{"gemini no key", aitest.Gemini, call{geminiPath, "", geminiOK}, 403, "unregistered callers"},
		{"gemini wrong key", aitest.Gemini, call{geminiPath, "wrong", geminiOK}, 400, "API key not valid"},
		{"gemini unknown field", aitest.Gemini, call{geminiPath, "k", `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"max_tokens":5}`}, 400, `Unknown name "max_tokens"`},
		{"gemini unknown config field", aitest.Gemini, call{geminiPath, "k", `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxTokens":5}}`}, 400, `Unknown name "maxTokens"`},
		{"gemini no contents", aitest.Gemini, call{geminiPath, "k", `{"contents":[]}`}, 400, "contents is not specified"},
		{"gemini assistant role", aitest.Gemini, call{geminiPath, "k", `{"contents":[{"role":"assistant","parts":[{"text":"hi"}]}]}`}, 400, "valid role"},
		{"gemini temperature", aitest.Gemini, call{geminiPath, "k", `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":3}}`}, 400, "temperature"},
		{"gemini wrong path", aitest.Gemini, call{"/v1/models/x:generate", "k", geminiOK}, 404, "not found"},
		{"openai no key", aitest.OpenAI, call{openAIPath, "", openAIOK}, 401, "didn't provide an API key"},
		{"openai wrong key", aitest.OpenAI, call{openAIPath, "sk-wrong-key-123456", openAIOK}, 401, "sk-**********3456"},
		{"openai unknown field", aitest.OpenAI, call{openAIPath, "k", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"maxTokens":3}`}, 400, "Unrecognized request argument supplied: maxTokens"},
		{"openai no model", aitest.OpenAI, call{openAIPath, "k", `{"messages":[{"role":"user","content":"hi"}]}`}, 400, "must provide a model"},
		{"openai bad role", aitest.OpenAI, call{openAIPath, "k", `{"model":"m","messages":[{"role":"model","content":"hi"}]}`}, 400, "Invalid value: 'model'"},
		{"openai json without the word", aitest.OpenAI, call{openAIPath, "k", `{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`}, 400, "must contain the word 'json'"},
		{"openai max tokens 0", aitest.OpenAI, call{openAIPath, "k", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}`}, 400, "max_completion_tokens"},
		{"openai wrong path", aitest.OpenAI, call{"/completions", "k", openAIOK}, 404, "Invalid URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f *aitest.Fake
			if tc.provider == aitest.Gemini {
				f = aitest.NewGemini(t)
			} else {
				f = aitest.NewOpenAI(t)
			}
			if strings.Contains(tc.name, "wrong key") {
				f.RequireKey("right")
			}
			f.Reply("scripted")
			status, body := post(t, f, tc.provider, tc.call)
			if status != tc.status {
				t.Errorf("status %d, want %d (%v)", status, tc.status, body)
			}
			e, _ := body["error"].(map[string]any)
			if msg, _ := e["message"].(string); !strings.Contains(msg, tc.message) {
				t.Errorf("error message %q does not contain %q", msg, tc.message)
			}
			if f.Pending() != 1 {
				t.Error("a refused request consumed the scripted step")
			}
			if r, ok := f.LastRequest(); !ok || r.Valid {
				t.Errorf("refused request not recorded as invalid: %+v", r)
			}
		})
	}
}

func TestDecodedRequests(t *testing.T) {
	g := aitest.NewGemini(t)
	post(t, g, aitest.Gemini, call{geminiPath, "key-1", `{
	  "system_instruction": {"parts": [{"text": "sys"}]},
	  "contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "model", "parts": [{"text": "b"}]}],
	  "generationConfig": {"temperature": 0, "maxOutputTokens": 9, "responseMimeType": "application/json"}}`})
	r, _ := g.LastRequest()
	if r.Model != "gemini-2.5-flash" || r.APIKey != "key-1" || r.System != "sys" || !r.JSON ||
		*r.Temperature != 0 || *r.MaxTokens != 9 || fmt.Sprint(r.Messages) != "[{user a} {assistant b}]" {
		t.Errorf("gemini decoded %+v", r)
	}

	o := aitest.NewOpenAI(t)
	post(t, o, aitest.OpenAI, call{openAIPath, "key-2", `{"model": "gpt-4o",
	  "messages": [{"role": "developer", "content": "sys"}, {"role": "user", "content": [{"type": "text", "text": "a json"}]}],
	  "temperature": 1.5, "max_tokens": 7, "response_format": {"type": "json_object"}}`})
	r, _ = o.LastRequest()
	if r.Model != "gpt-4o" || r.APIKey != "key-2" || r.System != "sys" || !r.JSON ||
		*r.Temperature != 1.5 || *r.MaxTokens != 7 || fmt.Sprint(r.Messages) != "[{user a json}]" {
		t.Errorf("openai decoded %+v", r)
	}
}

// TestConcurrentUse: steps are handed out once each and every request is
// recorded (run with -race to check the locking).
func TestConcurrentUse(t *testing.T) {
	f := aitest.NewOpenAI(t)
	const n = 20
	for i := range n {
		f.Reply(fmt.Sprintf("answer %d", i))
	}
	var wg sync.WaitGroup
	answers := make(chan string, n)
	for range n {
		wg.Go(func() {
			_, body := post(t, f, aitest.OpenAI, call{openAIPath, "k", openAIOK})
			choice := body["choices"].([]any)[0].(map[string]any)
			answers <- choice["message"].(map[string]any)["content"].(string)
		})
	}
	wg.Wait()
	close(answers)
	seen := map[string]bool{}
	for a := range answers {
		if seen[a] {
			t.Errorf("%q handed out twice", a)
		}
		seen[a] = true
	}
	if len(seen) != n || len(f.Requests()) != n || f.Pending() != 0 {
		t.Errorf("%d distinct answers, %d requests, %d pending", len(seen), len(f.Requests()), f.Pending())
	}
}

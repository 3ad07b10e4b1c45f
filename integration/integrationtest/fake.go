// Package integrationtest is a local fake of the provider endpoints that integration checks call,
// speaking their wire formats: OpenAI and OpenAI-compatible `GET /v1/models` (Bearer key), Gemini
// `GET /v1beta/models` (x-goog-api-key), Anthropic `GET /v1/models` (x-api-key, anthropic-version)
// and Meta's `POST /{version}/oauth/access_token` (client_credentials). Point OPENAI_BASE_URL at
// URL+"/v1" and GEMINI_BASE_URL, ANTHROPIC_BASE_URL and META_GRAPH_BASE_URL at URL.
package integrationtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Request is what the fake received; secret-bearing headers and form values are kept so tests can
// assert that the right credential was sent.
type Request struct {
	Method, Path string
	Header       http.Header
	Form         map[string]string
}

// Fake is a provider fake; its credentials are fixed per instance.
type Fake struct {
	URL       string
	APIKey    string // the key every AI provider accepts
	AppID     string // the Meta app id accepted
	AppSecret string // the Meta app secret accepted

	mu       sync.Mutex
	requests []Request
	failures []failure
}

type failure struct {
	status     int
	retryAfter string
}

// New starts a fake for the life of the test.
func New(t testing.TB) *Fake {
	f := &Fake{APIKey: "sk-fake-accepted-key-0000000000000000", AppID: "1234567890", AppSecret: "fake-app-secret-00000000000000000"}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// FailNext makes the next request answer status (for example 503 or 429), with a Retry-After
// header when retryAfter is not empty. Calls queue up.
func (f *Fake) FailNext(status int, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, failure{status, retryAfter})
}

// Requests returns the requests received so far.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: map[string]string{}}
	for k := range r.PostForm {
		rec.Form[k] = r.PostForm.Get(k)
	}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	var fail *failure
	if len(f.failures) > 0 {
		fail = &f.failures[0]
		f.failures = f.failures[1:]
	}
	f.mu.Unlock()
	if fail != nil {
		if fail.retryAfter != "" {
			w.Header().Set("Retry-After", fail.retryAfter)
		}
		writeJSON(w, fail.status, map[string]any{"error": map[string]any{"message": "scripted failure " + strconv.Itoa(fail.status)}})
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models" && r.Header.Get("x-api-key") != "":
		f.anthropic(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		f.openAI(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1beta/models":
		f.gemini(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth/access_token"):
		f.meta(w, r)
	default:
		http.NotFound(w, r)
	}
}

// openAI answers like api.openai.com: the model list, or 401 invalid_api_key quoting the key it got
// (OpenAI quotes a masked key; quoting it whole proves the caller scrubs it).
func (f *Fake) openAI(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key != f.APIKey {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"message": fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", key),
			"type":    "invalid_request_error", "param": nil, "code": "invalid_api_key"}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{
		map[string]any{"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
		map[string]any{"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
	}})
}

func (f *Fake) gemini(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("x-goog-api-key") != f.APIKey {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400,
			"message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": []any{
		map[string]any{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash", "supportedGenerationMethods": []string{"generateContent"}},
		map[string]any{"name": "models/gemini-2.5-pro", "displayName": "Gemini 2.5 Pro", "supportedGenerationMethods": []string{"generateContent"}},
		map[string]any{"name": "models/gemini-embedding-001", "displayName": "Gemini Embedding 001", "supportedGenerationMethods": []string{"embedContent"}},
	}})
}

func (f *Fake) anthropic(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("anthropic-version") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"type": "error", "error": map[string]any{"type": "invalid_request_error",
			"message": "anthropic-version: header is required"}})
		return
	}
	if r.Header.Get("x-api-key") != f.APIKey {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"type": "error", "error": map[string]any{"type": "authentication_error",
			"message": "invalid x-api-key"}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": []any{
		map[string]any{"type": "model", "id": "claude-3-haiku-20240307", "display_name": "Claude 3 Haiku", "created_at": "2024-03-07T00:00:00Z"},
	}, "has_more": false, "first_id": "claude-3-haiku-20240307", "last_id": "claude-3-haiku-20240307"})
}

// meta answers like graph.facebook.com's app access token endpoint.
func (f *Fake) meta(w http.ResponseWriter, r *http.Request) {
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != f.AppID ||
		r.PostForm.Get("client_secret") != f.AppSecret {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "Error validating client secret.",
			"type": "OAuthException", "code": 1, "fbtrace_id": "AbCdEf123"}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": f.AppID + "|fake-app-access-token", "token_type": "bearer"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

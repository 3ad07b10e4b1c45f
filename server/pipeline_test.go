package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/openapi"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

var azULID = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// azChunked hides its length so the client sends the body chunked (no Content-Length).
type azChunked struct{ r io.Reader }

func (c azChunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// azSend is azDo with an arbitrary body reader (for chunked bodies).
func azSend(t *testing.T, e *testEnv, method, path string, header http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	return e.Send(t, method, path, header, body)
}

// azDirect serves one request on the Echo app itself, without the contract-checking recorder, for
// requests that must bypass the recording test server.
func azDirect(e *testEnv, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.Server.Echo.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// azLogLines returns the server's access-log lines.
func azLogLines(t *testing.T, e *testEnv) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.Logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// azSlug checks the response is the problem with this status and slug, and returns it.
func azSlug(t *testing.T, label string, resp *http.Response, body []byte, status int, slug string) problemBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d: %s", label, resp.StatusCode, status, body)
		return problemBody{}
	}
	p := problemOf(t, resp, body)
	if p.Type != "urn:wataomi:problem:"+slug {
		t.Errorf("%s: type %q, want %s", label, p.Type, slug)
	}
	return p
}

func TestPipelineRequestID(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Viewer)
	valid := []string{"a", "abc-123", "A.b_c-9", strings.Repeat("x", 64)}
	invalid := []string{strings.Repeat("x", 65), "has space", "semi;colon", "slash/ok", "ünï", "{json}"}
	for _, path := range []string{"/health", "/api/v1/flows", "/api/v1/nope", "/nope"} {
		for _, id := range valid {
			resp, b := azSend(t, e, "GET", path, http.Header{"X-Request-Id": {id}, "Authorization": {"Bearer " + tok}}, nil)
			if got := resp.Header.Get("X-Request-ID"); got != id {
				t.Errorf("GET %s with X-Request-ID %q: echoed %q", path, id, got)
			}
			if resp.StatusCode >= 400 {
				if p := problemOf(t, resp, b); p.RequestID != id {
					t.Errorf("GET %s: problem request_id %q, want %q", path, p.RequestID, id)
				}
			}
		}
		for _, id := range append(invalid, "") {
			resp, b := azSend(t, e, "GET", path, http.Header{"X-Request-Id": {id}}, nil)
			got := resp.Header.Get("X-Request-ID")
			if !azULID.MatchString(got) {
				t.Errorf("GET %s with X-Request-ID %q: got %q, want a fresh ULID", path, id, got)
			}
			if resp.StatusCode >= 400 {
				problemOf(t, resp, b) // checks request_id == X-Request-ID
			}
		}
	}
	// Two requests without an id get different ids.
	r1, _ := azSend(t, e, "GET", "/health", nil, nil)
	r2, _ := azSend(t, e, "GET", "/health", nil, nil)
	if r1.Header.Get("X-Request-ID") == r2.Header.Get("X-Request-ID") {
		t.Error("generated request ids repeat")
	}
}

func TestPipelineSecurityHeaders(t *testing.T) {
	e := newTestEnv(t)
	e.Server.Echo.GET("/panic-test", func(echo.Context) error { panic("boom") })
	_, tok := e.User(rbac.Viewer)
	auth := http.Header{"Authorization": {"Bearer " + tok}}
	cases := []struct {
		method, path string
		header       http.Header
		status       int
	}{
		{"GET", "/health", nil, 200},
		{"GET", "/", nil, 200},
		{"GET", "/api/v1/flows", auth, 200},
		{"GET", "/api/v1/flows", nil, 401},
		{"POST", "/api/v1/flows", auth, 403},
		{"GET", "/api/v1/flows/999999", auth, 404},
		{"GET", "/api/v1/nope", nil, 404},
		{"GET", "/nope", nil, 404},
		{"DELETE", "/api/v1/flows", auth, 405},
		{"GET", "/panic-test", nil, 500},
	}
	for _, tc := range cases {
		resp, b := azSend(t, e, tc.method, tc.path, tc.header, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.status, b)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options %q", tc.method, tc.path, got)
		}
		if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s %s: Referrer-Policy %q", tc.method, tc.path, got)
		}
	}
}

func TestPipelineCORS(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Viewer)
	allowed := e.Config.CORSOrigins[0]
	for _, tc := range []struct {
		path   string
		token  string
		status int
	}{{"/api/v1/flows", tok, 200}, {"/api/v1/flows", "", 401}, {"/health", "", 200}, {"/api/v1/nope", "", 404}} {
		h := http.Header{"Origin": {allowed}}
		if tc.token != "" {
			h.Set("Authorization", "Bearer "+tc.token)
		}
		resp, b := azSend(t, e, "GET", tc.path, h, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: status %d, want %d: %s", tc.path, resp.StatusCode, tc.status, b)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowed {
			t.Errorf("GET %s from %s: Access-Control-Allow-Origin %q", tc.path, allowed, got)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("GET %s: credentials allowed", tc.path)
		}
		exposed := strings.ToLower(strings.Join(resp.Header.Values("Access-Control-Expose-Headers"), ","))
		for _, want := range []string{"etag", "location", "x-request-id", "retry-after", "idempotent-replayed", "ratelimit-limit"} {
			if !strings.Contains(exposed, want) {
				t.Errorf("GET %s: exposed headers %q lack %s", tc.path, exposed, want)
			}
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("GET %s: no Vary: Origin", tc.path)
		}

		h.Set("Origin", "https://evil.example.net")
		resp, _ = azSend(t, e, "GET", tc.path, h, nil)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("GET %s from a foreign origin: Access-Control-Allow-Origin %q", tc.path, got)
		}
		if resp.Header.Get("Access-Control-Expose-Headers") != "" {
			t.Errorf("GET %s from a foreign origin: exposed headers sent", tc.path)
		}
	}
	// A look-alike of the allowed origin is not allowed.
	for _, o := range []string{allowed + ".evil.net", strings.Replace(allowed, "https://", "http://", 1), allowed + ":8443", "null"} {
		resp, _ := azSend(t, e, "GET", "/health", http.Header{"Origin": {o}}, nil)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("origin %q: Access-Control-Allow-Origin %q", o, got)
		}
	}

	// Preflights are answered before authentication.
	pre := http.Header{"Origin": {allowed}, "Access-Control-Request-Method": {"PATCH"},
		"Access-Control-Request-Headers": {"authorization,content-type,if-match"}}
	for _, path := range []string{"/api/v1/flows/1", "/api/v1/flows"} {
		resp, b := azSend(t, e, "OPTIONS", path, pre, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight %s: status %d: %s", path, resp.StatusCode, b)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowed {
			t.Errorf("preflight %s: Access-Control-Allow-Origin %q", path, got)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight %s: credentials allowed", path)
		}
		methods := resp.Header.Get("Access-Control-Allow-Methods")
		headers := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		if !strings.Contains(methods, "PATCH") || !strings.Contains(headers, "authorization") || !strings.Contains(headers, "if-match") {
			t.Errorf("preflight %s: allows methods %q, headers %q", path, methods, headers)
		}
	}
	pre.Set("Origin", "https://evil.example.net")
	resp, _ := azSend(t, e, "OPTIONS", "/api/v1/flows", pre, nil)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight from a foreign origin: allowed (%q)", got)
	}

	// An empty origin list allows no origin (Echo alone would read it as "*").
	cfg := testConfig(t, nil)
	cfg.CORSOrigins = nil
	lg := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv, err := New(Deps{Config: cfg, DB: e.DB, Tokens: e.Tokens, Logger: lg, Shared: auth.NewMemoryShared(), Engine: testEngine(t, cfg, e.DB, nil, lg)})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "OPTIONS"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, "/health", nil)
		req.Header.Set("Origin", "https://any.example.org")
		req.Header.Set("Access-Control-Request-Method", "GET")
		srv.Echo.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s with no CORS origins configured: Access-Control-Allow-Origin %q", method, got)
		}
	}

	// No wildcard is ever sent with credentials, even when CORS_ORIGINS is "*" (allowed outside production).
	w := newTestEnv(t, map[string]string{"CORS_ORIGINS": "*"})
	resp, _ = azSend(t, w, "GET", "/health", http.Header{"Origin": {"https://any.example.org"}}, nil)
	if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "" && resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("Access-Control-Allow-Origin %q together with credentials", acao)
	}
}

func TestPipelineRouting(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	auth := http.Header{"Authorization": {"Bearer " + tok}}

	for _, path := range []string{"/api/v1/nope", "/api/v1/flows/1/nope", "/api/v1", "/api/v1/", "/nope", "/api/v2/flows", "/api/v1x"} {
		// 404 comes before authentication: no token needed to learn that a route does not exist.
		resp, b := azSend(t, e, "GET", path, nil, nil)
		p := azSlug(t, "GET "+path, resp, b, http.StatusNotFound, "not-found")
		if p.Instance != strings.TrimSuffix(path, "/") && p.Instance != path {
			t.Errorf("GET %s: instance %q", path, p.Instance)
		}
	}

	allow := func(resp *http.Response) []string {
		var ms []string
		for _, m := range strings.Split(resp.Header.Get("Allow"), ",") {
			if m = strings.TrimSpace(m); m != "" && m != http.MethodOptions && m != http.MethodHead {
				ms = append(ms, m)
			}
		}
		sort.Strings(ms)
		return ms
	}
	for _, tc := range []struct {
		method, path string
		want         string
	}{
		{"DELETE", "/api/v1/flows", "GET,POST"},
		{"POST", "/api/v1/flows/1", "DELETE,GET,PATCH,PUT"},
		{"GET", "/api/v1/flows/1/publish", "POST"},
		{"PUT", "/api/v1/flows/1/versions", "GET,POST"},
		{"POST", "/health", "GET"},
	} {
		for _, h := range []http.Header{nil, auth} { // 405 also comes before authentication
			resp, b := azSend(t, e, tc.method, tc.path, h, nil)
			azSlug(t, tc.method+" "+tc.path, resp, b, http.StatusMethodNotAllowed, "method-not-allowed")
			if got := strings.Join(allow(resp), ","); got != tc.want {
				t.Errorf("%s %s: Allow %q, want %s", tc.method, tc.path, resp.Header.Get("Allow"), tc.want)
			}
		}
	}

	// A trailing slash is served as the canonical path, with no redirect.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/api/v1/flows/", "/health/", "/api/v1/flows/?page=1"} {
		req, _ := http.NewRequest("GET", e.HTTP.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d (Location %q): %s", path, resp.StatusCode, resp.Header.Get("Location"), b)
		}
	}
	resp, b := azSend(t, e, "POST", "/api/v1/flows/", http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}},
		strings.NewReader(`{"name":"slash"}`))
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("POST /api/v1/flows/: status %d: %s", resp.StatusCode, b)
	}
}

func TestPipelineOrder(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, viewerTok := e.User(rbac.Viewer)
	limit := e.Config.APIMaxBodyBytes
	flowLimit := e.Config.FlowMaxBytes + 256<<10
	big := func(n int64) []byte { // a JSON document of exactly n bytes
		b := bytes.Repeat([]byte(" "), int(n))
		copy(b, `{"name":"x"}`)
		return b
	}
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	withTok := func(h http.Header, tok string) http.Header {
		c := h.Clone()
		if c == nil {
			c = http.Header{}
		}
		c.Set("Authorization", "Bearer "+tok)
		return c
	}

	// 413 before 401 and 403: no token needed to learn the body is too big.
	for _, tc := range []struct {
		label   string
		path    string
		n       int64
		header  http.Header
		chunked bool
	}{
		{"default limit, no token", "/api/v1/flows/1/versions", limit + 1, jsonCT, false},
		{"default limit, valid token", "/api/v1/flows/1/versions", limit + 1, withTok(jsonCT, tok), false},
		{"default limit, chunked, no token", "/api/v1/flows/1/versions", limit + 1, jsonCT, true},
		{"default limit, chunked, valid token", "/api/v1/flows/1/versions", limit + 1, withTok(jsonCT, tok), true},
		{"flow limit, no token", "/api/v1/flows", flowLimit + 1, jsonCT, false},
		{"flow limit, lacking permission", "/api/v1/flows", flowLimit + 1, withTok(jsonCT, viewerTok), false},
		{"flow limit, chunked, valid token", "/api/v1/flows", flowLimit + 1, withTok(jsonCT, tok), true},
		{"wrong type and too big", "/api/v1/flows", flowLimit + 1, http.Header{"Content-Type": {"text/plain"}}, false},
	} {
		var body io.Reader = bytes.NewReader(big(tc.n))
		if tc.chunked {
			body = azChunked{body}
		}
		resp, b := azSend(t, e, "POST", tc.path, tc.header, body)
		azSlug(t, tc.label, resp, b, http.StatusRequestEntityTooLarge, "payload-too-large")
	}
	// Within the limits, a flow body larger than the default limit is accepted.
	resp, b := azSend(t, e, "POST", "/api/v1/flows", withTok(jsonCT, tok), bytes.NewReader(big(limit+1)))
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("flow body of %d bytes: status %d: %s", limit+1, resp.StatusCode, b)
	}

	// 415 before 401 and 403.
	for _, ct := range []string{"text/plain", "application/xml", "", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
		for _, h := range []http.Header{{}, {"Authorization": {"Bearer " + viewerTok}}, {"Authorization": {"Bearer " + tok}}} {
			h = h.Clone()
			if ct != "" {
				h.Set("Content-Type", ct)
			}
			resp, b := azSend(t, e, "POST", "/api/v1/flows", h, strings.NewReader(`{"name":"x"}`))
			azSlug(t, "Content-Type "+ct, resp, b, http.StatusUnsupportedMediaType, "unsupported-media-type")
		}
	}
	// JSON with parameters and any case is JSON.
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON"} {
		resp, b := azSend(t, e, "POST", "/api/v1/flows", withTok(http.Header{"Content-Type": {ct}}, tok), strings.NewReader(`{"name":"x"}`))
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("Content-Type %q: status %d: %s", ct, resp.StatusCode, b)
		}
	}

	// Then 401, then 403, then 400.
	resp, b = azSend(t, e, "POST", "/api/v1/flows", jsonCT, strings.NewReader(`{not json`))
	azSlug(t, "malformed JSON without a token", resp, b, http.StatusUnauthorized, "unauthenticated")
	resp, b = azSend(t, e, "POST", "/api/v1/flows", withTok(jsonCT, viewerTok), strings.NewReader(`{not json`))
	azSlug(t, "malformed JSON lacking the permission", resp, b, http.StatusForbidden, "forbidden")
	for _, body := range []string{`{not json`, `{"name":"x"`, `{"name":"x"}}`, `[`, `nul`} {
		resp, b = azSend(t, e, "POST", "/api/v1/flows", withTok(jsonCT, tok), strings.NewReader(body))
		p := azSlug(t, "malformed JSON "+body, resp, b, http.StatusBadRequest, "validation-error")
		if len(p.Errors) == 0 || p.Errors[0].Code != "malformed-json" {
			t.Errorf("malformed JSON %s: errors %+v, want code malformed-json", body, p.Errors)
		}
	}
	// Malformed JSON on an operation whose body is optional.
	id := azFlow(t, e, azUserOf(t, e, tok))
	resp, b = azSend(t, e, "POST", "/api/v1/flows/"+strconv.FormatInt(id, 10)+"/publish", withTok(jsonCT, tok), strings.NewReader(`{"version":`))
	if p := azSlug(t, "malformed optional body", resp, b, http.StatusBadRequest, "validation-error"); len(p.Errors) == 0 || p.Errors[0].Code != "malformed-json" {
		t.Errorf("malformed optional body: errors %+v", p.Errors)
	}
	// A schema violation is 400 too, with a pointer.
	resp, b = azSend(t, e, "POST", "/api/v1/flows", withTok(jsonCT, tok), strings.NewReader(`{"name":"x","owner_id":3}`))
	if p := azSlug(t, "unknown member", resp, b, http.StatusBadRequest, "validation-error"); len(p.Errors) != 1 ||
		p.Errors[0].Pointer != "/owner_id" || p.Errors[0].Code != "additionalProperties" {
		t.Errorf("unknown member: errors %+v", p.Errors)
	}
}

// azUserOf finds the user a token was issued to.
func azUserOf(t *testing.T, e *testEnv, tok string) *store.User {
	t.Helper()
	c, err := e.Tokens.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	var u store.User
	if err := e.DB.Take(&u, c.UserID).Error; err != nil {
		t.Fatal(err)
	}
	return &u
}

func TestPipelinePanic(t *testing.T) {
	e := newTestEnv(t)
	e.Server.Echo.GET("/panic-test", func(echo.Context) error { panic("secret-panic-value at some/file.go:42") })
	resp, b := azSend(t, e, "GET", "/panic-test", http.Header{"X-Request-Id": {"panic-1"}}, nil)
	p := azSlug(t, "panic", resp, b, http.StatusInternalServerError, "internal-error")
	for _, leak := range []string{"secret-panic-value", "goroutine", ".go:", "runtime/"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("the 500 body leaks %q: %s", leak, b)
		}
	}
	if p.RequestID != "panic-1" {
		t.Errorf("request_id %q", p.RequestID)
	}
	// The fault is logged, with the request id, and the server keeps serving.
	if logs := e.Logs.String(); !strings.Contains(logs, "secret-panic-value") || !strings.Contains(logs, `"request_id":"panic-1"`) {
		t.Errorf("the panic is not logged with its request id:\n%s", logs)
	}
	if resp, _ := azSend(t, e, "GET", "/health", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after a panic, /health answers %d", resp.StatusCode)
	}
	n := 0
	for _, l := range azLogLines(t, e) {
		if l["request_id"] == "panic-1" {
			n++
			if l["status"] != float64(500) || l["route"] != "/panic-test" {
				t.Errorf("access log of the panic: %v", l)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d access-log lines for the panicking request, want 1", n)
	}
}

func TestPipelineAccessLog(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Editor)
	viewer, viewerTok := e.User(rbac.Viewer)
	id := azFlow(t, e, u)
	type req struct {
		rid, method, path, token, body string
		status                         int
		route                          string
		user                           bool
	}
	reqs := []req{
		{"log-get", "GET", "/api/v1/flows/" + strconv.FormatInt(id, 10), tok, "", 200, "/api/v1/flows/{id}", true},
		{"log-list", "GET", "/api/v1/flows?page=1", tok, "", 200, "/api/v1/flows", true},
		{"log-404", "GET", "/api/v1/flows/999999", tok, "", 404, "/api/v1/flows/{id}", true},
		{"log-400", "GET", "/api/v1/flows?page=0", tok, "", 400, "/api/v1/flows", true},
		{"log-403", "DELETE", "/api/v1/flows/" + strconv.FormatInt(id, 10), viewerTok, "", 403, "/api/v1/flows/{id}", true},
		{"log-401", "GET", "/api/v1/flows/" + strconv.FormatInt(id, 10), "", "", 401, "/api/v1/flows/{id}", false},
		{"log-create", "POST", "/api/v1/flows", tok, `{"name":"logged"}`, 201, "/api/v1/flows", true},
		{"log-health", "GET", "/health", "", "", 200, "/health", false},
		{"log-slash", "GET", "/api/v1/flows/" + strconv.FormatInt(id, 10) + "/versions/", tok, "", 200, "/api/v1/flows/{id}/versions", true},
	}
	sizes := map[string]int{}
	for _, r := range reqs {
		h := http.Header{"X-Request-Id": {r.rid}, "Content-Type": {"application/json"}}
		if r.token != "" {
			h.Set("Authorization", "Bearer "+r.token)
		}
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		resp, b := azSend(t, e, r.method, r.path, h, body)
		if resp.StatusCode != r.status {
			t.Errorf("%s: status %d, want %d: %s", r.rid, resp.StatusCode, r.status, b)
		}
		sizes[r.rid] = len(b)
	}
	lines := azLogLines(t, e)
	byID := map[string][]map[string]any{}
	for _, l := range lines {
		rid, _ := l["request_id"].(string)
		byID[rid] = append(byID[rid], l)
	}
	for _, r := range reqs {
		ls := byID[r.rid]
		if len(ls) != 1 {
			t.Errorf("%s: %d access-log lines, want 1", r.rid, len(ls))
			continue
		}
		l := ls[0]
		for _, k := range []string{"time", "level", "msg", "request_id", "method", "route", "status", "duration_ms", "client_ip", "bytes"} {
			if _, ok := l[k]; !ok {
				t.Errorf("%s: log line lacks %s: %v", r.rid, k, l)
			}
		}
		if l["method"] != r.method || l["route"] != r.route || l["status"] != float64(r.status) {
			t.Errorf("%s: logged %v %v %v, want %s %s %d", r.rid, l["method"], l["route"], l["status"], r.method, r.route, r.status)
		}
		if l["bytes"] != float64(sizes[r.rid]) {
			t.Errorf("%s: logged bytes %v, want %d", r.rid, l["bytes"], sizes[r.rid])
		}
		if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("%s: duration_ms %v", r.rid, l["duration_ms"])
		}
		if ip, _ := l["client_ip"].(string); ip != "127.0.0.1" && ip != "::1" {
			t.Errorf("%s: client_ip %q", r.rid, ip)
		}
		_, hasUser := l["user_id"]
		if hasUser != r.user {
			t.Errorf("%s: user_id logged %v, want %v: %v", r.rid, hasUser, r.user, l)
		}
		want := u.ID
		if r.token == viewerTok {
			want = viewer.ID
		}
		if r.user && l["user_id"] != float64(want) {
			t.Errorf("%s: user_id %v, want %d", r.rid, l["user_id"], want)
		}
	}
	logs := e.Logs.String()
	for _, tk := range []string{tok, viewerTok} {
		for _, seg := range strings.Split(tk, ".") {
			if strings.Contains(logs, seg) {
				t.Fatalf("the log contains a token segment")
			}
		}
	}
	if strings.Contains(logs, "Bearer") || strings.Contains(logs, "page=") || strings.Contains(logs, "logged") {
		t.Errorf("the log contains headers, query strings or bodies:\n%s", logs)
	}
}

func TestPipelineProbes(t *testing.T) {
	e := newTestEnv(t)
	resp, b := azSend(t, e, "GET", "/health", nil, nil)
	var health map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(b, &health) != nil || health["status"] != "ok" {
		t.Errorf("/health: %d %s", resp.StatusCode, b)
	}

	resp, b = azSend(t, e, "GET", "/ready", nil, nil)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &ready) != nil || ready.Status != "ok" {
		t.Fatalf("/ready: %d %s", resp.StatusCode, b)
	}
	wantRedis := "not configured"
	if os.Getenv("TEST_REDIS_URL") != "" {
		wantRedis = "ok"
	}
	if ready.Checks["db"] != "ok" || ready.Checks["migrations"] != "ok" || ready.Checks["redis"] != wantRedis {
		t.Errorf("/ready checks %v", ready.Checks)
	}

	e.Server.Drain()
	rec := azDirect(e, "GET", "/ready")
	var notReady struct {
		Type       string            `json:"type"`
		Status     int               `json:"status"`
		Detail     string            `json:"detail"`
		Dependency string            `json:"dependency"`
		Checks     map[string]string `json:"checks"`
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(rec.Body.Bytes(), &notReady) != nil || notReady.Type != "urn:wataomi:problem:dependency-unavailable" ||
		notReady.Status != 503 || !strings.Contains(notReady.Detail, "shutting down") || notReady.Checks["db"] != "ok" {
		t.Errorf("/ready while draining: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("X-Request-ID") == "" || rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Retry-After") == "" {
		t.Errorf("/ready while draining: headers %v", rec.Header())
	}
	if resp, _ := azSend(t, e, "GET", "/health", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/health while draining: %d", resp.StatusCode)
	}

	down := newTestEnv(t)
	if err := down.DB.Close(); err != nil {
		t.Fatal(err)
	}
	resp, b = azSend(t, down, "GET", "/ready", nil, nil) // a problem: the recorder checks its schema
	notReady.Checks = nil
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(b, &notReady) != nil ||
		notReady.Dependency != "database" || notReady.Checks["db"] != "unavailable" || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("/ready with the DB closed: %d %s", resp.StatusCode, b)
	}
	if rec := azDirect(down, "GET", "/health"); rec.Code != 200 {
		t.Errorf("/health with the DB closed: %d", rec.Code)
	}
	// Authentication reads the user row: with the DB down that is a 503, never a 401 or a 500.
	tok, _, err := down.Tokens.Issue(1, "admin", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	resp, b = azSend(t, down, "GET", "/api/v1/flows", http.Header{"Authorization": {"Bearer " + tok}}, nil)
	if p := azSlug(t, "API with the DB closed", resp, b, http.StatusServiceUnavailable, "dependency-unavailable"); p.Dependency == "" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("API with the DB closed: dependency %q, Retry-After %q", p.Dependency, resp.Header.Get("Retry-After"))
	}
}

func TestPipelineRootAndSpec(t *testing.T) {
	e := newTestEnv(t)
	resp, b := azSend(t, e, "GET", "/", nil, nil)
	var root map[string]string
	if resp.StatusCode != 200 || json.Unmarshal(b, &root) != nil {
		t.Fatalf("GET /: %d %s", resp.StatusCode, b)
	}
	if root["name"] != e.Config.ProjectName || root["version"] != Version || root["docs"] != "/docs" || len(root) != 3 {
		t.Errorf("GET /: %v", root)
	}
	for _, tc := range []struct{ path, file, ctype string }{
		{"/openapi.yaml", "../openapi/openapi.bundled.yaml", "yaml"},
		{"/openapi.json", "../openapi/openapi.bundled.json", "application/json"},
	} {
		want, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		resp, b := azSend(t, e, "GET", tc.path, nil, nil)
		if resp.StatusCode != 200 || !bytes.Equal(b, want) {
			t.Errorf("GET %s: %d, %d bytes, want the %d bytes of %s", tc.path, resp.StatusCode, len(b), len(want), tc.file)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
			t.Errorf("GET %s: Content-Type %q", tc.path, ct)
		}
	}
}

func TestPipelineValidationErrors(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Editor)
	id := strconv.FormatInt(azFlow(t, e, u), 10)
	hdr := http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
	// Schemas with and without internal $refs map the same way (one validator serves them all).
	for _, tc := range []struct {
		method, path, body string
		want               []string // "pointer code", in any order
	}{
		{"PATCH", "/api/v1/flows/" + id, `{"name":null}`, []string{"/name type"}},
		{"PATCH", "/api/v1/flows/" + id, `{"a":1,"b":2,"visibility":"x"}`, []string{"/a additionalProperties", "/b additionalProperties", "/visibility enum"}},
		{"POST", "/api/v1/flows", `{}`, []string{"/name required"}},
		{"POST", "/api/v1/flows/" + id + "/publish", `{"versions":1}`, []string{"/versions additionalProperties"}},
		{"POST", "/api/v1/flows/" + id + "/publish", `{"versions":1,"a/b":2}`, []string{"/versions additionalProperties", "/a~1b additionalProperties"}},
		{"POST", "/api/v1/flows/" + id + "/publish", `{"version":0,"x":2}`, []string{"/version minimum", "/x additionalProperties"}},
		{"POST", "/api/v1/flows/" + id + "/publish", `{"version":null}`, []string{"/version type"}},
		{"POST", "/api/v1/flows/" + id + "/publish", `[]`, []string{" type"}},
		{"POST", "/api/v1/flows/" + id + "/versions", `{"name":"","description":5}`, []string{"/name minLength", "/description type"}},
		{"POST", "/api/v1/flows/" + id + "/duplicate", `{"name":null,"it's":1}`, []string{"/name type", "/it's additionalProperties"}},
	} {
		resp, b := azSend(t, e, tc.method, tc.path, hdr, strings.NewReader(tc.body))
		p := azSlug(t, tc.method+" "+tc.path+" "+tc.body, resp, b, http.StatusBadRequest, "validation-error")
		var got []string
		for _, fe := range p.Errors {
			got = append(got, fe.Pointer+" "+fe.Code)
			if fe.Detail == "" {
				t.Errorf("%s: empty detail in %+v", tc.body, fe)
			}
		}
		sort.Strings(got)
		want := append([]string(nil), tc.want...)
		sort.Strings(want)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s %s: errors %q, want %q", tc.path, tc.body, got, want)
		}
		if strings.Contains(string(b), "jsonschema") || strings.Contains(string(b), "example.com/schema") {
			t.Errorf("%s: validator internals leak: %s", tc.body, b)
		}
	}

	// One validator for every schema: loadSpec hands kin the contract as 3.0 so it never switches to
	// the JSON Schema 2020-12 validator, whose errors have another shape (and which is slow).
	doc, err := loadSpec(openapi.BundledJSON)
	if err != nil {
		t.Fatal(err)
	}
	if doc.IsOpenAPI31OrLater() {
		t.Fatal("loadSpec must validate with kin's 3.0 validator")
	}
}

// TestPipelineProblemSlugs: every slug of PRODUCT §2.2 renders, with its fixed title (problem panics on
// an unknown slug).
func TestPipelineProblemSlugs(t *testing.T) {
	slugs := []string{"validation-error", "unauthenticated", "refresh-superseded", "forbidden", "account-disabled",
		"not-found", "method-not-allowed", "already-exists", "in-use", "invalid-state", "last-super-admin",
		"system-resource", "idempotency-in-progress", "precondition-failed", "payload-too-large",
		"unsupported-media-type", "unprocessable", "invalid-graph", "invalid-oauth-state", "messaging-window-closed",
		"model-unknown", "credentials-invalid", "idempotency-key-reused", "flow-not-published", "rate-limited",
		"internal-error", "dependency-unavailable"}
	seen := map[string]bool{}
	for _, s := range slugs {
		seen[titles[s]] = true
		if titles[s] == "" {
			t.Errorf("slug %s has no title", s)
		}
	}
	if len(seen) != len(slugs) {
		t.Errorf("titles are not distinct")
	}
}

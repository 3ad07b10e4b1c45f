package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/redis/go-redis/v9"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/auth/casdoortest"
	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/idempotency"
	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

// testEnv is a real server on a private, migrated database (SQLite, or PostgreSQL when
// TEST_DATABASE_URL is set; Redis when TEST_REDIS_URL is set) behind a recorder that validates every
// response against the contract.
type testEnv struct {
	t       *testing.T
	DB      *store.DB
	Server  *Server
	HTTP    *httptest.Server
	Tokens  *auth.Tokens
	Config  *config.Config
	Logs    *syncBuffer
	checked atomic.Int64
	users   atomic.Int64
}

const testSecret = "test-secret-key-0123456789-abcdefghijkl"

// testConfig loads the configuration as the binary would, from an explicit environment.
func testConfig(t testing.TB, extra map[string]string) *config.Config {
	t.Helper()
	env := map[string]string{"APP_ENV": "test", "SECRET_KEY": testSecret, "CORS_ORIGINS": "https://app.example.com",
		// Tests on one Redis share the per-IP bucket of 127.0.0.1, and the per-principal buckets of
		// user 1, 2, … (every test's database numbers its users from 1); a test of a limiter sets its
		// own limit.
		"RATE_LIMIT_PUBLIC_PER_MINUTE": "1000000", "RATE_LIMIT_PER_MINUTE": "1000000", "RATE_LIMIT_AI_PER_MINUTE": "1000000"}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(config.LoadOptions{Env: env, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newTestEnv(t *testing.T, extraEnv ...map[string]string) *testEnv {
	t.Helper()
	extra := map[string]string{}
	for _, m := range extraEnv {
		for k, v := range m {
			extra[k] = v
		}
	}
	cfg := testConfig(t, extra)
	db := storetest.New(t)
	tokens, err := auth.TokensFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rdb *redis.Client
	shared := auth.NewMemoryShared()
	var idem idempotency.Store // nil: in-process, chosen by New
	if url := os.Getenv("TEST_REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		rdb = redis.NewClient(opt)
		t.Cleanup(func() { rdb.Close() })
		scope := fmt.Sprintf("t%d-%d:", time.Now().UnixNano(), testScopes.Add(1))
		shared = scopedHits{Shared: auth.NewRedisShared(rdb), scope: scope}
		idem = scopedIdempotency{Store: idempotency.NewRedis(rdb), scope: scope}
	}
	cd, err := auth.CasdoorFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	srv, err := New(Deps{Config: cfg, DB: db, Redis: rdb, Tokens: tokens, Logger: logger, Shared: shared, Casdoor: cd,
		Idempotency: idem, Engine: testEngine(t, cfg, db, rdb, logger)})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, DB: db, Server: srv, Tokens: tokens, Config: cfg, Logs: logs}
	e.HTTP = httptest.NewServer(newResponseValidator(t, srv.Echo, &e.checked))
	t.Cleanup(e.HTTP.Close)
	return e
}

// scopedHits gives one test server its own rate-limit buckets on the Redis every test server shares.
// Test databases reuse ids, so without it a per-principal bucket (the permission.denied throttle,
// one row per principal and operation a minute) would count the requests of earlier tests.
type scopedHits struct {
	auth.Shared
	scope string
}

var testScopes atomic.Int64

func (s scopedHits) Hit(ctx context.Context, bucket string, limit int, window time.Duration) (auth.RateResult, error) {
	return s.Shared.Hit(ctx, s.scope+bucket, limit, window)
}

// scopedIdempotency gives one test server its own Idempotency-Key records on the shared Redis, for
// the same reason: the same key from the same user id in a later test (or test run) would replay
// an answer kept by an earlier one.
type scopedIdempotency struct {
	idempotency.Store
	scope string
}

func (s scopedIdempotency) Begin(ctx context.Context, key, fp string, lockTTL time.Duration) (*idempotency.Lock, *idempotency.Entry, error) {
	return s.Store.Begin(ctx, s.scope+key, fp, lockTTL)
}

// syncBuffer collects the server's log lines; tests read it while requests may still be logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ssoEnv starts a fake Casdoor (speaking Casdoor's wire format, signing RS256 tokens with a test
// key) and returns the environment that points the server at it.
func ssoEnv(t testing.TB) map[string]string {
	env, _ := ssoEnvWithFake(t)
	return env
}

func ssoEnvWithFake(t testing.TB) (map[string]string, *casdoortest.Fake) {
	f := casdoortest.New(t)
	return map[string]string{
		"CASDOOR_ENDPOINT": f.URL, "CASDOOR_CLIENT_ID": f.ClientID, "CASDOOR_CLIENT_SECRET": f.ClientSecret,
		"CASDOOR_ORG_NAME": f.Org, "CASDOOR_CERTIFICATE": f.CertificatePEM(),
		"FRONTEND_URL": "https://app.example.com", "CASDOOR_REDIRECT_URIS": "https://app.example.com/auth/callback",
	}, f
}

// User creates an active user with the role and returns it with a fresh access token.
func (e *testEnv) User(role rbac.Role) (*store.User, string) {
	e.t.Helper()
	n := e.users.Add(1)
	u := &store.User{Email: fmt.Sprintf("%s%d@example.com", role, n), Name: fmt.Sprintf("%s %d", role, n), Role: string(role), IsActive: true}
	u.SearchText = store.SearchText(u.Name, u.Email)
	if err := e.DB.Create(u).Error; err != nil {
		e.t.Fatal(err)
	}
	return u, e.Token(u)
}

// Token mints an access token for a user.
func (e *testEnv) Token(u *store.User) string {
	e.t.Helper()
	tok, _, err := e.Tokens.Issue(u.ID, u.Role, "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// Client is the generated Go client, authenticated with token ("" for none).
func (e *testEnv) Client(token string) *api.ClientWithResponses {
	e.t.Helper()
	c, err := api.NewClientWithResponses(e.HTTP.URL+BasePath, api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// Do sends a raw request (for inputs the generated client cannot express) and returns the response
// with its body read.
func (e *testEnv) Do(method, path, token, contentType string, body io.Reader) (*http.Response, []byte) {
	e.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return e.Send(e.t, method, path, h, body)
}

// Send is the one raw request helper: any headers, any body reader (a reader without a length is
// sent chunked).
func (e *testEnv) Send(t testing.TB, method, path string, header http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.HTTP.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// problemOf decodes a problem+json body and checks its invariant fields.
func problemOf(t *testing.T, resp *http.Response, body []byte) problemBody {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, body)
	}
	var p problemBody
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body: %v: %s", err, body)
	}
	if p.Status != resp.StatusCode || !strings.HasPrefix(p.Type, "urn:wataomi:problem:") || p.Title == "" ||
		p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-ID") {
		t.Fatalf("malformed problem %+v (status %d, X-Request-ID %q)", p, resp.StatusCode, resp.Header.Get("X-Request-ID"))
	}
	return p
}

// responseValidator checks every response the server writes against the contract: declared status,
// headers and body schema for API routes; the Problem schema for errors outside any operation.
type responseValidator struct {
	t       *testing.T
	next    http.Handler
	router  routers.Router
	doc     *openapi3.T
	checked *atomic.Int64
}

func newResponseValidator(t *testing.T, next http.Handler, checked *atomic.Int64) http.Handler {
	doc, err := embeddedSpec()
	if err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &responseValidator{t: t, next: next, router: router, doc: doc, checked: checked}
}

func (v *responseValidator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	probe := r.Clone(context.Background())
	rec := httptest.NewRecorder()
	v.next.ServeHTTP(rec, r)
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	if err := v.validate(probe, rec); err != nil {
		v.t.Errorf("response to %s %s (%d) breaks the contract: %v\nbody: %s", r.Method, r.URL.Path, rec.Code, err, rec.Body.String())
	}
	v.checked.Add(1)
}

func (v *responseValidator) validate(req *http.Request, rec *httptest.ResponseRecorder) error {
	if !strings.HasPrefix(req.URL.Path, BasePath+"/") && req.URL.Path != BasePath {
		if rec.Code >= 400 {
			return v.validateProblem(rec)
		}
		return nil
	}
	req.URL.Path = strings.TrimSuffix(req.URL.Path, "/")
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		if req.Method == http.MethodOptions && rec.Code == http.StatusNoContent {
			return nil // a CORS preflight, answered before routing
		}
		return v.validateProblem(rec)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  rec.Code,
		Header:  rec.Header(),
		Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	return openapi3filter.ValidateResponse(context.Background(), input)
}

func (v *responseValidator) validateProblem(rec *httptest.ResponseRecorder) error {
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("error response has Content-Type %q", ct)
	}
	var body any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		return err
	}
	return v.doc.Components.Schemas["Problem"].Value.VisitJSON(body)
}

package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// rlID is an id no other test or run uses: with TEST_REDIS_URL the buckets outlive the test, and
// every test database numbers its rows from 1.
func rlID() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return 1_000_000_000 + int64(binary.BigEndian.Uint64(b[:])%(1<<40))
}

// rlUser creates an active user with a fresh id and returns it with an access token.
func rlUser(t *testing.T, e *testEnv, role rbac.Role) (*store.User, string) {
	t.Helper()
	id := rlID()
	u := &store.User{ID: id, Email: fmt.Sprintf("rl%d@example.com", id), Name: fmt.Sprintf("Limited %d", id), Role: string(role), IsActive: true}
	u.SearchText = store.SearchText(u.Name, u.Email)
	if err := e.DB.Create(u).Error; err != nil {
		t.Fatal(err)
	}
	return u, e.Token(u)
}

// rlToken creates an API token of owner with a fresh id and returns its secret.
func rlToken(t *testing.T, e *testEnv, owner *store.User, scopes ...string) string {
	t.Helper()
	secret, prefix, hash := auth.NewAPIToken()
	tok := &store.APIToken{ID: rlID(), OwnerID: owner.ID, Name: "limited", Prefix: prefix, TokenHash: hash,
		Scopes: store.StringList(scopes), ExpiresAt: time.Now().Add(time.Hour)}
	if err := store.CreateAPIToken(context.Background(), e.DB.DB, tok); err != nil {
		t.Fatal(err)
	}
	return secret
}

func rlGet(t *testing.T, e *testEnv, path, tok string) (*http.Response, []byte) {
	t.Helper()
	return e.Do(http.MethodGet, BasePath+path, tok, "", nil)
}

// rlHeaders checks the RateLimit-* headers: the limit, what remains, and a reset within the window.
func rlHeaders(t *testing.T, label string, r *http.Response, limit, remaining, maxReset int) {
	t.Helper()
	h := r.Header
	reset, err := strconv.Atoi(h.Get("RateLimit-Reset"))
	if h.Get("RateLimit-Limit") != strconv.Itoa(limit) || h.Get("RateLimit-Remaining") != strconv.Itoa(remaining) ||
		err != nil || reset < 1 || reset > maxReset {
		t.Errorf("%s: RateLimit-Limit %q Remaining %q Reset %q, want %d, %d and 1..%d", label,
			h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("RateLimit-Reset"), limit, remaining, maxReset)
	}
}

// rlLimited checks a 429: rate-limited, Retry-After matching retry_after, and the headers.
func rlLimited(t *testing.T, label string, r *http.Response, b []byte, limit, maxReset int) {
	t.Helper()
	p := problemOf(t, r, b)
	if p.Status != http.StatusTooManyRequests || p.Type != "urn:wataomi:problem:rate-limited" {
		t.Fatalf("%s: %+v, want 429 rate-limited", label, p)
	}
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > maxReset || p.RetryAfter != ra {
		t.Errorf("%s: Retry-After %q, retry_after %d", label, r.Header.Get("Retry-After"), p.RetryAfter)
	}
	rlHeaders(t, label, r, limit, 0, maxReset)
}

// RATE_LIMIT_PER_MINUTE per principal: exactly the configured count passes, with the headers on
// every answer; the next is 429 (before authorisation and validation); other principals, an API
// token included, have buckets of their own.
func TestRateLimitPrincipal(t *testing.T) {
	e := newTestEnv(t, map[string]string{"RATE_LIMIT_PER_MINUTE": "3"})
	viewer, tok := rlUser(t, e, rbac.Viewer)
	for i := range 3 {
		r, b := rlGet(t, e, "/casdoor/auth/me", tok)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, r.StatusCode, b)
		}
		rlHeaders(t, fmt.Sprintf("request %d", i+1), r, 3, 2-i, 60)
	}
	r, b := rlGet(t, e, "/casdoor/auth/me", tok)
	rlLimited(t, "4th request", r, b, 3, 60)
	// 429 comes before 403 (the viewer may not list users) and before 400 (page=0).
	r, b = rlGet(t, e, "/users?page=0", tok)
	rlLimited(t, "forbidden and invalid, over the limit", r, b, 3, 60)
	// 401 comes before 429: a bad credential is not counted against anybody.
	r, b = rlGet(t, e, "/casdoor/auth/me", tok+"x")
	if p := problemOf(t, r, b); p.Status != http.StatusUnauthorized || r.Header.Get("RateLimit-Limit") != "" {
		t.Errorf("bad token: %+v, RateLimit-Limit %q", p, r.Header.Get("RateLimit-Limit"))
	}

	// Another user, and the limited user's API token, are not limited.
	_, other := rlUser(t, e, rbac.Viewer)
	r, _ = rlGet(t, e, "/casdoor/auth/me", other)
	if r.StatusCode != http.StatusOK {
		t.Errorf("another user: %d", r.StatusCode)
	}
	rlHeaders(t, "another user", r, 3, 2, 60)
	apiTok := rlToken(t, e, viewer, "flow:read")
	r, _ = rlGet(t, e, "/casdoor/auth/me", apiTok)
	if r.StatusCode != http.StatusOK {
		t.Errorf("the user's API token: %d", r.StatusCode)
	}
	rlHeaders(t, "the user's API token", r, 3, 2, 60)

	// Refusals after the limiter carry its headers too.
	r, b = rlGet(t, e, "/users", other)
	if p := problemOf(t, r, b); p.Status != http.StatusForbidden {
		t.Errorf("viewer listing users: %+v", p)
	}
	rlHeaders(t, "403 within the limit", r, 3, 1, 60)
}

// The window resets: after it ends the full budget is back.
func TestRateLimitWindowResets(t *testing.T) {
	e := newTestEnv(t, map[string]string{"RATE_LIMIT_PER_MINUTE": "2"})
	e.Server.oa.limiter.window = 400 * time.Millisecond
	_, tok := rlUser(t, e, rbac.Viewer)
	for i := range 2 {
		if r, b := rlGet(t, e, "/casdoor/auth/me", tok); r.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, r.StatusCode, b)
		}
	}
	r, b := rlGet(t, e, "/casdoor/auth/me", tok)
	rlLimited(t, "3rd request", r, b, 2, 1)
	time.Sleep(600 * time.Millisecond)
	r, b = rlGet(t, e, "/casdoor/auth/me", tok)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("after the window: %d %s", r.StatusCode, b)
	}
	rlHeaders(t, "after the window", r, 2, 1, 1)
}

// x-rate-limit: ai operations count against RATE_LIMIT_AI_PER_MINUTE in a bucket of their own.
func TestRateLimitAIClass(t *testing.T) {
	e := newTestEnv(t, map[string]string{"RATE_LIMIT_PER_MINUTE": "4", "RATE_LIMIT_AI_PER_MINUTE": "2"})
	// No operation of the contract is an AI one yet: mark one in this server's copy of the table.
	guards := maps.Clone(e.Server.oa.guards)
	g := guards["getMyCapabilities"]
	g.RateLimit = "ai"
	guards["getMyCapabilities"] = g
	e.Server.oa.guards = guards
	const aiPath, plainPath = "/permissions/me/capabilities", "/casdoor/auth/me"

	_, tok := rlUser(t, e, rbac.Viewer)
	for i := range 2 {
		r, b := rlGet(t, e, aiPath, tok)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("AI request %d: %d %s", i+1, r.StatusCode, b)
		}
		rlHeaders(t, fmt.Sprintf("AI request %d", i+1), r, 2, 1-i, 60)
	}
	r, b := rlGet(t, e, aiPath, tok)
	rlLimited(t, "3rd AI request", r, b, 2, 60)
	// The general bucket is untouched by the AI requests, and exhausting it leaves the AI one as is.
	for i := range 4 {
		r, b := rlGet(t, e, plainPath, tok)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("plain request %d after the AI limit: %d %s", i+1, r.StatusCode, b)
		}
		rlHeaders(t, fmt.Sprintf("plain request %d", i+1), r, 4, 3-i, 60)
	}
	r, b = rlGet(t, e, plainPath, tok)
	rlLimited(t, "5th plain request", r, b, 4, 60)

	_, fresh := rlUser(t, e, rbac.Viewer)
	for range 5 {
		rlGet(t, e, plainPath, fresh)
	}
	r, b = rlGet(t, e, aiPath, fresh)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("AI request with the general bucket spent: %d %s", r.StatusCode, b)
	}
	rlHeaders(t, "AI request with the general bucket spent", r, 2, 1, 60)
}

// The limiter behind every class takes any key (the flow-webhook receiver limits per endpoint key)
// and answers as the per-IP and per-principal limiters do.
func TestRateLimiterAnyKey(t *testing.T) {
	e := newTestEnv(t)
	l := e.Server.oa.limiter
	ctx := context.Background()
	key := fmt.Sprintf("webhook:test-%d", rlID())
	for i := range 2 {
		h := http.Header{}
		if err := l.limit(ctx, h, key, 2); err != nil {
			t.Fatalf("hit %d: %v", i+1, err)
		}
		if h.Get("RateLimit-Limit") != "2" || h.Get("RateLimit-Remaining") != strconv.Itoa(1-i) || h.Get("RateLimit-Reset") == "" {
			t.Errorf("hit %d headers %v", i+1, h)
		}
	}
	h := http.Header{}
	err := l.limit(ctx, h, key, 2)
	p, ok := asProblem(err)
	if !ok || p.Status != http.StatusTooManyRequests || p.Slug != "rate-limited" || p.RetryAfter < 1 || h.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("3rd hit: %v, headers %v", err, h)
	}
	if err := l.limit(ctx, http.Header{}, key+"-other", 2); err != nil {
		t.Errorf("another key is limited too: %v", err)
	}
}

package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/server/idempotency"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed ik).

// ikKey is a fresh Idempotency-Key: keys live in Redis for a day, across tests and runs.
func ikKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "ik-" + hex.EncodeToString(b)
}

// ikSend posts body (nil: no body) to base+path with a bearer token and an Idempotency-Key ("" for
// none).
func ikSend(t *testing.T, base, method, path, tok, key string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
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

func ikPost(t *testing.T, e *testEnv, path, tok, key string, body []byte) (*http.Response, []byte) {
	t.Helper()
	return ikSend(t, e.HTTP.URL, http.MethodPost, path, tok, key, body)
}

// ikFirst checks an answer that ran the handler: the status, and no Idempotent-Replayed.
func ikFirst(t *testing.T, label string, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: %d %s, want %d", label, resp.StatusCode, body, status)
	}
	if v := resp.Header.Get("Idempotent-Replayed"); v != "" {
		t.Fatalf("%s: Idempotent-Replayed %q on an answer that ran", label, v)
	}
}

// ikReplayOf checks that (resp, body) replays (first, firstBody): same status, body, Location, ETag,
// Content-Type and Cache-Control, with Idempotent-Replayed: true and a request id of its own.
func ikReplayOf(t *testing.T, label string, first *http.Response, firstBody []byte, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != first.StatusCode || !bytes.Equal(body, firstBody) {
		t.Fatalf("%s: replay %d %s, want %d %s", label, resp.StatusCode, body, first.StatusCode, firstBody)
	}
	if resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("%s: Idempotent-Replayed %q, want true", label, resp.Header.Get("Idempotent-Replayed"))
	}
	for _, h := range []string{"Location", "ETag", "Content-Type", "Cache-Control"} {
		if resp.Header.Get(h) != first.Header.Get(h) {
			t.Errorf("%s: replayed %s %q, first %q", label, h, resp.Header.Get(h), first.Header.Get(h))
		}
	}
	if id := resp.Header.Get("X-Request-ID"); id == "" || id == first.Header.Get("X-Request-ID") {
		t.Errorf("%s: replay X-Request-ID %q (first %q): each request has its own", label, id, first.Header.Get("X-Request-ID"))
	}
}

func ikCount(t *testing.T, e *testEnv, model any, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.DB.Model(model).Where(where, args...).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func ikJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ikID reads the id of a created resource.
func ikID(t *testing.T, body []byte) int64 {
	t.Helper()
	var v struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.ID == 0 {
		t.Fatalf("no id in %s: %v", body, err)
	}
	return v.ID
}

// ikHold makes the next idempotent request of s stop after it claimed its key, until release is
// closed; entered is closed once it is held. Later requests pass.
func ikHold(t *testing.T, s *Server) (entered, release chan struct{}) {
	t.Helper()
	entered, release = make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	s.oa.idem.beforeRun = func(ctx context.Context) {
		if once.CompareAndSwap(false, true) {
			close(entered)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
	}
	t.Cleanup(func() { s.oa.idem.beforeRun = nil })
	return entered, release
}

// ikReplica is a second server on the same database, Redis and secret, as another replica would be:
// with TEST_REDIS_URL it builds its own Redis-backed stores; without, it shares the first server's
// in-process ones (the single-replica setup has nothing else to share them through).
func ikReplica(t *testing.T, e *testEnv) (*Server, string) {
	t.Helper()
	d := e.Server.deps
	if d.Redis != nil {
		// Its own stores on the same Redis, in the test server's scope.
		d.Idempotency = scopedIdempotency{Store: idempotency.NewRedis(d.Redis), scope: d.Idempotency.(scopedIdempotency).scope}
		d.Shared = auth.NewRedisShared(d.Redis)
	}
	srv, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	var checked atomic.Int64
	hs := httptest.NewServer(newResponseValidator(t, srv.Echo, &checked))
	t.Cleanup(hs.Close)
	return srv, hs.URL
}

// ---------------------------------------------------------------------------------------------------
// Tests.

// The same key and request replays the first answer on every [I] operation, with its Location,
// ETag and Cache-Control, and creates nothing more.
func TestIdempotencyReplay(t *testing.T) {
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	editor, edTok := e.User(rbac.Editor)

	t.Run("createTeam", func(t *testing.T) {
		key, body := ikKey(), []byte(`{"name":"Replayed team"}`)
		r1, b1 := ikPost(t, e, BasePath+"/teams", adminTok, key, body)
		ikFirst(t, "first", r1, b1, http.StatusCreated)
		r2, b2 := ikPost(t, e, BasePath+"/teams", adminTok, key, body)
		ikReplayOf(t, "second", r1, b1, r2, b2)
		if n := ikCount(t, e, &store.Team{}, "name = ?", "Replayed team"); n != 1 {
			t.Errorf("%d teams, want 1", n)
		}
		// Without a key the request runs again (and here meets the unique name).
		r3, b3 := ikPost(t, e, BasePath+"/teams", adminTok, "", body)
		if p := problemOf(t, r3, b3); p.Status != http.StatusConflict || p.Type != "urn:wataomi:problem:already-exists" {
			t.Errorf("without a key: %+v", p)
		}
	})

	t.Run("generated client", func(t *testing.T) {
		key := ikKey()
		params := &api.CreateTeamParams{IdempotencyKey: &key}
		r1, err := e.Client(adminTok).CreateTeamWithResponse(tpCtx, params, api.TeamCreate{Name: "Client team"})
		if err != nil || r1.JSON201 == nil {
			t.Fatalf("first: %v %v", err, r1)
		}
		r2, err := e.Client(adminTok).CreateTeamWithResponse(tpCtx, params, api.TeamCreate{Name: "Client team"})
		if err != nil || r2.JSON201 == nil || r2.JSON201.Id != r1.JSON201.Id || r2.HTTPResponse.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay through the client: %v %d %s", err, r2.StatusCode(), r2.Body)
		}
	})

	var flowID int64
	t.Run("createFlow", func(t *testing.T) {
		key, body := ikKey(), []byte(`{"name":"Replayed flow"}`)
		r1, b1 := ikPost(t, e, BasePath+"/flows", edTok, key, body)
		ikFirst(t, "first", r1, b1, http.StatusCreated)
		if r1.Header.Get("ETag") == "" || r1.Header.Get("Location") == "" {
			t.Fatalf("first answer lacks ETag or Location: %v", r1.Header)
		}
		r2, b2 := ikPost(t, e, BasePath+"/flows", edTok, key, body)
		ikReplayOf(t, "second", r1, b1, r2, b2)
		if n := ikCount(t, e, &store.Flow{}, "name = ?", "Replayed flow"); n != 1 {
			t.Errorf("%d flows, want 1", n)
		}
		flowID = ikID(t, b1)
	})

	t.Run("duplicateFlow without a body", func(t *testing.T) {
		key, path := ikKey(), fmt.Sprintf("%s/flows/%d/duplicate", BasePath, flowID)
		r1, b1 := ikPost(t, e, path, edTok, key, nil)
		ikFirst(t, "first", r1, b1, http.StatusCreated)
		r2, b2 := ikPost(t, e, path, edTok, key, nil)
		ikReplayOf(t, "second", r1, b1, r2, b2)
		if n := ikCount(t, e, &store.Flow{}, "name = ?", "Replayed flow (Copy)"); n != 1 {
			t.Errorf("%d copies, want 1", n)
		}
	})

	t.Run("createFlowVersion", func(t *testing.T) {
		key, path := ikKey(), fmt.Sprintf("%s/flows/%d/versions", BasePath, flowID)
		r1, b1 := ikPost(t, e, path, edTok, key, []byte(`{"name":"v2"}`))
		ikFirst(t, "first", r1, b1, http.StatusCreated)
		r2, b2 := ikPost(t, e, path, edTok, key, []byte(`{"name":"v2"}`))
		ikReplayOf(t, "second", r1, b1, r2, b2)
		if n := ikCount(t, e, &store.FlowVersion{}, "flow_id = ?", flowID); n != 2 {
			t.Errorf("%d versions, want 2 (the initial one and one snapshot)", n)
		}
	})

	t.Run("createApiToken keeps the secret sealed", func(t *testing.T) {
		key, body := ikKey(), []byte(`{"name":"replayed","scopes":["flow:read"]}`)
		r1, b1 := ikPost(t, e, BasePath+"/api-tokens", edTok, key, body)
		ikFirst(t, "first", r1, b1, http.StatusCreated)
		r2, b2 := ikPost(t, e, BasePath+"/api-tokens", edTok, key, body)
		ikReplayOf(t, "second", r1, b1, r2, b2)
		if r2.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("replayed Cache-Control %q", r2.Header.Get("Cache-Control"))
		}
		if n := ikCount(t, e, &store.APIToken{}, "owner_id = ? AND name = ?", editor.ID, "replayed"); n != 1 {
			t.Errorf("%d tokens, want 1", n)
		}
		var created api.ApiTokenCreated
		if err := json.Unmarshal(b1, &created); err != nil {
			t.Fatal(err)
		}
		// The kept answer holds the token's secret; the store sees it only encrypted.
		scope := idempotency.ScopeKey(fmt.Sprintf("user:%d", editor.ID), http.MethodPost, BasePath+"/api-tokens", key)
		_, entry, err := e.Server.oa.idem.store.Begin(context.Background(), scope, "", time.Minute)
		if err != nil || entry == nil || !entry.Done {
			t.Fatalf("stored entry %+v %v", entry, err)
		}
		if bytes.Contains(entry.Data, []byte(created.Token)) || bytes.Contains(entry.Data, []byte(created.Token[4:20])) ||
			bytes.Contains(entry.Data, []byte(`"name"`)) {
			t.Error("the stored answer is readable in the store")
		}
	})

	t.Run("a 4xx answer is kept", func(t *testing.T) {
		key, body := ikKey(), []byte(`{"name":"Replayed team"}`)
		r1, b1 := ikPost(t, e, BasePath+"/teams", adminTok, key, body)
		if p := problemOf(t, r1, b1); p.Status != http.StatusConflict {
			t.Fatalf("first: %+v", p)
		}
		ikFirst(t, "first", r1, b1, http.StatusConflict)
		// The clash goes away, but the key's answer stays what it was.
		if err := e.DB.Where("name = ?", "Replayed team").Delete(&store.Team{}).Error; err != nil {
			t.Fatal(err)
		}
		r2, b2 := ikPost(t, e, BasePath+"/teams", adminTok, key, body)
		ikReplayOf(t, "second", r1, b1, r2, b2)
		if n := ikCount(t, e, &store.Team{}, "name = ?", "Replayed team"); n != 0 {
			t.Errorf("the replay ran the handler: %d teams", n)
		}
	})

	t.Run("query order does not matter, its content does", func(t *testing.T) {
		key, body := ikKey(), []byte(`{"name":"Query team"}`)
		r1, b1 := ikPost(t, e, BasePath+"/teams?b=2&a=1", adminTok, key, body)
		ikFirst(t, "first", r1, b1, http.StatusCreated)
		r2, b2 := ikPost(t, e, BasePath+"/teams?a=1&b=2", adminTok, key, body)
		ikReplayOf(t, "reordered", r1, b1, r2, b2)
		r3, b3 := ikPost(t, e, BasePath+"/teams?a=1", adminTok, key, body)
		if p := problemOf(t, r3, b3); p.Status != http.StatusUnprocessableEntity || p.Type != "urn:wataomi:problem:idempotency-key-reused" {
			t.Errorf("another query: %+v", p)
		}
	})
}

// The same key with another body is 422 idempotency-key-reused and changes nothing.
func TestIdempotencyKeyReused(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	key := ikKey()
	r1, b1 := ikPost(t, e, BasePath+"/flows", tok, key, []byte(`{"name":"Original"}`))
	ikFirst(t, "first", r1, b1, http.StatusCreated)
	for _, body := range []string{`{"name":"Other"}`, `{"name": "Original"}`} {
		r, b := ikPost(t, e, BasePath+"/flows", tok, key, []byte(body))
		p := problemOf(t, r, b)
		if p.Status != http.StatusUnprocessableEntity || p.Type != "urn:wataomi:problem:idempotency-key-reused" || p.Title != "Idempotency key reused" {
			t.Errorf("body %s: %+v", body, p)
		}
		if r.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("body %s: Idempotent-Replayed on a refusal", body)
		}
	}
	if n := ikCount(t, e, &store.Flow{}, "1 = 1"); n != 1 {
		t.Errorf("%d flows, want 1", n)
	}
	// A malformed key is a validation error at the header, before any lookup.
	for _, bad := range []string{"has space", strings.Repeat("k", 256), "tab\there"} {
		r, b := ikPost(t, e, BasePath+"/flows", tok, bad, []byte(`{"name":"Bad key"}`))
		p := problemOf(t, r, b)
		if p.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Pointer != "#/header/Idempotency-Key" || p.Errors[0].Code != "pattern" {
			t.Errorf("key %q: %+v", bad, p)
		}
	}
	if n := ikCount(t, e, &store.Flow{}, "name = ?", "Bad key"); n != 0 {
		t.Errorf("a request with a malformed key ran")
	}
}

// While the first request runs, the same key answers 409 idempotency-in-progress (or 422 for another
// body); once it is done, its answer is replayed.
func TestIdempotencyInProgress(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Admin)
	entered, release := ikHold(t, e.Server)
	key, body := ikKey(), []byte(`{"name":"Slow team"}`)
	type answer struct {
		resp *http.Response
		body []byte
	}
	done := make(chan answer, 1)
	go func() {
		r, b := ikPost(t, e, BasePath+"/teams", tok, key, body)
		done <- answer{r, b}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached the handler")
	}
	r, b := ikPost(t, e, BasePath+"/teams", tok, key, body)
	p := problemOf(t, r, b)
	if p.Status != http.StatusConflict || p.Type != "urn:wataomi:problem:idempotency-in-progress" || r.Header.Get("Retry-After") == "" {
		t.Errorf("while running: %+v (Retry-After %q)", p, r.Header.Get("Retry-After"))
	}
	r, b = ikPost(t, e, BasePath+"/teams", tok, key, []byte(`{"name":"Other team"}`))
	if p := problemOf(t, r, b); p.Status != http.StatusUnprocessableEntity || p.Type != "urn:wataomi:problem:idempotency-key-reused" {
		t.Errorf("another body while running: %+v", p)
	}
	if n := ikCount(t, e, &store.Team{}, "1 = 1"); n != 0 {
		t.Fatalf("%d teams while the first request is held", n)
	}
	close(release)
	first := <-done
	ikFirst(t, "first", first.resp, first.body, http.StatusCreated)
	r, b = ikPost(t, e, BasePath+"/teams", tok, key, body)
	ikReplayOf(t, "after", first.resp, first.body, r, b)
	if n := ikCount(t, e, &store.Team{}, "1 = 1"); n != 1 {
		t.Errorf("%d teams, want 1", n)
	}
}

// Concurrent identical requests with one key create exactly one row: one runs, the others get its
// answer replayed or 409 while it runs.
func TestIdempotencyConcurrent(t *testing.T) {
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	_, edTok := e.User(rbac.Editor)
	cases := []struct{ path, tok, name string }{
		{BasePath + "/teams", adminTok, "Concurrent team"},
		{BasePath + "/flows", edTok, "Concurrent flow"},
	}
	for _, c := range cases {
		for round := range 3 {
			key, name := ikKey(), fmt.Sprintf("%s %d", c.name, round)
			body := ikJSON(t, map[string]string{"name": name})
			var wg sync.WaitGroup
			start := make(chan struct{})
			resps := make([]*http.Response, 2)
			bodies := make([][]byte, 2)
			for i := range 2 {
				wg.Go(func() {
					<-start
					resps[i], bodies[i] = ikPost(t, e, c.path, c.tok, key, body)
				})
			}
			close(start)
			wg.Wait()
			var created [][]byte
			for i, r := range resps {
				switch r.StatusCode {
				case http.StatusCreated:
					created = append(created, bodies[i])
				case http.StatusConflict:
					if p := problemOf(t, r, bodies[i]); p.Type != "urn:wataomi:problem:idempotency-in-progress" {
						t.Errorf("%s: %+v", name, p)
					}
				default:
					t.Errorf("%s: %d %s", name, r.StatusCode, bodies[i])
				}
			}
			if len(created) == 0 || (len(created) == 2 && !bytes.Equal(created[0], created[1])) {
				t.Errorf("%s: answers %d/%d: %s | %s", name, resps[0].StatusCode, resps[1].StatusCode, bodies[0], bodies[1])
			}
			model := any(&store.Team{})
			if strings.HasSuffix(c.path, "/flows") {
				model = &store.Flow{}
			}
			if n := ikCount(t, e, model, "name = ?", name); n != 1 {
				t.Errorf("%s: %d rows, want exactly 1", name, n)
			}
		}
	}
}

// A 5xx answer (or a panic) is not kept: the claim is released, and a retry with the same key runs.
func TestIdempotency5xxNotKept(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Admin)
	key, body := ikKey(), []byte(`{"name":"Flaky team"}`)

	// The audit table is gone while the first attempt runs: its transaction fails with a 500.
	var attempt atomic.Int64
	e.Server.oa.idem.beforeRun = func(ctx context.Context) {
		if attempt.Add(1) == 1 {
			if err := e.DB.Exec("ALTER TABLE audit_logs RENAME TO audit_logs_away").Error; err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { e.Server.oa.idem.beforeRun = nil })
	r, b := ikPost(t, e, BasePath+"/teams", tok, key, body)
	if err := e.DB.Exec("ALTER TABLE audit_logs_away RENAME TO audit_logs").Error; err != nil {
		t.Fatal(err)
	}
	if p := problemOf(t, r, b); p.Status != http.StatusInternalServerError {
		t.Fatalf("first attempt: %+v", p)
	}
	r, b = ikPost(t, e, BasePath+"/teams", tok, key, body)
	ikFirst(t, "retry after a 500", r, b, http.StatusCreated)
	r2, b2 := ikPost(t, e, BasePath+"/teams", tok, key, body)
	ikReplayOf(t, "after the retry", r, b, r2, b2)

	// A panic in the handler's path is a 500 too, and frees the key the same way.
	key, body = ikKey(), []byte(`{"name":"Panicky team"}`)
	var panicked atomic.Bool
	e.Server.oa.idem.beforeRun = func(ctx context.Context) {
		if panicked.CompareAndSwap(false, true) {
			panic("idempotency test panic")
		}
	}
	r, b = ikPost(t, e, BasePath+"/teams", tok, key, body)
	if p := problemOf(t, r, b); p.Status != http.StatusInternalServerError {
		t.Fatalf("panicking attempt: %+v", p)
	}
	r, b = ikPost(t, e, BasePath+"/teams", tok, key, body)
	ikFirst(t, "retry after a panic", r, b, http.StatusCreated)
	if n := ikCount(t, e, &store.Team{}, "name IN ?", []string{"Flaky team", "Panicky team"}); n != 2 {
		t.Errorf("%d teams, want 2", n)
	}
}

// Keys are scoped by principal (each user, and each API token apart from its owner) and by concrete
// path: the same key elsewhere is a new request.
func TestIdempotencyScope(t *testing.T) {
	e := newTestEnv(t)
	a, aTok := e.User(rbac.Editor)
	_, bTok := e.User(rbac.Editor)
	secret, prefix, hash := auth.NewAPIToken()
	tok := &store.APIToken{OwnerID: a.ID, Name: "scope", Prefix: prefix, TokenHash: hash,
		Scopes: store.StringList{"flow:create", "flow:update"}, ExpiresAt: time.Now().Add(time.Hour)}
	if err := store.CreateAPIToken(context.Background(), e.DB.DB, tok); err != nil {
		t.Fatal(err)
	}
	key, body := ikKey(), []byte(`{"name":"Mine"}`)
	ids := map[int64]bool{}
	for _, who := range []struct{ label, tok string }{{"user A", aTok}, {"user B", bTok}, {"A's API token", secret}} {
		r, b := ikPost(t, e, BasePath+"/flows", who.tok, key, body)
		ikFirst(t, who.label, r, b, http.StatusCreated)
		ids[ikID(t, b)] = true
	}
	if len(ids) != 3 {
		t.Errorf("flows %v, want three", ids)
	}
	// Another user's different body under the same key is not a reuse either.
	r, b := ikPost(t, e, BasePath+"/flows", bTok, ikKey(), []byte(`{"name":"Theirs"}`))
	ikFirst(t, "user B, other body", r, b, http.StatusCreated)

	// The concrete path is part of the scope: one key snapshots two flows.
	f1, f2 := azFlow(t, e, a), azFlow(t, e, a)
	vkey := ikKey()
	for _, id := range []int64{f1, f2} {
		r, b := ikPost(t, e, fmt.Sprintf("%s/flows/%d/versions", BasePath, id), aTok, vkey, []byte(`{}`))
		ikFirst(t, fmt.Sprintf("snapshot of %d", id), r, b, http.StatusCreated)
	}
}

// Two servers sharing Redis (and the database) behave as one: a key used on one is replayed,
// refused as reused, or reported in progress on the other.
func TestIdempotencyAcrossReplicas(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Admin)
	replica, other := ikReplica(t, e)

	key, body := ikKey(), []byte(`{"name":"Shared team"}`)
	r1, b1 := ikSend(t, e.HTTP.URL, http.MethodPost, BasePath+"/teams", tok, key, body)
	ikFirst(t, "first, on replica 1", r1, b1, http.StatusCreated)
	r2, b2 := ikSend(t, other, http.MethodPost, BasePath+"/teams", tok, key, body)
	ikReplayOf(t, "on replica 2", r1, b1, r2, b2)
	r3, b3 := ikSend(t, other, http.MethodPost, BasePath+"/teams", tok, key, []byte(`{"name":"Other"}`))
	if p := problemOf(t, r3, b3); p.Type != "urn:wataomi:problem:idempotency-key-reused" {
		t.Errorf("another body on replica 2: %+v", p)
	}

	// A request held on replica 2 is in progress for replica 1.
	entered, release := ikHold(t, replica)
	key2, body2 := ikKey(), []byte(`{"name":"Held team"}`)
	done := make(chan *http.Response, 1)
	go func() {
		r, _ := ikSend(t, other, http.MethodPost, BasePath+"/teams", tok, key2, body2)
		done <- r
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request on replica 2 never reached the handler")
	}
	r4, b4 := ikSend(t, e.HTTP.URL, http.MethodPost, BasePath+"/teams", tok, key2, body2)
	if p := problemOf(t, r4, b4); p.Type != "urn:wataomi:problem:idempotency-in-progress" {
		t.Errorf("on replica 1 while replica 2 runs: %+v", p)
	}
	close(release)
	if r := <-done; r.StatusCode != http.StatusCreated {
		t.Fatalf("held request: %d", r.StatusCode)
	}
	r5, _ := ikSend(t, e.HTTP.URL, http.MethodPost, BasePath+"/teams", tok, key2, body2)
	if r5.StatusCode != http.StatusCreated || r5.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replica 1 after replica 2 finished: %d, replayed %q", r5.StatusCode, r5.Header.Get("Idempotent-Replayed"))
	}
	if n := ikCount(t, e, &store.Team{}, "1 = 1"); n != 2 {
		t.Errorf("%d teams, want 2", n)
	}
}

// Operations that are not x-idempotent ignore the header.
func TestIdempotencyOnlyOnMarkedOperations(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flNamed(t, e, tok, "Publish me")
	key := ikKey()
	for i := range 2 {
		r, b := ikSend(t, e.HTTP.URL, http.MethodPatch, fmt.Sprintf("%s/flows/%d", BasePath, f.Id), tok, key, []byte(fmt.Sprintf(`{"description":"d%d"}`, i)))
		if r.StatusCode != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("PATCH %d with a key: %d %s", i, r.StatusCode, b)
		}
	}
}

// Answers that ask for a retry (429, such as too many concurrent runs; 5xx) are not kept: the next
// attempt with the key runs. Driven through the keeper directly, with a handler that answers 429 once.
func TestIdempotencyRetryLaterNotKept(t *testing.T) {
	e := newTestEnv(t)
	k := e.Server.oa.idem
	p := &httpx.Principal{Kind: httpx.KindUser, UserID: rlID()}
	key := ikKey()
	calls := 0
	next := func(c echo.Context) error {
		calls++
		switch calls {
		case 1:
			pr := problem(http.StatusTooManyRequests, "rate-limited", "Too many runs at once.")
			pr.RetryAfter = 1
			return pr
		case 2:
			return internalError(fmt.Errorf("boom"))
		}
		c.Response().Header().Set("Location", BasePath+"/executions/7")
		return c.JSON(http.StatusCreated, map[string]int{"id": 7})
	}
	do := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, BasePath+"/executions", strings.NewReader(`{"flow_id":1}`))
		rec := httptest.NewRecorder()
		c := e.Server.Echo.NewContext(req, rec)
		if err := k.run(c, p, key, "fp", next); err != nil {
			e.Server.Echo.HTTPErrorHandler(err, c)
		}
		return rec
	}
	for i, want := range []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusCreated} {
		rec := do()
		if rec.Code != want || rec.Header().Get("Idempotent-Replayed") != "" {
			t.Fatalf("attempt %d: %d (replayed %q) %s, want %d run", i+1, rec.Code, rec.Header().Get("Idempotent-Replayed"), rec.Body, want)
		}
	}
	rec := do()
	if rec.Code != http.StatusCreated || rec.Header().Get("Idempotent-Replayed") != "true" ||
		rec.Header().Get("Location") != BasePath+"/executions/7" || calls != 3 {
		t.Fatalf("after the 201: %d replayed %q Location %q, handler ran %d times", rec.Code,
			rec.Header().Get("Idempotent-Replayed"), rec.Header().Get("Location"), calls)
	}
}

// POST /executions with a key queues one run: a retry (with the same wait_ms, or with it left to its
// default on both) replays the first answer instead of queuing another.
func TestIdempotencyExecution(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flComplete(t, e, tok, "Run once")
	key, body := ikKey(), ikJSON(t, map[string]any{"flow_id": f.Id})
	r1, b1 := ikPost(t, e, BasePath+"/executions", tok, key, body)
	ikFirst(t, "first", r1, b1, http.StatusCreated)
	r2, b2 := ikPost(t, e, BasePath+"/executions", tok, key, body)
	ikReplayOf(t, "second", r1, b1, r2, b2)
	if n := ikCount(t, e, &store.Execution{}, "flow_id = ?", f.Id); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
	// Spelling out the default is another query, so another request.
	r3, b3 := ikPost(t, e, BasePath+"/executions?wait_ms=0", tok, key, body)
	if p := problemOf(t, r3, b3); p.Type != "urn:wataomi:problem:idempotency-key-reused" {
		t.Errorf("with wait_ms=0: %+v", p)
	}
}

package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed ua; shared with users_test.go).

var uaCtx = context.Background()

func uaPtr[T any](v T) *T { return &v }

// uaCreateToken creates an API token through the API and checks the create-only response facts.
func uaCreateToken(t *testing.T, e *testEnv, tok, name string, scopes ...string) *api.ApiTokenCreated {
	t.Helper()
	return uaCreateTokenBody(t, e, tok, api.ApiTokenCreate{Name: name, Scopes: scopes})
}

func uaCreateTokenBody(t *testing.T, e *testEnv, tok string, body api.ApiTokenCreate) *api.ApiTokenCreated {
	t.Helper()
	resp, err := e.Client(tok).CreateApiTokenWithResponse(uaCtx, nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
		t.Fatalf("create token %q: %d %s", body.Name, resp.StatusCode(), resp.Body)
	}
	c := resp.JSON201
	if got, want := resp.HTTPResponse.Header.Get("Location"), fmt.Sprintf("%s/api-tokens/%d", BasePath, c.Id); got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if got := resp.HTTPResponse.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	if !strings.HasPrefix(c.Token, "wto_") || c.Prefix != c.Token[:12] {
		t.Fatalf("token %q with prefix %q: want wto_… and its first 12 characters", c.Token, c.Prefix)
	}
	return c
}

// uaReq sends a raw request; a non-empty body is sent as JSON.
func uaReq(t *testing.T, e *testEnv, method, path, tok, body string) (*http.Response, []byte) {
	t.Helper()
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	if body == "" {
		return e.Send(t, method, path, h, nil)
	}
	h.Set("Content-Type", "application/json")
	return e.Send(t, method, path, h, strings.NewReader(body))
}

// uaProblem checks a problem's status and slug, and that errors[] holds every pointer.
func uaProblem(t *testing.T, resp *http.Response, body []byte, status int, slug string, pointers ...string) problemBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	p := problemOf(t, resp, body)
	if p.Type != "urn:wataomi:problem:"+slug {
		t.Fatalf("%s %s: type %q, want slug %q: %s", resp.Request.Method, resp.Request.URL.Path, p.Type, slug, body)
	}
	for _, ptr := range pointers {
		found := false
		for _, fe := range p.Errors {
			found = found || (fe.Pointer == ptr && fe.Detail != "")
		}
		if !found {
			t.Fatalf("no error at %q in %s", ptr, body)
		}
	}
	if len(pointers) > 0 && len(p.Errors) != len(pointers) {
		t.Fatalf("errors %+v, want exactly %v", p.Errors, pointers)
	}
	return p
}

// uaForbidden checks a 403 forbidden naming the missing permission.
func uaForbidden(t *testing.T, resp *http.Response, body []byte, perm string) {
	t.Helper()
	p := uaProblem(t, resp, body, http.StatusForbidden, "forbidden")
	if p.MissingPermission != perm {
		t.Fatalf("missing_permission %q, want %q: %s", p.MissingPermission, perm, body)
	}
}

// uaUnauthenticated checks a 401 with the bearer challenge.
func uaUnauthenticated(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	uaProblem(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q, want a Bearer challenge", resp.Header.Get("WWW-Authenticate"))
	}
}

// uaRows reads every row of a table (ordered by key) as JSON, for "nothing changed" comparisons.
func uaRows(t *testing.T, e *testEnv, table, order string) string {
	t.Helper()
	var rows []map[string]any
	if err := e.DB.Table(table).Order(order).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// uaSnap is what "the database is unchanged" compares: every row of the identity tables and of flows,
// and the number of audit rows (permission.denied rows, which §5.17 asks for on every 403, excluded).
func uaSnap(t *testing.T, e *testEnv) string {
	t.Helper()
	var audits int64
	if err := e.DB.Model(&store.AuditLog{}).Where("action <> ?", "permission.denied").Count(&audits).Error; err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("users %s\napi_tokens %s\nrefresh_tokens %s\nflows %s\nteam_members %s\naudit rows %d",
		uaRows(t, e, "users", "id"), uaRows(t, e, "api_tokens", "id"), uaRows(t, e, "refresh_tokens", "id"),
		uaRows(t, e, "flows", "id"), uaRows(t, e, "team_members", "team_id, user_id"), audits)
}

func uaSame(t *testing.T, what, before, after string) {
	t.Helper()
	if before != after {
		t.Fatalf("%s changed the database:\n before %s\n after  %s", what, before, after)
	}
}

// uaAudit returns the audit rows of one action on one resource, oldest first.
func uaAudit(t *testing.T, e *testEnv, action, resourceType string, resourceID int64) []store.AuditLog {
	t.Helper()
	var rows []store.AuditLog
	if err := e.DB.Where("action = ? AND resource_type = ? AND resource_id = ?", action, resourceType, resourceID).
		Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// uaOneAudit checks that exactly one row of the action exists, written by actor (a user principal).
func uaOneAudit(t *testing.T, e *testEnv, action, resourceType string, resourceID int64, actor *store.User) store.AuditLog {
	t.Helper()
	rows := uaAudit(t, e, action, resourceType, resourceID)
	if len(rows) != 1 {
		t.Fatalf("%d %s audit rows for %s %d, want 1", len(rows), action, resourceType, resourceID)
	}
	a := rows[0]
	if a.ActorType != store.ActorUser || a.ActorUserID == nil || *a.ActorUserID != actor.ID || a.ActorDisplay != actor.Name ||
		a.Status != store.AuditSuccess || a.RequestID == nil || *a.RequestID == "" {
		t.Fatalf("%s audit row %+v: want a successful row by user %d (%s) with a request id", action, a, actor.ID, actor.Name)
	}
	return a
}

// uaChanges decodes an audit row's changes.
func uaChanges(t *testing.T, a store.AuditLog) map[string]any {
	t.Helper()
	if a.Changes == nil {
		t.Fatalf("audit row %d (%s) has no changes", a.ID, a.Action)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(*a.Changes), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// uaTokenRow reads an api_tokens row.
func uaTokenRow(t *testing.T, e *testEnv, id int64) store.APIToken {
	t.Helper()
	var row store.APIToken
	if err := e.DB.Where("id = ?", id).Take(&row).Error; err != nil {
		t.Fatalf("api token %d: %v", id, err)
	}
	return row
}

// uaInsertToken stores an API token straight in the DB (bypassing the create rules) and returns its
// secret and id.
func uaInsertToken(t *testing.T, e *testEnv, owner *store.User, name string, expires time.Time, scopes ...string) (string, int64) {
	t.Helper()
	secret, prefix, hash := auth.NewAPIToken()
	row := &store.APIToken{OwnerID: owner.ID, Name: name, Prefix: prefix, TokenHash: hash, Scopes: store.StringList(scopes), ExpiresAt: expires}
	if err := store.CreateAPIToken(uaCtx, e.DB.DB, row); err != nil {
		t.Fatal(err)
	}
	return secret, row.ID
}

// uaMe calls GET /casdoor/auth/me.
func uaMe(t *testing.T, e *testEnv, tok string) *api.Me {
	t.Helper()
	resp, err := e.Client(tok).GetMeWithResponse(uaCtx)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
		t.Fatalf("me: %d %s", resp.StatusCode(), resp.Body)
	}
	return resp.JSON200
}

// uaFlow creates a flow through the API.
func uaFlow(t *testing.T, e *testEnv, tok, name string) int64 {
	t.Helper()
	resp, err := e.Client(tok).CreateFlowWithResponse(uaCtx, nil, api.FlowCreate{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated {
		t.Fatalf("create flow %q: %d %s", name, resp.StatusCode(), resp.Body)
	}
	return resp.JSON201.Id
}

func uaTokenIDs(items []api.ApiToken) []int64 {
	out := []int64{}
	for _, it := range items {
		out = append(out, it.Id)
	}
	return out
}

func uaNear(t *testing.T, what string, got, want time.Time, tol time.Duration) {
	t.Helper()
	if d := got.Sub(want); d < -tol || d > tol {
		t.Fatalf("%s = %s, want %s ± %s", what, got, want, tol)
	}
}

func uaAPIPath(format string, args ...any) string { return BasePath + fmt.Sprintf(format, args...) }

// ---------------------------------------------------------------------------------------------------

// TestAPITokensCreateShowsSecretOnce: the secret is in the create response only, hashed at rest.
func TestAPITokensCreateShowsSecretOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ed, edTok := e.User(rbac.Editor)
	start := time.Now()
	c := uaCreateToken(t, e, edTok, "CRM sync", "flow:read", "flow:list")
	if c.Name != "CRM sync" || c.OwnerId != ed.ID || !slices.Equal(c.Scopes, []string{"flow:read", "flow:list"}) ||
		!c.LastUsedAt.IsNull() || !c.LastUsedIp.IsNull() || !c.RevokedAt.IsNull() {
		t.Fatalf("created %+v", c)
	}
	uaNear(t, "expires_at (default)", c.ExpiresAt.Time, start.Add(90*24*time.Hour), time.Minute)
	uaNear(t, "created_at", c.CreatedAt.Time, start, time.Minute)

	// At rest: the SHA-256 of the whole token, and the secret nowhere in the row or the audit trail.
	row := uaTokenRow(t, e, c.Id)
	sum := sha256.Sum256([]byte(c.Token))
	if row.TokenHash != hex.EncodeToString(sum[:]) {
		t.Fatalf("token_hash %q, want the hex SHA-256 of the token", row.TokenHash)
	}
	secretPart := c.Token[12:]
	for _, dump := range []string{uaRows(t, e, "api_tokens", "id"), uaRows(t, e, "audit_logs", "id")} {
		if strings.Contains(dump, secretPart) {
			t.Fatalf("the token's secret is stored in plain text: %s", dump)
		}
	}

	// Never shown again: GET one, the list, and the admin view.
	_, adminTok := e.User(rbac.Admin)
	for _, path := range []string{uaAPIPath("/api-tokens/%d", c.Id), uaAPIPath("/api-tokens"), uaAPIPath("/users/%d/api-tokens", ed.ID)} {
		tok := edTok
		if strings.HasPrefix(path, BasePath+"/users/") {
			tok = adminTok
		}
		resp, body := uaReq(t, e, http.MethodGet, path, tok, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if strings.Contains(string(body), secretPart) || strings.Contains(string(body), `"token"`) {
			t.Fatalf("GET %s shows the secret: %s", path, body)
		}
		if !strings.Contains(string(body), c.Prefix) {
			t.Fatalf("GET %s does not show the prefix: %s", path, body)
		}
	}
	got, err := e.Client(edTok).GetApiTokenWithResponse(uaCtx, c.Id)
	if err != nil || got.JSON200 == nil {
		t.Fatalf("get: %v %s", err, got.Body)
	}
	if g := got.JSON200; g.Id != c.Id || g.Prefix != c.Prefix || !g.ExpiresAt.Time.Equal(c.ExpiresAt.Time) || g.OwnerId != ed.ID {
		t.Fatalf("GET %+v differs from the created %+v", g, c)
	}

	// Audit: token.created by the creator, naming the token but not its secret.
	a := uaOneAudit(t, e, "token.created", "api_token", c.Id, ed)
	after, _ := uaChanges(t, a)["after"].(map[string]any)
	if after["name"] != "CRM sync" {
		t.Fatalf("token.created changes %s", *a.Changes)
	}
}

// TestAPITokensExpiry: default 90 d, explicit within API_TOKEN_MAX_TTL_DAYS, over or past → 422.
func TestAPITokensExpiry(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	now := time.Now()

	in := now.Add(364 * 24 * time.Hour).Truncate(time.Second)
	c := uaCreateTokenBody(t, e, tok, api.ApiTokenCreate{Name: "long", Scopes: []string{"flow:read"}, ExpiresAt: &in})
	if !c.ExpiresAt.Time.Equal(in) || !uaTokenRow(t, e, c.Id).ExpiresAt.Equal(in) {
		t.Fatalf("expires_at %s (row %s), want %s", c.ExpiresAt.Time, uaTokenRow(t, e, c.Id).ExpiresAt, in)
	}

	before := uaSnap(t, e)
	for _, bad := range []struct {
		name string
		at   time.Time
	}{
		{"over the maximum", now.Add(366 * 24 * time.Hour)},
		{"in the past", now.Add(-time.Hour)},
		{"now", now.Add(-time.Second)},
	} {
		body := fmt.Sprintf(`{"name":"bad","scopes":["flow:read"],"expires_at":%q}`, bad.at.UTC().Format(time.RFC3339Nano))
		resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/api-tokens"), tok, body)
		uaProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/expires_at")
		uaSame(t, "expires_at "+bad.name, before, uaSnap(t, e))
	}

	// A smaller API_TOKEN_MAX_TTL_DAYS caps both the explicit and the default expiry.
	e2 := newTestEnv(t, map[string]string{"API_TOKEN_MAX_TTL_DAYS": "30"})
	_, tok2 := e2.User(rbac.Editor)
	before2 := uaSnap(t, e2)
	body := fmt.Sprintf(`{"name":"bad","scopes":["flow:read"],"expires_at":%q}`, time.Now().Add(31*24*time.Hour).UTC().Format(time.RFC3339))
	resp, b := uaReq(t, e2, http.MethodPost, uaAPIPath("/api-tokens"), tok2, body)
	uaProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "/expires_at")
	uaSame(t, "expires_at over API_TOKEN_MAX_TTL_DAYS=30", before2, uaSnap(t, e2))
	ok := time.Now().Add(29 * 24 * time.Hour).Truncate(time.Second)
	if c := uaCreateTokenBody(t, e2, tok2, api.ApiTokenCreate{Name: "29d", Scopes: []string{"flow:read"}, ExpiresAt: &ok}); !c.ExpiresAt.Time.Equal(ok) {
		t.Fatalf("expires_at %s, want %s", c.ExpiresAt.Time, ok)
	}
	def := uaCreateToken(t, e2, tok2, "default", "flow:read")
	uaNear(t, "default expires_at under a 30-day maximum", def.ExpiresAt.Time, time.Now().Add(30*24*time.Hour), time.Minute)
}

// TestAPITokensScopes: scopes must be known permissions the creator's role holds, never token:*.
func TestAPITokensScopes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, edTok := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.Admin)
	before := uaSnap(t, e)
	cases := []struct {
		name, tok, scopes string
		pointers          []string
	}{
		{"unknown permission", edTok, `["flow:read","flow:fly"]`, []string{"/scopes/1"}},
		{"token:* (editor)", edTok, `["token:read"]`, []string{"/scopes/0"}},
		{"token:manage (admin holds it)", adminTok, `["flow:read","token:manage"]`, []string{"/scopes/1"}},
		{"not held by an editor", edTok, `["flow:read","flow:list","flow:delete"]`, []string{"/scopes/2"}},
		{"not held by an admin", adminTok, `["user:delete"]`, []string{"/scopes/0"}},
		{"several at once", edTok, `["nope:nope","flow:read","token:create","user:list"]`, []string{"/scopes/0", "/scopes/2", "/scopes/3"}},
	}
	for _, c := range cases {
		resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/api-tokens"), c.tok, `{"name":"x","scopes":`+c.scopes+`}`)
		uaProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", c.pointers...)
		uaSame(t, c.name, before, uaSnap(t, e))
	}
	// Schema rules answer 400: empty, duplicated, not a permission string.
	for _, scopes := range []string{`[]`, `["flow:read","flow:read"]`, `["FLOW READ"]`} {
		resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/api-tokens"), edTok, `{"name":"x","scopes":`+scopes+`}`)
		uaProblem(t, resp, b, http.StatusBadRequest, "validation-error")
		uaSame(t, "scopes "+scopes, before, uaSnap(t, e))
	}
	// What the role holds is fine: a manager may delegate flow:delete, an admin user:update.
	_, mgrTok := e.User(rbac.Manager)
	uaCreateToken(t, e, mgrTok, "m", "flow:delete")
	uaCreateToken(t, e, adminTok, "a", "user:update", "user:list")
}

// TestAPITokensDuplicateName: a name is unique per owner (409 already-exists with existing_id).
func TestAPITokensDuplicateName(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, aTok := e.User(rbac.Editor)
	_, bTok := e.User(rbac.Editor)
	first := uaCreateToken(t, e, aTok, "CRM", "flow:read")
	before := uaSnap(t, e)
	resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/api-tokens"), aTok, `{"name":"CRM","scopes":["flow:list"]}`)
	p := uaProblem(t, resp, b, http.StatusConflict, "already-exists")
	if p.ExistingID == nil || *p.ExistingID != first.Id {
		t.Fatalf("existing_id %v, want %d: %s", p.ExistingID, first.Id, b)
	}
	uaSame(t, "a duplicate name", before, uaSnap(t, e))
	// Another owner may use the name; so may the same owner after picking another.
	uaCreateToken(t, e, bTok, "CRM", "flow:read")
	uaCreateToken(t, e, aTok, "CRM 2", "flow:read")
}

// TestAPITokensAuthenticateAsOwner: a token acts as its owner with scopes ∩ the owner's role.
func TestAPITokensAuthenticateAsOwner(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ed, edTok := e.User(rbac.Editor)
	flowID := uaFlow(t, e, edTok, "mine")
	c := uaCreateToken(t, e, edTok, "reader", "flow:read", "flow:list")

	me := uaMe(t, e, c.Token)
	if me.Id != ed.ID || me.Email != ed.Email || me.Auth.Type != api.MeAuthType("api_token") {
		t.Fatalf("me %+v", me)
	}
	if id, err := me.Auth.TokenId.Get(); err != nil || id != c.Id {
		t.Fatalf("auth.token_id %v (%v), want %d", id, err, c.Id)
	}
	if sc, err := me.Auth.Scopes.Get(); err != nil || !slices.Equal(sc, []string{"flow:read", "flow:list"}) {
		t.Fatalf("auth.scopes %v (%v)", sc, err)
	}
	if !slices.Equal(me.Permissions, []string{"flow:list", "flow:read"}) {
		t.Fatalf("permissions %v, want [flow:list flow:read]", me.Permissions)
	}
	if !me.Auth.ExpiresAt.Time.Equal(c.ExpiresAt.Time) {
		t.Fatalf("auth.expires_at %s, want %s", me.Auth.ExpiresAt.Time, c.ExpiresAt.Time)
	}
	// A user's own me says type user, with no token fields.
	if um := uaMe(t, e, edTok); um.Auth.Type != api.MeAuthType("user") || !um.Auth.TokenId.IsNull() || !um.Auth.Scopes.IsNull() ||
		!slices.Contains(um.Permissions, "flow:create") {
		t.Fatalf("user me %+v", um.Auth)
	}

	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows/%d", flowID), c.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET flow with a flow:read token: %d %s", resp.StatusCode, b)
	}
	// Outside its scopes, although the owner's role holds the permission.
	before := uaSnap(t, e)
	resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/flows"), c.Token, `{"name":"nope"}`)
	uaForbidden(t, resp, b, "flow:create")
	resp, b = uaReq(t, e, http.MethodPatch, uaAPIPath("/flows/%d", flowID), c.Token, `{"name":"renamed"}`)
	uaForbidden(t, resp, b, "flow:update")
	uaSame(t, "requests outside the token's scopes", before, uaSnap(t, e))

	// A scope the owner's role lacks (stored directly: the API refuses to create it) gives nothing.
	sneaky, _ := uaInsertToken(t, e, ed, "sneaky", time.Now().Add(time.Hour), "flow:read", "flow:delete", "user:list")
	if m := uaMe(t, e, sneaky); !slices.Equal(m.Permissions, []string{"flow:read"}) {
		t.Fatalf("permissions %v, want scopes ∩ role = [flow:read]", m.Permissions)
	}
	before = uaSnap(t, e)
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/flows/%d", flowID), sneaky, "")
	uaForbidden(t, resp, b, "flow:delete")
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/users"), sneaky, "")
	uaForbidden(t, resp, b, "user:list")
	uaSame(t, "scopes beyond the owner's role", before, uaSnap(t, e))
}

// TestAPITokensOwnerDemoted: the effective permissions follow the owner's current role.
func TestAPITokensOwnerDemoted(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	mgr, mgrTok := e.User(rbac.Manager)
	_, adminTok := e.User(rbac.Admin)
	f1, f2 := uaFlow(t, e, mgrTok, "one"), uaFlow(t, e, mgrTok, "two")
	c := uaCreateToken(t, e, mgrTok, "ops", "flow:read", "flow:list", "flow:create", "flow:delete")
	if m := uaMe(t, e, c.Token); !slices.Equal(m.Permissions, []string{"flow:create", "flow:delete", "flow:list", "flow:read"}) {
		t.Fatalf("permissions %v", m.Permissions)
	}
	if resp, b := uaReq(t, e, http.MethodDelete, uaAPIPath("/flows/%d", f1), c.Token, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete with the manager's token: %d %s", resp.StatusCode, b)
	}

	// Demoted through the API to editor: flow:delete is gone at once.
	r, err := e.Client(adminTok).UpdateUserRoleWithResponse(uaCtx, mgr.ID, api.UserRoleUpdate{Role: api.UserRole(rbac.Editor)})
	if err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("demote: %v %s", err, r.Body)
	}
	if m := uaMe(t, e, c.Token); !slices.Equal(m.Permissions, []string{"flow:create", "flow:list", "flow:read"}) {
		t.Fatalf("after demotion to editor: permissions %v", m.Permissions)
	}
	before := uaSnap(t, e)
	resp, b := uaReq(t, e, http.MethodDelete, uaAPIPath("/flows/%d", f2), c.Token, "")
	uaForbidden(t, resp, b, "flow:delete")
	uaSame(t, "a demoted owner's token", before, uaSnap(t, e))

	// Demoted directly in the database to viewer: flow:create goes too.
	if err := e.DB.Model(&store.User{}).Where("id = ?", mgr.ID).Update("role", string(rbac.Viewer)).Error; err != nil {
		t.Fatal(err)
	}
	if m := uaMe(t, e, c.Token); !slices.Equal(m.Permissions, []string{"flow:list", "flow:read"}) {
		t.Fatalf("after demotion to viewer: permissions %v", m.Permissions)
	}
	before = uaSnap(t, e)
	resp, b = uaReq(t, e, http.MethodPost, uaAPIPath("/flows"), c.Token, `{"name":"x"}`)
	uaForbidden(t, resp, b, "flow:create")
	uaSame(t, "a viewer's token", before, uaSnap(t, e))
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows/%d", f2), c.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("flow:read is still held: %d %s", resp.StatusCode, b)
	}
	// An unknown role holds nothing.
	if err := e.DB.Model(&store.User{}).Where("id = ?", mgr.ID).Update("role", "ghost").Error; err != nil {
		t.Fatal(err)
	}
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), c.Token, "")
	uaForbidden(t, resp, b, "flow:list")
}

// TestAPITokensOwnerDeactivated: an inactive owner's token gets 403 account-disabled at once.
func TestAPITokensOwnerDeactivated(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ed, edTok := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.Admin)
	c := uaCreateToken(t, e, edTok, "t", "flow:list")
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), c.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %d %s", resp.StatusCode, b)
	}
	if r, err := e.Client(adminTok).DeactivateUserWithResponse(uaCtx, ed.ID); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("deactivate: %v %s", err, r.Body)
	}
	for _, path := range []string{uaAPIPath("/flows"), uaAPIPath("/casdoor/auth/me"), uaAPIPath("/api-tokens")} {
		resp, b := uaReq(t, e, http.MethodGet, path, c.Token, "")
		uaProblem(t, resp, b, http.StatusForbidden, "account-disabled")
	}
	if r, err := e.Client(adminTok).ActivateUserWithResponse(uaCtx, ed.ID); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("activate: %v %s", err, r.Body)
	}
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), c.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("after reactivation: %d %s", resp.StatusCode, b)
	}
}

// TestAPITokensRevoke: DELETE revokes (the token stays listed), the token answers 401 at once.
func TestAPITokensRevoke(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ed, edTok := e.User(rbac.Editor)
	c := uaCreateToken(t, e, edTok, "t", "flow:list")
	keep := uaCreateToken(t, e, edTok, "keep", "flow:list")
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), c.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %d %s", resp.StatusCode, b)
	}
	start := time.Now()
	r, err := e.Client(edTok).DeleteApiTokenWithResponse(uaCtx, c.Id)
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("revoke: %v %d %s", err, r.StatusCode(), r.Body)
	}
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), c.Token, "")
	uaUnauthenticated(t, resp, b)
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), keep.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other token: %d %s", resp.StatusCode, b)
	}

	l, err := e.Client(edTok).ListApiTokensWithResponse(uaCtx, nil)
	if err != nil || l.JSON200 == nil {
		t.Fatalf("list: %v %s", err, l.Body)
	}
	if l.JSON200.Total != 2 || !slices.Equal(uaTokenIDs(l.JSON200.Items), []int64{keep.Id, c.Id}) {
		t.Fatalf("list %+v, want both tokens, newest first", l.JSON200)
	}
	for _, it := range l.JSON200.Items {
		revoked, err := it.RevokedAt.Get()
		switch {
		case it.Id == c.Id && (err != nil || revoked.Time.Before(start.Add(-time.Second)) || revoked.Time.After(time.Now())):
			t.Fatalf("revoked token lists revoked_at %v (%v)", revoked, err)
		case it.Id == keep.Id && !it.RevokedAt.IsNull():
			t.Fatalf("the kept token lists revoked_at")
		}
	}
	a := uaOneAudit(t, e, "token.revoked", "api_token", c.Id, ed)
	if before, _ := uaChanges(t, a)["before"].(map[string]any); before["name"] != "t" {
		t.Fatalf("token.revoked changes %s", *a.Changes)
	}

	// Revoking again changes nothing (revoked_at kept, no second audit row).
	snap := uaSnap(t, e)
	r, err = e.Client(edTok).DeleteApiTokenWithResponse(uaCtx, c.Id)
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("revoke again: %v %d %s", err, r.StatusCode(), r.Body)
	}
	uaSame(t, "a second revoke", snap, uaSnap(t, e))
}

// TestAPITokensExpired: an expired token answers 401.
func TestAPITokensExpired(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ed, _ := e.User(rbac.Editor)
	tok, id := uaInsertToken(t, e, ed, "old", time.Now().Add(time.Hour), "flow:list")
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), tok, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: %d %s", resp.StatusCode, b)
	}
	if err := e.DB.Model(&store.APIToken{}).Where("id = ?", id).Update("expires_at", store.Now().Add(-time.Second)).Error; err != nil {
		t.Fatal(err)
	}
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), tok, "")
	uaUnauthenticated(t, resp, b)
	// An unknown wto_ token too.
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), "wto_"+strings.Repeat("A", 43), "")
	uaUnauthenticated(t, resp, b)
}

// TestAPITokensLastUsed: last_used_at/ip are set on use and written at most once a minute.
func TestAPITokensLastUsed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, edTok := e.User(rbac.Editor)
	c := uaCreateToken(t, e, edTok, "t", "flow:list")
	if row := uaTokenRow(t, e, c.Id); row.LastUsedAt != nil || row.LastUsedIP != nil {
		t.Fatalf("unused token has last_used %v %v", row.LastUsedAt, row.LastUsedIP)
	}
	use := func() {
		t.Helper()
		if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), c.Token, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("use: %d %s", resp.StatusCode, b)
		}
	}
	start := store.Now()
	use()
	first := uaTokenRow(t, e, c.Id)
	if first.LastUsedAt == nil || first.LastUsedAt.Before(start) || first.LastUsedIP == nil || *first.LastUsedIP != "127.0.0.1" {
		t.Fatalf("after a use: last_used_at %v, last_used_ip %v", first.LastUsedAt, first.LastUsedIP)
	}
	time.Sleep(5 * time.Millisecond)
	use()
	use()
	if again := uaTokenRow(t, e, c.Id); again.LastUsedAt == nil || !again.LastUsedAt.Equal(*first.LastUsedAt) {
		t.Fatalf("last_used_at moved within the minute: %v → %v", first.LastUsedAt, again.LastUsedAt)
	}
	// The API shows it.
	g, err := e.Client(edTok).GetApiTokenWithResponse(uaCtx, c.Id)
	if err != nil || g.JSON200 == nil {
		t.Fatalf("get: %v %s", err, g.Body)
	}
	if at, err := g.JSON200.LastUsedAt.Get(); err != nil || !at.Time.Equal(*first.LastUsedAt) {
		t.Fatalf("GET last_used_at %v (%v), want %v", at, err, first.LastUsedAt)
	}
	if ip, err := g.JSON200.LastUsedIp.Get(); err != nil || ip != "127.0.0.1" {
		t.Fatalf("GET last_used_ip %q (%v)", ip, err)
	}
	// A minute later, the next use writes again.
	old := store.Now().Add(-61 * time.Second)
	if err := e.DB.Model(&store.APIToken{}).Where("id = ?", c.Id).Update("last_used_at", old).Error; err != nil {
		t.Fatal(err)
	}
	use()
	if later := uaTokenRow(t, e, c.Id); later.LastUsedAt == nil || !later.LastUsedAt.After(old.Add(time.Minute)) {
		t.Fatalf("last_used_at %v not refreshed after a minute (was %v)", later.LastUsedAt, old)
	}
}

// TestAPITokensOthersTokens: another user's token is 404 on GET and DELETE, and is left alone.
func TestAPITokensOthersTokens(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, aTok := e.User(rbac.Editor)
	_, bTok := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.Admin)
	c := uaCreateToken(t, e, aTok, "a's", "flow:list")
	before := uaSnap(t, e)
	for _, tok := range []string{bTok, adminTok} {
		resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/api-tokens/%d", c.Id), tok, "")
		uaProblem(t, resp, b, http.StatusNotFound, "not-found")
		resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/api-tokens/%d", c.Id), tok, "")
		uaProblem(t, resp, b, http.StatusNotFound, "not-found")
		l, err := e.Client(tok).ListApiTokensWithResponse(uaCtx, nil)
		if err != nil || l.JSON200 == nil || l.JSON200.Total != 0 || len(l.JSON200.Items) != 0 {
			t.Fatalf("another user's list shows a's token: %v %s", err, l.Body)
		}
	}
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/api-tokens/%d", c.Id+1000), aTok, "")
	uaProblem(t, resp, b, http.StatusNotFound, "not-found")
	uaSame(t, "another user's GET/DELETE", before, uaSnap(t, e))
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), c.Token, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a's token after the refusals: %d %s", resp.StatusCode, b)
	}
}

// TestAPITokensUsersOnly: an API token cannot create tokens (x-principals: user) nor use the
// users-only directory, even when it carries the scope.
func TestAPITokensUsersOnly(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ed, _ := e.User(rbac.Editor)
	tok, _ := uaInsertToken(t, e, ed, "minter", time.Now().Add(time.Hour), "token:create", "token:read", "flow:list")
	if resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), tok, ""); resp.StatusCode != http.StatusOK { // last_used_* settle
		t.Fatalf("warm-up: %d %s", resp.StatusCode, b)
	}
	before := uaSnap(t, e)
	resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/api-tokens"), tok, `{"name":"child","scopes":["flow:list"]}`)
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/users/directory"), tok, "")
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = uaReq(t, e, http.MethodPost, uaAPIPath("/casdoor/auth/logout"), tok, "")
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	uaSame(t, "an API token on users-only operations", before, uaSnap(t, e))
}

// TestAPITokensAdminViews: token:manage lists and revokes anyone's tokens; others get 403.
func TestAPITokensAdminViews(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ed, edTok := e.User(rbac.Editor)
	_, otherTok := e.User(rbac.Editor)
	admin, adminTok := e.User(rbac.Admin)
	_, mgrTok := e.User(rbac.Manager)
	t1 := uaCreateToken(t, e, edTok, "b-one", "flow:list")
	t2 := uaCreateToken(t, e, edTok, "a-two", "flow:read")
	ot := uaCreateToken(t, e, otherTok, "other", "flow:list")

	l, err := e.Client(adminTok).ListUserApiTokensWithResponse(uaCtx, ed.ID, &api.ListUserApiTokensParams{Sort: &api.ApiTokenSort{"name"}})
	if err != nil || l.JSON200 == nil {
		t.Fatalf("admin list: %v %s", err, l.Body)
	}
	if l.JSON200.Total != 2 || !slices.Equal(uaTokenIDs(l.JSON200.Items), []int64{t2.Id, t1.Id}) {
		t.Fatalf("admin list of the editor's tokens by name: %v (total %d)", uaTokenIDs(l.JSON200.Items), l.JSON200.Total)
	}
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/users/%d/api-tokens", 999999), adminTok, "")
	uaProblem(t, resp, b, http.StatusNotFound, "not-found")

	before := uaSnap(t, e)
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/users/%d/api-tokens", ed.ID), mgrTok, "")
	uaForbidden(t, resp, b, "token:manage")
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d/api-tokens/%d", ed.ID, t1.Id), mgrTok, "")
	uaForbidden(t, resp, b, "token:manage")
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d/api-tokens/%d", ed.ID, t1.Id), edTok, "")
	uaForbidden(t, resp, b, "token:manage")
	// A token id that is not this user's is 404, and is left alone.
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d/api-tokens/%d", ed.ID, ot.Id), adminTok, "")
	uaProblem(t, resp, b, http.StatusNotFound, "not-found")
	uaSame(t, "refused admin revokes", before, uaSnap(t, e))

	r, err := e.Client(adminTok).DeleteUserApiTokenWithResponse(uaCtx, ed.ID, t1.Id)
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("admin revoke: %v %d %s", err, r.StatusCode(), r.Body)
	}
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), t1.Token, "")
	uaUnauthenticated(t, resp, b)
	if row := uaTokenRow(t, e, t1.Id); row.RevokedAt == nil {
		t.Fatal("admin revoke left revoked_at NULL")
	}
	if row := uaTokenRow(t, e, t2.Id); row.RevokedAt != nil {
		t.Fatal("admin revoke touched another token")
	}
	a := uaOneAudit(t, e, "token.revoked", "api_token", t1.Id, admin)
	if before, _ := uaChanges(t, a)["before"].(map[string]any); before["owner_id"] != float64(ed.ID) {
		t.Fatalf("token.revoked changes %s, want the owner", *a.Changes)
	}
}

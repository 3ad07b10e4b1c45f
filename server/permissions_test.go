package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed tp; shared with teams_test.go and authz_test.go).

var tpCtx = context.Background()

// tpResources are the 20 resources of the catalogue, as PRODUCT §4.4 lists them (written out here, not
// read from rbac, so a resource dropped or added in code fails).
var tpResources = []string{"user", "flow", "template", "bot", "channel", "integration", "settings", "analytics",
	"metadata", "conversation", "message", "contact", "execution", "audit", "token", "media", "ai", "knowledge",
	"webhook", "archive"}

// tpRoleNames are the six roles of PRODUCT §4.1, highest first.
var tpRoleNames = []rbac.Role{"super_admin", "admin", "manager", "editor", "viewer", "user"}

// tpGolden reads a hand-written golden file of server/testdata/rbac.
func tpGolden(t *testing.T, rel string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rbac", rel))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return v
}

// tpGetJSON sends a GET, expects 200 and decodes the body into a generic JSON value.
func tpGetJSON(t *testing.T, e *testEnv, tok, path string) any {
	t.Helper()
	resp, body := e.Do(http.MethodGet, BasePath+path, tok, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return v
}

// tpJSON re-decodes any value into a generic JSON value.
func tpJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// tpDiff lists the differences between two generic JSON values, one line per differing key or
// element, with its JSON pointer.
func tpDiff(ptr string, got, want any) []string {
	show := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want an object", ptr, show(got))}
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				out = append(out, fmt.Sprintf("%s/%s: missing, want %s", ptr, k, show(wv)))
			case !wok:
				out = append(out, fmt.Sprintf("%s/%s: unexpected %s", ptr, k, show(gv)))
			default:
				out = append(out, tpDiff(ptr+"/"+k, gv, wv)...)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want an array", ptr, show(got))}
		}
		var out []string
		for i := 0; i < len(w) || i < len(g); i++ {
			switch {
			case i >= len(g):
				out = append(out, fmt.Sprintf("%s/%d: missing, want %s", ptr, i, show(w[i])))
			case i >= len(w):
				out = append(out, fmt.Sprintf("%s/%d: unexpected %s", ptr, i, show(g[i])))
			default:
				out = append(out, tpDiff(fmt.Sprintf("%s/%d", ptr, i), g[i], w[i])...)
			}
		}
		return out
	}
	if !reflect.DeepEqual(got, want) {
		return []string{fmt.Sprintf("%s: got %s, want %s", ptr, show(got), show(want))}
	}
	return nil
}

// tpSameJSON fails with a readable diff when got and want differ structurally.
func tpSameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := tpDiff("", got, want); len(d) > 0 {
		if len(d) > 40 {
			d = append(d[:40], fmt.Sprintf("… and %d more", len(d)-40))
		}
		t.Errorf("%s differs from the golden file:\n  %s", what, strings.Join(d, "\n  "))
	}
}

// tpProblem checks a problem's status and slug, and that its errors hold exactly the given pointers.
func tpProblem(t *testing.T, resp *http.Response, body []byte, status int, slug string, pointers ...string) problemBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
	p := problemOf(t, resp, body)
	if p.Type != "urn:wataomi:problem:"+slug {
		t.Fatalf("%s %s: type %q, want %q: %s", resp.Request.Method, resp.Request.URL, p.Type, slug, body)
	}
	if len(pointers) > 0 {
		var got []string
		for _, fe := range p.Errors {
			got = append(got, fe.Pointer)
			if fe.Detail == "" {
				t.Errorf("error at %q has no detail: %s", fe.Pointer, body)
			}
		}
		if !slices.Equal(got, pointers) {
			t.Fatalf("%s %s: error pointers %q, want %q: %s", resp.Request.Method, resp.Request.URL, got, pointers, body)
		}
	}
	return p
}

// tpForbidden checks a 403 forbidden naming the missing permission.
func tpForbidden(t *testing.T, resp *http.Response, body []byte, perm string) {
	t.Helper()
	p := tpProblem(t, resp, body, http.StatusForbidden, "forbidden")
	if p.MissingPermission != perm {
		t.Fatalf("%s %s: missing_permission %q, want %q: %s", resp.Request.Method, resp.Request.URL, p.MissingPermission, perm, body)
	}
}

// tpScopedToken stores an API token of owner with the given scopes straight in the DB (so scopes the
// owner's role lacks can be tested too) and returns its secret and id.
func tpScopedToken(t *testing.T, e *testEnv, owner *store.User, scopes ...string) (string, int64) {
	t.Helper()
	secret, prefix, hash := auth.NewAPIToken()
	row := &store.APIToken{OwnerID: owner.ID, Name: "tp " + hash[:10], Prefix: prefix, TokenHash: hash,
		Scopes: store.StringList(scopes), ExpiresAt: time.Now().Add(time.Hour)}
	if err := store.CreateAPIToken(tpCtx, e.DB.DB, row); err != nil {
		t.Fatal(err)
	}
	return secret, row.ID
}

// tpCheck calls POST /permissions/check with a raw JSON body.
func tpCheck(t *testing.T, e *testEnv, tok string, perms any) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"permissions": perms})
	if err != nil {
		t.Fatal(err)
	}
	return e.Do(http.MethodPost, BasePath+"/permissions/check", tok, "application/json", strings.NewReader(string(b)))
}

// tpCheckResult calls POST /permissions/check through the generated client and expects 200.
func tpCheckResult(t *testing.T, e *testEnv, tok string, perms ...string) api.PermissionCheckResult {
	t.Helper()
	resp, err := e.Client(tok).CheckPermissionsWithResponse(tpCtx, api.PermissionCheck{Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
		t.Fatalf("check %v: %d %s", perms, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200
}

// tpResourcesOf fetches GET /permissions/resources/{type} for every resource, keyed by resource.
func tpResourcesOf(t *testing.T, e *testEnv, tok string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, r := range tpResources {
		out[r] = tpGetJSON(t, e, tok, "/permissions/resources/"+r)
	}
	return out
}

// tpAllFalse returns a copy of a generic JSON value with every boolean set to false.
func tpAllFalse(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = tpAllFalse(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = tpAllFalse(e)
		}
		return s
	case bool:
		return false
	}
	return v
}

// ---------------------------------------------------------------------------------------------------

// TestPermissionsGolden: what each role is told about itself equals the hand-written golden files.
func TestPermissionsGolden(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// The golden set itself covers the 20 resources of §4.4, no more.
	for _, role := range tpRoleNames {
		res, ok := tpGolden(t, string(role)+"/resources.json").(map[string]any)
		if !ok || len(res) != len(tpResources) {
			t.Fatalf("%s/resources.json has %d resources, want %d", role, len(res), len(tpResources))
		}
		for _, r := range tpResources {
			if res[r] == nil {
				t.Fatalf("%s/resources.json lacks %q", role, r)
			}
		}
	}
	for _, role := range tpRoleNames {
		t.Run(string(role), func(t *testing.T) {
			_, tok := e.User(role)
			tpSameJSON(t, "capabilities of "+string(role), tpGetJSON(t, e, tok, "/permissions/me/capabilities"),
				tpGolden(t, string(role)+"/capabilities.json"))
			tpSameJSON(t, "widgets of "+string(role), tpGetJSON(t, e, tok, "/permissions/widgets"),
				tpGolden(t, string(role)+"/widgets.json"))
			tpSameJSON(t, "resources of "+string(role), tpJSON(t, tpResourcesOf(t, e, tok)),
				tpGolden(t, string(role)+"/resources.json"))

			// The roles are for admin roles only (user:read).
			if rbac.IsAdminRole(role) {
				tpSameJSON(t, "roles as "+string(role), tpGetJSON(t, e, tok, "/permissions/roles"), tpGolden(t, "roles.json"))
			} else {
				resp, body := e.Do(http.MethodGet, BasePath+"/permissions/roles", tok, "", nil)
				tpForbidden(t, resp, body, "user:read")
			}

			// The catalogue, open to every role, on name, resource and action, in order.
			got := tpGetJSON(t, e, tok, "/permissions").(map[string]any)
			items, _ := got["items"].([]any)
			for i, it := range items {
				m := it.(map[string]any)
				if d, _ := m["description"].(string); d == "" {
					t.Errorf("catalogue item %d (%v) has no description", i, m["name"])
				}
				delete(m, "description")
			}
			tpSameJSON(t, "catalogue as "+string(role), got, tpGolden(t, "catalogue.json"))

			// Unknown resource types, and the right type in the wrong case, answer 404.
			for _, typ := range []string{"campaign", "Flow", "flows", "workspace", "team"} {
				resp, body := e.Do(http.MethodGet, BasePath+"/permissions/resources/"+typ, tok, "", nil)
				tpProblem(t, resp, body, http.StatusNotFound, "not-found")
			}
		})
	}

	// Without a credential, every permissions operation answers 401.
	for _, path := range []string{"/permissions", "/permissions/me/capabilities", "/permissions/widgets",
		"/permissions/resources/flow", "/permissions/roles"} {
		resp, body := e.Do(http.MethodGet, BasePath+path, "", "", nil)
		tpProblem(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	}
}

// TestPermissionsCheck: POST /permissions/check against the caller's set.
func TestPermissionsCheck(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, edTok := e.User(rbac.Editor)
	_, viewTok := e.User(rbac.Viewer)
	_, saTok := e.User(rbac.SuperAdmin)

	// Everything held.
	if r := tpCheckResult(t, e, edTok, "flow:read", "flow:create", "token:create"); !r.HasPermission || r.MissingPermissions == nil || len(r.MissingPermissions) != 0 {
		t.Errorf("editor holding all: %+v, want has_permission and missing []", r)
	}
	if r := tpCheckResult(t, e, saTok, rbac.PermissionsOf(rbac.SuperAdmin)[:50]...); !r.HasPermission || len(r.MissingPermissions) != 0 {
		t.Errorf("super_admin with 50: %+v", r)
	}
	// The body says [] rather than null or nothing.
	resp, body := tpCheck(t, e, edTok, []string{"flow:read"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"missing_permissions":[]`) {
		t.Errorf("all held: %d %s, want missing_permissions []", resp.StatusCode, body)
	}

	// Some missing: listed in input order, held ones left out.
	r := tpCheckResult(t, e, viewTok, "user:read", "flow:read", "flow:delete", "template:list", "audit:read", "analytics:export")
	if r.HasPermission || !slices.Equal(r.MissingPermissions, []string{"user:read", "flow:delete", "audit:read", "analytics:export"}) {
		t.Errorf("viewer: %+v, want missing [user:read flow:delete audit:read analytics:export]", r)
	}
	r = tpCheckResult(t, e, edTok, "flow:delete", "flow:create", "bot:create")
	if r.HasPermission || !slices.Equal(r.MissingPermissions, []string{"flow:delete", "bot:create"}) {
		t.Errorf("editor: %+v, want missing [flow:delete bot:create]", r)
	}

	// Unknown strings: 422 pointing at each of them (and nothing for the known ones).
	resp, body = tpCheck(t, e, edTok, []string{"flow:read", "campaign:read", "flow:delete", "Flow:read", "flow:fly", "flow"})
	tpProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable",
		"/permissions/1", "/permissions/3", "/permissions/4", "/permissions/5")
	resp, body = tpCheck(t, e, saTok, []string{"team:update"})
	tpProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "/permissions/0")

	// Out of the contract's bounds: 400.
	resp, body = tpCheck(t, e, edTok, []string{})
	tpProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	many := make([]string, 51)
	for i := range many {
		many[i] = "flow:read"
	}
	resp, body = tpCheck(t, e, edTok, many)
	tpProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	resp, body = tpCheck(t, e, edTok, many[:50])
	if resp.StatusCode != http.StatusOK {
		t.Errorf("50 items: %d %s", resp.StatusCode, body)
	}
	resp, body = e.Do(http.MethodPost, BasePath+"/permissions/check", edTok, "application/json", strings.NewReader(`{}`))
	tpProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	resp, body = e.Do(http.MethodPost, BasePath+"/permissions/check", "", "application/json", strings.NewReader(`{"permissions":["flow:read"]}`))
	tpProblem(t, resp, body, http.StatusUnauthorized, "unauthenticated")
}

// TestPermissionsAPIToken: for an API token every answer uses its effective set, scopes ∩ the owner's
// current role.
func TestPermissionsAPIToken(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin, _ := e.User(rbac.Admin)
	tok, _ := tpScopedToken(t, e, admin, "flow:read")

	// Capabilities: the admin golden file with only flow:read left; is_admin still true (it is the role).
	want := tpAllFalse(tpGolden(t, "admin/capabilities.json")).(map[string]any)
	want["role"] = "admin"
	want["permissions"] = []any{"flow:read"}
	want["can_read"].(map[string]any)["flow"] = true
	want["widgets"].(map[string]any)["flow_viewer"] = true
	want["features"].(map[string]any)["is_admin"] = true
	tpSameJSON(t, "capabilities of an admin token scoped to flow:read", tpGetJSON(t, e, tok, "/permissions/me/capabilities"), want)

	// Widgets: only flow_viewer, visible and enabled.
	wantW := tpAllFalse(tpGolden(t, "admin/widgets.json")).(map[string]any)
	for _, it := range wantW["items"].([]any) {
		if w := it.(map[string]any); w["id"] == "flow_viewer" {
			w["visible"], w["enabled"] = true, true
		}
	}
	tpSameJSON(t, "widgets of an admin token scoped to flow:read", tpGetJSON(t, e, tok, "/permissions/widgets"), wantW)

	// Resources: only flow's read.
	wantR := tpAllFalse(tpGolden(t, "admin/resources.json")).(map[string]any)
	wantR["flow"].(map[string]any)["can_read"] = true
	wantR["flow"].(map[string]any)["actions"].(map[string]any)["read"] = true
	tpSameJSON(t, "resources of an admin token scoped to flow:read", tpJSON(t, tpResourcesOf(t, e, tok)), wantR)

	// Check.
	if r := tpCheckResult(t, e, tok, "flow:read"); !r.HasPermission || len(r.MissingPermissions) != 0 {
		t.Errorf("token check flow:read: %+v", r)
	}
	if r := tpCheckResult(t, e, tok, "flow:list", "flow:read", "user:read"); r.HasPermission || !slices.Equal(r.MissingPermissions, []string{"flow:list", "user:read"}) {
		t.Errorf("token check: %+v, want missing [flow:list user:read]", r)
	}
	// The roles need user:read, which this token does not carry even though its owner does.
	resp, body := e.Do(http.MethodGet, BasePath+"/permissions/roles", tok, "", nil)
	tpForbidden(t, resp, body, "user:read")
	rolesTok, _ := tpScopedToken(t, e, admin, "user:read")
	tpSameJSON(t, "roles as an admin token scoped to user:read", tpGetJSON(t, e, rolesTok, "/permissions/roles"), tpGolden(t, "roles.json"))

	// A scope the owner's role lacks grants nothing: an editor token carrying user:read and
	// flow:delete (stored directly; the create rules would refuse it) acts with flow:list and flow:read.
	editor, _ := e.User(rbac.Editor)
	edTok, _ := tpScopedToken(t, e, editor, "flow:read", "user:read", "flow:delete", "flow:list")
	caps := tpGetJSON(t, e, edTok, "/permissions/me/capabilities").(map[string]any)
	tpSameJSON(t, "permissions of an editor token", caps["permissions"], []any{"flow:list", "flow:read"})
	tpSameJSON(t, "role of an editor token", caps["role"], "editor")
	if caps["can_delete"].(map[string]any)["flow"] != false || caps["can_read"].(map[string]any)["user"] != false {
		t.Errorf("editor token: can_delete.flow %v, can_read.user %v, want false", caps["can_delete"].(map[string]any)["flow"], caps["can_read"].(map[string]any)["user"])
	}
	if r := tpCheckResult(t, e, edTok, "user:read", "flow:list", "flow:delete"); !slices.Equal(r.MissingPermissions, []string{"user:read", "flow:delete"}) {
		t.Errorf("editor token check: %+v, want missing [user:read flow:delete]", r)
	}
	res := tpGetJSON(t, e, edTok, "/permissions/resources/flow")
	tpSameJSON(t, "flow resource of an editor token", res, map[string]any{"resource": "flow", "can_create": false, "can_read": true,
		"can_update": false, "can_delete": false, "can_list": true,
		"actions": map[string]any{"create": false, "read": true, "update": false, "delete": false, "execute": false, "list": true}})
	resp, body = e.Do(http.MethodGet, BasePath+"/permissions/roles", edTok, "", nil)
	tpForbidden(t, resp, body, "user:read")

	// A demoted owner: the token follows the owner's current role at once.
	if err := e.DB.Model(&store.User{}).Where("id = ?", admin.ID).Update("role", string(rbac.Viewer)).Error; err != nil {
		t.Fatal(err)
	}
	caps = tpGetJSON(t, e, rolesTok, "/permissions/me/capabilities").(map[string]any)
	tpSameJSON(t, "permissions of a demoted owner's token", caps["permissions"], []any{})
	if f := caps["features"].(map[string]any); f["is_admin"] != false || caps["role"] != "viewer" {
		t.Errorf("demoted owner's token: role %v, is_admin %v", caps["role"], f["is_admin"])
	}
	caps = tpGetJSON(t, e, tok, "/permissions/me/capabilities").(map[string]any)
	tpSameJSON(t, "permissions of a demoted owner's flow:read token", caps["permissions"], []any{"flow:read"})
}

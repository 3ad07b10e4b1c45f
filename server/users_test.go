package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed ua; the token helpers are in api_tokens_test.go).

// uaUser inserts a user row with the given name and email.
func uaUser(t *testing.T, e *testEnv, role rbac.Role, name, email string, active bool) *store.User {
	t.Helper()
	u := &store.User{Email: email, Name: name, Role: string(role), IsActive: active, SearchText: store.SearchText(name, email)}
	if err := e.DB.Create(u).Error; err != nil {
		t.Fatal(err)
	}
	return u
}

// uaUserRow re-reads a user; ok is false when it is gone.
func uaUserRow(t *testing.T, e *testEnv, id int64) (store.User, bool) {
	t.Helper()
	var u store.User
	if err := e.DB.Where("id = ?", id).Limit(1).Find(&u).Error; err != nil {
		t.Fatal(err)
	}
	return u, u.ID != 0
}

// uaTeam inserts a team with members, as rows.
func uaTeam(t *testing.T, e *testEnv, name string, members ...int64) int64 {
	t.Helper()
	team := &store.Team{Name: name, SearchText: store.SearchText(name)}
	if err := e.DB.Create(team).Error; err != nil {
		t.Fatal(err)
	}
	for _, u := range members {
		if err := e.DB.Create(&store.TeamMember{TeamID: team.ID, UserID: u}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return team.ID
}

// uaRefresh inserts a refresh token row of a family.
func uaRefresh(t *testing.T, e *testEnv, userID int64, family string, expires time.Time, revoked *time.Time) int64 {
	t.Helper()
	_, hash := auth.NewRefreshToken()
	rt := &store.RefreshToken{FamilyID: family, UserID: userID, TokenHash: hash, ExpiresAt: expires, RevokedAt: revoked}
	if err := store.CreateRefreshToken(uaCtx, e.DB.DB, rt); err != nil {
		t.Fatal(err)
	}
	return rt.ID
}

// uaSession gives a user a live refresh family and an access token carrying it (as a login does).
func uaSession(t *testing.T, e *testEnv, u *store.User) (tok, family string) {
	t.Helper()
	family = auth.NewFamilyID()
	uaRefresh(t, e, u.ID, family, store.Now().Add(24*time.Hour), nil)
	tok, _, err := e.Tokens.Issue(u.ID, u.Role, family, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok, family
}

// uaRefreshRows reads the user's refresh token rows.
func uaRefreshRows(t *testing.T, e *testEnv, userID int64) []store.RefreshToken {
	t.Helper()
	var rows []store.RefreshToken
	if err := e.DB.Where("user_id = ?", userID).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// uaWantDenied checks that a refresh family is on the shared deny-list (every replica sees it).
func uaWantDenied(t *testing.T, e *testEnv, family string) {
	t.Helper()
	revoked, err := e.Server.deps.Shared.Revoked(uaCtx, "", family)
	if err != nil || !revoked {
		t.Fatalf("family %s on the deny-list: %v (%v)", family, revoked, err)
	}
}

func uaStatus(t *testing.T, e *testEnv, method, path, tok string) int {
	t.Helper()
	resp, _ := uaReq(t, e, method, path, tok, "")
	return resp.StatusCode
}

func uaUserIDs(items []api.User) []int64 {
	out := []int64{}
	for _, u := range items {
		out = append(out, u.Id)
	}
	return out
}

// uaList calls GET /users with a raw query.
func uaList(t *testing.T, e *testEnv, tok, query string) api.UserPage {
	t.Helper()
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/users?%s", query), tok, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /users?%s: %d %s", query, resp.StatusCode, b)
	}
	var p api.UserPage
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func uaSetRole(t *testing.T, e *testEnv, tok string, id int64, role rbac.Role) (*http.Response, []byte) {
	t.Helper()
	return uaReq(t, e, http.MethodPut, uaAPIPath("/users/%d/role", id), tok, fmt.Sprintf(`{"role":%q}`, role))
}

// uaQueryCounter counts the SQL statements GORM runs on the database.
type uaQueryCounter struct{ n atomic.Int64 }

func uaCountQueries(t *testing.T, e *testEnv) *uaQueryCounter {
	t.Helper()
	c := &uaQueryCounter{}
	inc := func(*gorm.DB) { c.n.Add(1) }
	cb := e.DB.Callback()
	for _, err := range []error{
		cb.Query().After("gorm:query").Register("ua:count_query", inc),
		cb.Row().After("gorm:row").Register("ua:count_row", inc),
		cb.Raw().After("gorm:raw").Register("ua:count_raw", inc),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// ---------------------------------------------------------------------------------------------------

type uaListFixture struct {
	e                  *testEnv
	adminTok           string
	a, b, c, d         *store.User
	team1, team2       int64
	aTeams, bTeams     []int64
	byCreated, byEmail []int64
}

// uaListUsers seeds four users (@corp.test) with known created_at, last_login_at and teams.
func uaListUsers(t *testing.T) *uaListFixture {
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	f := &uaListFixture{e: e, adminTok: adminTok}
	f.a = uaUser(t, e, rbac.Editor, "Alice Archer", "alice@corp.test", true)
	f.b = uaUser(t, e, rbac.Viewer, "Bob Baker", "bob@corp.test", true)
	f.c = uaUser(t, e, rbac.Editor, "Carol Cole", "carol@corp.test", false)
	f.d = uaUser(t, e, rbac.Manager, "Dave Dunn", "dave@corp.test", true)
	now := store.Now()
	for i, u := range []*store.User{f.a, f.b, f.c, f.d} {
		upd := map[string]any{"created_at": now.Add(time.Duration(i-10) * time.Hour)}
		switch u {
		case f.a:
			upd["last_login_at"] = now.Add(-time.Hour)
		case f.b:
			upd["last_login_at"] = now.Add(-2 * time.Hour)
		}
		if err := e.DB.Model(&store.User{}).Where("id = ?", u.ID).Updates(upd).Error; err != nil {
			t.Fatal(err)
		}
	}
	f.team1 = uaTeam(t, e, "Team One", f.a.ID, f.b.ID)
	f.team2 = uaTeam(t, e, "Team Two", f.b.ID, f.d.ID)
	f.byCreated = []int64{f.a.ID, f.b.ID, f.c.ID, f.d.ID}
	f.byEmail = f.byCreated
	return f
}

// TestUsersList: filters, search, sort keys, totals and team_ids.
func TestUsersList(t *testing.T) {
	t.Parallel()
	f := uaListUsers(t)
	e, tok := f.e, f.adminTok
	rev := func(ids []int64) []int64 { out := slices.Clone(ids); slices.Reverse(out); return out }
	a, b, c, d := f.a.ID, f.b.ID, f.c.ID, f.d.ID
	cases := []struct {
		query string
		want  []int64
	}{
		{"search=corp.test", []int64{d, c, b, a}}, // default -created_at; search covers email
		{"search=ARCHER", []int64{a}},             // and name, case-insensitively
		{"search=" + url.QueryEscape("bob@corp"), []int64{b}},
		{"search=corp.test&role=editor", []int64{c, a}},
		{"search=corp.test&is_active=false", []int64{c}},
		{"is_active=false", []int64{c}},
		{"search=corp.test&is_active=true&sort=email", []int64{a, b, d}},
		{fmt.Sprintf("team_id=%d&sort=name", f.team1), []int64{a, b}},
		{fmt.Sprintf("team_id=%d&sort=name", f.team2), []int64{b, d}},
		{fmt.Sprintf("team_id=%d&role=manager", f.team2), []int64{d}},
		{"team_id=999999", []int64{}},
		{"search=corp.test&sort=created_at", f.byCreated},
		{"search=corp.test&sort=-created_at", rev(f.byCreated)},
		{"search=corp.test&sort=email", f.byEmail},
		{"search=corp.test&sort=-email", rev(f.byEmail)},
		{"search=corp.test&sort=name", []int64{a, b, c, d}},
		{"search=corp.test&sort=-name", []int64{d, c, b, a}},
		{"search=corp.test&sort=last_login_at", []int64{b, a, c, d}},  // never logged in: last
		{"search=corp.test&sort=-last_login_at", []int64{a, b, d, c}}, // in both directions (the id tiebreak follows the key)
		{"search=nobody-at-all", []int64{}},
	}
	for _, tc := range cases {
		p := uaList(t, e, tok, tc.query)
		if got := uaUserIDs(p.Items); !slices.Equal(got, tc.want) || p.Total != int64(len(tc.want)) {
			t.Errorf("?%s: ids %v (total %d), want %v", tc.query, got, p.Total, tc.want)
		}
	}

	// Paging: total over every filter, page meta.
	p := uaList(t, e, tok, "search=corp.test&sort=email&page=2&page_size=3")
	if !slices.Equal(uaUserIDs(p.Items), []int64{d}) || p.Total != 4 || p.Page != 2 || p.PageSize != 3 || p.TotalPages != 2 || p.HasNext || !p.HasPrev {
		t.Fatalf("page 2 of 3: %+v", p)
	}

	// team_ids and the rest of the user object.
	p = uaList(t, e, tok, "search=corp.test&sort=email")
	wantTeams := map[int64][]int64{a: {f.team1}, b: {f.team1, f.team2}, c: {}, d: {f.team2}}
	for _, u := range p.Items {
		if !slices.Equal(u.TeamIds, wantTeams[u.Id]) {
			t.Errorf("user %d team_ids %v, want %v", u.Id, u.TeamIds, wantTeams[u.Id])
		}
		if u.Id == c && (u.IsActive || u.Role != api.UserRole(rbac.Editor) || u.Email != "carol@corp.test" || !u.LastLoginAt.IsNull()) {
			t.Errorf("carol %+v", u)
		}
		if u.Id == a {
			if at, err := u.LastLoginAt.Get(); err != nil || at.IsZero() {
				t.Errorf("alice last_login_at %v (%v)", at, err)
			}
		}
	}

	// team_ids cost no query per row.
	q := uaCountQueries(t, e)
	count := func(size int) int64 {
		n := q.n.Load()
		if got := uaList(t, e, tok, fmt.Sprintf("search=corp.test&page_size=%d", size)); len(got.Items) != size {
			t.Fatalf("page_size=%d: %d items", size, len(got.Items))
		}
		return q.n.Load() - n
	}
	if one, four := count(1), count(4); one != four {
		t.Fatalf("listing 1 user ran %d statements, 4 users %d: a query per row", one, four)
	}

	// user:list is needed.
	_, mgrTok := e.User(rbac.Manager)
	resp, body := uaReq(t, e, http.MethodGet, uaAPIPath("/users"), mgrTok, "")
	uaForbidden(t, resp, body, "user:list")
}

// TestUsersDirectory: active users only, no emails, search by name only, team_ids; users only.
func TestUsersDirectory(t *testing.T) {
	t.Parallel()
	f := uaListUsers(t)
	e := f.e
	_, viewerTok := e.User(rbac.Viewer)
	page := func(query string) (api.UserDirectoryPage, string) {
		t.Helper()
		resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/users/directory?%s", query), viewerTok, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("directory?%s: %d %s", query, resp.StatusCode, b)
		}
		var p api.UserDirectoryPage
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		return p, string(b)
	}
	p, raw := page("page_size=100")
	if strings.Contains(raw, "@") || strings.Contains(raw, `"email"`) {
		t.Fatalf("the directory shows emails: %s", raw)
	}
	var ids []int64
	for _, it := range p.Items {
		ids = append(ids, it.Id)
		if u, _ := uaUserRow(t, e, it.Id); !u.IsActive {
			t.Fatalf("inactive user %d in the directory", it.Id)
		}
	}
	if slices.Contains(ids, f.c.ID) || !slices.Contains(ids, f.a.ID) || !slices.Contains(ids, f.d.ID) {
		t.Fatalf("directory ids %v: want alice and dave, not carol (inactive)", ids)
	}
	var active int64
	e.DB.Model(&store.User{}).Where("is_active = ?", true).Count(&active)
	if p.Total != active {
		t.Fatalf("directory total %d, want %d active users", p.Total, active)
	}
	// By name, ordered by name.
	for i := 1; i < len(p.Items); i++ {
		if p.Items[i-1].Name > p.Items[i].Name {
			t.Fatalf("directory not ordered by name: %q before %q", p.Items[i-1].Name, p.Items[i].Name)
		}
	}

	if p, _ := page("search=BAKER"); len(p.Items) != 1 || p.Items[0].Id != f.b.ID || p.Items[0].Name != "Bob Baker" ||
		!slices.Equal(p.Items[0].TeamIds, []int64{f.team1, f.team2}) || p.Total != 1 {
		t.Fatalf("search=BAKER: %+v", p)
	}
	if p, _ := page("search=dunn"); len(p.Items) != 1 || !slices.Equal(p.Items[0].TeamIds, []int64{f.team2}) {
		t.Fatalf("search=dunn: %+v", p)
	}
	for _, q := range []string{"corp.test", "carol", url.QueryEscape("dave@"), "example.com"} {
		if p, _ := page("search=" + q); len(p.Items) != 0 || p.Total != 0 {
			t.Fatalf("search=%s (email or inactive) matched %+v", q, p.Items)
		}
	}
}

// TestUsersGet: one user with team_ids; unknown → 404; user:read needed.
func TestUsersGet(t *testing.T) {
	t.Parallel()
	f := uaListUsers(t)
	e := f.e
	r, err := e.Client(f.adminTok).GetUserWithResponse(uaCtx, f.b.ID)
	if err != nil || r.JSON200 == nil {
		t.Fatalf("get: %v %s", err, r.Body)
	}
	if u := r.JSON200; u.Id != f.b.ID || u.Email != "bob@corp.test" || u.Name != "Bob Baker" || u.Role != api.UserRole(rbac.Viewer) ||
		!u.IsActive || !slices.Equal(u.TeamIds, []int64{f.team1, f.team2}) || !u.ExternalId.IsNull() {
		t.Fatalf("get %+v", u)
	}
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/users/%d", 999999), f.adminTok, "")
	uaProblem(t, resp, b, http.StatusNotFound, "not-found")
	_, edTok := e.User(rbac.Editor)
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/users/%d", f.b.ID), edTok, "")
	uaForbidden(t, resp, b, "user:read")
}

// TestUsersRoleAdminCannotGrantSuperAdmin: only a super_admin grants super_admin.
func TestUsersRoleAdminCannotGrantSuperAdmin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	ed, _ := e.User(rbac.Editor)
	e.User(rbac.SuperAdmin)
	before := uaSnap(t, e)
	resp, b := uaSetRole(t, e, adminTok, ed.ID, rbac.SuperAdmin)
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	uaSame(t, "an admin granting super_admin", before, uaSnap(t, e))
	// An admin may change other roles.
	if resp, b := uaSetRole(t, e, adminTok, ed.ID, rbac.Manager); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin sets manager: %d %s", resp.StatusCode, b)
	}
}

// TestUsersRoleAdminCannotTouchSuperAdmin: an admin cannot change, deactivate, activate or delete a
// super_admin.
func TestUsersRoleAdminCannotTouchSuperAdmin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	sa, _ := e.User(rbac.SuperAdmin)
	e.User(rbac.SuperAdmin)
	inactiveSA := uaUser(t, e, rbac.SuperAdmin, "Dormant", "dormant@example.com", false)
	before := uaSnap(t, e)
	for _, role := range []rbac.Role{rbac.Admin, rbac.User, rbac.SuperAdmin} {
		resp, b := uaSetRole(t, e, adminTok, sa.ID, role)
		uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	}
	resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/users/%d/deactivate", sa.ID), adminTok, "")
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = uaReq(t, e, http.MethodPost, uaAPIPath("/users/%d/activate", inactiveSA.ID), adminTok, "")
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d", sa.ID), adminTok, "")
	uaForbidden(t, resp, b, "user:delete")
	uaSame(t, "an admin touching a super_admin", before, uaSnap(t, e))
}

// TestUsersRoleSuperAdminCan: a super_admin grants and removes super_admin.
func TestUsersRoleSuperAdminCan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	sa, saTok := e.User(rbac.SuperAdmin)
	other, _ := e.User(rbac.Admin)
	if resp, b := uaSetRole(t, e, saTok, other.ID, rbac.SuperAdmin); resp.StatusCode != http.StatusOK {
		t.Fatalf("grant super_admin: %d %s", resp.StatusCode, b)
	}
	if u, _ := uaUserRow(t, e, other.ID); u.Role != string(rbac.SuperAdmin) {
		t.Fatalf("role %q", u.Role)
	}
	// Two active super_admins: one may now demote itself, or the other.
	if resp, b := uaSetRole(t, e, saTok, other.ID, rbac.Editor); resp.StatusCode != http.StatusOK {
		t.Fatalf("demote another super_admin: %d %s", resp.StatusCode, b)
	}
	if resp, b := uaSetRole(t, e, saTok, other.ID, rbac.SuperAdmin); resp.StatusCode != http.StatusOK {
		t.Fatalf("grant again: %d %s", resp.StatusCode, b)
	}
	if resp, b := uaSetRole(t, e, saTok, sa.ID, rbac.Admin); resp.StatusCode != http.StatusOK {
		t.Fatalf("self-demotion with another super_admin left: %d %s", resp.StatusCode, b)
	}
	if u, _ := uaUserRow(t, e, sa.ID); u.Role != string(rbac.Admin) {
		t.Fatalf("role %q", u.Role)
	}
}

// TestUsersRoleLastSuperAdmin: nobody demotes the last active super_admin (an inactive one does not
// count).
func TestUsersRoleLastSuperAdmin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	sa, saTok := e.User(rbac.SuperAdmin)
	uaUser(t, e, rbac.SuperAdmin, "Dormant", "dormant@example.com", false)
	before := uaSnap(t, e)
	for _, role := range []rbac.Role{rbac.Admin, rbac.User} {
		resp, b := uaSetRole(t, e, saTok, sa.ID, role)
		uaProblem(t, resp, b, http.StatusConflict, "last-super-admin")
	}
	uaSame(t, "demoting the last super_admin", before, uaSnap(t, e))
	// Setting the same role is a no-op, not a demotion.
	if resp, b := uaSetRole(t, e, saTok, sa.ID, rbac.SuperAdmin); resp.StatusCode != http.StatusOK {
		t.Fatalf("same role: %d %s", resp.StatusCode, b)
	}
	uaSame(t, "setting the same role", before, uaSnap(t, e))
}

// TestUsersRoleSyncLogin: with CASDOOR_ROLE_SYNC=login, roles are managed by the IdP (409).
func TestUsersRoleSyncLogin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, map[string]string{"CASDOOR_ROLE_SYNC": "login"})
	_, saTok := e.User(rbac.SuperAdmin)
	ed, _ := e.User(rbac.Editor)
	uaSession(t, e, ed)
	before := uaSnap(t, e)
	resp, b := uaSetRole(t, e, saTok, ed.ID, rbac.Manager)
	uaProblem(t, resp, b, http.StatusConflict, "invalid-state")
	resp, b = uaSetRole(t, e, saTok, ed.ID, rbac.Editor) // even to the same role
	uaProblem(t, resp, b, http.StatusConflict, "invalid-state")
	// An unknown user is still 404, and the super_admin rule still 403 (PRODUCT §2.2 order).
	resp, b = uaSetRole(t, e, saTok, 999999, rbac.Manager)
	uaProblem(t, resp, b, http.StatusNotFound, "not-found")
	uaSame(t, "a role change under CASDOOR_ROLE_SYNC=login", before, uaSnap(t, e))
	_, adminTok := e.User(rbac.Admin)
	before = uaSnap(t, e)
	resp, b = uaSetRole(t, e, adminTok, ed.ID, rbac.SuperAdmin)
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	uaSame(t, "a role change under CASDOOR_ROLE_SYNC=login", before, uaSnap(t, e))
}

// TestUsersRoleChangeRevokesSessions: the change revokes every refresh family of the user, their
// access tokens fail at once, and it is audited with before and after.
func TestUsersRoleChangeRevokesSessions(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin, adminTok := e.User(rbac.Admin)
	ed, _ := e.User(rbac.Editor)
	bystander, _ := e.User(rbac.Editor)
	tok1, _ := uaSession(t, e, ed)
	tok2, _ := uaSession(t, e, ed)
	uaRefresh(t, e, ed.ID, auth.NewFamilyID(), store.Now().Add(-time.Hour), nil) // expired
	earlier := store.Now().Add(-time.Hour)
	earlierID := uaRefresh(t, e, ed.ID, auth.NewFamilyID(), store.Now().Add(time.Hour), &earlier) // revoked before
	otherTok, _ := uaSession(t, e, bystander)
	for _, tok := range []string{tok1, tok2, otherTok} {
		if s := uaStatus(t, e, http.MethodGet, uaAPIPath("/casdoor/auth/me"), tok); s != http.StatusOK {
			t.Fatalf("before: %d", s)
		}
	}

	start := store.Now()
	r, err := e.Client(adminTok).UpdateUserRoleWithResponse(uaCtx, ed.ID, api.UserRoleUpdate{Role: api.UserRole(rbac.Manager)})
	if err != nil || r.JSON200 == nil {
		t.Fatalf("role change: %v %s", err, r.Body)
	}
	if r.JSON200.Role != api.UserRole(rbac.Manager) || r.JSON200.Id != ed.ID {
		t.Fatalf("response %+v", r.JSON200)
	}
	rows := uaRefreshRows(t, e, ed.ID)
	if len(rows) != 4 {
		t.Fatalf("%d refresh rows", len(rows))
	}
	for _, rt := range rows {
		switch {
		case rt.ID == earlierID && (rt.RevokedAt == nil || !rt.RevokedAt.Equal(earlier)):
			t.Fatalf("the row revoked earlier now has revoked_at %v, want %v", rt.RevokedAt, earlier)
		case rt.ID != earlierID && (rt.RevokedAt == nil || rt.RevokedAt.Before(start)):
			t.Fatalf("refresh row %d (family %s) revoked_at %v, want set by the change", rt.ID, rt.FamilyID, rt.RevokedAt)
		}
	}
	for _, tok := range []string{tok1, tok2} {
		resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/casdoor/auth/me"), tok, "")
		uaUnauthenticated(t, resp, b)
	}
	// Another user's sessions are untouched.
	if s := uaStatus(t, e, http.MethodGet, uaAPIPath("/casdoor/auth/me"), otherTok); s != http.StatusOK {
		t.Fatalf("bystander after the change: %d", s)
	}
	for _, rt := range uaRefreshRows(t, e, bystander.ID) {
		if rt.RevokedAt != nil {
			t.Fatal("a bystander's family was revoked")
		}
	}
	// A new session sees the new role.
	fresh, _ := uaSession(t, e, &store.User{ID: ed.ID, Role: string(rbac.Manager)})
	if me := uaMe(t, e, fresh); me.Role != api.UserRole(rbac.Manager) || !slices.Contains(me.Permissions, "flow:delete") {
		t.Fatalf("me after the change: %s %v", me.Role, me.Permissions)
	}

	a := uaOneAudit(t, e, "user.role_changed", "user", ed.ID, admin)
	ch := uaChanges(t, a)
	before, _ := ch["before"].(map[string]any)
	after, _ := ch["after"].(map[string]any)
	if before["role"] != "editor" || after["role"] != "manager" {
		t.Fatalf("user.role_changed changes %s", *a.Changes)
	}

	// Under an API token, the audit row names the token as well as its owner.
	c := uaCreateToken(t, e, adminTok, "admin bot", "user:update")
	if resp, b := uaSetRole(t, e, c.Token, ed.ID, rbac.Viewer); resp.StatusCode != http.StatusOK {
		t.Fatalf("role change with a token: %d %s", resp.StatusCode, b)
	}
	audits := uaAudit(t, e, "user.role_changed", "user", ed.ID)
	last := audits[len(audits)-1]
	if len(audits) != 2 || last.ActorType != store.ActorAPIToken || last.APITokenID == nil || *last.APITokenID != c.Id ||
		last.ActorUserID == nil || *last.ActorUserID != admin.ID {
		t.Fatalf("audit under a token: %+v", last)
	}
}

// TestUsersDeactivateSelf: nobody deactivates themselves (409 invalid-state), nor the last super_admin.
func TestUsersDeactivateSelf(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin, adminTok := e.User(rbac.Admin)
	sa, saTok := e.User(rbac.SuperAdmin)
	uaSession(t, e, admin)
	before := uaSnap(t, e)
	resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/users/%d/deactivate", admin.ID), adminTok, "")
	uaProblem(t, resp, b, http.StatusConflict, "invalid-state")
	// The last active super_admin, deactivating itself: refused either way.
	resp, b = uaReq(t, e, http.MethodPost, uaAPIPath("/users/%d/deactivate", sa.ID), saTok, "")
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("last super_admin deactivates itself: %d %s", resp.StatusCode, b)
	}
	uaSame(t, "self-deactivation", before, uaSnap(t, e))
}

// TestUsersLastSuperAdminGuard: the last-super-admin rule itself (over HTTP a super_admin can only
// reach the last one through itself, which the self rule refuses first).
func TestUsersLastSuperAdminGuard(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	sa, _ := e.User(rbac.SuperAdmin)
	uaUser(t, e, rbac.SuperAdmin, "Dormant", "dormant@example.com", false)
	ed, _ := e.User(rbac.Editor)
	err := guardLastSuperAdmin(uaCtx, e.DB.DB, sa)
	if p, ok := asProblem(err); !ok || p.Status != http.StatusConflict || p.Slug != "last-super-admin" {
		t.Fatalf("guard on the last super_admin: %v", err)
	}
	if err := guardLastSuperAdmin(uaCtx, e.DB.DB, ed); err != nil {
		t.Fatalf("guard on an editor: %v", err)
	}
	e.User(rbac.SuperAdmin)
	if err := guardLastSuperAdmin(uaCtx, e.DB.DB, sa); err != nil {
		t.Fatalf("guard with two super_admins: %v", err)
	}
}

// TestUsersDeactivate: the user's requests get 403 account-disabled at once, their families are
// revoked, it is audited; activate reverses it.
func TestUsersDeactivate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin, adminTok := e.User(rbac.Admin)
	ed, plain := e.User(rbac.Editor)
	sessTok, family := uaSession(t, e, ed)
	if s := uaStatus(t, e, http.MethodGet, uaAPIPath("/flows"), sessTok); s != http.StatusOK {
		t.Fatalf("before: %d", s)
	}
	r, err := e.Client(adminTok).DeactivateUserWithResponse(uaCtx, ed.ID)
	if err != nil || r.JSON200 == nil || r.JSON200.IsActive {
		t.Fatalf("deactivate: %v %s", err, r.Body)
	}
	if u, _ := uaUserRow(t, e, ed.ID); u.IsActive {
		t.Fatal("is_active still true")
	}
	for _, rt := range uaRefreshRows(t, e, ed.ID) {
		if rt.RevokedAt == nil {
			t.Fatalf("refresh row %d not revoked", rt.ID)
		}
	}
	uaWantDenied(t, e, family)
	// A token without a revoked family (minted by the CLI) is refused because the account is disabled.
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), plain, "")
	uaProblem(t, resp, b, http.StatusForbidden, "account-disabled")
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/casdoor/auth/me"), sessTok, "")
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("session token after deactivation: %d %s", resp.StatusCode, b)
	}
	a := uaOneAudit(t, e, "user.deactivated", "user", ed.ID, admin)
	if after, _ := uaChanges(t, a)["after"].(map[string]any); after["is_active"] != false {
		t.Fatalf("user.deactivated changes %s", *a.Changes)
	}

	// Deactivating again changes nothing.
	before := uaSnap(t, e)
	if r, err := e.Client(adminTok).DeactivateUserWithResponse(uaCtx, ed.ID); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("deactivate again: %v %s", err, r.Body)
	}
	uaSame(t, "a second deactivation", before, uaSnap(t, e))

	// user:update is needed; unknown → 404.
	_, mgrTok := e.User(rbac.Manager)
	other, _ := e.User(rbac.Editor)
	before = uaSnap(t, e)
	resp, b = uaReq(t, e, http.MethodPost, uaAPIPath("/users/%d/deactivate", other.ID), mgrTok, "")
	uaForbidden(t, resp, b, "user:update")
	resp, b = uaReq(t, e, http.MethodPost, uaAPIPath("/users/%d/deactivate", 999999), adminTok, "")
	uaProblem(t, resp, b, http.StatusNotFound, "not-found")
	uaSame(t, "refused deactivations", before, uaSnap(t, e))

	// Activate: works, audited, and the user's requests work again.
	ra, err := e.Client(adminTok).ActivateUserWithResponse(uaCtx, ed.ID)
	if err != nil || ra.JSON200 == nil || !ra.JSON200.IsActive {
		t.Fatalf("activate: %v %s", err, ra.Body)
	}
	if s := uaStatus(t, e, http.MethodGet, uaAPIPath("/flows"), plain); s != http.StatusOK {
		t.Fatalf("after activation: %d", s)
	}
	a = uaOneAudit(t, e, "user.activated", "user", ed.ID, admin)
	if after, _ := uaChanges(t, a)["after"].(map[string]any); after["is_active"] != true {
		t.Fatalf("user.activated changes %s", *a.Changes)
	}
	before = uaSnap(t, e)
	if r, err := e.Client(adminTok).ActivateUserWithResponse(uaCtx, ed.ID); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("activate again: %v %s", err, r.Body)
	}
	uaSame(t, "a second activation", before, uaSnap(t, e))
}

// TestUsersDeactivateSuperAdmin: a super_admin deactivates another super_admin; an admin cannot.
func TestUsersDeactivateSuperAdmin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, saTok := e.User(rbac.SuperAdmin)
	sa2, sa2Tok := e.User(rbac.SuperAdmin)
	_, adminTok := e.User(rbac.Admin)
	before := uaSnap(t, e)
	resp, b := uaReq(t, e, http.MethodPost, uaAPIPath("/users/%d/deactivate", sa2.ID), adminTok, "")
	uaProblem(t, resp, b, http.StatusForbidden, "forbidden")
	uaSame(t, "an admin deactivating a super_admin", before, uaSnap(t, e))
	if r, err := e.Client(saTok).DeactivateUserWithResponse(uaCtx, sa2.ID); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("super_admin deactivates super_admin: %v %s", err, r.Body)
	}
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/casdoor/auth/me"), sa2Tok, "")
	uaProblem(t, resp, b, http.StatusForbidden, "account-disabled")
}

// uaDeleteFixture: a super_admin deletes a user who owns flows, tokens and sessions.
type uaDeleteFixture struct {
	e               *testEnv
	sa              *store.User
	saTok           string
	victim          *store.User
	victimTok       string
	victimFamily    string
	heir            *store.User
	private         int64 // flows of the victim: private,
	inTeam, teamOut int64 // a team flow whose team holds the heir, and one whose team does not
	teamWith        int64
	teamWithout     int64
	apiToken        *api.ApiTokenCreated
}

func uaDeleteSetup(t *testing.T) *uaDeleteFixture {
	e := newTestEnv(t)
	f := &uaDeleteFixture{e: e}
	e.User(rbac.Viewer) // so that the caller is not user 1
	f.sa, f.saTok = e.User(rbac.SuperAdmin)
	f.victim, _ = e.User(rbac.Manager)
	f.heir, _ = e.User(rbac.Editor)
	f.teamWith = uaTeam(t, e, "With heir", f.victim.ID, f.heir.ID)
	f.teamWithout = uaTeam(t, e, "Without heir", f.victim.ID)
	f.victimTok, f.victimFamily = uaSession(t, e, f.victim)
	f.private = uaFlow(t, e, f.victimTok, "private")
	mk := func(name string, team int64) int64 {
		t.Helper()
		vis := api.FlowVisibility("team")
		r, err := e.Client(f.victimTok).CreateFlowWithResponse(uaCtx, nil, api.FlowCreate{Name: name, Visibility: &vis, TeamId: nullable.NewNullableWithValue(team)})
		if err != nil || r.JSON201 == nil {
			t.Fatalf("team flow: %v %s", err, r.Body)
		}
		return r.JSON201.Id
	}
	f.inTeam = mk("team with heir", f.teamWith)
	f.teamOut = mk("team without heir", f.teamWithout)
	f.apiToken = uaCreateToken(t, e, f.victimTok, "victim's", "flow:list") // also an audit row by the victim
	return f
}

func uaFlowRow(t *testing.T, e *testEnv, id int64) store.Flow {
	t.Helper()
	var fl store.Flow
	if err := e.DB.Where("id = ?", id).Take(&fl).Error; err != nil {
		t.Fatalf("flow %d: %v", id, err)
	}
	return fl
}

// TestUsersDeleteRefusals: admin (no user:delete), self, unknown, and bad transfer_to change nothing.
func TestUsersDeleteRefusals(t *testing.T) {
	t.Parallel()
	f := uaDeleteSetup(t)
	e := f.e
	_, adminTok := e.User(rbac.Admin)
	inactive := uaUser(t, e, rbac.Editor, "Gone", "gone@example.com", false)
	before := uaSnap(t, e)
	resp, b := uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d", f.victim.ID), adminTok, "")
	uaForbidden(t, resp, b, "user:delete")
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d", f.sa.ID), f.saTok, "")
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("self-delete (the last super_admin): %d %s", resp.StatusCode, b)
	}
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d", 999999), f.saTok, "")
	uaProblem(t, resp, b, http.StatusNotFound, "not-found")
	for _, to := range []int64{inactive.ID, 999999, f.victim.ID} {
		resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d?transfer_to=%d", f.victim.ID, to), f.saTok, "")
		uaProblem(t, resp, b, http.StatusUnprocessableEntity, "unprocessable", "#/query/transfer_to")
	}
	uaSame(t, "refused deletes", before, uaSnap(t, e))
	if s := uaStatus(t, e, http.MethodGet, uaAPIPath("/flows"), f.victimTok); s != http.StatusOK {
		t.Fatalf("the victim's session after refused deletes: %d", s)
	}

	// With a second super_admin, the self rule still holds.
	e.User(rbac.SuperAdmin)
	before = uaSnap(t, e)
	resp, b = uaReq(t, e, http.MethodDelete, uaAPIPath("/users/%d", f.sa.ID), f.saTok, "")
	uaProblem(t, resp, b, http.StatusConflict, "invalid-state")
	uaSame(t, "self-delete", before, uaSnap(t, e))
}

// TestUsersDeleteTransfers: flows move to transfer_to (team flows whose team lacks the heir become
// private), the user's tokens go, their session ends at once, and audit rows survive.
func TestUsersDeleteTransfers(t *testing.T) {
	t.Parallel()
	f := uaDeleteSetup(t)
	e := f.e
	var victimAudits int64
	e.DB.Model(&store.AuditLog{}).Where("actor_user_id = ?", f.victim.ID).Count(&victimAudits)
	if victimAudits == 0 {
		t.Fatal("the fixture wrote no audit row by the victim")
	}
	revBefore := uaFlowRow(t, e, f.private).Revision

	r, err := e.Client(f.saTok).DeleteUserWithResponse(uaCtx, f.victim.ID, &api.DeleteUserParams{TransferTo: &f.heir.ID})
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %v %d %s", err, r.StatusCode(), r.Body)
	}
	if _, ok := uaUserRow(t, e, f.victim.ID); ok {
		t.Fatal("the user row is still there")
	}
	for _, id := range []int64{f.private, f.inTeam, f.teamOut} {
		if fl := uaFlowRow(t, e, id); fl.OwnerID != f.heir.ID {
			t.Fatalf("flow %d owner %d, want the heir %d", id, fl.OwnerID, f.heir.ID)
		}
	}
	if fl := uaFlowRow(t, e, f.private); fl.Revision <= revBefore {
		t.Fatalf("moved flow kept revision %d", fl.Revision)
	}
	if fl := uaFlowRow(t, e, f.inTeam); fl.Visibility != "team" || fl.TeamID == nil || *fl.TeamID != f.teamWith {
		t.Fatalf("team flow whose team holds the heir: %s team %v", fl.Visibility, fl.TeamID)
	}
	if fl := uaFlowRow(t, e, f.teamOut); fl.Visibility != "private" || fl.TeamID != nil {
		t.Fatalf("team flow whose team lacks the heir: %s team %v, want private", fl.Visibility, fl.TeamID)
	}
	var n int64
	e.DB.Model(&store.APIToken{}).Where("owner_id = ?", f.victim.ID).Count(&n)
	if n != 0 {
		t.Fatalf("%d API tokens of the deleted user remain", n)
	}
	e.DB.Model(&store.RefreshToken{}).Where("user_id = ?", f.victim.ID).Count(&n)
	if n != 0 {
		t.Fatalf("%d refresh tokens of the deleted user remain", n)
	}
	e.DB.Model(&store.TeamMember{}).Where("user_id = ?", f.victim.ID).Count(&n)
	if n != 0 {
		t.Fatalf("%d team memberships of the deleted user remain", n)
	}
	// Logged out at once, both credentials; the family is on the shared deny-list as well.
	uaWantDenied(t, e, f.victimFamily)
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), f.victimTok, "")
	uaUnauthenticated(t, resp, b)
	resp, b = uaReq(t, e, http.MethodGet, uaAPIPath("/flows"), f.apiToken.Token, "")
	uaUnauthenticated(t, resp, b)
	// Audit rows by the deleted user survive with their display name.
	var rows []store.AuditLog
	e.DB.Where("actor_user_id = ?", f.victim.ID).Find(&rows)
	if int64(len(rows)) != victimAudits {
		t.Fatalf("%d audit rows by the deleted user, want %d", len(rows), victimAudits)
	}
	for _, a := range rows {
		if a.ActorDisplay != f.victim.Name {
			t.Fatalf("audit row %d actor_display %q, want %q", a.ID, a.ActorDisplay, f.victim.Name)
		}
	}
	a := uaOneAudit(t, e, "user.deleted", "user", f.victim.ID, f.sa)
	if after, _ := uaChanges(t, a)["after"].(map[string]any); after["transfer_to"] != float64(f.heir.ID) {
		t.Fatalf("user.deleted changes %s", *a.Changes)
	}
	// The heir sees the flows as theirs.
	heirTok := e.Token(f.heir)
	if s := uaStatus(t, e, http.MethodGet, uaAPIPath("/flows/%d", f.teamOut), heirTok); s != http.StatusOK {
		t.Fatalf("heir reads the moved flow: %d", s)
	}
}

// TestUsersDeleteDefaultsToCaller: without transfer_to, flows go to the caller; deleting a super_admin
// takes a super_admin while another one remains.
func TestUsersDeleteDefaultsToCaller(t *testing.T) {
	t.Parallel()
	f := uaDeleteSetup(t)
	e := f.e
	r, err := e.Client(f.saTok).DeleteUserWithResponse(uaCtx, f.victim.ID, nil)
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %v %d %s", err, r.StatusCode(), r.Body)
	}
	for _, id := range []int64{f.private, f.inTeam, f.teamOut} {
		fl := uaFlowRow(t, e, id)
		if fl.OwnerID != f.sa.ID {
			t.Fatalf("flow %d owner %d, want the caller %d", id, fl.OwnerID, f.sa.ID)
		}
		if id != f.private && (fl.Visibility != "private" || fl.TeamID != nil) {
			t.Fatalf("team flow %d moved to a non-member: %s team %v", id, fl.Visibility, fl.TeamID)
		}
	}
	// Another super_admin can be deleted while one remains.
	second := uaUser(t, e, rbac.SuperAdmin, "Second", "second@example.com", true)
	secondTok, _ := uaSession(t, e, second)
	if r, err := e.Client(f.saTok).DeleteUserWithResponse(uaCtx, second.ID, nil); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete another super_admin: %v %s", err, r.Body)
	}
	resp, b := uaReq(t, e, http.MethodGet, uaAPIPath("/casdoor/auth/me"), secondTok, "")
	uaUnauthenticated(t, resp, b)
}

// uaConcurrently runs the functions at the same moment and waits for them.
func uaConcurrently(fns ...func()) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for _, fn := range fns {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn()
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// uaStatusOf sends a request from a goroutine (no t.Fatal) and returns its status.
func uaStatusOf(e *testEnv, method, path, tok, body string) int {
	req, err := http.NewRequest(method, e.HTTP.URL+path, strings.NewReader(body))
	if err != nil {
		return -1
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestUsersLastSuperAdminRace: two super_admins demoting or deactivating each other at the same time
// never leave the organisation without an active super_admin.
func TestUsersLastSuperAdminRace(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	a, aTok := e.User(rbac.SuperAdmin)
	b, bTok := e.User(rbac.SuperAdmin)
	ops := []struct {
		name         string
		method, body string
		path         func(target int64) string
	}{
		{"demote", http.MethodPut, `{"role":"admin"}`, func(id int64) string { return uaAPIPath("/users/%d/role", id) }},
		{"deactivate", http.MethodPost, "", func(id int64) string { return uaAPIPath("/users/%d/deactivate", id) }},
	}
	for round := 0; round < 8; round++ {
		for _, op := range ops {
			if err := e.DB.Model(&store.User{}).Where("id IN ?", []int64{a.ID, b.ID}).
				Updates(map[string]any{"role": string(rbac.SuperAdmin), "is_active": true}).Error; err != nil {
				t.Fatal(err)
			}
			var s1, s2 int
			uaConcurrently(
				func() { s1 = uaStatusOf(e, op.method, op.path(b.ID), aTok, op.body) },
				func() { s2 = uaStatusOf(e, op.method, op.path(a.ID), bTok, op.body) },
			)
			n, err := store.CountActiveSuperAdmins(uaCtx, e.DB.DB)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("round %d, %s each other: statuses %d and %d left %d active super_admins, want 1", round, op.name, s1, s2, n)
			}
			got := []int{s1, s2}
			slices.Sort(got)
			// The loser sees the winner's change: 409 last-super-admin, or 403 when it already lost its
			// role or its account.
			if !slices.Equal(got, []int{http.StatusOK, http.StatusConflict}) && !slices.Equal(got, []int{http.StatusOK, http.StatusForbidden}) {
				t.Fatalf("round %d, %s each other: statuses %v", round, op.name, got)
			}
		}
	}
}

// TestUsersConcurrentChanges: a deactivation and a role change of the same user at the same time both
// take effect (neither writes back the other's stale row).
func TestUsersConcurrentChanges(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	_, admin2Tok := e.User(rbac.Admin)
	for round := 0; round < 8; round++ {
		u := uaUser(t, e, rbac.Editor, fmt.Sprintf("Target %d", round), fmt.Sprintf("target%d@example.com", round), true)
		var s1, s2 int
		uaConcurrently(
			func() { s1 = uaStatusOf(e, http.MethodPost, uaAPIPath("/users/%d/deactivate", u.ID), adminTok, "") },
			func() {
				s2 = uaStatusOf(e, http.MethodPut, uaAPIPath("/users/%d/role", u.ID), admin2Tok, `{"role":"manager"}`)
			},
		)
		if s1 != http.StatusOK || s2 != http.StatusOK {
			t.Fatalf("round %d: statuses %d, %d", round, s1, s2)
		}
		if got, _ := uaUserRow(t, e, u.ID); got.IsActive || got.Role != string(rbac.Manager) {
			t.Fatalf("round %d: user is_active=%v role=%s, want inactive manager (a lost update)", round, got.IsActive, got.Role)
		}
	}
}

package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed tp).

func tpStr(s string) *string { return &s }

// tpCreateTeam creates a team through the generated client and checks the 201 facts.
func tpCreateTeam(t *testing.T, e *testEnv, tok, name string, desc *string) *api.Team {
	t.Helper()
	body := api.TeamCreate{Name: name}
	if desc != nil {
		body.Description = nullable.NewNullableWithValue(*desc)
	}
	resp, err := e.Client(tok).CreateTeamWithResponse(tpCtx, nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
		t.Fatalf("create team %q: %d %s", name, resp.StatusCode(), resp.Body)
	}
	tm := resp.JSON201
	if got, want := resp.HTTPResponse.Header.Get("Location"), fmt.Sprintf("%s/teams/%d", BasePath, tm.Id); got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if tm.Name != name || tm.MemberCount != 0 || tm.Members == nil || len(tm.Members) != 0 {
		t.Errorf("created team %+v, want name %q and no members", tm, name)
	}
	return tm
}

// tpGetTeam reads a team through the generated client.
func tpGetTeam(t *testing.T, e *testEnv, tok string, id int64) *api.Team {
	t.Helper()
	resp, err := e.Client(tok).GetTeamWithResponse(tpCtx, id)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
		t.Fatalf("get team %d: %d %s", id, resp.StatusCode(), resp.Body)
	}
	return resp.JSON200
}

// tpSetMembers replaces a team's members and expects 200.
func tpSetMembers(t *testing.T, e *testEnv, tok string, id int64, users ...int64) *api.Team {
	t.Helper()
	if users == nil {
		users = []int64{}
	}
	resp, err := e.Client(tok).SetTeamMembersWithResponse(tpCtx, id, api.TeamMembersSet{UserIds: users})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
		t.Fatalf("set members of %d to %v: %d %s", id, users, resp.StatusCode(), resp.Body)
	}
	return resp.JSON200
}

// tpListTeams lists teams through the generated client.
func tpListTeams(t *testing.T, e *testEnv, tok string, p api.ListTeamsParams) *api.TeamPage {
	t.Helper()
	resp, err := e.Client(tok).ListTeamsWithResponse(tpCtx, &p)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil {
		t.Fatalf("list teams: %d %s", resp.StatusCode(), resp.Body)
	}
	return resp.JSON200
}

func tpTeamNames(p *api.TeamPage) []string {
	out := []string{}
	for _, it := range p.Items {
		out = append(out, it.Name)
	}
	return out
}

func tpMemberIDs(tm *api.Team) []int64 {
	out := []int64{}
	for _, m := range tm.Members {
		out = append(out, m.Id)
	}
	return out
}

// tpReq sends a raw JSON request ("" body for none).
func tpReq(t *testing.T, e *testEnv, method, path, tok, body string) (*http.Response, []byte) {
	t.Helper()
	if body == "" {
		return e.Do(method, BasePath+path, tok, "", nil)
	}
	return e.Do(method, BasePath+path, tok, "application/json", strings.NewReader(body))
}

// tpTeamRow reads a teams row; ok is false when it is gone.
func tpTeamRow(t *testing.T, e *testEnv, id int64) (store.Team, bool) {
	t.Helper()
	var row store.Team
	err := e.DB.Where("id = ?", id).Take(&row).Error
	if err == gorm.ErrRecordNotFound {
		return row, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return row, true
}

// tpTeamState is every row a team operation may touch, for "nothing changed" comparisons.
func tpTeamState(t *testing.T, e *testEnv) string {
	t.Helper()
	dump := func(table, order string) string {
		var rows []map[string]any
		if err := e.DB.Table(table).Order(order).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(rows)
		return string(b)
	}
	var audits int64
	if err := e.DB.Model(&store.AuditLog{}).Where("action LIKE ?", "team.%").Count(&audits).Error; err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("teams %s\nteam_members %s\nflows %s\nteam audit rows %d",
		dump("teams", "id"), dump("team_members", "team_id, user_id"), dump("flows", "id"), audits)
}

// tpAudits returns the audit rows of one action on one team, oldest first.
func tpAudits(t *testing.T, e *testEnv, action string, teamID int64) []store.AuditLog {
	t.Helper()
	var rows []store.AuditLog
	if err := e.DB.Where("action = ? AND resource_type = ? AND resource_id = ?", action, "team", teamID).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// tpAuditChanges checks the last audit row of action on a team is by actor, and decodes its changes.
func tpAuditChanges(t *testing.T, e *testEnv, action string, teamID int64, count int, actor *store.User) map[string]any {
	t.Helper()
	rows := tpAudits(t, e, action, teamID)
	if len(rows) != count {
		t.Fatalf("%d %s audit rows for team %d, want %d", len(rows), action, teamID, count)
	}
	if count == 0 {
		return nil
	}
	a := rows[len(rows)-1]
	if a.ActorType != store.ActorUser || a.ActorUserID == nil || *a.ActorUserID != actor.ID || a.Status != store.AuditSuccess ||
		a.RequestID == nil || *a.RequestID == "" {
		t.Fatalf("%s audit row %+v: want a successful row by user %d with a request id", action, a, actor.ID)
	}
	m := map[string]any{}
	if a.Changes != nil {
		if err := json.Unmarshal([]byte(*a.Changes), &m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// tpCreateFlow creates a flow through the generated client.
func tpCreateFlow(t *testing.T, e *testEnv, tok string, body api.FlowCreate) *api.Flow {
	t.Helper()
	resp, err := e.Client(tok).CreateFlowWithResponse(tpCtx, nil, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusCreated || resp.JSON201 == nil {
		t.Fatalf("create flow %q: %d %s", body.Name, resp.StatusCode(), resp.Body)
	}
	return resp.JSON201
}

// tpTeamFlow creates a flow shared with a team.
func tpTeamFlow(t *testing.T, e *testEnv, tok, name string, team int64) *api.Flow {
	t.Helper()
	vis := api.FlowVisibilityTeam
	f := tpCreateFlow(t, e, tok, api.FlowCreate{Name: name, Visibility: &vis, TeamId: nullable.NewNullableWithValue(team)})
	if f.Visibility != api.FlowVisibilityTeam || f.TeamId.MustGet() != team {
		t.Fatalf("flow %q: visibility %s team %v, want team %d", name, f.Visibility, f.TeamId, team)
	}
	return f
}

// tpFlowRow reads a flows row.
func tpFlowRow(t *testing.T, e *testEnv, id int64) store.Flow {
	t.Helper()
	var f store.Flow
	if err := e.DB.Where("id = ?", id).Take(&f).Error; err != nil {
		t.Fatalf("flow %d: %v", id, err)
	}
	return f
}

// tpVisibleFlows lists the ids of the flows the caller sees, and the stats total.
func tpVisibleFlows(t *testing.T, e *testEnv, tok string) ([]int64, int64) {
	t.Helper()
	stats, size := true, api.PageSize(100)
	resp, err := e.Client(tok).ListFlowsWithResponse(tpCtx, &api.ListFlowsParams{IncludeStats: &stats, PageSize: &size})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil || resp.JSON200.Stats == nil {
		t.Fatalf("list flows: %d %s", resp.StatusCode(), resp.Body)
	}
	ids := []int64{}
	for _, it := range resp.JSON200.Items {
		ids = append(ids, it.Id)
	}
	if resp.JSON200.Total != int64(len(ids)) {
		t.Fatalf("list flows: total %d for %d items", resp.JSON200.Total, len(ids))
	}
	return ids, resp.JSON200.Stats.Total
}

// tpFlowStatus is GET /flows/{id}'s status for the caller.
func tpFlowStatus(t *testing.T, e *testEnv, tok string, id int64) int {
	t.Helper()
	resp, err := e.Client(tok).GetFlowWithResponse(tpCtx, id)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode()
}

// tpRenameFlow sends PUT /flows/{id} {name} and returns the response.
func tpRenameFlow(t *testing.T, e *testEnv, tok string, id int64, name string) *api.PutFlowResponse {
	t.Helper()
	resp, err := e.Client(tok).PutFlowWithResponse(tpCtx, id, &api.PutFlowParams{}, api.FlowUpdate{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// tpQueryCounter counts the SQL statements GORM runs on a database.
type tpQueryCounter struct{ n atomic.Int64 }

func tpCountQueries(t *testing.T, db *store.DB) *tpQueryCounter {
	t.Helper()
	c := &tpQueryCounter{}
	inc := func(*gorm.DB) { c.n.Add(1) }
	cb := db.Callback()
	for _, err := range []error{
		cb.Query().After("gorm:query").Register("tp:count_query", inc),
		cb.Row().After("gorm:row").Register("tp:count_row", inc),
		cb.Raw().After("gorm:raw").Register("tp:count_raw", inc),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// ---------------------------------------------------------------------------------------------------

// TestTeamsCRUD: create, read, update and delete through the generated client, with audit rows.
func TestTeamsCRUD(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin, adminTok := e.User(rbac.Admin)
	_, viewerTok := e.User(rbac.Viewer)

	support := tpCreateTeam(t, e, adminTok, "Support", tpStr("First line"))
	if !support.Description.IsSpecified() || support.Description.IsNull() || support.Description.MustGet() != "First line" {
		t.Errorf("description %v, want First line", support.Description)
	}
	ch := tpAuditChanges(t, e, "team.created", support.Id, 1, admin)
	if after, _ := ch["after"].(map[string]any); after["name"] != "Support" {
		t.Errorf("team.created changes %v, want after.name Support", ch)
	}
	// Without a description, it is null.
	sales := tpCreateTeam(t, e, adminTok, "Sales", nil)
	if !sales.Description.IsNull() {
		t.Errorf("description %v, want null", sales.Description)
	}
	// Explicit null is accepted too.
	resp, body := tpReq(t, e, http.MethodPost, "/teams", adminTok, `{"name":"Ops","description":null}`)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"description":null`) {
		t.Fatalf("create with description null: %d %s", resp.StatusCode, body)
	}

	// A duplicate name: 409 already-exists naming the existing team; nothing written.
	before := tpTeamState(t, e)
	cr, err := e.Client(adminTok).CreateTeamWithResponse(tpCtx, nil, api.TeamCreate{Name: "Support"})
	if err != nil {
		t.Fatal(err)
	}
	p := tpProblem(t, cr.HTTPResponse, cr.Body, http.StatusConflict, "already-exists")
	if p.ExistingID == nil || *p.ExistingID != support.Id {
		t.Errorf("existing_id %v, want %d", p.ExistingID, support.Id)
	}
	if after := tpTeamState(t, e); after != before {
		t.Errorf("a duplicate create changed the database:\n%s\n%s", before, after)
	}

	// GET reads it back the same.
	got := tpGetTeam(t, e, viewerTok, support.Id)
	if got.Name != "Support" || got.Description.MustGet() != "First line" || got.MemberCount != 0 || len(got.Members) != 0 ||
		!got.CreatedAt.Equal(support.CreatedAt.Time) {
		t.Errorf("get %+v, want %+v", got, support)
	}

	// Renaming onto another team's name: 409 with its id, and nothing changed.
	ur, err := e.Client(adminTok).UpdateTeamWithResponse(tpCtx, sales.Id, api.TeamUpdate{Name: tpStr("Support")})
	if err != nil {
		t.Fatal(err)
	}
	p = tpProblem(t, ur.HTTPResponse, ur.Body, http.StatusConflict, "already-exists")
	if p.ExistingID == nil || *p.ExistingID != support.Id {
		t.Errorf("rename conflict existing_id %v, want %d", p.ExistingID, support.Id)
	}
	if after := tpTeamState(t, e); after != before {
		t.Errorf("a conflicting rename changed the database:\n%s\n%s", before, after)
	}

	// {} changes nothing: same row, no audit row.
	rowBefore, _ := tpTeamRow(t, e, support.Id)
	ur, err = e.Client(adminTok).UpdateTeamWithResponse(tpCtx, support.Id, api.TeamUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	if ur.StatusCode() != http.StatusOK || ur.JSON200 == nil || ur.JSON200.Name != "Support" || ur.JSON200.Description.MustGet() != "First line" {
		t.Fatalf("PATCH {}: %d %s", ur.StatusCode(), ur.Body)
	}
	if rowAfter, _ := tpTeamRow(t, e, support.Id); !rowAfter.UpdatedAt.Equal(rowBefore.UpdatedAt) || rowAfter.Name != rowBefore.Name {
		t.Errorf("PATCH {} changed the row: %+v → %+v", rowBefore, rowAfter)
	}
	// Renaming a team to its own name is a no-op as well, not a conflict.
	ur, err = e.Client(adminTok).UpdateTeamWithResponse(tpCtx, support.Id, api.TeamUpdate{Name: tpStr("Support")})
	if err != nil {
		t.Fatal(err)
	}
	if ur.StatusCode() != http.StatusOK {
		t.Fatalf("rename to itself: %d %s", ur.StatusCode(), ur.Body)
	}
	tpAuditChanges(t, e, "team.updated", support.Id, 0, admin)

	// description: null clears it.
	ur, err = e.Client(adminTok).UpdateTeamWithResponse(tpCtx, support.Id, api.TeamUpdate{Description: nullable.NewNullNullable[string]()})
	if err != nil {
		t.Fatal(err)
	}
	if ur.StatusCode() != http.StatusOK || ur.JSON200 == nil || !ur.JSON200.Description.IsNull() {
		t.Fatalf("clear description: %d %s", ur.StatusCode(), ur.Body)
	}
	if row, _ := tpTeamRow(t, e, support.Id); row.Description != nil {
		t.Errorf("description in the DB %q, want NULL", *row.Description)
	}
	ch = tpAuditChanges(t, e, "team.updated", support.Id, 1, admin)
	if fields, _ := ch["fields"].([]any); !slices.Equal(fields, []any{"description"}) {
		t.Errorf("team.updated fields %v, want [description]", ch["fields"])
	}

	// A rename; updated_at moves and search follows the new name.
	time.Sleep(5 * time.Millisecond)
	ur, err = e.Client(adminTok).UpdateTeamWithResponse(tpCtx, support.Id, api.TeamUpdate{Name: tpStr("Customer Care")})
	if err != nil {
		t.Fatal(err)
	}
	if ur.StatusCode() != http.StatusOK || ur.JSON200.Name != "Customer Care" || !ur.JSON200.UpdatedAt.After(rowBefore.UpdatedAt) ||
		!ur.JSON200.CreatedAt.Equal(support.CreatedAt.Time) {
		t.Fatalf("rename: %d %s (updated_at before %s)", ur.StatusCode(), ur.Body, rowBefore.UpdatedAt)
	}
	if row, _ := tpTeamRow(t, e, support.Id); !row.UpdatedAt.Equal(ur.JSON200.UpdatedAt.Time) || row.Name != "Customer Care" {
		t.Errorf("row after the rename %+v, response %+v", row, ur.JSON200)
	}
	ch = tpAuditChanges(t, e, "team.updated", support.Id, 2, admin)
	if fields, _ := ch["fields"].([]any); !slices.Equal(fields, []any{"name"}) {
		t.Errorf("team.updated fields %v, want [name]", ch["fields"])
	}
	chBefore, _ := ch["before"].(map[string]any)
	chAfter, _ := ch["after"].(map[string]any)
	if chBefore["name"] != support.Name || chAfter["name"] != "Customer Care" {
		t.Errorf("team.updated before %v after %v", ch["before"], ch["after"])
	}
	if names := tpTeamNames(tpListTeams(t, e, viewerTok, api.ListTeamsParams{Search: tpStr("care")})); !slices.Equal(names, []string{"Customer Care"}) {
		t.Errorf("search care: %v", names)
	}
	// The old name is free again.
	tpCreateTeam(t, e, adminTok, "Support", nil)

	// Bounds of the contract: 400 and nothing written.
	before = tpTeamState(t, e)
	for _, bad := range []string{`{}`, `{"name":""}`, `{"name":"` + strings.Repeat("n", 101) + `"}`,
		`{"name":"x","description":"` + strings.Repeat("d", 501) + `"}`, `{"name":"x","member_count":3}`, `{"name":null}`} {
		resp, body := tpReq(t, e, http.MethodPost, "/teams", adminTok, bad)
		tpProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	}
	for _, bad := range []string{`{"name":""}`, `{"name":null}`, `{"members":[]}`, `{"description":"` + strings.Repeat("d", 501) + `"}`} {
		resp, body := tpReq(t, e, http.MethodPatch, fmt.Sprintf("/teams/%d", sales.Id), adminTok, bad)
		tpProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	}
	if after := tpTeamState(t, e); after != before {
		t.Errorf("invalid bodies changed the database:\n%s\n%s", before, after)
	}
	// The limits themselves are accepted.
	tpCreateTeam(t, e, adminTok, strings.Repeat("n", 100), tpStr(strings.Repeat("d", 500)))

	// Unknown ids: 404.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/teams/999999", ""}, {http.MethodPatch, "/teams/999999", `{"name":"x"}`},
		{http.MethodDelete, "/teams/999999", ""}, {http.MethodPut, "/teams/999999/members", `{"user_ids":[]}`},
	} {
		resp, body := tpReq(t, e, c.method, c.path, adminTok, c.body)
		tpProblem(t, resp, body, http.StatusNotFound, "not-found")
	}

	// DELETE: 204, gone, audited.
	dr, err := e.Client(adminTok).DeleteTeamWithResponse(tpCtx, sales.Id)
	if err != nil {
		t.Fatal(err)
	}
	if dr.StatusCode() != http.StatusNoContent || len(dr.Body) != 0 {
		t.Fatalf("delete: %d %s", dr.StatusCode(), dr.Body)
	}
	if _, ok := tpTeamRow(t, e, sales.Id); ok {
		t.Error("the team is still there")
	}
	ch = tpAuditChanges(t, e, "team.deleted", sales.Id, 1, admin)
	if b, _ := ch["before"].(map[string]any); b["name"] != "Sales" {
		t.Errorf("team.deleted changes %v, want before.name Sales", ch)
	}
	resp, body = tpReq(t, e, http.MethodGet, fmt.Sprintf("/teams/%d", sales.Id), viewerTok, "")
	tpProblem(t, resp, body, http.StatusNotFound, "not-found")
	resp, body = tpReq(t, e, http.MethodDelete, fmt.Sprintf("/teams/%d", sales.Id), adminTok, "")
	tpProblem(t, resp, body, http.StatusNotFound, "not-found")
	// Its name is free again.
	tpCreateTeam(t, e, adminTok, "Sales", nil)
}

// TestTeamsList: paging, search on the name, sort by name, and member counts without a query per row.
func TestTeamsList(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	_, userTok := e.User(rbac.User)
	var users []int64
	for range 4 {
		u, _ := e.User(rbac.Viewer)
		users = append(users, u.ID)
	}
	names := []string{"Alpha", "bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliett", "Kilo", "Lima"}
	ids := map[string]int64{}
	for i, n := range names {
		desc := "team number " + fmt.Sprint(i)
		if n == "Golf" {
			desc = "works with alpha customers" // search is on the name only
		}
		ids[n] = tpCreateTeam(t, e, adminTok, n, &desc).Id
	}
	tpSetMembers(t, e, adminTok, ids["Alpha"], users...)
	tpSetMembers(t, e, adminTok, ids["Charlie"], users[0])
	tpSetMembers(t, e, adminTok, ids["Lima"], users[1], users[2])

	// The default: by name, page 1 of 25.
	all := tpListTeams(t, e, userTok, api.ListTeamsParams{})
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	if got := tpTeamNames(all); !slices.Equal(got, sorted) && !slices.Equal(got, tpByteSorted(names)) {
		t.Errorf("default order %v", got)
	}
	if all.Total != 12 || all.Page != 1 || all.PageSize != 25 || all.TotalPages != 1 || all.HasNext || all.HasPrev {
		t.Errorf("page meta %+v", all)
	}
	counts := map[string]int{}
	for _, it := range all.Items {
		counts[it.Name] = it.MemberCount
		if it.Id != ids[it.Name] || !it.Description.IsSpecified() {
			t.Errorf("item %+v", it)
		}
	}
	if counts["Alpha"] != 4 || counts["Charlie"] != 1 || counts["Lima"] != 2 || counts["Delta"] != 0 {
		t.Errorf("member counts %v, want Alpha 4, Charlie 1, Lima 2, Delta 0", counts)
	}

	// Paging.
	ps := api.PageSize(5)
	order := tpTeamNames(all)
	for page, want := range map[int][]string{1: order[0:5], 2: order[5:10], 3: order[10:12]} {
		pg := api.Page(page)
		p := tpListTeams(t, e, userTok, api.ListTeamsParams{Page: &pg, PageSize: &ps})
		if got := tpTeamNames(p); !slices.Equal(got, want) {
			t.Errorf("page %d: %v, want %v", page, got, want)
		}
		if p.Total != 12 || p.TotalPages != 3 || p.HasNext != (page < 3) || p.HasPrev != (page > 1) || p.Page != page || p.PageSize != 5 {
			t.Errorf("page %d meta %+v", page, p)
		}
	}
	pg := api.Page(4)
	if p := tpListTeams(t, e, userTok, api.ListTeamsParams{Page: &pg, PageSize: &ps}); len(p.Items) != 0 || p.Total != 12 {
		t.Errorf("page past the end: %+v", p)
	}

	// Descending.
	desc := []api.ListTeamsParamsSort{"-name"}
	rev := slices.Clone(order)
	slices.Reverse(rev)
	if got := tpTeamNames(tpListTeams(t, e, userTok, api.ListTeamsParams{Sort: &desc})); !slices.Equal(got, rev) {
		t.Errorf("-name: %v, want %v", got, rev)
	}
	asc := []api.ListTeamsParamsSort{"name"}
	if got := tpTeamNames(tpListTeams(t, e, userTok, api.ListTeamsParams{Sort: &asc})); !slices.Equal(got, order) {
		t.Errorf("name: %v, want %v", got, order)
	}

	// Search: case-insensitive, on the name only, counted in total.
	for q, want := range map[string][]string{"ALPHA": {"Alpha"}, "o": nil, "li": {"Charlie", "Juliett", "Lima"}, "zz": {}, "%": {}, "_": {}} {
		p := tpListTeams(t, e, userTok, api.ListTeamsParams{Search: tpStr(q)})
		got := tpTeamNames(p)
		if want == nil { // every name holding an o
			for _, n := range order {
				if strings.Contains(strings.ToLower(n), "o") {
					want = append(want, n)
				}
			}
		}
		if !slices.Equal(got, want) || p.Total != int64(len(want)) {
			t.Errorf("search %q: %v (total %d), want %v", q, got, p.Total, want)
		}
	}

	// Bad parameters.
	for _, q := range []string{"sort=created_at", "sort=name,-name", "page=0", "page_size=101"} {
		resp, body := tpReq(t, e, http.MethodGet, "/teams?"+q, userTok, "")
		tpProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	}

	// Member counts come from one query for the page, not one per row.
	counter := tpCountQueries(t, e.DB)
	statements := func(size int) int64 {
		s := api.PageSize(size)
		before := counter.n.Load()
		p := tpListTeams(t, e, userTok, api.ListTeamsParams{PageSize: &s})
		if len(p.Items) != size {
			t.Fatalf("page_size %d: %d items", size, len(p.Items))
		}
		return counter.n.Load() - before
	}
	small, large := statements(2), statements(12)
	if small != large {
		t.Errorf("listing 12 teams ran %d statements, listing 2 ran %d: a query per row", large, small)
	}
}

// tpByteSorted sorts by bytes, the order of a binary collation.
func tpByteSorted(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}

// TestTeamsMembers: PUT /teams/{id}/members replaces the list, or changes nothing.
func TestTeamsMembers(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin, adminTok := e.User(rbac.Admin)
	a, _ := e.User(rbac.Editor)
	b, _ := e.User(rbac.Viewer)
	c, _ := e.User(rbac.User)
	if err := e.DB.Model(&store.User{}).Where("id = ?", a.ID).Update("name", "zed").Error; err != nil {
		t.Fatal(err)
	}
	tm := tpCreateTeam(t, e, adminTok, "Inbox", nil)
	other := tpCreateTeam(t, e, adminTok, "Other", nil)
	tpSetMembers(t, e, adminTok, other.Id, a.ID)

	got := tpSetMembers(t, e, adminTok, tm.Id, a.ID, b.ID)
	// Members by name: b ("viewer …") before a (renamed zed).
	if !slices.Equal(tpMemberIDs(got), []int64{b.ID, a.ID}) || got.MemberCount != 2 {
		t.Fatalf("members %+v (count %d), want [%d %d]", got.Members, got.MemberCount, b.ID, a.ID)
	}
	if m := got.Members[1]; m.Name != "zed" || m.Email != a.Email {
		t.Errorf("member %+v, want zed <%s>", m, a.Email)
	}
	if g := tpGetTeam(t, e, adminTok, tm.Id); !slices.Equal(tpMemberIDs(g), []int64{b.ID, a.ID}) || g.MemberCount != 2 {
		t.Errorf("GET after set: %+v", g)
	}
	ch := tpAuditChanges(t, e, "team.members_set", tm.Id, 1, admin)
	if after, _ := ch["after"].(map[string]any); fmt.Sprint(after["user_ids"]) != fmt.Sprint([]any{float64(a.ID), float64(b.ID)}) {
		t.Errorf("team.members_set changes %v", ch)
	}
	if before, _ := ch["before"].(map[string]any); fmt.Sprint(before["user_ids"]) != "[]" {
		t.Errorf("team.members_set before %v, want no members", ch["before"])
	}
	// The same members again, in another order: nothing changes and no audit row is written.
	tpSetMembers(t, e, adminTok, tm.Id, b.ID, a.ID)
	tpAuditChanges(t, e, "team.members_set", tm.Id, 1, admin)
	// The users' team_ids follow.
	ur, err := e.Client(adminTok).GetUserWithResponse(tpCtx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ur.StatusCode() != http.StatusOK || ur.JSON200 == nil || !slices.Equal(ur.JSON200.TeamIds, []int64{tm.Id, other.Id}) {
		t.Errorf("team_ids of a member: %d %s", ur.StatusCode(), ur.Body)
	}

	// Replace, not add.
	got = tpSetMembers(t, e, adminTok, tm.Id, c.ID)
	if !slices.Equal(tpMemberIDs(got), []int64{c.ID}) || got.MemberCount != 1 {
		t.Fatalf("after replace: %+v", got.Members)
	}

	// Unknown user ids: 422 pointing at each, nothing changed, no audit row.
	before := tpTeamState(t, e)
	resp, body := tpReq(t, e, http.MethodPut, fmt.Sprintf("/teams/%d/members", tm.Id), adminTok,
		fmt.Sprintf(`{"user_ids":[%d,999999,%d,888888]}`, a.ID, b.ID))
	tpProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "/user_ids/1", "/user_ids/3")
	// Duplicates, and the contract's other bounds: 400.
	for _, bad := range []string{
		fmt.Sprintf(`{"user_ids":[%d,%d,%d]}`, a.ID, b.ID, a.ID), `{"user_ids":[0]}`, `{}`, `{"user_ids":null}`, `{"user_ids":["1"]}`,
		`{"user_ids":[` + strings.TrimSuffix(strings.Repeat("1,", 501), ",") + `]}`,
	} {
		resp, body := tpReq(t, e, http.MethodPut, fmt.Sprintf("/teams/%d/members", tm.Id), adminTok, bad)
		p := tpProblem(t, resp, body, http.StatusBadRequest, "validation-error")
		if strings.HasPrefix(bad, fmt.Sprintf(`{"user_ids":[%d,%d,%d]`, a.ID, b.ID, a.ID)) {
			if len(p.Errors) != 1 || p.Errors[0].Pointer != "/user_ids" || p.Errors[0].Code != "uniqueItems" {
				t.Errorf("duplicates: errors %+v, want one uniqueItems error at /user_ids", p.Errors)
			}
		}
	}
	if after := tpTeamState(t, e); after != before {
		t.Errorf("refused member lists changed the database:\n%s\n%s", before, after)
	}

	// 500 distinct ids is the limit, and all must exist.
	many := make([]int64, 0, 500)
	for i := range 500 {
		many = append(many, 5_000_000+int64(i))
	}
	mr, err := e.Client(adminTok).SetTeamMembersWithResponse(tpCtx, tm.Id, api.TeamMembersSet{UserIds: many})
	if err != nil {
		t.Fatal(err)
	}
	tp500 := tpProblem(t, mr.HTTPResponse, mr.Body, http.StatusUnprocessableEntity, "unprocessable")
	if len(tp500.Errors) != 500 || tp500.Errors[499].Pointer != "/user_ids/499" {
		t.Errorf("500 unknown ids: %d errors", len(tp500.Errors))
	}

	// Empty clears.
	got = tpSetMembers(t, e, adminTok, tm.Id)
	if len(got.Members) != 0 || got.MemberCount != 0 {
		t.Errorf("after clearing: %+v", got)
	}
	if n := len(tpAudits(t, e, "team.members_set", tm.Id)); n != 3 {
		t.Errorf("%d team.members_set rows, want 3", n)
	}
	// The other team was never touched.
	if g := tpGetTeam(t, e, adminTok, other.Id); !slices.Equal(tpMemberIDs(g), []int64{a.ID}) {
		t.Errorf("other team's members %v", tpMemberIDs(g))
	}
}

// TestTeamsDelete: flows shared with the team become private; other flows and teams are untouched.
func TestTeamsDelete(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	admin, adminTok := e.User(rbac.Admin)
	ed, edTok := e.User(rbac.Editor)
	mate, _ := e.User(rbac.Editor)
	doomed := tpCreateTeam(t, e, adminTok, "Doomed", nil)
	kept := tpCreateTeam(t, e, adminTok, "Kept", nil)
	tpSetMembers(t, e, adminTok, doomed.Id, ed.ID, mate.ID)
	tpSetMembers(t, e, adminTok, kept.Id, ed.ID)

	shared := tpTeamFlow(t, e, edTok, "shared", doomed.Id)
	shared2 := tpTeamFlow(t, e, edTok, "shared too", doomed.Id)
	elsewhere := tpTeamFlow(t, e, edTok, "elsewhere", kept.Id)
	pub := api.FlowVisibilityPublic
	public := tpCreateFlow(t, e, edTok, api.FlowCreate{Name: "public", Visibility: &pub})
	private := tpCreateFlow(t, e, edTok, api.FlowCreate{Name: "private"})
	rows := map[int64]store.Flow{}
	for _, id := range []int64{shared.Id, shared2.Id, elsewhere.Id, public.Id, private.Id} {
		rows[id] = tpFlowRow(t, e, id)
	}

	dr, err := e.Client(adminTok).DeleteTeamWithResponse(tpCtx, doomed.Id)
	if err != nil {
		t.Fatal(err)
	}
	if dr.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %d %s", dr.StatusCode(), dr.Body)
	}
	for _, id := range []int64{shared.Id, shared2.Id} {
		f := tpFlowRow(t, e, id)
		if f.Visibility != "private" || f.TeamID != nil || f.Revision != rows[id].Revision+1 || f.OwnerID != ed.ID {
			t.Errorf("flow %d after the team's deletion: visibility %s team %v revision %d (was %d)", id, f.Visibility, f.TeamID, f.Revision, rows[id].Revision)
		}
	}
	for _, id := range []int64{elsewhere.Id, public.Id, private.Id} {
		f, was := tpFlowRow(t, e, id), rows[id]
		if f.Visibility != was.Visibility || !equalPtr(f.TeamID, was.TeamID) || f.Revision != was.Revision {
			t.Errorf("flow %d changed: %s/%v r%d → %s/%v r%d", id, was.Visibility, was.TeamID, was.Revision, f.Visibility, f.TeamID, f.Revision)
		}
	}
	var n int64
	if err := e.DB.Model(&store.TeamMember{}).Where("team_id = ?", doomed.Id).Count(&n).Error; err != nil || n != 0 {
		t.Errorf("%d memberships of the deleted team left (%v)", n, err)
	}
	if g := tpGetTeam(t, e, adminTok, kept.Id); !slices.Equal(tpMemberIDs(g), []int64{ed.ID}) {
		t.Errorf("the other team's members: %v", tpMemberIDs(g))
	}
	tpAuditChanges(t, e, "team.deleted", doomed.Id, 1, admin)
	// The API agrees: the flow reads as private with no team.
	fr, err := e.Client(edTok).GetFlowWithResponse(tpCtx, shared.Id)
	if err != nil {
		t.Fatal(err)
	}
	if fr.StatusCode() != http.StatusOK || fr.JSON200.Visibility != api.FlowVisibilityPrivate || !fr.JSON200.TeamId.IsNull() {
		t.Errorf("flow after the team's deletion: %d %s", fr.StatusCode(), fr.Body)
	}
}

// TestTeamsPermissions: changes need user:update; reading is open to any authenticated principal.
func TestTeamsPermissions(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, saTok := e.User(rbac.SuperAdmin)
	admin, adminTok := e.User(rbac.Admin)
	member, _ := e.User(rbac.Viewer)
	tm := tpCreateTeam(t, e, adminTok, "Guarded", nil)
	tpCreateTeam(t, e, saTok, "By the super admin", nil)
	tpSetMembers(t, e, saTok, tm.Id, member.ID)
	adminScoped, _ := tpScopedToken(t, e, admin, "user:update")
	tpCreateTeam(t, e, adminScoped, "By an admin token", nil)

	writes := []struct{ method, path, body string }{
		{http.MethodPost, "/teams", `{"name":"Nope"}`},
		{http.MethodPatch, fmt.Sprintf("/teams/%d", tm.Id), `{"name":"Nope"}`},
		{http.MethodPut, fmt.Sprintf("/teams/%d/members", tm.Id), `{"user_ids":[]}`},
		{http.MethodDelete, fmt.Sprintf("/teams/%d", tm.Id), ""},
	}
	readers := map[string]string{}
	for _, r := range tpRoleNames {
		_, tok := e.User(r)
		readers[string(r)] = tok
	}
	owner, _ := e.User(rbac.Viewer)
	readers["a viewer's API token scoped to flow:read"], _ = tpScopedToken(t, e, owner, "flow:read")
	readers["an admin's API token scoped to flow:read"], _ = tpScopedToken(t, e, admin, "flow:read")

	before := tpTeamState(t, e)
	for who, tok := range readers {
		lr, err := e.Client(tok).ListTeamsWithResponse(tpCtx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if lr.StatusCode() != http.StatusOK || lr.JSON200.Total != 3 {
			t.Errorf("list teams as %s: %d %s", who, lr.StatusCode(), lr.Body)
		}
		gr, err := e.Client(tok).GetTeamWithResponse(tpCtx, tm.Id)
		if err != nil {
			t.Fatal(err)
		}
		if gr.StatusCode() != http.StatusOK || !slices.Equal(tpMemberIDs(gr.JSON200), []int64{member.ID}) {
			t.Errorf("get team as %s: %d %s", who, gr.StatusCode(), gr.Body)
		}
		if who == "super_admin" || who == "admin" {
			continue
		}
		for _, w := range writes {
			resp, body := tpReq(t, e, w.method, w.path, tok, w.body)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d, want 403: %s", w.method, w.path, who, resp.StatusCode, body)
				continue
			}
			tpForbidden(t, resp, body, "user:update")
		}
	}
	if after := tpTeamState(t, e); after != before {
		t.Errorf("refused writes changed the database:\n%s\n%s", before, after)
	}
	// No credential: 401 on every team operation.
	for _, w := range append(writes, struct{ method, path, body string }{http.MethodGet, "/teams", ""},
		struct{ method, path, body string }{http.MethodGet, fmt.Sprintf("/teams/%d", tm.Id), ""}) {
		resp, body := tpReq(t, e, w.method, w.path, "", w.body)
		tpProblem(t, resp, body, http.StatusUnauthorized, "unauthenticated")
	}
	// The admin may do all of it.
	ur, err := e.Client(adminTok).UpdateTeamWithResponse(tpCtx, tm.Id, api.TeamUpdate{Name: tpStr("Renamed")})
	if err != nil || ur.StatusCode() != http.StatusOK {
		t.Fatalf("admin rename: %v %s", err, ur.Body)
	}
	dr, err := e.Client(adminTok).DeleteTeamWithResponse(tpCtx, tm.Id)
	if err != nil || dr.StatusCode() != http.StatusNoContent {
		t.Fatalf("admin delete: %v %s", err, dr.Body)
	}
}

// TestTeamsFlowVisibility: team visibility of flows end to end through the API.
func TestTeamsFlowVisibility(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	owner, ownerTok := e.User(rbac.Editor)
	mate, mateTok := e.User(rbac.Editor)
	_, outsiderTok := e.User(rbac.Editor)
	watcher, watcherTok := e.User(rbac.Viewer)

	team := tpCreateTeam(t, e, adminTok, "Builders", nil)
	other := tpCreateTeam(t, e, adminTok, "Others", nil)
	tpSetMembers(t, e, adminTok, team.Id, owner.ID, mate.ID, watcher.ID)

	// The owner may only share with a team they belong to.
	vis := api.FlowVisibilityTeam
	cr, err := e.Client(ownerTok).CreateFlowWithResponse(tpCtx, nil, api.FlowCreate{Name: "elsewhere", Visibility: &vis, TeamId: nullable.NewNullableWithValue(other.Id)})
	if err != nil {
		t.Fatal(err)
	}
	tpProblem(t, cr.HTTPResponse, cr.Body, http.StatusUnprocessableEntity, "unprocessable", "/team_id")

	f := tpTeamFlow(t, e, ownerTok, "team flow", team.Id)
	mine := tpCreateFlow(t, e, outsiderTok, api.FlowCreate{Name: "outsider's own"})

	sees := func(who, tok string, want bool) {
		t.Helper()
		ids, total := tpVisibleFlows(t, e, tok)
		if slices.Contains(ids, f.Id) != want {
			t.Errorf("%s: team flow in the list = %v, want %v (%v)", who, !want, want, ids)
		}
		if total != int64(len(ids)) {
			t.Errorf("%s: stats total %d for %d visible flows", who, total, len(ids))
		}
		wantStatus := http.StatusOK
		if !want {
			wantStatus = http.StatusNotFound
		}
		if got := tpFlowStatus(t, e, tok, f.Id); got != wantStatus {
			t.Errorf("%s: GET the team flow: %d, want %d", who, got, wantStatus)
		}
	}
	sees("the owner", ownerTok, true)
	sees("a team mate", mateTok, true)
	sees("a viewer in the team", watcherTok, true)
	sees("an admin", adminTok, true)
	sees("an editor outside the team", outsiderTok, false)
	if ids, _ := tpVisibleFlows(t, e, outsiderTok); !slices.Equal(ids, []int64{mine.Id}) {
		t.Errorf("the outsider sees %v, want only their own %d", ids, mine.Id)
	}

	// A team mate with flow:update may edit it; a viewer in the team may not; an outsider gets 404.
	if r := tpRenameFlow(t, e, mateTok, f.Id, "edited by a mate"); r.StatusCode() != http.StatusOK || r.JSON200.Name != "edited by a mate" {
		t.Fatalf("mate edit: %d %s", r.StatusCode(), r.Body)
	}
	r := tpRenameFlow(t, e, watcherTok, f.Id, "edited by a viewer")
	tpForbidden(t, r.HTTPResponse, r.Body, "flow:update")
	r = tpRenameFlow(t, e, outsiderTok, f.Id, "edited by an outsider")
	tpProblem(t, r.HTTPResponse, r.Body, http.StatusNotFound, "not-found")
	// Only the owner or an admin may change the sharing.
	priv := api.FlowVisibilityPrivate
	pr, err := e.Client(mateTok).PutFlowWithResponse(tpCtx, f.Id, &api.PutFlowParams{}, api.FlowUpdate{Visibility: &priv})
	if err != nil {
		t.Fatal(err)
	}
	tpProblem(t, pr.HTTPResponse, pr.Body, http.StatusForbidden, "forbidden")
	if row := tpFlowRow(t, e, f.Id); row.Name != "edited by a mate" || row.Visibility != "team" {
		t.Errorf("flow row %+v", row)
	}

	// Removed from the team: access ends at once.
	tpSetMembers(t, e, adminTok, team.Id, owner.ID, watcher.ID)
	sees("a former team mate", mateTok, false)
	r = tpRenameFlow(t, e, mateTok, f.Id, "edited after removal")
	tpProblem(t, r.HTTPResponse, r.Body, http.StatusNotFound, "not-found")
	// Added back: access returns.
	tpSetMembers(t, e, adminTok, team.Id, owner.ID, mate.ID, watcher.ID)
	sees("a team mate again", mateTok, true)

	// The team is deleted: the flow is private, for its owner and admins only.
	if dr, err := e.Client(adminTok).DeleteTeamWithResponse(tpCtx, team.Id); err != nil || dr.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete team: %v", err)
	}
	if row := tpFlowRow(t, e, f.Id); row.Visibility != "private" || row.TeamID != nil {
		t.Errorf("after the team's deletion: visibility %s team %v, want private and no team", row.Visibility, row.TeamID)
	}
	sees("the owner after the team's deletion", ownerTok, true)
	sees("an admin after the team's deletion", adminTok, true)
	sees("a former mate after the team's deletion", mateTok, false)
	sees("a former viewer member after the team's deletion", watcherTok, false)
	sees("the outsider after the team's deletion", outsiderTok, false)
	r = tpRenameFlow(t, e, mateTok, f.Id, "edited after deletion")
	tpProblem(t, r.HTTPResponse, r.Body, http.StatusNotFound, "not-found")
}

// tpParallel sends the requests at once (raw, from goroutines) and returns each status and body.
func tpParallel(t *testing.T, e *testEnv, tok string, reqs ...[3]string) ([]int, [][]byte) {
	t.Helper()
	statuses, bodies := make([]int, len(reqs)), make([][]byte, len(reqs))
	errs := make([]error, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rd io.Reader
			if r[2] != "" {
				rd = strings.NewReader(r[2])
			}
			req, err := http.NewRequest(r[0], e.HTTP.URL+BasePath+r[1], rd)
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			if r[2] != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			statuses[i] = resp.StatusCode
			bodies[i], errs[i] = io.ReadAll(resp.Body)
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return statuses, bodies
}

// TestTeamsConcurrentCreate: racing creates of one name give one team, and 409s that name it.
func TestTeamsConcurrentCreate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	reqs := make([][3]string, 8)
	for i := range reqs {
		reqs[i] = [3]string{http.MethodPost, "/teams", `{"name":"Racers"}`}
	}
	statuses, bodies := tpParallel(t, e, adminTok, reqs...)
	var winner int64
	for i, s := range statuses {
		if s == http.StatusCreated {
			var tm api.Team
			if err := json.Unmarshal(bodies[i], &tm); err != nil {
				t.Fatal(err)
			}
			if winner != 0 {
				t.Fatalf("two creates of one name succeeded: %d and %d", winner, tm.Id)
			}
			winner = tm.Id
		}
	}
	if winner == 0 {
		t.Fatalf("no create succeeded: %v", statuses)
	}
	for i, s := range statuses {
		if s == http.StatusCreated {
			continue
		}
		var p problemBody
		_ = json.Unmarshal(bodies[i], &p)
		if s != http.StatusConflict || p.Type != "urn:wataomi:problem:already-exists" || p.ExistingID == nil || *p.ExistingID != winner {
			t.Errorf("racing create: %d %s, want 409 already-exists naming %d", s, bodies[i], winner)
		}
	}
	var n int64
	e.DB.Model(&store.Team{}).Count(&n)
	if n != 1 || len(tpAudits(t, e, "team.created", winner)) != 1 {
		t.Errorf("%d teams after racing creates, want 1 with one audit row", n)
	}
}

// TestTeamsConcurrentWrites: racing member lists leave exactly one of them; racing partial updates
// lose neither change; a delete racing a member list leaves no member of a missing team.
func TestTeamsConcurrentWrites(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, adminTok := e.User(rbac.Admin)
	var u []int64
	for range 4 {
		x, _ := e.User(rbac.Editor)
		u = append(u, x.ID)
	}
	lists := [][]int64{{u[0], u[1], u[2]}, {u[1], u[2], u[3]}}
	for round := range 6 {
		tm := tpCreateTeam(t, e, adminTok, fmt.Sprintf("Round %d", round), nil)
		path := fmt.Sprintf("/teams/%d/members", tm.Id)
		statuses, bodies := tpParallel(t, e, adminTok,
			[3]string{http.MethodPut, path, fmt.Sprintf(`{"user_ids":[%d,%d,%d]}`, lists[0][0], lists[0][1], lists[0][2])},
			[3]string{http.MethodPut, path, fmt.Sprintf(`{"user_ids":[%d,%d,%d]}`, lists[1][0], lists[1][1], lists[1][2])},
			[3]string{http.MethodPatch, fmt.Sprintf("/teams/%d", tm.Id), fmt.Sprintf(`{"name":"Renamed %d"}`, round)},
			[3]string{http.MethodPatch, fmt.Sprintf("/teams/%d", tm.Id), `{"description":"described"}`})
		for i, s := range statuses {
			if s != http.StatusOK {
				t.Fatalf("round %d request %d: %d %s", round, i, s, bodies[i])
			}
		}
		var got []int64
		if err := e.DB.Model(&store.TeamMember{}).Where("team_id = ?", tm.Id).Order("user_id").Pluck("user_id", &got).Error; err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, lists[0]) && !slices.Equal(got, lists[1]) {
			t.Errorf("round %d: members %v, want exactly %v or %v", round, got, lists[0], lists[1])
		}
		row, _ := tpTeamRow(t, e, tm.Id)
		if row.Name != fmt.Sprintf("Renamed %d", round) || row.Description == nil || *row.Description != "described" {
			d := "<nil>"
			if row.Description != nil {
				d = *row.Description
			}
			t.Errorf("round %d: racing partial updates lost one: name %q description %q", round, row.Name, d)
		}
	}
	for round := range 6 {
		tm := tpCreateTeam(t, e, adminTok, fmt.Sprintf("Doomed %d", round), nil)
		statuses, bodies := tpParallel(t, e, adminTok,
			[3]string{http.MethodPut, fmt.Sprintf("/teams/%d/members", tm.Id), fmt.Sprintf(`{"user_ids":[%d,%d]}`, u[0], u[1])},
			[3]string{http.MethodDelete, fmt.Sprintf("/teams/%d", tm.Id), ""},
			[3]string{http.MethodPatch, fmt.Sprintf("/teams/%d", tm.Id), `{"description":"late"}`})
		if statuses[1] != http.StatusNoContent {
			t.Fatalf("round %d: delete %d %s", round, statuses[1], bodies[1])
		}
		for _, i := range []int{0, 2} {
			if statuses[i] != http.StatusOK && statuses[i] != http.StatusNotFound {
				t.Errorf("round %d: a write racing the delete: %d %s, want 200 or 404", round, statuses[i], bodies[i])
			}
		}
		var n int64
		e.DB.Model(&store.TeamMember{}).Where("team_id = ?", tm.Id).Count(&n)
		if _, ok := tpTeamRow(t, e, tm.Id); ok || n != 0 {
			t.Errorf("round %d: after the delete: team present %v, %d memberships", round, ok, n)
		}
	}
}

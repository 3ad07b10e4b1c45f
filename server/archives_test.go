package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/oapi-codegen/nullable"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed ar).

// arScheduleGraph is complete and armable: a schedule trigger every five minutes, then a response.
const arScheduleGraph = `{"nodes":[` +
	`{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-schedule","label":"Every 5 min","config":{"schedule":"*/5 * * * *","timezone":"UTC"}}},` +
	`{"id":"a1","type":"custom","position":{"x":200,"y":0},"data":{"type":"response-data","config":{"body":{"message":"tick"}}}}` +
	`],"edges":[{"id":"e1","source":"t1","target":"a1"}]}`

func arPath(id int64, rest string) string { return fmt.Sprintf("%s/archives/%d%s", BasePath, id, rest) }

// arArchive archives a flow through the API and returns the flow as answered.
func arArchive(t *testing.T, e *testEnv, tok string, id int64, body string) api.Flow {
	t.Helper()
	var f api.Flow
	resp := ttDo(t, e, http.MethodPost, flPath(id, "/archive"), tok, body, http.StatusOK, &f)
	flCheckETag(t, resp, &f)
	return f
}

// arRecordOf finds the unrestored archive record of a flow straight in the DB.
func arRecordOf(t *testing.T, e *testEnv, flowID int64) store.Archive {
	t.Helper()
	var a store.Archive
	if err := e.DB.Where("entity_type = 'flow' AND entity_id = ? AND is_restored = ?", flowID, false).Take(&a).Error; err != nil {
		t.Fatalf("archive record of flow %d: %v", flowID, err)
	}
	return a
}

func arList(t *testing.T, e *testEnv, tok, query string) api.ArchiveSummaryPage {
	t.Helper()
	var p api.ArchiveSummaryPage
	ttDo(t, e, http.MethodGet, BasePath+"/archives"+query, tok, "", http.StatusOK, &p)
	return p
}

func arIDs(p api.ArchiveSummaryPage) []int64 {
	out := make([]int64, 0, len(p.Items))
	for _, it := range p.Items {
		out = append(out, it.Id)
	}
	return out
}

func arSchedule(t *testing.T, e *testEnv, flowID int64) *store.FlowSchedule {
	t.Helper()
	var rows []store.FlowSchedule
	if err := e.DB.Where("flow_id = ?", flowID).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		return nil
	}
	return &rows[0]
}

// arAudit returns the actions of the audit rows about one resource, newest first.
func arAudit(t *testing.T, e *testEnv, typ string, id int64) []store.AuditLog {
	t.Helper()
	rows, err := store.ListAuditForResource(context.Background(), e.DB.DB, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func arActions(rows []store.AuditLog) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Action)
	}
	return out
}

// ---------------------------------------------------------------------------------------------------

// A published scheduled flow: archive writes a record with the full snapshot and disarms the
// schedule in the same transaction; restore brings back the published status and the schedule.
func TestArchiveFlowRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	owner, tok := e.User(rbac.Editor)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Nightly digest", Data: flGraph(t, arScheduleGraph)})
	f = flPublish(t, e, tok, f.Id, nil)
	if arSchedule(t, e, f.Id) == nil {
		t.Fatal("publishing a scheduled flow armed no schedule")
	}

	got := arArchive(t, e, tok, f.Id, `{"reason":"Replaced by the weekly digest"}`)
	if got.Status != api.FlowStatus("archived") || !got.ArchivedAt.IsSpecified() || got.ArchivedAt.IsNull() || got.Revision != f.Revision+1 {
		t.Fatalf("archived flow: status %s archived_at %v revision %d", got.Status, got.ArchivedAt, got.Revision)
	}
	if arSchedule(t, e, f.Id) != nil {
		t.Fatal("archive left the schedule armed")
	}
	rec := arRecordOf(t, e, f.Id)
	if rec.PreviousStatus != "published" || rec.Reason == nil || *rec.Reason != "Replaced by the weekly digest" ||
		rec.ArchivedBy == nil || *rec.ArchivedBy != owner.ID || rec.EntityName != "Nightly digest" {
		t.Fatalf("archive record %+v", rec)
	}

	// The record, with its snapshot: the flow as it stood, status and graph included.
	var full api.Archive
	ttDo(t, e, http.MethodGet, arPath(rec.ID, ""), tok, "", http.StatusOK, &full)
	if full.EntityType != api.ArchiveEntityType("flow") || full.EntityId != f.Id || full.IsRestored || full.RestoredAt.IsNull() == false {
		t.Fatalf("GET archive: %+v", full)
	}
	if full.Snapshot["status"] != "published" || full.Snapshot["name"] != "Nightly digest" || full.Snapshot["published_data"] == nil {
		t.Fatalf("snapshot: %v", full.Snapshot)
	}
	wantData, _ := json.Marshal(f.Data)
	gotData, _ := json.Marshal(full.Snapshot["data"])
	if !sameJSON(wantData, gotData) {
		t.Fatalf("snapshot data %s, want %s", gotData, wantData)
	}

	// Archived: left out of the default list, refused by every change, by runs, and by a second archive.
	for _, it := range ttListFlows(t, e, tok, "").Items {
		if it.Id == f.Id {
			t.Fatal("GET /flows lists an archived flow by default")
		}
	}
	if ids := ttListFlows(t, e, tok, "?status=archived").Items; len(ids) != 1 || ids[0].Id != f.Id {
		t.Fatalf("GET /flows?status=archived: %+v", ids)
	}
	resp, b := flReq(t, e, http.MethodPost, flPath(f.Id, "/archive"), tok, "", nil)
	flWantProblem(t, resp, b, http.StatusConflict, "invalid-state")
	resp, b = flReq(t, e, http.MethodPatch, flPath(f.Id, ""), tok, `{"name":"x"}`, nil)
	flWantProblem(t, resp, b, http.StatusConflict, "invalid-state")
	resp, b = flReq(t, e, http.MethodPost, BasePath+"/executions", tok, fmt.Sprintf(`{"flow_id":%d}`, f.Id), nil)
	flWantProblem(t, resp, b, http.StatusUnprocessableEntity, "invalid-state")

	// Restore: the pre-archive status, the same id, the schedule re-armed from the published graph.
	var res api.ArchiveRestoreResult
	ttDo(t, e, http.MethodPost, arPath(rec.ID, "/restore"), tok, "", http.StatusOK, &res)
	if res.EntityId != f.Id || res.EntityType != api.ArchiveEntityType("flow") || !res.Archive.IsRestored ||
		res.Archive.RestoredBy.MustGet() != owner.ID || res.Archive.RestoredAt.IsNull() {
		t.Fatalf("restore: %+v", res)
	}
	back := flGet(t, e, tok, f.Id)
	if back.Status != api.FlowStatus("published") || !back.ArchivedAt.IsNull() || back.PublishedVersion.MustGet() != f.PublishedVersion.MustGet() {
		t.Fatalf("restored flow: status %s archived_at %v published_version %v", back.Status, back.ArchivedAt, back.PublishedVersion)
	}
	if fs := arSchedule(t, e, f.Id); fs == nil || fs.Schedule != "*/5 * * * *" {
		t.Fatalf("restore did not re-arm the schedule: %+v", fs)
	}
	resp, b = flReq(t, e, http.MethodPost, arPath(rec.ID, "/restore"), tok, "", nil)
	flWantProblem(t, resp, b, http.StatusConflict, "invalid-state")

	// A draft flow comes back as a draft, with nothing armed.
	d := flComplete(t, e, tok, "Draft one")
	arArchive(t, e, tok, d.Id, "")
	drec := arRecordOf(t, e, d.Id)
	if drec.Reason != nil || drec.PreviousStatus != "draft" {
		t.Fatalf("draft archive record %+v", drec)
	}
	ttDo(t, e, http.MethodPost, arPath(drec.ID, "/restore"), tok, "", http.StatusOK, &res)
	if g := flGet(t, e, tok, d.Id); g.Status != api.FlowStatus("draft") || arSchedule(t, e, d.Id) != nil {
		t.Fatalf("restored draft: %s", g.Status)
	}

	// Audit: flow.archive on the flow, archive.restore on the record, in order.
	if acts := arActions(arAudit(t, e, "flow", f.Id)); len(acts) < 1 || acts[0] != "flow.archive" {
		t.Fatalf("flow audit rows %v", acts)
	}
	if acts := arActions(arAudit(t, e, "archive", rec.ID)); !slices.Equal(acts, []string{"archive.restore"}) {
		t.Fatalf("archive audit rows %v", acts)
	}
	// Reasons over 500 characters and unknown members are refused before anything changes.
	long := fmt.Sprintf(`{"reason":%q}`, string(make([]byte, 0))+fmt.Sprintf("%0501d", 0))
	resp, b = flReq(t, e, http.MethodPost, flPath(f.Id, "/archive"), tok, long, nil)
	flWantProblem(t, resp, b, http.StatusBadRequest, "validation-error", "/reason maxLength")
	resp, b = flReq(t, e, http.MethodPost, flPath(f.Id, "/archive"), tok, `{"why":"x"}`, nil)
	flWantProblem(t, resp, b, http.StatusBadRequest, "validation-error")
	if g := flGet(t, e, tok, f.Id); g.Status != api.FlowStatus("published") {
		t.Fatalf("a refused archive changed the flow: %s", g.Status)
	}
}

func ttListFlows(t *testing.T, e *testEnv, tok, query string) api.FlowSummaryPage {
	t.Helper()
	var p api.FlowSummaryPage
	ttDo(t, e, http.MethodGet, BasePath+"/flows"+query, tok, "", http.StatusOK, &p)
	return p
}

// Only the owner or an admin archives; archive records are visible like the flow they hold; restore
// needs the right to edit the flow; purge is for admins (archive:delete).
func TestArchivePermissions(t *testing.T) {
	e := newTestEnv(t)
	owner, tok := e.User(rbac.Editor)
	_, otherTok := e.User(rbac.Editor)
	mate, mateTok := e.User(rbac.Editor)
	_, viewerTok := e.User(rbac.Viewer)
	_, adminTok := e.User(rbac.Admin)

	private := flNamed(t, e, tok, "Private")
	public := flCreate(t, e, tok, api.FlowCreate{Name: "Public", Visibility: flPtr(api.FlowVisibility("public"))})
	team := flTeam(t, e, "Ops", owner.ID, mate.ID)
	teamFlow := flCreate(t, e, tok, api.FlowCreate{Name: "Team", Visibility: flPtr(api.FlowVisibility("team")),
		TeamId: nullable.NewNullableWithValue(team)})

	// Archive: a private flow of someone else is not found; a visible one is forbidden; team members
	// may edit a team flow but not archive it; admins may archive any flow.
	resp, b := flReq(t, e, http.MethodPost, flPath(private.Id, "/archive"), otherTok, "", nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	resp, b = flReq(t, e, http.MethodPost, flPath(public.Id, "/archive"), otherTok, "", nil)
	flWantProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = flReq(t, e, http.MethodPost, flPath(teamFlow.Id, "/archive"), mateTok, "", nil)
	flWantProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = flReq(t, e, http.MethodPost, flPath(public.Id, "/archive"), viewerTok, "", nil)
	flWantProblem(t, resp, b, http.StatusForbidden, "forbidden")
	if f, _ := flRow(t, e, public.Id); f.Status != "draft" {
		t.Fatalf("a refused archive changed the flow: %s", f.Status)
	}
	arArchive(t, e, tok, private.Id, "")
	arArchive(t, e, tok, teamFlow.Id, "")
	arArchive(t, e, adminTok, public.Id, "")
	recPrivate, recTeam, recPublic := arRecordOf(t, e, private.Id), arRecordOf(t, e, teamFlow.Id), arRecordOf(t, e, public.Id)

	// Visibility of the records follows the flow's.
	if got := arIDs(arList(t, e, otherTok, "")); !slices.Equal(got, []int64{recPublic.ID}) {
		t.Fatalf("another editor sees %v, want only the public flow's record %d", got, recPublic.ID)
	}
	if got := arIDs(arList(t, e, mateTok, "")); !slices.Equal(got, []int64{recPublic.ID, recTeam.ID}) {
		t.Fatalf("a team mate sees %v", got)
	}
	if got := arIDs(arList(t, e, adminTok, "")); !slices.Equal(got, []int64{recPublic.ID, recTeam.ID, recPrivate.ID}) {
		t.Fatalf("an admin sees %v", got)
	}
	resp, b = flReq(t, e, http.MethodGet, arPath(recPrivate.ID, ""), otherTok, "", nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	resp, b = flReq(t, e, http.MethodPost, arPath(recPrivate.ID, "/restore"), otherTok, "", nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")

	// Restore: a visible public flow of someone else is forbidden; viewers lack archive:restore; a
	// team mate may restore the team flow (they may edit it).
	resp, b = flReq(t, e, http.MethodPost, arPath(recPublic.ID, "/restore"), otherTok, "", nil)
	flWantProblem(t, resp, b, http.StatusForbidden, "forbidden")
	resp, b = flReq(t, e, http.MethodPost, arPath(recPublic.ID, "/restore"), viewerTok, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusForbidden, "forbidden"); p.MissingPermission != "archive:restore" {
		t.Fatalf("viewer restore: missing_permission %q", p.MissingPermission)
	}
	if a := arRecordOf(t, e, public.Id); a.IsRestored {
		t.Fatal("a refused restore changed the record")
	}
	var res api.ArchiveRestoreResult
	ttDo(t, e, http.MethodPost, arPath(recTeam.ID, "/restore"), mateTok, "", http.StatusOK, &res)

	// An API token needs flow:update as well as archive:restore.
	secret, _ := tpScopedToken(t, e, owner, "archive:restore", "archive:read")
	resp, b = flReq(t, e, http.MethodPost, arPath(recPrivate.ID, "/restore"), secret, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusForbidden, "forbidden"); p.MissingPermission != "flow:update" {
		t.Fatalf("token restore: missing_permission %q", p.MissingPermission)
	}

	// Purge: editors lack archive:delete.
	resp, b = flReq(t, e, http.MethodDelete, arPath(recPrivate.ID, ""), tok, "", nil)
	if p := flWantProblem(t, resp, b, http.StatusForbidden, "forbidden"); p.MissingPermission != "archive:delete" {
		t.Fatalf("editor purge: missing_permission %q", p.MissingPermission)
	}
	if _, ok := flRow(t, e, private.Id); !ok {
		t.Fatal("a refused purge deleted the flow")
	}
}

// Purge deletes the record and, while it is still archived, the flow with its versions and schedule;
// a restored record goes alone.
func TestArchivePurge(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.Admin)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Purge me", Data: flGraph(t, arScheduleGraph)})
	flPublish(t, e, tok, f.Id, nil)
	arArchive(t, e, tok, f.Id, "")
	rec := arRecordOf(t, e, f.Id)

	ttDo(t, e, http.MethodDelete, arPath(rec.ID, ""), adminTok, "", http.StatusNoContent, nil)
	if _, ok := flRow(t, e, f.Id); ok {
		t.Fatal("purge left the archived flow")
	}
	if n := flVersionCount(t, e, f.Id); n != 0 {
		t.Fatalf("purge left %d versions", n)
	}
	resp, b := flReq(t, e, http.MethodGet, arPath(rec.ID, ""), adminTok, "", nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
	if acts := arActions(arAudit(t, e, "archive", rec.ID)); !slices.Equal(acts, []string{"archive.purge"}) {
		t.Fatalf("archive audit rows %v", acts)
	}
	if acts := arActions(arAudit(t, e, "flow", f.Id)); len(acts) == 0 || acts[0] != "flow.delete" {
		t.Fatalf("flow audit rows %v", acts)
	}

	// A restored record is deleted alone; the flow stays.
	g := flComplete(t, e, tok, "Keep me")
	arArchive(t, e, tok, g.Id, "")
	grec := arRecordOf(t, e, g.Id)
	ttDo(t, e, http.MethodPost, arPath(grec.ID, "/restore"), tok, "", http.StatusOK, nil)
	ttDo(t, e, http.MethodDelete, arPath(grec.ID, ""), adminTok, "", http.StatusNoContent, nil)
	if row, ok := flRow(t, e, g.Id); !ok || row.Status != "draft" {
		t.Fatalf("purging a restored record touched the flow: %+v", row)
	}
	resp, b = flReq(t, e, http.MethodDelete, arPath(grec.ID, ""), adminTok, "", nil)
	flWantProblem(t, resp, b, http.StatusNotFound, "not-found")
}

// A flow deleted while archived is recreated from the snapshot with a new id: owned by its original
// owner while active (else by the restorer), published again with its published graph and re-armed.
func TestArchiveRestoreRecreatesDeletedFlow(t *testing.T) {
	e := newTestEnv(t)
	owner, tok := e.User(rbac.Manager)
	admin, adminTok := e.User(rbac.Admin)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Phoenix", Data: flGraph(t, arScheduleGraph)})
	f = flPublish(t, e, tok, f.Id, nil)
	// A working-copy change after publishing: the recreated flow keeps it as unpublished changes.
	f = flPatch(t, e, tok, f.Id, api.FlowUpdate{Data: flGraph(t, strings.Replace(arScheduleGraph, `"tick"`, `"tock"`, 1))})
	arArchive(t, e, tok, f.Id, "")
	rec := arRecordOf(t, e, f.Id)
	ttDo(t, e, http.MethodDelete, flPath(f.Id, ""), tok, "", http.StatusNoContent, nil)

	var res api.ArchiveRestoreResult
	ttDo(t, e, http.MethodPost, arPath(rec.ID, "/restore"), tok, "", http.StatusOK, &res)
	if res.EntityId == f.Id || res.Archive.EntityId != res.EntityId {
		t.Fatalf("recreated flow id %d (archive says %d), old %d", res.EntityId, res.Archive.EntityId, f.Id)
	}
	n := flGet(t, e, tok, res.EntityId)
	if n.Name != "Phoenix" || n.OwnerId != owner.ID || n.Status != api.FlowStatus("published") || n.PublishedVersion.MustGet() != 1 ||
		!n.HasUnpublishedChanges || n.Version != 1 {
		t.Fatalf("recreated flow: %+v", n)
	}
	wantData, _ := json.Marshal(f.Data)
	gotData, _ := json.Marshal(n.Data)
	if !sameJSON(wantData, gotData) {
		t.Fatalf("recreated working copy %s, want %s", gotData, wantData)
	}
	if fs := arSchedule(t, e, res.EntityId); fs == nil {
		t.Fatal("the recreated published flow has no schedule")
	}
	if acts := arActions(arAudit(t, e, "flow", res.EntityId)); !slices.Equal(acts, []string{"flow.create"}) {
		t.Fatalf("recreated flow audit rows %v", acts)
	}

	// The original owner is inactive: the restorer owns the recreation.
	g := flNamed(t, e, tok, "Orphan")
	arArchive(t, e, tok, g.Id, "")
	grec := arRecordOf(t, e, g.Id)
	ttDo(t, e, http.MethodDelete, flPath(g.Id, ""), tok, "", http.StatusNoContent, nil)
	if err := e.DB.Model(&store.User{}).Where("id = ?", owner.ID).Update("is_active", false).Error; err != nil {
		t.Fatal(err)
	}
	ttDo(t, e, http.MethodPost, arPath(grec.ID, "/restore"), adminTok, "", http.StatusOK, &res)
	if n := flGet(t, e, adminTok, res.EntityId); n.OwnerId != admin.ID || n.Status != api.FlowStatus("draft") {
		t.Fatalf("recreated orphan: owner %d status %s", n.OwnerId, n.Status)
	}
}

// GET /archives filters (entity_type, is_restored with its default, archived_by), sort and paging;
// the summary counts the unrestored records by type.
func TestArchiveListFilters(t *testing.T) {
	e := newTestEnv(t)
	u, tok := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.Admin)
	a := flNamed(t, e, tok, "A")
	b := flNamed(t, e, tok, "B")
	c := flNamed(t, e, tok, "C")
	arArchive(t, e, tok, a.Id, "")
	arArchive(t, e, tok, b.Id, "")
	arArchive(t, e, adminTok, c.Id, "")
	ra, rb, rc := arRecordOf(t, e, a.Id), arRecordOf(t, e, b.Id), arRecordOf(t, e, c.Id)
	ttDo(t, e, http.MethodPost, arPath(rb.ID, "/restore"), tok, "", http.StatusOK, nil)

	cases := []struct {
		query string
		want  []int64
	}{
		{"", []int64{rc.ID, ra.ID}},
		{"?is_restored=false", []int64{rc.ID, ra.ID}},
		{"?is_restored=true", []int64{rb.ID}},
		{"?entity_type=flow", []int64{rc.ID, ra.ID}},
		{"?entity_type=bot", []int64{}},
		{"?archived_by=me", []int64{ra.ID}},
		{"?archived_by=" + fmt.Sprint(u.ID) + "&is_restored=true", []int64{rb.ID}},
		{"?sort=archived_at", []int64{ra.ID, rc.ID}},
		{"?page_size=1&page=2", []int64{ra.ID}},
	}
	for _, tc := range cases {
		p := arList(t, e, tok, tc.query)
		if got := arIDs(p); !slices.Equal(got, tc.want) {
			t.Errorf("GET /archives%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	if p := arList(t, e, tok, "?page_size=1"); p.Total != 2 || p.TotalPages != 2 || !p.HasNext || p.HasPrev {
		t.Errorf("paging meta: %+v", p)
	}
	for _, q := range []string{"?entity_type=template", "?archived_by=someone", "?sort=name", "?is_restored=maybe"} {
		resp, body := flReq(t, e, http.MethodGet, BasePath+"/archives"+q, tok, "", nil)
		flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error")
	}

	var st api.ArchiveStats
	ttDo(t, e, http.MethodGet, BasePath+"/archives/stats/summary", tok, "", http.StatusOK, &st)
	if st.Total != 2 || st.ByType.Flow != 2 || st.ByType.Bot != 0 {
		t.Fatalf("stats: %+v", st)
	}
	_, otherTok := e.User(rbac.Editor)
	ttDo(t, e, http.MethodGet, BasePath+"/archives/stats/summary", otherTok, "", http.StatusOK, &st)
	if st.Total != 0 {
		t.Fatalf("stats of a caller who sees no record: %+v", st)
	}
}

// Deleting a user with transfer_to moves the archive records of their flows with the flows, so the
// heir still sees and restores them.
func TestArchiveFollowsOwnershipTransfer(t *testing.T) {
	e := newTestEnv(t)
	owner, tok := e.User(rbac.Editor)
	heir, heirTok := e.User(rbac.Editor)
	f := flNamed(t, e, tok, "Inherited")
	arArchive(t, e, tok, f.Id, "")
	rec := arRecordOf(t, e, f.Id)
	if got := arIDs(arList(t, e, heirTok, "")); len(got) != 0 {
		t.Fatalf("the heir sees %v before the transfer", got)
	}
	err := e.DB.Tx(context.Background(), func(tx *gorm.DB) error {
		if err := store.TransferOwnership(context.Background(), tx, owner.ID, heir.ID); err != nil {
			return err
		}
		return store.DeleteUser(context.Background(), tx, owner.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := arIDs(arList(t, e, heirTok, "")); !slices.Equal(got, []int64{rec.ID}) {
		t.Fatalf("the heir sees %v, want %d", got, rec.ID)
	}
	var res api.ArchiveRestoreResult
	ttDo(t, e, http.MethodPost, arPath(rec.ID, "/restore"), heirTok, "", http.StatusOK, &res)
	if g := flGet(t, e, heirTok, f.Id); g.OwnerId != heir.ID || g.Status != api.FlowStatus("draft") {
		t.Fatalf("restored inherited flow: owner %d status %s", g.OwnerId, g.Status)
	}
	if a := arRecordOf2(t, e, rec.ID); a.ArchivedBy != nil {
		t.Fatalf("archived_by %v, want null once that user is deleted", *a.ArchivedBy)
	}
}

func arRecordOf2(t *testing.T, e *testEnv, id int64) store.Archive {
	t.Helper()
	var a store.Archive
	if err := e.DB.Where("id = ?", id).Take(&a).Error; err != nil {
		t.Fatal(err)
	}
	return a
}

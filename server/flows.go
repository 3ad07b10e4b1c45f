package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

const maxFlowName = 200

func viewerOf(ctx context.Context) (*httpx.Principal, store.Viewer) {
	p := httpx.PrincipalFrom(ctx)
	return p, store.Viewer{UserID: p.UserID, Admin: rbac.BypassesOwnership(p.Role)}
}

// graphInput is a request graph, cleaned and checked structurally (422 invalid-graph on failure).
type graphInput struct {
	data  store.JSON
	hash  string
	nodes int
}

func (s *Server) readGraph(g *api.Graph, pointer string) (graphInput, error) {
	raw, err := json.Marshal(g)
	if err != nil {
		return graphInput{}, err
	}
	parsed, err := flow.Parse(raw)
	if err != nil {
		return graphInput{}, err
	}
	clean, err := parsed.Clean()
	if err != nil {
		return graphInput{}, err
	}
	if issues := parsed.CheckStructure(pointer, len(clean), s.limits); len(issues) > 0 {
		return graphInput{}, invalidGraph(issues)
	}
	return graphInput{data: clean, hash: parsed.Hash(), nodes: parsed.NodeCount()}, nil
}

// cleanGraph drops the editor's run-time keys and returns compact JSON.
func cleanGraph(data []byte) ([]byte, error) {
	parsed, err := flow.Parse(data)
	if err != nil {
		return nil, err
	}
	return parsed.Clean()
}

// compactSize is a graph's size as compact JSON, the measure of FLOW_MAX_BYTES. A value read back from
// PostgreSQL is jsonb's text form, with a space after every ':' and ',', so its len overstates it.
func compactSize(data []byte) int {
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return len(data)
	}
	return buf.Len()
}

// sameJSON reports whether two JSON documents hold the same value, whatever their key order and
// spacing (PostgreSQL reformats jsonb, so stored bytes never equal the bytes written).
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	decode := func(data []byte) (any, error) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	}
	va, errA := decode(a)
	vb, errB := decode(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func invalidGraph(issues []flow.Issue) *Problem {
	errs := make([]FieldError, 0, len(issues))
	for _, is := range issues {
		errs = append(errs, FieldError{Pointer: is.Pointer, Detail: is.Message, Code: is.Code})
	}
	return unprocessable("invalid-graph", fmt.Sprintf("The graph has %d issue(s).", len(errs)), errs...)
}

// graphIssues runs the structural and completeness checks over a stored or submitted graph: what
// flow.validation, POST /flows/{id}/validate and the publish gate report.
func (s *Server) graphIssues(data []byte) ([]flow.Issue, error) {
	parsed, err := flow.Parse(data)
	if err != nil {
		return nil, err
	}
	return parsed.Validate("/data", compactSize(data), s.limits), nil
}

// requireComplete is the publish/execute gate: structural and completeness checks on stored data.
func (s *Server) requireComplete(data store.JSON) error {
	issues, err := s.graphIssues(data)
	if err != nil {
		return err
	}
	var errs []flow.Issue
	for _, is := range issues {
		if is.Severity == flow.SeverityError {
			errs = append(errs, is)
		}
	}
	if len(errs) > 0 {
		p := invalidGraph(errs)
		p.Detail = "The flow cannot be published: " + p.Detail
		return p
	}
	return nil
}

// canEdit is PRODUCT §4.3 for flows: the owner, admins, and members of a team flow's team.
func canEdit(ctx context.Context, db *gorm.DB, p *httpx.Principal, f *store.Flow) (bool, error) {
	o := rbac.Ownership{OwnerID: f.OwnerID, Visibility: f.Visibility}
	if f.Visibility == rbac.VisibilityTeam && f.TeamID != nil && !rbac.CanManage(p.Role, p.UserID, o) {
		member, err := store.IsTeamMember(ctx, db, *f.TeamID, p.UserID)
		if err != nil {
			return false, err
		}
		o.TeamMember = member
	}
	return rbac.CanEdit(p.Role, p.UserID, o), nil
}

// isOwnerOrAdmin is rbac.CanManage for a flow: delete, archive, visibility and team changes.
func isOwnerOrAdmin(p *httpx.Principal, f *store.Flow) bool {
	return rbac.CanManage(p.Role, p.UserID, rbac.Ownership{OwnerID: f.OwnerID, Visibility: f.Visibility})
}

func checkIfMatch(ifMatch *string, f *store.Flow) error {
	if ifMatch == nil {
		return nil
	}
	// If-Match is a list of entity tags (RFC 9110 §13.1.1): any one that matches, or "*", passes.
	for _, tag := range strings.Split(*ifMatch, ",") {
		if tag = strings.TrimSpace(tag); tag == "*" || tag == etag(f.Revision) {
			return nil
		}
	}
	return problem(http.StatusPreconditionFailed, "precondition-failed",
		"The flow has changed since it was read (If-Match "+*ifMatch+", current "+etag(f.Revision)+").")
}

// checkTeam applies the team rules: team visibility needs an existing team_id, of which the owner is
// a member unless an admin makes the change.
func checkTeam(ctx context.Context, db *gorm.DB, p *httpx.Principal, visibility string, teamID *int64, ownerID int64) error {
	if visibility != "team" {
		if teamID != nil {
			return unprocessable("unprocessable", "team_id is only allowed with visibility team.",
				FieldError{Pointer: "/team_id", Detail: "is only allowed with visibility team", Code: "unprocessable"})
		}
		return nil
	}
	if teamID == nil {
		return unprocessable("unprocessable", "visibility team needs a team_id.",
			FieldError{Pointer: "/team_id", Detail: "is required when visibility is team", Code: "required"})
	}
	ok, err := store.TeamExists(ctx, db, *teamID)
	if err != nil {
		return err
	}
	if !ok {
		return unprocessable("unprocessable", "The team does not exist.",
			FieldError{Pointer: "/team_id", Detail: "names no team", Code: "unprocessable"})
	}
	if !rbac.BypassesOwnership(p.Role) {
		member, err := store.IsTeamMember(ctx, db, *teamID, ownerID)
		if err != nil {
			return err
		}
		if !member {
			return unprocessable("unprocessable", "The flow's owner is not a member of the team.",
				FieldError{Pointer: "/team_id", Detail: "the owner is not a member of this team", Code: "unprocessable"})
		}
	}
	return nil
}

func (h *handlers) ListFlows(ctx context.Context, req api.ListFlowsRequestObject) (api.ListFlowsResponseObject, error) {
	p, v := viewerOf(ctx)
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.FlowFilter{Page: page, PageSize: size}
	if prm.Status != nil {
		for _, st := range *prm.Status {
			f.Statuses = append(f.Statuses, string(st))
		}
	}
	if prm.Visibility != nil {
		f.Visibility = string(*prm.Visibility)
	}
	if prm.OwnerId != nil {
		if *prm.OwnerId == "me" {
			f.OwnerID = p.UserID
		} else {
			f.OwnerID, _ = strconv.ParseInt(*prm.OwnerId, 10, 64) // the contract's pattern guarantees digits
		}
	}
	if prm.TemplateId != nil {
		f.TemplateID = *prm.TemplateId
	}
	if prm.CategoryId != nil {
		f.CategoryID = *prm.CategoryId
	}
	if prm.TagId != nil {
		f.TagID = *prm.TagId
	}
	if prm.Search != nil {
		f.Search = *prm.Search
	}
	f.Sort = sortKeys(prm.Sort)
	db := h.s.deps.DB.DB
	rows, total, err := store.ListFlows(ctx, db, v, f)
	if err != nil {
		return nil, err
	}
	ids := rowIDs(rows, func(r *store.Flow) int64 { return r.ID })
	tags, err := store.FlowTags(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	out := api.FlowSummaryPage{Items: make([]api.FlowSummary, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, flowSummary(&rows[i], tags[rows[i].ID]))
	}
	if prm.IncludeStats != nil && *prm.IncludeStats {
		st, err := store.CountFlowsByStatus(ctx, db, v)
		if err != nil {
			return nil, err
		}
		out.Stats = &api.FlowListStats{Total: st.Total, Published: st.Published, Draft: st.Draft, Archived: st.Archived}
	}
	return api.ListFlows200JSONResponse{Body: out}, nil
}

func (h *handlers) CreateFlow(ctx context.Context, req api.CreateFlowRequestObject) (api.CreateFlowResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	b := req.Body
	f := &store.Flow{Name: b.Name, OwnerID: p.UserID, Status: "draft", Visibility: "private", Revision: 1, Version: 1}
	if b.Description.IsSpecified() && !b.Description.IsNull() {
		d := b.Description.MustGet()
		f.Description = &d
	}
	if b.Visibility != nil {
		f.Visibility = string(*b.Visibility)
	}
	if b.TeamId.IsSpecified() && !b.TeamId.IsNull() {
		t := b.TeamId.MustGet()
		f.TeamID = &t
	}
	if b.CategoryId.IsSpecified() && !b.CategoryId.IsNull() {
		c := b.CategoryId.MustGet()
		f.CategoryID = &c
	}
	g := graphInput{data: store.DefaultFlowData(), nodes: 0}
	if b.Data != nil {
		var err error
		if g, err = h.s.readGraph(b.Data, "/data"); err != nil {
			return nil, err
		}
	} else {
		parsed, _ := flow.Parse(g.data)
		g.hash = parsed.Hash()
	}
	f.Data, f.ContentHash, f.NodeCount = g.data, g.hash, g.nodes
	db := h.s.deps.DB.DB
	if err := checkTeam(ctx, db, p, f.Visibility, f.TeamID, p.UserID); err != nil {
		return nil, err
	}
	if err := checkCategory(ctx, db, f.CategoryID, "flow"); err != nil {
		return nil, err
	}
	publish := b.Status != nil && *b.Status == api.FlowWriteStatusPublished
	if publish {
		if err := h.s.requireComplete(f.Data); err != nil {
			return nil, err
		}
		one := 1
		f.Status, f.PublishedVersion, f.PublishedHash = "published", &one, &f.ContentHash
	}
	out, tag, err := h.s.insertFlow(ctx, p, f, "flow.create", 0, nil)
	if err != nil {
		return nil, err
	}
	return api.CreateFlow201JSONResponse{Body: out, Headers: api.CreateFlow201ResponseHeaders{Location: flowLocation(f.ID), ETag: &tag}}, nil
}

// insertFlow stores a new flow with its version 1 ("Initial version") and its tags in one
// transaction; also runs first in that transaction (creating a flow from a template counts the use
// there).
func (s *Server) insertFlow(ctx context.Context, p *httpx.Principal, f *store.Flow, action string, from int64, tagIDs []int64,
	also ...func(tx *gorm.DB) error) (api.Flow, string, error) {
	err := s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		for _, fn := range also {
			if err := fn(tx); err != nil {
				return err
			}
		}
		if err := store.SaveFlow(ctx, tx, f); err != nil {
			return err
		}
		if _, _, err := store.SetFlowTags(ctx, tx, f.ID, tagIDs); err != nil {
			return err
		}
		if err := store.CreateFlowVersion(ctx, tx, &store.FlowVersion{FlowID: f.ID, Version: 1, Name: "Initial version",
			Data: f.Data, ContentHash: f.ContentHash, CreatedBy: &p.UserID}); err != nil {
			return err
		}
		e := auditEntry{Action: action, ResourceType: "flow", ResourceID: f.ID, After: map[string]any{"name": f.Name, "status": f.Status}}
		if f.TemplateID != nil {
			e.After["template_id"] = *f.TemplateID
		}
		if f.CategoryID != nil {
			e.After["category_id"] = *f.CategoryID
		}
		if from != 0 {
			e.Before = map[string]any{"source_flow_id": from}
		}
		return writeAudit(ctx, tx, e)
	})
	if err != nil {
		return api.Flow{}, "", err
	}
	out, err := s.flowFull(ctx, f)
	return out, etag(f.Revision), err
}

func (h *handlers) GetFlow(ctx context.Context, req api.GetFlowRequestObject) (api.GetFlowResponseObject, error) {
	_, v := viewerOf(ctx)
	f, err := store.GetFlow(ctx, h.s.deps.DB.DB, v, req.Id)
	if err != nil {
		return nil, flowErr(err)
	}
	out, err := h.s.flowFull(ctx, f)
	if err != nil {
		return nil, err
	}
	tag := etag(f.Revision)
	return api.GetFlow200JSONResponse{Body: out, Headers: api.GetFlow200ResponseHeaders{ETag: &tag}}, nil
}

func flowErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Flow")
	}
	return err
}

func (h *handlers) UpdateFlow(ctx context.Context, req api.UpdateFlowRequestObject) (api.UpdateFlowResponseObject, error) {
	resp, err := h.s.updateFlow(ctx, req.Id, req.Params.IfMatch, req.Body)
	if err != nil {
		return nil, err
	}
	return api.UpdateFlow200JSONResponse{FlowWithETagJSONResponse: resp}, nil
}

func (h *handlers) PutFlow(ctx context.Context, req api.PutFlowRequestObject) (api.PutFlowResponseObject, error) {
	resp, err := h.s.updateFlow(ctx, req.Id, req.Params.IfMatch, req.Body)
	if err != nil {
		return nil, err
	}
	return api.PutFlow200JSONResponse{FlowWithETagJSONResponse: resp}, nil
}

// mutateFlow is the shared frame of every change to a flow: read it as the caller may see it (404),
// check the edit right (403), then in one transaction re-read it locked, check If-Match (412) and
// the archived state (409), apply fn, and bump the revision only when fn changed something.
func (s *Server) mutateFlow(ctx context.Context, id int64, ifMatch *string, ownerOnly bool, audit func(f *store.Flow) auditEntry,
	fn func(tx *gorm.DB, f *store.Flow) (bool, error)) (*store.Flow, error) {
	p, v := viewerOf(ctx)
	db := s.deps.DB.DB
	f, err := store.GetFlow(ctx, db, v, id)
	if err != nil {
		return nil, flowErr(err)
	}
	allowed := isOwnerOrAdmin(p, f)
	if !allowed && !ownerOnly {
		if allowed, err = canEdit(ctx, db, p, f); err != nil {
			return nil, err
		}
	}
	if !allowed {
		pr := forbidden("")
		pr.Detail = "Only the flow's owner, an admin or a member of its team may change it."
		return nil, pr
	}
	err = s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		cur, err := store.GetFlowForUpdate(ctx, tx, s.deps.DB.Dialect, id)
		if err != nil {
			return flowErr(err)
		}
		if err := checkIfMatch(ifMatch, cur); err != nil {
			return err
		}
		if cur.Status == "archived" {
			return conflict("invalid-state", "The flow is archived; restore it first.")
		}
		wasStatus, wasVersion := cur.Status, cur.PublishedVersion
		changed, err := fn(tx, cur)
		if err != nil || !changed {
			f = cur
			return err
		}
		if cur.Status != wasStatus || !equalPtr(cur.PublishedVersion, wasVersion) {
			if err := s.armTriggers(ctx, tx, cur); err != nil {
				return err
			}
		}
		cur.Revision++
		f = cur
		if err := store.SaveFlow(ctx, tx, cur); err != nil {
			return err
		}
		return writeAudit(ctx, tx, audit(cur))
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (s *Server) flowWithETag(ctx context.Context, f *store.Flow) (api.FlowWithETagJSONResponse, error) {
	out, err := s.flowFull(ctx, f)
	if err != nil {
		return api.FlowWithETagJSONResponse{}, err
	}
	tag := etag(f.Revision)
	return api.FlowWithETagJSONResponse{Body: out, Headers: api.FlowWithETagResponseHeaders{ETag: &tag}}, nil
}

func (s *Server) updateFlow(ctx context.Context, id int64, ifMatch *string, b *api.FlowUpdate) (api.FlowWithETagJSONResponse, error) {
	p := httpx.PrincipalFrom(ctx)
	// Validate the graph before taking any lock: it is pure.
	var g *graphInput
	if b.Data != nil {
		gi, err := s.readGraph(b.Data, "/data")
		if err != nil {
			return api.FlowWithETagJSONResponse{}, err
		}
		g = &gi
	}
	touchesSharing := b.Visibility != nil || b.TeamId.IsSpecified()
	var fields []string
	// The before and after values of the scalar fields that changed (data is named only).
	before, after := map[string]any{}, map[string]any{}
	audit := func(f *store.Flow) auditEntry {
		return auditEntry{Action: "flow.update", ResourceType: "flow", ResourceID: f.ID, Fields: fields, Before: before, After: after}
	}
	f, err := s.mutateFlow(ctx, id, ifMatch, false, audit, func(tx *gorm.DB, f *store.Flow) (bool, error) {
		changed := false
		if touchesSharing && !isOwnerOrAdmin(p, f) {
			pr := forbidden("")
			pr.Detail = "Only the flow's owner or an admin may change its visibility or team."
			return false, pr
		}
		if b.Name != nil && *b.Name != f.Name {
			before["name"], after["name"] = f.Name, *b.Name
			f.Name, changed, fields = *b.Name, true, append(fields, "name")
		}
		if b.Description.IsSpecified() {
			var d *string
			if !b.Description.IsNull() {
				v := b.Description.MustGet()
				d = &v
			}
			if !equalPtr(d, f.Description) {
				before["description"], after["description"] = f.Description, d
				f.Description, changed, fields = d, true, append(fields, "description")
			}
		}
		if touchesSharing {
			vis, team := f.Visibility, f.TeamID
			if b.Visibility != nil {
				vis = string(*b.Visibility)
				if vis != "team" && !b.TeamId.IsSpecified() {
					team = nil
				}
			}
			if b.TeamId.IsSpecified() {
				team = nil
				if !b.TeamId.IsNull() {
					t := b.TeamId.MustGet()
					team = &t
				}
			}
			if err := checkTeam(ctx, tx, p, vis, team, f.OwnerID); err != nil {
				return false, err
			}
			if vis != f.Visibility {
				fields = append(fields, "visibility")
				before["visibility"], after["visibility"] = f.Visibility, vis
			}
			if !equalPtr(team, f.TeamID) {
				fields = append(fields, "team_id")
				before["team_id"], after["team_id"] = f.TeamID, team
			}
			if vis != f.Visibility || !equalPtr(team, f.TeamID) {
				f.Visibility, f.TeamID, changed = vis, team, true
			}
		}
		if b.CategoryId.IsSpecified() {
			var c *int64
			if !b.CategoryId.IsNull() {
				v := b.CategoryId.MustGet()
				c = &v
			}
			if !equalPtr(c, f.CategoryID) {
				if err := checkCategory(ctx, tx, c, "flow"); err != nil {
					return false, err
				}
				before["category_id"], after["category_id"] = f.CategoryID, c
				f.CategoryID, changed, fields = c, true, append(fields, "category_id")
			}
		}
		if g != nil && (g.hash != f.ContentHash || !sameJSON(g.data, f.Data)) {
			f.Data, f.ContentHash, f.NodeCount, changed, fields = g.data, g.hash, g.nodes, true, append(fields, "data")
		}
		if b.Status != nil {
			prev := f.Status
			c, err := s.applyStatus(ctx, tx, p, f, string(*b.Status), nil)
			if err != nil {
				return false, err
			}
			if c {
				fields = append(fields, "status")
				before["status"], after["status"] = prev, f.Status
			}
			changed = changed || c
		}
		return changed, nil
	})
	if err != nil {
		return api.FlowWithETagJSONResponse{}, err
	}
	return s.flowWithETag(ctx, f)
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// applyStatus publishes or unpublishes inside a flow mutation. Publishing snapshots the working copy
// as a new version (or takes the given one) after the completeness checks.
func (s *Server) applyStatus(ctx context.Context, tx *gorm.DB, p *httpx.Principal, f *store.Flow, status string, version *int) (bool, error) {
	switch status {
	case "draft":
		if f.Status == "draft" && f.PublishedVersion == nil {
			return false, nil
		}
		f.Status, f.PublishedVersion, f.PublishedHash = "draft", nil, nil
		return true, nil
	case "published":
		if version != nil {
			fv, err := store.GetFlowVersion(ctx, tx, f.ID, *version)
			if errors.Is(err, store.ErrNotFound) {
				return false, unprocessable("unprocessable", "The flow has no such version.",
					FieldError{Pointer: "/version", Detail: "names no version of this flow", Code: "unprocessable"})
			}
			if err != nil {
				return false, err
			}
			if err := s.requireComplete(fv.Data); err != nil {
				return false, err
			}
			if f.Status == "published" && f.PublishedVersion != nil && *f.PublishedVersion == fv.Version {
				return false, nil
			}
			v, h := fv.Version, fv.ContentHash
			f.Status, f.PublishedVersion, f.PublishedHash = "published", &v, &h
			return true, nil
		}
		if f.Status == "published" && !hasUnpublishedChanges(f) {
			return false, nil
		}
		if err := s.requireComplete(f.Data); err != nil {
			return false, err
		}
		if err := s.snapshot(ctx, tx, p, f, fmt.Sprintf("Version %d", f.Version+1), nil); err != nil {
			return false, err
		}
		v, h := f.Version, f.ContentHash
		f.Status, f.PublishedVersion, f.PublishedHash = "published", &v, &h
		return true, nil
	}
	return false, fmt.Errorf("unknown status %q", status)
}

// snapshot records the working copy as version f.Version+1 and advances f.Version (the caller saves f).
func (s *Server) snapshot(ctx context.Context, tx *gorm.DB, p *httpx.Principal, f *store.Flow, name string, desc *string) error {
	fv := &store.FlowVersion{FlowID: f.ID, Version: f.Version + 1, Name: name, Description: desc,
		Data: f.Data, ContentHash: f.ContentHash, CreatedBy: &p.UserID}
	if err := store.CreateFlowVersion(ctx, tx, fv); err != nil {
		return err
	}
	f.Version = fv.Version
	return nil
}

func (h *handlers) DeleteFlow(ctx context.Context, req api.DeleteFlowRequestObject) (api.DeleteFlowResponseObject, error) {
	p, v := viewerOf(ctx)
	f, err := store.GetFlow(ctx, h.s.deps.DB.DB, v, req.Id)
	if err != nil {
		return nil, flowErr(err)
	}
	if !isOwnerOrAdmin(p, f) {
		pr := forbidden("")
		pr.Detail = "Only the flow's owner or an admin may delete it."
		return nil, pr
	}
	var running []int64
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		// Runs still going are stopped (their rows go with the flow).
		if err := tx.WithContext(ctx).Model(&store.Execution{}).Where("flow_id = ? AND status = ?", f.ID, store.ExecRunning).
			Pluck("id", &running).Error; err != nil {
			return err
		}
		if err := store.DropFlowTags(ctx, tx, f.ID); err != nil {
			return err
		}
		if err := store.DeleteFlow(ctx, tx, f.ID); err != nil {
			return flowErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "flow.delete", ResourceType: "flow", ResourceID: f.ID, Before: map[string]any{"name": f.Name}})
	})
	if err != nil {
		return nil, err
	}
	for _, id := range running {
		h.s.deps.Engine.Bus().SignalCancel(ctx, id)
	}
	return api.DeleteFlow204Response{}, nil
}

func (h *handlers) PublishFlow(ctx context.Context, req api.PublishFlowRequestObject) (api.PublishFlowResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	var version *int
	if req.Body != nil && req.Body.Version != nil {
		v := int(*req.Body.Version)
		version = &v
	}
	audit := func(f *store.Flow) auditEntry {
		return auditEntry{Action: "flow.publish", ResourceType: "flow", ResourceID: f.ID, Fields: []string{"status", "published_version"},
			After: map[string]any{"published_version": f.PublishedVersion}}
	}
	f, err := h.s.mutateFlow(ctx, req.Id, nil, false, audit, func(tx *gorm.DB, f *store.Flow) (bool, error) {
		return h.s.applyStatus(ctx, tx, p, f, "published", version)
	})
	if err != nil {
		return nil, err
	}
	resp, err := h.s.flowWithETag(ctx, f)
	if err != nil {
		return nil, err
	}
	return api.PublishFlow200JSONResponse{FlowWithETagJSONResponse: resp}, nil
}

func (h *handlers) UnpublishFlow(ctx context.Context, req api.UnpublishFlowRequestObject) (api.UnpublishFlowResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	audit := func(f *store.Flow) auditEntry {
		return auditEntry{Action: "flow.unpublish", ResourceType: "flow", ResourceID: f.ID, Fields: []string{"status", "published_version"}}
	}
	f, err := h.s.mutateFlow(ctx, req.Id, nil, false, audit, func(tx *gorm.DB, f *store.Flow) (bool, error) {
		return h.s.applyStatus(ctx, tx, p, f, "draft", nil)
	})
	if err != nil {
		return nil, err
	}
	resp, err := h.s.flowWithETag(ctx, f)
	if err != nil {
		return nil, err
	}
	return api.UnpublishFlow200JSONResponse{FlowWithETagJSONResponse: resp}, nil
}

func (h *handlers) DuplicateFlow(ctx context.Context, req api.DuplicateFlowRequestObject) (api.DuplicateFlowResponseObject, error) {
	p, v := viewerOf(ctx)
	src, err := store.GetFlow(ctx, h.s.deps.DB.DB, v, req.Id)
	if err != nil {
		return nil, flowErr(err)
	}
	// The default name keeps its " (Copy)" suffix within the limit by shortening the source's name.
	const suffix = " (Copy)"
	name := truncateRunes(src.Name, maxFlowName-len(suffix)) + suffix
	if req.Body != nil && req.Body.Name != nil {
		name = *req.Body.Name
	}
	f := &store.Flow{Name: name, Description: src.Description, Status: "draft", Visibility: "private", OwnerID: p.UserID,
		Data: src.Data, ContentHash: src.ContentHash, NodeCount: src.NodeCount, TemplateID: src.TemplateID, CategoryID: src.CategoryID,
		Revision: 1, Version: 1}
	tagIDs, err := store.FlowTagIDs(ctx, h.s.deps.DB.DB, src.ID)
	if err != nil {
		return nil, err
	}
	out, tag, err := h.s.insertFlow(ctx, p, f, "flow.duplicate", src.ID, tagIDs)
	if err != nil {
		return nil, err
	}
	return api.DuplicateFlow201JSONResponse{Body: out, Headers: api.DuplicateFlow201ResponseHeaders{Location: flowLocation(f.ID), ETag: &tag}}, nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

func (h *handlers) ValidateFlow(ctx context.Context, req api.ValidateFlowRequestObject) (api.ValidateFlowResponseObject, error) {
	_, v := viewerOf(ctx)
	f, err := store.GetFlow(ctx, h.s.deps.DB.DB, v, req.Id)
	if err != nil {
		return nil, flowErr(err)
	}
	data := []byte(f.Data)
	if req.Body != nil && req.Body.Data != nil {
		if data, err = json.Marshal(req.Body.Data); err != nil {
			return nil, err
		}
	}
	if data, err = cleanGraph(data); err != nil { // run-time keys are dropped as on save
		return nil, err
	}
	issues, err := h.s.graphIssues(data)
	if err != nil {
		return nil, err
	}
	return api.ValidateFlow200JSONResponse{Body: validationOf(issues)}, nil
}

// armTriggers keeps the production triggers in step with what is published: the schedule row of a
// trigger-schedule, and a webhook key for a trigger-webhook (created on first publish).
func (s *Server) armTriggers(ctx context.Context, tx *gorm.DB, f *store.Flow) error {
	var published []byte
	if f.Status == "published" && f.PublishedVersion != nil {
		fv, err := store.GetFlowVersion(ctx, tx, f.ID, *f.PublishedVersion)
		if err != nil {
			return err
		}
		published = fv.Data
		if f.WebhookKey == nil && graphHasType(published, "trigger-webhook") {
			k := newWebhookKey()
			f.WebhookKey = &k
		}
	}
	_, err := s.deps.Engine.Arm(ctx, tx, f.ID, published)
	return err
}

func (h *handlers) SetFlowTags(ctx context.Context, req api.SetFlowTagsRequestObject) (api.SetFlowTagsResponseObject, error) {
	ids := req.Body.TagIds
	var before []int64
	audit := func(f *store.Flow) auditEntry {
		return auditEntry{Action: "flow.update", ResourceType: "flow", ResourceID: f.ID, Fields: []string{"tags"},
			Before: map[string]any{"tag_ids": before}, After: map[string]any{"tag_ids": ids}}
	}
	f, err := h.s.mutateFlow(ctx, req.Id, nil, false, audit, func(tx *gorm.DB, f *store.Flow) (bool, error) {
		if err := checkTagIDs(ctx, tx, ids); err != nil {
			return false, err
		}
		prev, changed, err := store.SetFlowTags(ctx, tx, f.ID, ids)
		before = prev
		return changed, err
	})
	if err != nil {
		return nil, err
	}
	resp, err := h.s.flowWithETag(ctx, f)
	if err != nil {
		return nil, err
	}
	return api.SetFlowTags200JSONResponse{FlowWithETagJSONResponse: resp}, nil
}

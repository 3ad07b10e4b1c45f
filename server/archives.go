package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// Archives (PRODUCT §5.13): one mechanism for every archivable entity. Archiving an entity writes an
// archive record holding the whole entity as JSON and its status before the archive, in the same
// transaction as the change; the /archives operations list, restore and purge those records. Each
// entity type plugs in through an archiveKind (flows now; bots reuse it when they land).

// archiveKind is what the mechanism needs of one entity type. Every method runs inside the caller's
// transaction (use only tx).
type archiveKind interface {
	// authorizeRestore checks the right to update the entity (403), reading it outside any transaction.
	authorizeRestore(ctx context.Context, s *Server, p *httpx.Principal, a *store.Archive) error
	// restore brings the entity back to its pre-archive state, or recreates it from the snapshot when
	// it was deleted meanwhile; it returns the entity's id and whether it was recreated.
	restore(ctx context.Context, s *Server, tx *gorm.DB, p *httpx.Principal, a *store.Archive) (id int64, recreated bool, err error)
	// purge deletes the entity if it is still archived; it reports whether it did.
	purge(ctx context.Context, s *Server, tx *gorm.DB, a *store.Archive) (bool, error)
}

var archiveKinds = map[string]archiveKind{store.ArchiveFlow: flowArchives{}}

func kindOf(a *store.Archive) (archiveKind, error) {
	k, ok := archiveKinds[a.EntityType]
	if !ok {
		return nil, fmt.Errorf("archive %d: no archive support for entity type %q", a.ID, a.EntityType)
	}
	return k, nil
}

func archiveErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Archive")
	}
	return err
}

func archiveSummary(a *store.Archive) api.ArchiveSummary {
	return api.ArchiveSummary{
		Id: a.ID, EntityType: api.ArchiveEntityType(a.EntityType), EntityId: a.EntityID, EntityName: a.EntityName,
		ArchivedBy: NullableFrom(a.ArchivedBy), ArchivedAt: apitime.From(a.ArchivedAt), Reason: NullableFrom(a.Reason),
		IsRestored: a.IsRestored, RestoredAt: NullableFrom(apitime.FromPtr(a.RestoredAt)), RestoredBy: NullableFrom(a.RestoredBy),
	}
}

func archiveFull(a *store.Archive) (api.Archive, error) {
	snap := map[string]any{}
	if err := json.Unmarshal(a.Snapshot, &snap); err != nil {
		return api.Archive{}, fmt.Errorf("archive %d: stored snapshot: %w", a.ID, err)
	}
	sum := archiveSummary(a)
	return api.Archive{
		Id: sum.Id, EntityType: sum.EntityType, EntityId: sum.EntityId, EntityName: sum.EntityName, ArchivedBy: sum.ArchivedBy,
		ArchivedAt: sum.ArchivedAt, Reason: sum.Reason, IsRestored: sum.IsRestored, RestoredAt: sum.RestoredAt,
		RestoredBy: sum.RestoredBy, Snapshot: snap,
	}, nil
}

func (h *handlers) ListArchives(ctx context.Context, req api.ListArchivesRequestObject) (api.ListArchivesResponseObject, error) {
	p, v := viewerOf(ctx)
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	restored := false
	if prm.IsRestored != nil {
		restored = *prm.IsRestored
	}
	f := store.ArchiveFilter{Page: page, PageSize: size, IsRestored: &restored}
	if prm.EntityType != nil {
		f.EntityType = string(*prm.EntityType)
	}
	if prm.ArchivedBy != nil {
		if *prm.ArchivedBy == "me" {
			f.ArchivedBy = p.UserID
		} else {
			f.ArchivedBy, _ = strconv.ParseInt(*prm.ArchivedBy, 10, 64) // the contract's pattern guarantees digits
		}
	}
	f.Sort = sortKeys(prm.Sort)
	rows, total, err := store.ListArchives(ctx, h.s.deps.DB.DB, v, f)
	if err != nil {
		return nil, err
	}
	out := api.ArchiveSummaryPage{Items: make([]api.ArchiveSummary, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, archiveSummary(&rows[i]))
	}
	return api.ListArchives200JSONResponse{Body: out}, nil
}

func (h *handlers) GetArchiveStats(ctx context.Context, _ api.GetArchiveStatsRequestObject) (api.GetArchiveStatsResponseObject, error) {
	_, v := viewerOf(ctx)
	counts, err := store.CountOpenArchives(ctx, h.s.deps.DB.DB, v)
	if err != nil {
		return nil, err
	}
	out := api.ArchiveStats{ByType: api.ArchiveCountsByType{Flow: counts[store.ArchiveFlow], Bot: counts[store.ArchiveBot]}}
	for _, n := range counts {
		out.Total += n
	}
	return api.GetArchiveStats200JSONResponse{Body: out}, nil
}

func (h *handlers) GetArchive(ctx context.Context, req api.GetArchiveRequestObject) (api.GetArchiveResponseObject, error) {
	_, v := viewerOf(ctx)
	a, err := store.GetArchive(ctx, h.s.deps.DB.DB, v, req.Id)
	if err != nil {
		return nil, archiveErr(err)
	}
	out, err := archiveFull(a)
	if err != nil {
		return nil, err
	}
	return api.GetArchive200JSONResponse{Body: out}, nil
}

func (h *handlers) RestoreArchive(ctx context.Context, req api.RestoreArchiveRequestObject) (api.RestoreArchiveResponseObject, error) {
	p, v := viewerOf(ctx)
	db := h.s.deps.DB
	a, err := store.GetArchive(ctx, db.DB, v, req.Id)
	if err != nil {
		return nil, archiveErr(err)
	}
	if a.IsRestored {
		return nil, conflict("invalid-state", "The archive record has already been restored.")
	}
	kind, err := kindOf(a)
	if err != nil {
		return nil, err
	}
	if err := kind.authorizeRestore(ctx, h.s, p, a); err != nil {
		return nil, err
	}
	var entityID int64
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		cur, err := store.GetArchiveForUpdate(ctx, tx, db.Dialect, a.ID)
		if err != nil {
			return archiveErr(err)
		}
		if cur.IsRestored {
			return conflict("invalid-state", "The archive record has already been restored.")
		}
		id, recreated, err := kind.restore(ctx, h.s, tx, p, cur)
		if err != nil {
			return err
		}
		now, uid := store.Now(), p.UserID
		before := map[string]any{"entity_id": cur.EntityID}
		cur.EntityID, cur.IsRestored, cur.RestoredAt, cur.RestoredBy = id, true, &now, &uid
		if err := store.SaveArchive(ctx, tx, cur); err != nil {
			return err
		}
		a, entityID = cur, id
		return writeAudit(ctx, tx, auditEntry{Action: "archive.restore", ResourceType: "archive", ResourceID: cur.ID,
			Fields: []string{"is_restored"}, Before: before,
			After: map[string]any{"entity_type": cur.EntityType, "entity_id": id, "status": cur.PreviousStatus, "recreated": recreated}})
	})
	if err != nil {
		return nil, err
	}
	out, err := archiveFull(a)
	if err != nil {
		return nil, err
	}
	return api.RestoreArchive200JSONResponse{Body: api.ArchiveRestoreResult{Archive: out,
		EntityType: api.ArchiveEntityType(a.EntityType), EntityId: entityID}}, nil
}

func (h *handlers) DeleteArchive(ctx context.Context, req api.DeleteArchiveRequestObject) (api.DeleteArchiveResponseObject, error) {
	_, v := viewerOf(ctx)
	db := h.s.deps.DB
	a, err := store.GetArchive(ctx, db.DB, v, req.Id)
	if err != nil {
		return nil, archiveErr(err)
	}
	kind, err := kindOf(a)
	if err != nil {
		return nil, err
	}
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		cur, err := store.GetArchiveForUpdate(ctx, tx, db.Dialect, a.ID)
		if err != nil {
			return archiveErr(err)
		}
		deleted := false
		if !cur.IsRestored {
			if deleted, err = kind.purge(ctx, h.s, tx, cur); err != nil {
				return err
			}
		}
		if err := store.DeleteArchive(ctx, tx, cur.ID); err != nil {
			return archiveErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "archive.purge", ResourceType: "archive", ResourceID: cur.ID,
			Before: map[string]any{"entity_type": cur.EntityType, "entity_id": cur.EntityID, "entity_name": cur.EntityName,
				"is_restored": cur.IsRestored},
			After: map[string]any{"entity_deleted": deleted}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteArchive204Response{}, nil
}

// ---- Flows ----

func (h *handlers) ArchiveFlow(ctx context.Context, req api.ArchiveFlowRequestObject) (api.ArchiveFlowResponseObject, error) {
	p, v := viewerOf(ctx)
	db := h.s.deps.DB
	f, err := store.GetFlow(ctx, db.DB, v, req.Id)
	if err != nil {
		return nil, flowErr(err)
	}
	if !isOwnerOrAdmin(p, f) {
		pr := forbidden("")
		pr.Detail = "Only the flow's owner or an admin may archive it."
		return nil, pr
	}
	var reason *string
	if req.Body != nil && req.Body.Reason != nil {
		reason = req.Body.Reason
	}
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		cur, err := store.GetFlowForUpdate(ctx, tx, db.Dialect, f.ID)
		if err != nil {
			return flowErr(err)
		}
		if cur.Status == "archived" {
			return conflict("invalid-state", "The flow is already archived.")
		}
		snap, err := h.s.flowSnapshot(ctx, tx, cur)
		if err != nil {
			return err
		}
		now, uid, owner := store.Now(), p.UserID, cur.OwnerID
		a := &store.Archive{EntityType: store.ArchiveFlow, EntityID: cur.ID, EntityName: cur.Name, Snapshot: snap,
			PreviousStatus: cur.Status, Reason: reason, OwnerID: &owner, Visibility: cur.Visibility, TeamID: cur.TeamID,
			ArchivedBy: &uid, ArchivedAt: now}
		if err := store.SaveArchive(ctx, tx, a); err != nil {
			return err
		}
		prev := cur.Status
		cur.Status, cur.ArchivedAt = "archived", &now
		cur.Revision++
		// Disarm: the schedule row goes; the webhook receiver already refuses a flow that is not published.
		if _, err := h.s.deps.Engine.Arm(ctx, tx, cur.ID, nil); err != nil {
			return err
		}
		if err := store.SaveFlow(ctx, tx, cur); err != nil {
			return err
		}
		f = cur
		after := map[string]any{"status": "archived", "archive_id": a.ID}
		if reason != nil {
			after["reason"] = *reason
		}
		return writeAudit(ctx, tx, auditEntry{Action: "flow.archive", ResourceType: "flow", ResourceID: cur.ID,
			Fields: []string{"status", "archived_at"}, Before: map[string]any{"status": prev}, After: after})
	})
	if err != nil {
		return nil, err
	}
	resp, err := h.s.flowWithETag(ctx, f)
	if err != nil {
		return nil, err
	}
	return api.ArchiveFlow200JSONResponse{FlowWithETagJSONResponse: resp}, nil
}

// flowSnap is the part of a flow's snapshot that a restore reads back.
type flowSnap struct {
	Name          string          `json:"name"`
	Description   *string         `json:"description"`
	Status        string          `json:"status"`
	Visibility    string          `json:"visibility"`
	TeamID        *int64          `json:"team_id"`
	OwnerID       int64           `json:"owner_id"`
	TemplateID    *int64          `json:"template_id"`
	Data          json.RawMessage `json:"data"`
	PublishedData json.RawMessage `json:"published_data,omitempty"`
}

// flowSnapshot is the flow as GET /flows/{id} shows it, plus the graph of its published version.
func (s *Server) flowSnapshot(ctx context.Context, tx *gorm.DB, f *store.Flow) (store.JSON, error) {
	full, err := s.flowFullIn(ctx, tx, f)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(full)
	if err != nil {
		return nil, err
	}
	snap := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &snap); err != nil {
		return nil, err
	}
	if f.Status == "published" && f.PublishedVersion != nil {
		fv, err := store.GetFlowVersion(ctx, tx, f.ID, *f.PublishedVersion)
		if err != nil {
			return nil, err
		}
		snap["published_data"] = json.RawMessage(fv.Data)
	}
	out, err := json.Marshal(snap)
	return store.JSON(out), err
}

type flowArchives struct{}

func (flowArchives) authorizeRestore(ctx context.Context, s *Server, p *httpx.Principal, a *store.Archive) error {
	if !p.Has("flow:update") {
		return forbidden("flow:update")
	}
	db := s.deps.DB.DB
	// The live row decides when the flow still exists; otherwise the snapshot's ownership does.
	f, err := store.GetFlow(ctx, db, store.Viewer{Admin: true}, a.EntityID)
	if errors.Is(err, store.ErrNotFound) {
		f = &store.Flow{Visibility: a.Visibility, TeamID: a.TeamID}
		if a.OwnerID != nil {
			f.OwnerID = *a.OwnerID
		}
	} else if err != nil {
		return err
	}
	ok, err := canEdit(ctx, db, p, f)
	if err != nil {
		return err
	}
	if !ok {
		pr := forbidden("")
		pr.Detail = "Only the flow's owner, an admin or a member of its team may restore it."
		return pr
	}
	return nil
}

func (flowArchives) restore(ctx context.Context, s *Server, tx *gorm.DB, p *httpx.Principal, a *store.Archive) (int64, bool, error) {
	f, err := store.GetFlowForUpdate(ctx, tx, s.deps.DB.Dialect, a.EntityID)
	if errors.Is(err, store.ErrNotFound) {
		id, err := s.recreateFlow(ctx, tx, p, a)
		return id, true, err
	}
	if err != nil {
		return 0, false, err
	}
	if f.Status != "archived" {
		return 0, false, conflict("invalid-state", "The flow is no longer archived.")
	}
	f.Status, f.ArchivedAt = a.PreviousStatus, nil
	if f.Status == "published" && f.PublishedVersion == nil {
		f.Status = "draft"
	}
	if f.Status != "published" {
		f.PublishedVersion, f.PublishedHash = nil, nil
	}
	f.Revision++
	if err := s.armTriggers(ctx, tx, f); err != nil {
		return 0, false, err
	}
	if err := store.SaveFlow(ctx, tx, f); err != nil {
		return 0, false, err
	}
	return f.ID, false, nil
}

// recreateFlow inserts a flow deleted while archived back from its snapshot, with a new id and a new
// version history: version 1 is the published graph when the flow was published (and is published
// again), else the working copy. Its owner is the original one if still active, else the restorer; a
// team or template that is gone is dropped (a team flow then becomes private).
func (s *Server) recreateFlow(ctx context.Context, tx *gorm.DB, p *httpx.Principal, a *store.Archive) (int64, error) {
	var snap flowSnap
	if err := json.Unmarshal(a.Snapshot, &snap); err != nil {
		return 0, fmt.Errorf("archive %d: stored snapshot: %w", a.ID, err)
	}
	owner := p.UserID
	if snap.OwnerID != 0 {
		active, err := store.UserIsActive(ctx, tx, snap.OwnerID)
		if err != nil {
			return 0, err
		}
		if active {
			owner = snap.OwnerID
		}
	}
	f := &store.Flow{Name: snap.Name, Description: snap.Description, Status: "draft", Visibility: snap.Visibility,
		OwnerID: owner, Revision: 1, Version: 1}
	if f.Visibility == "" {
		f.Visibility = "private"
	}
	if f.Visibility == "team" {
		keep := false
		if snap.TeamID != nil {
			ok, err := store.TeamExists(ctx, tx, *snap.TeamID)
			if err != nil {
				return 0, err
			}
			if ok {
				if keep, err = store.IsTeamMember(ctx, tx, *snap.TeamID, owner); err != nil {
					return 0, err
				}
			}
		}
		if keep {
			f.TeamID = snap.TeamID
		} else {
			f.Visibility = "private"
		}
	}
	if snap.TemplateID != nil {
		var n int64
		if err := tx.WithContext(ctx).Model(&store.Template{}).Where("id = ?", *snap.TemplateID).Count(&n).Error; err != nil {
			return 0, err
		}
		if n > 0 {
			f.TemplateID = snap.TemplateID
		}
	}
	work, err := flow.Parse(snap.Data)
	if err != nil {
		return 0, fmt.Errorf("archive %d: snapshot graph: %w", a.ID, err)
	}
	if f.Data, err = work.Clean(); err != nil {
		return 0, err
	}
	f.ContentHash, f.NodeCount = work.Hash(), work.NodeCount()
	v1 := &store.FlowVersion{Version: 1, Name: "Restored from archive", Data: f.Data, ContentHash: f.ContentHash, CreatedBy: &p.UserID}
	if a.PreviousStatus == "published" && len(snap.PublishedData) > 0 {
		pub, err := flow.Parse(snap.PublishedData)
		if err != nil {
			return 0, fmt.Errorf("archive %d: snapshot published graph: %w", a.ID, err)
		}
		if v1.Data, err = pub.Clean(); err != nil {
			return 0, err
		}
		v1.ContentHash = pub.Hash()
		one, h := 1, v1.ContentHash
		f.Status, f.PublishedVersion, f.PublishedHash = "published", &one, &h
	}
	if err := store.SaveFlow(ctx, tx, f); err != nil {
		return 0, err
	}
	v1.FlowID = f.ID
	if err := store.CreateFlowVersion(ctx, tx, v1); err != nil {
		return 0, err
	}
	if err := s.armTriggers(ctx, tx, f); err != nil {
		return 0, err
	}
	if f.WebhookKey != nil { // armTriggers made a new webhook key
		if err := store.SaveFlow(ctx, tx, f); err != nil {
			return 0, err
		}
	}
	return f.ID, writeAudit(ctx, tx, auditEntry{Action: "flow.create", ResourceType: "flow", ResourceID: f.ID,
		Before: map[string]any{"archive_id": a.ID, "source_flow_id": a.EntityID}, After: map[string]any{"name": f.Name, "status": f.Status}})
}

func (flowArchives) purge(ctx context.Context, s *Server, tx *gorm.DB, a *store.Archive) (bool, error) {
	f, err := store.GetFlowForUpdate(ctx, tx, s.deps.DB.Dialect, a.EntityID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil || f.Status != "archived" {
		return false, err
	}
	if _, err := s.deps.Engine.Arm(ctx, tx, f.ID, nil); err != nil {
		return false, err
	}
	if err := store.DeleteFlow(ctx, tx, f.ID); err != nil {
		return false, err
	}
	return true, writeAudit(ctx, tx, auditEntry{Action: "flow.delete", ResourceType: "flow", ResourceID: f.ID,
		Before: map[string]any{"name": f.Name, "archive_id": a.ID}})
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

func versionSummary(fv *store.FlowVersion, f *store.Flow) api.FlowVersionSummary {
	return api.FlowVersionSummary{
		Version: fv.Version, Name: fv.Name, Description: NullableFrom(fv.Description), CreatedBy: NullableFrom(fv.CreatedBy),
		CreatedAt: apitime.From(fv.CreatedAt), IsPublished: f.PublishedVersion != nil && *f.PublishedVersion == fv.Version,
	}
}

func versionFull(fv *store.FlowVersion, f *store.Flow) (api.FlowVersion, error) {
	var g api.Graph
	if err := json.Unmarshal(fv.Data, &g); err != nil {
		return api.FlowVersion{}, fmt.Errorf("flow %d version %d: stored graph: %w", f.ID, fv.Version, err)
	}
	s := versionSummary(fv, f)
	return api.FlowVersion{Version: s.Version, Name: s.Name, Description: s.Description, CreatedBy: s.CreatedBy,
		CreatedAt: s.CreatedAt, IsPublished: s.IsPublished, Data: g}, nil
}

func versionErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Flow version")
	}
	return err
}

func (h *handlers) ListFlowVersions(ctx context.Context, req api.ListFlowVersionsRequestObject) (api.ListFlowVersionsResponseObject, error) {
	_, v := viewerOf(ctx)
	db := h.s.deps.DB.DB
	f, err := store.GetFlow(ctx, db, v, req.Id)
	if err != nil {
		return nil, flowErr(err)
	}
	page, size := pageParams(req.Params.Page, req.Params.PageSize)
	rows, total, err := store.ListFlowVersions(ctx, db, f.ID, page, size)
	if err != nil {
		return nil, err
	}
	out := api.FlowVersionSummaryPage{Items: make([]api.FlowVersionSummary, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, versionSummary(&rows[i], f))
	}
	return api.ListFlowVersions200JSONResponse{Body: out}, nil
}

func (h *handlers) CreateFlowVersion(ctx context.Context, req api.CreateFlowVersionRequestObject) (api.CreateFlowVersionResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	var fv *store.FlowVersion
	audit := func(f *store.Flow) auditEntry {
		return auditEntry{Action: "flow.version_created", ResourceType: "flow", ResourceID: f.ID, After: map[string]any{"version": f.Version}}
	}
	f, err := h.s.mutateFlow(ctx, req.Id, nil, false, audit, func(tx *gorm.DB, f *store.Flow) (bool, error) {
		name := fmt.Sprintf("Version %d", f.Version+1)
		var desc *string
		if req.Body != nil {
			if req.Body.Name != nil {
				name = *req.Body.Name
			}
			if req.Body.Description.IsSpecified() && !req.Body.Description.IsNull() {
				d := req.Body.Description.MustGet()
				desc = &d
			}
		}
		if err := h.s.snapshot(ctx, tx, p, f, name, desc); err != nil {
			return false, err
		}
		var err error
		fv, err = store.GetFlowVersion(ctx, tx, f.ID, f.Version)
		return true, err
	})
	if err != nil {
		return nil, err
	}
	out, err := versionFull(fv, f)
	if err != nil {
		return nil, err
	}
	loc := fmt.Sprintf("%s/versions/%d", flowLocation(f.ID), fv.Version)
	return api.CreateFlowVersion201JSONResponse{Body: out, Headers: api.CreateFlowVersion201ResponseHeaders{Location: loc}}, nil
}

func (h *handlers) GetFlowVersion(ctx context.Context, req api.GetFlowVersionRequestObject) (api.GetFlowVersionResponseObject, error) {
	_, v := viewerOf(ctx)
	db := h.s.deps.DB.DB
	f, err := store.GetFlow(ctx, db, v, req.Id)
	if err != nil {
		return nil, flowErr(err)
	}
	fv, err := store.GetFlowVersion(ctx, db, f.ID, int(req.Version))
	if err != nil {
		return nil, versionErr(err)
	}
	out, err := versionFull(fv, f)
	if err != nil {
		return nil, err
	}
	return api.GetFlowVersion200JSONResponse{Body: out}, nil
}

func (h *handlers) RestoreFlowVersion(ctx context.Context, req api.RestoreFlowVersionRequestObject) (api.RestoreFlowVersionResponseObject, error) {
	audit := func(f *store.Flow) auditEntry {
		return auditEntry{Action: "flow.version_restored", ResourceType: "flow", ResourceID: f.ID, Fields: []string{"data"},
			After: map[string]any{"version": req.Version}}
	}
	f, err := h.s.mutateFlow(ctx, req.Id, req.Params.IfMatch, false, audit, func(tx *gorm.DB, f *store.Flow) (bool, error) {
		fv, err := store.GetFlowVersion(ctx, tx, f.ID, int(req.Version))
		if err != nil {
			return false, versionErr(err)
		}
		parsed, err := flow.Parse(fv.Data)
		if err != nil {
			return false, err
		}
		f.Data, f.ContentHash, f.NodeCount = fv.Data, fv.ContentHash, parsed.NodeCount()
		return true, nil // a restore always bumps the revision, even to identical content
	})
	if err != nil {
		return nil, err
	}
	resp, err := h.s.flowWithETag(ctx, f)
	if err != nil {
		return nil, err
	}
	return api.RestoreFlowVersion200JSONResponse{FlowWithETagJSONResponse: resp}, nil
}

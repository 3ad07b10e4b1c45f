package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/store"
)

func teamErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Team")
	}
	return err
}

// teamConflict turns a duplicate team name into 409 already-exists. It runs after the transaction
// has rolled back: PostgreSQL refuses further statements in a failed transaction, and on SQLite a
// query outside the transaction would wait for its single connection.
func teamConflict(ctx context.Context, db *gorm.DB, name string, err error) error {
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	p := conflict("already-exists", "A team with this name already exists.")
	if t, err := store.GetTeamByName(ctx, db, name); err == nil {
		p.ExistingID = &t.ID
	}
	return p
}

// teamFull maps a team with its members.
func (s *Server) teamFull(ctx context.Context, t *store.Team) (api.Team, error) {
	members, err := store.TeamMembers(ctx, s.deps.DB.DB, t.ID)
	if err != nil {
		return api.Team{}, err
	}
	out := api.Team{Id: t.ID, Name: t.Name, Description: NullableFrom(t.Description), MemberCount: len(members),
		CreatedAt: apitime.From(t.CreatedAt), UpdatedAt: apitime.From(t.UpdatedAt), Members: make([]api.TeamMember, 0, len(members))}
	for _, m := range members {
		out.Members = append(out.Members, api.TeamMember{Id: m.ID, Name: m.Name, Email: m.Email})
	}
	return out, nil
}

func (h *handlers) ListTeams(ctx context.Context, req api.ListTeamsRequestObject) (api.ListTeamsResponseObject, error) {
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	search := ""
	if prm.Search != nil {
		search = *prm.Search
	}
	desc := prm.Sort != nil && len(*prm.Sort) > 0 && (*prm.Sort)[0] == "-name"
	db := h.s.deps.DB.DB
	rows, total, err := store.ListTeams(ctx, db, search, desc, page, size)
	if err != nil {
		return nil, err
	}
	ids := rowIDs(rows, func(r *store.Team) int64 { return r.ID })
	counts, err := store.MemberCounts(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	out := api.TeamPage{Items: make([]api.TeamSummary, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		t := &rows[i]
		out.Items = append(out.Items, api.TeamSummary{Id: t.ID, Name: t.Name, Description: NullableFrom(t.Description),
			MemberCount: counts[t.ID], CreatedAt: apitime.From(t.CreatedAt), UpdatedAt: apitime.From(t.UpdatedAt)})
	}
	return api.ListTeams200JSONResponse{Body: out}, nil
}

func (h *handlers) CreateTeam(ctx context.Context, req api.CreateTeamRequestObject) (api.CreateTeamResponseObject, error) {
	t := &store.Team{Name: req.Body.Name}
	if req.Body.Description.IsSpecified() && !req.Body.Description.IsNull() {
		d := req.Body.Description.MustGet()
		t.Description = &d
	}
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.SaveTeam(ctx, tx, t); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "team.created", ResourceType: "team", ResourceID: t.ID, After: map[string]any{"name": t.Name}})
	})
	if err != nil {
		return nil, teamConflict(ctx, h.s.deps.DB.DB, t.Name, err)
	}
	out, err := h.s.teamFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.CreateTeam201JSONResponse{Body: out, Headers: api.CreateTeam201ResponseHeaders{Location: fmt.Sprintf("%s/teams/%d", BasePath, t.ID)}}, nil
}

func (h *handlers) GetTeam(ctx context.Context, req api.GetTeamRequestObject) (api.GetTeamResponseObject, error) {
	t, err := store.GetTeam(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, teamErr(err)
	}
	out, err := h.s.teamFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.GetTeam200JSONResponse{TeamJSONResponse: api.TeamJSONResponse{Body: out}}, nil
}

func (h *handlers) UpdateTeam(ctx context.Context, req api.UpdateTeamRequestObject) (api.UpdateTeamResponseObject, error) {
	var t *store.Team
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, err = store.GetTeamForUpdate(ctx, tx, req.Id); err != nil {
			return teamErr(err)
		}
		b := req.Body
		var fields []string
		before, after := map[string]any{}, map[string]any{}
		if b.Name != nil && *b.Name != t.Name {
			before["name"], after["name"] = t.Name, *b.Name
			t.Name, fields = *b.Name, append(fields, "name")
		}
		if b.Description.IsSpecified() {
			var d *string
			if !b.Description.IsNull() {
				v := b.Description.MustGet()
				d = &v
			}
			if !equalPtr(d, t.Description) {
				before["description"], after["description"] = t.Description, d
				t.Description, fields = d, append(fields, "description")
			}
		}
		if len(fields) == 0 {
			return nil
		}
		if err := store.SaveTeam(ctx, tx, t); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "team.updated", ResourceType: "team", ResourceID: t.ID, Fields: fields, Before: before, After: after})
	})
	if err != nil {
		name := ""
		if req.Body.Name != nil {
			name = *req.Body.Name
		}
		return nil, teamConflict(ctx, h.s.deps.DB.DB, name, err)
	}
	out, err := h.s.teamFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.UpdateTeam200JSONResponse{TeamJSONResponse: api.TeamJSONResponse{Body: out}}, nil
}

func (h *handlers) DeleteTeam(ctx context.Context, req api.DeleteTeamRequestObject) (api.DeleteTeamResponseObject, error) {
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		t, err := store.GetTeamForUpdate(ctx, tx, req.Id)
		if err != nil {
			return teamErr(err)
		}
		if err := store.DeleteTeam(ctx, tx, t.ID); err != nil {
			return teamErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "team.deleted", ResourceType: "team", ResourceID: t.ID, Before: map[string]any{"name": t.Name}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteTeam204Response{}, nil
}

func (h *handlers) SetTeamMembers(ctx context.Context, req api.SetTeamMembersRequestObject) (api.SetTeamMembersResponseObject, error) {
	ids := req.Body.UserIds
	var t *store.Team
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if t, err = store.GetTeamForUpdate(ctx, tx, req.Id); err != nil {
			return teamErr(err)
		}
		missing, err := store.MissingUsers(ctx, tx, ids)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			errs := make([]FieldError, 0, len(missing))
			for _, i := range missing {
				errs = append(errs, FieldError{Pointer: fmt.Sprintf("/user_ids/%d", i), Detail: "names no user", Code: "unprocessable"})
			}
			return unprocessable("unprocessable", "Some user ids name no user.", errs...)
		}
		current, err := store.TeamMembers(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		old := make([]int64, len(current))
		for i := range current {
			old[i] = current[i].ID
		}
		slices.Sort(old)
		if sorted := slices.Sorted(slices.Values(ids)); slices.Equal(sorted, old) {
			return nil // the same members: no change, no audit row
		}
		if err := store.SetTeamMembers(ctx, tx, t.ID, ids); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "team.members_set", ResourceType: "team", ResourceID: t.ID,
			Fields: []string{"members"}, Before: map[string]any{"user_ids": old}, After: map[string]any{"user_ids": ids}})
	})
	if err != nil {
		return nil, err
	}
	out, err := h.s.teamFull(ctx, t)
	if err != nil {
		return nil, err
	}
	return api.SetTeamMembers200JSONResponse{TeamJSONResponse: api.TeamJSONResponse{Body: out}}, nil
}

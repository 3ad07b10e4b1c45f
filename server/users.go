package server

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

func userOf(u *store.User, teams []int64) api.User {
	if teams == nil {
		teams = []int64{}
	}
	return api.User{
		Id: u.ID, ExternalId: NullableFrom(u.ExternalID), Email: u.Email, Name: u.Name, AvatarUrl: NullableFrom(u.AvatarURL),
		Role: api.UserRole(u.Role), IsActive: u.IsActive, TeamIds: teams, LastLoginAt: NullableFrom(apitime.FromPtr(u.LastLoginAt)),
		CreatedAt: apitime.From(u.CreatedAt), UpdatedAt: apitime.From(u.UpdatedAt),
	}
}

// userWithTeams maps one user, reading its team ids.
func (s *Server) userWithTeams(ctx context.Context, db *gorm.DB, u *store.User) (api.User, error) {
	teams, err := store.TeamIDsOf(ctx, db, []int64{u.ID})
	if err != nil {
		return api.User{}, err
	}
	return userOf(u, teams[u.ID]), nil
}

// userResponse maps the outcome of a user change to the User response.
func (s *Server) userResponse(ctx context.Context, u *store.User, err error) (api.UserJSONResponse, error) {
	if err != nil {
		return api.UserJSONResponse{}, err
	}
	out, err := s.userWithTeams(ctx, s.deps.DB.DB, u)
	return api.UserJSONResponse{Body: out}, err
}

func userErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("User")
	}
	return err
}

func (h *handlers) ListUsers(ctx context.Context, req api.ListUsersRequestObject) (api.ListUsersResponseObject, error) {
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.UserFilter{Page: page, PageSize: size, IsActive: prm.IsActive}
	if prm.Role != nil {
		f.Role = string(*prm.Role)
	}
	if prm.TeamId != nil {
		f.TeamID = *prm.TeamId
	}
	if prm.Search != nil {
		f.Search = *prm.Search
	}
	f.Sort = sortKeys(prm.Sort)
	db := h.s.deps.DB.DB
	rows, total, err := store.ListUsers(ctx, db, f)
	if err != nil {
		return nil, err
	}
	ids := rowIDs(rows, func(r *store.User) int64 { return r.ID })
	teams, err := store.TeamIDsOf(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	out := api.UserPage{Items: make([]api.User, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, userOf(&rows[i], teams[rows[i].ID]))
	}
	return api.ListUsers200JSONResponse{Body: out}, nil
}

func (h *handlers) ListUserDirectory(ctx context.Context, req api.ListUserDirectoryRequestObject) (api.ListUserDirectoryResponseObject, error) {
	page, size := pageParams(req.Params.Page, req.Params.PageSize)
	search := ""
	if req.Params.Search != nil {
		search = *req.Params.Search
	}
	db := h.s.deps.DB.DB
	rows, total, err := store.ListDirectory(ctx, db, search, page, size)
	if err != nil {
		return nil, err
	}
	ids := rowIDs(rows, func(r *store.User) int64 { return r.ID })
	teams, err := store.TeamIDsOf(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	out := api.UserDirectoryPage{Items: make([]api.UserDirectoryEntry, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		u := &rows[i]
		out.Items = append(out.Items, api.UserDirectoryEntry{Id: u.ID, Name: u.Name, AvatarUrl: NullableFrom(u.AvatarURL), TeamIds: teams[u.ID]})
	}
	return api.ListUserDirectory200JSONResponse{Body: out}, nil
}

func (h *handlers) GetUser(ctx context.Context, req api.GetUserRequestObject) (api.GetUserResponseObject, error) {
	db := h.s.deps.DB.DB
	u, err := store.GetUser(ctx, db, req.Id)
	if err != nil {
		return nil, userErr(err)
	}
	out, err := h.s.userWithTeams(ctx, db, u)
	if err != nil {
		return nil, err
	}
	return api.GetUser200JSONResponse{UserJSONResponse: api.UserJSONResponse{Body: out}}, nil
}

// guardSuperAdmin is the first role rule of PRODUCT §3.5: only a super_admin touches a super_admin
// or grants the role.
func guardSuperAdmin(p *httpx.Principal, target *store.User, newRole string) error {
	if p.Role == rbac.SuperAdmin {
		return nil
	}
	if target.Role == string(rbac.SuperAdmin) || newRole == string(rbac.SuperAdmin) {
		pr := forbidden("")
		pr.Detail = "Only a super_admin may grant the super_admin role or change a super_admin."
		return pr
	}
	return nil
}

// guardLastSuperAdmin refuses to remove the last active super_admin (409 last-super-admin).
func guardLastSuperAdmin(ctx context.Context, tx *gorm.DB, target *store.User) error {
	if target.Role != string(rbac.SuperAdmin) || !target.IsActive {
		return nil
	}
	n, err := store.CountActiveSuperAdmins(ctx, tx)
	if err != nil {
		return err
	}
	if n <= 1 {
		return conflict("last-super-admin", "This is the last active super_admin; promote another one first.")
	}
	return nil
}

func guardSelf(p *httpx.Principal, target *store.User, action string) error {
	if p.UserID == target.ID {
		return conflict("invalid-state", "You cannot "+action+" yourself.")
	}
	return nil
}

// changeUser is the frame of every user administration write: the target is re-read in the
// transaction, the rules run, fn changes it, and the user's sessions are revoked when asked — in the
// database and on the shared deny-list, before the commit, so a Redis failure leaves nothing half done.
func (s *Server) changeUser(ctx context.Context, id int64, revoke bool, fn func(tx *gorm.DB, u *store.User) (changed bool, err error)) (*store.User, error) {
	var out *store.User
	err := s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.LockUserAdmin(ctx, tx); err != nil {
			return err
		}
		u, err := store.GetUser(ctx, tx, id)
		if err != nil {
			return userErr(err)
		}
		changed, err := fn(tx, u)
		if err != nil || !changed {
			out = u
			return err
		}
		if err := store.SaveUser(ctx, tx, u); err != nil {
			return err
		}
		if revoke {
			if err := s.revokeUserSessions(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		out = u
		return nil
	})
	return out, err
}

// revokeUserSessions revokes every refresh family of the user, and their access tokens on every
// replica through the shared deny-list (an access token lives at most ACCESS_TOKEN_EXPIRE_MINUTES).
func (s *Server) revokeUserSessions(ctx context.Context, tx *gorm.DB, userID int64) error {
	now := store.Now()
	families, err := store.RevokeUserFamilies(ctx, tx, userID, now)
	if err != nil {
		return err
	}
	until := now.Add(s.deps.Config.AccessTokenTTL() + time.Minute)
	for _, fam := range families {
		if err := s.deps.Shared.Revoke(ctx, "sid", fam, until); err != nil {
			return dependencyDown("redis", err)
		}
	}
	return nil
}

func (h *handlers) UpdateUserRole(ctx context.Context, req api.UpdateUserRoleRequestObject) (api.UpdateUserRoleResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	newRole := string(req.Body.Role)
	var before string
	u, err := h.s.changeUser(ctx, req.Id, true, func(tx *gorm.DB, u *store.User) (bool, error) {
		// 404 and 403 come before 409 (PRODUCT §2.2).
		if err := guardSuperAdmin(p, u, newRole); err != nil {
			return false, err
		}
		if h.s.deps.Config.CasdoorRoleSync == config.RoleSyncLogin {
			return false, conflict("invalid-state", "Roles are managed by Casdoor (CASDOOR_ROLE_SYNC=login).")
		}
		if u.Role == newRole {
			return false, nil
		}
		if newRole != string(rbac.SuperAdmin) {
			if err := guardLastSuperAdmin(ctx, tx, u); err != nil {
				return false, err
			}
		}
		before, u.Role = u.Role, newRole
		return true, writeAudit(ctx, tx, auditEntry{Action: "user.role_changed", ResourceType: "user", ResourceID: u.ID,
			Fields: []string{"role"}, Before: map[string]any{"role": before}, After: map[string]any{"role": newRole}})
	})
	resp, err := h.s.userResponse(ctx, u, err)
	if err != nil {
		return nil, err
	}
	return api.UpdateUserRole200JSONResponse{UserJSONResponse: resp}, nil
}

func (h *handlers) DeactivateUser(ctx context.Context, req api.DeactivateUserRequestObject) (api.DeactivateUserResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	u, err := h.s.changeUser(ctx, req.Id, true, func(tx *gorm.DB, u *store.User) (bool, error) {
		if err := guardSuperAdmin(p, u, ""); err != nil {
			return false, err
		}
		if err := guardSelf(p, u, "deactivate"); err != nil {
			return false, err
		}
		if !u.IsActive {
			return false, nil
		}
		if err := guardLastSuperAdmin(ctx, tx, u); err != nil {
			return false, err
		}
		u.IsActive = false
		return true, writeAudit(ctx, tx, auditEntry{Action: "user.deactivated", ResourceType: "user", ResourceID: u.ID,
			Fields: []string{"is_active"}, Before: map[string]any{"is_active": true}, After: map[string]any{"is_active": false}})
	})
	resp, err := h.s.userResponse(ctx, u, err)
	if err != nil {
		return nil, err
	}
	return api.DeactivateUser200JSONResponse{UserJSONResponse: resp}, nil
}

func (h *handlers) ActivateUser(ctx context.Context, req api.ActivateUserRequestObject) (api.ActivateUserResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	u, err := h.s.changeUser(ctx, req.Id, false, func(tx *gorm.DB, u *store.User) (bool, error) {
		if err := guardSuperAdmin(p, u, ""); err != nil {
			return false, err
		}
		if u.IsActive {
			return false, nil
		}
		u.IsActive = true
		return true, writeAudit(ctx, tx, auditEntry{Action: "user.activated", ResourceType: "user", ResourceID: u.ID,
			Fields: []string{"is_active"}, Before: map[string]any{"is_active": false}, After: map[string]any{"is_active": true}})
	})
	resp, err := h.s.userResponse(ctx, u, err)
	if err != nil {
		return nil, err
	}
	return api.ActivateUser200JSONResponse{UserJSONResponse: resp}, nil
}

func (h *handlers) DeleteUser(ctx context.Context, req api.DeleteUserRequestObject) (api.DeleteUserResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	heir := p.UserID
	if req.Params.TransferTo != nil {
		heir = *req.Params.TransferTo
	}
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.LockUserAdmin(ctx, tx); err != nil {
			return err
		}
		u, err := store.GetUser(ctx, tx, req.Id)
		if err != nil {
			return userErr(err)
		}
		if err := guardSuperAdmin(p, u, ""); err != nil {
			return err
		}
		if err := guardSelf(p, u, "delete"); err != nil {
			return err
		}
		if err := guardLastSuperAdmin(ctx, tx, u); err != nil {
			return err
		}
		to, err := store.GetUser(ctx, tx, heir)
		switch {
		case errors.Is(err, store.ErrNotFound), err == nil && (!to.IsActive || to.ID == u.ID):
			return unprocessable("unprocessable", "transfer_to must be another active user.",
				FieldError{Pointer: "#/query/transfer_to", Detail: "must name another active user", Code: "unprocessable"})
		case err != nil:
			return err
		}
		if err := h.s.revokeUserSessions(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := store.TransferOwnership(ctx, tx, u.ID, to.ID); err != nil {
			return err
		}
		if err := store.DeleteUser(ctx, tx, u.ID); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "user.deleted", ResourceType: "user", ResourceID: u.ID,
			Before: map[string]any{"email": u.Email, "name": u.Name, "role": u.Role}, After: map[string]any{"transfer_to": to.ID}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteUser204Response{}, nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

const defaultAPITokenTTL = 90 * 24 * time.Hour

func apiTokenOf(t *store.APIToken) api.ApiToken {
	scopes := []string(t.Scopes)
	if scopes == nil {
		scopes = []string{}
	}
	return api.ApiToken{Id: t.ID, Name: t.Name, Scopes: scopes, Prefix: t.Prefix, OwnerId: t.OwnerID,
		ExpiresAt: apitime.From(t.ExpiresAt), CreatedAt: apitime.From(t.CreatedAt),
		LastUsedAt: NullableFrom(apitime.FromPtr(t.LastUsedAt)), LastUsedIp: NullableFrom(t.LastUsedIP),
		RevokedAt: NullableFrom(apitime.FromPtr(t.RevokedAt))}
}

func tokenErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("API token")
	}
	return err
}

func (h *handlers) CreateApiToken(ctx context.Context, req api.CreateApiTokenRequestObject) (api.CreateApiTokenResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	b := req.Body
	// Scopes: catalogue permissions the creator holds, never token:* (a token cannot mint tokens).
	var bad []FieldError
	for i, sc := range b.Scopes {
		ptr := fmt.Sprintf("/scopes/%d", i)
		switch {
		case !rbac.IsKnown(sc):
			bad = append(bad, FieldError{Pointer: ptr, Detail: "is not a known permission", Code: "unprocessable"})
		case strings.HasPrefix(sc, "token:"):
			bad = append(bad, FieldError{Pointer: ptr, Detail: "token permissions cannot be delegated", Code: "unprocessable"})
		case !p.Has(sc):
			bad = append(bad, FieldError{Pointer: ptr, Detail: "is not held by your role", Code: "unprocessable"})
		}
	}
	if len(bad) > 0 {
		return nil, unprocessable("unprocessable", "Some scopes cannot be granted.", bad...)
	}
	now := store.Now()
	expires := now.Add(defaultAPITokenTTL)
	if max := h.s.deps.Config.APITokenMaxTTL(); expires.After(now.Add(max)) {
		expires = now.Add(max)
	}
	if b.ExpiresAt != nil {
		expires = b.ExpiresAt.UTC().Truncate(time.Millisecond)
		if !expires.After(now) || expires.After(now.Add(h.s.deps.Config.APITokenMaxTTL())) {
			return nil, unprocessable("unprocessable", "expires_at must be in the future and within API_TOKEN_MAX_TTL_DAYS.",
				FieldError{Pointer: "/expires_at", Detail: "must be in the future and within the maximum lifetime", Code: "unprocessable"})
		}
	}
	secret, prefix, hash := auth.NewAPIToken()
	t := &store.APIToken{OwnerID: p.UserID, Name: b.Name, Prefix: prefix, TokenHash: hash, Scopes: store.StringList(b.Scopes), ExpiresAt: expires}
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.CreateAPIToken(ctx, tx, t); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Action: "token.created", ResourceType: "api_token", ResourceID: t.ID,
			After: map[string]any{"name": t.Name, "scopes": b.Scopes, "expires_at": apitime.From(expires)}})
	})
	if errors.Is(err, store.ErrConflict) {
		// The existing token is looked up after the rollback: on PostgreSQL the failed INSERT aborts the
		// transaction, so a query inside it would fail and existing_id would be lost.
		pr := conflict("already-exists", "You already have a token with this name.")
		var existing store.APIToken
		if h.s.deps.DB.WithContext(ctx).Select("id").Where("owner_id = ? AND name = ?", p.UserID, b.Name).Take(&existing).Error == nil {
			pr.ExistingID = &existing.ID
		}
		return nil, pr
	}
	if err != nil {
		return nil, err
	}
	v := apiTokenOf(t)
	cc := noStore
	return api.CreateApiToken201JSONResponse{
		Body: api.ApiTokenCreated{Id: v.Id, Name: v.Name, Scopes: v.Scopes, Prefix: v.Prefix, OwnerId: v.OwnerId, ExpiresAt: v.ExpiresAt,
			CreatedAt: v.CreatedAt, LastUsedAt: v.LastUsedAt, LastUsedIp: v.LastUsedIp, RevokedAt: v.RevokedAt, Token: secret},
		Headers: api.CreateApiToken201ResponseHeaders{Location: fmt.Sprintf("%s/api-tokens/%d", BasePath, t.ID), CacheControl: &cc},
	}, nil
}

func (s *Server) tokenPage(ctx context.Context, ownerID int64, sort *api.ApiTokenSort, pg, ps *int) (api.ApiTokenPageJSONResponse, error) {
	page, size := pageParams(pg, ps)
	var keys []string
	if sort != nil {
		keys = *sort
	}
	rows, total, err := store.ListAPITokens(ctx, s.deps.DB.DB, ownerID, keys, page, size)
	if err != nil {
		return api.ApiTokenPageJSONResponse{}, err
	}
	out := api.ApiTokenPage{Items: make([]api.ApiToken, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, apiTokenOf(&rows[i]))
	}
	return api.ApiTokenPageJSONResponse{Body: out}, nil
}

func (h *handlers) ListApiTokens(ctx context.Context, req api.ListApiTokensRequestObject) (api.ListApiTokensResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	resp, err := h.s.tokenPage(ctx, p.UserID, req.Params.Sort, req.Params.Page, req.Params.PageSize)
	if err != nil {
		return nil, err
	}
	return api.ListApiTokens200JSONResponse{ApiTokenPageJSONResponse: resp}, nil
}

func (h *handlers) GetApiToken(ctx context.Context, req api.GetApiTokenRequestObject) (api.GetApiTokenResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	t, err := store.GetAPIToken(ctx, h.s.deps.DB.DB, p.UserID, req.Id)
	if err != nil {
		return nil, tokenErr(err)
	}
	return api.GetApiToken200JSONResponse{Body: apiTokenOf(t)}, nil
}

// revokeToken revokes one of owner's tokens and audits it.
func (s *Server) revokeToken(ctx context.Context, ownerID, id int64) error {
	return s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		t, err := store.GetAPIToken(ctx, tx, ownerID, id)
		if err != nil {
			return tokenErr(err)
		}
		if t.RevokedAt != nil {
			return nil
		}
		if err := store.RevokeAPIToken(ctx, tx, ownerID, id, store.Now()); err != nil {
			return tokenErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "token.revoked", ResourceType: "api_token", ResourceID: id,
			Before: map[string]any{"owner_id": ownerID, "name": t.Name}})
	})
}

func (h *handlers) DeleteApiToken(ctx context.Context, req api.DeleteApiTokenRequestObject) (api.DeleteApiTokenResponseObject, error) {
	if err := h.s.revokeToken(ctx, httpx.PrincipalFrom(ctx).UserID, req.Id); err != nil {
		return nil, err
	}
	return api.DeleteApiToken204Response{}, nil
}

func (h *handlers) ListUserApiTokens(ctx context.Context, req api.ListUserApiTokensRequestObject) (api.ListUserApiTokensResponseObject, error) {
	if _, err := store.GetUser(ctx, h.s.deps.DB.DB, req.UserId); err != nil {
		return nil, userErr(err)
	}
	resp, err := h.s.tokenPage(ctx, req.UserId, req.Params.Sort, req.Params.Page, req.Params.PageSize)
	if err != nil {
		return nil, err
	}
	return api.ListUserApiTokens200JSONResponse{ApiTokenPageJSONResponse: resp}, nil
}

func (h *handlers) DeleteUserApiToken(ctx context.Context, req api.DeleteUserApiTokenRequestObject) (api.DeleteUserApiTokenResponseObject, error) {
	if err := h.s.revokeToken(ctx, req.UserId, req.Id); err != nil {
		return nil, err
	}
	return api.DeleteUserApiToken204Response{}, nil
}

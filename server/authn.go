package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// tokenAuthenticator accepts our access tokens on bearerAuth. The user row is read on every request
// by primary key, so a role change or deactivation takes effect at once (PRODUCT §3.1).
type tokenAuthenticator struct {
	tokens *auth.Tokens
	db     *store.DB
	shared auth.Shared
}

func (a *tokenAuthenticator) Authenticate(ctx context.Context, scheme string, r *http.Request) (*httpx.Principal, error) {
	if scheme != "bearerAuth" {
		return nil, unauthenticated("This credential scheme is not accepted here.")
	}
	raw := r.Header.Get("Authorization")
	kind, tok, ok := strings.Cut(raw, " ")
	if raw == "" {
		return nil, unauthenticated("A bearer token is required.")
	}
	if !ok || !strings.EqualFold(kind, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, unauthenticated("The Authorization header must be 'Bearer <token>'.")
	}
	tok = strings.TrimSpace(tok)
	if auth.IsAPIToken(tok) {
		return a.apiToken(ctx, tok)
	}
	claims, err := a.tokens.Verify(tok)
	if err != nil {
		var te *auth.TokenError
		if errors.As(err, &te) {
			return nil, unauthenticated("The access token was rejected: " + te.Reason + ".")
		}
		return nil, unauthenticated("The access token was rejected.")
	}
	// Logout and session revocation are visible to every replica through the shared deny-list; if
	// it cannot be asked, fail closed.
	revoked, err := a.shared.Revoked(ctx, claims.JTI, claims.SID)
	if err != nil {
		return nil, dependencyDown("redis", err)
	}
	if revoked {
		return nil, unauthenticated("The access token has been revoked.")
	}
	u, err := a.user(ctx, claims.UserID)
	if err != nil {
		return nil, err
	}
	return &httpx.Principal{
		Kind: httpx.KindUser, UserID: u.ID, Role: rbac.Role(u.Role), Email: u.Email, Name: u.Name,
		JTI: claims.JTI, SID: claims.SID, ExpiresAt: claims.ExpiresAt,
	}, nil
}

// user reads the principal's user row: unknown → 401, inactive → 403, database down → 503.
func (a *tokenAuthenticator) user(ctx context.Context, id int64) (*store.User, error) {
	u, err := store.GetUser(ctx, a.db.DB, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthenticated("The credential's user does not exist.")
	}
	if err != nil {
		return nil, dependencyDown("database", err)
	}
	if !u.IsActive {
		return nil, accountDisabled()
	}
	return u, nil
}

// apiToken authenticates a partner's wto_ token: known, not revoked, not expired, owner active. It
// acts with its scopes ∩ the owner's current role (httpx.Principal.Has).
func (a *tokenAuthenticator) apiToken(ctx context.Context, tok string) (*httpx.Principal, error) {
	db := a.db.DB
	t, err := store.GetAPITokenByHash(ctx, db, auth.HashOpaque(tok))
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthenticated("The API token is unknown.")
	}
	if err != nil {
		return nil, dependencyDown("database", err)
	}
	now := store.Now()
	switch {
	case t.RevokedAt != nil:
		return nil, unauthenticated("The API token has been revoked.")
	case !now.Before(t.ExpiresAt):
		return nil, unauthenticated("The API token has expired.")
	}
	u, err := a.user(ctx, t.OwnerID)
	if err != nil {
		return nil, err
	}
	// last_used_* moves at most once a minute; skip the write (the single SQLite writer) in between.
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= store.APITokenTouchInterval {
		if err := store.TouchAPIToken(ctx, db, t.ID, httpx.ClientIP(ctx), now); err != nil {
			return nil, dependencyDown("database", err)
		}
	}
	return &httpx.Principal{
		Kind: httpx.KindAPIToken, UserID: u.ID, Role: rbac.Role(u.Role), Email: u.Email, Name: u.Name,
		TokenID: t.ID, Scopes: t.Scopes, ExpiresAt: t.ExpiresAt,
	}, nil
}

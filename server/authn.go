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
	claims, err := a.tokens.Verify(strings.TrimSpace(tok))
	if err != nil {
		var te *auth.TokenError
		if errors.As(err, &te) {
			return nil, unauthenticated("The access token was rejected: " + te.Reason + ".")
		}
		return nil, unauthenticated("The access token was rejected.")
	}
	var u store.User
	if err := a.db.WithContext(ctx).Take(&u, claims.UserID).Error; err != nil {
		if errors.Is(store.Classify(err), store.ErrNotFound) {
			return nil, unauthenticated("The access token's user does not exist.")
		}
		p := problem(http.StatusServiceUnavailable, "dependency-unavailable", "The database is unavailable.")
		p.Dependency, p.RetryAfter, p.cause = "database", 5, err
		return nil, p
	}
	if !u.IsActive {
		return nil, problem(http.StatusForbidden, "account-disabled", "This account is disabled.")
	}
	return &httpx.Principal{
		Kind: httpx.KindUser, UserID: u.ID, Role: rbac.Role(u.Role), Email: u.Email, Name: u.Name,
		JTI: claims.JTI, SID: claims.SID,
	}, nil
}

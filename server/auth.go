package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

const noStore = "no-store"

// oauthState is what a sign-in's state stands for, kept server-side until the callback.
type oauthState struct {
	Verifier    string `json:"v"`
	RedirectURI string `json:"r"`
}

func (s *Server) casdoor() (*auth.Casdoor, error) {
	if s.deps.Casdoor == nil {
		p := dependencyDown("casdoor", nil)
		p.Detail, p.RetryAfter = "Single sign-on is not configured (CASDOOR_*).", 0 // not a passing outage
		return nil, p
	}
	return s.deps.Casdoor, nil
}

func (h *handlers) GetLoginUrl(ctx context.Context, req api.GetLoginUrlRequestObject) (api.GetLoginUrlResponseObject, error) {
	cd, err := h.s.casdoor()
	if err != nil {
		return nil, err
	}
	cfg := h.s.deps.Config
	redirect := cfg.CasdoorRedirectURIs[0]
	if req.Params.RedirectUri != nil {
		redirect = *req.Params.RedirectUri
		if !slices.Contains(cfg.CasdoorRedirectURIs, redirect) {
			return nil, unprocessable("unprocessable", "This redirect_uri is not allowed.",
				FieldError{Pointer: "#/query/redirect_uri", Detail: "is not one of the allowed redirect URIs", Code: "unprocessable"})
		}
	}
	state, verifier := auth.NewState(), auth.NewVerifier()
	val, _ := json.Marshal(oauthState{Verifier: verifier, RedirectURI: redirect})
	if err := h.s.deps.Shared.PutState(ctx, state, val, cfg.OAuthStateTTL()); err != nil {
		return nil, dependencyDown("redis", err)
	}
	cc := noStore
	return api.GetLoginUrl200JSONResponse{
		Body: api.LoginURL{Url: cd.AuthorizeURL(state, auth.Challenge(verifier), redirect), RedirectUri: redirect, State: state,
			ExpiresIn: int(cfg.OAuthStateTTL() / time.Second)},
		Headers: api.GetLoginUrl200ResponseHeaders{CacheControl: &cc},
	}, nil
}

func (h *handlers) ExchangeCode(ctx context.Context, req api.ExchangeCodeRequestObject) (api.ExchangeCodeResponseObject, error) {
	cd, err := h.s.casdoor()
	if err != nil {
		return nil, err
	}
	raw, err := h.s.deps.Shared.TakeState(ctx, req.Body.State)
	if errors.Is(err, auth.ErrStateNotFound) {
		h.s.auditLoginFailed(ctx, loginInvalidState, nil, "")
		return nil, unprocessable("invalid-oauth-state", "The sign-in state is unknown, expired or already used; start again.",
			FieldError{Pointer: "/state", Detail: "is unknown, expired or already used", Code: "invalid-oauth-state"})
	}
	if err != nil {
		return nil, dependencyDown("redis", err)
	}
	var st oauthState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, err
	}
	tokens, err := cd.Exchange(ctx, req.Body.Code, st.RedirectURI, st.Verifier)
	switch {
	case errors.Is(err, auth.ErrCodeRejected):
		h.s.auditLoginFailed(ctx, loginCodeRejected, nil, "")
		return nil, withoutBearerChallenge(unauthenticated("Casdoor rejected the authorization code."))
	case errors.Is(err, auth.ErrCasdoorUnavailable):
		return nil, dependencyDown("casdoor", err)
	case err != nil:
		return nil, err
	}
	jwt := tokens.IDToken
	if jwt == "" {
		jwt = tokens.AccessToken
	}
	id, err := cd.Verify(jwt)
	if err != nil {
		h.s.auditLoginFailed(ctx, loginTokenInvalid, nil, "")
		return nil, withoutBearerChallenge(unauthenticated("The Casdoor token could not be verified."))
	}
	u, err := h.s.upsertSSOUser(ctx, id, cd.MapRole(id))
	if err != nil {
		h.s.auditRefusedLogin(ctx, id, err)
		return nil, withoutBearerChallenge(err)
	}
	if !u.IsActive {
		h.s.auditLoginFailed(ctx, loginAccountOff, u, "")
		return nil, accountDisabled()
	}
	resp, err := h.s.issueSession(ctx, u, "", func(tx *gorm.DB) error {
		return writeAudit(ctx, tx, auditEntry{Action: "auth.login", ResourceType: "user", ResourceID: u.ID, ActorUser: u})
	})
	if err != nil {
		return nil, err
	}
	return api.ExchangeCode200JSONResponse{TokensJSONResponse: resp}, nil
}

// auditRefusedLogin records auth.login_failed for a verified Casdoor identity that upsertSSOUser
// refused. It runs after that transaction rolled back, so the user is looked up again here.
func (s *Server) auditRefusedLogin(ctx context.Context, id *auth.CasdoorIdentity, err error) {
	p, ok := asProblem(err)
	if !ok {
		return // an outage or a fault, not a refusal: logged by the error handler
	}
	reason := ""
	switch {
	case p.Slug == "account-disabled":
		reason = loginAccountOff
	case p.Slug == "already-exists":
		reason = loginEmailConflict
	case p.Status == http.StatusUnauthorized:
		reason = loginNoEmail
	default:
		return
	}
	db := s.deps.DB.DB
	u, lookupErr := store.GetUserByExternalID(ctx, db, id.Subject)
	if lookupErr != nil && id.Email != "" {
		u, lookupErr = store.GetUserByEmail(ctx, db, id.Email)
	}
	if lookupErr != nil {
		u = nil
	}
	s.auditLoginFailed(ctx, reason, u, id.Email)
}

// upsertSSOUser applies the just-in-time rules of PRODUCT §3.2.1, keyed on the Casdoor subject.
// Creating a user is audited as user.created, linking a pre-provisioned one as user.linked, and a
// role taken from Casdoor under CASDOOR_ROLE_SYNC=login as user.role_changed, in its transaction.
func (s *Server) upsertSSOUser(ctx context.Context, id *auth.CasdoorIdentity, role string) (*store.User, error) {
	cfg := s.deps.Config
	var out *store.User
	err := s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		// Sign-ins write the user row like the administration does: take the same turn, so a login
		// racing a deactivation or a demotion cannot write the old values back.
		if err := store.LockUserAdmin(ctx, tx); err != nil {
			return err
		}
		now := store.Now()
		name := id.DisplayName
		if name == "" {
			name = id.Name
		}
		var avatar *string
		if id.Avatar != "" {
			avatar = &id.Avatar
		}
		linked, prevRole := false, ""
		u, err := store.GetUserByExternalID(ctx, tx, id.Subject)
		switch {
		case err == nil:
			prevRole = u.Role
			// A refused login changes nothing: no profile refresh, no last_login_at.
			if !u.IsActive {
				return accountDisabled()
			}
			if id.Email != "" && !strings.EqualFold(id.Email, u.Email) {
				// The Casdoor email moved onto another user's: 409 naming that user.
				other, err := store.GetUserByEmail(ctx, tx, id.Email)
				switch {
				case err == nil && other.ID != u.ID:
					p := conflict("already-exists", "This email belongs to another account; an operator must resolve it.")
					p.ExistingID = &other.ID
					return p
				case err != nil && !errors.Is(err, store.ErrNotFound):
					return err
				}
			}
			if id.Email != "" {
				u.Email = id.Email
			}
			if name != "" {
				u.Name = name
			}
			u.AvatarURL, u.LastLoginAt = avatar, &now
			if cfg.CasdoorRoleSync == config.RoleSyncLogin && u.Role != role {
				if err := guardLastSuperAdmin(ctx, tx, u); err != nil {
					s.deps.Logger.WarnContext(ctx, "role sync would demote the last active super_admin; kept", "user_id", u.ID)
				} else {
					u.Role = role
				}
			}
		case errors.Is(err, store.ErrNotFound):
			byEmail, err := store.GetUserByEmail(ctx, tx, id.Email)
			switch {
			case err == nil && byEmail.ExternalID == nil:
				if !byEmail.IsActive {
					return accountDisabled()
				}
				u, linked, prevRole = byEmail, true, byEmail.Role // pre-provisioned by the CLI: link it
				sub := id.Subject
				u.ExternalID, u.AvatarURL, u.LastLoginAt = &sub, avatar, &now
				if name != "" {
					u.Name = name
				}
				if cfg.CasdoorRoleSync == config.RoleSyncLogin && u.Role != role {
					// The CLI bootstraps the first super_admin this way: never demote the last one.
					if err := guardLastSuperAdmin(ctx, tx, u); err != nil {
						s.deps.Logger.WarnContext(ctx, "role sync would demote the last active super_admin; kept", "user_id", u.ID)
					} else {
						u.Role = role
					}
				}
			case err == nil:
				p := conflict("already-exists", "This email belongs to another Casdoor account; an operator must run 'wataomi users relink'.")
				p.ExistingID = &byEmail.ID
				return p
			case errors.Is(err, store.ErrNotFound):
				if id.Email == "" {
					return unauthenticated("The Casdoor account has no email.")
				}
				sub := id.Subject
				if name == "" {
					name = id.Email
				}
				u = &store.User{ExternalID: &sub, Email: id.Email, Name: name, AvatarURL: avatar, Role: role, IsActive: true, LastLoginAt: &now}
			default:
				return err
			}
		default:
			return err
		}
		created := u.ID == 0
		if err := store.SaveUser(ctx, tx, u); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return conflict("already-exists", "This email belongs to another account.")
			}
			return err
		}
		out = u
		var audits []auditEntry
		switch {
		case created:
			audits = append(audits, auditEntry{Action: "user.created", ResourceType: "user", ResourceID: u.ID, ActorUser: u,
				After: map[string]any{"email": u.Email, "name": u.Name, "role": u.Role}})
		case linked:
			audits = append(audits, auditEntry{Action: "user.linked", ResourceType: "user", ResourceID: u.ID, ActorUser: u,
				Fields: []string{"external_id"}})
		}
		if !created && prevRole != u.Role {
			audits = append(audits, auditEntry{Action: "user.role_changed", ResourceType: "user", ResourceID: u.ID, SystemActor: "casdoor",
				Fields: []string{"role"}, Before: map[string]any{"role": prevRole}, After: map[string]any{"role": u.Role}})
		}
		for _, e := range audits {
			if err := writeAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// issueSession writes a refresh token of family sid (a new family when empty) and mints the access
// token for it, in one transaction with extra (the audit row).
func (s *Server) issueSession(ctx context.Context, u *store.User, family string, extra func(tx *gorm.DB) error) (api.TokensJSONResponse, error) {
	return s.rotateSession(ctx, u, family, 0, extra)
}

func (s *Server) rotateSession(ctx context.Context, u *store.User, family string, replaces int64, extra func(tx *gorm.DB) error) (api.TokensJSONResponse, error) {
	cfg := s.deps.Config
	if family == "" {
		family = auth.NewFamilyID()
	}
	refresh, hash := auth.NewRefreshToken()
	now := store.Now()
	err := s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		rt := &store.RefreshToken{FamilyID: family, UserID: u.ID, TokenHash: hash, IssuedAt: now, ExpiresAt: now.Add(cfg.RefreshTokenTTL())}
		if ip := httpx.ClientIP(ctx); ip != "" {
			rt.IP = &ip
		}
		if err := store.CreateRefreshToken(ctx, tx, rt); err != nil {
			return err
		}
		if replaces != 0 {
			won, err := store.MarkRefreshUsed(ctx, tx, replaces, rt.ID, now)
			if err != nil {
				return err
			}
			if !won { // a concurrent refresh spent it first
				p := problem(http.StatusUnauthorized, "refresh-superseded", "This refresh token was just used; use the newest one.")
				return p
			}
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
	if err != nil {
		return api.TokensJSONResponse{}, err
	}
	access, claims, err := s.deps.Tokens.Issue(u.ID, u.Role, family, 0)
	if err != nil {
		return api.TokensJSONResponse{}, err
	}
	p := &httpx.Principal{Kind: httpx.KindUser, UserID: u.ID, Role: rbac.Role(u.Role), ExpiresAt: claims.ExpiresAt}
	me, err := s.me(ctx, u, p)
	if err != nil {
		return api.TokensJSONResponse{}, err
	}
	cc := noStore
	return api.TokensJSONResponse{
		Body: api.TokenResponse{AccessToken: access, TokenType: api.Bearer, ExpiresIn: int(time.Until(claims.ExpiresAt).Round(time.Second) / time.Second),
			RefreshToken: refresh, RefreshExpiresIn: int(cfg.RefreshTokenTTL() / time.Second), User: me},
		Headers: api.TokensResponseHeaders{CacheControl: &cc},
	}, nil
}

func (h *handlers) RefreshTokens(ctx context.Context, req api.RefreshTokensRequestObject) (api.RefreshTokensResponseObject, error) {
	s := h.s
	hash := auth.HashOpaque(req.Body.RefreshToken)
	now := store.Now()
	var (
		rt      *store.RefreshToken
		refusal error
	)
	// Read and judge the token in a transaction that commits even when the answer is a refusal, so a
	// detected reuse really revokes the family.
	err := s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		rt, err = store.GetRefreshTokenByHash(ctx, tx, hash)
		if errors.Is(err, store.ErrNotFound) {
			refusal = unauthenticated("The refresh token is unknown.")
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case rt.RevokedAt != nil:
			refusal = unauthenticated("The refresh token has been revoked.")
		case rt.UsedAt != nil && now.Sub(*rt.UsedAt) <= s.deps.Config.RefreshReuseGrace():
			refusal = problem(http.StatusUnauthorized, "refresh-superseded", "This refresh token was just used; use the newest one.")
		case rt.UsedAt != nil:
			refusal = unauthenticated("The refresh token was already used; the session has been revoked.")
			if _, err := store.RevokeFamily(ctx, tx, rt.FamilyID, now); err != nil {
				return err
			}
			if err := s.deps.Shared.Revoke(ctx, "sid", rt.FamilyID, now.Add(s.deps.Config.AccessTokenTTL()+time.Minute)); err != nil {
				return dependencyDown("redis", err)
			}
			u, _ := store.GetUser(ctx, tx, rt.UserID)
			return writeAudit(ctx, tx, auditEntry{Action: "auth.refresh_reuse_detected", ResourceType: "user", ResourceID: rt.UserID,
				Status: store.AuditDenied, ActorUser: u})
		case !now.Before(rt.ExpiresAt):
			refusal = unauthenticated("The refresh token has expired.")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, withoutBearerChallenge(refusal)
	}
	u, err := store.GetUser(ctx, s.deps.DB.DB, rt.UserID) // role and is_active are read again
	if err != nil {
		return nil, unauthenticated("The refresh token's user no longer exists.")
	}
	if !u.IsActive {
		return nil, accountDisabled()
	}
	resp, err := s.rotateSession(ctx, u, rt.FamilyID, rt.ID, nil)
	if err != nil {
		return nil, err
	}
	return api.RefreshTokens200JSONResponse{TokensJSONResponse: resp}, nil
}

// withoutBearerChallenge drops the bearer challenge from refusals of public operations, which take no
// bearer credential.
func withoutBearerChallenge(err error) error {
	if p, ok := asProblem(err); ok {
		p.Header = nil
	}
	return err
}

func (h *handlers) GetMe(ctx context.Context, req api.GetMeRequestObject) (api.GetMeResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	u, err := store.GetUser(ctx, h.s.deps.DB.DB, p.UserID)
	if err != nil {
		return nil, userErr(err)
	}
	me, err := h.s.me(ctx, u, p)
	if err != nil {
		return nil, err
	}
	cc := noStore
	return api.GetMe200JSONResponse{Body: me, Headers: api.GetMe200ResponseHeaders{CacheControl: &cc}}, nil
}

// me maps the caller: the user, its effective permissions and what it authenticated with.
func (s *Server) me(ctx context.Context, u *store.User, p *httpx.Principal) (api.Me, error) {
	teams, err := store.TeamIDsOf(ctx, s.deps.DB.DB, []int64{u.ID})
	if err != nil {
		return api.Me{}, err
	}
	usr := userOf(u, teams[u.ID])
	a := api.MeAuth{Type: api.MeAuthType(p.Kind), ExpiresAt: apitime.From(p.ExpiresAt), TokenId: NullableFrom[int64](nil), Scopes: NullableFrom[[]string](nil)}
	if p.Kind == httpx.KindAPIToken {
		a.TokenId, a.Scopes = NullableFrom(&p.TokenID), NullableFrom(&p.Scopes)
	}
	return api.Me{Id: usr.Id, ExternalId: usr.ExternalId, Email: usr.Email, Name: usr.Name, AvatarUrl: usr.AvatarUrl, Role: usr.Role,
		IsActive: usr.IsActive, TeamIds: usr.TeamIds, LastLoginAt: usr.LastLoginAt, CreatedAt: usr.CreatedAt, UpdatedAt: usr.UpdatedAt,
		Permissions: p.Permissions(), Auth: a}, nil
}

func (h *handlers) Logout(ctx context.Context, req api.LogoutRequestObject) (api.LogoutResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	s := h.s
	err := s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		now := store.Now()
		if _, err := store.RevokeFamily(ctx, tx, p.SID, now); err != nil {
			return err
		}
		// The deny-list entries outlive every access token of the family.
		if err := s.deps.Shared.Revoke(ctx, "jti", p.JTI, p.ExpiresAt.Add(time.Minute)); err != nil {
			return dependencyDown("redis", err)
		}
		if err := s.deps.Shared.Revoke(ctx, "sid", p.SID, now.Add(s.deps.Config.AccessTokenTTL()+time.Minute)); err != nil {
			return dependencyDown("redis", err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "auth.logout", ResourceType: "user", ResourceID: p.UserID})
	})
	if err != nil {
		return nil, err
	}
	return api.Logout204Response{}, nil
}

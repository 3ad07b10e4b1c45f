package auth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/casdoor/casdoor-go-sdk/casdoorsdk"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/rbac"
)

const (
	// CasdoorLeeway is the clock leeway applied to the exp and nbf of
	// Casdoor tokens (PRODUCT §3.2.1).
	CasdoorLeeway = 60 * time.Second

	// DefaultCasdoorTimeout bounds a code exchange when CasdoorConfig.Timeout
	// is zero.
	DefaultCasdoorTimeout = 10 * time.Second

	// Role claims for CasdoorConfig.RoleClaim (CASDOOR_ROLE_CLAIM).
	RoleClaimTag   = "tag"
	RoleClaimRoles = "roles"

	// CasdoorScope is the scope requested by AuthorizeURL.
	CasdoorScope = "openid profile email"

	casdoorAccessTokenType = "access-token"
	casdoorAlg             = "RS256"
	maxCasdoorTokenLen     = 64 << 10 // Casdoor JWTs carry the whole user; a few KB in practice
)

var (
	// ErrCodeRejected: Casdoor refused the authorization code (invalid_grant,
	// invalid_client, a PKCE or redirect_uri mismatch, a reused code, …).
	// Maps to 401.
	ErrCodeRejected = errors.New("casdoor rejected the authorization code")

	// ErrCasdoorUnavailable: Casdoor could not be reached or failed (network
	// error, timeout, 5xx, unusable answer). Maps to 503.
	ErrCasdoorUnavailable = errors.New("casdoor unavailable")

	// ErrCasdoorToken is matched by every error Verify returns. The wrapped
	// reason is short and never contains the token. Maps to 401.
	ErrCasdoorToken = errors.New("invalid casdoor token")
)

// CasdoorConfig configures the Casdoor SSO client (PRODUCT §8 CASDOOR_*).
type CasdoorConfig struct {
	Endpoint     string // CASDOOR_ENDPOINT, e.g. http://localhost:8030
	ClientID     string // CASDOOR_CLIENT_ID
	ClientSecret string // CASDOOR_CLIENT_SECRET
	OrgName      string // CASDOOR_ORG_NAME; tokens' owner claim must equal it
	AppName      string // CASDOOR_APP_NAME (kept for the SDK client)
	Issuer       string // CASDOOR_ISSUER; default Endpoint

	// CertificatePEM is CASDOOR_CERTIFICATE: one or more PEM CERTIFICATE
	// blocks (several during a key rotation) holding RSA public keys.
	CertificatePEM string

	// RoleClaim is CASDOOR_ROLE_CLAIM: RoleClaimTag (default) or RoleClaimRoles.
	RoleClaim string

	// Timeout bounds a code exchange; default DefaultCasdoorTimeout.
	Timeout time.Duration

	// HTTPClient performs the code exchange; default a plain http.Client.
	HTTPClient *http.Client
}

// CasdoorTokens are the tokens Casdoor returns for an authorization code.
// IDToken is empty if Casdoor did not send one. They are secrets.
type CasdoorTokens struct {
	AccessToken  string
	IDToken      string
	RefreshToken string
}

// CasdoorIdentity is the verified identity in a Casdoor access (or ID) token.
type CasdoorIdentity struct {
	Subject     string // sub: the Casdoor user id (our users.external_id)
	Email       string
	Name        string // the login name (claim "name")
	DisplayName string
	Avatar      string
	Tag         string
	Roles       []string // role names; Casdoor sends objects {name, …} or strings
}

// Casdoor exchanges authorization codes at Casdoor and verifies its JWTs
// (PRODUCT §3.2, §3.2.1). It is safe for concurrent use.
//
// The casdoor-go-sdk client is kept for configuration and admin calls only
// (DESIGN §3): its token calls take no context, PKCE verifier or
// redirect_uri, and its ParseJwtToken accepts other algorithms and checks
// only the signature and expiry. The exchange goes through
// golang.org/x/oauth2 and the verification through golang-jwt.
type Casdoor struct {
	sdk       *casdoorsdk.Client
	endpoint  string
	clientID  string
	org       string
	issuer    string
	roleClaim string
	timeout   time.Duration
	http      *http.Client
	oauth     oauth2.Config
	keys      jwt.VerificationKeySet
	parser    *jwt.Parser
	now       func() time.Time // replaced in tests
}

// NewCasdoor validates cfg and parses CertificatePEM once. It fails if a
// required field is missing, the endpoint is not an http(s) URL, RoleClaim
// is unknown, or the PEM holds no certificate, an unparsable one, or one
// whose key is not RSA of at least 2048 bits.
func NewCasdoor(cfg CasdoorConfig) (*Casdoor, error) {
	endpoint := strings.TrimRight(strings.TrimSpace(cfg.Endpoint), "/")
	u, err := url.Parse(endpoint)
	if endpoint == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("auth: casdoor endpoint must be an http(s) URL")
	}
	switch {
	case cfg.ClientID == "":
		return nil, errors.New("auth: casdoor client id is required")
	case cfg.ClientSecret == "":
		return nil, errors.New("auth: casdoor client secret is required")
	case cfg.OrgName == "":
		return nil, errors.New("auth: casdoor organisation name is required")
	case cfg.Timeout < 0:
		return nil, errors.New("auth: casdoor timeout must not be negative")
	}
	roleClaim := cfg.RoleClaim
	if roleClaim == "" {
		roleClaim = RoleClaimTag
	}
	if roleClaim != RoleClaimTag && roleClaim != RoleClaimRoles {
		return nil, fmt.Errorf("auth: casdoor role claim must be %q or %q, got %q", RoleClaimTag, RoleClaimRoles, cfg.RoleClaim)
	}
	keys, err := parseCasdoorCerts(cfg.CertificatePEM)
	if err != nil {
		return nil, err
	}
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = endpoint
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultCasdoorTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}

	c := &Casdoor{
		sdk: casdoorsdk.NewClientWithConf(&casdoorsdk.AuthConfig{
			Endpoint:         endpoint,
			ClientId:         cfg.ClientID,
			ClientSecret:     cfg.ClientSecret,
			Certificate:      cfg.CertificatePEM,
			OrganizationName: cfg.OrgName,
			ApplicationName:  cfg.AppName,
		}),
		endpoint:  endpoint,
		clientID:  cfg.ClientID,
		org:       cfg.OrgName,
		issuer:    issuer,
		roleClaim: roleClaim,
		timeout:   timeout,
		http:      hc,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:   endpoint + "/login/oauth/authorize",
				TokenURL:  endpoint + "/api/login/oauth/access_token",
				AuthStyle: oauth2.AuthStyleInParams,
			},
			Scopes: strings.Fields(CasdoorScope),
		},
		keys: keys,
		now:  time.Now,
	}
	c.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{casdoorAlg}),
		jwt.WithLeeway(CasdoorLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(cfg.ClientID),
		jwt.WithIssuer(issuer),
		jwt.WithTimeFunc(func() time.Time { return c.now() }),
	)
	return c, nil
}

// parseCasdoorCerts returns the RSA public keys of CASDOOR_CERTIFICATE, parsed by the same strict
// parser that config.Load applies at startup (every block a CERTIFICATE with an RSA key of at least
// 2048 bits; literal "\n" escapes accepted).
func parseCasdoorCerts(s string) (jwt.VerificationKeySet, error) {
	var set jwt.VerificationKeySet
	certs, err := config.ParseCasdoorCertificates(s)
	if err != nil {
		return set, fmt.Errorf("auth: casdoor certificate: %w", err)
	}
	for _, c := range certs {
		set.Keys = append(set.Keys, c.PublicKey.(*rsa.PublicKey)) // the parser accepts RSA keys only
	}
	return set, nil
}

// SDK returns the casdoor-go-sdk client built from the same configuration,
// for admin API calls. Do not use its token or JWT functions (see Casdoor).
func (c *Casdoor) SDK() *casdoorsdk.Client { return c.sdk }

// RoleClaim returns the configured role claim (RoleClaimTag or RoleClaimRoles).
func (c *Casdoor) RoleClaim() string { return c.roleClaim }

// AuthorizeURL returns the Casdoor authorization URL for the code flow with
// PKCE S256:
// {Endpoint}/login/oauth/authorize?client_id&response_type=code&redirect_uri
// &scope=openid profile email&state&code_challenge&code_challenge_method=S256.
func (c *Casdoor) AuthorizeURL(state, codeChallenge, redirectURI string) string {
	q := url.Values{}
	q.Set("client_id", c.clientID)
	q.Set("response_type", "code")
	q.Set("redirect_uri", redirectURI)
	q.Set("scope", CasdoorScope)
	q.Set("state", state)
	q.Set("code_challenge", codeChallenge)
	q.Set("code_challenge_method", "S256")
	return c.oauth.Endpoint.AuthURL + "?" + q.Encode()
}

// Exchange trades an authorization code for Casdoor tokens, presenting the
// redirect_uri of the authorization request and the PKCE verifier. It gives
// up after the configured timeout. Errors match ErrCodeRejected (Casdoor
// refused the code) or ErrCasdoorUnavailable (anything else, including a
// cancelled ctx, which also matches ctx.Err()); they never contain a token,
// the code or the client secret.
func (c *Casdoor) Exchange(ctx context.Context, code, redirectURI, verifier string) (*CasdoorTokens, error) {
	if code == "" {
		return nil, fmt.Errorf("%w: empty code", ErrCodeRejected)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http)

	tok, err := c.oauth.Exchange(ctx, code,
		oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("redirect_uri", redirectURI),
	)
	if err != nil {
		return nil, classifyExchangeError(ctx, err)
	}
	if strings.HasPrefix(tok.AccessToken, "error:") {
		// Older Casdoor versions answer 200 with access_token "error: …".
		return nil, fmt.Errorf("%w: casdoor answered an error", ErrCodeRejected)
	}
	out := &CasdoorTokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}
	if id, ok := tok.Extra("id_token").(string); ok {
		out.IDToken = id
	}
	return out, nil
}

// classifyExchangeError maps an oauth2 error to ErrCodeRejected or
// ErrCasdoorUnavailable with a safe reason. The oauth2 error itself is not
// wrapped: its text may echo the response body.
func classifyExchangeError(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case status >= 500 || status == http.StatusTooManyRequests:
			return fmt.Errorf("%w: status %d", ErrCasdoorUnavailable, status)
		case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden ||
			(status >= 200 && status < 300 && re.ErrorCode != ""):
			return fmt.Errorf("%w: %s", ErrCodeRejected, safeOAuthCode(re.ErrorCode))
		default:
			return fmt.Errorf("%w: unexpected status %d", ErrCasdoorUnavailable, status)
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: %w", ErrCasdoorUnavailable, ctxErr)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: timeout", ErrCasdoorUnavailable)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: connection failed", ErrCasdoorUnavailable)
	}
	return fmt.Errorf("%w: unusable token response", ErrCasdoorUnavailable)
}

// safeOAuthCode returns an RFC 6749 error code if it looks like one, so a
// hostile server cannot inject arbitrary text into our errors and logs.
func safeOAuthCode(code string) string {
	if code == "" || len(code) > 40 {
		return "oauth error"
	}
	for i := 0; i < len(code); i++ {
		if ch := code[i]; ch != '_' && (ch < 'a' || ch > 'z') {
			return "oauth error"
		}
	}
	return code
}

// Verify checks a Casdoor access or ID token (PRODUCT §3.2.1): RS256 only,
// signed by one of the configured certificates' keys, exp (required) and nbf
// with CasdoorLeeway, aud containing the client id, iss equal to the
// configured issuer, owner equal to the organisation, tokenType (and
// TokenType, if present) equal to "access-token", and a non-empty sub. Any
// failure matches ErrCasdoorToken.
func (c *Casdoor) Verify(token string) (*CasdoorIdentity, error) {
	if token == "" || len(token) > maxCasdoorTokenLen {
		return nil, casdoorTokenErr("malformed token")
	}
	claims := jwt.MapClaims{}
	parsed, err := c.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
		return c.keys, nil
	})
	if err != nil {
		return nil, casdoorTokenErr(c.classifyVerifyError(parsed, claims, err))
	}

	if !c.accessTokenType(claims) {
		return nil, casdoorTokenErr("not an access token")
	}
	if owner, _ := claims["owner"].(string); owner != c.org {
		return nil, casdoorTokenErr("wrong organisation")
	}
	sub, _ := claims["sub"].(string)
	if strings.TrimSpace(sub) == "" {
		return nil, casdoorTokenErr("missing subject")
	}
	id := &CasdoorIdentity{Subject: sub}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"email", &id.Email},
		{"name", &id.Name},
		{"displayName", &id.DisplayName},
		{"avatar", &id.Avatar},
		{"tag", &id.Tag},
	} {
		switch v := claims[f.key].(type) {
		case nil:
		case string:
			*f.dst = v
		default:
			return nil, casdoorTokenErr("malformed claim " + f.key)
		}
	}
	roles, ok := casdoorRoles(claims["roles"])
	if !ok {
		return nil, casdoorTokenErr("malformed claim roles")
	}
	id.Roles = roles
	return id, nil
}

// accessTokenType requires tokenType == "access-token", and the same of
// TokenType if that key is present too (Casdoor's refresh JWT carries
// "refresh-token" under one of them).
func (c *Casdoor) accessTokenType(claims jwt.MapClaims) bool {
	seen := false
	for _, k := range []string{"tokenType", "TokenType"} {
		v, present := claims[k]
		if !present {
			continue
		}
		if s, _ := v.(string); s != casdoorAccessTokenType {
			return false
		}
		seen = true
	}
	return seen
}

// casdoorRoles reads the roles claim: absent or null, or an array of strings
// or of objects with a string name. Other elements are skipped; a non-array
// is malformed.
func casdoorRoles(v any) ([]string, bool) {
	if v == nil {
		return nil, true
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	var out []string
	for _, e := range arr {
		switch r := e.(type) {
		case string:
			if r != "" {
				out = append(out, r)
			}
		case map[string]any:
			if name, _ := r["name"].(string); name != "" {
				out = append(out, name)
			}
		}
	}
	return out, true
}

// classifyVerifyError maps a golang-jwt error to a short safe reason.
func (c *Casdoor) classifyVerifyError(parsed *jwt.Token, claims jwt.MapClaims, err error) string {
	if parsed != nil && parsed.Header != nil {
		if alg, _ := parsed.Header["alg"].(string); alg != casdoorAlg &&
			(errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable)) {
			return "unsupported algorithm"
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid signature"
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "malformed token"
	}
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not yet valid"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case claims["exp"] == nil:
			return "missing exp"
		case claims["aud"] == nil:
			return "wrong audience"
		case claims["iss"] == nil:
			return "wrong issuer"
		}
		return "missing claim"
	default:
		return "malformed claims"
	}
}

func casdoorTokenErr(reason string) error { return fmt.Errorf("%w: %s", ErrCasdoorToken, reason) }

// MapRole maps a verified identity to one of our roles (PRODUCT §3.2.1
// "Role mapping"): with RoleClaimTag, the comma-separated names in the tag;
// with RoleClaimRoles, the role names. The highest-ranked exact role name
// (super_admin > admin > manager > editor > viewer > user) wins; anything
// else gives "user".
func (c *Casdoor) MapRole(id *CasdoorIdentity) string {
	if id == nil {
		return string(rbac.User)
	}
	var names []string
	if c.roleClaim == RoleClaimRoles {
		names = id.Roles
	} else {
		names = strings.Split(id.Tag, ",")
	}
	best := rbac.User
	for _, n := range names {
		r, ok := rbac.ParseRole(strings.TrimSpace(n))
		if ok && rbac.Rank(r) > rbac.Rank(best) {
			best = r
		}
	}
	return string(best)
}

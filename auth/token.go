package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// MinSecretLen is the minimum length, in bytes, of the HS256 secret.
	MinSecretLen = 32

	// ClockSkew is the leeway applied when verifying the time claims: a
	// token is still accepted up to 30 s after its exp, and an iat or nbf up
	// to 30 s in the future is tolerated. No other leeway is applied.
	ClockSkew = 30 * time.Second

	// TokenType is the JOSE header typ of our access tokens (RFC 9068).
	TokenType = "at+jwt"

	// TokenUseAccess is the value of the token_use claim of access tokens.
	TokenUseAccess = "access"

	// maxTokenLen bounds the input of Verify; our tokens are a few hundred
	// bytes, so anything much larger is rejected before any decoding.
	maxTokenLen = 4096

	signingAlg = "HS256"
)

// ErrInvalidToken is matched (errors.Is) by every error Verify returns.
var ErrInvalidToken = errors.New("invalid token")

// Reasons carried by TokenError. They are short, fixed, safe to show to a
// client or to log, and never contain the token.
const (
	reasonExpired     = "token expired"
	reasonNotYetValid = "token not yet valid"
	reasonSignature   = "invalid signature"
	reasonIssuer      = "wrong issuer"
	reasonAudience    = "wrong audience"
	reasonNotAccess   = "not an access token"
	reasonMalformed   = "malformed token"
	reasonAlgorithm   = "unsupported algorithm"
	reasonType        = "wrong token type"
	reasonSubject     = "invalid subject"
)

// TokenError is the error returned by Verify for any rejected token.
// Reason is a short human-readable text that never contains the token.
// errors.Is(err, ErrInvalidToken) holds for every *TokenError.
type TokenError struct {
	Reason string
}

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidToken) true.
func (e *TokenError) Unwrap() error { return ErrInvalidToken }

func tokenErr(reason string) *TokenError { return &TokenError{Reason: reason} }

// TokenConfig configures the access-token issuer/verifier.
type TokenConfig struct {
	// Secret is the HS256 key (SECRET_KEY); at least MinSecretLen bytes.
	Secret []byte
	// Issuer is the iss claim (JWT_ISSUER, e.g. "wataomi-api").
	Issuer string
	// Audience is the aud claim (JWT_AUDIENCE, e.g. "wataomi-web").
	Audience string
	// TTL is the default lifetime (ACCESS_TOKEN_EXPIRE_MINUTES).
	TTL time.Duration
}

// AccessClaims are the verified claims of an access token.
type AccessClaims struct {
	UserID    int64
	Role      string // informational; authorisation uses the DB role
	JTI       string
	SID       string // refresh family id
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Tokens issues and verifies our HS256 access tokens. It is safe for
// concurrent use.
type Tokens struct {
	secret   []byte
	issuer   string
	audience string
	ttl      time.Duration
	parser   *jwt.Parser
	now      func() time.Time // replaced in tests
}

// NewTokens validates cfg and returns a Tokens. The secret is copied.
func NewTokens(cfg TokenConfig) (*Tokens, error) {
	switch {
	case len(cfg.Secret) < MinSecretLen:
		return nil, fmt.Errorf("auth: token secret must be at least %d bytes, got %d", MinSecretLen, len(cfg.Secret))
	case cfg.Issuer == "":
		return nil, errors.New("auth: token issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("auth: token audience is required")
	case cfg.TTL <= 0:
		return nil, errors.New("auth: token TTL must be positive")
	}
	t := &Tokens{
		secret:   append([]byte(nil), cfg.Secret...),
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		ttl:      cfg.TTL,
		now:      time.Now,
	}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{signingAlg}),
		jwt.WithStrictDecoding(),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(ClockSkew),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	)
	return t, nil
}

// Issue mints an access token for userID. An empty sid gets a fresh random
// family id (tokens minted outside a login, e.g. by the CLI, form their own
// family). ttl 0 means the configured TTL.
func (t *Tokens) Issue(userID int64, role string, sid string, ttl time.Duration) (string, AccessClaims, error) {
	if userID <= 0 {
		return "", AccessClaims{}, errors.New("auth: user id must be positive")
	}
	if ttl < 0 {
		return "", AccessClaims{}, errors.New("auth: negative token TTL")
	}
	if ttl == 0 {
		ttl = t.ttl
	}
	jti, err := randomID()
	if err != nil {
		return "", AccessClaims{}, err
	}
	if sid == "" {
		if sid, err = randomID(); err != nil {
			return "", AccessClaims{}, err
		}
	}
	iat := t.now().Truncate(time.Second)
	exp := iat.Add(ttl).Truncate(time.Second)
	if !exp.After(iat) {
		return "", AccessClaims{}, errors.New("auth: token TTL must be at least one second")
	}

	// MapClaims so that aud is a single string (ClaimStrings would marshal
	// as an array by default).
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":       strconv.FormatInt(userID, 10),
		"role":      role,
		"jti":       jti,
		"sid":       sid,
		"iat":       iat.Unix(),
		"exp":       exp.Unix(),
		"iss":       t.issuer,
		"aud":       t.audience,
		"token_use": TokenUseAccess,
	})
	tok.Header["typ"] = TokenType
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", AccessClaims{}, fmt.Errorf("auth: sign access token: %w", err)
	}
	return s, AccessClaims{
		UserID:    userID,
		Role:      role,
		JTI:       jti,
		SID:       sid,
		IssuedAt:  iat,
		ExpiresAt: exp,
	}, nil
}

// verifyClaims is the decoding target of Verify. aud is decoded as
// jwt.ClaimStrings, so both a string and an array are accepted.
type verifyClaims struct {
	jwt.RegisteredClaims
	Role     string `json:"role"`
	SID      string `json:"sid"`
	TokenUse string `json:"token_use"`
}

// Verify checks token and returns its claims. It accepts only HS256 with our
// secret, header typ "at+jwt", a present exp not passed (ClockSkew leeway),
// iat/nbf not in the future (ClockSkew leeway), iss equal to ours, aud
// containing ours, token_use "access", sub a positive decimal int64, and
// non-empty jti and sid. Any rejection is a *TokenError matching
// ErrInvalidToken. Revocation (jti/sid) and the user lookup are the caller's
// job.
func (t *Tokens) Verify(token string) (AccessClaims, error) {
	if token == "" || len(token) > maxTokenLen {
		return AccessClaims{}, tokenErr(reasonMalformed)
	}
	var c verifyClaims
	parsed, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		return t.secret, nil
	})
	if err != nil {
		return AccessClaims{}, t.classify(parsed, &c, err)
	}

	if typ, _ := parsed.Header["typ"].(string); typ != TokenType {
		return AccessClaims{}, tokenErr(reasonType)
	}
	if c.TokenUse != TokenUseAccess {
		return AccessClaims{}, tokenErr(reasonNotAccess)
	}
	uid, ok := parseUserID(c.Subject)
	if !ok {
		return AccessClaims{}, tokenErr(reasonSubject)
	}
	if c.ID == "" || c.SID == "" || c.IssuedAt == nil || c.ExpiresAt == nil {
		return AccessClaims{}, tokenErr(reasonMalformed)
	}
	return AccessClaims{
		UserID:    uid,
		Role:      c.Role,
		JTI:       c.ID,
		SID:       c.SID,
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

// classify maps a golang-jwt error to a safe TokenError. The jwt error itself
// is dropped so no detail about the input leaks. c is only consulted once
// the signature has been verified (jwt.ErrTokenInvalidClaims).
func (t *Tokens) classify(parsed *jwt.Token, c *verifyClaims, err error) *TokenError {
	// A header that names an algorithm other than HS256 (including "none"
	// and unknown ones) is reported as such.
	if parsed != nil && parsed.Header != nil {
		if alg, ok := parsed.Header["alg"].(string); ok && alg != signingAlg &&
			(errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable)) {
			return tokenErr(reasonAlgorithm)
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return tokenErr(reasonMalformed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return tokenErr(reasonSignature)
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return tokenErr(reasonMalformed) // unverifiable, e.g. no alg
	}
	// Signature verified; one or more claim checks failed (joined errors).
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return tokenErr(reasonExpired)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer) || c.Issuer != t.issuer:
		return tokenErr(reasonIssuer) // wrong or missing iss
	case errors.Is(err, jwt.ErrTokenInvalidAudience) || !slices.Contains(c.Audience, t.audience):
		return tokenErr(reasonAudience) // wrong or missing aud
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return tokenErr(reasonNotYetValid)
	default: // missing exp or iat, bad claim types, …
		return tokenErr(reasonMalformed)
	}
}

// parseUserID accepts only a canonical positive decimal int64: digits only,
// no sign, no leading zero.
func parseUserID(s string) (int64, bool) {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// randomID returns 128 random bits, base64url without padding (22 chars).
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Package casdoortest is a fake Casdoor for tests. It speaks Casdoor's wire
// format for the authorization-code exchange
// (POST /api/login/oauth/access_token with a form body) and mints RS256 JWTs
// whose claims look like a real Casdoor's: owner, name, displayName, email,
// avatar, tag, roles as objects [{name}], sub = id = a UUID, aud = [client
// id], iss = the fake's URL, tokenType "access-token" (the refresh JWT has
// "refresh-token"), exp, iat and nbf.
//
//	f := casdoortest.New(t)
//	c, _ := auth.NewCasdoor(auth.CasdoorConfig{Endpoint: f.URL, ClientID: f.ClientID,
//		ClientSecret: f.ClientSecret, OrgName: f.Org, CertificatePEM: f.CertificatePEM()})
//	code := f.IssueCode(casdoortest.User{Name: "alice", Tag: "admin"}, redirect, auth.Challenge(verifier))
//	toks, err := c.Exchange(ctx, code, redirect, verifier)
//
// It does not import package auth, so auth's own tests can use it.
package casdoortest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of a new Fake.
const (
	DefaultClientID = "wataomi-test-client"
	DefaultOrg      = "wataomi"
	DefaultTokenTTL = time.Hour
	// KeyID is the kid header of the fake's tokens (Casdoor's default cert name).
	KeyID = "cert-built-in"
	// CodeTTL is how long an issued code can be exchanged.
	CodeTTL = 5 * time.Minute
)

// keys are generated once per process: RSA key generation is slow.
type keyPair struct {
	key     *rsa.PrivateKey
	certPEM string
}

var (
	mainKey, otherKey = sync.OnceValue(newKeyPair), sync.OnceValue(newKeyPair)
)

func newKeyPair() keyPair {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("casdoortest: generate RSA key: " + err.Error())
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "casdoortest", Organization: []string{"casdoortest"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(20 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic("casdoortest: create certificate: " + err.Error())
	}
	return keyPair{key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// OtherCertificatePEM returns a certificate for a key the fakes do not sign
// with (useful to configure a rotation: both PEMs concatenated).
func OtherCertificatePEM() string { return otherKey().certPEM }

// User is the identity behind an issued code or a minted token.
type User struct {
	Sub         string // the Casdoor user id; empty: a UUID derived from Org and Name
	Name        string // login name
	DisplayName string
	Email       string
	Avatar      string
	Tag         string
	Roles       []string // emitted as objects [{owner, name, displayName}]
}

// Option configures a Fake.
type Option func(*Fake)

// WithClientID sets the application's client id (default DefaultClientID).
func WithClientID(id string) Option { return func(f *Fake) { f.ClientID = id } }

// WithClientSecret sets the client secret (default: random).
func WithClientSecret(s string) Option { return func(f *Fake) { f.ClientSecret = s } }

// WithOrg sets the organisation, the tokens' owner claim (default DefaultOrg).
func WithOrg(org string) Option { return func(f *Fake) { f.Org = org } }

// WithTokenTTL sets the lifetime of minted access tokens (default DefaultTokenTTL).
func WithTokenTTL(d time.Duration) Option { return func(f *Fake) { f.ttl = d } }

// WithoutIDToken makes the exchange answer without an id_token.
func WithoutIDToken() Option { return func(f *Fake) { f.noIDToken = true } }

// Fake is a running fake Casdoor. Its methods are safe for concurrent use.
type Fake struct {
	URL          string // base URL, also the iss claim
	ClientID     string
	ClientSecret string
	Org          string

	srv       *httptest.Server
	ttl       time.Duration
	noIDToken bool
	requests  atomic.Int64
	down      atomic.Bool
	drop      atomic.Bool
	delay     atomic.Int64 // nanoseconds

	mu    sync.Mutex
	codes map[string]*issuedCode
}

type issuedCode struct {
	user        User
	redirectURI string
	challenge   string
	expires     time.Time
	used        bool
}

// New starts a fake Casdoor; it is closed by t.Cleanup.
func New(t testing.TB, opts ...Option) *Fake {
	t.Helper()
	f := &Fake{
		ClientID:     DefaultClientID,
		ClientSecret: randomString(24),
		Org:          DefaultOrg,
		ttl:          DefaultTokenTTL,
		codes:        map[string]*issuedCode{},
	}
	for _, o := range opts {
		o(f)
	}
	mainKey() // generate before serving
	mux := http.NewServeMux()
	mux.HandleFunc("/api/login/oauth/access_token", f.handleToken)
	f.srv = httptest.NewServer(f.wrap(mux))
	f.URL = f.srv.URL
	t.Cleanup(f.Close)
	return f
}

// Close stops the server (also done by t.Cleanup). A closed fake refuses
// connections.
func (f *Fake) Close() { f.srv.Close() }

// CertificatePEM returns the self-signed X.509 certificate (PEM) of the key
// that signs the fake's tokens: the value of CASDOOR_CERTIFICATE.
func (f *Fake) CertificatePEM() string { return mainKey().certPEM }

// Requests returns how many HTTP requests the fake has received.
func (f *Fake) Requests() int { return int(f.requests.Load()) }

// SetDown makes every request get 503 (true) or be served normally (false).
func (f *Fake) SetDown(down bool) { f.down.Store(down) }

// SetDropConnections makes the fake close every connection without an
// answer (true), as a crashed Casdoor would.
func (f *Fake) SetDropConnections(drop bool) { f.drop.Store(drop) }

// SetDelay delays every answer by d (or until the client gives up).
func (f *Fake) SetDelay(d time.Duration) { f.delay.Store(int64(d)) }

func (f *Fake) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if d := time.Duration(f.delay.Load()); d > 0 {
			// Read the body first: only then does the server notice a client
			// that hangs up, and cancel r.Context().
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(bytes.NewReader(body))
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if f.drop.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if f.down.Load() {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// IssueCode registers a one-time authorization code for u, bound to
// redirectURI and to the S256 codeChallenge (empty: no PKCE). The exchange
// must present the same redirect_uri and a code_verifier whose S256 is the
// challenge, else it gets invalid_grant. A code works once and for CodeTTL.
func (f *Fake) IssueCode(u User, redirectURI, codeChallenge string) string {
	code := randomString(20)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[code] = &issuedCode{user: u, redirectURI: redirectURI, challenge: codeChallenge, expires: time.Now().Add(CodeTTL)}
	return code
}

// UserClaims returns the claims of an access token for u as the fake mints
// them (fresh iat/nbf/exp, a new jti). Tests may alter them and sign the
// result with SignToken.
func (f *Fake) UserClaims(u User) map[string]any {
	now := time.Now()
	sub := u.Sub
	if sub == "" {
		sub = nameUUID(f.Org + "/" + u.Name)
	}
	roles := make([]any, 0, len(u.Roles))
	for _, r := range u.Roles {
		roles = append(roles, map[string]any{"owner": f.Org, "name": r, "displayName": r})
	}
	return map[string]any{
		"owner":       f.Org,
		"name":        u.Name,
		"createdTime": now.Add(-24 * time.Hour).UTC().Format(time.RFC3339),
		"id":          sub,
		"type":        "normal-user",
		"displayName": u.DisplayName,
		"avatar":      u.Avatar,
		"email":       u.Email,
		"tag":         u.Tag,
		"roles":       roles,
		"permissions": []any{},
		"groups":      []any{},
		"isAdmin":     false,
		"tokenType":   "access-token",
		"nonce":       "",
		"scope":       "openid profile email",
		"azp":         f.ClientID,
		"iss":         f.URL,
		"sub":         sub,
		"aud":         []any{f.ClientID},
		"exp":         now.Add(f.ttl).Unix(),
		"nbf":         now.Unix(),
		"iat":         now.Unix(),
		"jti":         f.Org + "/" + randomUUID(),
	}
}

// AccessToken mints a valid access token for u, as the exchange would.
func (f *Fake) AccessToken(u User) string { return f.SignToken(f.UserClaims(u)) }

// RefreshToken mints Casdoor's refresh JWT for u: the same key and claims,
// tokenType "refresh-token" and a longer lifetime.
func (f *Fake) RefreshToken(u User) string {
	c := f.UserClaims(u)
	c["tokenType"] = "refresh-token"
	c["exp"] = time.Now().Add(7 * 24 * time.Hour).Unix()
	return f.SignToken(c)
}

// SignToken signs arbitrary claims with the fake's key (RS256, kid KeyID).
func (f *Fake) SignToken(claims map[string]any) string { return sign(mainKey().key, claims) }

// OtherKeyToken signs claims with a key that is not the fake's.
func (f *Fake) OtherKeyToken(claims map[string]any) string { return sign(otherKey().key, claims) }

// SignTokenWithMethod signs claims with the fake's key and an RSA method
// other than RS256 (RS384, RS512, PS256, …), for negative tests.
func (f *Fake) SignTokenWithMethod(m jwt.SigningMethod, claims map[string]any) string {
	return signWith(m, mainKey().key, claims)
}

func sign(key *rsa.PrivateKey, claims map[string]any) string {
	return signWith(jwt.SigningMethodRS256, key, claims)
}

func signWith(m jwt.SigningMethod, key *rsa.PrivateKey, claims map[string]any) string {
	tok := jwt.NewWithClaims(m, jwt.MapClaims(claims))
	tok.Header["kid"] = KeyID
	s, err := tok.SignedString(key)
	if err != nil {
		panic("casdoortest: sign: " + err.Error())
	}
	return s
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (f *Fake) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	form := r.PostForm
	clientID, clientSecret := form.Get("client_id"), form.Get("client_secret")
	if id, secret, ok := r.BasicAuth(); ok {
		clientID, clientSecret = id, secret
	}
	if form.Get("grant_type") != "authorization_code" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code")
		return
	}
	if clientID != f.ClientID || subtle.ConstantTimeCompare([]byte(clientSecret), []byte(f.ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client_id or client_secret is wrong")
		return
	}

	f.mu.Lock()
	c, ok := f.codes[form.Get("code")]
	switch {
	case !ok:
		f.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "authorization code is invalid")
		return
	case c.used:
		f.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "authorization code has been used")
		return
	case time.Now().After(c.expires):
		f.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "authorization code has expired")
		return
	case form.Get("redirect_uri") != c.redirectURI:
		f.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match")
		return
	case c.challenge != "" && s256(form.Get("code_verifier")) != c.challenge:
		f.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match code_challenge")
		return
	}
	c.used = true
	u := c.user
	f.mu.Unlock()

	access := f.AccessToken(u)
	resp := tokenResponse{
		AccessToken:  access,
		RefreshToken: f.RefreshToken(u),
		TokenType:    "Bearer",
		ExpiresIn:    int64(f.ttl / time.Second),
		Scope:        "openid profile email",
	}
	if !f.noIDToken {
		resp.IDToken = access // Casdoor's id_token carries the same claims
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return formatUUID(b)
}

// nameUUID derives a stable UUID (version 5 layout) from s, so the same
// user name gets the same sub across logins.
func nameUUID(s string) string {
	sum := sha1.Sum([]byte("casdoortest:" + s))
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	h := fmt.Sprintf("%x", b[:])
	return strings.Join([]string{h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]}, "-")
}

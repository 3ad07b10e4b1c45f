package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wataomi/wataomi/auth/casdoortest"
)

const testRedirect = "http://localhost:3000/auth/callback"

func casdoorConfig(f *casdoortest.Fake) CasdoorConfig {
	return CasdoorConfig{
		Endpoint:       f.URL,
		ClientID:       f.ClientID,
		ClientSecret:   f.ClientSecret,
		OrgName:        f.Org,
		AppName:        "wataomi-app",
		CertificatePEM: f.CertificatePEM(),
	}
}

func newTestCasdoor(t *testing.T, f *casdoortest.Fake, mutate func(*CasdoorConfig)) *Casdoor {
	t.Helper()
	cfg := casdoorConfig(f)
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := NewCasdoor(cfg)
	if err != nil {
		t.Fatalf("NewCasdoor: %v", err)
	}
	return c
}

func selfSignedPEM(t *testing.T, pub, priv any) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestNewCasdoorConfig(t *testing.T) {
	f := casdoortest.New(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := selfSignedPEM(t, &ec.PublicKey, ec)
	smallPEM := selfSignedPEM(t, &small.PublicKey, small)
	garbage := "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
	pubKeyOnly := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")}))

	tests := []struct {
		name     string
		mutate   func(*CasdoorConfig)
		wantErr  string
		wantKeys int
	}{
		{"valid", nil, "", 1},
		{"rotation: two certificates", func(c *CasdoorConfig) { c.CertificatePEM += casdoortest.OtherCertificatePEM() }, "", 2},
		{"other PEM blocks refused", func(c *CasdoorConfig) { c.CertificatePEM = pubKeyOnly + c.CertificatePEM }, "only CERTIFICATE blocks", 0},
		{"escaped newlines", func(c *CasdoorConfig) { c.CertificatePEM = strings.ReplaceAll(c.CertificatePEM, "\n", `\n`) }, "", 1},
		{"trailing slash on endpoint", func(c *CasdoorConfig) { c.Endpoint += "/" }, "", 1},
		{"no certificate", func(c *CasdoorConfig) { c.CertificatePEM = "" }, "no PEM CERTIFICATE", 0},
		{"only a public key block", func(c *CasdoorConfig) { c.CertificatePEM = pubKeyOnly }, "only CERTIFICATE blocks", 0},
		{"unparsable certificate", func(c *CasdoorConfig) { c.CertificatePEM = garbage }, "PEM block 1 is not a valid", 0},
		{"second block unparsable", func(c *CasdoorConfig) { c.CertificatePEM += garbage }, "PEM block 2 is not a valid", 0},
		{"ECDSA certificate", func(c *CasdoorConfig) { c.CertificatePEM = ecPEM }, "needs RSA", 0},
		{"RSA 1024", func(c *CasdoorConfig) { c.CertificatePEM = smallPEM }, "1024-bit RSA key", 0},
		{"no endpoint", func(c *CasdoorConfig) { c.Endpoint = "" }, "endpoint", 0},
		{"endpoint not http", func(c *CasdoorConfig) { c.Endpoint = "ftp://x" }, "endpoint", 0},
		{"endpoint without host", func(c *CasdoorConfig) { c.Endpoint = "http://" }, "endpoint", 0},
		{"no client id", func(c *CasdoorConfig) { c.ClientID = "" }, "client id", 0},
		{"no client secret", func(c *CasdoorConfig) { c.ClientSecret = "" }, "client secret", 0},
		{"no org", func(c *CasdoorConfig) { c.OrgName = "" }, "organisation", 0},
		{"bad role claim", func(c *CasdoorConfig) { c.RoleClaim = "groups" }, "role claim", 0},
		{"negative timeout", func(c *CasdoorConfig) { c.Timeout = -time.Second }, "timeout", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := casdoorConfig(f)
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			c, err := NewCasdoor(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if cfg.ClientSecret != "" && strings.Contains(err.Error(), cfg.ClientSecret) {
					t.Fatal("error contains the client secret")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewCasdoor: %v", err)
			}
			if len(c.keys.Keys) != tt.wantKeys {
				t.Fatalf("%d keys, want %d", len(c.keys.Keys), tt.wantKeys)
			}
			if c.SDK() == nil || c.SDK().ClientId != f.ClientID || c.SDK().OrganizationName != f.Org {
				t.Fatal("SDK client not configured")
			}
		})
	}
}

func TestNewCasdoorDefaults(t *testing.T) {
	f := casdoortest.New(t)
	c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.Endpoint += "/" })
	if c.issuer != f.URL || c.timeout != DefaultCasdoorTimeout || c.roleClaim != RoleClaimTag || c.http == nil {
		t.Fatalf("defaults: issuer=%q timeout=%s roleClaim=%q", c.issuer, c.timeout, c.roleClaim)
	}
}

func TestAuthorizeURL(t *testing.T) {
	f := casdoortest.New(t)
	c := newTestCasdoor(t, f, nil)
	redirect := "https://app.example.com/auth/callback?x=1&y=a b"
	raw := c.AuthorizeURL("st/at+e=", "chal-lenge_", redirect)

	if !strings.HasPrefix(raw, f.URL+"/login/oauth/authorize?") {
		t.Fatalf("url %q does not start with the authorize endpoint", raw)
	}
	if strings.Contains(raw, " ") || strings.Contains(raw, "y=a") {
		t.Fatalf("url %q is not properly encoded", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{
		"client_id":             f.ClientID,
		"response_type":         "code",
		"redirect_uri":          redirect,
		"scope":                 "openid profile email",
		"state":                 "st/at+e=",
		"code_challenge":        "chal-lenge_",
		"code_challenge_method": "S256",
	}
	for k, v := range want {
		if got := q[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(q) != len(want) {
		t.Errorf("query has %d parameters, want %d: %v", len(q), len(want), q)
	}
}

func TestExchangeHappyPath(t *testing.T) {
	f := casdoortest.New(t)
	c := newTestCasdoor(t, f, nil)
	verifier := NewVerifier()
	user := casdoortest.User{
		Name: "alice", DisplayName: "Alice A.", Email: "alice@example.com",
		Avatar: "https://cdn.example.com/a.png", Tag: "editor", Roles: []string{"admin", "ops"},
	}
	code := f.IssueCode(user, testRedirect, Challenge(verifier))

	toks, err := c.Exchange(context.Background(), code, testRedirect, verifier)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if toks.AccessToken == "" || toks.IDToken == "" || toks.RefreshToken == "" {
		t.Fatalf("missing tokens: access=%t id=%t refresh=%t", toks.AccessToken != "", toks.IDToken != "", toks.RefreshToken != "")
	}
	for name, tok := range map[string]string{"id_token": toks.IDToken, "access_token": toks.AccessToken} {
		id, err := c.Verify(tok)
		if err != nil {
			t.Fatalf("Verify(%s): %v", name, err)
		}
		if id.Subject == "" || id.Name != "alice" || id.DisplayName != "Alice A." || id.Email != "alice@example.com" ||
			id.Avatar != "https://cdn.example.com/a.png" || id.Tag != "editor" || !slices.Equal(id.Roles, []string{"admin", "ops"}) {
			t.Fatalf("Verify(%s) = %+v", name, id)
		}
		if got := c.MapRole(id); got != "editor" {
			t.Fatalf("MapRole = %q, want editor", got)
		}
	}
	// Casdoor's refresh JWT is signed with the same key but is not an access token.
	if _, err := c.Verify(toks.RefreshToken); !errors.Is(err, ErrCasdoorToken) {
		t.Fatalf("Verify(refresh_token) = %v, want ErrCasdoorToken", err)
	}
	// The same user gets the same sub on the next login.
	v2 := NewVerifier()
	toks2, err := c.Exchange(context.Background(), f.IssueCode(user, testRedirect, Challenge(v2)), testRedirect, v2)
	if err != nil {
		t.Fatalf("second Exchange: %v", err)
	}
	id1, _ := c.Verify(toks.AccessToken)
	id2, _ := c.Verify(toks2.AccessToken)
	if id1.Subject != id2.Subject {
		t.Fatalf("sub changed between logins: %q, %q", id1.Subject, id2.Subject)
	}
}

func TestExchangeWithoutIDToken(t *testing.T) {
	f := casdoortest.New(t, casdoortest.WithoutIDToken())
	c := newTestCasdoor(t, f, nil)
	v := NewVerifier()
	toks, err := c.Exchange(context.Background(), f.IssueCode(casdoortest.User{Name: "bob"}, testRedirect, Challenge(v)), testRedirect, v)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if toks.IDToken != "" || toks.AccessToken == "" {
		t.Fatalf("IDToken=%t AccessToken=%t", toks.IDToken != "", toks.AccessToken != "")
	}
}

func TestExchangeErrors(t *testing.T) {
	user := casdoortest.User{Name: "carol"}
	tests := []struct {
		name string
		// setup returns the Casdoor to use and the code, redirect and
		// verifier to present.
		setup func(t *testing.T, f *casdoortest.Fake) (c *Casdoor, code, redirect, verifier string)
		ctx   func() (context.Context, context.CancelFunc)
		want  error
	}{
		{
			name: "wrong verifier",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				return newTestCasdoor(t, f, nil), f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, NewVerifier()
			},
			want: ErrCodeRejected,
		},
		{
			name: "no verifier",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				return newTestCasdoor(t, f, nil), f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, ""
			},
			want: ErrCodeRejected,
		},
		{
			name: "wrong redirect_uri",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				return newTestCasdoor(t, f, nil), f.IssueCode(user, testRedirect, Challenge(v)), "http://evil.example/cb", v
			},
			want: ErrCodeRejected,
		},
		{
			name: "reused code",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				c := newTestCasdoor(t, f, nil)
				v := NewVerifier()
				code := f.IssueCode(user, testRedirect, Challenge(v))
				if _, err := c.Exchange(context.Background(), code, testRedirect, v); err != nil {
					t.Fatalf("first Exchange: %v", err)
				}
				return c, code, testRedirect, v
			},
			want: ErrCodeRejected,
		},
		{
			name: "unknown code",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				return newTestCasdoor(t, f, nil), "no-such-code", testRedirect, NewVerifier()
			},
			want: ErrCodeRejected,
		},
		{
			name: "empty code",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				return newTestCasdoor(t, f, nil), "", testRedirect, NewVerifier()
			},
			want: ErrCodeRejected,
		},
		{
			name: "wrong client secret",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.ClientSecret = "wrong-secret-value" })
				return c, f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, v
			},
			want: ErrCodeRejected,
		},
		{
			name: "wrong client id",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.ClientID = "someone-else" })
				return c, f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, v
			},
			want: ErrCodeRejected,
		},
		{
			name: "down (503)",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				f.SetDown(true)
				return newTestCasdoor(t, f, nil), f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, v
			},
			want: ErrCasdoorUnavailable,
		},
		{
			name: "connections dropped",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				f.SetDropConnections(true)
				return newTestCasdoor(t, f, nil), f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, v
			},
			want: ErrCasdoorUnavailable,
		},
		{
			name: "server closed",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				code := f.IssueCode(user, testRedirect, Challenge(v))
				f.Close()
				return newTestCasdoor(t, f, nil), code, testRedirect, v
			},
			want: ErrCasdoorUnavailable,
		},
		{
			name: "timeout",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				f.SetDelay(5 * time.Second)
				c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.Timeout = 100 * time.Millisecond })
				return c, f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, v
			},
			want: ErrCasdoorUnavailable,
		},
		{
			name: "caller cancelled",
			setup: func(t *testing.T, f *casdoortest.Fake) (*Casdoor, string, string, string) {
				v := NewVerifier()
				return newTestCasdoor(t, f, nil), f.IssueCode(user, testRedirect, Challenge(v)), testRedirect, v
			},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: ErrCasdoorUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := casdoortest.New(t)
			c, code, redirect, verifier := tt.setup(t, f)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			toks, err := c.Exchange(ctx, code, redirect, verifier)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Exchange = %v, %v; want %v", toks, err, tt.want)
			}
			if errors.Is(err, ErrCodeRejected) && errors.Is(err, ErrCasdoorUnavailable) {
				t.Fatal("error matches both sentinels")
			}
			msg := err.Error()
			for _, secret := range []string{f.ClientSecret, verifier, code} {
				if len(secret) > 4 && strings.Contains(msg, secret) {
					t.Fatalf("error %q leaks a secret", msg)
				}
			}
		})
	}
}

// TestExchangeResponses covers answers the fake never gives.
func TestExchangeResponses(t *testing.T) {
	f := casdoortest.New(t) // for the certificate
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   error
	}{
		{"200 with error: access token (old Casdoor)", 200, "application/json", `{"access_token":"error: invalid code","token_type":"Bearer"}`, ErrCodeRejected},
		{"200 with error field", 200, "application/json", `{"error":"invalid_grant","error_description":"bad"}`, ErrCodeRejected},
		{"400 invalid_grant", 400, "application/json", `{"error":"invalid_grant","error_description":"Invalid code"}`, ErrCodeRejected},
		{"401 invalid_client", 401, "application/json", `{"error":"invalid_client"}`, ErrCodeRejected},
		{"400 without JSON", 400, "text/html", `<html>bad</html>`, ErrCodeRejected},
		{"500", 500, "application/json", `{"error":"server_error"}`, ErrCasdoorUnavailable},
		{"502 html", 502, "text/html", `<html>bad gateway</html>`, ErrCasdoorUnavailable},
		{"429", 429, "application/json", `{}`, ErrCasdoorUnavailable},
		{"404", 404, "text/plain", `not found`, ErrCasdoorUnavailable},
		{"200 garbage", 200, "application/json", `not json`, ErrCasdoorUnavailable},
		{"200 without access_token", 200, "application/json", `{"token_type":"Bearer"}`, ErrCasdoorUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.Endpoint = srv.URL })
			_, err := c.Exchange(context.Background(), "code", testRedirect, NewVerifier())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Exchange error = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "invalid code") || strings.Contains(err.Error(), "<html>") {
				t.Fatalf("error %q echoes the response body", err)
			}
		})
	}
}

func TestExchangeSendsWireFormat(t *testing.T) {
	var got url.Values
	var path, ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ctype = r.URL.Path, r.Header.Get("Content-Type")
		_ = r.ParseForm()
		got = r.PostForm
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"a.b.c","id_token":"d.e.f","refresh_token":"g.h.i","token_type":"Bearer","expires_in":3600}`))
	}))
	defer srv.Close()
	f := casdoortest.New(t)
	c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.Endpoint = srv.URL })
	toks, err := c.Exchange(context.Background(), "the-code", testRedirect, "the-verifier")
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if *toks != (CasdoorTokens{AccessToken: "a.b.c", IDToken: "d.e.f", RefreshToken: "g.h.i"}) {
		t.Fatalf("tokens = %+v", toks)
	}
	if path != "/api/login/oauth/access_token" || !strings.HasPrefix(ctype, "application/x-www-form-urlencoded") {
		t.Fatalf("path %q content type %q", path, ctype)
	}
	want := map[string]string{
		"grant_type":    "authorization_code",
		"client_id":     f.ClientID,
		"client_secret": f.ClientSecret,
		"code":          "the-code",
		"redirect_uri":  testRedirect,
		"code_verifier": "the-verifier",
	}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("form %s = %q, want %q", k, got.Get(k), v)
		}
	}
}

func TestExchangeUsesConfiguredHTTPClient(t *testing.T) {
	f := casdoortest.New(t)
	var used bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.HTTPClient = hc })
	v := NewVerifier()
	if _, err := c.Exchange(context.Background(), f.IssueCode(casdoortest.User{Name: "d"}, testRedirect, Challenge(v)), testRedirect, v); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if !used {
		t.Fatal("the configured HTTP client was not used")
	}
	if f.Requests() != 1 {
		t.Fatalf("fake saw %d requests, want 1", f.Requests())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestCasdoorVerify(t *testing.T) {
	f := casdoortest.New(t)
	c := newTestCasdoor(t, f, nil)
	user := casdoortest.User{Name: "erin", Email: "erin@example.com", Tag: "viewer", Roles: []string{"editor"}}
	now := time.Now()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	claims := func(mod func(m map[string]any)) map[string]any {
		m := f.UserClaims(user)
		if mod != nil {
			mod(m)
		}
		return m
	}
	signed := func(mod func(m map[string]any)) string { return f.SignToken(claims(mod)) }

	tests := []struct {
		name   string
		token  string
		reason string // "" = accepted
	}{
		{"valid", signed(nil), ""},
		{"aud as a string", signed(func(m map[string]any) { m["aud"] = f.ClientID }), ""},
		{"aud among others", signed(func(m map[string]any) { m["aud"] = []any{"x", f.ClientID} }), ""},
		{"expired within leeway", signed(func(m map[string]any) { m["exp"] = now.Add(-30 * time.Second).Unix() }), ""},
		{"nbf within leeway", signed(func(m map[string]any) { m["nbf"] = now.Add(30 * time.Second).Unix() }), ""},
		{"no nbf", signed(func(m map[string]any) { delete(m, "nbf") }), ""},
		{"roles as strings", signed(func(m map[string]any) { m["roles"] = []any{"editor"} }), ""},
		{"roles null", signed(func(m map[string]any) { m["roles"] = nil }), ""},
		{"isAdmin ignored", signed(func(m map[string]any) { m["isAdmin"] = true }), ""},
		{"TokenType key also access-token", signed(func(m map[string]any) { m["TokenType"] = "access-token" }), ""},

		{"other key", f.OtherKeyToken(claims(nil)), "invalid signature"},
		{"wrong aud", signed(func(m map[string]any) { m["aud"] = []any{"other-client"} }), "wrong audience"},
		{"missing aud", signed(func(m map[string]any) { delete(m, "aud") }), "wrong audience"},
		{"wrong iss", signed(func(m map[string]any) { m["iss"] = "https://evil.example" }), "wrong issuer"},
		{"missing iss", signed(func(m map[string]any) { delete(m, "iss") }), "wrong issuer"},
		{"wrong owner", signed(func(m map[string]any) { m["owner"] = "other-org" }), "wrong organisation"},
		{"missing owner", signed(func(m map[string]any) { delete(m, "owner") }), "wrong organisation"},
		{"refresh JWT", f.RefreshToken(user), "not an access token"},
		{"refresh in TokenType key", signed(func(m map[string]any) { delete(m, "tokenType"); m["TokenType"] = "refresh-token" }), "not an access token"},
		{"access tokenType but refresh TokenType", signed(func(m map[string]any) { m["TokenType"] = "refresh-token" }), "not an access token"},
		{"no tokenType", signed(func(m map[string]any) { delete(m, "tokenType") }), "not an access token"},
		{"tokenType not a string", signed(func(m map[string]any) { m["tokenType"] = 1 }), "not an access token"},
		{"expired beyond leeway", signed(func(m map[string]any) { m["exp"] = now.Add(-90 * time.Second).Unix() }), "token expired"},
		{"nbf beyond leeway", signed(func(m map[string]any) { m["nbf"] = now.Add(90 * time.Second).Unix() }), "not yet valid"},
		{"no exp", signed(func(m map[string]any) { delete(m, "exp") }), "missing exp"},
		{"missing sub", signed(func(m map[string]any) { delete(m, "sub") }), "missing subject"},
		{"empty sub", signed(func(m map[string]any) { m["sub"] = "" }), "missing subject"},
		{"email not a string", signed(func(m map[string]any) { m["email"] = 5 }), "malformed claim email"},
		{"roles not an array", signed(func(m map[string]any) { m["roles"] = "admin" }), "malformed claim roles"},
		{"alg none", noneToken(t, claims(nil)), "unsupported algorithm"},
		{"HS256 with the certificate bytes", hmacToken(t, claims(nil), []byte(f.CertificatePEM())), "unsupported algorithm"},
		{"RS512 with the right key", f.SignTokenWithMethod(jwt.SigningMethodRS512, claims(nil)), "unsupported algorithm"},
		{"PS256 with the right key", f.SignTokenWithMethod(jwt.SigningMethodPS256, claims(nil)), "unsupported algorithm"},
		{"ES256", ecToken(t, claims(nil), ecKey), "unsupported algorithm"},
		{"garbage", "not.a.jwt", "malformed token"},
		{"empty", "", "malformed token"},
		{"too long", strings.Repeat("a", maxCasdoorTokenLen+1), "malformed token"},
		{"tampered payload", tamper(signed(nil)), "invalid signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := c.Verify(tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if id.Subject == "" || id.Name != "erin" || id.Email != "erin@example.com" || id.Tag != "viewer" {
					t.Fatalf("identity = %+v", id)
				}
				return
			}
			if !errors.Is(err, ErrCasdoorToken) {
				t.Fatalf("Verify = %+v, %v; want ErrCasdoorToken", id, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %q, want reason %q", err, tt.reason)
			}
			if len(tt.token) > 10 && strings.Contains(err.Error(), tt.token[:10]) {
				t.Fatalf("error %q contains the token", err)
			}
			if id != nil {
				t.Fatal("identity returned with an error")
			}
		})
	}
}

func TestCasdoorVerifyRolesShapes(t *testing.T) {
	f := casdoortest.New(t)
	c := newTestCasdoor(t, f, nil)
	tests := []struct {
		name  string
		roles any
		want  []string
	}{
		{"objects (as Casdoor sends)", []any{map[string]any{"owner": "wataomi", "name": "admin"}, map[string]any{"name": "ops"}}, []string{"admin", "ops"}},
		{"strings", []any{"manager", "viewer"}, []string{"manager", "viewer"}},
		{"mixed, odd elements skipped", []any{"editor", map[string]any{"name": 3}, 7, map[string]any{"displayName": "x"}, ""}, []string{"editor"}},
		{"empty", []any{}, nil},
		{"absent", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.UserClaims(casdoortest.User{Name: "r"})
			if tt.roles == nil {
				delete(m, "roles")
			} else {
				m["roles"] = tt.roles
			}
			id, err := c.Verify(f.SignToken(m))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !slices.Equal(id.Roles, tt.want) {
				t.Fatalf("Roles = %q, want %q", id.Roles, tt.want)
			}
		})
	}
}

func TestCasdoorVerifyRotationAndIssuer(t *testing.T) {
	f := casdoortest.New(t)
	// Both the current and a rotated-in key verify.
	c := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.CertificatePEM = casdoortest.OtherCertificatePEM() + c.CertificatePEM })
	for name, tok := range map[string]string{
		"current key": f.AccessToken(casdoortest.User{Name: "x"}),
		"other key":   f.OtherKeyToken(f.UserClaims(casdoortest.User{Name: "x"})),
	} {
		if _, err := c.Verify(tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An explicit issuer replaces the endpoint default.
	c2 := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.Issuer = "https://sso.example.com" })
	if _, err := c2.Verify(f.AccessToken(casdoortest.User{Name: "x"})); !errors.Is(err, ErrCasdoorToken) {
		t.Fatalf("token with iss=endpoint accepted under an explicit issuer: %v", err)
	}
	m := f.UserClaims(casdoortest.User{Name: "x"})
	m["iss"] = "https://sso.example.com"
	if _, err := c2.Verify(f.SignToken(m)); err != nil {
		t.Fatalf("token with the configured issuer: %v", err)
	}
}

func TestCasdoorMapRole(t *testing.T) {
	f := casdoortest.New(t)
	byTag := newTestCasdoor(t, f, nil)
	byRoles := newTestCasdoor(t, f, func(c *CasdoorConfig) { c.RoleClaim = RoleClaimRoles })
	tests := []struct {
		name  string
		c     *Casdoor
		tag   string
		roles []string
		want  string
	}{
		{"tag admin", byTag, "admin", nil, "admin"},
		{"tag editor,viewer", byTag, "editor,viewer", nil, "editor"},
		{"tag viewer, editor (spaces)", byTag, "viewer, editor ", nil, "editor"},
		{"tag super_admin wins", byTag, "user,super_admin,admin", nil, "super_admin"},
		{"tag manager", byTag, "manager", nil, "manager"},
		{"tag Admin (case matters)", byTag, "Admin", nil, "user"},
		{"tag unknown", byTag, "staff", nil, "user"},
		{"tag empty", byTag, "", nil, "user"},
		{"tag ignores roles", byTag, "", []string{"admin"}, "user"},
		{"tag with unknown and known", byTag, "staff,viewer", nil, "viewer"},
		{"roles admin", byRoles, "", []string{"ops", "admin"}, "admin"},
		{"roles highest", byRoles, "", []string{"viewer", "manager", "editor"}, "manager"},
		{"roles ignore tag", byRoles, "super_admin", nil, "user"},
		{"roles unknown", byRoles, "", []string{"Admin", "root"}, "user"},
		{"roles trimmed", byRoles, "", []string{" editor "}, "editor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.MapRole(&CasdoorIdentity{Subject: "s", Tag: tt.tag, Roles: tt.roles}); got != tt.want {
				t.Fatalf("MapRole = %q, want %q", got, tt.want)
			}
		})
	}
	if got := byTag.MapRole(nil); got != "user" {
		t.Fatalf("MapRole(nil) = %q", got)
	}
}

func noneToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claims)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hmacToken(t *testing.T, claims map[string]any, key []byte) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ecToken(t *testing.T, claims map[string]any, key *ecdsa.PrivateKey) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tamper replaces the payload with a re-encoded copy whose name claim was
// changed, keeping the original signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic(err)
	}
	m["name"] = "mallory"
	raw, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

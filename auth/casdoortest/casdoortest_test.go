package casdoortest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func post(t *testing.T, f *Fake, form url.Values, basic bool) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.URL+"/api/login/oauth/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(f.ClientID, f.ClientSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestTokenEndpoint(t *testing.T) {
	f := New(t, WithOrg("acme"), WithClientID("cid"))
	const redirect = "http://app/cb"
	verifier := strings.Repeat("v", 50)
	user := User{Name: "alice", Email: "a@x", Tag: "admin", Roles: []string{"r1"}}

	form := func(mod func(url.Values)) url.Values {
		v := url.Values{
			"grant_type":    {"authorization_code"},
			"client_id":     {f.ClientID},
			"client_secret": {f.ClientSecret},
			"code":          {f.IssueCode(user, redirect, s256(verifier))},
			"redirect_uri":  {redirect},
			"code_verifier": {verifier},
		}
		if mod != nil {
			mod(v)
		}
		return v
	}
	tests := []struct {
		name      string
		form      url.Values
		basic     bool
		status    int
		wantError string
	}{
		{"ok", form(nil), false, 200, ""},
		{"ok with basic auth", form(func(v url.Values) { v.Del("client_id"); v.Del("client_secret") }), true, 200, ""},
		{"wrong secret", form(func(v url.Values) { v.Set("client_secret", "x") }), false, 401, "invalid_client"},
		{"wrong client", form(func(v url.Values) { v.Set("client_id", "x") }), false, 401, "invalid_client"},
		{"wrong grant", form(func(v url.Values) { v.Set("grant_type", "password") }), false, 400, "unsupported_grant_type"},
		{"wrong verifier", form(func(v url.Values) { v.Set("code_verifier", "nope") }), false, 400, "invalid_grant"},
		{"wrong redirect", form(func(v url.Values) { v.Set("redirect_uri", "http://app/other") }), false, 400, "invalid_grant"},
		{"unknown code", form(func(v url.Values) { v.Set("code", "zzz") }), false, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, f, tt.form, tt.basic)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.wantError != "" {
				if body["error"] != tt.wantError || body["error_description"] == "" {
					t.Fatalf("body %v, want error %q", body, tt.wantError)
				}
				return
			}
			if body["token_type"] != "Bearer" || body["scope"] != "openid profile email" || body["expires_in"].(float64) <= 0 {
				t.Fatalf("body %v", body)
			}
			claims := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(body["access_token"].(string), claims, func(*jwt.Token) (any, error) {
				return &mainKey().key.PublicKey, nil
			}, jwt.WithValidMethods([]string{"RS256"})); err != nil {
				t.Fatalf("access token: %v", err)
			}
			sub, _ := claims["sub"].(string)
			if !uuidRe.MatchString(sub) || claims["id"] != sub || claims["owner"] != "acme" || claims["name"] != "alice" ||
				claims["iss"] != f.URL || claims["tokenType"] != "access-token" || claims["tag"] != "admin" {
				t.Fatalf("claims %v", claims)
			}
			if aud, _ := claims["aud"].([]any); len(aud) != 1 || aud[0] != "cid" {
				t.Fatalf("aud %v", claims["aud"])
			}
			if roles, _ := claims["roles"].([]any); len(roles) != 1 || roles[0].(map[string]any)["name"] != "r1" {
				t.Fatalf("roles %v", claims["roles"])
			}
			rc := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(body["refresh_token"].(string), rc, func(*jwt.Token) (any, error) {
				return &mainKey().key.PublicKey, nil
			}); err != nil || rc["tokenType"] != "refresh-token" {
				t.Fatalf("refresh token: %v %v", err, rc["tokenType"])
			}
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	f := New(t)
	code := f.IssueCode(User{Name: "b"}, "http://app/cb", "")
	v := url.Values{
		"grant_type": {"authorization_code"}, "client_id": {f.ClientID}, "client_secret": {f.ClientSecret},
		"code": {code}, "redirect_uri": {"http://app/cb"},
	}
	if status, body := post(t, f, v, false); status != 200 {
		t.Fatalf("first use: %d %v", status, body)
	}
	if status, body := post(t, f, v, false); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("second use: %d %v", status, body)
	}
	if f.Requests() != 2 {
		t.Fatalf("Requests = %d, want 2", f.Requests())
	}
}

func TestDownAndSubjects(t *testing.T) {
	f := New(t)
	f.SetDown(true)
	if status, _ := post(t, f, url.Values{}, false); status != http.StatusServiceUnavailable {
		t.Fatalf("down: status %d", status)
	}
	f.SetDown(false)
	if status, _ := post(t, f, url.Values{}, false); status == http.StatusServiceUnavailable {
		t.Fatal("still down")
	}
	a, b := f.UserClaims(User{Name: "x"}), f.UserClaims(User{Name: "y"})
	if a["sub"] == b["sub"] || a["sub"] != f.UserClaims(User{Name: "x"})["sub"] {
		t.Fatal("derived subs are not stable per name")
	}
	if got := f.UserClaims(User{Sub: "fixed", Name: "x"})["sub"]; got != "fixed" {
		t.Fatalf("explicit Sub ignored: %v", got)
	}
	if !uuidRe.MatchString(randomUUID()) {
		t.Fatal("randomUUID is not a v4 UUID")
	}
}

package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/auth/casdoortest"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

// Tests of Casdoor SSO, our token pair, refresh rotation, logout, the shared deny-list and the
// per-IP limiter of the public auth operations (PRODUCT §3.1, §3.2, §3.2.1, §2.3, §9.1 S1/S5/S7/S13).

const ssoCallbackURI = "https://app.example.com/auth/callback"

// ssoIP is the client address of this file's requests (through a trusted proxy): with
// TEST_REDIS_URL the per-IP counters of public operations are shared by every test server and
// outlive the run, so these tests keep out of 127.0.0.1's bucket, which the other tests count in.
var ssoIP = ssoRandomIP()

// ssoRandomIP is a fresh documentation address (2001:db8::/32).
func ssoRandomIP() string {
	return fmt.Sprintf("2001:db8:%x:%x::%x", rand.Uint32N(1<<16), rand.Uint32N(1<<16), 1+rand.Uint32N(1<<16-1))
}

// ssoQuiet lifts the per-IP limiter of public operations out of the way and trusts the loopback
// proxy, so requests count against ssoIP.
var ssoQuiet = map[string]string{"RATE_LIMIT_PUBLIC_PER_MINUTE": "1000000", "TRUSTED_PROXIES": "127.0.0.1"}

// ssoC is the generated client, from ssoIP, authenticated with token ("" for none).
func ssoC(t *testing.T, e *testEnv, token string) *api.ClientWithResponses {
	t.Helper()
	return ssoClientFrom(t, e, token, ssoIP)
}

// ssoHeader is a raw request's header, from ssoIP.
func ssoHeader(contentType string) http.Header {
	h := http.Header{"X-Forwarded-For": {ssoIP}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return h
}

// ssoEnvOf is the environment pointing the server at a given fake Casdoor.
func ssoEnvOf(f *casdoortest.Fake) map[string]string {
	return map[string]string{
		"CASDOOR_ENDPOINT": f.URL, "CASDOOR_CLIENT_ID": f.ClientID, "CASDOOR_CLIENT_SECRET": f.ClientSecret,
		"CASDOOR_ORG_NAME": f.Org, "CASDOOR_CERTIFICATE": f.CertificatePEM(),
		"FRONTEND_URL": "https://app.example.com", "CASDOOR_REDIRECT_URIS": ssoCallbackURI,
	}
}

// ssoNew is a test server signed in through a fresh fake Casdoor.
func ssoNew(t *testing.T, extra ...map[string]string) (*testEnv, *casdoortest.Fake) {
	t.Helper()
	env, f := ssoEnvWithFake(t)
	return newTestEnv(t, append([]map[string]string{env, ssoQuiet}, extra...)...), f
}

// ssoStart asks for a login URL and returns it with the PKCE challenge it carries.
func ssoStart(t *testing.T, e *testEnv, redirect *string) (api.LoginURL, string) {
	t.Helper()
	r, err := ssoC(t, e, "").GetLoginUrlWithResponse(context.Background(), &api.GetLoginUrlParams{RedirectUri: redirect})
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil {
		t.Fatalf("login url: status %d: %s", r.StatusCode(), r.Body)
	}
	return *r.JSON200, ssoChallengeOf(t, r.JSON200.Url)
}

func ssoChallengeOf(t *testing.T, authorizeURL string) string {
	t.Helper()
	u, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	ch := u.Query().Get("code_challenge")
	if ch == "" {
		t.Fatalf("no code_challenge in %s", authorizeURL)
	}
	return ch
}

func ssoCallback(t *testing.T, e *testEnv, code, state string) *api.ExchangeCodeResponse {
	t.Helper()
	r, err := ssoC(t, e, "").ExchangeCodeWithResponse(context.Background(), api.ExchangeCodeJSONRequestBody{Code: code, State: state})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ssoLogin signs u in through the API and the fake, and returns our tokens.
func ssoLogin(t *testing.T, e *testEnv, f *casdoortest.Fake, u casdoortest.User) *api.TokenResponse {
	t.Helper()
	lu, ch := ssoStart(t, e, nil)
	r := ssoCallback(t, e, f.IssueCode(u, lu.RedirectUri, ch), lu.State)
	if r.StatusCode() != http.StatusOK || r.JSON200 == nil {
		t.Fatalf("callback for %s: status %d: %s", u.Name, r.StatusCode(), r.Body)
	}
	return r.JSON200
}

func ssoRefresh(t *testing.T, e *testEnv, refresh string) *api.RefreshTokensResponse {
	t.Helper()
	r, err := ssoC(t, e, "").RefreshTokensWithResponse(context.Background(), api.RefreshTokensJSONRequestBody{RefreshToken: refresh})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ssoMe(t *testing.T, e *testEnv, access string) *api.GetMeResponse {
	t.Helper()
	r, err := ssoC(t, e, access).GetMeWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ssoProblem checks a problem response: status and slug.
func ssoProblem(t *testing.T, label string, hr *http.Response, body []byte, status int, slug string) problemBody {
	t.Helper()
	if hr.StatusCode != status {
		t.Errorf("%s: status %d, want %d: %s", label, hr.StatusCode, status, body)
		return problemBody{}
	}
	p := problemOf(t, hr, body)
	if p.Type != "urn:wataomi:problem:"+slug {
		t.Errorf("%s: type %q, want %s", label, p.Type, slug)
	}
	return p
}

type ssoCounts struct{ Users, Refresh, Audit int64 }

func ssoCount(t *testing.T, e *testEnv) ssoCounts {
	t.Helper()
	var c ssoCounts
	for _, x := range []struct {
		model any
		n     *int64
	}{{&store.User{}, &c.Users}, {&store.RefreshToken{}, &c.Refresh}, {&store.AuditLog{}, &c.Audit}} {
		if err := e.DB.Model(x.model).Count(x.n).Error; err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func ssoSameCounts(t *testing.T, label string, e *testEnv, before ssoCounts) {
	t.Helper()
	if after := ssoCount(t, e); after != before {
		t.Errorf("%s wrote rows: before %+v, after %+v", label, before, after)
	}
}

func ssoAudits(t *testing.T, e *testEnv, action string) []store.AuditLog {
	t.Helper()
	var rows []store.AuditLog
	if err := e.DB.Where("action = ?", action).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

func ssoUser(t *testing.T, e *testEnv, id int64) *store.User {
	t.Helper()
	u, err := store.GetUser(context.Background(), e.DB.DB, id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func ssoRefreshRow(t *testing.T, e *testEnv, token string) store.RefreshToken {
	t.Helper()
	sum := sha256.Sum256([]byte(token))
	var rt store.RefreshToken
	if err := e.DB.Where("token_hash = ?", hex.EncodeToString(sum[:])).Take(&rt).Error; err != nil {
		t.Fatalf("refresh token row: %v", err)
	}
	return rt
}

// ssoNoLeak checks that no secret appears in the server log or in a response body.
func ssoNoLeak(t *testing.T, e *testEnv, bodies [][]byte, secrets ...string) {
	t.Helper()
	logs := e.Logs.String()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%.12s…) appears in the server log", s)
		}
		for _, b := range bodies {
			if strings.Contains(string(b), s) {
				t.Errorf("a secret (%.12s…) appears in a response body: %s", s, b)
			}
		}
	}
}

func ssoSub(f *casdoortest.Fake, u casdoortest.User) string { return f.UserClaims(u)["sub"].(string) }

// ---------------------------------------------------------------------------
// 1. Happy path

func TestSSOLoginHappyPath(t *testing.T) {
	alt := "https://admin.example.com/sso/callback"
	e, f := ssoNew(t, map[string]string{"CASDOOR_REDIRECT_URIS": ssoCallbackURI + "," + alt})
	ctx := context.Background()
	c := ssoC(t, e, "")

	// The login URL: default redirect_uri, PKCE S256, a random state, no-store.
	r, err := c.GetLoginUrlWithResponse(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusOK {
		t.Fatalf("login url: %d %s", r.StatusCode(), r.Body)
	}
	if cc := r.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login url Cache-Control = %q, want no-store", cc)
	}
	lu := r.JSON200
	if lu.RedirectUri != ssoCallbackURI || lu.ExpiresIn != 600 {
		t.Errorf("login url: redirect_uri %q expires_in %d, want %q 600", lu.RedirectUri, lu.ExpiresIn, ssoCallbackURI)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(lu.State); err != nil || len(raw) != 32 {
		t.Errorf("state %q is not 32 random bytes in base64url (%v)", lu.State, err)
	}
	au, err := url.Parse(lu.Url)
	if err != nil {
		t.Fatal(err)
	}
	if got := au.Scheme + "://" + au.Host + au.Path; got != f.URL+"/login/oauth/authorize" {
		t.Errorf("authorize endpoint %q, want %s/login/oauth/authorize", got, f.URL)
	}
	q := au.Query()
	for k, want := range map[string]string{"client_id": f.ClientID, "response_type": "code", "redirect_uri": ssoCallbackURI,
		"scope": "openid profile email", "state": lu.State, "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			t.Errorf("authorize URL %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if raw, err := base64.RawURLEncoding.DecodeString(q.Get("code_challenge")); err != nil || len(raw) != sha256.Size {
		t.Errorf("code_challenge %q is not an S256 digest (%v)", q.Get("code_challenge"), err)
	}
	lu2, _ := ssoStart(t, e, nil)
	if lu2.State == lu.State || ssoChallengeOf(t, lu2.Url) == q.Get("code_challenge") {
		t.Error("two login URLs share a state or a PKCE challenge")
	}

	// redirect_uri from the allow-list only.
	r2, err := c.GetLoginUrlWithResponse(ctx, &api.GetLoginUrlParams{RedirectUri: &alt})
	if err != nil {
		t.Fatal(err)
	}
	if r2.StatusCode() != http.StatusOK || r2.JSON200.RedirectUri != alt {
		t.Fatalf("allowed redirect_uri: %d %s", r2.StatusCode(), r2.Body)
	}
	if got := ssoMustQuery(t, r2.JSON200.Url).Get("redirect_uri"); got != alt {
		t.Errorf("authorize URL redirect_uri = %q, want %q", got, alt)
	}
	for _, bad := range []string{"https://evil.example.com/auth/callback", ssoCallbackURI + "/", "https://app.example.com/auth/callback?x=1"} {
		r3, err := c.GetLoginUrlWithResponse(ctx, &api.GetLoginUrlParams{RedirectUri: &bad})
		if err != nil {
			t.Fatal(err)
		}
		p := ssoProblem(t, "redirect_uri "+bad, r3.HTTPResponse, r3.Body, http.StatusUnprocessableEntity, "unprocessable")
		if len(p.Errors) != 1 || p.Errors[0].Pointer != "#/query/redirect_uri" {
			t.Errorf("redirect_uri %s: errors %+v, want one at #/query/redirect_uri", bad, p.Errors)
		}
	}

	// The callback, on the alternative redirect_uri: the stored one is what is exchanged.
	cu := casdoortest.User{Name: "alice", DisplayName: "Alice Liddell", Email: "alice@example.com",
		Avatar: "https://cdn.example.com/alice.png", Tag: "editor"}
	code := f.IssueCode(cu, alt, ssoChallengeOf(t, r2.JSON200.Url))
	before := ssoCount(t, e)
	cb := ssoCallback(t, e, code, r2.JSON200.State)
	if cb.StatusCode() != http.StatusOK {
		t.Fatalf("callback: %d %s", cb.StatusCode(), cb.Body)
	}
	if cc := cb.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("callback Cache-Control = %q, want no-store", cc)
	}
	for _, hr := range []*http.Response{r.HTTPResponse, cb.HTTPResponse} {
		if hr.Header.Get("X-Content-Type-Options") != "nosniff" || hr.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: security headers %v", hr.Request.URL.Path, hr.Header)
		}
	}
	tr := cb.JSON200
	if tr.TokenType != api.Bearer {
		t.Errorf("token_type %q", tr.TokenType)
	}
	if tr.ExpiresIn < 1790 || tr.ExpiresIn > 1800 {
		t.Errorf("expires_in %d, want about 1800", tr.ExpiresIn)
	}
	if tr.RefreshExpiresIn != 7*24*3600 {
		t.Errorf("refresh_expires_in %d, want 7 days", tr.RefreshExpiresIn)
	}
	rest, ok := strings.CutPrefix(tr.RefreshToken, "wtr_")
	if raw, err := base64.RawURLEncoding.DecodeString(rest); !ok || err != nil || len(raw) != 32 {
		t.Errorf("refresh token is not wtr_ + 32 random bytes: %q", tr.RefreshToken)
	}
	claims, err := e.Tokens.Verify(tr.AccessToken)
	if err != nil {
		t.Fatalf("our access token does not verify: %v", err)
	}
	me := tr.User
	if claims.UserID != me.Id || claims.Role != "editor" || claims.SID == "" {
		t.Errorf("access claims %+v for user %d", claims, me.Id)
	}
	if me.Role != api.UserRole("editor") || me.Email != cu.Email || me.Name != cu.DisplayName || !me.IsActive {
		t.Errorf("user %+v", me)
	}
	if v, err := me.ExternalId.Get(); err != nil || v != ssoSub(f, cu) {
		t.Errorf("external_id %v, want the Casdoor sub %s", v, ssoSub(f, cu))
	}
	if v, err := me.AvatarUrl.Get(); err != nil || v != cu.Avatar {
		t.Errorf("avatar_url %v", v)
	}
	if _, err := me.LastLoginAt.Get(); err != nil {
		t.Error("last_login_at is not set")
	}
	ssoCheckPerms(t, "login", me.Permissions, rbac.Editor)
	if me.Auth.Type != api.MeAuthType("user") || me.Auth.TokenId.IsSpecified() && !me.Auth.TokenId.IsNull() {
		t.Errorf("auth %+v", me.Auth)
	}

	// Rows: one user, one refresh token stored as its SHA-256 only, one audit row.
	after := ssoCount(t, e)
	if after.Users != before.Users+1 || after.Refresh != before.Refresh+1 || after.Audit != before.Audit+1 {
		t.Errorf("login wrote %+v → %+v, want one user, one refresh token, one audit row", before, after)
	}
	rt := ssoRefreshRow(t, e, tr.RefreshToken)
	if rt.UserID != me.Id || rt.FamilyID != claims.SID || rt.UsedAt != nil || rt.RevokedAt != nil {
		t.Errorf("refresh row %+v", rt)
	}
	if d := rt.ExpiresAt.Sub(rt.IssuedAt); d != 7*24*time.Hour {
		t.Errorf("refresh token lifetime %s", d)
	}
	var raw int64
	e.DB.Model(&store.RefreshToken{}).Where("token_hash = ? OR token_hash = ?", tr.RefreshToken, rest).Count(&raw)
	if raw != 0 {
		t.Error("the raw refresh token is stored")
	}
	logins := ssoAudits(t, e, "auth.login")
	if len(logins) != 1 {
		t.Fatalf("%d auth.login rows", len(logins))
	}
	if a := logins[0]; a.ResourceType != "user" || a.ResourceID == nil || *a.ResourceID != me.Id ||
		a.ActorType != store.ActorUser || a.ActorUserID == nil || *a.ActorUserID != me.Id || a.Status != store.AuditSuccess ||
		a.IP == nil || *a.IP != ssoIP || a.RequestID == nil || *a.RequestID != cb.HTTPResponse.Header.Get("X-Request-ID") {
		t.Errorf("auth.login row %+v", a)
	}

	// The access token works on /me and on a permission-guarded op.
	mr := ssoMe(t, e, tr.AccessToken)
	if mr.StatusCode() != http.StatusOK || mr.JSON200.Id != me.Id || mr.JSON200.Role != "editor" {
		t.Fatalf("me: %d %s", mr.StatusCode(), mr.Body)
	}
	if cc := mr.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("me Cache-Control = %q, want no-store", cc)
	}
	if !mr.JSON200.Auth.ExpiresAt.Time.Equal(claims.ExpiresAt) {
		t.Errorf("me auth.expires_at %v, want %v", mr.JSON200.Auth.ExpiresAt, claims.ExpiresAt)
	}
	ssoCheckPerms(t, "me", mr.JSON200.Permissions, rbac.Editor)
	fr, err := ssoC(t, e, tr.AccessToken).ListFlowsWithResponse(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fr.StatusCode() != http.StatusOK {
		t.Errorf("GET /flows with the SSO access token: %d %s", fr.StatusCode(), fr.Body)
	}

	// The state was spent: the same state with a fresh code → 422, without asking Casdoor.
	n, mid := f.Requests(), ssoCount(t, e)
	again := ssoCallback(t, e, f.IssueCode(cu, alt, ssoChallengeOf(t, r2.JSON200.Url)), r2.JSON200.State)
	p := ssoProblem(t, "reused state", again.HTTPResponse, again.Body, http.StatusUnprocessableEntity, "invalid-oauth-state")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/state" {
		t.Errorf("reused state: errors %+v, want one at /state", p.Errors)
	}
	if f.Requests() != n {
		t.Error("Casdoor was asked to exchange a code for a spent state")
	}
	ssoSameCounts(t, "reused state", e, mid)
	ssoNoLeak(t, e, [][]byte{again.Body}, tr.AccessToken, tr.RefreshToken, rest, code)
}

func ssoMustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func ssoCheckPerms(t *testing.T, label string, got []string, role rbac.Role) {
	t.Helper()
	want := rbac.PermissionsOf(role)
	sort.Strings(want)
	if !sort.StringsAreSorted(got) {
		t.Errorf("%s: permissions not sorted: %v", label, got)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: permissions %v, want those of %s %v", label, got, role, want)
	}
}

// ---------------------------------------------------------------------------
// 2. Refused callbacks write nothing

func TestSSOCallbackRefusals(t *testing.T) {
	e, f := ssoNew(t)
	cu := casdoortest.User{Name: "bob", Email: "bob@example.com", Tag: "viewer"}
	var bodies [][]byte
	var codes []string

	// state: unknown, or spent by an earlier callback (the TTL is at least 30 s; a spent state is
	// what an expired one looks like: absent).
	t.Run("unknown state", func(t *testing.T) {
		before, n := ssoCount(t, e), f.Requests()
		lu, ch := ssoStart(t, e, nil)
		code := f.IssueCode(cu, lu.RedirectUri, ch)
		codes = append(codes, code)
		r := ssoCallback(t, e, code, auth.NewState())
		ssoProblem(t, "unknown state", r.HTTPResponse, r.Body, http.StatusUnprocessableEntity, "invalid-oauth-state")
		if f.Requests() != n {
			t.Error("Casdoor was asked for an unknown state")
		}
		bodies = append(bodies, r.Body)
		ssoSameCounts(t, "unknown state", e, before)
	})
	t.Run("state taken twice", func(t *testing.T) {
		before := ssoCount(t, e)
		lu, ch := ssoStart(t, e, nil)
		// First use: Casdoor rejects the code, which still spends the state.
		r := ssoCallback(t, e, "not-a-code", lu.State)
		ssoProblem(t, "first use", r.HTTPResponse, r.Body, http.StatusUnauthorized, "unauthenticated")
		code := f.IssueCode(cu, lu.RedirectUri, ch)
		codes = append(codes, code)
		r = ssoCallback(t, e, code, lu.State)
		ssoProblem(t, "second use", r.HTTPResponse, r.Body, http.StatusUnprocessableEntity, "invalid-oauth-state")
		bodies = append(bodies, r.Body)
		ssoSameCounts(t, "state taken twice", e, before)
	})
	t.Run("expired state", func(t *testing.T) {
		// OAUTH_STATE_TTL_SECONDS is at least 30: store a state as the login URL does, with a TTL
		// that lapses at once, in the server's own shared store.
		before := ssoCount(t, e)
		state, verifier := auth.NewState(), auth.NewVerifier()
		val, _ := json.Marshal(oauthState{Verifier: verifier, RedirectURI: ssoCallbackURI})
		if err := e.Server.deps.Shared.PutState(context.Background(), state, val, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		code := f.IssueCode(cu, ssoCallbackURI, auth.Challenge(verifier))
		codes = append(codes, code)
		r := ssoCallback(t, e, code, state)
		ssoProblem(t, "expired state", r.HTTPResponse, r.Body, http.StatusUnprocessableEntity, "invalid-oauth-state")
		ssoSameCounts(t, "expired state", e, before)
		// The control: the same, unexpired, signs in.
		state = auth.NewState()
		if err := e.Server.deps.Shared.PutState(context.Background(), state, val, time.Minute); err != nil {
			t.Fatal(err)
		}
		if r := ssoCallback(t, e, f.IssueCode(cu, ssoCallbackURI, auth.Challenge(verifier)), state); r.StatusCode() != http.StatusOK {
			t.Errorf("control: %d %s", r.StatusCode(), r.Body)
		}
	})
	t.Run("concurrent callbacks on one state", func(t *testing.T) {
		lu, ch := ssoStart(t, e, nil)
		const n = 4
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			code := f.IssueCode(casdoortest.User{Name: "racer", Email: "racer@example.com"}, lu.RedirectUri, ch)
			wg.Add(1)
			go func() {
				defer wg.Done()
				hr, _ := e.Send(t, http.MethodPost, BasePath+"/casdoor/auth/callback", ssoHeader("application/json"),
					strings.NewReader(fmt.Sprintf(`{"code":%q,"state":%q}`, code, lu.State)))
				statuses[i] = hr.StatusCode
			}()
		}
		wg.Wait()
		ok := 0
		for _, s := range statuses {
			switch s {
			case http.StatusOK:
				ok++
			case http.StatusUnprocessableEntity:
			default:
				t.Errorf("status %d", s)
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d callbacks with one state succeeded, want exactly 1 (%v)", ok, n, statuses)
		}
	})

	refused := func(t *testing.T, label, code, state string, status int, slug string) problemBody {
		t.Helper()
		before := ssoCount(t, e)
		r := ssoCallback(t, e, code, state)
		p := ssoProblem(t, label, r.HTTPResponse, r.Body, status, slug)
		if status == http.StatusUnauthorized && r.HTTPResponse.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: a public operation answers with a bearer challenge", label)
		}
		bodies = append(bodies, r.Body)
		codes = append(codes, code)
		ssoSameCounts(t, label, e, before)
		return p
	}
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		lu, _ := ssoStart(t, e, nil)
		code := f.IssueCode(cu, lu.RedirectUri, auth.Challenge(auth.NewVerifier()))
		refused(t, "wrong PKCE verifier", code, lu.State, http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("code bound to another redirect_uri", func(t *testing.T) {
		lu, ch := ssoStart(t, e, nil)
		code := f.IssueCode(cu, "https://elsewhere.example.com/cb", ch)
		refused(t, "other redirect_uri", code, lu.State, http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("Casdoor rejects the code", func(t *testing.T) {
		lu, _ := ssoStart(t, e, nil)
		refused(t, "unknown code", "no-such-code", lu.State, http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("code replayed", func(t *testing.T) {
		lu, ch := ssoStart(t, e, nil)
		code := f.IssueCode(casdoortest.User{Name: "replay", Email: "replay@example.com"}, lu.RedirectUri, ch)
		if r := ssoCallback(t, e, code, lu.State); r.StatusCode() != http.StatusOK {
			t.Fatalf("first use: %d %s", r.StatusCode(), r.Body)
		}
		lu2, _ := ssoStart(t, e, nil)
		refused(t, "replayed code", code, lu2.State, http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("Casdoor down", func(t *testing.T) {
		lu, ch := ssoStart(t, e, nil)
		code := f.IssueCode(cu, lu.RedirectUri, ch)
		f.SetDown(true)
		p := refused(t, "Casdoor down", code, lu.State, http.StatusServiceUnavailable, "dependency-unavailable")
		f.SetDown(false)
		if p.Dependency != "casdoor" || p.RetryAfter < 1 {
			t.Errorf("dependency %q retry_after %d, want casdoor and a delay", p.Dependency, p.RetryAfter)
		}
		// The state was spent before Casdoor was asked.
		refused(t, "state after Casdoor down", code, lu.State, http.StatusUnprocessableEntity, "invalid-oauth-state")
	})
	t.Run("Casdoor drops the connection", func(t *testing.T) {
		lu, ch := ssoStart(t, e, nil)
		f.SetDropConnections(true)
		p := refused(t, "Casdoor drops", f.IssueCode(cu, lu.RedirectUri, ch), lu.State, http.StatusServiceUnavailable, "dependency-unavailable")
		f.SetDropConnections(false)
		if p.Dependency != "casdoor" {
			t.Errorf("dependency %q, want casdoor", p.Dependency)
		}
	})
	t.Run("Casdoor account without an email", func(t *testing.T) {
		lu, ch := ssoStart(t, e, nil)
		refused(t, "no email", f.IssueCode(casdoortest.User{Name: "nomail"}, lu.RedirectUri, ch), lu.State, http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("body", func(t *testing.T) {
		before := ssoCount(t, e)
		for _, body := range []string{`{"code":"x"}`, `{"state":"x"}`, `{"code":"","state":"x"}`, `{"code":"x","state":"x","extra":1}`} {
			hr, b := e.Send(t, http.MethodPost, BasePath+"/casdoor/auth/callback", ssoHeader("application/json"), strings.NewReader(body))
			ssoProblem(t, body, hr, b, http.StatusBadRequest, "validation-error")
		}
		ssoSameCounts(t, "invalid bodies", e, before)
	})
	ssoNoLeak(t, e, bodies, codes...)
}

// ssoInjector is a Casdoor token endpoint that answers every exchange with a token of the test's
// choosing (casdoortest only mints tokens it considers valid).
type ssoInjector struct {
	URL   string
	token atomic.Pointer[string]
}

func ssoNewInjector(t *testing.T) *ssoInjector {
	in := &ssoInjector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/login/oauth/access_token" {
			http.NotFound(w, r)
			return
		}
		tok := *in.token.Load()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "id_token": tok, "refresh_token": "casdoor-refresh",
			"token_type": "Bearer", "expires_in": 3600, "scope": "openid profile email"})
	}))
	t.Cleanup(srv.Close)
	in.URL = srv.URL
	return in
}

func ssoUnsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func TestSSOCallbackRejectsInvalidCasdoorTokens(t *testing.T) {
	f := casdoortest.New(t) // only signs
	in := ssoNewInjector(t)
	e := newTestEnv(t, ssoQuiet, map[string]string{
		"CASDOOR_ENDPOINT": in.URL, "CASDOOR_CLIENT_ID": casdoortest.DefaultClientID, "CASDOOR_CLIENT_SECRET": "injector-secret",
		"CASDOOR_ORG_NAME": casdoortest.DefaultOrg, "CASDOOR_CERTIFICATE": f.CertificatePEM(),
		"FRONTEND_URL": "https://app.example.com", "CASDOOR_REDIRECT_URIS": ssoCallbackURI,
	})
	u := casdoortest.User{Name: "mallory", Email: "mallory@example.com", Tag: "super_admin"}
	claims := func(edit func(c map[string]any)) map[string]any {
		c := f.UserClaims(u)
		c["iss"] = in.URL
		if edit != nil {
			edit(c)
		}
		return c
	}
	try := func(t *testing.T, tok string) (*api.ExchangeCodeResponse, ssoCounts) {
		in.token.Store(&tok)
		before := ssoCount(t, e)
		lu, _ := ssoStart(t, e, nil)
		return ssoCallback(t, e, "any-code", lu.State), before
	}

	// The control: the injector and the configuration accept a well-formed token.
	ok := f.SignToken(claims(func(c map[string]any) {
		c["sub"], c["email"], c["tag"] = "control-sub", "control@example.com", "viewer"
	}))
	if r, _ := try(t, ok); r.StatusCode() != http.StatusOK {
		t.Fatalf("control token refused: %d %s", r.StatusCode(), r.Body)
	}

	now := time.Now()
	cases := []struct {
		name string
		tok  string
	}{
		{"signed by another key", f.OtherKeyToken(claims(nil))},
		{"wrong aud", f.SignToken(claims(func(c map[string]any) { c["aud"] = []any{"another-client"} }))},
		{"no aud", f.SignToken(claims(func(c map[string]any) { delete(c, "aud") }))},
		{"wrong iss", f.SignToken(claims(func(c map[string]any) { c["iss"] = "https://casdoor.evil.example.com" }))},
		{"wrong organisation", f.SignToken(claims(func(c map[string]any) { c["owner"] = "another-org" }))},
		{"Casdoor refresh JWT", f.SignToken(claims(func(c map[string]any) { c["tokenType"] = "refresh-token" }))},
		{"no tokenType", f.SignToken(claims(func(c map[string]any) { delete(c, "tokenType") }))},
		{"alg none", ssoUnsigned(map[string]any{"alg": "none", "typ": "JWT"}, claims(nil))},
		{"alg none, signature kept", func() string {
			s := f.SignToken(claims(nil))
			parts := strings.Split(s, ".")
			h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT", "kid": casdoortest.KeyID})
			return base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "." + parts[2]
		}()},
		{"HS256 keyed with the certificate", func() string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims(nil))).SignedString([]byte(f.CertificatePEM()))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}()},
		{"RS512", f.SignTokenWithMethod(jwt.SigningMethodRS512, claims(nil))},
		{"expired", f.SignToken(claims(func(c map[string]any) {
			c["exp"], c["iat"], c["nbf"] = now.Add(-5*time.Minute).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix()
		}))},
		{"no exp", f.SignToken(claims(func(c map[string]any) { delete(c, "exp") }))},
		{"not yet valid", f.SignToken(claims(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }))},
		{"no sub", f.SignToken(claims(func(c map[string]any) { delete(c, "sub") }))},
		{"tampered payload", func() string {
			parts := strings.Split(f.SignToken(claims(nil)), ".")
			other := strings.Split(f.SignToken(claims(func(c map[string]any) { c["tag"] = "user" })), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}()},
		{"garbage", "not.a.jwt"},
	}
	var bodies [][]byte
	var toks []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, before := try(t, tc.tok)
			p := ssoProblem(t, tc.name, r.HTTPResponse, r.Body, http.StatusUnauthorized, "unauthenticated")
			if p.Detail != "The Casdoor token could not be verified." {
				t.Errorf("%s: detail %q is not the generic one", tc.name, p.Detail)
			}
			ssoSameCounts(t, tc.name, e, before)
			bodies = append(bodies, r.Body)
			toks = append(toks, tc.tok)
		})
	}
	var n int64
	e.DB.Model(&store.User{}).Where("role = ?", "super_admin").Count(&n)
	if n != 0 {
		t.Errorf("%d super_admins created from refused tokens", n)
	}
	ssoNoLeak(t, e, bodies, append(toks, ok)...)
}

// ssoContract is the contract for the response validators of the servers built here (loading it
// costs about 200 ms).
var ssoContract = sync.OnceValues(func() (*openapi3.T, routers.Router) {
	doc, err := embeddedSpec()
	if err != nil {
		panic(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		panic(err)
	}
	return doc, router
})

// ssoServe builds a server on deps behind the contract-validating recorder, sharing what deps share
// with another environment.
func ssoServe(t *testing.T, d Deps, logs *syncBuffer) *testEnv {
	t.Helper()
	if d.Engine == nil {
		d.Engine = testEngine(t, d.Config, d.DB, d.Redis, d.Logger)
	}
	srv, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, DB: d.DB, Server: srv, Tokens: d.Tokens, Config: d.Config, Logs: logs}
	doc, router := ssoContract()
	e.HTTP = httptest.NewServer(&responseValidator{t: t, next: srv.Echo, router: router, doc: doc, checked: &e.checked})
	t.Cleanup(e.HTTP.Close)
	return e
}

// The server configured differently from what the real fake signs or expects.
func TestSSOCallbackRejectsMismatchedConfiguration(t *testing.T) {
	base := newTestEnv(t, ssoQuiet)
	cases := []struct {
		name string
		fake []casdoortest.Option
		edit func(c *auth.CasdoorConfig)
	}{
		{name: "another certificate", edit: func(c *auth.CasdoorConfig) { c.CertificatePEM = casdoortest.OtherCertificatePEM() }},
		{name: "another organisation", edit: func(c *auth.CasdoorConfig) { c.OrgName = "another-org" }},
		{name: "another client id", edit: func(c *auth.CasdoorConfig) { c.ClientID = "another-client" }},
		{name: "another client secret", edit: func(c *auth.CasdoorConfig) { c.ClientSecret = "not-the-secret" }},
		{name: "another issuer", edit: func(c *auth.CasdoorConfig) { c.Issuer = "https://casdoor.example.com" }},
		{name: "expired tokens", fake: []casdoortest.Option{casdoortest.WithTokenTTL(-5 * time.Minute)}},
		{name: "control, without an id_token", fake: []casdoortest.Option{casdoortest.WithoutIDToken()}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := casdoortest.New(t, tc.fake...)
			cfg := testConfig(t, map[string]string{"RATE_LIMIT_PUBLIC_PER_MINUTE": "1000000", "CASDOOR_REDIRECT_URIS": ssoCallbackURI})
			cc := auth.CasdoorConfig{Endpoint: f.URL, ClientID: f.ClientID, ClientSecret: f.ClientSecret, OrgName: f.Org,
				CertificatePEM: f.CertificatePEM()}
			if tc.edit != nil {
				tc.edit(&cc)
			}
			cd, err := auth.NewCasdoor(cc)
			if err != nil {
				t.Fatal(err)
			}
			e := ssoServe(t, Deps{Config: cfg, DB: base.DB, Tokens: base.Tokens, Logger: slog.New(slog.NewJSONHandler(base.Logs, nil)),
				Shared: auth.NewMemoryShared(), Casdoor: cd}, base.Logs)
			before := ssoCount(t, e)
			lu, ch := ssoStart(t, e, nil)
			cu := casdoortest.User{Name: fmt.Sprintf("eve%d", i), Email: fmt.Sprintf("eve%d@example.com", i)}
			r := ssoCallback(t, e, f.IssueCode(cu, lu.RedirectUri, ch), lu.State)
			if strings.HasPrefix(tc.name, "control") {
				if r.StatusCode() != http.StatusOK {
					t.Fatalf("control: %d %s", r.StatusCode(), r.Body)
				}
				return
			}
			ssoProblem(t, tc.name, r.HTTPResponse, r.Body, http.StatusUnauthorized, "unauthenticated")
			ssoSameCounts(t, tc.name, e, before)
		})
	}
}

func TestSSONotConfigured(t *testing.T) {
	e := newTestEnv(t, ssoQuiet)
	before := ssoCount(t, e)
	r, err := ssoC(t, e, "").GetLoginUrlWithResponse(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := ssoProblem(t, "login url", r.HTTPResponse, r.Body, http.StatusServiceUnavailable, "dependency-unavailable"); p.Dependency != "casdoor" {
		t.Errorf("dependency %q, want casdoor", p.Dependency)
	}
	cb := ssoCallback(t, e, "code", auth.NewState())
	if p := ssoProblem(t, "callback", cb.HTTPResponse, cb.Body, http.StatusServiceUnavailable, "dependency-unavailable"); p.Dependency != "casdoor" {
		t.Errorf("dependency %q, want casdoor", p.Dependency)
	}
	// Refresh needs no Casdoor.
	rr := ssoRefresh(t, e, "wtr_unknown")
	ssoProblem(t, "refresh", rr.HTTPResponse, rr.Body, http.StatusUnauthorized, "unauthenticated")
	ssoSameCounts(t, "SSO not configured", e, before)
}

func TestSSORoleMapping(t *testing.T) {
	cases := []struct {
		claim string
		tag   string
		roles []string
		want  rbac.Role
	}{
		{"tag", "", nil, rbac.User},
		{"tag", "owner", nil, rbac.User},
		{"tag", "Admin", nil, rbac.User},
		{"tag", "editor,viewer", nil, rbac.Editor},
		{"tag", "viewer, manager ,owner", nil, rbac.Manager},
		{"tag", "super_admin", nil, rbac.SuperAdmin},
		{"tag", "editor", []string{"admin"}, rbac.Editor}, // roles[] is ignored under tag
		{"roles", "admin", []string{"viewer", "manager"}, rbac.Manager},
		{"roles", "admin", nil, rbac.User},
		{"roles", "", []string{"owner", "editor"}, rbac.Editor},
		{"roles", "", []string{"owner"}, rbac.User},
	}
	envs := map[string]*testEnv{}
	fakes := map[string]*casdoortest.Fake{}
	for i, tc := range cases {
		e, ok := envs[tc.claim]
		if !ok {
			e, fakes[tc.claim] = ssoNew(t, map[string]string{"CASDOOR_ROLE_CLAIM": tc.claim})
			envs[tc.claim] = e
		}
		label := fmt.Sprintf("%s tag=%q roles=%v", tc.claim, tc.tag, tc.roles)
		u := casdoortest.User{Name: fmt.Sprintf("role%d", i), Email: fmt.Sprintf("role%d@example.com", i), Tag: tc.tag, Roles: tc.roles}
		tr := ssoLogin(t, e, fakes[tc.claim], u)
		if tr.User.Role != api.UserRole(tc.want) {
			t.Errorf("%s: role %s, want %s", label, tr.User.Role, tc.want)
		}
		ssoCheckPerms(t, label, tr.User.Permissions, tc.want)
		if got := ssoUser(t, e, tr.User.Id).Role; got != string(tc.want) {
			t.Errorf("%s: stored role %s", label, got)
		}
	}
}

// ---------------------------------------------------------------------------
// 3. Just-in-time upsert

// TestSSOJIT runs the upsert cases that share the default configuration (CASDOOR_ROLE_SYNC=create).
func TestSSOJIT(t *testing.T) {
	e, f := ssoNew(t)
	t.Run("second login updates the profile and keeps the DB role", func(t *testing.T) { ssoSecondLogin(t, e, f) })
	t.Run("email held by another account", func(t *testing.T) { ssoEmailHeld(t, e, f) })
	t.Run("inactive user", func(t *testing.T) { ssoInactive(t, e, f) })
}

func ssoSecondLogin(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	cu := casdoortest.User{Name: "carol", DisplayName: "Carol", Email: "carol@example.com", Avatar: "https://cdn.example.com/c.png", Tag: "editor"}
	first := ssoLogin(t, e, f, cu)
	id := first.User.Id
	old := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	if err := e.DB.Model(&store.User{}).Where("id = ?", id).Updates(map[string]any{"role": "viewer", "last_login_at": old}).Error; err != nil {
		t.Fatal(err)
	}
	before := ssoCount(t, e)
	cu.DisplayName, cu.Email, cu.Avatar, cu.Tag = "Carol Danvers", "carol.danvers@example.com", "", "admin"
	second := ssoLogin(t, e, f, cu)
	if second.User.Id != id {
		t.Fatalf("second login made user %d, want %d", second.User.Id, id)
	}
	u := ssoUser(t, e, id)
	if u.Email != cu.Email || u.Name != cu.DisplayName || u.AvatarURL != nil {
		t.Errorf("profile not refreshed: %+v", u)
	}
	if u.Role != "viewer" || second.User.Role != "viewer" {
		t.Errorf("role %s (response %s), want the DB role viewer under CASDOOR_ROLE_SYNC=create", u.Role, second.User.Role)
	}
	ssoCheckPerms(t, "second login", second.User.Permissions, rbac.Viewer)
	if u.LastLoginAt == nil || !u.LastLoginAt.After(old.Add(time.Hour)) {
		t.Errorf("last_login_at %v not refreshed", u.LastLoginAt)
	}
	if u.SearchText != store.SearchText(u.Name, u.Email) {
		t.Errorf("search_text %q is stale", u.SearchText)
	}
	after := ssoCount(t, e)
	if after.Users != before.Users || after.Refresh != before.Refresh+1 || after.Audit != before.Audit+1 {
		t.Errorf("second login: %+v → %+v", before, after)
	}
	if f1, f2 := ssoRefreshRow(t, e, first.RefreshToken).FamilyID, ssoRefreshRow(t, e, second.RefreshToken).FamilyID; f1 == f2 {
		t.Error("two logins share a refresh family")
	}
	// The first session still works: a login does not end the other sessions.
	if r := ssoMe(t, e, first.AccessToken); r.StatusCode() != http.StatusOK || r.JSON200.Email != cu.Email {
		t.Errorf("first session after a second login: %d %s", r.StatusCode(), r.Body)
	}
}

func TestSSORoleSyncLogin(t *testing.T) {
	e, f := ssoNew(t, map[string]string{"CASDOOR_ROLE_SYNC": "login"})
	cu := casdoortest.User{Name: "dave", Email: "dave@example.com", Tag: "editor"}
	id := ssoLogin(t, e, f, cu).User.Id
	cu.Tag = "manager"
	if tr := ssoLogin(t, e, f, cu); tr.User.Role != "manager" || ssoUser(t, e, id).Role != "manager" {
		t.Errorf("role after a login with tag manager: %s", tr.User.Role)
	}
	cu.Tag = "viewer"
	if tr := ssoLogin(t, e, f, cu); tr.User.Role != "viewer" {
		t.Errorf("role after a login with tag viewer: %s", tr.User.Role)
	}

	// The last active super_admin is never demoted by a sync.
	boss := casdoortest.User{Name: "boss", Email: "boss@example.com", Tag: "super_admin"}
	bid := ssoLogin(t, e, f, boss).User.Id
	if n, _ := store.CountActiveSuperAdmins(context.Background(), e.DB.DB); n != 1 {
		t.Fatalf("%d active super_admins, want 1", n)
	}
	boss.Tag = "user"
	tr := ssoLogin(t, e, f, boss)
	if tr.User.Role != "super_admin" || ssoUser(t, e, bid).Role != "super_admin" {
		t.Errorf("the last active super_admin was demoted to %s by a sync", tr.User.Role)
	}
	if !strings.Contains(e.Logs.String(), "last active super_admin") {
		t.Error("the refused demotion is not logged as a warning")
	}
	// With another active super_admin, the sync demotes.
	e.User(rbac.SuperAdmin)
	if tr := ssoLogin(t, e, f, boss); tr.User.Role != "user" {
		t.Errorf("with two super_admins the sync left %s, want user", tr.User.Role)
	}
}

func TestSSOLinksPreProvisionedUser(t *testing.T) {
	for _, sync := range []string{"create", "login"} {
		t.Run(sync, func(t *testing.T) {
			e, f := ssoNew(t, map[string]string{"CASDOOR_ROLE_SYNC": sync})
			pre := &store.User{Email: "Erin@Example.com", Name: "Erin (CLI)", Role: "admin", IsActive: true}
			if err := store.SaveUser(context.Background(), e.DB.DB, pre); err != nil {
				t.Fatal(err)
			}
			before := ssoCount(t, e)
			cu := casdoortest.User{Name: "erin", DisplayName: "Erin", Email: "erin@example.com", Tag: "editor"}
			tr := ssoLogin(t, e, f, cu)
			if tr.User.Id != pre.ID {
				t.Fatalf("login created user %d instead of linking %d", tr.User.Id, pre.ID)
			}
			u := ssoUser(t, e, pre.ID)
			if u.ExternalID == nil || *u.ExternalID != ssoSub(f, cu) || u.LastLoginAt == nil || u.Name != "Erin" {
				t.Errorf("linked user %+v", u)
			}
			want := map[string]string{"create": "admin", "login": "editor"}[sync]
			if u.Role != want {
				t.Errorf("role %s, want %s", u.Role, want)
			}
			if after := ssoCount(t, e); after.Users != before.Users {
				t.Errorf("users %d → %d", before.Users, after.Users)
			}
			// A second login finds the linked row by its Casdoor id.
			if tr := ssoLogin(t, e, f, cu); tr.User.Id != pre.ID {
				t.Errorf("second login: user %d", tr.User.Id)
			}
		})
	}
	// The CLI bootstraps the first super_admin; its first login under CASDOOR_ROLE_SYNC=login must
	// not demote it (the last active super_admin).
	t.Run("bootstrapped super_admin", func(t *testing.T) {
		e, f := ssoNew(t, map[string]string{"CASDOOR_ROLE_SYNC": "login"})
		pre := &store.User{Email: "root@example.com", Name: "Root", Role: "super_admin", IsActive: true}
		if err := store.SaveUser(context.Background(), e.DB.DB, pre); err != nil {
			t.Fatal(err)
		}
		tr := ssoLogin(t, e, f, casdoortest.User{Name: "root", Email: "root@example.com", Tag: ""})
		if tr.User.Id != pre.ID || tr.User.Role != "super_admin" || ssoUser(t, e, pre.ID).Role != "super_admin" {
			t.Errorf("bootstrapped super_admin linked as %d with role %s", tr.User.Id, tr.User.Role)
		}
	})
}

func ssoEmailHeld(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	other := "casdoor-id-of-someone-else"
	held := &store.User{ExternalID: &other, Email: "frank@example.com", Name: "Frank", Role: "viewer", IsActive: true}
	if err := store.SaveUser(context.Background(), e.DB.DB, held); err != nil {
		t.Fatal(err)
	}
	refuse := func(label string, cu casdoortest.User, existing int64) {
		t.Helper()
		before := ssoCount(t, e)
		lu, ch := ssoStart(t, e, nil)
		r := ssoCallback(t, e, f.IssueCode(cu, lu.RedirectUri, ch), lu.State)
		p := ssoProblem(t, label, r.HTTPResponse, r.Body, http.StatusConflict, "already-exists")
		if p.ExistingID == nil || *p.ExistingID != existing {
			t.Errorf("%s: existing_id %v, want %d", label, p.ExistingID, existing)
		}
		ssoSameCounts(t, label, e, before)
	}
	refuse("new Casdoor account", casdoortest.User{Name: "frank", Email: "FRANK@example.com"}, held.ID)
	if u := ssoUser(t, e, held.ID); *u.ExternalID != other || u.LastLoginAt != nil {
		t.Errorf("the held row changed: %+v", u)
	}

	// A known account whose Casdoor email moved onto another user's.
	g := casdoortest.User{Name: "grace", Email: "grace@example.com"}
	gid := ssoLogin(t, e, f, g).User.Id
	g.Email = "frank@example.com"
	refuse("email moved onto another user's", g, held.ID)
	if u := ssoUser(t, e, gid); u.Email != "grace@example.com" {
		t.Errorf("email became %q", u.Email)
	}
}

func ssoInactive(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	cu := casdoortest.User{Name: "heidi", Email: "heidi@example.com", Tag: "editor"}
	tr := ssoLogin(t, e, f, cu)
	old := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if err := e.DB.Model(&store.User{}).Where("id = ?", tr.User.Id).Updates(map[string]any{"is_active": false, "last_login_at": old}).Error; err != nil {
		t.Fatal(err)
	}
	refuse := func(label string, cu casdoortest.User) {
		t.Helper()
		before := ssoCount(t, e)
		lu, ch := ssoStart(t, e, nil)
		r := ssoCallback(t, e, f.IssueCode(cu, lu.RedirectUri, ch), lu.State)
		ssoProblem(t, label, r.HTTPResponse, r.Body, http.StatusForbidden, "account-disabled")
		ssoSameCounts(t, label, e, before)
	}
	cu.DisplayName = "Heidi Changed"
	refuse("inactive user", cu)
	u := ssoUser(t, e, tr.User.Id)
	if u.LastLoginAt == nil || !u.LastLoginAt.Equal(old) || u.Name == "Heidi Changed" {
		t.Errorf("a refused login changed the user: %+v", u)
	}
	// Its existing access token is refused at once too.
	me := ssoMe(t, e, tr.AccessToken)
	ssoProblem(t, "me of an inactive user", me.HTTPResponse, me.Body, http.StatusForbidden, "account-disabled")

	// An inactive pre-provisioned row is not linked.
	pre := &store.User{Email: "ivan@example.com", Name: "Ivan", Role: "viewer", IsActive: false}
	if err := store.SaveUser(context.Background(), e.DB.DB, pre); err != nil {
		t.Fatal(err)
	}
	refuse("inactive pre-provisioned user", casdoortest.User{Name: "ivan", Email: "ivan@example.com"})
	if u := ssoUser(t, e, pre.ID); u.ExternalID != nil {
		t.Errorf("an inactive pre-provisioned user was linked: %+v", u)
	}
}

// ---------------------------------------------------------------------------
// 4. Refresh

// TestRefresh runs the refresh cases that share the default configuration
// (REFRESH_REUSE_GRACE_SECONDS=10); reuse after the grace window is TestRefreshReuseRevokesFamily.
func TestRefresh(t *testing.T) {
	e, f := ssoNew(t)
	t.Run("rotation", func(t *testing.T) { ssoRefreshRotation(t, e, f) })
	t.Run("role and is_active re-read", func(t *testing.T) { ssoRefreshRereads(t, e, f) })
	t.Run("reuse within the grace window", func(t *testing.T) { ssoRefreshWithinGrace(t, e, f) })
	t.Run("unknown and expired", func(t *testing.T) { ssoRefreshUnknownExpired(t, e, f) })
	t.Run("concurrent", func(t *testing.T) { ssoRefreshConcurrent(t, e, f) })
}

func ssoRefreshRotation(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	tr := ssoLogin(t, e, f, casdoortest.User{Name: "judy", Email: "judy@example.com", Tag: "editor"})
	c1, _ := e.Tokens.Verify(tr.AccessToken)
	before := ssoCount(t, e)
	r := ssoRefresh(t, e, tr.RefreshToken)
	if r.StatusCode() != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.StatusCode(), r.Body)
	}
	if cc := r.HTTPResponse.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("refresh Cache-Control = %q", cc)
	}
	n := r.JSON200
	if n.RefreshToken == tr.RefreshToken || !strings.HasPrefix(n.RefreshToken, "wtr_") || n.AccessToken == tr.AccessToken {
		t.Errorf("refresh did not rotate: %q", n.RefreshToken)
	}
	if n.TokenType != api.Bearer || n.User.Id != tr.User.Id || n.User.Role != "editor" {
		t.Errorf("refresh response %+v", n)
	}
	ssoCheckPerms(t, "refresh", n.User.Permissions, rbac.Editor)
	c2, err := e.Tokens.Verify(n.AccessToken)
	if err != nil || c2.SID != c1.SID || c2.JTI == c1.JTI {
		t.Errorf("new access token: %+v (%v), want the same sid %s and a new jti", c2, err, c1.SID)
	}
	old, next := ssoRefreshRow(t, e, tr.RefreshToken), ssoRefreshRow(t, e, n.RefreshToken)
	if old.UsedAt == nil || old.ReplacedByID == nil || *old.ReplacedByID != next.ID || old.RevokedAt != nil {
		t.Errorf("old token after rotation: %+v (successor %d)", old, next.ID)
	}
	if next.FamilyID != old.FamilyID || next.UsedAt != nil || next.RevokedAt != nil || next.UserID != old.UserID {
		t.Errorf("successor %+v", next)
	}
	if after := ssoCount(t, e); after.Refresh != before.Refresh+1 || after.Users != before.Users {
		t.Errorf("refresh wrote %+v → %+v", before, after)
	}
	// Both access tokens of the family work; the chain goes on.
	for _, tok := range []string{tr.AccessToken, n.AccessToken} {
		if m := ssoMe(t, e, tok); m.StatusCode() != http.StatusOK {
			t.Errorf("me: %d %s", m.StatusCode(), m.Body)
		}
	}
	if r := ssoRefresh(t, e, n.RefreshToken); r.StatusCode() != http.StatusOK {
		t.Errorf("second rotation: %d %s", r.StatusCode(), r.Body)
	}
}

func ssoRefreshRereads(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	tr := ssoLogin(t, e, f, casdoortest.User{Name: "ken", Email: "ken@example.com", Tag: "viewer"})
	if err := e.DB.Model(&store.User{}).Where("id = ?", tr.User.Id).Update("role", "manager").Error; err != nil {
		t.Fatal(err)
	}
	r := ssoRefresh(t, e, tr.RefreshToken)
	if r.StatusCode() != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.StatusCode(), r.Body)
	}
	if r.JSON200.User.Role != "manager" {
		t.Errorf("refresh response role %s, want manager", r.JSON200.User.Role)
	}
	ssoCheckPerms(t, "refresh after promotion", r.JSON200.User.Permissions, rbac.Manager)
	if c, _ := e.Tokens.Verify(r.JSON200.AccessToken); c.Role != "manager" {
		t.Errorf("new access token role %q", c.Role)
	}
	if m := ssoMe(t, e, r.JSON200.AccessToken); m.StatusCode() != http.StatusOK || m.JSON200.Role != "manager" {
		t.Errorf("me after refresh: %d %s", m.StatusCode(), m.Body)
	}
	if err := e.DB.Model(&store.User{}).Where("id = ?", tr.User.Id).Update("is_active", false).Error; err != nil {
		t.Fatal(err)
	}
	before := ssoCount(t, e)
	r2 := ssoRefresh(t, e, r.JSON200.RefreshToken)
	ssoProblem(t, "refresh of an inactive user", r2.HTTPResponse, r2.Body, http.StatusForbidden, "account-disabled")
	ssoSameCounts(t, "refresh of an inactive user", e, before)
	if rt := ssoRefreshRow(t, e, r.JSON200.RefreshToken); rt.UsedAt != nil {
		t.Error("a refused refresh spent the token")
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e, f := ssoNew(t, map[string]string{"REFRESH_REUSE_GRACE_SECONDS": "0"})
	cu := casdoortest.User{Name: "leo", Email: "leo@example.com", Tag: "editor"}
	s1 := ssoLogin(t, e, f, cu)
	other := ssoLogin(t, e, f, cu) // another session of the same user
	r := ssoRefresh(t, e, s1.RefreshToken)
	if r.StatusCode() != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.StatusCode(), r.Body)
	}
	s2 := r.JSON200
	time.Sleep(5 * time.Millisecond) // past the (zero) grace window at the store's millisecond precision

	reuse := ssoRefresh(t, e, s1.RefreshToken)
	ssoProblem(t, "reuse", reuse.HTTPResponse, reuse.Body, http.StatusUnauthorized, "unauthenticated")
	rows := ssoAudits(t, e, "auth.refresh_reuse_detected")
	if len(rows) != 1 {
		t.Fatalf("%d auth.refresh_reuse_detected rows, want 1", len(rows))
	}
	if a := rows[0]; a.ResourceID == nil || *a.ResourceID != s1.User.Id || a.Status != store.AuditDenied {
		t.Errorf("reuse audit row %+v", a)
	}
	for _, tok := range []string{s1.RefreshToken, s2.RefreshToken} {
		if rt := ssoRefreshRow(t, e, tok); rt.RevokedAt == nil {
			t.Errorf("token %d of the family not revoked", rt.ID)
		}
	}
	// The newest refresh token of the family fails, and so does every access token carrying its sid.
	nr := ssoRefresh(t, e, s2.RefreshToken)
	ssoProblem(t, "newest refresh token", nr.HTTPResponse, nr.Body, http.StatusUnauthorized, "unauthenticated")
	c, _ := e.Tokens.Verify(s1.AccessToken)
	minted, _, err := e.Tokens.Issue(s1.User.Id, "editor", c.SID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"login access token": s1.AccessToken, "refreshed access token": s2.AccessToken, "minted": minted} {
		m := ssoMe(t, e, tok)
		ssoProblem(t, name, m.HTTPResponse, m.Body, http.StatusUnauthorized, "unauthenticated")
	}
	// The other session is untouched.
	if m := ssoMe(t, e, other.AccessToken); m.StatusCode() != http.StatusOK {
		t.Errorf("the user's other session: %d %s", m.StatusCode(), m.Body)
	}
	if r := ssoRefresh(t, e, other.RefreshToken); r.StatusCode() != http.StatusOK {
		t.Errorf("the user's other session refresh: %d %s", r.StatusCode(), r.Body)
	}
	// Presenting it again still fails; the family is already revoked, so nothing more is detected.
	again := ssoRefresh(t, e, s1.RefreshToken)
	ssoProblem(t, "second reuse", again.HTTPResponse, again.Body, http.StatusUnauthorized, "unauthenticated")
	if n := len(ssoAudits(t, e, "auth.refresh_reuse_detected")); n != 1 {
		t.Errorf("%d auth.refresh_reuse_detected rows after a second reuse, want 1", n)
	}
	ssoNoLeak(t, e, [][]byte{reuse.Body, nr.Body, again.Body}, s1.RefreshToken, s2.RefreshToken, s1.AccessToken, s2.AccessToken)
}

func ssoRefreshWithinGrace(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	s1 := ssoLogin(t, e, f, casdoortest.User{Name: "mia", Email: "mia@example.com"})
	r := ssoRefresh(t, e, s1.RefreshToken)
	if r.StatusCode() != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.StatusCode(), r.Body)
	}
	before := ssoCount(t, e)
	reuse := ssoRefresh(t, e, s1.RefreshToken)
	ssoProblem(t, "reuse within grace", reuse.HTTPResponse, reuse.Body, http.StatusUnauthorized, "refresh-superseded")
	ssoSameCounts(t, "reuse within grace", e, before)
	if rt := ssoRefreshRow(t, e, r.JSON200.RefreshToken); rt.RevokedAt != nil {
		t.Error("reuse within the grace window revoked the family")
	}
	for _, tok := range []string{s1.AccessToken, r.JSON200.AccessToken} {
		if m := ssoMe(t, e, tok); m.StatusCode() != http.StatusOK {
			t.Errorf("access token after a reuse within grace: %d %s", m.StatusCode(), m.Body)
		}
	}
	if r2 := ssoRefresh(t, e, r.JSON200.RefreshToken); r2.StatusCode() != http.StatusOK {
		t.Errorf("the newest token after a reuse within grace: %d %s", r2.StatusCode(), r2.Body)
	}
}

func ssoRefreshUnknownExpired(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	s := ssoLogin(t, e, f, casdoortest.User{Name: "nina", Email: "nina@example.com"})
	forged, _ := auth.NewRefreshToken()
	for _, tok := range []string{forged, "wtr_", "not-even-a-refresh-token", s.AccessToken} {
		before := ssoCount(t, e)
		r := ssoRefresh(t, e, tok)
		p := ssoProblem(t, "unknown refresh token", r.HTTPResponse, r.Body, http.StatusUnauthorized, "unauthenticated")
		if strings.Contains(p.Detail, tok) {
			t.Error("the problem echoes the token")
		}
		ssoSameCounts(t, "unknown refresh token", e, before)
	}
	rt := ssoRefreshRow(t, e, s.RefreshToken)
	if err := e.DB.Model(&store.RefreshToken{}).Where("id = ?", rt.ID).Update("expires_at", time.Now().Add(-time.Second).UTC()).Error; err != nil {
		t.Fatal(err)
	}
	before := ssoCount(t, e)
	r := ssoRefresh(t, e, s.RefreshToken)
	ssoProblem(t, "expired refresh token", r.HTTPResponse, r.Body, http.StatusUnauthorized, "unauthenticated")
	ssoSameCounts(t, "expired refresh token", e, before)
	if got := ssoRefreshRow(t, e, s.RefreshToken); got.UsedAt != nil {
		t.Error("an expired token was spent")
	}
	ssoNoLeak(t, e, nil, forged, s.RefreshToken)
}

func ssoRefreshConcurrent(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	s := ssoLogin(t, e, f, casdoortest.User{Name: "oscar", Email: "oscar@example.com"})
	const n = 6
	c := ssoC(t, e, "")
	type result struct {
		status int
		slug   string
		token  string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := c.RefreshTokensWithResponse(context.Background(), api.RefreshTokensJSONRequestBody{RefreshToken: s.RefreshToken})
			if err != nil {
				t.Error(err)
				return
			}
			results[i].status = r.StatusCode()
			if r.JSON200 != nil {
				results[i].token = r.JSON200.RefreshToken
			}
			if r.ApplicationproblemJSON401 != nil {
				results[i].slug = r.ApplicationproblemJSON401.Type
			}
		}()
	}
	close(start)
	wg.Wait()
	var winner string
	for _, r := range results {
		switch r.status {
		case http.StatusOK:
			if winner != "" {
				t.Error("two concurrent refreshes with one token both succeeded")
			}
			winner = r.token
		case http.StatusUnauthorized:
			if r.slug != "urn:wataomi:problem:refresh-superseded" {
				t.Errorf("a losing concurrent refresh got %q, want refresh-superseded", r.slug)
			}
		default:
			t.Errorf("concurrent refresh: status %d", r.status)
		}
	}
	if winner == "" {
		t.Fatalf("no concurrent refresh succeeded: %+v", results)
	}
	var live int64
	e.DB.Model(&store.RefreshToken{}).Where("user_id = ? AND used_at IS NULL AND revoked_at IS NULL", s.User.Id).Count(&live)
	if live != 1 {
		t.Errorf("%d live refresh tokens after the race, want 1", live)
	}
	if r := ssoRefresh(t, e, winner); r.StatusCode() != http.StatusOK {
		t.Errorf("the winner's token: %d %s", r.StatusCode(), r.Body)
	}
}

// ---------------------------------------------------------------------------
// 5. Logout and /me

func TestLogout(t *testing.T) {
	e, f := ssoNew(t)
	t.Run("revokes the family", func(t *testing.T) { ssoLogoutFamily(t, e, f) })
	t.Run("API token principal", func(t *testing.T) { ssoLogoutAPIToken(t, e, f) })
}

// TestLogoutSecondReplica: a logout and a detected reuse on one server are refused at once by a
// second server sharing the database and the shared store (Redis under TEST_REDIS_URL, through its
// own connection).
func TestLogoutSecondReplica(t *testing.T) {
	e, f := ssoNew(t, map[string]string{"REFRESH_REUSE_GRACE_SECONDS": "0"})
	shared := e.Server.deps.Shared
	var rdb *redis.Client
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		rdb = redis.NewClient(opt)
		t.Cleanup(func() { rdb.Close() })
		shared = auth.NewRedisShared(rdb)
	}
	logs := &syncBuffer{}
	b := ssoServe(t, Deps{Config: e.Config, DB: e.DB, Redis: rdb, Tokens: e.Tokens, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Shared: shared, Casdoor: e.Server.deps.Casdoor}, logs)
	cu := casdoortest.User{Name: "quinn", Email: "quinn@example.com", Tag: "editor"}

	s := ssoLogin(t, e, f, cu)
	if m := ssoMe(t, b, s.AccessToken); m.StatusCode() != http.StatusOK {
		t.Fatalf("replica B before logout: %d %s", m.StatusCode(), m.Body)
	}
	c, _ := e.Tokens.Verify(s.AccessToken)
	sibling, _, _ := e.Tokens.Issue(s.User.Id, "editor", c.SID, 0)
	if r, err := ssoC(t, e, s.AccessToken).LogoutWithResponse(context.Background()); err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("logout on A: %v %v", err, r)
	}
	for name, tok := range map[string]string{"logged-out token": s.AccessToken, "its sibling": sibling} {
		m := ssoMe(t, b, tok)
		ssoProblem(t, "replica B, "+name, m.HTTPResponse, m.Body, http.StatusUnauthorized, "unauthenticated")
	}
	rr := ssoRefresh(t, b, s.RefreshToken)
	ssoProblem(t, "replica B, refresh after logout", rr.HTTPResponse, rr.Body, http.StatusUnauthorized, "unauthenticated")

	// Reuse detected on B revokes the family for A.
	s2 := ssoLogin(t, e, f, cu)
	r := ssoRefresh(t, e, s2.RefreshToken)
	if r.StatusCode() != http.StatusOK {
		t.Fatalf("refresh on A: %d %s", r.StatusCode(), r.Body)
	}
	time.Sleep(5 * time.Millisecond)
	reuse := ssoRefresh(t, b, s2.RefreshToken)
	ssoProblem(t, "reuse on B", reuse.HTTPResponse, reuse.Body, http.StatusUnauthorized, "unauthenticated")
	for name, tok := range map[string]string{"login token": s2.AccessToken, "refreshed token": r.JSON200.AccessToken} {
		m := ssoMe(t, e, tok)
		ssoProblem(t, "replica A after reuse on B, "+name, m.HTTPResponse, m.Body, http.StatusUnauthorized, "unauthenticated")
	}
}

func TestMe(t *testing.T) {
	e, f := ssoNew(t)
	t.Run("API token", func(t *testing.T) { ssoMeAPIToken(t, e, f) })
	t.Run("refused credentials", func(t *testing.T) { ssoMeUnauthenticated(t, e, f) })
}

func ssoLogoutFamily(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	cu := casdoortest.User{Name: "peggy", Email: "peggy@example.com", Tag: "editor"}
	s := ssoLogin(t, e, f, cu)
	other := ssoLogin(t, e, f, cu)
	claims, err := e.Tokens.Verify(s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	sibling, _, err := e.Tokens.Issue(s.User.Id, "editor", claims.SID, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ssoC(t, e, s.AccessToken).LogoutWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.StatusCode(), r.Body)
	}
	var bodies [][]byte
	for name, tok := range map[string]string{"the logged-out token": s.AccessToken, "a sibling of its family": sibling} {
		m := ssoMe(t, e, tok)
		ssoProblem(t, name, m.HTTPResponse, m.Body, http.StatusUnauthorized, "unauthenticated")
		if h := m.HTTPResponse.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", name, h)
		}
		fl, err := ssoC(t, e, tok).ListFlowsWithResponse(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ssoProblem(t, name+" on /flows", fl.HTTPResponse, fl.Body, http.StatusUnauthorized, "unauthenticated")
		bodies = append(bodies, m.Body, fl.Body)
	}
	rr := ssoRefresh(t, e, s.RefreshToken)
	ssoProblem(t, "refresh after logout", rr.HTTPResponse, rr.Body, http.StatusUnauthorized, "unauthenticated")
	if rt := ssoRefreshRow(t, e, s.RefreshToken); rt.RevokedAt == nil {
		t.Error("logout did not revoke the refresh family in the database")
	}
	// Logging out again with the revoked token is refused.
	again, err := ssoC(t, e, s.AccessToken).LogoutWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ssoProblem(t, "second logout", again.HTTPResponse, again.Body, http.StatusUnauthorized, "unauthenticated")
	// The user's other session lives on.
	if m := ssoMe(t, e, other.AccessToken); m.StatusCode() != http.StatusOK {
		t.Errorf("other session after logout: %d %s", m.StatusCode(), m.Body)
	}
	rows := ssoAudits(t, e, "auth.logout")
	if len(rows) != 1 {
		t.Fatalf("%d auth.logout rows, want 1", len(rows))
	}
	if a := rows[0]; a.ActorType != store.ActorUser || a.ActorUserID == nil || *a.ActorUserID != s.User.Id ||
		a.ResourceID == nil || *a.ResourceID != s.User.Id {
		t.Errorf("auth.logout row %+v", a)
	}
	ssoNoLeak(t, e, append(bodies, rr.Body), s.AccessToken, sibling, s.RefreshToken)
}

func ssoAPIToken(t *testing.T, e *testEnv, owner *store.User, scopes ...string) string {
	t.Helper()
	tok, prefix, hash := auth.NewAPIToken()
	at := &store.APIToken{OwnerID: owner.ID, Name: "partner " + prefix, Prefix: prefix, TokenHash: hash, Scopes: scopes,
		ExpiresAt: time.Now().Add(24 * time.Hour).UTC()}
	if err := store.CreateAPIToken(context.Background(), e.DB.DB, at); err != nil {
		t.Fatal(err)
	}
	return tok
}

func ssoLogoutAPIToken(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	owner, _ := e.User(rbac.Editor)
	tok := ssoAPIToken(t, e, owner, "flow:read")
	before := ssoCount(t, e)
	r, err := ssoC(t, e, tok).LogoutWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ssoProblem(t, "logout with an API token", r.HTTPResponse, r.Body, http.StatusForbidden, "forbidden")
	ssoSameCounts(t, "logout with an API token", e, before)
	// The token still works.
	if m := ssoMe(t, e, tok); m.StatusCode() != http.StatusOK {
		t.Errorf("API token after a refused logout: %d %s", m.StatusCode(), m.Body)
	}
	// Without a credential: 401.
	hr, b := e.Do(http.MethodPost, BasePath+"/casdoor/auth/logout", "", "", nil)
	ssoProblem(t, "logout without a token", hr, b, http.StatusUnauthorized, "unauthenticated")
	ssoNoLeak(t, e, [][]byte{r.Body}, tok)
}

func ssoMeAPIToken(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	owner, _ := e.User(rbac.Viewer)
	tok := ssoAPIToken(t, e, owner, "flow:read", "flow:delete")
	m := ssoMe(t, e, tok)
	if m.StatusCode() != http.StatusOK {
		t.Fatalf("me: %d %s", m.StatusCode(), m.Body)
	}
	me := m.JSON200
	if me.Id != owner.ID || me.Auth.Type != "api_token" {
		t.Errorf("me %+v", me)
	}
	if id, err := me.Auth.TokenId.Get(); err != nil || id == 0 {
		t.Errorf("auth.token_id %v", id)
	}
	if sc, err := me.Auth.Scopes.Get(); err != nil || strings.Join(sc, ",") != "flow:read,flow:delete" {
		t.Errorf("auth.scopes %v", sc)
	}
	var want []string
	for _, p := range []string{"flow:delete", "flow:read"} {
		if rbac.Has(rbac.Viewer, p) {
			want = append(want, p)
		}
	}
	if strings.Join(me.Permissions, ",") != strings.Join(want, ",") {
		t.Errorf("permissions %v, want scopes ∩ viewer %v", me.Permissions, want)
	}
}

func ssoMeUnauthenticated(t *testing.T, e *testEnv, f *casdoortest.Fake) {
	u, _ := e.User(rbac.Editor)
	other, err := auth.NewTokens(auth.TokenConfig{Secret: []byte(strings.Repeat("x", 40)), Issuer: e.Config.JWTIssuer, Audience: e.Config.JWTAudience, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	forged, _, _ := other.Issue(u.ID, "super_admin", "", 0)
	casdoorJWT := f.AccessToken(casdoortest.User{Name: "x", Email: "x@example.com"})
	ghost, _, _ := e.Tokens.Issue(u.ID+1000, "editor", "", 0)
	for name, tok := range map[string]string{"none": "", "garbage": "abc", "other secret": forged, "Casdoor JWT": casdoorJWT,
		"unknown user": ghost, "unknown API token": "wto_" + strings.Repeat("A", 43)} {
		m := ssoMe(t, e, tok)
		ssoProblem(t, name, m.HTTPResponse, m.Body, http.StatusUnauthorized, "unauthenticated")
		ssoNoLeak(t, e, [][]byte{m.Body}, tok)
	}
}

// ---------------------------------------------------------------------------
// 6. The shared store down: fail closed

func TestSSOSharedStoreDownFailsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { rdb.Close() })

	cfg := testConfig(t, ssoEnv(t))
	db := storetest.New(t)
	tokens, err := auth.TokensFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	e := ssoServe(t, Deps{Config: cfg, DB: db, Redis: rdb, Tokens: tokens, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Shared: auth.NewRedisShared(rdb)}, logs)

	_, tok := e.User(rbac.Editor)
	before := ssoCount(t, e)
	check := func(name string, hr *http.Response, body []byte) {
		t.Helper()
		p := ssoProblem(t, name, hr, body, http.StatusServiceUnavailable, "dependency-unavailable")
		if p.Dependency != "redis" {
			t.Errorf("%s: dependency %q, want redis", name, p.Dependency)
		}
		if hr.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", name)
		}
	}
	m := ssoMe(t, e, tok)
	check("me", m.HTTPResponse, m.Body)
	fl, err := ssoC(t, e, tok).ListFlowsWithResponse(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	check("flows", fl.HTTPResponse, fl.Body)
	lo, err := ssoC(t, e, tok).LogoutWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	check("logout", lo.HTTPResponse, lo.Body)
	lu, err := ssoC(t, e, "").GetLoginUrlWithResponse(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	check("login url", lu.HTTPResponse, lu.Body)
	rr := ssoRefresh(t, e, "wtr_whatever")
	check("refresh", rr.HTTPResponse, rr.Body)
	ssoSameCounts(t, "shared store down", e, before)
	ssoNoLeak(t, e, [][]byte{m.Body, fl.Body, lo.Body}, tok)
}

// ---------------------------------------------------------------------------
// 7. Rate limits on the public auth operations

func ssoClientFrom(t *testing.T, e *testEnv, token, ip string) *api.ClientWithResponses {
	t.Helper()
	c, err := api.NewClientWithResponses(e.HTTP.URL+BasePath, api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-Forwarded-For", ip)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRateLimitPublicAuth(t *testing.T) {
	env, _ := ssoEnvWithFake(t)
	e := newTestEnv(t, env, map[string]string{"RATE_LIMIT_PUBLIC_PER_MINUTE": "3", "TRUSTED_PROXIES": "127.0.0.1"})
	// A fresh address per run: with TEST_REDIS_URL the counters outlive the test.
	ip := ssoRandomIP()
	ctx := context.Background()
	c := ssoClientFrom(t, e, "", ip)
	for i := range 3 {
		r, err := c.GetLoginUrlWithResponse(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode() != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, r.StatusCode(), r.Body)
		}
		h := r.HTTPResponse.Header
		if h.Get("RateLimit-Limit") != "3" || h.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Errorf("request %d: RateLimit-Limit %q Remaining %q", i+1, h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"))
		}
	}
	r, err := c.GetLoginUrlWithResponse(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := ssoProblem(t, "4th login url", r.HTTPResponse, r.Body, http.StatusTooManyRequests, "rate-limited")
	h := r.HTTPResponse.Header
	ra, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", h.Get("Retry-After"))
	}
	if p.RetryAfter != ra {
		t.Errorf("retry_after %d, Retry-After %d", p.RetryAfter, ra)
	}
	reset, err := strconv.Atoi(h.Get("RateLimit-Reset"))
	if h.Get("RateLimit-Limit") != "3" || h.Get("RateLimit-Remaining") != "0" || err != nil || reset < 1 || reset > 60 {
		t.Errorf("429 headers: Limit %q Remaining %q Reset %q", h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("RateLimit-Reset"))
	}
	// The other public auth operations share the address's budget; the limiter answers first.
	cb, err := c.ExchangeCodeWithResponse(ctx, api.ExchangeCodeJSONRequestBody{Code: "c", State: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ssoProblem(t, "callback over the limit", cb.HTTPResponse, cb.Body, http.StatusTooManyRequests, "rate-limited")
	rr, err := c.RefreshTokensWithResponse(ctx, api.RefreshTokensJSONRequestBody{RefreshToken: "wtr_x"})
	if err != nil {
		t.Fatal(err)
	}
	ssoProblem(t, "refresh over the limit", rr.HTTPResponse, rr.Body, http.StatusTooManyRequests, "rate-limited")
	// Another address is not limited.
	if r, _ := ssoClientFrom(t, e, "", ssoRandomIP()).GetLoginUrlWithResponse(ctx, nil); r == nil || r.StatusCode() != http.StatusOK ||
		r.HTTPResponse.Header.Get("RateLimit-Remaining") != "2" {
		t.Errorf("another address is limited too")
	}
	// Authenticated operations from the limited address are not counted by it.
	_, tok := e.User(rbac.Editor)
	ac := ssoClientFrom(t, e, tok, ip)
	for i := range 5 {
		m, err := ac.GetMeWithResponse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.StatusCode() != http.StatusOK {
			t.Fatalf("authenticated request %d from a limited address: %d %s", i+1, m.StatusCode(), m.Body)
		}
		if m.HTTPResponse.Header.Get("RateLimit-Limit") == "3" {
			t.Error("the public limiter counted an authenticated operation")
		}
	}
}

package main

// TestTwoReplicas is DESIGN §5's proof of the scale model: two `wataomi serve`
// processes on one machine share PostgreSQL and Redis, and what one replica
// does (a sign-in, a rotation, a reuse detection, a logout, a rate-limit hit,
// a write) is seen by the other at once.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth/casdoortest"
	"github.com/wataomi/wataomi/store/storetest"
)

const (
	rpRedirectURI = "https://app.example.com/auth/callback"
	rpPublicLimit = 5
	// rpSecret is 44 bytes; both replicas must sign and verify with it.
	rpSecret = "replicas-test-secret-0123456789-abcdefghijkl"
)

func TestTwoReplicas(t *testing.T) {
	adminURL, redisURL := os.Getenv(storetest.EnvDatabaseURL), os.Getenv("TEST_REDIS_URL")
	if adminURL == "" || redisURL == "" {
		t.Skip("needs TEST_DATABASE_URL (a PostgreSQL admin URL) and TEST_REDIS_URL")
	}
	started := time.Now()

	// Registered first, so it is dropped after the replicas are gone (cleanups run LIFO).
	dbURL := storetest.EmptyPostgres(t, adminURL)
	fake := casdoortest.New(t)
	bin := rpBuild(t)

	work := t.TempDir() // no config.yaml or .env of the repository is read
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + work,
		"APP_ENV=test",
		"SECRET_KEY=" + rpSecret,
		"DATABASE_URL=" + dbURL,
		"REDIS_URL=" + redisURL,
		"CASDOOR_ENDPOINT=" + fake.URL,
		"CASDOOR_CLIENT_ID=" + fake.ClientID,
		"CASDOOR_CLIENT_SECRET=" + fake.ClientSecret,
		"CASDOOR_ORG_NAME=" + fake.Org,
		"CASDOOR_CERTIFICATE=" + fake.CertificatePEM(),
		"CASDOOR_REDIRECT_URIS=" + rpRedirectURI,
		"RATE_LIMIT_PUBLIC_PER_MINUTE=" + strconv.Itoa(rpPublicLimit),
		// Per-principal buckets are keyed by user id, and every test database numbers its users
		// from 1: the server package's tests, sharing this Redis, count against the same buckets.
		"RATE_LIMIT_PER_MINUTE=1000000",
		"REFRESH_REUSE_GRACE_SECONDS=0",
		// The limiter's Redis keys are global ("wataomi:rl:public:<ip>"): every
		// phase of this test speaks from its own random address (X-Forwarded-For,
		// trusted from loopback only), so a rerun within the minute, or another
		// test sharing the Redis database, cannot eat its budget.
		"TRUSTED_PROXIES=127.0.0.1",
		"LOG_FORMAT=text",
		"SHUTDOWN_TIMEOUT_SECONDS=5",
	}

	// Migrate once with the binary, then start both replicas at the same time.
	migrate := exec.Command(bin, "migrate", "up")
	migrate.Dir, migrate.Env = work, env
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("wataomi migrate up: %v\n%s", err, out)
	}
	a := rpStart(t, bin, work, env, "A")
	b := rpStart(t, bin, work, env, "B")
	rpWaitReady(t, a, b)
	t.Logf("two replicas ready after %s: A=%s B=%s", time.Since(started).Round(time.Millisecond), a.base, b.base)

	c := &rpClient{t: t, http: &http.Client{Timeout: 10 * time.Second}}

	t.Run("rotation and reuse detection across replicas", func(t *testing.T) {
		c := c.as(t, rpRandomIP(t))
		user := casdoortest.User{Name: "ada", DisplayName: "Ada", Email: "ada@example.com", Tag: "editor"}
		s1 := c.signIn(fake, a, a, user)
		if s1.User.Email != user.Email || s1.User.Role != "editor" {
			t.Fatalf("signed in as %+v", s1.User)
		}
		// A token minted by A is accepted by B (same SECRET_KEY, same database).
		c.wantMe(b, s1.AccessToken, http.StatusOK)

		// Rotation on B: B reads the refresh token A wrote.
		s2 := c.refresh(b, s1.RefreshToken, http.StatusOK)
		if s2.RefreshToken == "" || s2.RefreshToken == s1.RefreshToken || s2.AccessToken == s1.AccessToken {
			t.Fatalf("refresh on B did not rotate: %+v", s2)
		}
		if sid1, sid2 := rpClaim(t, s1.AccessToken, "sid"), rpClaim(t, s2.AccessToken, "sid"); sid1 == "" || sid1 != sid2 {
			t.Fatalf("sid %q after sign-in, %q after refresh: the rotation left the family", sid1, sid2)
		}
		c.wantMe(a, s2.AccessToken, http.StatusOK)
		c.wantMe(b, s1.AccessToken, http.StatusOK) // rotation alone revokes nothing

		// The spent token presented to A (no grace): reuse detected, the family dies everywhere.
		c.refresh(a, s1.RefreshToken, http.StatusUnauthorized)
		for _, srv := range []*rpServer{a, b} {
			c.wantMe(srv, s1.AccessToken, http.StatusUnauthorized)
			c.wantMe(srv, s2.AccessToken, http.StatusUnauthorized)
		}
		c.refresh(b, s2.RefreshToken, http.StatusUnauthorized) // the newest refresh token of the family too
	})

	t.Run("logout on A revokes on B", func(t *testing.T) {
		c := c.as(t, rpRandomIP(t))
		user := casdoortest.User{Name: "grace", DisplayName: "Grace", Email: "grace@example.com", Tag: "admin"}
		// The OAuth state created by B is consumed by A: it lives in Redis.
		s1 := c.signIn(fake, b, a, user)
		s2 := c.refresh(a, s1.RefreshToken, http.StatusOK) // a second access token of the family
		c.wantMe(b, s1.AccessToken, http.StatusOK)
		c.wantMe(b, s2.AccessToken, http.StatusOK)

		// A flow written through A is read through B (shared PostgreSQL).
		status, h, body := c.do(a, http.MethodPost, "/api/v1/flows", s2.AccessToken, `{"name":"Made on A"}`)
		if status != http.StatusCreated {
			t.Fatalf("create flow on A: %d %s", status, body)
		}
		var created struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		}
		rpDecode(t, body, &created)
		loc := h.Get("Location")
		if u, err := url.Parse(loc); err == nil && u.IsAbs() {
			loc = u.Path
		}
		if want := fmt.Sprintf("/api/v1/flows/%d", created.ID); loc != want {
			t.Fatalf("Location %q, want %q", h.Get("Location"), want)
		}
		status, hb, body := c.do(b, http.MethodGet, loc, s1.AccessToken, "")
		var seen struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		}
		if status != http.StatusOK {
			t.Fatalf("GET %s on B: %d %s", loc, status, body)
		}
		rpDecode(t, body, &seen)
		if seen.ID != created.ID || seen.Name != "Made on A" {
			t.Fatalf("B sees %+v, A created %+v", seen, created)
		}
		if h.Get("ETag") == "" || hb.Get("ETag") != h.Get("ETag") {
			t.Errorf("ETag %q on A's create, %q on B's read", h.Get("ETag"), hb.Get("ETag"))
		}

		status, _, body = c.do(a, http.MethodPost, "/api/v1/casdoor/auth/logout", s1.AccessToken, "")
		if status != http.StatusNoContent {
			t.Fatalf("logout on A: %d %s", status, body)
		}
		// At once, with no retry: the very next request to B is refused.
		c.wantMe(b, s1.AccessToken, http.StatusUnauthorized) // the jti
		c.wantMe(b, s2.AccessToken, http.StatusUnauthorized) // the family (sid)
		c.wantMe(a, s2.AccessToken, http.StatusUnauthorized)
		status, _, body = c.do(b, http.MethodGet, loc, s2.AccessToken, "")
		if status != http.StatusUnauthorized {
			t.Errorf("GET %s on B after logout: %d %s", loc, status, rpTrunc(body))
		}
		c.refresh(b, s2.RefreshToken, http.StatusUnauthorized)
	})

	t.Run("public rate limit is shared", func(t *testing.T) {
		c := c.as(t, rpRandomIP(t))
		servers := []*rpServer{a, b}
		for i := 1; i <= rpPublicLimit; i++ {
			srv := servers[(i-1)%2]
			status, h, body := c.do(srv, http.MethodGet, "/api/v1/casdoor/auth/login/url", "", "")
			if status != http.StatusOK {
				t.Fatalf("request %d of %d (on %s): %d %s", i, rpPublicLimit, srv.name, status, body)
			}
			if got, want := h.Get("RateLimit-Remaining"), strconv.Itoa(rpPublicLimit-i); got != want {
				t.Errorf("request %d (on %s): RateLimit-Remaining %q, want %q (one counter for both replicas)", i, srv.name, got, want)
			}
		}
		for _, srv := range []*rpServer{a, b, a} {
			status, h, body := c.do(srv, http.MethodGet, "/api/v1/casdoor/auth/login/url", "", "")
			if status != http.StatusTooManyRequests {
				t.Fatalf("over the limit on %s: %d %s", srv.name, status, rpTrunc(body))
			}
			ra, err := strconv.Atoi(h.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 60 {
				t.Errorf("429 on %s: Retry-After %q", srv.name, h.Get("Retry-After"))
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("429 on %s: Content-Type %q", srv.name, ct)
			}
			if h.Get("RateLimit-Limit") != strconv.Itoa(rpPublicLimit) || h.Get("RateLimit-Remaining") != "0" {
				t.Errorf("429 on %s: RateLimit-Limit %q, RateLimit-Remaining %q", srv.name, h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"))
			}
		}
		// The counter is per address: another client is still served, by either replica.
		other := c.as(t, rpRandomIP(t))
		for _, srv := range servers {
			if status, _, body := other.do(srv, http.MethodGet, "/api/v1/casdoor/auth/login/url", "", ""); status != http.StatusOK {
				t.Errorf("another address on %s: %d %s", srv.name, status, body)
			}
		}
	})

	rpAlive(t, a, b)
	t.Logf("done in %s", time.Since(started).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------
// processes

// rpBuild compiles this package once into a temporary directory.
func rpBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wataomi")
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Dir = "." // go test runs in the package directory
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// rpBuffer collects a process's output; the process writes while the test reads.
type rpBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *rpBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *rpBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type rpServer struct {
	name    string
	base    string
	cmd     *exec.Cmd
	out     *rpBuffer
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

func (s *rpServer) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// rpFreePort returns a loopback port that was free a moment ago.
func rpFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// rpStart starts `wataomi serve` on a free port and stops it when the test ends; a replica that
// exited on its own by then fails the test with its output.
func rpStart(t *testing.T, bin, dir string, env []string, name string) *rpServer {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", rpFreePort(t))
	s := &rpServer{name: name, base: "http://" + addr, out: &rpBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Dir = dir
	s.cmd.Env = append(append([]string{}, env...), "HTTP_ADDR="+addr)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start replica %s: %v", name, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if s.exited() {
			t.Errorf("replica %s exited before the test ended: %v\n%s", name, s.waitErr, s.out.String())
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			t.Errorf("replica %s ignored SIGTERM for 10 s\n%s", name, s.out.String())
		}
		if t.Failed() {
			t.Logf("replica %s output:\n%s", name, s.out.String())
		}
	})
	return s
}

// rpWaitReady polls /ready on every server, a bounded number of times.
func rpWaitReady(t *testing.T, servers ...*rpServer) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, s := range servers {
		ready := false
		for try := 0; try < 200 && !ready; try++ { // at most ~20 s (plus request timeouts)
			if s.exited() {
				t.Fatalf("replica %s exited during startup: %v\n%s", s.name, s.waitErr, s.out.String())
			}
			if resp, err := client.Get(s.base + "/ready"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
			if !ready {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !ready {
			t.Fatalf("replica %s never became ready\n%s", s.name, s.out.String())
		}
	}
}

// rpAlive fails the test if a replica has exited.
func rpAlive(t *testing.T, servers ...*rpServer) {
	t.Helper()
	for _, s := range servers {
		if s.exited() {
			t.Fatalf("replica %s exited: %v\n%s", s.name, s.waitErr, s.out.String())
		}
	}
}

// ---------------------------------------------------------------------------
// HTTP

// rpClient speaks to the replicas as one client address (X-Forwarded-For, trusted from loopback).
type rpClient struct {
	t    *testing.T
	http *http.Client
	ip   string
}

func (c *rpClient) as(t *testing.T, ip string) *rpClient {
	return &rpClient{t: t, http: c.http, ip: ip}
}

// rpRandomIP returns a random address in 198.18.0.0/15 (benchmarking, never routed).
func rpRandomIP(t *testing.T) string {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("198.%d.%d.%d", 18+b[0]%2, b[1], b[2]|1)
}

func (c *rpClient) do(s *rpServer, method, path, token, body string) (int, http.Header, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c.ip != "" {
		req.Header.Set("X-Forwarded-For", c.ip)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if s.exited() {
			c.t.Fatalf("%s %s on %s: %v; the replica exited: %v\n%s", method, path, s.name, err, s.waitErr, s.out.String())
		}
		c.t.Fatalf("%s %s on %s: %v", method, path, s.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		c.t.Fatalf("%s %s on %s: read body: %v", method, path, s.name, err)
	}
	return resp.StatusCode, resp.Header, b
}

type rpSession struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	User         struct {
		ID    int64  `json:"id"`
		Email string `json:"email"`
		Role  string `json:"role"`
	} `json:"user"`
}

// signIn runs the SSO flow: the login URL from one replica, the callback on another (or the same).
func (c *rpClient) signIn(fake *casdoortest.Fake, urlFrom, callbackOn *rpServer, u casdoortest.User) rpSession {
	c.t.Helper()
	status, _, body := c.do(urlFrom, http.MethodGet, "/api/v1/casdoor/auth/login/url", "", "")
	if status != http.StatusOK {
		c.t.Fatalf("login url on %s: %d %s", urlFrom.name, status, body)
	}
	var lu struct {
		URL         string `json:"url"`
		RedirectURI string `json:"redirect_uri"`
		State       string `json:"state"`
	}
	rpDecode(c.t, body, &lu)
	authz, err := url.Parse(lu.URL)
	if err != nil {
		c.t.Fatalf("login url %q: %v", lu.URL, err)
	}
	q := authz.Query()
	if lu.RedirectURI != rpRedirectURI || q.Get("redirect_uri") != rpRedirectURI || q.Get("state") != lu.State ||
		q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		c.t.Fatalf("login url %+v", lu)
	}
	code := fake.IssueCode(u, lu.RedirectURI, q.Get("code_challenge"))
	cb, _ := json.Marshal(map[string]string{"code": code, "state": lu.State})
	status, _, body = c.do(callbackOn, http.MethodPost, "/api/v1/casdoor/auth/callback", "", string(cb))
	if status != http.StatusOK {
		c.t.Fatalf("callback on %s: %d %s", callbackOn.name, status, body)
	}
	var s rpSession
	rpDecode(c.t, body, &s)
	if s.AccessToken == "" || !strings.HasPrefix(s.RefreshToken, "wtr_") {
		c.t.Fatalf("callback on %s: %s", callbackOn.name, body)
	}
	return s
}

// refresh presents a refresh token and requires the status; on 200 it returns the new session.
func (c *rpClient) refresh(s *rpServer, refreshToken string, want int) rpSession {
	c.t.Helper()
	body, _ := json.Marshal(map[string]string{"refresh_token": refreshToken})
	status, _, got := c.do(s, http.MethodPost, "/api/v1/casdoor/auth/refresh", "", string(body))
	if status != want {
		c.t.Fatalf("refresh on %s: %d %s, want %d", s.name, status, got, want)
	}
	var out rpSession
	if status == http.StatusOK {
		rpDecode(c.t, got, &out)
	}
	return out
}

func (c *rpClient) wantMe(s *rpServer, token string, want int) {
	c.t.Helper()
	status, _, body := c.do(s, http.MethodGet, "/api/v1/casdoor/auth/me", token, "")
	if status != want {
		c.t.Errorf("GET /me on %s: %d %s, want %d", s.name, status, rpTrunc(body), want)
	}
}

func rpDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// rpClaim reads one string claim of a JWT without verifying it (the servers did).
func rpClaim(t *testing.T, jwt, name string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var claims map[string]any
	rpDecode(t, raw, &claims)
	s, _ := claims[name].(string)
	return s
}

// rpTrunc shortens a response body for a failure message.
func rpTrunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	dcRefRe          = regexp.MustCompile(`(?i)\b(?:src|href|spec-url)\s*=\s*"([^"]*)"`)
	dcAbsoluteURLRe  = regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+`)
	dcInlineScriptRe = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	dcTypes          = map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
)

// dcGet fetches path from the server with the given headers.
func dcGet(t *testing.T, e *testEnv, p string, kv ...string) (*http.Response, []byte) {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return e.Send(t, http.MethodGet, p, h, nil)
}

// dcVendored reads the vendored files of server/docsassets (the Go file excluded).
func dcVendored(t *testing.T) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir("docsassets")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, en := range entries {
		if en.IsDir() || strings.HasSuffix(en.Name(), ".go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("docsassets", en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[en.Name()] = b
	}
	if len(out) != 4 {
		t.Fatalf("server/docsassets holds %d vendored files, want 4 (run npm run vendor:docs)", len(out))
	}
	return out
}

// dcDirectives splits a Content-Security-Policy into its directives.
func dcDirectives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[f[0]] = f[1:]
		}
	}
	return out
}

func dcHas(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestDocsPages fetches /docs and /redoc like a browser would: the pages, every asset they
// reference (byte-equal to the vendored files) and the spec they read, and checks that nothing points
// at another host and that the policy lets exactly the page's own scripts run.
func TestDocsPages(t *testing.T) {
	e := newTestEnv(t, map[string]string{"PROJECT_NAME": "Acme <Docs> & Co"})
	vendored := dcVendored(t)
	referenced := map[string]bool{}
	pages := map[string][]string{
		"/docs":  {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"},
		"/redoc": {"redoc.standalone.js", "favicon-32x32.png"},
	}
	for page, wantAssets := range pages {
		t.Run(strings.TrimPrefix(page, "/"), func(t *testing.T) {
			resp, body := dcGet(t, e, page)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=UTF-8" {
				t.Fatalf("%s: %d %q", page, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			html := string(body)
			if !strings.Contains(html, "<title>Acme &lt;Docs&gt; &amp; Co API") {
				t.Errorf("%s: the title does not carry the escaped PROJECT_NAME:\n%s", page, html)
			}
			for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
				if resp.Header.Get(k) != v {
					t.Errorf("%s: %s = %q, want %q", page, k, resp.Header.Get(k), v)
				}
			}
			if m := dcAbsoluteURLRe.FindAllString(html, -1); len(m) > 0 {
				t.Errorf("%s references absolute URLs %v", page, m)
			}
			if !strings.Contains(html, `"/openapi.json"`) {
				t.Errorf("%s does not read /openapi.json", page)
			}
			if page == "/docs" && !strings.Contains(html, "validatorUrl: null") {
				t.Errorf("/docs does not turn the validator badge off")
			}

			// The policy: nothing from elsewhere, no eval, inline scripts only by hash.
			csp := dcDirectives(resp.Header.Get("Content-Security-Policy"))
			if !dcHas(csp["default-src"], "'none'") || !dcHas(csp["frame-ancestors"], "'none'") || !dcHas(csp["base-uri"], "'none'") {
				t.Errorf("%s: weak policy %v", page, csp)
			}
			for _, d := range csp {
				for _, src := range d {
					if src == "'unsafe-eval'" || src == "*" || strings.Contains(src, "://") || src == "http:" || src == "https:" {
						t.Errorf("%s: the policy allows %s", page, src)
					}
				}
			}
			if dcHas(csp["script-src"], "'unsafe-inline'") || !dcHas(csp["connect-src"], "'self'") {
				t.Errorf("%s: script-src %v, connect-src %v", page, csp["script-src"], csp["connect-src"])
			}
			inline := dcInlineScriptRe.FindAllStringSubmatch(html, -1)
			for _, m := range inline {
				sum := sha256.Sum256([]byte(m[1]))
				if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !dcHas(csp["script-src"], h) {
					t.Errorf("%s: inline script %q is not allowed by script-src %v", page, m[1], csp["script-src"])
				}
			}
			if page == "/docs" && len(inline) != 1 || page == "/redoc" && len(inline) != 0 {
				t.Errorf("%s has %d inline scripts", page, len(inline))
			}

			// Every reference is same-origin; the assets are served as vendored.
			got := map[string]bool{}
			for _, m := range dcRefRe.FindAllStringSubmatch(html, -1) {
				ref := m[1]
				if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
					t.Errorf("%s: reference %q is not a same-origin path", page, ref)
					continue
				}
				if ref == "/openapi.json" {
					continue
				}
				if !strings.HasPrefix(ref, docsAssetsPrefix) {
					t.Errorf("%s: unexpected reference %q", page, ref)
					continue
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(ref, docsAssetsPrefix), "?")
				got[name], referenced[name] = true, true
				resp, body := dcGet(t, e, ref)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != dcTypes[path.Ext(name)] {
					t.Errorf("%s: %d %q", ref, resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				if want, ok := vendored[name]; !ok || !bytes.Equal(body, want) {
					t.Errorf("%s: %d bytes differ from server/docsassets/%s (%d bytes)", ref, len(body), name, len(want))
				}
				if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
					t.Errorf("%s: Cache-Control %q", ref, cc)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: no nosniff", ref)
				}
			}
			for _, a := range wantAssets {
				if !got[a] {
					t.Errorf("%s does not reference %s (got %v)", page, a, got)
				}
			}
		})
	}
	for name := range vendored {
		if !referenced[name] {
			t.Errorf("server/docsassets/%s is vendored but no page uses it", name)
		}
	}

	// The spec both pages read.
	resp, body := dcGet(t, e, "/openapi.json")
	var spec struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		json.Unmarshal(body, &spec) != nil || spec.OpenAPI == "" || len(spec.Paths) == 0 {
		t.Fatalf("/openapi.json: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestDocsAssets covers the asset route itself: 404 problems, compression and revalidation.
func TestDocsAssets(t *testing.T) {
	e := newTestEnv(t)
	want := dcVendored(t)["swagger-ui-bundle.js"]

	for _, p := range []string{"/docs/assets/nope.js", "/docs/assets/", "/docs/assets/docs.go", "/docs/assets/embed.go",
		"/docs/assets/..%2fdocs.go", "/docs/assets/sub/swagger-ui.css", "/docs/assets/swagger-ui.css.map"} {
		resp, body := dcGet(t, e, p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
			continue
		}
		if pr := problemOf(t, resp, body); pr.Type != "urn:wataomi:problem:not-found" {
			t.Errorf("%s: problem %+v", p, pr)
		}
	}

	// Identity: the exact bytes.
	resp, body := dcGet(t, e, "/docs/assets/swagger-ui-bundle.js", "Accept-Encoding", "identity")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) {
		t.Fatalf("identity: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(body))
	}
	etag := resp.Header.Get("ETag")
	if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Accept-Encoding") || !strings.HasPrefix(etag, `"`) {
		t.Errorf("Vary %q, ETag %q", resp.Header.Values("Vary"), etag)
	}

	// gzip: smaller on the wire, the same bytes once decompressed, its own ETag.
	resp, body = dcGet(t, e, "/docs/assets/swagger-ui-bundle.js", "Accept-Encoding", "br;q=1, gzip;q=0.8")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" || len(body) >= len(want)/2 {
		t.Fatalf("gzip: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(body))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, want) {
		t.Fatalf("gzip body does not decompress to the vendored file: %v", err)
	}
	gzTag := resp.Header.Get("ETag")
	if gzTag == etag || gzTag == "" {
		t.Errorf("gzip ETag %q, identity ETag %q", gzTag, etag)
	}
	if resp, _ := dcGet(t, e, "/docs/assets/swagger-ui-bundle.js", "Accept-Encoding", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got %q", resp.Header.Get("Content-Encoding"))
	}

	// The PNG is sent as is.
	if resp, _ := dcGet(t, e, "/docs/assets/favicon-32x32.png", "Accept-Encoding", "gzip"); resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("favicon: %q %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"))
	}

	// Revalidation.
	resp, body = dcGet(t, e, "/docs/assets/swagger-ui-bundle.js", "Accept-Encoding", "identity", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := dcGet(t, e, "/docs/assets/swagger-ui-bundle.js", "Accept-Encoding", "identity", "If-None-Match", `"other"`); resp.StatusCode != http.StatusOK {
		t.Errorf("stale If-None-Match: %d", resp.StatusCode)
	}

	// A trailing slash is the canonical path (PRODUCT §2.1).
	if resp, _ := dcGet(t, e, "/docs/"); resp.StatusCode != http.StatusOK {
		t.Errorf("/docs/: %d", resp.StatusCode)
	}
}

func TestDocsAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{"": false, "gzip": true, "GZIP": true, "deflate, gzip;q=1.0": true, "gzip;q=0": false,
		"gzip; q=0.000": false, "gzip;q=0.1": true, "br": false, "x-gzip": false, "*": false, "gzip;q=abc": false} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}

// TestDocsChromium renders both pages in headless Chromium when it is installed (it is optional):
// the operations must appear, with nothing but this server to talk to. Screenshots go to
// $DOCS_SCREENSHOT_DIR when set.
func TestDocsChromium(t *testing.T) {
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no " + bin)
	}
	e := newTestEnv(t)
	// Count what the browser asks for: every request must succeed (no failed network request), and
	// the pages must have loaded their assets and the contract.
	var mu sync.Mutex
	seen := map[string]int{}
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		e.Server.Echo.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		mu.Lock()
		seen[r.URL.Path] = rec.Code
		mu.Unlock()
	}))
	defer counting.Close()
	out := os.Getenv("DOCS_SCREENSHOT_DIR")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for page, marker := range map[string]string{"/docs": "opblock-summary", "/redoc": `data-section-id="operation/`} {
		name := strings.TrimPrefix(page, "/")
		for _, mode := range []string{"--dump-dom", "--screenshot=" + filepath.Join(out, name+".png")} {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--disable-extensions", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
				"--window-size=1280,2000", "--virtual-time-budget=15000", mode, counting.URL+page)
			dom, err := cmd.Output()
			cancel()
			if err != nil {
				t.Fatalf("chromium %s %s: %v", mode, page, err)
			}
			if mode == "--dump-dom" && !strings.Contains(string(dom), marker) {
				t.Errorf("%s rendered without operations (%q missing); DOM:\n%.2000s", page, marker, dom)
			}
		}
		shot := filepath.Join(out, name+".png")
		if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
			t.Errorf("no screenshot of %s at %s (%v)", page, shot, err)
		}
		t.Logf("screenshot: %s", shot)
	}
	mu.Lock()
	defer mu.Unlock()
	for path, code := range seen {
		if code >= 400 {
			t.Errorf("the browser's request for %s failed with %d", path, code)
		}
	}
	for _, want := range []string{"/openapi.json", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/redoc.standalone.js"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("the browser never requested %s (requests: %v)", want, seen)
		}
	}
}

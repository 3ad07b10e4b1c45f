package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/wataomi/wataomi/server/docsassets"
)

// The rendered API docs (PRODUCT §5.23): Swagger UI at /docs and Redoc at /redoc, both reading
// /openapi.json, with their files embedded from server/docsassets and served under /docs/assets/.
// Nothing is fetched from another host: the pages reference same-origin URLs only, and their
// Content-Security-Policy forbids anything else (it also blocks Redoc's footer logo from
// cdn.redoc.ly, which Redoc then hides).

const docsAssetsPrefix = "/docs/assets/"

// swaggerInit starts Swagger UI. It is the only inline script; the /docs policy allows it by hash.
// validatorUrl null: Swagger UI would otherwise send the spec to validator.swagger.io.
const swaggerInit = `SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true});`

// The policies allow what each bundle needs and nothing more: same-origin scripts and fetches (the
// spec, and Swagger UI's "Try it out" on /api/v1), inline styles (React style props, Redoc's
// styled-components), data: images (Swagger UI's CSS icons), blob: images for Swagger UI's response
// previews and a blob: worker for Redoc's search. Neither bundle needs 'unsafe-eval' (both render
// fully in jsdom with code generation from strings disabled).
var (
	swaggerCSP = "default-src 'none'; script-src 'self' '" + cspHash(swaggerInit) + "'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	redocCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"font-src 'self' data:; connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// The pages, as fmt formats: the escaped title, then the asset URLs (assetURL), then the init script.
const swaggerPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%[1]s API – Swagger UI</title>
<link rel="icon" type="image/png" href="%[2]s">
<link rel="stylesheet" href="%[3]s">
<style>html{box-sizing:border-box;overflow-y:scroll}*,*:before,*:after{box-sizing:inherit}body{margin:0;background:#fafafa}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="%[4]s"></script>
<script>%[5]s</script>
</body>
</html>
`

const redocPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%[1]s API – Redoc</title>
<link rel="icon" type="image/png" href="%[2]s">
<style>body{margin:0;padding:0}</style>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="%[3]s"></script>
</body>
</html>
`

// docAsset is one embedded file with what its responses need.
type docAsset struct {
	body        []byte
	contentType string
	etag        string // strong, from the content
	version     string // the ?v= the pages add, so a new vendored copy is a new URL
	compress    bool
	gzOnce      sync.Once
	gz          []byte // gzip of body, made on first use
}

var docsContentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".png": "image/png",
}

// docsAssets are the embedded files by name.
var docsAssets = loadDocsAssets(docsassets.FS)

func loadDocsAssets(fsys fs.FS) map[string]*docAsset {
	out := map[string]*docAsset{}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		panic(err)
	}
	for _, en := range entries {
		ct, ok := docsContentTypes[path.Ext(en.Name())]
		if en.IsDir() || !ok {
			panic("docs asset of unknown type: " + en.Name())
		}
		b, err := fs.ReadFile(fsys, en.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		v := hex.EncodeToString(sum[:8])
		out[en.Name()] = &docAsset{body: b, contentType: ct, etag: `"` + v + `"`, version: v, compress: ct != "image/png"}
	}
	return out
}

// assetURL is the versioned URL of an embedded file; a missing file fails at startup.
func assetURL(name string) string {
	a, ok := docsAssets[name]
	if !ok {
		panic("no docs asset " + name)
	}
	return docsAssetsPrefix + name + "?v=" + a.version
}

func cspHash(script string) string {
	sum := sha256.Sum256([]byte(script))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// docsRoutes registers GET /docs, GET /redoc and GET /docs/assets/*.
func (s *Server) docsRoutes(e *echo.Echo) {
	page := func(doc, csp string) echo.HandlerFunc {
		body := []byte(doc)
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", csp)
			h.Set(echo.HeaderCacheControl, "no-cache")
			return c.HTMLBlob(http.StatusOK, body)
		}
	}
	title := html.EscapeString(s.deps.Config.ProjectName)
	favicon := assetURL("favicon-32x32.png")
	swagger := fmt.Sprintf(swaggerPage, title, favicon, assetURL("swagger-ui.css"), assetURL("swagger-ui-bundle.js"), swaggerInit)
	redoc := fmt.Sprintf(redocPage, title, favicon, assetURL("redoc.standalone.js"))
	e.GET("/docs", page(swagger, swaggerCSP))
	e.GET("/redoc", page(redoc, redocCSP))
	e.GET(docsAssetsPrefix+"*", serveDocsAsset)
}

// serveDocsAsset answers an embedded file, gzipped when the client accepts it, cacheable for a year
// (the pages version the URLs). An unknown name is a 404 problem.
func serveDocsAsset(c echo.Context) error {
	a, ok := docsAssets[c.Param("*")]
	if !ok {
		return notFound("Docs asset")
	}
	req, h := c.Request(), c.Response().Header()
	body, etag := a.body, a.etag
	if a.compress {
		h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
		if acceptsGzip(req.Header.Get(echo.HeaderAcceptEncoding)) {
			body, etag = a.gzipped(), strings.TrimSuffix(a.etag, `"`)+`-gz"`
			h.Set(echo.HeaderContentEncoding, "gzip")
		}
	}
	h.Set(echo.HeaderCacheControl, "public, max-age=31536000, immutable")
	h.Set("ETag", etag)
	if inm := req.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		h.Del(echo.HeaderContentEncoding)
		return c.NoContent(http.StatusNotModified)
	}
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(http.StatusOK, a.contentType, body)
}

func (a *docAsset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(a.body)
		_ = zw.Close()
		a.gz = buf.Bytes()
	})
	return a.gz
}

// acceptsGzip reads an Accept-Encoding header: gzip listed, and not with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.TrimSpace(params)
		if v, ok := strings.CutPrefix(strings.ToLower(q), "q="); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && f > 0
		}
		return true
	}
	return false
}

// etagMatches is the weak comparison of If-None-Match (RFC 9110 §13.1.2).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

package server

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/media"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// pngBytes is a w×h PNG.
func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewRGBA(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zipWith is a ZIP holding the named (empty) entries.
func zipWith(t *testing.T, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte("<x/>"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// multipartFile builds a multipart body with one part `field` holding content under filename.
func multipartFile(t *testing.T, field, filename string, content []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, filename))
	h.Set("Content-Type", "image/png") // a lie the server must ignore
	w, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(content)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.Bytes()
}

func mediaUpload(t *testing.T, e *testEnv, token, kind, filename string, content []byte) (*http.Response, []byte) {
	t.Helper()
	ct, body := multipartFile(t, "file", filename, content)
	return e.Do(http.MethodPost, BasePath+"/media/upload/"+kind, token, ct, bytes.NewReader(body))
}

func decodeMedia(t *testing.T, b []byte) api.Media {
	t.Helper()
	var m api.Media
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("media body: %v: %s", err, b)
	}
	return m
}

// mediaFiles lists what the local driver's directory holds (spool files under .incoming/ included).
func mediaFiles(t *testing.T, e *testEnv) []string {
	t.Helper()
	var out []string
	root := e.Config.MediaLocalDir
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func mediaRows(t *testing.T, e *testEnv) int64 {
	t.Helper()
	var n int64
	if err := e.DB.Model(&store.Media{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMediaUploadLocal(t *testing.T) {
	e := newTestEnv(t, map[string]string{"MEDIA_STORAGE": "local", "PUBLIC_BASE_URL": "https://api.example.com"})
	u, tok := e.User(rbac.Editor)
	img := pngBytes(t, 4, 3)
	resp, b := mediaUpload(t, e, tok, "image", "logo.png", img)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	m := decodeMedia(t, b)
	if resp.Header.Get("Location") != fmt.Sprintf("/api/v1/media/%d", m.Id) {
		t.Errorf("Location = %q", resp.Header.Get("Location"))
	}
	w, _ := m.Width.Get()
	h, _ := m.Height.Get()
	if m.MimeType != "image/png" || m.Format != "png" || m.ResourceType != "image" || m.Bytes != int64(len(img)) ||
		m.Filename != "logo.png" || m.UploadedBy != u.ID || w != 4 || h != 3 ||
		!strings.HasPrefix(m.PublicId, fmt.Sprintf("wataomi/%d/", u.ID)) {
		t.Errorf("media = %+v", m)
	}
	prefix := "https://api.example.com/api/v1/media/files/"
	key := strings.TrimPrefix(m.Url, prefix)
	if !strings.HasPrefix(m.Url, prefix) || !media.KeyPattern.MatchString(key) || m.SecureUrl != m.Url {
		t.Fatalf("url = %q", m.Url)
	}
	if files := mediaFiles(t, e); len(files) != 1 || files[0] != key {
		t.Errorf("stored files = %v, want [%s]", files, key)
	}

	// The public file route serves the bytes with the sniffed type, no attachment for images.
	resp, got := e.Do(http.MethodGet, BasePath+"/media/files/"+key, "", "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, img) || resp.Header.Get("Content-Type") != "image/png" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("file: %d %q %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("Content-Disposition"))
	}
	resp, b = e.Do(http.MethodGet, BasePath+"/media/files/"+strings.Repeat("B", 43)+".png", "", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown key: %d %s", resp.StatusCode, b)
	}

	// Files: CSV by extension (an attachment when served), DOCX and XLSX by their ZIP entries.
	for _, tc := range []struct {
		name    string
		content []byte
		mime    string
		rt      api.MediaResourceType
	}{
		{"data.csv", []byte("a,b\n1,2\n"), "text/csv", "raw"},
		{"notes.md", []byte("# Title\n\ntext\n"), "text/markdown", "raw"},
		{"report.docx", zipWith(t, "[Content_Types].xml", "word/document.xml"), "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "raw"},
		{"sheet.xlsx", zipWith(t, "[Content_Types].xml", "xl/workbook.xml"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "raw"},
		{"doc.pdf", []byte("%PDF-1.4\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n"), "application/pdf", "raw"},
		{"photo.bin", img, "image/png", "image"},
	} {
		resp, b := mediaUpload(t, e, tok, "file", tc.name, tc.content)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
			continue
		}
		m := decodeMedia(t, b)
		if m.MimeType != tc.mime || m.ResourceType != tc.rt {
			t.Errorf("%s: mime %q resource %q, want %q %q", tc.name, m.MimeType, m.ResourceType, tc.mime, tc.rt)
		}
		if tc.mime == "text/csv" {
			key := m.Url[strings.LastIndex(m.Url, "/")+1:]
			resp, _ := e.Do(http.MethodGet, BasePath+"/media/files/"+key, "", "", nil)
			if resp.Header.Get("Content-Type") != "text/csv" || resp.Header.Get("Content-Disposition") != `attachment; filename="data.csv"` {
				t.Errorf("csv file: %q %q", resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
			}
		}
	}
}

func TestMediaUploadRefusals(t *testing.T) {
	e := newTestEnv(t, map[string]string{"MEDIA_STORAGE": "local", "MEDIA_MAX_IMAGE_BYTES": "2048", "MEDIA_MAX_FILE_BYTES": "4096"})
	_, tok := e.User(rbac.Editor)
	big := append(pngBytes(t, 2, 2), bytes.Repeat([]byte{0}, 3000)...)
	nothingStored := func(label string) {
		t.Helper()
		if n := mediaRows(t, e); n != 0 {
			t.Errorf("%s: %d media rows", label, n)
		}
		if files := mediaFiles(t, e); len(files) != 0 {
			t.Errorf("%s: files left behind: %v", label, files)
		}
	}

	// Over the cap, streamed (chunked: no Content-Length to refuse up front): 413 while reading.
	ct, body := multipartFile(t, "file", "big.png", big)
	h := http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {ct}}
	resp, b := e.Send(t, http.MethodPost, BasePath+"/media/upload/image", h, io.MultiReader(bytes.NewReader(body))) // no length: chunked
	if resp.StatusCode != http.StatusRequestEntityTooLarge || problemOf(t, resp, b).Type != "urn:wataomi:problem:payload-too-large" {
		t.Fatalf("chunked oversize: %d %s", resp.StatusCode, b)
	}
	nothingStored("chunked oversize")
	// A Content-Length over the op's limit (cap + 64 KiB) is refused before reading.
	huge := append(pngBytes(t, 2, 2), bytes.Repeat([]byte{0}, 70<<10)...)
	resp, b = mediaUpload(t, e, tok, "image", "huge.png", huge)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared oversize: %d %s", resp.StatusCode, b)
	}
	nothingStored("declared oversize")
	// Within the body limit but over the file cap, with a Content-Length.
	resp, b = mediaUpload(t, e, tok, "image", "big.png", big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize: %d %s", resp.StatusCode, b)
	}
	nothingStored("oversize")

	// Wrong sniffed types: 415, whatever the name and the part's Content-Type claim.
	for _, tc := range []struct {
		kind, name string
		content    []byte
	}{
		{"image", "cat.png", []byte("%PDF-1.4\n1 0 obj\n<<>>\nendobj\n")},
		{"image", "x.png", []byte("just text")},
		{"file", "page.txt", []byte("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>")},
		{"file", "archive.docx", zipWith(t, "other.txt")},
		{"file", "run.exe", append([]byte("MZ"), bytes.Repeat([]byte{0x90}, 200)...)}, // not UTF-8: not text
		{"file", "run2.exe", append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00"), bytes.Repeat([]byte{0}, 200)...)},
		{"file", "clip.webm", []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm")},
	} {
		resp, b := mediaUpload(t, e, tok, tc.kind, tc.name, tc.content)
		if resp.StatusCode != http.StatusUnsupportedMediaType || problemOf(t, resp, b).Type != "urn:wataomi:problem:unsupported-media-type" {
			t.Errorf("%s as %s: %d %s", tc.name, tc.kind, resp.StatusCode, b)
		}
	}
	nothingStored("wrong types")

	// Shape: another field, no file, not multipart.
	ct, body = multipartFile(t, "document", "a.png", pngBytes(t, 1, 1))
	resp, b = e.Do(http.MethodPost, BasePath+"/media/upload/image", tok, ct, bytes.NewReader(body))
	if resp.StatusCode != http.StatusBadRequest || problemOf(t, resp, b).Errors[0].Pointer != "/document" {
		t.Errorf("other field: %d %s", resp.StatusCode, b)
	}
	resp, b = e.Do(http.MethodPost, BasePath+"/media/upload/image", tok, "application/json", strings.NewReader(`{}`))
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("json body: %d %s", resp.StatusCode, b)
	}
	resp, b = e.Do(http.MethodPost, BasePath+"/media/upload/image", tok, "multipart/form-data", strings.NewReader("x"))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no boundary: %d %s", resp.StatusCode, b)
	}
	nothingStored("shape")
}

func TestMediaPathTraversalName(t *testing.T) {
	e := newTestEnv(t, map[string]string{"MEDIA_STORAGE": "local"})
	_, tok := e.User(rbac.Editor)
	parent := filepath.Dir(e.Config.MediaLocalDir)
	before, _ := os.ReadDir(parent)
	for _, name := range []string{"../../evil.png", `..\..\evil.png`, "/etc/passwd", ".."} {
		resp, b := mediaUpload(t, e, tok, "image", name, pngBytes(t, 1, 1))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%q: %d %s", name, resp.StatusCode, b)
		}
		m := decodeMedia(t, b)
		if strings.ContainsAny(m.Filename, `/\`) || m.Filename == ".." {
			t.Errorf("%q: filename %q", name, m.Filename)
		}
		key := m.Url[strings.LastIndex(m.Url, "/")+1:]
		if !media.KeyPattern.MatchString(key) || strings.Contains(key, "evil") || strings.Contains(key, "passwd") {
			t.Errorf("%q: key %q", name, key)
		}
	}
	after, _ := os.ReadDir(parent)
	if len(after) != len(before) {
		t.Errorf("the media directory's parent changed: %v → %v", before, after)
	}
	if files := mediaFiles(t, e); len(files) != 4 {
		t.Errorf("stored files = %v", files)
	}
}

// An upload whose client goes away mid-body stores nothing and leaves no spool file.
func TestMediaUploadInterrupted(t *testing.T) {
	e := newTestEnv(t, map[string]string{"MEDIA_STORAGE": "local"})
	_, tok := e.User(rbac.Editor)
	_, body := multipartFile(t, "file", "cut.png", append(pngBytes(t, 2, 2), bytes.Repeat([]byte{1}, 50_000)...))
	conn, err := net.Dial("tcp", e.HTTP.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	boundary := string(body[2:bytes.IndexByte(body, '\r')])
	start := e.checked.Load()
	fmt.Fprintf(conn, "POST %s/media/upload/file HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n", BasePath, tok, boundary, len(body))
	if _, err := conn.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server is now copying the part
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.checked.Load() == start && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if e.checked.Load() == start {
		t.Fatal("the server never finished the interrupted request")
	}
	if n := mediaRows(t, e); n != 0 {
		t.Errorf("%d media rows", n)
	}
	if files := mediaFiles(t, e); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
}

func TestMediaListGetDeleteOwnership(t *testing.T) {
	e := newTestEnv(t, map[string]string{"MEDIA_STORAGE": "local"})
	alice, aliceTok := e.User(rbac.Editor)
	bob, bobTok := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.Admin)
	_, viewerTok := e.User(rbac.Viewer)
	upload := func(tok string) api.Media {
		resp, b := mediaUpload(t, e, tok, "image", "a.png", pngBytes(t, 1, 1))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload: %d %s", resp.StatusCode, b)
		}
		return decodeMedia(t, b)
	}
	a1, a2, b1 := upload(aliceTok), upload(aliceTok), upload(bobTok)

	list := func(tok, query string) (int, api.MediaPage) {
		resp, b := e.Do(http.MethodGet, BasePath+"/media"+query, tok, "", nil)
		var p api.MediaPage
		_ = json.Unmarshal(b, &p)
		return resp.StatusCode, p
	}
	if code, p := list(aliceTok, ""); code != 200 || p.Total != 2 || p.Items[0].Id != a2.Id || p.Items[1].Id != a1.Id {
		t.Errorf("alice's default list: %d %+v", code, p)
	}
	if code, p := list(aliceTok, "?sort=created_at&page_size=1"); code != 200 || p.Total != 2 || len(p.Items) != 1 || p.Items[0].Id != a1.Id || !p.HasNext {
		t.Errorf("sorted page: %d %+v", code, p)
	}
	if code, _ := list(aliceTok, fmt.Sprintf("?uploaded_by=%d", bob.ID)); code != http.StatusForbidden {
		t.Errorf("editor listing bob's: %d", code)
	}
	if code, p := list(aliceTok, fmt.Sprintf("?uploaded_by=%d", alice.ID)); code != 200 || p.Total != 2 {
		t.Errorf("own id: %d %+v", code, p)
	}
	if code, p := list(adminTok, fmt.Sprintf("?uploaded_by=%d", bob.ID)); code != 200 || p.Total != 1 || p.Items[0].Id != b1.Id {
		t.Errorf("admin listing bob's: %d %+v", code, p)
	}
	if code, p := list(aliceTok, "?resource_type=raw"); code != 200 || p.Total != 0 {
		t.Errorf("resource_type filter: %d %+v", code, p)
	}

	// Readable organisation-wide.
	resp, b := e.Do(http.MethodGet, fmt.Sprintf("%s/media/%d", BasePath, b1.Id), viewerTok, "", nil)
	if resp.StatusCode != 200 || decodeMedia(t, b).Id != b1.Id {
		t.Errorf("viewer get: %d %s", resp.StatusCode, b)
	}

	// Delete: not another editor's; the uploader's own; an admin anyone's.
	resp, b = e.Do(http.MethodDelete, fmt.Sprintf("%s/media/%d", BasePath, b1.Id), aliceTok, "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("alice deleting bob's: %d %s", resp.StatusCode, b)
	}
	resp, b = e.Do(http.MethodDelete, fmt.Sprintf("%s/media/%d", BasePath, a1.Id), aliceTok, "", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("alice deleting hers: %d %s", resp.StatusCode, b)
	}
	resp, _ = e.Do(http.MethodGet, fmt.Sprintf("%s/media/%d", BasePath, a1.Id), aliceTok, "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("get after delete: %d", resp.StatusCode)
	}
	resp, _ = e.Do(http.MethodGet, BasePath+"/media/files/"+a1.Url[strings.LastIndex(a1.Url, "/")+1:], "", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("file after delete: %d", resp.StatusCode)
	}
	resp, b = e.Do(http.MethodDelete, fmt.Sprintf("%s/media/%d", BasePath, b1.Id), adminTok, "", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("admin deleting bob's: %d %s", resp.StatusCode, b)
	}
	if files := mediaFiles(t, e); len(files) != 1 {
		t.Errorf("files after deletes: %v", files)
	}
	var audits []store.AuditLog
	if err := e.DB.Where("action = ?", "media.delete").Order("id").Find(&audits).Error; err != nil {
		t.Fatal(err)
	}
	if len(audits) != 2 || *audits[0].ResourceID != a1.Id || *audits[1].ResourceID != b1.Id || audits[0].ResourceType != "media" {
		t.Errorf("audit rows: %+v", audits)
	}

	// Local driver: no direct uploads.
	resp, b = e.Do(http.MethodGet, BasePath+"/media/signature", aliceTok, "", nil)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("signature on local: %d %s", resp.StatusCode, b)
	}
	resp, b = e.Do(http.MethodPost, BasePath+"/media", aliceTok, "application/json", strings.NewReader(fmt.Sprintf(`{"public_id":"wataomi/%d/x"}`, alice.ID)))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("register on local: %d %s", resp.StatusCode, b)
	}
}

// fakeCloudinary speaks Cloudinary's Upload API (signed upload and destroy) and the Admin API's
// resource lookup, verifying signatures and basic auth with its own copy of the secret.
type fakeCloudinary struct {
	*httptest.Server
	t                  *testing.T
	cloud, key, secret string
	mu                 sync.Mutex
	assets             map[string]fakeAsset // by public_id
}

type fakeAsset struct {
	resourceType, format string
	data                 []byte
	bytes                int64
}

func newFakeCloudinary(t *testing.T) *fakeCloudinary {
	f := &fakeCloudinary{t: t, cloud: "demo", key: "123456789012345", secret: "fake-cloudinary-secret", assets: map[string]fakeAsset{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeCloudinary) env() map[string]string {
	return map[string]string{"MEDIA_STORAGE": "cloudinary", "CLOUDINARY_BASE_URL": f.URL, "CLOUDINARY_CLOUD_NAME": f.cloud,
		"CLOUDINARY_API_KEY": f.key, "CLOUDINARY_API_SECRET": f.secret}
}

func (f *fakeCloudinary) fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": msg}})
}

func (f *fakeCloudinary) assetJSON(publicID string, a fakeAsset) map[string]any {
	path := fmt.Sprintf("/%s/%s/upload/v1700000000/%s.%s", f.cloud, a.resourceType, publicID, a.format)
	out := map[string]any{"asset_id": "3515c6000a548515f1134043f9785c2f", "public_id": publicID, "version": 1700000000,
		"version_id": "7d2cc533bee9ff39f7da7414b61fce7e", "signature": "d0b1009e3271a88a3e2a4b9a1b8e5d6f3c2b1a09",
		"format": a.format, "resource_type": a.resourceType, "created_at": "2026-03-01T09:30:00Z", "tags": []string{},
		"bytes": a.bytes, "type": "upload", "etag": "a1b2c3", "placeholder": false,
		"url": "http://res.cloudinary.com" + path, "secure_url": "https://res.cloudinary.com" + path,
		"folder": publicID[:strings.LastIndex(publicID, "/")], "original_filename": "file"}
	if a.resourceType == "image" {
		out["width"], out["height"] = 4, 3
	}
	return out
}

func (f *fakeCloudinary) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/v1_1/" + f.cloud + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		f.fail(w, http.StatusNotFound, "unknown cloud")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, prefix)
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "resources/"):
		if user, pass, ok := r.BasicAuth(); !ok || user != f.key || pass != f.secret {
			f.fail(w, http.StatusUnauthorized, "Invalid credentials")
			return
		}
		parts := strings.SplitN(strings.TrimPrefix(rest, "resources/"), "/", 3) // rt, upload, public_id
		f.mu.Lock()
		a, ok := f.assets[parts[2]]
		f.mu.Unlock()
		if !ok || a.resourceType != parts[0] {
			f.fail(w, http.StatusNotFound, "Resource not found - "+parts[2])
			return
		}
		_ = json.NewEncoder(w).Encode(f.assetJSON(parts[2], a))
	case r.Method == http.MethodPost && strings.HasSuffix(rest, "/upload"):
		mr, err := r.MultipartReader()
		if err != nil {
			f.fail(w, http.StatusBadRequest, "not multipart")
			return
		}
		params := map[string]string{}
		var data []byte
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.fail(w, http.StatusBadRequest, "bad multipart")
				return
			}
			b, _ := io.ReadAll(p)
			if p.FormName() == "file" {
				data = b
			} else {
				params[p.FormName()] = string(b)
			}
		}
		if params["api_key"] != f.key || params["signature"] != media.Sign(params, f.secret) {
			f.fail(w, http.StatusUnauthorized, "Invalid Signature "+params["signature"])
			return
		}
		rt := strings.TrimSuffix(rest, "/upload")
		publicID := params["folder"] + "/" + params["public_id"]
		format := ""
		if rt != "raw" {
			format = map[string]string{"image/png": "png", "application/pdf": "pdf"}[http.DetectContentType(data)]
		}
		a := fakeAsset{resourceType: rt, format: format, data: data, bytes: int64(len(data))}
		f.mu.Lock()
		f.assets[publicID] = a
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(f.assetJSON(publicID, a))
	case r.Method == http.MethodPost && strings.HasSuffix(rest, "/destroy"):
		_ = r.ParseForm()
		params := map[string]string{}
		for k := range r.PostForm {
			params[k] = r.PostForm.Get(k)
		}
		if params["api_key"] != f.key || params["signature"] != media.Sign(params, f.secret) {
			f.fail(w, http.StatusUnauthorized, "Invalid Signature")
			return
		}
		f.mu.Lock()
		_, ok := f.assets[params["public_id"]]
		delete(f.assets, params["public_id"])
		f.mu.Unlock()
		result := "ok"
		if !ok {
			result = "not found"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"result": result})
	default:
		f.fail(w, http.StatusNotFound, "unknown endpoint")
	}
}

func TestMediaCloudinary(t *testing.T) {
	f := newFakeCloudinary(t)
	e := newTestEnv(t, f.env())
	u, tok := e.User(rbac.Editor)
	img := pngBytes(t, 4, 3)
	resp, b := mediaUpload(t, e, tok, "image", "logo.png", img)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	m := decodeMedia(t, b)
	folder := fmt.Sprintf("wataomi/%d/", u.ID)
	f.mu.Lock()
	stored, ok := f.assets[m.PublicId]
	f.mu.Unlock()
	if !ok || !bytes.Equal(stored.data, img) || !strings.HasPrefix(m.PublicId, folder) || m.ResourceType != "image" ||
		!strings.HasPrefix(m.SecureUrl, "https://res.cloudinary.com/demo/image/upload/") || m.MimeType != "image/png" || m.Bytes != int64(len(img)) {
		t.Fatalf("media %+v, fake has %v", m, ok)
	}
	// No local file and no spool file.
	if files := mediaFiles(t, e); len(files) != 0 {
		t.Errorf("local files with the cloudinary driver: %v", files)
	}
	resp, _ = e.Do(http.MethodGet, BasePath+"/media/files/"+strings.Repeat("C", 43)+".png", "", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("file route with cloudinary: %d", resp.StatusCode)
	}

	// The signature endpoint signs folder and timestamp with the secret.
	resp, b = e.Do(http.MethodGet, BasePath+"/media/signature", tok, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signature: %d %s", resp.StatusCode, b)
	}
	var sig api.MediaSignature
	_ = json.Unmarshal(b, &sig)
	want := media.Sign(map[string]string{"folder": sig.Folder, "timestamp": fmt.Sprint(sig.Timestamp)}, f.secret)
	if sig.Signature != want || sig.Folder != strings.TrimSuffix(folder, "/") || sig.ApiKey != f.key || sig.CloudName != f.cloud ||
		time.Since(time.Unix(sig.Timestamp, 0)).Abs() > time.Minute || strings.Contains(string(b), f.secret) {
		t.Errorf("signature = %+v (want %s)", sig, want)
	}

	// Registering a direct upload: in the caller's folder, of an accepted type, within the caps.
	f.mu.Lock()
	f.assets[folder+"direct1"] = fakeAsset{resourceType: "image", format: "pdf", bytes: 900}
	f.assets[folder+"big"] = fakeAsset{resourceType: "image", format: "png", bytes: 6 << 20}
	f.assets[folder+"page"] = fakeAsset{resourceType: "raw", format: "", bytes: 10}
	f.assets["wataomi/999999/theirs"] = fakeAsset{resourceType: "image", format: "png", bytes: 10}
	f.mu.Unlock()
	register := func(publicID string) (*http.Response, []byte) {
		return e.Do(http.MethodPost, BasePath+"/media", tok, "application/json", strings.NewReader(fmt.Sprintf(`{"public_id":%q}`, publicID)))
	}
	resp, b = register(folder + "direct1")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.StatusCode, b)
	}
	if r := decodeMedia(t, b); r.MimeType != "application/pdf" || r.Bytes != 900 || r.PublicId != folder+"direct1" || r.UploadedBy != u.ID {
		t.Errorf("registered %+v", r)
	}
	// [I]: the same Idempotency-Key and body replay the first answer.
	f.mu.Lock()
	f.assets[folder+"direct2"] = fakeAsset{resourceType: "image", format: "png", bytes: 100}
	f.mu.Unlock()
	idem := http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}, "Idempotency-Key": {"media-direct2"}}
	body2 := fmt.Sprintf(`{"public_id":%q}`, folder+"direct2")
	r1, b1 := e.Send(t, http.MethodPost, BasePath+"/media", idem, strings.NewReader(body2))
	r2, b2 := e.Send(t, http.MethodPost, BasePath+"/media", idem, strings.NewReader(body2))
	if r1.StatusCode != http.StatusCreated || r2.StatusCode != http.StatusCreated || r2.Header.Get("Idempotent-Replayed") != "true" ||
		decodeMedia(t, b1).Id != decodeMedia(t, b2).Id {
		t.Errorf("idempotent register: %d %d %q %s %s", r1.StatusCode, r2.StatusCode, r2.Header.Get("Idempotent-Replayed"), b1, b2)
	}
	resp, b = register(folder + "direct1")
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("re-register: %d %s", resp.StatusCode, b)
	}
	for _, id := range []string{"wataomi/999999/theirs", folder + "missing", folder + "big", folder + "page", folder + "../999999/theirs"} {
		if resp, b := register(id); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("register %s: %d %s", id, resp.StatusCode, b)
		}
	}

	// Delete destroys the asset, then the row.
	resp, b = e.Do(http.MethodDelete, fmt.Sprintf("%s/media/%d", BasePath, m.Id), tok, "", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	f.mu.Lock()
	_, still := f.assets[m.PublicId]
	f.mu.Unlock()
	if still {
		t.Error("the asset is still in Cloudinary")
	}

	// A wrong secret: Cloudinary refuses the signature, the upload answers 503 and stores nothing.
	bad := f.env()
	bad["CLOUDINARY_API_SECRET"] = "wrong-secret"
	e2 := newTestEnv(t, bad)
	_, tok2 := e2.User(rbac.Editor)
	resp, b = mediaUpload(t, e2, tok2, "image", "logo.png", img)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(b), "wrong-secret") {
		t.Errorf("bad secret: %d %s", resp.StatusCode, b)
	}
	if n := mediaRows(t, e2); n != 0 {
		t.Errorf("%d rows after a refused upload", n)
	}
}

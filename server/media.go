package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/media"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// Media (PRODUCT §5.15): uploads are streamed from the multipart body into a spool file (counted
// against the cap as they arrive, never held in memory), sniffed from their bytes, then handed to the
// driver: renamed into MEDIA_LOCAL_DIR, or streamed to Cloudinary's signed Upload API.

func newMediaStorage(cfg *config.Config) (media.Driver, error) {
	if cfg.MediaStorage == store.MediaStorageCloudinary {
		return media.NewCloudinary(cfg.CloudinaryBaseURL, cfg.CloudinaryCloudName, cfg.CloudinaryAPIKey, cfg.CloudinaryAPISecret), nil
	}
	return media.NewLocal(cfg.MediaLocalDir, cfg.PublicBaseURL)
}

func mediaLocation(id int64) string { return fmt.Sprintf("%s/media/%d", BasePath, id) }

func mediaOf(m *store.Media) api.Media {
	return api.Media{Id: m.ID, PublicId: m.PublicID, Url: m.URL, SecureUrl: m.SecureURL,
		ResourceType: api.MediaResourceType(m.ResourceType), Format: m.Format, MimeType: m.MimeType,
		Width: NullableFrom(m.Width), Height: NullableFrom(m.Height), Bytes: m.Bytes, Filename: m.Filename,
		UploadedBy: m.UploadedBy, CreatedAt: apitime.From(m.CreatedAt)}
}

func storageDown(err error) *Problem {
	p := dependencyDown("media-storage", err)
	p.Detail = "The media storage could not be reached; nothing was stored or deleted."
	return p
}

func tooLarge(limit int64) *Problem {
	return problem(http.StatusRequestEntityTooLarge, "payload-too-large", fmt.Sprintf("The file is over the limit of %d bytes.", limit))
}

func unsupportedType(t string) *Problem {
	return problem(http.StatusUnsupportedMediaType, "unsupported-media-type", fmt.Sprintf("The file's content (sniffed as %s) is not an accepted type here.", t))
}

func (h *handlers) UploadMediaImage(ctx context.Context, req api.UploadMediaImageRequestObject) (api.UploadMediaImageResponseObject, error) {
	m, err := h.s.upload(ctx, req.Body, media.ImageTypes, h.s.deps.Config.MediaMaxImageBytes)
	if err != nil {
		return nil, err
	}
	return api.UploadMediaImage201JSONResponse{MediaCreatedJSONResponse: api.MediaCreatedJSONResponse{Body: mediaOf(m),
		Headers: api.MediaCreatedResponseHeaders{Location: mediaLocation(m.ID)}}}, nil
}

func (h *handlers) UploadMediaFile(ctx context.Context, req api.UploadMediaFileRequestObject) (api.UploadMediaFileResponseObject, error) {
	m, err := h.s.upload(ctx, req.Body, media.FileTypes, h.s.deps.Config.MediaMaxFileBytes)
	if err != nil {
		return nil, err
	}
	return api.UploadMediaFile201JSONResponse{MediaCreatedJSONResponse: api.MediaCreatedJSONResponse{Body: mediaOf(m),
		Headers: api.MediaCreatedResponseHeaders{Location: mediaLocation(m.ID)}}}, nil
}

// upload reads the one part `file` of mr into a spool file in the driver's temporary directory,
// refuses it (413, 415, 400) or stores it and its row. Whatever fails, the spool file is removed and
// nothing is stored.
func (s *Server) upload(ctx context.Context, mr *multipart.Reader, allowed map[string]bool, limit int64) (*store.Media, error) {
	p := httpx.PrincipalFrom(ctx)
	part, err := nextFilePart(mr)
	if err != nil {
		return nil, err
	}
	filename := displayName(part.FileName())

	head := make([]byte, media.SniffLen)
	n, err := io.ReadFull(part, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, readFailure(err)
	}
	head = head[:n]
	if n == 0 {
		return nil, validationError(FieldError{Pointer: "/file", Detail: "the file is empty", Code: "minLength"})
	}
	sniffed := media.SniffHead(head, filename)
	if !media.MayBe(sniffed, allowed) {
		return nil, unsupportedType(sniffed)
	}

	tmp, err := os.CreateTemp(s.media.TempDir(), "upload-*")
	if err != nil {
		return nil, storageDown(err)
	}
	defer func() {
		tmp.Close()
		_ = os.Remove(tmp.Name()) // gone already once the local driver renamed it
	}()
	if _, err := tmp.Write(head); err != nil {
		return nil, storageDown(err)
	}
	// Copy at most one byte over the cap: the cap is passed as soon as that byte arrives.
	copied, err := io.Copy(tmp, io.LimitReader(part, limit-int64(n)+1))
	size := int64(n) + copied
	if err != nil {
		var werr *os.PathError
		if errors.As(err, &werr) {
			return nil, storageDown(err)
		}
		return nil, readFailure(err)
	}
	if size > limit {
		return nil, tooLarge(limit)
	}
	// The body must end after the file: another part is refused, a cut body stores nothing.
	if next, err := mr.NextPart(); err == nil {
		return nil, validationError(FieldError{Pointer: "/" + escapePointer(next.FormName()), Detail: "only the field file is accepted", Code: "additionalProperties"})
	} else if !errors.Is(err, io.EOF) {
		return nil, readFailure(err)
	}

	mimeType := media.Inspect(sniffed, tmp, size)
	if mimeType == "" || !allowed[mimeType] {
		if mimeType == "" {
			mimeType = sniffed
		}
		return nil, unsupportedType(mimeType)
	}
	kind := media.KindOf(mimeType)
	w, hgt := media.Dimensions(mimeType, tmp, size)
	up := &media.Upload{File: tmp, Size: size, Kind: kind, Folder: media.Folder(p.UserID), Filename: filename, Width: w, Height: hgt}
	stored, err := s.media.Put(ctx, up)
	if err != nil {
		return nil, storageDown(err)
	}
	m := &store.Media{Storage: s.media.Name(), PublicID: stored.PublicID, URL: stored.URL, SecureURL: stored.SecureURL,
		ResourceType: kind.ResourceType, Format: kind.Format, MimeType: kind.MIME, Width: stored.Width, Height: stored.Height,
		Bytes: size, Filename: filename, UploadedBy: p.UserID}
	if stored.FileKey != "" {
		key := stored.FileKey
		m.FileKey = &key
	}
	if err := store.CreateMedia(ctx, s.deps.DB.DB, m); err != nil {
		// Compensate: the file must not outlive a row that was never written.
		if derr := s.media.Delete(context.WithoutCancel(ctx), stored.PublicID, stored.FileKey, kind.ResourceType); derr != nil {
			s.deps.Logger.ErrorContext(ctx, "media: stored file left behind after a failed insert", "public_id", stored.PublicID, "error", derr.Error())
		}
		return nil, err
	}
	return m, nil
}

// nextFilePart returns the part `file`, refusing any other field before it (the schema is closed).
func nextFilePart(mr *multipart.Reader) (*multipart.Part, error) {
	part, err := mr.NextPart()
	switch {
	case errors.Is(err, io.EOF):
		return nil, validationError(FieldError{Pointer: "/file", Detail: "the multipart field file is required", Code: "required"})
	case err != nil:
		return nil, readFailure(err)
	}
	if part.FormName() != "file" {
		return nil, validationError(FieldError{Pointer: "/" + escapePointer(part.FormName()), Detail: "only the field file is accepted", Code: "additionalProperties"})
	}
	return part, nil
}

// readFailure turns a body read error into its answer: 413 past the body limit, otherwise 400 (a
// malformed or interrupted body; an interrupted client never sees it).
func readFailure(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return toProblem(mbe)
	}
	p := validationError(FieldError{Pointer: "/file", Detail: "the multipart body is malformed or was cut short", Code: "malformed-multipart"})
	p.cause = err
	return p
}

// displayName keeps the last path element of the client's file name, for display only: it is never
// used as a path. Control characters are dropped and the length is bounded.
func displayName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if name == "" || name == "." || name == ".." {
		name = "upload"
	}
	if r := []rune(name); len(r) > 255 {
		name = string(r[:255])
	}
	return name
}

func (h *handlers) ListMedia(ctx context.Context, req api.ListMediaRequestObject) (api.ListMediaResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.MediaFilter{Page: page, PageSize: size, UploadedBy: p.UserID}
	if prm.UploadedBy != nil && *prm.UploadedBy != "me" {
		id, _ := strconv.ParseInt(*prm.UploadedBy, 10, 64) // the contract's pattern guarantees digits
		if id != p.UserID && !rbac.BypassesOwnership(p.Role) {
			pr := forbidden("")
			pr.Detail = "Only admins may list another user's uploads."
			return nil, pr
		}
		f.UploadedBy = id
	}
	if prm.ResourceType != nil {
		f.ResourceType = string(*prm.ResourceType)
	}
	f.Sort = sortKeys(prm.Sort)
	rows, total, err := store.ListMedia(ctx, h.s.deps.DB.DB, f)
	if err != nil {
		return nil, err
	}
	out := api.MediaPage{Items: make([]api.Media, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		out.Items = append(out.Items, mediaOf(&rows[i]))
	}
	return api.ListMedia200JSONResponse{Body: out}, nil
}

func (h *handlers) GetMedia(ctx context.Context, req api.GetMediaRequestObject) (api.GetMediaResponseObject, error) {
	m, err := store.GetMedia(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, mediaErr(err)
	}
	return api.GetMedia200JSONResponse{Body: mediaOf(m)}, nil
}

func mediaErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("media")
	}
	return err
}

// DeleteMedia deletes from storage first, then the row with its audit entry: a storage failure
// answers 503 and leaves both in place.
func (h *handlers) DeleteMedia(ctx context.Context, req api.DeleteMediaRequestObject) (api.DeleteMediaResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	db := h.s.deps.DB
	m, err := store.GetMedia(ctx, db.DB, req.Id)
	if err != nil {
		return nil, mediaErr(err)
	}
	if m.UploadedBy != p.UserID && !rbac.BypassesOwnership(p.Role) {
		pr := forbidden("")
		pr.Detail = "Only the uploader or an admin may delete this media."
		return nil, pr
	}
	if m.Storage != h.s.media.Name() {
		return nil, storageDown(fmt.Errorf("media %d is in %s storage, the server runs %s", m.ID, m.Storage, h.s.media.Name()))
	}
	fileKey := ""
	if m.FileKey != nil {
		fileKey = *m.FileKey
	}
	if err := h.s.media.Delete(ctx, m.PublicID, fileKey, m.ResourceType); err != nil {
		return nil, storageDown(err)
	}
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		if err := store.DeleteMedia(ctx, tx, m.ID); err != nil {
			return mediaErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "media.delete", ResourceType: "media", ResourceID: m.ID,
			Before: map[string]any{"public_id": m.PublicID, "filename": m.Filename, "mime_type": m.MimeType, "bytes": m.Bytes, "uploaded_by": m.UploadedBy}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteMedia204Response{}, nil
}

// GetMediaFile serves a local file by key with its stored, sniffed type (404 with another driver).
func (h *handlers) GetMediaFile(ctx context.Context, req api.GetMediaFileRequestObject) (api.GetMediaFileResponseObject, error) {
	local, ok := h.s.media.(*media.Local)
	if !ok {
		return nil, notFound("file")
	}
	m, err := store.GetMediaByFileKey(ctx, h.s.deps.DB.DB, req.Key)
	if err != nil {
		return nil, mediaErr(err)
	}
	f, err := local.Open(req.Key)
	if errors.Is(err, os.ErrNotExist) {
		return nil, notFound("file")
	}
	if err != nil {
		return nil, storageDown(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, storageDown(err)
	}
	resp := api.GetMediaFile200AsteriskResponse{Body: closingReader{f}, ContentType: m.MimeType, ContentLength: st.Size()}
	if m.ResourceType != "image" {
		cd := `attachment; filename="` + strings.NewReplacer(`"`, "", `\`, "").Replace(asciiName(m.Filename)) + `"`
		resp.Headers.ContentDisposition = &cd
	}
	return resp, nil
}

// closingReader closes the file once it has been read to the end (the strict handler copies
// Body with io.Copy and never closes it).
type closingReader struct{ f *os.File }

func (c closingReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if err != nil {
		c.f.Close()
	}
	return n, err
}

func asciiName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '_'
		}
		return r
	}, s)
}

func (h *handlers) GetMediaSignature(ctx context.Context, _ api.GetMediaSignatureRequestObject) (api.GetMediaSignatureResponseObject, error) {
	c, ok := h.s.media.(*media.Cloudinary)
	if !ok {
		return nil, unprocessable("unprocessable", "Direct uploads need the Cloudinary media driver; this server stores media locally.")
	}
	sp := c.SignUpload(media.Folder(httpx.PrincipalFrom(ctx).UserID))
	cc := noStore
	return api.GetMediaSignature200JSONResponse{Body: api.MediaSignature{Signature: sp.Signature, Timestamp: sp.Timestamp,
		ApiKey: sp.APIKey, CloudName: sp.CloudName, Folder: sp.Folder}, Headers: api.GetMediaSignature200ResponseHeaders{CacheControl: &cc}}, nil
}

// RegisterMedia records a direct upload after Cloudinary confirms the asset lies in the caller's
// folder, has an accepted type and is within the caps.
func (h *handlers) RegisterMedia(ctx context.Context, req api.RegisterMediaRequestObject) (api.RegisterMediaResponseObject, error) {
	c, ok := h.s.media.(*media.Cloudinary)
	if !ok {
		return nil, unprocessable("unprocessable", "Direct uploads need the Cloudinary media driver; this server stores media locally.")
	}
	p := httpx.PrincipalFrom(ctx)
	folder := media.Folder(p.UserID)
	pid := req.Body.PublicId
	ptr := FieldError{Pointer: "/public_id", Code: "unprocessable"}
	if !strings.HasPrefix(pid, folder+"/") || strings.Contains(pid, "..") {
		ptr.Detail = "the asset must be in your folder " + folder + "/"
		return nil, unprocessable("unprocessable", "The asset is not in your folder.", ptr)
	}
	db := h.s.deps.DB
	if old, err := store.GetMediaByPublicID(ctx, db.DB, store.MediaStorageCloudinary, pid); err == nil {
		pr := conflict("already-exists", "This asset is already registered.")
		pr.ExistingID = &old.ID
		return nil, pr
	}
	a, err := c.Resource(ctx, pid)
	if errors.Is(err, media.ErrAssetNotFound) {
		ptr.Detail = "Cloudinary has no uploaded asset with this public id"
		return nil, unprocessable("unprocessable", "The asset does not exist.", ptr)
	}
	if err != nil {
		return nil, storageDown(err)
	}
	if a.PublicID != pid || (a.AssetFolder != "" && a.AssetFolder != folder) {
		ptr.Detail = "the asset must be in your folder " + folder + "/"
		return nil, unprocessable("unprocessable", "The asset is not in your folder.", ptr)
	}
	format := a.Format
	if format == "" { // raw assets carry their extension in the public id
		if i := strings.LastIndex(pid, "."); i > strings.LastIndex(pid, "/") {
			format = pid[i+1:]
		}
	}
	mimeType := media.TypeOfFormat(format)
	if mimeType == "" {
		ptr.Detail = fmt.Sprintf("the asset's format %q is not an accepted type", format)
		return nil, unprocessable("unprocessable", "The asset's type is not accepted.", ptr)
	}
	kind := media.KindOf(mimeType)
	limit := h.s.deps.Config.MediaMaxFileBytes
	if kind.ResourceType == "image" {
		limit = h.s.deps.Config.MediaMaxImageBytes
	}
	if a.Bytes > limit {
		ptr.Detail = fmt.Sprintf("the asset is %d bytes, over the limit of %d", a.Bytes, limit)
		return nil, unprocessable("unprocessable", "The asset is too large.", ptr)
	}
	name := pid[strings.LastIndex(pid, "/")+1:]
	if a.OriginalFilename != "" {
		name = a.OriginalFilename
	}
	if !strings.HasSuffix(name, "."+kind.Format) {
		name += "." + kind.Format
	}
	m := &store.Media{Storage: store.MediaStorageCloudinary, PublicID: pid, URL: a.URL, SecureURL: a.SecureURL,
		ResourceType: kind.ResourceType, Format: kind.Format, MimeType: mimeType, Width: a.Width, Height: a.Height,
		Bytes: a.Bytes, Filename: displayName(name), UploadedBy: p.UserID}
	if err := store.CreateMedia(ctx, db.DB, m); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, conflict("already-exists", "This asset is already registered.")
		}
		return nil, err
	}
	return api.RegisterMedia201JSONResponse{Body: mediaOf(m), Headers: api.RegisterMedia201ResponseHeaders{Location: mediaLocation(m.ID)}}, nil
}

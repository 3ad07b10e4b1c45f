// Package media holds what uploads need besides HTTP (PRODUCT §5.15): the content sniffing and
// allow-lists, and the two storage drivers (local files and Cloudinary's signed upload API).
package media

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"image"
	_ "image/gif" // image.DecodeConfig formats
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"
)

// SniffLen is how many leading bytes http.DetectContentType looks at.
const SniffLen = 512

// Kind is what an upload turned out to be.
type Kind struct {
	MIME         string // sniffed, never the client's claim
	Format       string // the extension of MIME (png, pdf, docx, …)
	ResourceType string // image | video | raw
}

// The sniffed types each upload op accepts.
var (
	ImageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}
	FileTypes  = map[string]bool{
		"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true,
		"application/pdf": true, "text/plain": true, "text/markdown": true, "text/csv": true,
		"audio/mpeg": true, "audio/ogg": true, "audio/mp4": true, "video/mp4": true,
		mimeDOCX: true, mimeXLSX: true,
	}
)

const (
	mimeDOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	mimeXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	mimeZIP  = "application/zip"
)

// formats maps an accepted type to its extension.
var formats = map[string]string{
	"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
	"application/pdf": "pdf", "text/plain": "txt", "text/markdown": "md", "text/csv": "csv",
	"audio/mpeg": "mp3", "audio/ogg": "ogg", "audio/mp4": "m4a", "video/mp4": "mp4",
	mimeDOCX: "docx", mimeXLSX: "xlsx",
}

// TypeOfFormat is the accepted type of a Cloudinary format or file extension ("" when none is).
func TypeOfFormat(format string) string {
	f := strings.ToLower(strings.TrimPrefix(format, "."))
	if f == "jpeg" {
		f = "jpg"
	}
	for t, ext := range formats {
		if ext == f {
			return t
		}
	}
	return ""
}

// KindOf completes a type into a Kind.
func KindOf(mimeType string) Kind {
	k := Kind{MIME: mimeType, Format: formats[mimeType], ResourceType: "raw"}
	switch {
	case strings.HasPrefix(mimeType, "image/"):
		k.ResourceType = "image"
	case strings.HasPrefix(mimeType, "audio/"), strings.HasPrefix(mimeType, "video/"):
		k.ResourceType = "video" // Cloudinary files audio under video
	}
	return k
}

// SniffHead classifies the first bytes of a file (http.DetectContentType) and the client's file name
// (only its extension, and only to tell CSV and Markdown from plain text). A ZIP stays
// application/zip until Inspect opens it.
func SniffHead(head []byte, filename string) string {
	t, params, err := mime.ParseMediaType(http.DetectContentType(head))
	if err != nil {
		return "application/octet-stream"
	}
	switch t {
	case "text/plain":
		// DetectContentType calls any bytes without control characters UTF-8 text; check that they are.
		if params["charset"] == "utf-8" && !utf8.Valid(trimCutRune(head)) {
			return "application/octet-stream"
		}
		switch strings.ToLower(path.Ext(strings.ReplaceAll(filename, `\`, "/"))) {
		case ".csv":
			return "text/csv"
		case ".md":
			return "text/markdown"
		}
	case "application/ogg":
		return "audio/ogg"
	case "video/mp4":
		if len(head) >= 12 && string(head[8:12]) == "M4A " {
			return "audio/mp4"
		}
	}
	return t
}

// trimCutRune drops an incomplete UTF-8 sequence at the end of a head cut at SniffLen bytes.
func trimCutRune(b []byte) []byte {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// MayBe reports whether a head-sniffed type can still end up in allowed (a ZIP may be docx or xlsx),
// so that a wrong type is refused before the rest of the file is read.
func MayBe(t string, allowed map[string]bool) bool {
	if t == mimeZIP {
		return allowed[mimeDOCX] || allowed[mimeXLSX]
	}
	return allowed[t]
}

// Inspect settles a ZIP: docx when it holds word/document.xml, xlsx when it holds xl/workbook.xml,
// otherwise "" (refused). Other types are returned unchanged.
func Inspect(t string, r io.ReaderAt, size int64) string {
	if t != mimeZIP {
		return t
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return ""
	}
	for _, f := range zr.File {
		switch f.Name {
		case "word/document.xml":
			return mimeDOCX
		case "xl/workbook.xml":
			return mimeXLSX
		}
	}
	return ""
}

// Dimensions reads an image's width and height (nil when they cannot be read).
func Dimensions(t string, r io.ReaderAt, size int64) (w, h *int) {
	if t == "image/webp" {
		return webpSize(io.NewSectionReader(r, 0, min(size, 64)))
	}
	if !strings.HasPrefix(t, "image/") {
		return nil, nil
	}
	cfg, _, err := image.DecodeConfig(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, nil
	}
	return &cfg.Width, &cfg.Height
}

// webpSize reads the canvas size from a WebP's first chunk (VP8, VP8L or VP8X).
func webpSize(r io.Reader) (w, h *int) {
	b := make([]byte, 30)
	if _, err := io.ReadFull(r, b); err != nil || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return nil, nil
	}
	var x, y int
	switch string(b[12:16]) {
	case "VP8 ":
		if !bytes.Equal(b[23:26], []byte{0x9d, 0x01, 0x2a}) {
			return nil, nil
		}
		x, y = int(binary.LittleEndian.Uint16(b[26:28])&0x3fff), int(binary.LittleEndian.Uint16(b[28:30])&0x3fff)
	case "VP8L":
		if b[20] != 0x2f {
			return nil, nil
		}
		v := binary.LittleEndian.Uint32(b[21:25])
		x, y = int(v&0x3fff)+1, int((v>>14)&0x3fff)+1
	case "VP8X":
		x = int(uint32(b[24])|uint32(b[25])<<8|uint32(b[26])<<16) + 1
		y = int(uint32(b[27])|uint32(b[28])<<8|uint32(b[29])<<16) + 1
	default:
		return nil, nil
	}
	return &x, &y
}

package media

import (
	"bytes"
	"testing"
)

// The example of Cloudinary's "Generating authentication signatures" documentation.
func TestSignMatchesCloudinaryExample(t *testing.T) {
	params := map[string]string{"eager": "w_400,h_300,c_pad|w_260,h_200,c_crop", "public_id": "sample_image",
		"timestamp": "1315060510", "api_key": "ignored", "file": "ignored", "resource_type": "ignored", "tags": ""}
	if got, want := Sign(params, "abcd"), "bfd09f95f331f558cbd1320e67aa8d488770583e"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestSniffHead(t *testing.T) {
	tests := []struct {
		head     []byte
		filename string
		want     string
	}{
		{[]byte("a,b\n1,2\n"), "x.CSV", "text/csv"},
		{[]byte("# T\n"), "dir/../n.md", "text/markdown"},
		{[]byte("plain"), "n.html", "text/plain"},
		{[]byte("<html><body>x</body></html>"), "n.txt", "text/html"},
		{[]byte{0xff, 0xfe, 'a', 0x90}, "n.txt", "text/plain"}, // UTF-16 BOM: DetectContentType's own verdict
		{[]byte{'a', 0x90, 'b'}, "n.txt", "application/octet-stream"},
		{append([]byte("abc"), 0xe2, 0x82), "n.txt", "text/plain"}, // a rune cut by the 512-byte head
		{[]byte("OggS\x00\x02"), "a.ogg", "audio/ogg"},
		{[]byte("\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00mp42isom"), "a.m4a", "audio/mp4"},
		{[]byte("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"), "a.mp4", "video/mp4"},
	}
	for _, tt := range tests {
		if got := SniffHead(tt.head, tt.filename); got != tt.want {
			t.Errorf("SniffHead(%q, %q) = %q, want %q", tt.head, tt.filename, got, tt.want)
		}
	}
}

func TestWebpSize(t *testing.T) {
	// VP8X: canvas 300×200 stored minus one, 24-bit little-endian.
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00")
	b = append(b, 0x2b, 0x01, 0x00, 0xc7, 0x00, 0x00)
	w, h := webpSize(bytes.NewReader(b))
	if w == nil || h == nil || *w != 300 || *h != 200 {
		t.Fatalf("webpSize = %v, %v", w, h)
	}
}

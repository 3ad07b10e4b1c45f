package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
)

// Cursor lists (PRODUCT §2.3): cursor = base64url(JSON {v:1, id, f}), where f
// is 8 bytes of SHA-256 over the normalised filters and order, so a cursor
// only continues the list it came from.

type cursorBody struct {
	V  int    `json:"v"`
	ID int64  `json:"id"`
	F  string `json:"f"`
}

// filterPrint is the fingerprint of a list's normalised filters.
func filterPrint(filters string) string {
	sum := sha256.Sum256([]byte(filters))
	return hex.EncodeToString(sum[:8])
}

func encodeCursor(id int64, filters string) string {
	b, _ := json.Marshal(cursorBody{V: 1, ID: id, F: filterPrint(filters)})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the id after which the list continues; a malformed
// cursor, or one issued for other filters, is a 400 at #/query/cursor.
func decodeCursor(c *string, filters string) (int64, error) {
	if c == nil || *c == "" {
		return 0, nil
	}
	bad := validationError(FieldError{Pointer: "#/query/cursor", Detail: "is not a cursor of this list with these filters", Code: "cursor"})
	raw, err := base64.RawURLEncoding.DecodeString(*c)
	if err != nil {
		return 0, bad
	}
	var b cursorBody
	if json.Unmarshal(raw, &b) != nil || b.V != 1 || b.ID <= 0 || b.F != filterPrint(filters) {
		return 0, bad
	}
	return b.ID, nil
}

package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
)

// Cursor lists (PRODUCT §2.3): `cursor` = base64url(JSON {v:1, id, f}), where id is the last row of
// the previous batch and f is 8 bytes of SHA-256 over the normalised filters and order, so a cursor
// cannot be replayed against another filter set. A malformed cursor, or one whose f differs from the
// request's, is 400 at #/query/cursor.

const cursorVersion = 1

type listCursor struct {
	V  int    `json:"v"`
	ID int64  `json:"id"`
	F  string `json:"f"`
}

// cursorFingerprint is f for a request: the order and every non-empty filter, each value already
// normalised by the caller (ids in decimal, times in UTC RFC 3339), in key order.
func cursorFingerprint(order string, filters map[string]string) string {
	keys := make([]string, 0, len(filters))
	for k, v := range filters {
		if v != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("order=" + order + "\n")
	for _, k := range keys {
		b.WriteString(k + "=" + filters[k] + "\n")
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// encodeCursor is the next_cursor after the row id.
func encodeCursor(id int64, fingerprint string) string {
	b, _ := json.Marshal(listCursor{V: cursorVersion, ID: id, F: fingerprint})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the id a cursor continues after (0 without a cursor: the first batch).
func decodeCursor(raw *string, fingerprint string) (int64, error) {
	if raw == nil {
		return 0, nil
	}
	bad := func(detail string) error {
		return validationError(FieldError{Pointer: "#/query/cursor", Detail: detail, Code: "invalid"})
	}
	b, err := base64.RawURLEncoding.DecodeString(*raw)
	if err != nil {
		return 0, bad("is not a cursor this list issued")
	}
	var c listCursor
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() || c.V != cursorVersion || c.ID <= 0 || c.F == "" {
		return 0, bad("is not a cursor this list issued")
	}
	if c.F != fingerprint {
		return 0, bad("was issued for other filters; start again without a cursor")
	}
	return c.ID, nil
}

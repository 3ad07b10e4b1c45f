// Package apitime is the wire form of the contract's timestamps (PRODUCT §2.1): RFC 3339 in UTC with
// a Z suffix and exactly three fractional digits ("2025-03-01T09:30:00.000Z"). time.Time's own JSON
// trims trailing zeros, so the generated types use this one (x-go-type in openapi/schemas).
package apitime

import (
	"fmt"
	"time"
)

// Layout is the timestamp format of every response.
const Layout = "2006-01-02T15:04:05.000Z"

// Time is a timestamp that always marshals as Layout in UTC.
type Time struct{ time.Time }

// From converts a time, normalised to UTC and truncated to the millisecond.
func From(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// FromPtr converts an optional time.
func FromPtr(t *time.Time) *Time {
	if t == nil {
		return nil
	}
	v := From(*t)
	return &v
}

func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(Layout) + `"`), nil
}

// UnmarshalJSON accepts any RFC 3339 timestamp, with any offset, and normalises it to UTC.
func (t *Time) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("apitime: %s is not a JSON string", b)
	}
	v, err := time.Parse(time.RFC3339Nano, string(b[1:len(b)-1]))
	if err != nil {
		return err
	}
	t.Time = v.UTC()
	return nil
}

package apitime

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMarshalAlwaysMilliseconds(t *testing.T) {
	for in, want := range map[time.Time]string{
		time.Date(2026, 11, 27, 10, 13, 29, 60_000_000, time.UTC):                     `"2026-11-27T10:13:29.060Z"`,
		time.Date(2026, 11, 27, 10, 13, 29, 0, time.UTC):                              `"2026-11-27T10:13:29.000Z"`,
		time.Date(2026, 11, 27, 11, 13, 29, 123_456_789, time.FixedZone("CET", 3600)): `"2026-11-27T10:13:29.123Z"`,
	} {
		b, err := json.Marshal(From(in))
		if err != nil || string(b) != want {
			t.Errorf("%v: got %s (%v), want %s", in, b, err, want)
		}
	}
}

func TestUnmarshalNormalisesOffsets(t *testing.T) {
	var v Time
	if err := json.Unmarshal([]byte(`"2026-11-27T11:13:29.5+01:00"`), &v); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 27, 10, 13, 29, 500_000_000, time.UTC); !v.Equal(want) || v.Location() != time.UTC {
		t.Fatalf("got %v", v.Time)
	}
	for _, bad := range []string{`1`, `"yesterday"`, `null`, `""`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

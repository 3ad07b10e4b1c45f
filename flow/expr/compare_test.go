package expr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type cmpCase struct {
	op          string
	left, right any
	cs          bool
	want        bool
	mismatch    string // non-empty: a type-mismatch whose message contains this
}

func n(s string) json.Number { return json.Number(s) }

func runCompare(t *testing.T, tests []cmpCase) {
	t.Helper()
	for _, tt := range tests {
		name := tt.op + " " + jsonish(tt.left) + " " + jsonish(tt.right)
		if tt.cs {
			name += " (case-sensitive)"
		}
		t.Run(name, func(t *testing.T) {
			got, err := Compare(tt.op, tt.left, tt.right, tt.cs)
			if tt.mismatch != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeTypeMismatch {
					t.Fatalf("Compare = %v, %v; want a type-mismatch", got, err)
				}
				if !strings.Contains(e.Message, tt.mismatch) {
					t.Errorf("message %q does not contain %q", e.Message, tt.mismatch)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compare: %v", err)
			}
			if got != tt.want {
				t.Errorf("Compare = %v, want %v", got, tt.want)
			}
		})
	}
}

func jsonish(v any) string {
	if v == Missing {
		return "<missing>"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}

func TestCompareEquals(t *testing.T) {
	runCompare(t, []cmpCase{
		// numbers and numeric strings compare numerically
		{op: "equals", left: n("10"), right: n("10.0"), want: true},
		{op: "equals", left: "10", right: 10, want: true},
		{op: "equals", left: " 1e3 ", right: "1000", want: true},
		{op: "equals", left: "0.1", right: 0.1, want: true},
		{op: "equals", left: int64(3), right: 3.0, want: true},
		{op: "equals", left: "-0", right: "0", want: true},
		{op: "equals", left: "+5", right: n("5"), want: true},
		{op: "equals", left: n("9007199254740993"), right: n("9007199254740992"), want: false}, // exact ints
		{op: "equals", left: "10", right: "11", want: false},
		{op: "equals", left: "0x10", right: 16, want: false}, // hex is not numeric
		{op: "equals", left: "1_000", right: 1000, want: false},
		{op: "equals", left: "NaN", right: "nan", want: true}, // not numbers: plain strings, case-insensitive
		// booleans equal "true"/"false" strings
		{op: "equals", left: true, right: "true", want: true},
		{op: "equals", left: " TRUE ", right: true, want: true},
		{op: "equals", left: "TRUE", right: true, cs: true, want: false},
		{op: "equals", left: false, right: "false", want: true},
		{op: "equals", left: false, right: "0", want: false},
		{op: "equals", left: true, right: true, want: true},
		{op: "equals", left: true, right: false, want: false},
		{op: "equals", left: true, right: 1, want: false},
		// strings: trimmed, case rule
		{op: "equals", left: "  Hello ", right: "hello", want: true},
		{op: "equals", left: "Hello", right: "hello", cs: true, want: false},
		{op: "equals", left: " Hello\n", right: "Hello", cs: true, want: true},
		{op: "equals", left: "Straße", right: "STRASSE", want: false},
		{op: "equals", left: "ÉTÉ", right: "été", want: true},
		{op: "equals", left: "", right: "   ", want: true},
		{op: "equals", left: "a", right: "b", want: false},
		// null
		{op: "equals", left: nil, right: nil, want: true},
		{op: "equals", left: nil, right: "null", want: true},
		{op: "equals", left: nil, right: "", want: false},
		{op: "equals", left: nil, right: false, want: false},
		{op: "equals", left: nil, right: 0, want: false},
		// objects and arrays: canonical JSON
		{op: "equals", left: map[string]any{"a": n("1"), "b": []any{"x", nil}}, right: map[string]any{"b": []any{"x", nil}, "a": 1.0}, want: true},
		{op: "equals", left: map[string]any{"a": n("1")}, right: `{ "a" : 1.0 }`, want: true},
		{op: "equals", left: `[1, 2]`, right: []any{n("1"), n("2")}, want: true},
		{op: "equals", left: []any{n("1"), n("2")}, right: []any{n("2"), n("1")}, want: false},
		{op: "equals", left: map[string]any{"a": "X"}, right: map[string]any{"a": "x"}, want: false}, // exact inside
		{op: "equals", left: map[string]any{"a": "1"}, right: map[string]any{"a": n("1")}, want: false},
		{op: "equals", left: map[string]any{"a": 1}, right: map[string]any{"a": 1, "b": 2}, want: false},
		{op: "equals", left: map[string]any{}, right: "{}", want: true},
		{op: "equals", left: []any{}, right: "not json", want: false},
		{op: "equals", left: []any{}, right: nil, want: false},
		{op: "equals", left: []string{"a"}, right: []any{"a"}, want: true},
		{op: "equals", left: map[string]string{"a": "b"}, right: `{"a":"b"}`, want: true},
		// missing
		{op: "equals", left: Missing, right: Missing, want: true},
		{op: "equals", left: Missing, right: nil, want: false},
		{op: "equals", left: Missing, right: "", want: false},
		{op: "equals", right: Missing, left: "x", want: false},
		// not_equals is the negation
		{op: "not_equals", left: "10", right: 10.0, want: false},
		{op: "not_equals", left: "A", right: "a", want: false},
		{op: "not_equals", left: "A", right: "a", cs: true, want: true},
		{op: "not_equals", left: Missing, right: "x", want: true},
		{op: "not_equals", left: map[string]any{"a": 1}, right: `{"a":2}`, want: true},
	})
}

func TestCompareContains(t *testing.T) {
	runCompare(t, []cmpCase{
		// string: substring, case rule
		{op: "contains", left: "Hello World", right: "world", want: true},
		{op: "contains", left: "Hello World", right: "world", cs: true, want: false},
		{op: "contains", left: "Hello World", right: "World", cs: true, want: true},
		{op: "contains", left: "Hello World", right: "", want: true},
		{op: "contains", left: "Hello World", right: "planet", want: false},
		{op: "contains", left: "ÉCOLE", right: "école", want: true},
		{op: "contains", left: "order 1234", right: n("23"), want: true},
		{op: "contains", left: "is true", right: true, want: true},
		{op: "contains", left: "abc", right: "abc ", want: false}, // not trimmed
		{op: "contains", left: "12345", right: 34, want: true},    // a numeric string is still a string here
		{op: "contains", left: "abc", right: []any{"a"}, mismatch: "got an array"},
		{op: "contains", left: "abc", right: map[string]any{}, mismatch: "got an object"},
		{op: "contains", left: "abc", right: Missing, mismatch: "got a missing value"},
		// array: some element equals the right side
		{op: "contains", left: []any{"a", n("2"), true}, right: "A", want: true},
		{op: "contains", left: []any{"a", n("2"), true}, right: "A", cs: true, want: false},
		{op: "contains", left: []any{"a", n("2"), true}, right: "2.0", want: true},
		{op: "contains", left: []any{"a", n("2"), true}, right: "true", want: true},
		{op: "contains", left: []any{"a", n("2")}, right: "b", want: false},
		{op: "contains", left: []any{map[string]any{"id": n("1")}}, right: `{"id":1}`, want: true},
		{op: "contains", left: []any{[]any{"x"}}, right: []any{"x"}, want: true},
		{op: "contains", left: []any{}, right: "x", want: false},
		{op: "contains", left: []string{"x", "y"}, right: "Y", want: true},
		{op: "contains", left: []any{"x"}, right: Missing, mismatch: "cannot look for a missing value"},
		// object: the right side is a key
		{op: "contains", left: map[string]any{"Name": 1}, right: "name", want: true},
		{op: "contains", left: map[string]any{"Name": 1}, right: "name", cs: true, want: false},
		{op: "contains", left: map[string]any{"Name": 1}, right: " Name ", cs: true, want: true},
		{op: "contains", left: map[string]any{"1": 1}, right: 1, want: true},
		{op: "contains", left: map[string]any{"a": 1}, right: "b", want: false},
		{op: "contains", left: map[string]string{"a": "x"}, right: "A", want: true},
		{op: "contains", left: map[string]any{"a": 1}, right: []any{"a"}, mismatch: "needs a key"},
		{op: "contains", left: map[string]any{"a": 1}, right: nil, mismatch: "needs a key"},
		// anything else on the left
		{op: "contains", left: n("123"), right: "2", mismatch: "got a number"},
		{op: "contains", left: true, right: "t", mismatch: "got a boolean"},
		{op: "contains", left: nil, right: "x", mismatch: "got null"},
		{op: "contains", left: Missing, right: "x", mismatch: "got a missing value"},
	})
}

func TestCompareOrder(t *testing.T) {
	runCompare(t, []cmpCase{
		{op: "greater_than", left: n("10"), right: n("9"), want: true},
		{op: "greater_than", left: "10", right: "9", want: true}, // numeric, not lexical
		{op: "greater_than", left: " 2.5 ", right: 2, want: true},
		{op: "greater_than", left: 2, right: 2.0, want: false},
		{op: "greater_than", left: "-1e2", right: n("-99"), want: false},
		{op: "less_than", left: "9", right: "10", want: true},
		{op: "less_than", left: 1.5, right: int64(2), want: true},
		{op: "less_than", left: n("3"), right: n("3"), want: false},
		{op: "less_than", left: n("9223372036854775806"), right: n("9223372036854775807"), want: true},
		// timestamps compared in time, not as text
		{op: "greater_than", left: "2026-01-01T10:00:00+02:00", right: "2026-01-01T09:00:00Z", want: false},
		{op: "less_than", left: "2026-01-01T10:00:00+02:00", right: "2026-01-01T09:00:00Z", want: true},
		{op: "greater_than", left: "2026-01-01T00:00:00.5Z", right: "2026-01-01T00:00:00Z", want: true},
		{op: "less_than", left: " 2025-12-31T23:59:59Z ", right: "2026-01-01T00:00:00Z", want: true},
		// anything else is a type-mismatch, never a silent false
		{op: "greater_than", left: "abc", right: "abd", mismatch: "greater_than needs two numbers or two RFC 3339 timestamps, got a non-numeric string and a non-numeric string"},
		{op: "greater_than", left: "10", right: "2026-01-01T00:00:00Z", mismatch: "got a numeric string and a timestamp"},
		{op: "less_than", left: n("1"), right: "x", mismatch: "got a number and a non-numeric string"},
		{op: "less_than", left: "2026-01-01", right: "2026-01-02", mismatch: "non-numeric string"}, // a date alone is not RFC 3339
		{op: "less_than", left: true, right: false, mismatch: "got a boolean and a boolean"},
		{op: "less_than", left: nil, right: 1, mismatch: "got null and a number"},
		{op: "greater_than", left: Missing, right: 1, mismatch: "got a missing value and a number"},
		{op: "greater_than", left: []any{n("1")}, right: 0, mismatch: "got an array"},
		{op: "greater_than", left: map[string]any{}, right: 0, mismatch: "got an object"},
		{op: "greater_than", left: "", right: 0, mismatch: "non-numeric string"},
	})
}

func TestCompareEmpty(t *testing.T) {
	runCompare(t, []cmpCase{
		{op: "is_empty", left: nil, want: true},
		{op: "is_empty", left: Missing, want: true},
		{op: "is_empty", left: "", want: true},
		{op: "is_empty", left: " \t\n", want: true},
		{op: "is_empty", left: []any{}, want: true},
		{op: "is_empty", left: map[string]any{}, want: true},
		{op: "is_empty", left: []string{}, want: true},
		{op: "is_empty", left: "x", want: false},
		{op: "is_empty", left: n("0"), want: false},
		{op: "is_empty", left: false, want: false},
		{op: "is_empty", left: []any{nil}, want: false},
		{op: "is_empty", left: map[string]any{"a": nil}, want: false},
		{op: "is_empty", left: "x", right: "ignored", want: false},
		{op: "is_not_empty", left: nil, want: false},
		{op: "is_not_empty", left: Missing, want: false},
		{op: "is_not_empty", left: "  ", want: false},
		{op: "is_not_empty", left: "x", want: true},
		{op: "is_not_empty", left: n("0"), want: true},
		{op: "is_not_empty", left: []any{n("1")}, want: true},
	})
}

func TestCompareErrors(t *testing.T) {
	_, err := Compare("starts_with", "a", "a", false)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeExpressionError || !strings.Contains(e.Message, `unknown operator "starts_with"`) {
		t.Errorf("unknown operator: %v", err)
	}
	_, err = Compare("equals", struct{}{}, "a", false)
	if !errors.As(err, &e) || e.Code != CodeTypeMismatch {
		t.Errorf("unsupported Go type: %v", err)
	}
}

func TestOperators(t *testing.T) {
	want := []string{"equals", "not_equals", "contains", "greater_than", "less_than", "is_empty", "is_not_empty"}
	if strings.Join(Operators, ",") != strings.Join(want, ",") {
		t.Fatalf("Operators = %v", Operators)
	}
	for _, op := range Operators {
		if _, err := Compare(op, "1", "1", false); err != nil {
			t.Errorf("%s: %v", op, err)
		}
	}
}

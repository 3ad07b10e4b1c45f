package expr

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Operator names (PRODUCT §6.3 "Condition operators").
const (
	OpEquals     = "equals"
	OpNotEquals  = "not_equals"
	OpContains   = "contains"
	OpGreater    = "greater_than"
	OpLess       = "less_than"
	OpIsEmpty    = "is_empty"
	OpIsNotEmpty = "is_not_empty"
)

// Operators lists the seven operator names in the order above.
var Operators = []string{OpEquals, OpNotEquals, OpContains, OpGreater, OpLess, OpIsEmpty, OpIsNotEmpty}

// Compare applies one condition operator to two resolved operands (PRODUCT §6.3):
//
// equals / not_equals (not_equals is exactly the negation; neither ever fails on JSON values):
//   - Both sides numbers or numeric strings ("12", " -1.5e3 "): compared numerically, so "10" equals
//     10.0. Integers are compared exactly within int64, other numbers as float64.
//   - Two strings: compared after trimming, case-insensitively unless caseSensitive.
//   - A string and a boolean or null: the string (trimmed, case rule) is compared with "true",
//     "false" or "null".
//   - Objects and arrays: compared as canonical JSON (key order ignored, numbers by value, strings
//     exactly). A string on the other side is parsed as JSON first; a string that is not JSON is
//     not equal.
//   - Any other pair of kinds (a boolean and a number, null and an object…) is not equal.
//   - Missing equals only Missing; it is not equal to null or "".
//
// contains: a string left side is searched for the right side (a string, or the JSON text of a
// number, boolean or null; not trimmed; case rule applies). An array left side contains the right
// side if some element equals it (equals rules). An object left side contains the right side if that
// is one of its keys (the right side trimmed; case rule applies). Any other left side, or a right side
// that is an object, an array or Missing where those cannot match, is a type-mismatch error.
//
// greater_than / less_than: both sides numeric (numbers or numeric strings), or both RFC 3339
// timestamps (compared in time). Anything else, Missing included, is a type-mismatch error, never a
// silent false.
//
// is_empty / is_not_empty: empty means null, Missing, a string that is empty or only whitespace, []
// or {}. The right side is ignored.
//
// An unknown operator is an expression-error.
func Compare(op string, left, right any, caseSensitive bool) (bool, error) {
	switch op {
	case OpEquals:
		return equals(left, right, caseSensitive)
	case OpNotEquals:
		eq, err := equals(left, right, caseSensitive)
		return !eq, err
	case OpContains:
		return contains(left, right, caseSensitive)
	case OpGreater, OpLess:
		c, err := order(op, left, right)
		if err != nil {
			return false, err
		}
		if op == OpGreater {
			return c > 0, nil
		}
		return c < 0, nil
	case OpIsEmpty:
		return isEmpty(left), nil
	case OpIsNotEmpty:
		return !isEmpty(left), nil
	}
	return false, newError(CodeExpressionError, fmt.Sprintf("unknown operator %q; expected one of %s", op, strings.Join(Operators, ", ")))
}

type kind uint8

const (
	kOther kind = iota
	kMissing
	kNull
	kBool
	kNumber
	kString
	kArray
	kObject
)

func kindOf(v any) kind {
	switch v.(type) {
	case nil:
		return kNull
	case missingT:
		return kMissing
	case bool:
		return kBool
	case string:
		return kString
	case json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return kNumber
	case []any, []string:
		return kArray
	case map[string]any, map[string]string:
		return kObject
	}
	return kOther
}

// num is a parsed number: exact when isInt, otherwise a float64.
type num struct {
	i     int64
	f     float64
	isInt bool
}

func (a num) cmp(b num) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	af, bf := a.float(), b.float()
	switch {
	case af < bf:
		return -1
	case af > bf:
		return 1
	}
	return 0
}

func (a num) float() float64 {
	if a.isInt {
		return float64(a.i)
	}
	return a.f
}

// parseNum reads a decimal number with an optional sign, fraction and exponent. Hex, inf, nan and
// underscores are not numbers here.
func parseNum(s string) (num, bool) {
	if s == "" || len(s) > 400 {
		return num{}, false
	}
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	digits, frac := 0, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !frac:
			frac = true
		case (c == 'e' || c == 'E') && digits > 0:
			j := i + 1
			if j < len(s) && (s[j] == '+' || s[j] == '-') {
				j++
			}
			if j == len(s) {
				return num{}, false
			}
			for ; j < len(s); j++ {
				if s[j] < '0' || s[j] > '9' {
					return num{}, false
				}
			}
			frac = true
			i = len(s)
		default:
			return num{}, false
		}
	}
	if digits == 0 {
		return num{}, false
	}
	if !frac {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return num{i: n, isInt: true}, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeErr(err) {
		return num{}, false
	}
	return num{f: f}, true
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// asNumber returns the numeric value of a number or of a numeric string (trimmed).
func asNumber(v any) (num, bool) {
	switch x := v.(type) {
	case json.Number:
		return parseNum(string(x))
	case string:
		if x == "" {
			return num{}, false
		}
		return parseNum(strings.TrimSpace(x))
	case int:
		return num{i: int64(x), isInt: true}, true
	case int64:
		return num{i: x, isInt: true}, true
	case int32:
		return num{i: int64(x), isInt: true}, true
	case int16:
		return num{i: int64(x), isInt: true}, true
	case int8:
		return num{i: int64(x), isInt: true}, true
	case uint:
		return uintNum(uint64(x)), true
	case uint64:
		return uintNum(x), true
	case uint32:
		return num{i: int64(x), isInt: true}, true
	case uint16:
		return num{i: int64(x), isInt: true}, true
	case uint8:
		return num{i: int64(x), isInt: true}, true
	case float64:
		return floatNum(x), true
	case float32:
		return floatNum(float64(x)), true
	}
	return num{}, false
}

func uintNum(u uint64) num {
	if u <= math.MaxInt64 {
		return num{i: int64(u), isInt: true}
	}
	return num{f: float64(u)}
}

func floatNum(f float64) num {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return num{i: int64(f), isInt: true}
	}
	return num{f: f}
}

func strEq(a, b string, caseSensitive bool) bool {
	if caseSensitive {
		return a == b
	}
	return strings.EqualFold(a, b)
}

// scalarText is the JSON text of a boolean, null or number, for comparing with strings.
func scalarText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return string(x)
	case string:
		return x
	}
	if n, ok := asNumber(v); ok {
		if n.isInt {
			return strconv.FormatInt(n.i, 10)
		}
		return strconv.FormatFloat(n.f, 'g', -1, 64)
	}
	return ""
}

func equals(a, b any, cs bool) (bool, error) {
	ka, kb := kindOf(a), kindOf(b)
	if ka == kOther {
		return false, unsupported(a)
	}
	if kb == kOther {
		return false, unsupported(b)
	}
	if ka == kMissing || kb == kMissing {
		return ka == kb, nil
	}
	if (ka == kNumber || ka == kString) && (kb == kNumber || kb == kString) {
		if na, ok := asNumber(a); ok {
			if nb, ok := asNumber(b); ok {
				return na.cmp(nb) == 0, nil
			}
		}
	}
	switch {
	case ka == kArray || ka == kObject || kb == kArray || kb == kObject:
		return canonicalEqualOperands(a, b, ka, kb), nil
	case ka == kString && kb == kString:
		return strEq(strings.TrimSpace(a.(string)), strings.TrimSpace(b.(string)), cs), nil
	case ka == kString:
		return strEq(strings.TrimSpace(a.(string)), scalarText(b), cs), nil
	case kb == kString:
		return strEq(scalarText(a), strings.TrimSpace(b.(string)), cs), nil
	case ka != kb:
		return false, nil
	case ka == kNull:
		return true, nil
	case ka == kBool:
		return a.(bool) == b.(bool), nil
	}
	return false, nil // two numbers are handled above
}

func canonicalEqualOperands(a, b any, ka, kb kind) bool {
	if ka == kString {
		var ok bool
		if a, ok = parseJSONText(a.(string)); !ok {
			return false
		}
	}
	if kb == kString {
		var ok bool
		if b, ok = parseJSONText(b.(string)); !ok {
			return false
		}
	}
	return jsonEqual(a, b)
}

func parseJSONText(s string) (any, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if dec.More() {
		return nil, false
	}
	return v, true
}

// jsonEqual compares two JSON values as canonical JSON would: objects by key set, arrays in order,
// numbers by value, strings and booleans exactly.
func jsonEqual(a, b any) bool {
	ka, kb := kindOf(a), kindOf(b)
	if ka != kb {
		return false
	}
	switch ka {
	case kNull:
		return true
	case kBool:
		return a.(bool) == b.(bool)
	case kString:
		return a.(string) == b.(string)
	case kNumber:
		na, oka := asNumber(a)
		nb, okb := asNumber(b)
		return oka && okb && na.cmp(nb) == 0
	case kArray:
		la, lb := asList(a), asList(b)
		if len(la) != len(lb) {
			return false
		}
		for i := range la {
			if !jsonEqual(la[i], lb[i]) {
				return false
			}
		}
		return true
	case kObject:
		ma, mb := asObject(a), asObject(b)
		if len(ma) != len(mb) {
			return false
		}
		for k, va := range ma {
			vb, ok := mb[k]
			if !ok || !jsonEqual(va, vb) {
				return false
			}
		}
		return true
	}
	return false
}

func asList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return nil
}

func asObject(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return x
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out
	}
	return nil
}

func unsupported(v any) error {
	return newError(CodeTypeMismatch, fmt.Sprintf("cannot compare %s", describe(v)))
}

func mismatch(format string, args ...any) error {
	return newError(CodeTypeMismatch, fmt.Sprintf(format, args...))
}

func contains(left, right any, cs bool) (bool, error) {
	kl, kr := kindOf(left), kindOf(right)
	switch kl {
	case kString:
		switch kr {
		case kString, kNumber, kBool, kNull:
			return containsFold(left.(string), scalarText(right), cs), nil
		}
		return false, mismatch("contains with a string on the left needs a string, number, boolean or null on the right, got %s", describe(right))
	case kArray:
		if kr == kMissing || kr == kOther {
			return false, mismatch("contains with an array on the left cannot look for %s", describe(right))
		}
		for _, e := range asList(left) {
			eq, err := equals(e, right, cs)
			if err != nil {
				return false, err
			}
			if eq {
				return true, nil
			}
		}
		return false, nil
	case kObject:
		var key string
		switch kr {
		case kString:
			key = strings.TrimSpace(right.(string))
		case kNumber, kBool:
			key = scalarText(right)
		default:
			return false, mismatch("contains with an object on the left needs a key (a string) on the right, got %s", describe(right))
		}
		switch m := left.(type) {
		case map[string]any:
			if _, ok := m[key]; ok {
				return true, nil
			}
			if !cs {
				for k := range m {
					if strings.EqualFold(k, key) {
						return true, nil
					}
				}
			}
		case map[string]string:
			if _, ok := m[key]; ok {
				return true, nil
			}
			if !cs {
				for k := range m {
					if strings.EqualFold(k, key) {
						return true, nil
					}
				}
			}
		}
		return false, nil
	}
	return false, mismatch("contains needs a string, an array or an object on the left, got %s", describe(left))
}

// containsFold reports whether needle is in s, case-insensitively unless cs. ASCII text is searched
// without allocating.
func containsFold(s, needle string, cs bool) bool {
	if cs {
		return strings.Contains(s, needle)
	}
	if !isASCII(s) || !isASCII(needle) {
		return strings.Contains(strings.ToLower(s), strings.ToLower(needle))
	}
	n := len(needle)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		if asciiEqualFold(s[i:i+n], needle) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func asciiEqualFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// order compares two numeric operands or two RFC 3339 timestamps; anything else is a type-mismatch.
func order(op string, a, b any) (int, error) {
	ka, kb := kindOf(a), kindOf(b)
	if (ka == kNumber || ka == kString) && (kb == kNumber || kb == kString) {
		na, oka := asNumber(a)
		nb, okb := asNumber(b)
		if oka && okb {
			return na.cmp(nb), nil
		}
		if ka == kString && kb == kString {
			ta, oka := asTime(a.(string))
			tb, okb := asTime(b.(string))
			if oka && okb {
				return ta.Compare(tb), nil
			}
		}
	}
	return 0, mismatch("%s needs two numbers or two RFC 3339 timestamps, got %s and %s", op, describeOrdered(a), describeOrdered(b))
}

// describeOrdered refines describe for greater_than / less_than messages.
func describeOrdered(v any) string {
	if s, ok := v.(string); ok {
		if _, ok := asNumber(s); ok {
			return "a numeric string"
		}
		if _, ok := asTime(s); ok {
			return "a timestamp"
		}
		return "a non-numeric string"
	}
	return describe(v)
}

func asTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 20 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil, missingT:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	case []any:
		return len(x) == 0
	case []string:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	case map[string]string:
		return len(x) == 0
	}
	return false
}

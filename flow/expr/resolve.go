package expr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Scope is what templates resolve against.
type Scope struct {
	// Values holds the resolvable roots: reserved roots (trigger, input, vars, conversation, contact,
	// execution, flow, now, nodes) and completed node outputs by node id.
	Values map[string]any
	// Missing maps a node id to the reason it cannot be read: "has not run", "was skipped", "failed".
	Missing map[string]string
}

type missingT struct{}

// MarshalJSON writes Missing as null, should it ever reach an output.
func (missingT) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func (missingT) String() string { return "<missing>" }

// Missing is returned by ResolveOperand for a missing KEY (not for a node that has not run).
var Missing = missingT{}

// Resolve returns a deep copy of v with every template in every string leaf substituted (PRODUCT
// §6.4). See the package documentation for the rules. An unresolvable reference gives
// *Error{Code:"unresolved-reference"}; a syntax error gives *Error{Code:"bad-template"}. When several
// leaves fail, the error of the first one in sorted key order is returned.
func Resolve(v any, sc *Scope) (any, error) {
	return resolveValue(v, sc, false, true)
}

// ResolveOperand is Resolve for logic-condition / logic-switch operands: a missing key (or a missing
// index, or a key read through null) resolves to Missing instead of failing; an unknown, unrun,
// skipped or failed node still fails.
func ResolveOperand(v any, sc *Scope) (any, error) {
	return resolveValue(v, sc, true, true)
}

func resolveValue(v any, sc *Scope, operand, top bool) (any, error) {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "{{") {
			return v, nil // no re-boxing of the string
		}
		r, err := resolveString(x, sc, operand)
		if r == Missing && !top {
			r = nil
		}
		return r, err
	case map[string]any:
		out := make(map[string]any, len(x))
		var firstErr error
		var firstKey string
		for k, e := range x {
			r, err := resolveValue(e, sc, operand, false)
			if err != nil {
				if firstErr == nil || k < firstKey {
					firstErr, firstKey = err, k
				}
				continue
			}
			out[k] = r
		}
		if firstErr != nil {
			return nil, firstErr
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := resolveValue(e, sc, operand, false)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return resolveValue(m, sc, operand, top)
	case []string:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		return resolveValue(l, sc, operand, top)
	}
	return v, nil
}

func resolveString(s string, sc *Scope, operand bool) (any, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	segs, err := cachedSegments(s)
	if err != nil {
		return nil, err
	}
	if len(segs) == 1 && segs[0].isRef {
		v, err := lookup(&segs[0].ref, sc, operand)
		if err != nil {
			return nil, err
		}
		return copyJSON(v), nil
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := range segs {
		if !segs[i].isRef {
			b.WriteString(segs[i].lit)
			continue
		}
		v, err := lookup(&segs[i].ref, sc, operand)
		if err != nil {
			return nil, err
		}
		if err := writeInterpolated(&b, v); err != nil {
			return nil, newError(CodeUnresolvedReference, fmt.Sprintf("{{%s}}: %v", segs[i].ref.Raw, err))
		}
	}
	return b.String(), nil
}

// lookup resolves one reference. With operand set, a missing key or index (or a read through null)
// gives Missing. `?? literal` replaces any failure and a null result.
func lookup(ref *Ref, sc *Scope, operand bool) (any, error) {
	v, reason := walkRef(ref, sc)
	if reason == nil {
		if v == nil && ref.HasDefault {
			return ref.Default, nil
		}
		return v, nil
	}
	if ref.HasDefault {
		return ref.Default, nil
	}
	if operand && reason.missing {
		return Missing, nil
	}
	return nil, newError(CodeUnresolvedReference, "{{"+ref.Raw+"}}: "+reason.text(ref))
}

// failure describes why a reference does not resolve. The message is built only when needed.
type failure struct {
	kind    int // one of the fail… constants
	missing bool
	depth   int // number of path elements walked before the failure
	key     string
	index   int
	length  int
	got     any
	obj     map[string]any
	why     string
}

const (
	failRoot = iota
	failKey
	failIndex
	failKeyOn
	failIndexOn
)

func (f *failure) text(ref *Ref) string {
	where := ""
	if f.depth > 0 {
		where = " in " + pathString(ref.Root, ref.Path[:f.depth])
	}
	switch f.kind {
	case failRoot:
		return f.why
	case failKey:
		return fmt.Sprintf("key %q not found%s; %s", f.key, where, availableKeys(f.obj))
	case failIndex:
		return fmt.Sprintf("index %d out of range%s (length %d)", f.index, where, f.length)
	case failKeyOn:
		hint := ""
		if _, isList := f.got.([]any); isList {
			if _, err := strconv.Atoi(f.key); err == nil {
				hint = fmt.Sprintf(" (use [%s])", f.key)
			}
		}
		return fmt.Sprintf("cannot read key %q of %s%s%s", f.key, describe(f.got), where, hint)
	default: // failIndexOn
		return fmt.Sprintf("cannot index %s with [%d]%s", describe(f.got), f.index, where)
	}
}

func availableKeys(m map[string]any) string {
	if len(m) == 0 {
		return "the object is empty"
	}
	keys := sortedKeys(m)
	const max = 30
	more := ""
	if len(keys) > max {
		more = fmt.Sprintf(", … (%d more)", len(keys)-max)
		keys = keys[:max]
	}
	return "available keys: " + strings.Join(keys, ", ") + more
}

func pathString(root string, path []PathElem) string {
	var b strings.Builder
	b.WriteString(root)
	for _, e := range path {
		switch {
		case e.IsIndex:
			b.WriteString("[" + strconv.Itoa(e.Index) + "]")
		case isPlainKey(e.Key):
			b.WriteString("." + e.Key)
		default:
			b.WriteString("[" + strconv.Quote(e.Key) + "]")
		}
	}
	return b.String()
}

func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isKeyChar(k[i]) {
			return false
		}
	}
	return true
}

func walkRef(ref *Ref, sc *Scope) (any, *failure) {
	var cur any
	ok := false
	if sc != nil {
		cur, ok = sc.Values[ref.Root]
	}
	if !ok {
		f := &failure{kind: failRoot}
		reason := ""
		if sc != nil {
			reason = sc.Missing[ref.Root]
		}
		switch {
		case reason != "":
			f.why = fmt.Sprintf("node %q %s", ref.Root, reason)
		case isReserved(ref.Root):
			f.why = fmt.Sprintf("%q is not available in this run", ref.Root)
		default:
			f.why = fmt.Sprintf("unknown node %q", ref.Root)
		}
		return nil, f
	}
	for i, e := range ref.Path {
		if e.IsIndex {
			switch x := cur.(type) {
			case []any:
				if e.Index >= len(x) {
					return nil, &failure{kind: failIndex, missing: true, depth: i, index: e.Index, length: len(x)}
				}
				cur = x[e.Index]
			case []string:
				if e.Index >= len(x) {
					return nil, &failure{kind: failIndex, missing: true, depth: i, index: e.Index, length: len(x)}
				}
				cur = x[e.Index]
			case nil:
				return nil, &failure{kind: failIndexOn, missing: true, depth: i, index: e.Index, got: cur}
			default:
				return nil, &failure{kind: failIndexOn, depth: i, index: e.Index, got: cur}
			}
			continue
		}
		switch x := cur.(type) {
		case map[string]any:
			v, found := x[e.Key]
			if !found {
				return nil, &failure{kind: failKey, missing: true, depth: i, key: e.Key, obj: x}
			}
			cur = v
		case map[string]string:
			v, found := x[e.Key]
			if !found {
				m := make(map[string]any, len(x))
				for k := range x {
					m[k] = nil
				}
				return nil, &failure{kind: failKey, missing: true, depth: i, key: e.Key, obj: m}
			}
			cur = v
		case nil:
			return nil, &failure{kind: failKeyOn, missing: true, depth: i, key: e.Key, got: cur}
		default:
			return nil, &failure{kind: failKeyOn, depth: i, key: e.Key, got: cur}
		}
	}
	return cur, nil
}

// describe names a value's JSON kind with an article, for messages. It never shows the value.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case missingT:
		return "a missing value"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "a number"
	case []any, []string:
		return "an array"
	case map[string]any, map[string]string:
		return "an object"
	default:
		return fmt.Sprintf("a value of Go type %T", x)
	}
}

// writeInterpolated writes v into a longer string: strings as they are, Missing as nothing, anything
// else as compact JSON.
func writeInterpolated(b *strings.Builder, v any) error {
	switch x := v.(type) {
	case string:
		b.WriteString(x)
	case missingT:
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case json.Number:
		b.WriteString(string(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	default:
		data, err := compactJSON(v)
		if err != nil {
			return err
		}
		b.Write(data)
	}
	return nil
}

// compactJSON encodes v as compact JSON with sorted keys and without HTML escaping.
func compactJSON(v any) ([]byte, error) {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil, fmt.Errorf("value %v cannot be written as JSON", f)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("value cannot be written as JSON: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// copyJSON deep-copies objects and arrays; scalars are returned as they are.
func copyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyJSON(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	}
	return v
}

package expr

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Ref is one {{ … }} occurrence.
type Ref struct {
	Raw        string     // the text between the braces, trimmed, e.g. `ai_1.json.score ?? 0`
	Root       string     // node id or reserved root, e.g. "ai_1", "trigger"
	Path       []PathElem // .key, [index], ["quoted key"]
	HasDefault bool
	// Default is the `?? literal`: a JSON literal (json.Number, bool, nil, string, []any, map[string]any)
	// or, if the text is not valid JSON, the trimmed text as a string.
	Default any
}

// PathElem is one step of a reference path: a key (.key or ["quoted key"]) or an index ([3]).
type PathElem struct {
	Key     string
	Index   int
	IsIndex bool
}

// ReservedRoots are the template roots that are not node ids (PRODUCT §6.4).
var ReservedRoots = []string{"trigger", "input", "vars", "conversation", "contact", "execution", "flow", "now", "nodes"}

func isReserved(name string) bool {
	switch name {
	case "trigger", "input", "vars", "conversation", "contact", "execution", "flow", "now", "nodes":
		return true
	}
	return false
}

// segment is a piece of a parsed template string: literal text or a reference.
type segment struct {
	lit   string
	ref   Ref
	isRef bool
}

// ParseTemplate finds every {{ … }} in s. `\{{` is a literal `{{` (not a template). Syntax errors
// (unclosed braces, bad path, empty root) give *Error{Code:"bad-template"}.
func ParseTemplate(s string) ([]Ref, error) {
	if !strings.Contains(s, "{{") {
		return nil, nil
	}
	segs, err := parseSegments(s, nil)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for i := range segs {
		if segs[i].isRef {
			refs = append(refs, segs[i].ref)
		}
	}
	return refs, nil
}

// Refs walks every string leaf of a JSON tree (maps, slices, lists included) and returns all refs.
// Object keys are visited in sorted order, so the result and the first error are deterministic.
func Refs(v any) ([]Ref, error) {
	var out []Ref
	err := walkStrings(v, func(s string) error {
		refs, err := ParseTemplate(s)
		out = append(out, refs...)
		return err
	})
	return out, err
}

func walkStrings(v any, fn func(string) error) error {
	switch x := v.(type) {
	case string:
		return fn(x)
	case []any:
		for _, e := range x {
			if err := walkStrings(e, fn); err != nil {
				return err
			}
		}
	case []string:
		for _, e := range x {
			if err := fn(e); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if err := walkStrings(x[k], fn); err != nil {
				return err
			}
		}
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := fn(x[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Parsed templates are cached: the engine resolves the same config strings on every run. Cached
// segments are shared and must not be modified; defaults are deep-copied before they are returned.
const (
	maxCachedTemplateBytes = 8 << 20 // total length of the cached strings
	maxCachedTemplateLen   = 64 << 10
)

type parsedTemplate struct {
	segs []segment
	err  error
}

var (
	tplCache      sync.Map // string -> *parsedTemplate
	tplCacheBytes atomic.Int64
)

func cachedSegments(s string) ([]segment, error) {
	if v, ok := tplCache.Load(s); ok {
		p := v.(*parsedTemplate)
		return p.segs, p.err
	}
	segs, err := parseSegments(s, nil)
	if len(s) > maxCachedTemplateLen {
		return segs, err
	}
	if tplCacheBytes.Add(int64(len(s))) > maxCachedTemplateBytes {
		tplCache.Clear()
		tplCacheBytes.Store(int64(len(s)))
	}
	tplCache.Store(s, &parsedTemplate{segs: segs, err: err})
	return segs, err
}

// parseSegments splits s into literal text and references, appending to segs. Escaped `\{{` become
// literal `{{` (the backslash is dropped).
func parseSegments(s string, segs []segment) ([]segment, error) {
	litStart, i := 0, 0
	for {
		j := strings.Index(s[i:], "{{")
		if j < 0 {
			break
		}
		pos := i + j
		if pos > 0 && s[pos-1] == '\\' {
			if pos-1 > litStart {
				segs = append(segs, segment{lit: s[litStart : pos-1]})
			}
			litStart = pos // the literal goes on with "{{"
			i = pos + 2
			continue
		}
		ref, end, err := parseRef(s, pos)
		if err != nil {
			return segs, err
		}
		if pos > litStart {
			segs = append(segs, segment{lit: s[litStart:pos]})
		}
		segs = append(segs, segment{ref: ref, isRef: true})
		litStart, i = end, end
	}
	if litStart < len(s) {
		segs = append(segs, segment{lit: s[litStart:]})
	}
	return segs, nil
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// isKeyChar: a .key runs until whitespace or a character with a meaning in the path syntax.
func isKeyChar(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '.', '[', ']', '{', '}', '"', '\'', '?', '\\':
		return false
	}
	return c >= 0x20 && c != 0x7f
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpaces(s string, p int) int {
	for p < len(s) && isSpace(s[p]) {
		p++
	}
	return p
}

// badTemplate reports a syntax error, quoting the template (at most 80 bytes of it).
func badTemplate(s string, pos int, format string, args ...any) *Error {
	frag := s[pos:]
	if k := strings.Index(frag[2:], "}}"); k >= 0 {
		frag = frag[:k+4]
	}
	if len(frag) > 80 {
		frag = frag[:77] + "..."
	}
	return newError(CodeBadTemplate, fmt.Sprintf("bad template %q: %s", frag, fmt.Sprintf(format, args...)))
}

// parseRef parses the template starting at s[pos:] ("{{…") and returns the index after its "}}".
func parseRef(s string, pos int) (Ref, int, error) {
	var ref Ref
	p := skipSpaces(s, pos+2)
	start := p
	for p < len(s) && isIDChar(s[p]) {
		p++
	}
	if p == start {
		if p >= len(s) {
			return ref, 0, badTemplate(s, pos, "unclosed {{")
		}
		if strings.HasPrefix(s[p:], "}}") || strings.HasPrefix(s[p:], "??") {
			return ref, 0, badTemplate(s, pos, "empty root: expected a node id or a reserved root")
		}
		return ref, 0, badTemplate(s, pos, "unexpected %q: a root is a node id or a reserved root (letters, digits, _ and -)", s[p:p+1])
	}
	ref.Root = s[start:p]
path:
	for p < len(s) {
		switch s[p] {
		case '.':
			p++
			ks := p
			for p < len(s) && isKeyChar(s[p]) {
				p++
			}
			if p == ks {
				return ref, 0, badTemplate(s, pos, `empty key after "."`)
			}
			ref.Path = append(ref.Path, PathElem{Key: s[ks:p]})
		case '[':
			p = skipSpaces(s, p+1)
			switch {
			case p < len(s) && s[p] == '"':
				key, n, ok := readJSONString(s[p:])
				if !ok {
					return ref, 0, badTemplate(s, pos, "unterminated quoted key")
				}
				p += n
				ref.Path = append(ref.Path, PathElem{Key: key})
			case p < len(s) && s[p] >= '0' && s[p] <= '9':
				ds := p
				for p < len(s) && s[p] >= '0' && s[p] <= '9' {
					p++
				}
				idx, err := strconv.Atoi(s[ds:p])
				if err != nil || p-ds > 9 {
					return ref, 0, badTemplate(s, pos, "index %s is too large", s[ds:p])
				}
				ref.Path = append(ref.Path, PathElem{Index: idx, IsIndex: true})
			default:
				return ref, 0, badTemplate(s, pos, `expected a non-negative index or a "quoted key" after "["`)
			}
			p = skipSpaces(s, p)
			if p >= len(s) || s[p] != ']' {
				return ref, 0, badTemplate(s, pos, `missing "]"`)
			}
			p++
		default:
			break path
		}
	}
	p = skipSpaces(s, p)
	switch {
	case strings.HasPrefix(s[p:], "}}"):
		ref.Raw = strings.TrimSpace(s[pos+2 : p])
		return ref, p + 2, nil
	case strings.HasPrefix(s[p:], "??"):
		ref.HasDefault = true
		p = skipSpaces(s, p+2)
		if p < len(s) && (s[p] == '"' || s[p] == '[' || s[p] == '{') {
			// A JSON string, array or object may itself contain "}}".
			dec := json.NewDecoder(strings.NewReader(s[p:]))
			dec.UseNumber()
			var v any
			if dec.Decode(&v) == nil {
				q := skipSpaces(s, p+int(dec.InputOffset()))
				if strings.HasPrefix(s[q:], "}}") {
					ref.Default = v
					ref.Raw = strings.TrimSpace(s[pos+2 : q])
					return ref, q + 2, nil
				}
			}
		}
		k := strings.Index(s[p:], "}}")
		if k < 0 {
			return ref, 0, badTemplate(s, pos, "unclosed {{")
		}
		ref.Default = literalValue(strings.TrimSpace(s[p : p+k]))
		ref.Raw = strings.TrimSpace(s[pos+2 : p+k])
		return ref, p + k + 2, nil
	case p >= len(s):
		return ref, 0, badTemplate(s, pos, "unclosed {{")
	default:
		return ref, 0, badTemplate(s, pos, `unexpected %q after the path; expected "}}" or "?? literal"`, s[p:p+1])
	}
}

// readJSONString reads a JSON string literal at the start of s and returns its value and length.
func readJSONString(s string) (string, int, bool) {
	escaped := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			if !escaped {
				return s[1:i], i + 1, true
			}
			var out string
			if err := json.Unmarshal([]byte(s[:i+1]), &out); err != nil {
				return "", 0, false
			}
			return out, i + 1, true
		}
	}
	return "", 0, false
}

// literalValue reads a `?? literal` that is not a JSON string, array or object.
func literalValue(text string) any {
	switch text {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if isJSONNumber(text) {
		return json.Number(text)
	}
	return text
}

// isJSONNumber reports whether s is a number in JSON syntax: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		ds := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == ds {
			return false
		}
	}
	return i == len(s)
}

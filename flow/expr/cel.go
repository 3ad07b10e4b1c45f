package expr

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// Limits of one CEL evaluation (PRODUCT §6.4).
const (
	// CostLimit is CEL's runtime cost budget: roughly one unit per operation and per list element or
	// string byte touched. A simple mapping costs tens of units; ten thousand element comprehensions
	// stay well below; a nested comprehension over large ranges hits it.
	CostLimit = 1_000_000
	// TimeLimit bounds the wall-clock time of one evaluation.
	TimeLimit = 100 * time.Millisecond
	// MaxResultBytes caps the size of a result written as compact JSON.
	MaxResultBytes = 256 << 10
	// MaxExpressionLength caps the source text of one expression.
	MaxExpressionLength = 16 << 10
	// maxRangeSize bounds lists.range(n).
	maxRangeSize = 100_000
	// interruptEvery is how many comprehension iterations pass between checks of the time limit.
	interruptEvery = 64
)

// timeLimit is TimeLimit; tests shorten it.
var timeLimit = TimeLimit

// cache bounds: distinct expression texts kept, and distinct variable sets kept.
const (
	maxCachedSources  = 4096
	maxCachedEnvs     = 512
	maxVariantsPerSrc = 16
)

// Program is a compiled CEL expression. It is immutable and safe for concurrent use.
type Program struct {
	src string
	prg cel.Program
}

// String returns the expression text.
func (p *Program) String() string { return p.src }

var (
	baseOnce sync.Once
	baseEnv  *cel.Env
	baseErr  error

	cacheMu  sync.Mutex
	srcCache = map[string]*srcEntry{}
	envCache = map[string]*cel.Env{}
)

// srcEntry caches what Compile learns from one expression text.
type srcEntry struct {
	parseErr error    // a syntax error, cached too
	idents   []string // identifiers the expression reads that may be node ids, sorted
	mu       sync.Mutex
	variants map[string]*Program // keyed by which idents are declared node ids ("0"/"1" per ident)
	errs     map[string]error
}

// jsonAdapter lets CEL read JSON-shaped Go values directly: json.Number becomes int (when it is an
// integer that fits int64) or double, and nested maps and lists are adapted lazily with the same rule,
// so inputs are never copied.
type jsonAdapter struct{ base types.Adapter }

func (a jsonAdapter) NativeToValue(v any) ref.Val {
	switch x := v.(type) {
	case json.Number:
		n, ok := parseNum(string(x))
		if !ok {
			return types.NewErr("invalid number %q", string(x))
		}
		if n.isInt {
			return types.Int(n.i)
		}
		return types.Double(n.f)
	case map[string]any:
		return types.NewStringInterfaceMap(a, x)
	case []any:
		return types.NewDynamicList(a, x)
	case missingT:
		return types.NullValue
	}
	return a.base.NativeToValue(v)
}

func env() (*cel.Env, error) {
	baseOnce.Do(func() {
		reg, err := types.NewRegistry()
		if err != nil {
			baseErr = err
			return
		}
		opts := []cel.EnvOption{
			cel.CustomTypeProvider(reg),
			cel.CustomTypeAdapter(jsonAdapter{base: reg}),
			cel.CrossTypeNumericComparisons(true),
			cel.DefaultUTCTimeZone(true),
			cel.OptionalTypes(),
			cel.ParserExpressionSizeLimit(MaxExpressionLength),
			ext.Strings(),
			ext.Math(),
			ext.Lists(ext.ListsMaxRangeSize(maxRangeSize)),
			ext.Encoders(),
			ext.Sets(),
			ext.Bindings(),
		}
		for _, r := range ReservedRoots {
			opts = append(opts, cel.Variable(r, cel.DynType))
		}
		baseEnv, baseErr = cel.NewEnv(opts...)
	})
	return baseEnv, baseErr
}

// celKeywords cannot be variable names; such node ids are read as nodes["id"].
var celKeywords = map[string]bool{
	"true": true, "false": true, "null": true, "in": true, "as": true, "break": true, "const": true,
	"continue": true, "else": true, "for": true, "function": true, "if": true, "import": true,
	"let": true, "loop": true, "package": true, "namespace": true, "return": true, "var": true,
	"void": true, "while": true,
	// type names and the macros' receiver-less names would be shadowed confusingly
	"int": true, "uint": true, "double": true, "bool": true, "string": true, "bytes": true,
	"list": true, "map": true, "null_type": true, "type": true, "dyn": true, "has": true,
	"optional": true, "math": true, "strings": true, "lists": true, "sets": true, "base64": true,
	"google": true, "cel": true,
}

// IsCELVariable reports whether a node id is declared as a CEL variable of its own: a valid CEL
// identifier ([A-Za-z_][A-Za-z0-9_]*) that is neither a reserved root nor a CEL keyword or type name.
// Every node is also readable as nodes["id"].
func IsCELVariable(id string) bool {
	if id == "" || isReserved(id) || celKeywords[id] {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// Compile parses and checks src. The variables are the reserved roots (trigger, input, vars,
// conversation, contact, execution, flow, now, nodes) as dyn, plus every id in nodeIDs for which
// IsCELVariable holds, as dyn. Syntax and check errors give *Error{Code:"expression-error"}.
//
// Results are cached by (src, the node ids src actually reads), so calling Compile for every node
// execution is cheap; the cache is bounded.
func Compile(src string, nodeIDs []string) (*Program, error) {
	e, err := env()
	if err != nil {
		return nil, newError(CodeExpressionError, "CEL environment: "+err.Error())
	}
	if len(src) > MaxExpressionLength {
		return nil, newError(CodeExpressionError, fmt.Sprintf("expression is longer than %d bytes", MaxExpressionLength))
	}
	if strings.TrimSpace(src) == "" {
		return nil, newError(CodeExpressionError, "expression is empty")
	}
	entry := sourceEntry(e, src)
	if entry.parseErr != nil {
		return nil, entry.parseErr
	}
	// Which of the identifiers read by src are declared node variables decides the program.
	var keyBuf [64]byte
	key := keyBuf[:0]
	declared := 0
	for _, id := range entry.idents {
		if contains := containsString(nodeIDs, id); contains {
			key = append(key, '1')
			declared++
		} else {
			key = append(key, '0')
		}
	}
	entry.mu.Lock()
	defer entry.mu.Unlock()
	if p := entry.variants[string(key)]; p != nil {
		return p, nil
	}
	if err := entry.errs[string(key)]; err != nil {
		return nil, err
	}
	names := make([]string, 0, declared)
	for i, id := range entry.idents {
		if key[i] == '1' {
			names = append(names, id)
		}
	}
	p, err := compileVariant(e, src, names)
	if len(entry.variants)+len(entry.errs) >= maxVariantsPerSrc {
		entry.variants, entry.errs = map[string]*Program{}, map[string]error{}
	}
	if err != nil {
		entry.errs[string(key)] = err
		return nil, err
	}
	entry.variants[string(key)] = p
	return p, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sourceEntry parses src once and records the identifiers it reads that could be node variables.
func sourceEntry(e *cel.Env, src string) *srcEntry {
	cacheMu.Lock()
	entry := srcCache[src]
	cacheMu.Unlock()
	if entry != nil {
		return entry
	}
	entry = &srcEntry{variants: map[string]*Program{}, errs: map[string]error{}}
	parsed, iss := e.Parse(src)
	if iss != nil && iss.Err() != nil {
		entry.parseErr = newError(CodeExpressionError, issueText(iss.Err()))
	} else {
		seen := map[string]bool{}
		ast.PreOrderVisit(parsed.NativeRep().Expr(), ast.NewExprVisitor(func(x ast.Expr) {
			if x.Kind() == ast.IdentKind {
				if name := x.AsIdent(); IsCELVariable(name) && !seen[name] {
					seen[name] = true
					entry.idents = append(entry.idents, name)
				}
			}
		}))
		sort.Strings(entry.idents)
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if existing := srcCache[src]; existing != nil {
		return existing
	}
	if len(srcCache) >= maxCachedSources {
		for k := range srcCache { // drop an arbitrary entry
			delete(srcCache, k)
			break
		}
	}
	srcCache[src] = entry
	return entry
}

// compileVariant checks src in an environment that also declares names as dyn variables.
func compileVariant(base *cel.Env, src string, names []string) (*Program, error) {
	e := base
	if len(names) > 0 {
		var err error
		if e, err = envWith(base, names); err != nil {
			return nil, newError(CodeExpressionError, "CEL environment: "+err.Error())
		}
	}
	checked, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, newError(CodeExpressionError, issueText(iss.Err()))
	}
	prg, err := e.Program(checked,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(interruptEvery),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil { // constant folding found an error, e.g. int("abc")
		return nil, newError(CodeExpressionError, "invalid expression: "+err.Error())
	}
	return &Program{src: src, prg: prg}, nil
}

func envWith(base *cel.Env, names []string) (*cel.Env, error) {
	key := strings.Join(names, ",")
	cacheMu.Lock()
	e := envCache[key]
	cacheMu.Unlock()
	if e != nil {
		return e, nil
	}
	opts := make([]cel.EnvOption, len(names))
	for i, n := range names {
		opts[i] = cel.Variable(n, cel.DynType)
	}
	e, err := base.Extend(opts...)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if len(envCache) >= maxCachedEnvs {
		for k := range envCache {
			delete(envCache, k)
			break
		}
	}
	envCache[key] = e
	return e, nil
}

// issueText turns CEL's issue report into a message. CEL gives, per issue, a line
// "ERROR: <input>:line:col: text" followed by the source line and a caret; all are kept, since they
// show the position. A hint is added to the first line for the usual mistakes.
func issueText(err error) string {
	msg := strings.TrimSpace(err.Error())
	msg = strings.ReplaceAll(msg, "ERROR: <input>:", "at ")
	msg = strings.ReplaceAll(msg, " (in container '')", "")
	first, rest, _ := strings.Cut(msg, "\n")
	if strings.Contains(msg, "undeclared reference") {
		first += ` (node outputs are read as nodes["node-id"], or by the bare id when it is a plain identifier)`
	}
	if rest != "" {
		first += "\n" + rest
	}
	return "invalid expression " + first
}

// Eval runs the program against vars (variable name → JSON-shaped value; json.Number is read as an
// int when it is an integer that fits int64, otherwise as a double). Limits: CostLimit,
// TimeLimit and MaxResultBytes give *Error{Code:"limit-exceeded"}. Runtime errors (no such key,
// division by zero, no matching overload such as int + double) give *Error{Code:"expression-error"}.
// If ctx itself is cancelled or expires, ctx's error is returned as is.
//
// The result is JSON-shaped: nil, bool, string, json.Number, []any, map[string]any. Integers and
// doubles become json.Number, bytes base64 text, timestamps RFC 3339 text, durations seconds text
// such as "1.5s", an optional its value or null, a type its name; map keys that are ints, uints or
// booleans become their text. NaN and infinities are an expression-error.
func (p *Program) Eval(ctx context.Context, vars map[string]any) (any, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithTimeout(ctx, timeLimit)
	defer cancel()
	if vars == nil {
		vars = map[string]any{}
	}
	// A finished evaluation stands even if the clock ran out meanwhile: on a
	// loaded machine a cheap expression may straddle the deadline, and the cost
	// limit already bounds the work; only an interrupted one fails.
	out, _, err := p.prg.ContextEval(runCtx, vars)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var cancelled interpreter.EvalCancelledError
		switch {
		case errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded:
			return nil, newError(CodeLimitExceeded, fmt.Sprintf("expression %s exceeded the cost limit (%d)", quoteExpr(p.src), CostLimit))
		case errors.Is(err, interpreter.InterruptError{}), errors.As(err, &cancelled), runCtx.Err() != nil:
			return nil, newError(CodeLimitExceeded, fmt.Sprintf("expression %s exceeded the time limit (%s)", quoteExpr(p.src), timeLimit))
		}
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "no such overload"):
			msg += " (CEL does not mix int and double in arithmetic: convert with double(x) or int(x))"
		case strings.HasPrefix(msg, "no such attribute"):
			msg += " (no value in this run: a node that has not run, was skipped or failed has no output)"
		}
		return nil, newError(CodeExpressionError, fmt.Sprintf("expression %s failed: %s", quoteExpr(p.src), msg))
	}
	budget := MaxResultBytes
	res, err := toJSON(out, &budget, 0)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, newError(CodeExpressionError, fmt.Sprintf("expression %s: %s", quoteExpr(p.src), err.Error()))
	}
	return res, nil
}

func quoteExpr(src string) string {
	if len(src) > 120 {
		src = src[:117] + "..."
	}
	return strconv.Quote(src)
}

func errTooLarge() error {
	return newError(CodeLimitExceeded, fmt.Sprintf("expression result is larger than %d KiB as JSON", MaxResultBytes>>10))
}

const maxResultDepth = 100

// toJSON converts a CEL value to a JSON-shaped Go value, charging its compact JSON size to budget.
func toJSON(v ref.Val, budget *int, depth int) (any, error) {
	if depth > maxResultDepth {
		return nil, errors.New("result is nested too deeply")
	}
	charge := func(n int) error {
		*budget -= n
		if *budget < 0 {
			return errTooLarge()
		}
		return nil
	}
	switch x := v.(type) {
	case types.Null:
		return nil, charge(4)
	case types.Bool:
		if x {
			return true, charge(4)
		}
		return false, charge(5)
	case types.Int:
		s := strconv.FormatInt(int64(x), 10)
		return json.Number(s), charge(len(s))
	case types.Uint:
		s := strconv.FormatUint(uint64(x), 10)
		return json.Number(s), charge(len(s))
	case types.Double:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errors.New("result contains NaN or an infinity, which JSON cannot represent")
		}
		s := formatFloat(f)
		if !strings.ContainsAny(s, ".eE") {
			// A double stays a double for the next node: 108.0, not 108 (which reads back as an int).
			s += ".0"
		}
		return json.Number(s), charge(len(s))
	case types.String:
		return string(x), charge(jsonStringLen(string(x)))
	case types.Bytes:
		s := base64.StdEncoding.EncodeToString([]byte(x))
		return s, charge(len(s) + 2)
	case types.Timestamp:
		s := x.Time.UTC().Format(time.RFC3339Nano)
		return s, charge(len(s) + 2)
	case types.Duration:
		s := strconv.FormatFloat(x.Duration.Seconds(), 'f', -1, 64) + "s"
		return s, charge(len(s) + 2)
	case *types.Optional:
		if !x.HasValue() {
			return nil, charge(4)
		}
		return toJSON(x.GetValue(), budget, depth+1)
	case *types.Err:
		return nil, x
	case traits.Mapper:
		out := map[string]any{}
		if err := charge(2); err != nil {
			return nil, err
		}
		it := x.Iterator()
		first := true
		for it.HasNext() == types.True {
			k := it.Next()
			var key string
			switch kk := k.(type) {
			case types.String:
				key = string(kk)
			case types.Int, types.Uint, types.Bool:
				key = fmt.Sprint(kk.Value())
			default:
				return nil, fmt.Errorf("result has a map key of type %s; JSON object keys are strings", k.Type().TypeName())
			}
			n := jsonStringLen(key) + 1
			if !first {
				n++
			}
			first = false
			if err := charge(n); err != nil {
				return nil, err
			}
			ev, err := toJSON(x.Get(k), budget, depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = ev
		}
		return out, nil
	case traits.Lister:
		size, ok := x.Size().(types.Int)
		if !ok {
			return nil, errors.New("result list has no size")
		}
		if err := charge(2 + max(int(size)-1, 0)); err != nil {
			return nil, err
		}
		out := make([]any, 0, int(size))
		for i := types.Int(0); i < size; i++ {
			ev, err := toJSON(x.Get(i), budget, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	case ref.Type:
		s := x.TypeName()
		return s, charge(len(s) + 2)
	}
	return nil, fmt.Errorf("result of type %s cannot be written as JSON", v.Type().TypeName())
}

// formatFloat writes a double as JSON numbers usually are: no exponent for ordinary magnitudes.
func formatFloat(f float64) string {
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// jsonStringLen is the length of s as a JSON string literal (quotes and escapes included).
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			n += 6 // written as \ufffd, \u2028, \u2029
		} else {
			n += size
		}
		i += size
	}
	return n
}

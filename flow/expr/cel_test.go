package expr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func celVars(t testing.TB) map[string]any {
	return map[string]any{
		"nodes": decodeJSON(t, `{"ai-1": {"response": "hello world", "usage": {"total_tokens": 12}},
			"http_1": {"status": 200, "body": {"items": [{"name": "a", "price": 2.5}, {"name": "b", "price": 4}]}}}`),
		"ai_1":    decodeJSON(t, `{"response": "plain id", "json": {"score": 0.5, "count": 7}}`),
		"trigger": decodeJSON(t, `{"message": {"text": "  Hi There  "}, "tags": ["x", "y"]}`),
		"vars":    map[string]any{"count": 3, "price": n("10"), "rate": n("0.2"), "name": "Ann"},
		"contact": map[string]any{"name": "Bob", "id": "c1"},
		"now":     "2026-11-27T12:00:00Z",
		"input":   map[string]any{},
	}
}

func TestCELEval(t *testing.T) {
	vars := celVars(t)
	ids := []string{"ai_1", "ai-1", "http_1", "in"}
	tests := []struct {
		name string
		src  string
		want any
	}{
		{"transform over a hyphenated node", `nodes["ai-1"].response.upperAscii()`, "HELLO WORLD"},
		{"bare node id", `ai_1.response + "!"`, "plain id!"},
		{"hyphenated id through nodes", `nodes["ai-1"].usage.total_tokens + 1`, n("13")},
		{"int arithmetic", `vars.count * 2 + vars.price`, n("16")},
		{"double arithmetic", `vars.rate * 2.0`, n("0.4")},
		{"explicit conversion", `double(vars.price) * vars.rate`, n("2.0")},
		{"integer division", `7 / 2`, n("3")},
		{"mixed comparison", `vars.price > 9.5 && ai_1.json.score < 1`, true},
		{"string functions", `trigger.message.text.trim().lowerAscii()`, "hi there"},
		{"map literal", `{"name": contact.name, "tags": trigger.tags.map(t, t.upperAscii()), "n": size(trigger.tags), "ok": true, "none": null}`,
			map[string]any{"name": "Bob", "tags": []any{"X", "Y"}, "n": n("2"), "ok": true, "none": nil}},
		{"list of node values", `nodes.http_1.body.items.map(i, i.price)`, []any{n("2.5"), n("4")}},
		{"filter", `nodes.http_1.body.items.filter(i, i.price > 3).map(i, i.name)`, []any{"b"}},
		{"sum with fold-like macro", `math.greatest(nodes.http_1.body.items.map(i, double(i.price)))`, n("4.0")},
		{"input object passes through", `nodes["ai-1"].usage`, map[string]any{"total_tokens": n("12")}},
		{"has()", `has(vars.missing) ? 1 : 2`, n("2")},
		{"cel.bind", `cel.bind(p, vars.price, p * p)`, n("100")},
		{"optional", `vars.?missing.orValue("default")`, "default"},
		{"ternary on string", `contact.name == "Bob" ? "yes" : "no"`, "yes"},
		{"timestamp from now", `timestamp(now) + duration("90m")`, "2026-11-27T13:30:00Z"},
		{"duration", `duration("1.5s")`, "1.5s"},
		{"uint", `3u`, n("3")},
		{"bytes as base64", `b"abc"`, "YWJj"},
		{"int map keys become strings", `{1: "a", true: "b"}`, map[string]any{"1": "a", "true": "b"}},
		{"type value", `type(1)`, "int"},
		{"large double keeps no exponent", `1e20`, n("100000000000000000000.0")},
		{"small double", `1e-7`, n("1e-07")},
		{"string with escapes", `"a\"b\n"`, "a\"b\n"},
		{"null", `null`, nil},
		{"go int input", `vars.count`, n("3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.src, ids)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.src, err)
			}
			got, err := p.Eval(context.Background(), vars)
			if err != nil {
				t.Fatalf("Eval(%q): %v", tt.src, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval(%q)\n got %#v\nwant %#v", tt.src, got, tt.want)
			}
		})
	}
}

func wantError(t *testing.T, err error, code, contains string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *Error %s", err, code)
	}
	if e.Code != code {
		t.Errorf("code = %q, want %q (message %q)", e.Code, code, e.Message)
	}
	if !strings.Contains(e.Message, contains) {
		t.Errorf("message = %q, want it to contain %q", e.Message, contains)
	}
}

func TestCELCompileErrors(t *testing.T) {
	tests := []struct {
		src      string
		ids      []string
		contains string
	}{
		{`1 +`, nil, "invalid expression at 1:4: Syntax error"},
		{`vars.a +* 2`, nil, "Syntax error"},
		{`"unterminated`, nil, "Syntax error"},
		{``, nil, "expression is empty"},
		{`   `, nil, "expression is empty"},
		{strings.Repeat("1+", MaxExpressionLength) + "1", nil, "longer than"},
		{`ai_2.response`, []string{"ai_1"}, `undeclared reference to 'ai_2'`},
		{`ai_2.response`, []string{"ai_1"}, `node outputs are read as nodes["node-id"]`},
		{`ai-1.response`, []string{"ai-1"}, `undeclared reference to 'ai'`}, // a hyphen is subtraction
		{`foo(1)`, nil, `undeclared reference to 'foo'`},
		{`1 + "a"`, nil, `found no matching overload for '_+_'`},
		{`int("abc")`, nil, `invalid expression: type conversion error`}, // found by constant folding
	}
	for _, tt := range tests {
		name := tt.src
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			_, err := Compile(tt.src, tt.ids)
			wantError(t, err, CodeExpressionError, tt.contains)
			// The cached result gives the same answer.
			_, err = Compile(tt.src, tt.ids)
			wantError(t, err, CodeExpressionError, tt.contains)
		})
	}
}

func TestCELNodeVariables(t *testing.T) {
	for id, want := range map[string]bool{
		"ai_1": true, "_x": true, "A9": true,
		"ai-1": false, "1ai": false, "": false, "in": false, "int": false, "null": false,
		"nodes": false, "trigger": false, "has": false,
	} {
		if got := IsCELVariable(id); got != want {
			t.Errorf("IsCELVariable(%q) = %v, want %v", id, got, want)
		}
	}
	// The same source compiles or not depending on the declared ids, and each answer is cached.
	if _, err := Compile(`send_1.status`, nil); err == nil {
		t.Fatal("send_1 is not a node id here")
	}
	p1, err := Compile(`send_1.status`, []string{"x", "send_1"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Compile(`send_1.status`, []string{"send_1", "other", "y"})
	if err != nil || p1 != p2 {
		t.Fatalf("ids the expression does not read should not matter: %p %p %v", p1, p2, err)
	}
	got, err := p1.Eval(context.Background(), map[string]any{"send_1": map[string]any{"status": "sent"}})
	if err != nil || got != "sent" {
		t.Fatalf("got %v, %v", got, err)
	}
	// A comprehension variable with the name of a node id shadows it.
	p, err := Compile(`[1, 2].map(x, x * 2)`, []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = p.Eval(context.Background(), map[string]any{"x": "node output"})
	if err != nil || !reflect.DeepEqual(got, []any{n("2"), n("4")}) {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestCELRuntimeErrors(t *testing.T) {
	vars := celVars(t)
	tests := []struct{ src, contains string }{
		{`1 / 0`, `expression "1 / 0" failed: division by zero`},
		{`vars.missing`, "no such key: missing"},
		{`nodes["ai-9"].response`, "no such key: ai-9"},
		{`vars.count + 1.5`, "no such overload (CEL does not mix int and double"},
		{`trigger.tags[5]`, "index out of bounds"},
		{`int(vars.name)`, "type conversion error from 'string' to 'int'"},
		{`0.0 / 0.0`, "NaN"},
		{`{[1]: 2}`, "map key of type list"},
		{`send_9.status`, "no such attribute(s): send_9 (no value in this run"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			p, err := Compile(tt.src, []string{"send_9"})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			_, err = p.Eval(context.Background(), vars)
			wantError(t, err, CodeExpressionError, tt.contains)
		})
	}
}

func TestCELCostLimit(t *testing.T) {
	vars := map[string]any{"vars": map[string]any{"s": strings.Repeat("a", 200_000), "t": strings.Repeat("a", 999) + "b"}}
	// contains() costs about len(s)*len(t)/100: 2,000,000 here, so the first iteration already
	// exceeds the limit, well within the time limit.
	p, err := Compile(`lists.range(100).all(i, !vars.s.contains(vars.t))`, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval(context.Background(), vars)
	wantError(t, err, CodeLimitExceeded, "exceeded the cost limit (1000000)")

	// A huge nested comprehension: a million iterations. Whichever limit trips first, it is a limit.
	p, err = Compile(`lists.range(1000).map(i, lists.range(1000).map(j, i + j)).size()`, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval(context.Background(), vars)
	wantError(t, err, CodeLimitExceeded, "exceeded the")
}

func TestCELTimeLimit(t *testing.T) {
	old := timeLimit
	timeLimit = 2 * time.Millisecond
	defer func() { timeLimit = old }()
	// 20,000 iterations cost about 120,000, well under the cost limit, but take longer than 2 ms.
	p, err := Compile(`lists.range(20000).all(i, i >= 0) && lists.range(20000).all(i, i >= 0)`, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval(context.Background(), nil)
	wantError(t, err, CodeLimitExceeded, "exceeded the time limit (2ms)")
}

func TestCELCallerCancellation(t *testing.T) {
	p, err := Compile(`lists.range(20000).all(i, i >= 0)`, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Eval(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled caller context should give context.Canceled, got %v", err)
	}
}

func TestCELResultSizeLimit(t *testing.T) {
	vars := map[string]any{"vars": map[string]any{"s": strings.Repeat("x", 4096)}}
	// 64 strings of 4096+2 bytes plus commas and brackets: 262,273 bytes > 256 KiB.
	p, err := Compile(`lists.range(64).map(i, vars.s)`, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval(context.Background(), vars)
	wantError(t, err, CodeLimitExceeded, "larger than 256 KiB")

	// 63 of them fit, and the charged size is the real JSON size.
	p, err = Compile(`{"k": lists.range(63).map(i, vars.s)}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Eval(context.Background(), vars)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(got)
	if len(data) > MaxResultBytes || len(data) < 250_000 {
		t.Fatalf("size %d", len(data))
	}
}

func TestJSONStringLen(t *testing.T) {
	for _, s := range []string{"", "abc", "a\"b\\c", "tab\there\nnew", "\x00\x01\x1f", "é中🙂", "<&>", "\u2028\u2029", "bad\xffutf8"} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if want := buf.Len() - 1; jsonStringLen(s) != want {
			t.Errorf("jsonStringLen(%q) = %d, want %d", s, jsonStringLen(s), want)
		}
	}
}

func TestCELConcurrent(t *testing.T) {
	vars := celVars(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				src := fmt.Sprintf(`vars.count + %d`, i%5)
				p, err := Compile(src, []string{"ai_1"})
				if err != nil {
					errs <- err
					return
				}
				got, err := p.Eval(context.Background(), vars)
				if err != nil {
					errs <- err
					return
				}
				if want := n(fmt.Sprint(3 + i%5)); got != want {
					errs <- fmt.Errorf("%s = %v, want %v", src, got, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

package expr

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func testScope(t testing.TB) *Scope {
	return &Scope{
		Values: map[string]any{
			"ai_1": decodeJSON(t, `{"response": "Hello <b>&</b>", "model": "gpt-4o",
				"usage": {"total_tokens": 12, "prompt_tokens": 5}, "json": {"score": 0.87, "tags": ["a", "b"], "none": null, "ok": true}}`),
			"ai": decodeJSON(t, `{"response": "short id"}`),
			"http_1": decodeJSON(t, `{"status": 200, "body": {"total": 42, "items": [{"name": "x"}, {"name": "y"}],
				"obj": {"b": 2, "a": [1, {"c": null}]}, "empty": {}, "list": [], "weird key": "w", "a.b": "dot", "}}": "braces", "n": null}}`),
			"trigger": decodeJSON(t, `{"message": {"text": "hi there", "attachments": []}}`),
			"vars":    map[string]any{"count": 3, "big": int64(1) << 40, "f": 1.5, "flag": false, "name": "Ann"},
			"nodes":   decodeJSON(t, `{"ai-1": {"response": "from hyphen"}}`),
			"now":     "2026-11-27T12:00:00Z",
		},
		Missing: map[string]string{"ai_2": "has not run", "http_2": "was skipped", "send_1": "failed"},
	}
}

func TestResolve(t *testing.T) {
	sc := testScope(t)
	tests := []struct {
		name string
		in   any
		want any
	}{
		// typed substitution of an exact template
		{"number", "{{http_1.body.total}}", json.Number("42")},
		{"float", "{{ai_1.json.score}}", json.Number("0.87")},
		{"Go int", "{{vars.count}}", 3},
		{"bool", "{{ai_1.json.ok}}", true},
		{"bool false", "{{vars.flag}}", false},
		{"null", "{{ai_1.json.none}}", nil},
		{"object", "{{http_1.body.obj}}", decodeJSON(t, `{"b": 2, "a": [1, {"c": null}]}`)},
		{"array", "{{ai_1.json.tags}}", []any{"a", "b"}},
		{"string", "{{ai_1.response}}", "Hello <b>&</b>"},
		{"whole root", "{{now}}", "2026-11-27T12:00:00Z"},
		{"index", "{{http_1.body.items[1].name}}", "y"},
		{"quoted key with space", `{{http_1.body["weird key"]}}`, "w"},
		{"quoted key with dot", `{{http_1.body["a.b"]}}`, "dot"},
		{"quoted key with braces", `{{http_1.body["}}"]}}`, "braces"},
		{"nodes by quoted hyphenated id", `{{nodes["ai-1"].response}}`, "from hyphen"},
		{"exact node id match", "{{ai.response}}", "short id"},
		{"spaces inside braces", "{{  ai_1.model  }}", "gpt-4o"},
		// interpolation
		{"interpolate strings as is", "Say: {{ai_1.response}}!", "Say: Hello <b>&</b>!"},
		{"interpolate number", "total={{http_1.body.total}}", "total=42"},
		{"interpolate Go numbers", "{{vars.count}}/{{vars.big}}/{{vars.f}}", "3/1099511627776/1.5"},
		{"interpolate bool and null", "{{ai_1.json.ok}} {{ai_1.json.none}}", "true null"},
		{"interpolate object as compact sorted JSON", "obj={{http_1.body.obj}}", `obj={"a":[1,{"c":null}],"b":2}`},
		{"interpolate array", "tags: {{ai_1.json.tags}}", `tags: ["a","b"]`},
		{"interpolate without HTML escaping", "x {{http_1.body.items[0]}}", `x {"name":"x"}`},
		{"interpolate empty object and list", "{{http_1.body.empty}}{{http_1.body.list}}", "{}[]"},
		{"surrounding space makes it a string", " {{http_1.body.total}}", " 42"},
		{"two templates", "{{vars.name}}{{vars.name}}", "AnnAnn"},
		// escapes
		{"escape", `\{{vars.name}}`, "{{vars.name}}"},
		{"escape then template", `\{{x}} = {{vars.name}}`, "{{x}} = Ann"},
		{"lone backslash kept", `a\b {{vars.name}}`, `a\b Ann`},
		{"no template at all", "plain } { text", "plain } { text"},
		// defaults
		{"default number on missing key", "{{ai_1.json.missing ?? 0}}", json.Number("0")},
		{"default string", `{{ai_1.nope ?? "n/a"}}`, "n/a"},
		{"default bare text", `{{ai_1.nope ?? n/a}}`, "n/a"},
		{"default true", "{{ai_1.nope ?? true}}", true},
		{"default false", "{{ai_1.nope ?? false}}", false},
		{"default null", "{{ai_1.nope ?? null}}", nil},
		{"default object", `{{ai_1.nope ?? {"a":1}}}`, map[string]any{"a": json.Number("1")}},
		{"default array", `{{ai_1.nope ?? []}}`, []any{}},
		{"default on a node that has not run", "{{ai_2.response ?? 5}}", json.Number("5")},
		{"default on a skipped node", "{{http_2.body ?? 5}}", json.Number("5")},
		{"default on an unknown node", "{{nope.x ?? 5}}", json.Number("5")},
		{"default on index out of range", "{{http_1.body.items[9].name ?? none}}", "none"},
		{"default on null value", "{{ai_1.json.none ?? 1}}", json.Number("1")},
		{"default not used when present", "{{http_1.body.total ?? 0}}", json.Number("42")},
		{"default in a longer string", "score: {{ai_1.json.missing ?? 0}}", "score: 0"},
		// containers
		{"list of templates", []any{"{{http_1.body.total}}", "x", json.Number("1"), nil, true, []any{"{{vars.name}}"}},
			[]any{json.Number("42"), "x", json.Number("1"), nil, true, []any{"Ann"}}},
		{"nested maps", map[string]any{"a": map[string]any{"b": "{{vars.name}}", "c": []any{map[string]any{"d": "{{ai_1.json.tags}}"}}}, "n": json.Number("2")},
			map[string]any{"a": map[string]any{"b": "Ann", "c": []any{map[string]any{"d": []any{"a", "b"}}}}, "n": json.Number("2")}},
		{"[]string", []string{"{{vars.name}}", "{{http_1.body.total}}"}, []any{"Ann", json.Number("42")}},
		{"map[string]string", map[string]string{"h": "Bearer {{vars.name}}"}, map[string]any{"h": "Bearer Ann"}},
		{"scalars untouched", json.Number("7"), json.Number("7")},
		{"nil", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.in, sc)
			if err != nil {
				t.Fatalf("Resolve(%#v): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%#v)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestResolveUnresolved(t *testing.T) {
	sc := testScope(t)
	tests := []struct{ in, msg string }{
		{"{{ai_1.text}}", `{{ai_1.text}}: key "text" not found; available keys: json, model, response, usage`},
		{"prefix {{ai_1.text}} suffix", `{{ai_1.text}}: key "text" not found; available keys: json, model, response, usage`},
		{"{{ai_1.usage.cost}}", `{{ai_1.usage.cost}}: key "cost" not found in ai_1.usage; available keys: prompt_tokens, total_tokens`},
		{"{{http_1.body.empty.x}}", `{{http_1.body.empty.x}}: key "x" not found in http_1.body.empty; the object is empty`},
		{"{{ http_2.body }}", `{{http_2.body}}: node "http_2" was skipped`},
		{"{{ai_2.response}}", `{{ai_2.response}}: node "ai_2" has not run`},
		{"{{send_1.message_id}}", `{{send_1.message_id}}: node "send_1" failed`},
		{"{{nope.x}}", `{{nope.x}}: unknown node "nope"`},
		{"{{ai_}}", `{{ai_}}: unknown node "ai_"`},
		{"{{conversation.id}}", `{{conversation.id}}: "conversation" is not available in this run`},
		{"{{http_1.body.items[5].name}}", `{{http_1.body.items[5].name}}: index 5 out of range in http_1.body.items (length 2)`},
		{"{{http_1.body.list[0]}}", `{{http_1.body.list[0]}}: index 0 out of range in http_1.body.list (length 0)`},
		{"{{ai_1.response.length}}", `{{ai_1.response.length}}: cannot read key "length" of a string in ai_1.response`},
		{"{{http_1.status.x}}", `{{http_1.status.x}}: cannot read key "x" of a number in http_1.status`},
		{"{{http_1.body.items.0}}", `{{http_1.body.items.0}}: cannot read key "0" of an array in http_1.body.items (use [0])`},
		{"{{http_1.body[0]}}", `{{http_1.body[0]}}: cannot index an object with [0] in http_1.body`},
		{"{{ai_1.response[0]}}", `{{ai_1.response[0]}}: cannot index a string with [0] in ai_1.response`},
		{"{{http_1.body.n.x}}", `{{http_1.body.n.x}}: cannot read key "x" of null in http_1.body.n`},
		{`{{http_1.body["weird key"].x}}`, `{{http_1.body["weird key"].x}}: cannot read key "x" of a string in http_1.body["weird key"]`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Resolve(map[string]any{"field": []any{tt.in}}, sc)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Resolve(%q) error = %v, want *Error", tt.in, err)
			}
			if e.Code != CodeUnresolvedReference || e.Message != tt.msg {
				t.Errorf("Resolve(%q)\n got %s: %s\nwant %s: %s", tt.in, e.Code, e.Message, CodeUnresolvedReference, tt.msg)
			}
		})
	}
}

func TestResolveAvailableKeysAreCapped(t *testing.T) {
	obj := map[string]any{}
	for _, c := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ" {
		obj[string(c)] = 1
	}
	_, err := Resolve("{{n.zz}}", &Scope{Values: map[string]any{"n": obj}})
	if err == nil || !strings.HasSuffix(err.Error(), ", … (6 more)") {
		t.Fatalf("got %v", err)
	}
}

func TestResolveBadTemplate(t *testing.T) {
	_, err := Resolve(map[string]any{"a": "{{ai_1.}}"}, testScope(t))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeBadTemplate {
		t.Fatalf("got %v", err)
	}
}

func TestResolveDeterministicError(t *testing.T) {
	in := map[string]any{"b": "{{nope_b}}", "a": "{{nope_a}}", "c": "{{nope_c}}", "d": "ok"}
	for i := 0; i < 20; i++ {
		_, err := Resolve(in, testScope(t))
		if err == nil || err.Error() != `{{nope_a}}: unknown node "nope_a"` {
			t.Fatalf("got %v", err)
		}
	}
}

func TestResolveCopies(t *testing.T) {
	sc := testScope(t)
	in := map[string]any{"obj": "{{http_1.body.obj}}", "list": []any{"x"}, "m": map[string]any{"k": "v"}}
	out, err := Resolve(in, sc)
	if err != nil {
		t.Fatal(err)
	}
	m := out.(map[string]any)
	m["obj"].(map[string]any)["b"] = "changed"
	m["obj"].(map[string]any)["a"].([]any)[0] = "changed"
	m["list"].([]any)[0] = "changed"
	m["m"].(map[string]any)["k"] = "changed"
	if got := sc.Values["http_1"].(map[string]any)["body"].(map[string]any)["obj"]; !reflect.DeepEqual(got, decodeJSON(t, `{"b": 2, "a": [1, {"c": null}]}`)) {
		t.Errorf("the node output was changed through the result: %v", got)
	}
	if in["list"].([]any)[0] != "x" || in["m"].(map[string]any)["k"] != "v" {
		t.Errorf("the input was changed through the result: %v", in)
	}

	// A default object comes from the template cache; changing one result must not change the next.
	for i := 0; i < 2; i++ {
		got, err := Resolve(`{{ai_1.nope ?? {"a":[1]}}}`, sc)
		if err != nil {
			t.Fatal(err)
		}
		if want := decodeJSON(t, `{"a":[1]}`); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: got %#v", i, got)
		}
		got.(map[string]any)["a"].([]any)[0] = "changed"
	}
}

func TestResolveNilScope(t *testing.T) {
	if got, err := Resolve("text", nil); err != nil || got != "text" {
		t.Fatalf("got %v, %v", got, err)
	}
	_, err := Resolve("{{a}}", nil)
	if err == nil || err.Error() != `{{a}}: unknown node "a"` {
		t.Fatalf("got %v", err)
	}
}

func TestResolveOperand(t *testing.T) {
	sc := testScope(t)
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"present", "{{http_1.body.total}}", json.Number("42")},
		{"missing key", "{{ai_1.json.missing}}", Missing},
		{"missing nested key", "{{ai_1.usage.cost}}", Missing},
		{"missing index", "{{http_1.body.items[7]}}", Missing},
		{"read through null", "{{http_1.body.n.x}}", Missing},
		{"default wins over missing", "{{ai_1.json.missing ?? 1}}", json.Number("1")},
		{"missing in a longer string is empty", "[{{ai_1.json.missing}}]", "[]"},
		{"missing inside a list is null", []any{"{{ai_1.json.missing}}"}, []any{nil}},
		{"missing inside an object is null", map[string]any{"a": "{{ai_1.json.missing}}"}, map[string]any{"a": nil}},
		{"null stays null", "{{ai_1.json.none}}", nil},
		{"literal", "abc", "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveOperand(tt.in, sc)
			if err != nil {
				t.Fatalf("ResolveOperand(%#v): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveOperand(%#v) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}

	fails := []struct{ in, msg string }{
		{"{{ai_2.response}}", `{{ai_2.response}}: node "ai_2" has not run`},
		{"{{http_2.body}}", `{{http_2.body}}: node "http_2" was skipped`},
		{"{{send_1.x}}", `{{send_1.x}}: node "send_1" failed`},
		{"{{nope.x}}", `{{nope.x}}: unknown node "nope"`},
		{"{{ai_1.response.x}}", `{{ai_1.response.x}}: cannot read key "x" of a string in ai_1.response`},
	}
	for _, tt := range fails {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ResolveOperand(tt.in, sc)
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeUnresolvedReference || e.Message != tt.msg {
				t.Errorf("ResolveOperand(%q) error = %v, want %s", tt.in, err, tt.msg)
			}
		})
	}
}

func TestMissingMarshalsAsNull(t *testing.T) {
	b, err := json.Marshal(map[string]any{"left": Missing})
	if err != nil || string(b) != `{"left":null}` {
		t.Fatalf("got %s, %v", b, err)
	}
}

package expr

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func k(key string) PathElem { return PathElem{Key: key} }
func ix(i int) PathElem     { return PathElem{Index: i, IsIndex: true} }

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Ref
	}{
		{name: "no template", in: "plain text", want: nil},
		{name: "single braces are text", in: "{a} }} {", want: nil},
		{name: "root only", in: "{{trigger}}", want: []Ref{{Raw: "trigger", Root: "trigger"}}},
		{name: "spaces trimmed", in: "{{  ai_1.response  }}", want: []Ref{{Raw: "ai_1.response", Root: "ai_1", Path: []PathElem{k("response")}}}},
		{name: "hyphenated id", in: "{{ai-1.json.score}}", want: []Ref{{Raw: "ai-1.json.score", Root: "ai-1", Path: []PathElem{k("json"), k("score")}}}},
		{name: "index and keys", in: "{{http_1.body.items[2].name}}", want: []Ref{{Raw: "http_1.body.items[2].name", Root: "http_1", Path: []PathElem{k("body"), k("items"), ix(2), k("name")}}}},
		{name: "index on root", in: "{{x[0][10]}}", want: []Ref{{Raw: "x[0][10]", Root: "x", Path: []PathElem{ix(0), ix(10)}}}},
		{name: "spaces inside brackets", in: `{{x[ 1 ][ "a b" ]}}`, want: []Ref{{Raw: `x[ 1 ][ "a b" ]`, Root: "x", Path: []PathElem{ix(1), k("a b")}}}},
		{name: "quoted key", in: `{{nodes["ai-1"].response}}`, want: []Ref{{Raw: `nodes["ai-1"].response`, Root: "nodes", Path: []PathElem{k("ai-1"), k("response")}}}},
		{name: "quoted key with escapes and dots", in: `{{x["a.b \"c\" \u00e9"]}}`, want: []Ref{{Raw: `x["a.b \"c\" \u00e9"]`, Root: "x", Path: []PathElem{k(`a.b "c" é`)}}}},
		{name: "quoted key with braces", in: `{{x["}}"]}}`, want: []Ref{{Raw: `x["}}"]`, Root: "x", Path: []PathElem{k("}}")}}}},
		{name: "unicode key", in: "{{contact.prénom}}", want: []Ref{{Raw: "contact.prénom", Root: "contact", Path: []PathElem{k("prénom")}}}},
		{name: "default number", in: "{{ai_1.json.score ?? 0}}", want: []Ref{{Raw: "ai_1.json.score ?? 0", Root: "ai_1", Path: []PathElem{k("json"), k("score")}, HasDefault: true, Default: json.Number("0")}}},
		{name: "default without spaces", in: "{{a.b??-1.5e3}}", want: []Ref{{Raw: "a.b??-1.5e3", Root: "a", Path: []PathElem{k("b")}, HasDefault: true, Default: json.Number("-1.5e3")}}},
		{name: "default true", in: "{{a ?? true}}", want: []Ref{{Raw: "a ?? true", Root: "a", HasDefault: true, Default: true}}},
		{name: "default false", in: "{{a ?? false}}", want: []Ref{{Raw: "a ?? false", Root: "a", HasDefault: true, Default: false}}},
		{name: "default null", in: "{{a ?? null}}", want: []Ref{{Raw: "a ?? null", Root: "a", HasDefault: true, Default: nil}}},
		{name: "default quoted string with braces", in: `{{a ?? "x }} y"}}`, want: []Ref{{Raw: `a ?? "x }} y"`, Root: "a", HasDefault: true, Default: "x }} y"}}},
		{name: "default bare text", in: "{{a ?? n/a please }}", want: []Ref{{Raw: "a ?? n/a please", Root: "a", HasDefault: true, Default: "n/a please"}}},
		{name: "default not-JSON number stays text", in: "{{a ?? 007}}", want: []Ref{{Raw: "a ?? 007", Root: "a", HasDefault: true, Default: "007"}}},
		{name: "default empty", in: "{{a ??}}", want: []Ref{{Raw: "a ??", Root: "a", HasDefault: true, Default: ""}}},
		{name: "default object", in: `{{a ?? {"k":[1,{"z":null}]} }}`, want: []Ref{{Raw: `a ?? {"k":[1,{"z":null}]}`, Root: "a", HasDefault: true,
			Default: map[string]any{"k": []any{json.Number("1"), map[string]any{"z": nil}}}}}},
		{name: "default array", in: `{{a ?? [1, "x"]}}`, want: []Ref{{Raw: `a ?? [1, "x"]`, Root: "a", HasDefault: true, Default: []any{json.Number("1"), "x"}}}},
		{name: "escaped braces are not a template", in: `\{{not.a.template}}`, want: nil},
		{name: "escape then template", in: `\{{x}} and {{y.z}}`, want: []Ref{{Raw: "y.z", Root: "y", Path: []PathElem{k("z")}}}},
		{name: "several", in: "Hi {{contact.name}}, you said {{trigger.message.text}}!", want: []Ref{
			{Raw: "contact.name", Root: "contact", Path: []PathElem{k("name")}},
			{Raw: "trigger.message.text", Root: "trigger", Path: []PathElem{k("message"), k("text")}},
		}},
		{name: "adjacent", in: "{{a}}{{b}}", want: []Ref{{Raw: "a", Root: "a"}, {Raw: "b", Root: "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTemplate(tt.in)
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTemplate(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"{{", "unclosed {{"},
		{"hello {{ai_1.response", "unclosed {{"},
		{"{{ai_1.response ?? 3", "unclosed {{"},
		{"{{}}", "empty root"},
		{"{{  }}", "empty root"},
		{"{{ ?? 1 }}", "empty root"},
		{"{{.a}}", `unexpected "."`},
		{"{{ai_1.}}", `empty key after "."`},
		{"{{ai_1..x}}", `empty key after "."`},
		{"{{a[}}", `expected a non-negative index or a "quoted key"`},
		{"{{a[-1]}}", `expected a non-negative index`},
		{"{{a[x]}}", `expected a non-negative index`},
		{"{{a[1}}", `missing "]"`},
		{`{{a["x}}`, "unterminated quoted key"},
		{"{{a[99999999999]}}", "too large"},
		{"{{ some text }}", `unexpected "t" after the path`},
		{"{{a b}}", `unexpected "b" after the path`},
		{"{{a}} then {{b.}}", `empty key after "."`},
		{"{{{a}}}", `unexpected "{"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseTemplate(tt.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseTemplate(%q) error = %v, want *Error", tt.in, err)
			}
			if e.Code != CodeBadTemplate {
				t.Errorf("code = %q, want %q", e.Code, CodeBadTemplate)
			}
			if !strings.Contains(e.Message, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", e.Message, tt.msg)
			}
		})
	}
}

func TestParseTemplateErrorQuotesTemplate(t *testing.T) {
	_, err := ParseTemplate("Hello {{ai_1.}} world")
	if err == nil || err.Error() != `bad template "{{ai_1.}}": empty key after "."` {
		t.Fatalf("got %v", err)
	}
}

func TestRefs(t *testing.T) {
	config := map[string]any{
		"url":     "https://x.test/{{vars.path}}",
		"method":  "GET",
		"count":   json.Number("3"),
		"headers": map[string]any{"B": "{{b.x}}", "A": "{{a.x}}"},
		"list":    []any{"{{l1}}", []any{"{{l2[0]}}"}, true, nil},
		"strs":    []string{"{{s1}}"},
		"smap":    map[string]string{"k": "{{sm}}"},
	}
	refs, err := Refs(config)
	if err != nil {
		t.Fatal(err)
	}
	var roots []string
	for _, r := range refs {
		roots = append(roots, r.Root)
	}
	// keys in sorted order: headers (A, B), list, smap, strs, url
	want := []string{"a", "b", "l1", "l2", "sm", "s1", "vars"}
	if !reflect.DeepEqual(roots, want) {
		t.Errorf("roots = %v, want %v", roots, want)
	}

	_, err = Refs(map[string]any{"ok": "{{a}}", "bad": []any{"x", "{{a.}}"}})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeBadTemplate {
		t.Errorf("Refs with a bad template: %v", err)
	}
}

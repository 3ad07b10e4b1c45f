package expr

import (
	"context"
	"testing"
)

// BenchmarkResolve resolves a typical node config: a prompt with two interpolations, an exact typed
// reference, a default, a list and literal fields.
func BenchmarkResolve(b *testing.B) {
	sc := testScope(b)
	config := map[string]any{
		"prompt":      "Hi {{vars.name}}, the model said: {{ai_1.response}}",
		"value1":      "{{ai_1.json.score}}",
		"value2":      "{{ai_1.json.missing ?? 0.5}}",
		"tags":        []any{"{{ai_1.json.tags[0]}}", "static"},
		"model":       "gpt-4o",
		"temperature": n("0.7"),
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(config, sc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompare runs one logic-condition: resolve both operands, then compare.
func BenchmarkCompare(b *testing.B) {
	sc := testScope(b)
	b.ReportAllocs()
	for b.Loop() {
		left, err := ResolveOperand("{{http_1.body.total}}", sc)
		if err != nil {
			b.Fatal(err)
		}
		right, err := ResolveOperand("40", sc)
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := Compare("greater_than", left, right, false); err != nil || !ok {
			b.Fatal(ok, err)
		}
		if ok, err := Compare("contains", "Hello World, how are you", "WORLD", false); err != nil || !ok {
			b.Fatal(ok, err)
		}
		if ok, err := Compare("equals", " Yes ", "yes", false); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkCELEval is one logic-transform mapping as the engine runs it: Compile (a cache hit) and Eval.
func BenchmarkCELEval(b *testing.B) {
	vars := celVars(b)
	ids := []string{"ai_1", "ai-1", "http_1"}
	src := `{"greeting": "Hi " + contact.name, "total": nodes.http_1.body.items.map(i, double(i.price)).exists(p, p > 3.0), "score": ai_1.json.score * 2.0}`
	b.ReportAllocs()
	for b.Loop() {
		p, err := Compile(src, ids)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Eval(context.Background(), vars); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCELEvalSimple is a one-line arithmetic mapping.
func BenchmarkCELEvalSimple(b *testing.B) {
	vars := celVars(b)
	b.ReportAllocs()
	for b.Loop() {
		p, err := Compile(`vars.count + 1`, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Eval(context.Background(), vars); err != nil {
			b.Fatal(err)
		}
	}
}

package main

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// keyParam is the Idempotency-Key header parameter as the bundle references it.
func keyParam() *openapi3.ParameterRef {
	return &openapi3.ParameterRef{Ref: "#/components/parameters/IdempotencyKey",
		Value: &openapi3.Parameter{Name: "Idempotency-Key", In: openapi3.ParameterInHeader,
			Schema: &openapi3.SchemaRef{Value: openapi3.NewStringSchema()}}}
}

func op(ext map[string]any, params ...*openapi3.ParameterRef) *openapi3.Operation {
	return &openapi3.Operation{OperationID: "op", Extensions: ext, Parameters: params}
}

func TestReadGuardMarkers(t *testing.T) {
	perm := "flow:create"
	cases := []struct {
		name, method string
		item         *openapi3.PathItem
		op           *openapi3.Operation
		wantErr      string // "" means accepted
		check        func(t *testing.T, g guard)
	}{
		{name: "idempotent POST with the header", method: "POST", item: &openapi3.PathItem{},
			op: op(map[string]any{"x-permission": perm, "x-idempotent": true}, keyParam()),
			check: func(t *testing.T, g guard) {
				if !g.idempotent || g.rateLimit != "" {
					t.Errorf("guard %+v", g)
				}
			}},
		{name: "header declared on the path item", method: "PUT", item: &openapi3.PathItem{Parameters: openapi3.Parameters{keyParam()}},
			op: op(map[string]any{"x-permission": perm, "x-idempotent": true})},
		{name: "idempotent GET", method: "GET", item: &openapi3.PathItem{},
			op:      op(map[string]any{"x-permission": perm, "x-idempotent": true}, keyParam()),
			wantErr: "only for POST, PUT and PATCH"},
		{name: "idempotent DELETE", method: "DELETE", item: &openapi3.PathItem{},
			op:      op(map[string]any{"x-permission": perm, "x-idempotent": true}, keyParam()),
			wantErr: "only for POST, PUT and PATCH"},
		{name: "idempotent without the header", method: "POST", item: &openapi3.PathItem{},
			op:      op(map[string]any{"x-permission": perm, "x-idempotent": true}),
			wantErr: "needs the Idempotency-Key header parameter"},
		{name: "header without x-idempotent", method: "POST", item: &openapi3.PathItem{},
			op:      op(map[string]any{"x-permission": perm}, keyParam()),
			wantErr: "is not x-idempotent"},
		{name: "x-idempotent false", method: "POST", item: &openapi3.PathItem{},
			op:      op(map[string]any{"x-permission": perm, "x-idempotent": false}, keyParam()),
			wantErr: "x-idempotent must be true"},
		{name: "ai rate-limit class", method: "POST", item: &openapi3.PathItem{},
			op: op(map[string]any{"x-permission": perm, "x-rate-limit": "ai"}),
			check: func(t *testing.T, g guard) {
				if g.rateLimit != "ai" || g.idempotent {
					t.Errorf("guard %+v", g)
				}
			}},
		{name: "unknown rate-limit class", method: "POST", item: &openapi3.PathItem{},
			op:      op(map[string]any{"x-permission": perm, "x-rate-limit": "bulk"}),
			wantErr: "unknown x-rate-limit bulk"},
		{name: "unknown extension", method: "POST", item: &openapi3.PathItem{},
			op:      op(map[string]any{"x-permission": perm, "x-idempotency": true}),
			wantErr: "unknown extension x-idempotency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, errs := readGuard(c.method, "/things", c.item, c.op)
			joined := strings.Join(errs, "; ")
			if c.wantErr == "" && len(errs) > 0 {
				t.Fatalf("refused: %s", joined)
			}
			if c.wantErr != "" && !strings.Contains(joined, c.wantErr) {
				t.Fatalf("errors %q, want one containing %q", joined, c.wantErr)
			}
			if c.check != nil {
				c.check(t, g)
			}
		})
	}
}

func TestRenderEmitsIdempotentAndRateLimit(t *testing.T) {
	src, err := render([]guard{
		{opID: "createThing", method: "POST", path: "/things", perm: "flow:create", idempotent: true},
		{opID: "askThing", method: "POST", path: "/ai/things", authenticated: true, rateLimit: "ai"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`Idempotent: true, RateLimit: ""`, `Idempotent: false, RateLimit: "ai"`, "Idempotent    bool", "RateLimit     string"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("generated table lacks %q:\n%s", want, src)
		}
	}
}

package server

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wataomi/wataomi/gen/permissions"
	"github.com/wataomi/wataomi/openapi"
	"github.com/wataomi/wataomi/rbac"
)

// The served routes are exactly the contract's operations plus the root routes of PRODUCT §5.23:
// nothing is hand-registered behind the spec's back.
func TestContractRoutesEqualSpec(t *testing.T) {
	e := newTestEnv(t)
	doc, err := embeddedSpec()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, r := range RootRoutes {
		want[r] = true
	}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			want[method+" "+BasePath+param.ReplaceAllString(path, ":$1")] = true
		}
	}
	got := map[string]bool{}
	for _, r := range e.Server.Echo.Routes() {
		got[r.Method+" "+r.Path] = true
	}
	if missing, extra := diff(want, got), diff(got, want); len(missing)+len(extra) > 0 {
		t.Fatalf("routes differ from the contract:\n missing %v\n extra %v", missing, extra)
	}
}

func diff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// openSchemas are the graph's schemas, the only request schemas allowed to be open (PRODUCT §6.1).
var openSchemas = map[string]bool{"Graph": true, "GraphNode": true, "GraphNodeData": true, "GraphEdge": true,
	"GraphViewport": true, "GraphPosition": true, "GraphNodeRetry": true}

// Request bodies follow PRODUCT §2.1: one flat named schema with additionalProperties false, no
// composition, no readOnly/writeOnly and no `default` anywhere below them (kin would inject it and a
// partial update would reset the field).
func TestContractRequestBodies(t *testing.T) {
	doc, err := embeddedSpec()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil {
				continue
			}
			for mt, media := range op.RequestBody.Value.Content {
				where := method + " " + path + " " + mt
				ref := media.Schema.Ref
				if !strings.HasPrefix(ref, "#/components/schemas/") {
					t.Errorf("%s: the body must be a named component, got %q", where, ref)
				}
				checkRequestSchema(t, where, strings.TrimPrefix(ref, "#/components/schemas/"), media.Schema, map[*openapi3.Schema]bool{}, true)
			}
		}
	}
}

func checkRequestSchema(t *testing.T, where, name string, ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool, top bool) {
	s := ref.Value
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	if ref.Ref != "" {
		name = strings.TrimPrefix(ref.Ref, "#/components/schemas/")
	}
	if s.Default != nil {
		t.Errorf("%s: %s declares a default under a request body", where, name)
	}
	if len(s.AllOf)+len(s.OneOf)+len(s.AnyOf) > 0 || s.Not != nil {
		t.Errorf("%s: %s uses composition in a request schema", where, name)
	}
	if s.ReadOnly || s.WriteOnly {
		t.Errorf("%s: %s uses readOnly/writeOnly in a request schema", where, name)
	}
	if s.Type.Is(openapi3.TypeObject) {
		if !top && ref.Ref == "" && len(s.Properties) > 0 {
			t.Errorf("%s: nested object under %s must be a named component", where, name)
		}
		closed := s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has
		if !closed && !openSchemas[name] && len(s.Properties) > 0 {
			t.Errorf("%s: %s must set additionalProperties: false", where, name)
		}
	}
	for _, p := range s.Properties {
		checkRequestSchema(t, where, name, p, seen, false)
	}
	if s.Items != nil {
		checkRequestSchema(t, where, name, s.Items, seen, false)
	}
	if s.AdditionalProperties.Schema != nil {
		checkRequestSchema(t, where, name, s.AdditionalProperties.Schema, seen, false)
	}
}

// The response validator in the harness must actually fail on drift, or every API test would pass
// vacuously: an undeclared status and a body missing a required field are both reported.
func TestContractValidatorCatchesDrift(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"undeclared status": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTeapot)
			_, _ = w.Write([]byte(`{}`))
		},
		"missing field": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id": 1}`))
		},
	} {
		t.Run(name, func(t *testing.T) {
			v := newResponseValidator(t, h, new(atomic.Int64)).(*responseValidator)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, BasePath+"/flows/1", nil)
			v.next.ServeHTTP(rec, req)
			if err := v.validate(httptest.NewRequest(http.MethodGet, BasePath+"/flows/1", nil), rec); err == nil {
				t.Fatal("the response validator accepted a response that breaks the contract")
			}
		})
	}
}

// Every guard names a catalogue permission, and every catalogue permission is either required by
// some operation or listed by permgen as not used yet: the two tables cannot drift apart silently.
func TestContractGuardsMatchCatalogue(t *testing.T) {
	used := map[string]bool{}
	for id, g := range permissions.Operations {
		if g.Permission == "" {
			continue
		}
		if !rbac.IsKnown(g.Permission) {
			t.Errorf("%s: x-permission %q is not in the rbac catalogue", id, g.Permission)
		}
		used[g.Permission] = true
	}
	unused := map[string]bool{}
	for _, p := range permissions.UnusedPermissions {
		unused[p] = true
		if used[p] {
			t.Errorf("%s is listed as unused but an operation requires it", p)
		}
	}
	for _, p := range rbac.Catalogue() {
		if !used[p.Name] && !unused[p.Name] {
			t.Errorf("%s is neither required by an operation nor listed as unused", p.Name)
		}
	}
	if len(used)+len(unused) != len(rbac.Catalogue()) {
		t.Errorf("%d used + %d unused != %d in the catalogue", len(used), len(unused), len(rbac.Catalogue()))
	}
	t.Logf("%d catalogue permissions guard operations; %d are not used by any operation yet", len(used), len(unused))
}

// The published contract documents itself: every operation has a summary, a description, and an
// example for its request body and for each JSON success response (on the media type or its schema).
func TestContractOperationsDocumented(t *testing.T) {
	doc, err := embeddedSpec()
	if err != nil {
		t.Fatal(err)
	}
	hasExample := func(m *openapi3.MediaType) bool {
		return m.Example != nil || len(m.Examples) > 0 || (m.Schema != nil && m.Schema.Value != nil && m.Schema.Value.Example != nil)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.Summary == "" || op.Description == "" {
				t.Errorf("%s: needs a summary and a description", where)
			}
			if op.RequestBody != nil {
				for mt, m := range op.RequestBody.Value.Content {
					if !hasExample(m) {
						t.Errorf("%s: request body %s has no example", where, mt)
					}
				}
			}
			for code, r := range op.Responses.Map() {
				if !strings.HasPrefix(code, "2") || r.Value == nil {
					continue
				}
				for mt, m := range r.Value.Content {
					if strings.Contains(mt, "json") && !hasExample(m) {
						t.Errorf("%s: %s response %s has no example", where, code, mt)
					}
				}
			}
		}
	}
}

// Idempotency-Key is honoured exactly where the contract says so (PRODUCT §2.3): every x-idempotent
// operation declares the reusable IdempotencyKey header parameter (by reference) and
// Idempotent-Replayed on its 2xx responses, every operation that declares the header is x-idempotent,
// and the generated table agrees with both.
func TestContractIdempotencyKey(t *testing.T) {
	doc, err := embeddedSpec()
	if err != nil {
		t.Fatal(err)
	}
	comp := doc.Components.Parameters["IdempotencyKey"]
	if comp == nil || comp.Value == nil || comp.Value.In != openapi3.ParameterInHeader || comp.Value.Name != "Idempotency-Key" ||
		comp.Value.Required || comp.Value.Schema == nil || comp.Value.Schema.Value.Pattern != `^[\x21-\x7E]{1,255}$` {
		t.Fatalf("components/parameters/IdempotencyKey is not the optional Idempotency-Key header of PRODUCT §2.3: %+v", comp)
	}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			marked, _ := op.Extensions["x-idempotent"].(bool)
			declared, byRef := false, false
			for _, ref := range append(append(openapi3.Parameters{}, item.Parameters...), op.Parameters...) {
				if ref.Value != nil && ref.Value.In == openapi3.ParameterInHeader && http.CanonicalHeaderKey(ref.Value.Name) == "Idempotency-Key" {
					declared, byRef = true, ref.Ref == "#/components/parameters/IdempotencyKey"
				}
			}
			if marked != declared {
				t.Errorf("%s: x-idempotent %v but declares Idempotency-Key %v", where, marked, declared)
			}
			if declared && !byRef {
				t.Errorf("%s: Idempotency-Key must be a reference to components/parameters/IdempotencyKey", where)
			}
			if g := permissions.Operations[op.OperationID]; g.Idempotent != marked {
				t.Errorf("%s: generated Idempotent %v, marker %v", where, g.Idempotent, marked)
			}
			if !marked {
				continue
			}
			n++
			for code, r := range op.Responses.Map() {
				if strings.HasPrefix(code, "2") && (r.Value == nil || r.Value.Headers["Idempotent-Replayed"] == nil) {
					t.Errorf("%s: %s response does not declare Idempotent-Replayed", where, code)
				}
			}
		}
	}
	// The [I] operations of PRODUCT that exist in the contract today.
	for _, id := range []string{"createApiToken", "createTeam", "createFlow", "duplicateFlow", "createFlowVersion",
		"createExecution", "retryExecution", "createTemplate", "duplicateTemplate", "createTemplateFlow", "createAgentConfig",
		"createTag", "createCategory", "createIcon"} {
		if !permissions.Operations[id].Idempotent {
			t.Errorf("%s is [I] in PRODUCT but not x-idempotent", id)
		}
	}
	if problem := doc.Components.Responses["Problem"]; problem.Value.Headers["Idempotent-Replayed"] == nil {
		t.Error("the Problem response does not declare Idempotent-Replayed (a replayed 4xx carries it)")
	}
	t.Logf("%d x-idempotent operations", n)

	// The startup check refuses a table that disagrees with the markers.
	for _, tc := range []struct{ id, path, method, key string }{
		{"createTeam", "/teams", http.MethodPost, "x-idempotent"},
		{"listFlows", "/flows", http.MethodGet, "x-rate-limit"},
	} {
		stale, err := loadSpec(openapi.BundledJSON)
		if err != nil {
			t.Fatal(err)
		}
		op := stale.Paths.Value(tc.path).GetOperation(tc.method)
		if tc.key == "x-idempotent" {
			delete(op.Extensions, tc.key)
		} else {
			op.Extensions[tc.key] = "ai"
		}
		if err := checkGuards(stale); err == nil || !strings.Contains(err.Error(), tc.id+": guard table is stale") {
			t.Errorf("checkGuards with %s changed on %s: %v", tc.key, tc.id, err)
		}
	}
}

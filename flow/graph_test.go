package flow_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/flow"
)

// ---------------------------------------------------------------------------
// Builders

// N is a node: id and data.type.
type N struct{ ID, Type string }

// minimalConfig is a complete config for a registered type (minimalConfigs in nodetypes_test.go), so
// that the graph-shape tests below see no config issues; other types get an empty config.
func minimalConfig(typ string) map[string]any {
	if c, ok := minimalConfigs[typ]; ok {
		return c
	}
	return map[string]any{}
}

// E is an edge: id, source, target and an optional sourceHandle.
type E struct{ ID, Source, Target, Handle string }

// build returns the graph document {nodes, edges, viewport} in the editor's shape.
func build(nodes []N, edges []E) []byte {
	doc := map[string]any{"nodes": nodeMaps(nodes), "edges": edgeMaps(edges), "viewport": map[string]any{"x": 0, "y": 0, "zoom": 1}}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

func nodeMaps(nodes []N) []any {
	out := make([]any, 0, len(nodes))
	for i, n := range nodes {
		out = append(out, map[string]any{
			"id":       n.ID,
			"type":     "custom",
			"position": map[string]any{"x": i * 10, "y": i * 5},
			"data":     map[string]any{"type": n.Type, "label": "Node " + n.ID, "config": minimalConfig(n.Type)},
		})
	}
	return out
}

func edgeMaps(edges []E) []any {
	out := make([]any, 0, len(edges))
	for _, e := range edges {
		m := map[string]any{"id": e.ID, "source": e.Source, "target": e.Target}
		if e.Handle != "" {
			m["sourceHandle"] = e.Handle
		}
		out = append(out, m)
	}
	return out
}

// chain returns n nodes c0…c{n-1}, c0 a trigger, linked c0→c1→…; closeTo >= 0 adds an edge from
// the last node back to c{closeTo}.
func chain(n, closeTo int) []byte {
	nodes := make([]N, n)
	var edges []E
	for i := range n {
		typ := "ai-chat"
		if i == 0 {
			typ = "trigger-manual"
		}
		nodes[i] = N{fmt.Sprintf("c%d", i), typ}
		if i > 0 {
			edges = append(edges, E{ID: fmt.Sprintf("e%d", i), Source: fmt.Sprintf("c%d", i-1), Target: fmt.Sprintf("c%d", i)})
		}
	}
	if closeTo >= 0 {
		edges = append(edges, E{ID: "back", Source: fmt.Sprintf("c%d", n-1), Target: fmt.Sprintf("c%d", closeTo)})
	}
	return build(nodes, edges)
}

func mustParse(t testing.TB, data []byte) *flow.Graph {
	t.Helper()
	g, err := flow.Parse(data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", truncate(data), err)
	}
	return g
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// found is the comparable part of an Issue.
type found struct{ Code, Pointer string }

func summary(issues []flow.Issue) []found {
	out := make([]found, 0, len(issues))
	for _, is := range issues {
		out = append(out, found{is.Code, is.Pointer})
	}
	return out
}

func checkIssues(t *testing.T, issues []flow.Issue, want []found) {
	t.Helper()
	got := summary(issues)
	if want == nil {
		want = []found{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("issues:\n got  %v\n want %v\n full %+v", got, want, issues)
	}
	for _, is := range issues {
		if is.Severity != flow.SeverityError {
			t.Errorf("%s at %s: severity %q, want %q", is.Code, is.Pointer, is.Severity, flow.SeverityError)
		}
		if strings.TrimSpace(is.Message) == "" {
			t.Errorf("%s at %s: empty message", is.Code, is.Pointer)
		}
	}
}

var defaultLimits = flow.Limits{MaxNodes: 200, MaxEdges: 500, MaxBytes: 1 << 20}

// ---------------------------------------------------------------------------
// Parse

func TestParse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantErr    bool
		nodes      int
		edges      int
		firstNodeT string
	}{
		{name: "full graph", in: string(build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}}, []E{{ID: "e1", Source: "t", Target: "a"}})), nodes: 2, edges: 1, firstNodeT: "trigger-manual"},
		{name: "empty object", in: `{}`},
		{name: "empty lists", in: `{"nodes":[],"edges":[]}`},
		{name: "null lists", in: `{"nodes":null,"edges":null}`},
		{name: "lists of another type are ignored", in: `{"nodes":{"a":1},"edges":"x"}`},
		{name: "non-object items count as empty nodes", in: `{"nodes":[1,"x",null,{"id":"a","data":{"type":"ai-chat"}}],"edges":[[]]}`, nodes: 4, edges: 1},
		{name: "surrounding whitespace", in: " \n\t{\"nodes\":[]}\n ", nodes: 0},
		{name: "unknown top-level keys", in: `{"nodes":[],"edges":[],"meta":{"k":[1,2]},"viewport":{"x":1,"y":2,"zoom":3}}`},
		{name: "empty input", in: ``, wantErr: true},
		{name: "whitespace only", in: "  \n", wantErr: true},
		{name: "null", in: `null`, wantErr: true},
		{name: "array", in: `[]`, wantErr: true},
		{name: "string", in: `"graph"`, wantErr: true},
		{name: "number", in: `42`, wantErr: true},
		{name: "truncated", in: `{"nodes":[`, wantErr: true},
		{name: "syntax error", in: `{"nodes":[}`, wantErr: true},
		{name: "trailing garbage", in: `{"nodes":[]} xyz`, wantErr: true},
		{name: "two objects", in: `{"nodes":[]}{"nodes":[]}`, wantErr: true},
		{name: "trailing comma", in: `{"nodes":[],}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := flow.Parse([]byte(tc.in))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = nil error, want an error", tc.in)
				}
				if g != nil {
					t.Errorf("Parse(%q) returned a graph with its error", tc.in)
				}
				if !strings.Contains(err.Error(), "not a JSON object") {
					t.Errorf("error %q does not say the graph is not a JSON object", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if g.NodeCount() != tc.nodes || len(g.Nodes) != tc.nodes {
				t.Errorf("nodes: NodeCount %d, len %d, want %d", g.NodeCount(), len(g.Nodes), tc.nodes)
			}
			if len(g.Edges) != tc.edges {
				t.Errorf("edges: %d, want %d", len(g.Edges), tc.edges)
			}
			for i, n := range g.Nodes {
				if n == nil {
					t.Errorf("node %d is a nil map", i)
				}
			}
			if tc.firstNodeT != "" {
				if d, _ := g.Nodes[0]["data"].(map[string]any); d["type"] != tc.firstNodeT {
					t.Errorf("node 0 data.type = %v, want %s", d["type"], tc.firstNodeT)
				}
			}
		})
	}
}

func TestParseKeepsNumbersExact(t *testing.T) {
	in := `{"nodes":[{"id":"a","data":{"type":"ai-chat","config":{"big":12345678901234567890,"f":0.1,"e":1e400}}}],"edges":[]}`
	g := mustParse(t, []byte(in))
	out, err := g.Clean()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"big":12345678901234567890`, `"f":0.1`, `"e":1e400`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Clean() = %s, lost %s", out, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Clean

func TestClean(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string // compact JSON, compared semantically
		absent   []string
		contains []string
	}{
		{
			name: "drops the run-time keys and keeps the rest",
			in: `{
				"nodes": [{
					"id": "a", "type": "custom", "position": {"x": 1.5, "y": -2}, "width": 150, "selected": true,
					"data": {
						"type": "ai-chat", "label": "Chat", "config": {"prompt": "hi", "_ui": {"open": true}},
						"on_error": "continue", "retry": {"max_attempts": 3},
						"executionStatus": "success", "executionError": "boom", "executionOutput": {"response": "x"},
						"width": 200, "selected": false, "_collapsed": true, "custom": [1, 2]
					}
				}],
				"edges": [{"id": "e", "source": "a", "target": "b", "type": "smoothstep", "label": "go", "animated": true, "data": {"executionStatus": "kept on edges"}}],
				"viewport": {"x": 10, "y": 20, "zoom": 0.75},
				"extra": "top-level keys survive"
			}`,
			want: `{
				"nodes": [{
					"id": "a", "type": "custom", "position": {"x": 1.5, "y": -2}, "width": 150, "selected": true,
					"data": {
						"type": "ai-chat", "label": "Chat", "config": {"prompt": "hi", "_ui": {"open": true}},
						"on_error": "continue", "retry": {"max_attempts": 3},
						"width": 200, "selected": false, "_collapsed": true, "custom": [1, 2]
					}
				}],
				"edges": [{"id": "e", "source": "a", "target": "b", "type": "smoothstep", "label": "go", "animated": true, "data": {"executionStatus": "kept on edges"}}],
				"viewport": {"x": 10, "y": 20, "zoom": 0.75},
				"extra": "top-level keys survive"
			}`,
		},
		{
			name: "only the run-time keys are dropped, on every node",
			in:   `{"nodes":[{"id":"a","data":{"type":"x","executionStatus":"running"}},{"id":"b","data":{"executionError":null,"executionOutput":null}}],"edges":[]}`,
			want: `{"nodes":[{"id":"a","data":{"type":"x"}},{"id":"b","data":{}}],"edges":[]}`,
		},
		{
			name: "run-time keys outside data stay (only data holds them)",
			in:   `{"nodes":[{"id":"a","executionStatus":"x","data":{"config":{"executionStatus":"y"}}}]}`,
			want: `{"nodes":[{"id":"a","executionStatus":"x","data":{"config":{"executionStatus":"y"}}}]}`,
		},
		{
			name: "nodes without data, with non-object data, and non-object nodes",
			in:   `{"nodes":[{"id":"a"},{"id":"b","data":"text"},{"id":"c","data":null},7,"s"],"edges":[1]}`,
			want: `{"nodes":[{"id":"a"},{"id":"b","data":"text"},{"id":"c","data":null},7,"s"],"edges":[1]}`,
		},
		{
			name: "empty object",
			in:   `{}`,
			want: `{}`,
		},
		{
			name:     "keys are matched exactly",
			in:       `{"nodes":[{"id":"a","data":{"ExecutionStatus":1,"execution_status":2,"executionstatus":3}}]}`,
			want:     `{"nodes":[{"id":"a","data":{"ExecutionStatus":1,"execution_status":2,"executionstatus":3}}]}`,
			contains: []string{"ExecutionStatus"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := mustParse(t, []byte(tc.in))
			out, err := g.Clean()
			if err != nil {
				t.Fatalf("Clean: %v", err)
			}
			if !json.Valid(out) {
				t.Fatalf("Clean() is not valid JSON: %s", out)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(compact.Bytes(), out) {
				t.Errorf("Clean() is not compact JSON: %s", out)
			}
			assertJSONEqual(t, out, []byte(tc.want))
			for _, k := range []string{"executionError", "executionOutput"} {
				if strings.Contains(string(out), `"`+k+`"`) {
					t.Errorf("Clean() still has %s: %s", k, out)
				}
			}
			// Clean is idempotent, and its output parses to the same graph.
			g2 := mustParse(t, out)
			out2, err := g2.Clean()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, out2) {
				t.Errorf("Clean is not idempotent:\n first  %s\n second %s", out, out2)
			}
			if g.Hash() != g2.Hash() {
				t.Errorf("Hash changed across Clean and re-parse")
			}
		})
	}
}

func assertJSONEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("JSON differs:\n got  %s\n want %s", gb, wb)
	}
}

// ---------------------------------------------------------------------------
// Hash

const hashBase = `{
	"nodes": [
		{"id": "t", "type": "custom", "position": {"x": 0, "y": 0},
		 "data": {"type": "trigger-manual", "label": "Start", "config": {"inputFields": [{"key": "q", "type": "text"}]}}},
		{"id": "a", "type": "custom", "position": {"x": 100, "y": 50}, "width": 150,
		 "data": {"type": "ai-chat", "label": "Chat", "config": {"prompt": "{{input.q}}", "temperature": 0.5}, "on_error": "continue", "retry": {"max_attempts": 2}}},
		{"id": "c", "type": "custom", "position": {"x": 200, "y": 50},
		 "data": {"type": "logic-condition", "config": {"condition_type": "is_empty", "value1": "{{a.response}}"}}}
	],
	"edges": [
		{"id": "e1", "source": "t", "target": "a", "type": "smoothstep", "label": "first"},
		{"id": "e2", "source": "a", "target": "c", "sourceHandle": null}
	],
	"viewport": {"x": 0, "y": 0, "zoom": 1}
}`

// mutate parses hashBase, applies f to the generic document and returns the result's hash.
func hashAfter(t *testing.T, f func(doc map[string]any)) string {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(hashBase))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if f != nil {
		f(doc)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, b).Hash()
}

func node(doc map[string]any, i int) map[string]any { return doc["nodes"].([]any)[i].(map[string]any) }
func data(doc map[string]any, i int) map[string]any { return node(doc, i)["data"].(map[string]any) }
func edge(doc map[string]any, i int) map[string]any { return doc["edges"].([]any)[i].(map[string]any) }

func TestHash(t *testing.T) {
	base := hashAfter(t, nil)
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("Hash() = %q, want 64 lower-case hex digits", base)
	}
	if again := hashAfter(t, nil); again != base {
		t.Fatalf("Hash is not deterministic: %s then %s", base, again)
	}

	same := []struct {
		name string
		f    func(doc map[string]any)
	}{
		{"node moved", func(d map[string]any) { node(d, 1)["position"] = map[string]any{"x": 999, "y": -3.25} }},
		{"position removed", func(d map[string]any) { delete(node(d, 0), "position") }},
		{"label changed", func(d map[string]any) { data(d, 1)["label"] = "Another label" }},
		{"label added", func(d map[string]any) { data(d, 2)["label"] = "Condition" }},
		{"viewport changed", func(d map[string]any) { d["viewport"] = map[string]any{"x": 12, "y": 34, "zoom": 2} }},
		{"viewport removed", func(d map[string]any) { delete(d, "viewport") }},
		{"renderer type changed", func(d map[string]any) { node(d, 1)["type"] = "fancy" }},
		{"UI keys on the node", func(d map[string]any) { node(d, 1)["selected"] = true; node(d, 1)["width"] = 400 }},
		{"UI keys in data", func(d map[string]any) { data(d, 1)["_collapsed"] = true; data(d, 1)["width"] = 10 }},
		{"run-time keys", func(d map[string]any) {
			data(d, 1)["executionStatus"] = "failed"
			data(d, 1)["executionOutput"] = map[string]any{"x": 1}
		}},
		{"edge UI keys", func(d map[string]any) {
			edge(d, 0)["label"] = "other"
			edge(d, 0)["animated"] = true
			edge(d, 0)["type"] = "step"
			edge(d, 1)["style"] = map[string]any{"stroke": "red"}
		}},
		{"config key order", func(d map[string]any) {
			data(d, 1)["config"] = map[string]any{"temperature": json.Number("0.5"), "prompt": "{{input.q}}"}
		}},
		{"unknown top-level key", func(d map[string]any) { d["meta"] = "x" }},
	}
	for _, tc := range same {
		t.Run("same/"+tc.name, func(t *testing.T) {
			if got := hashAfter(t, tc.f); got != base {
				t.Errorf("hash changed: %s → %s", base, got)
			}
		})
	}

	differ := []struct {
		name string
		f    func(doc map[string]any)
	}{
		{"config value", func(d map[string]any) { data(d, 1)["config"].(map[string]any)["prompt"] = "other" }},
		{"config number", func(d map[string]any) { data(d, 1)["config"].(map[string]any)["temperature"] = json.Number("0.6") }},
		{"config key added", func(d map[string]any) { data(d, 2)["config"].(map[string]any)["case_sensitive"] = true }},
		{"config UI key added", func(d map[string]any) { data(d, 2)["config"].(map[string]any)["_note"] = "x" }},
		{"config removed", func(d map[string]any) { delete(data(d, 0), "config") }},
		{"node type", func(d map[string]any) { data(d, 1)["type"] = "ai-openai" }},
		{"on_error", func(d map[string]any) { data(d, 1)["on_error"] = "stop" }},
		{"on_error added", func(d map[string]any) { data(d, 2)["on_error"] = "branch" }},
		{"retry", func(d map[string]any) { data(d, 1)["retry"] = map[string]any{"max_attempts": 3} }},
		{"retry removed", func(d map[string]any) { delete(data(d, 1), "retry") }},
		{"node id", func(d map[string]any) { node(d, 2)["id"] = "c2" }},
		{"node added", func(d map[string]any) {
			d["nodes"] = append(d["nodes"].([]any), map[string]any{"id": "z", "data": map[string]any{"type": "response-data"}})
		}},
		{"node removed", func(d map[string]any) { d["nodes"] = d["nodes"].([]any)[:2] }},
		{"edge added", func(d map[string]any) {
			d["edges"] = append(d["edges"].([]any), map[string]any{"id": "e3", "source": "t", "target": "c"})
		}},
		{"edge removed", func(d map[string]any) { d["edges"] = d["edges"].([]any)[:1] }},
		{"edge target", func(d map[string]any) { edge(d, 0)["target"] = "c" }},
		{"edge source", func(d map[string]any) { edge(d, 1)["source"] = "t" }},
		{"edge id", func(d map[string]any) { edge(d, 1)["id"] = "e9" }},
		{"edge sourceHandle", func(d map[string]any) { edge(d, 1)["sourceHandle"] = "true" }},
		{"edge targetHandle", func(d map[string]any) { edge(d, 1)["targetHandle"] = "in" }},
	}
	seen := map[string]string{base: "base"}
	for _, tc := range differ {
		t.Run("differs/"+tc.name, func(t *testing.T) {
			got := hashAfter(t, tc.f)
			if got == base {
				t.Fatalf("hash did not change")
			}
			if prev, dup := seen[got]; dup {
				t.Errorf("hash equals the one of %q", prev)
			}
			seen[got] = tc.name
		})
	}
}

func TestHashEmptyGraphs(t *testing.T) {
	a := mustParse(t, []byte(`{}`)).Hash()
	b := mustParse(t, []byte(`{"nodes":[],"edges":[],"viewport":{"x":1,"y":1,"zoom":1}}`)).Hash()
	if a != b {
		t.Errorf("an empty graph hashes differently with and without lists: %s vs %s", a, b)
	}
	c := mustParse(t, []byte(`{"nodes":[{"id":"a"}]}`)).Hash()
	if c == a {
		t.Errorf("a graph with a node hashes like an empty one")
	}
}

// ---------------------------------------------------------------------------
// CheckStructure

func TestCheckStructure(t *testing.T) {
	valid := build(
		[]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"c", "logic-condition"}, {"x", "action-http"}, {"y", "response-data"}},
		[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "c"},
			{ID: "e3", Source: "c", Target: "x", Handle: "true"}, {ID: "e4", Source: "c", Target: "y", Handle: "false"},
			{ID: "e5", Source: "x", Target: "y"}},
	)
	twoNodes := []N{{"t", "trigger-manual"}, {"a", "ai-chat"}}
	threeNodes := []N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "ai-chat"}}

	tests := []struct {
		name  string
		graph []byte
		size  int // 0: len(graph)
		lim   flow.Limits
		base  string
		want  []found
		msg   string // a substring of the first issue's message
	}{
		{name: "valid graph", graph: valid, lim: defaultLimits},
		{name: "empty graph", graph: []byte(`{}`), lim: defaultLimits},
		{name: "graph without a trigger is structurally fine", graph: build([]N{{"a", "ai-chat"}}, nil), lim: defaultLimits},
		{name: "zero limits mean unlimited", graph: valid, size: 1 << 30},
		{name: "same two nodes, two branches", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"c", "logic-condition"}, {"a", "ai-chat"}},
				[]E{{ID: "e1", Source: "t", Target: "c"}, {ID: "e2", Source: "c", Target: "a", Handle: "true"}, {ID: "e3", Source: "c", Target: "a", Handle: "false"}})},

		// too-large
		{name: "too-large bytes", graph: valid, size: 1001, lim: flow.Limits{MaxNodes: 200, MaxEdges: 500, MaxBytes: 1000},
			want: []found{{"too-large", "/data"}}, msg: "1001 bytes"},
		{name: "bytes at the limit", graph: valid, size: 1000, lim: flow.Limits{MaxBytes: 1000}},
		{name: "too-large nodes", graph: valid, lim: flow.Limits{MaxNodes: 4, MaxEdges: 500, MaxBytes: 1 << 20},
			want: []found{{"too-large", "/data/nodes"}}, msg: "5 nodes"},
		{name: "nodes at the limit", graph: valid, lim: flow.Limits{MaxNodes: 5}},
		{name: "too-large edges", graph: valid, lim: flow.Limits{MaxNodes: 200, MaxEdges: 4, MaxBytes: 1 << 20},
			want: []found{{"too-large", "/data/edges"}}, msg: "5 edges"},
		{name: "edges at the limit", graph: valid, lim: flow.Limits{MaxEdges: 5}},
		{name: "too-large everything", graph: valid, size: 2000, lim: flow.Limits{MaxNodes: 1, MaxEdges: 1, MaxBytes: 1000},
			want: []found{{"too-large", "/data"}, {"too-large", "/data/nodes"}, {"too-large", "/data/edges"}}},
		{name: "too-large skips the other checks", lim: flow.Limits{MaxNodes: 1},
			graph: build([]N{{"a", "ai-chat"}, {"a", "ai-chat"}}, []E{{ID: "e", Source: "a", Target: "a"}}),
			want:  []found{{"too-large", "/data/nodes"}}},

		// reserved-id
		{name: "reserved-id", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"input", "ai-chat"}}, nil),
			want:  []found{{"reserved-id", "/data/nodes/1/id"}}, msg: `"input"`},
		{name: "reserved-id twice is not also a duplicate", lim: defaultLimits,
			graph: build([]N{{"nodes", "ai-chat"}, {"nodes", "ai-chat"}}, nil),
			want:  []found{{"reserved-id", "/data/nodes/0/id"}, {"reserved-id", "/data/nodes/1/id"}}},
		{name: "reserved roots are case-sensitive", lim: defaultLimits,
			graph: build([]N{{"Trigger", "trigger-manual"}, {"NOW", "ai-chat"}}, nil)},
		{name: "a reserved root as a prefix is fine", lim: defaultLimits,
			graph: build([]N{{"trigger_1", "trigger-manual"}, {"input-2", "ai-chat"}}, []E{{ID: "e", Source: "trigger_1", Target: "input-2"}})},

		// duplicate-id
		{name: "duplicate node id", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"a", "ai-openai"}}, []E{{ID: "e1", Source: "t", Target: "a"}}),
			want:  []found{{"duplicate-id", "/data/nodes/2/id"}}, msg: "node 1"},
		{name: "duplicate node id three times", lim: defaultLimits,
			graph: build([]N{{"a", "ai-chat"}, {"a", "ai-chat"}, {"a", "ai-chat"}}, nil),
			want:  []found{{"duplicate-id", "/data/nodes/1/id"}, {"duplicate-id", "/data/nodes/2/id"}}},
		{name: "duplicate edge id", lim: defaultLimits,
			graph: build(threeNodes, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e1", Source: "t", Target: "b"}}),
			want:  []found{{"duplicate-id", "/data/edges/1/id"}}, msg: "edge 0"},
		{name: "node and edge may share an id", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "a", Source: "t", Target: "a"}})},

		// dangling-edge
		{name: "dangling source", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "ghost", Target: "a"}}),
			want:  []found{{"dangling-edge", "/data/edges/1/source"}}, msg: `"ghost"`},
		{name: "dangling target", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "e1", Source: "t", Target: "ghost"}}),
			want:  []found{{"dangling-edge", "/data/edges/0/target"}}, msg: `"ghost"`},
		{name: "self-loop", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "a"}}),
			want:  []found{{"dangling-edge", "/data/edges/1/target"}}, msg: "itself"},
		{name: "both ends dangling reports the source", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "e1", Source: "x", Target: "y"}}),
			want:  []found{{"dangling-edge", "/data/edges/0/source"}}},
		{name: "edge without ends", lim: defaultLimits,
			graph: []byte(`{"nodes":[{"id":"a","data":{"type":"ai-chat"}}],"edges":[{"id":"e"}]}`),
			want:  []found{{"dangling-edge", "/data/edges/0/source"}}},
		{name: "edge to a node with a reserved id dangles", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"vars", "ai-chat"}}, []E{{ID: "e", Source: "t", Target: "vars"}}),
			want:  []found{{"reserved-id", "/data/nodes/1/id"}, {"dangling-edge", "/data/edges/0/target"}}},

		// bad-handle
		{name: "duplicate edge", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "t", Target: "a"}}),
			want:  []found{{"bad-handle", "/data/edges/1"}}, msg: `"e2"`},
		{name: "duplicate edge with the same handle", lim: defaultLimits,
			graph: build([]N{{"c", "logic-condition"}, {"a", "ai-chat"}},
				[]E{{ID: "e1", Source: "c", Target: "a", Handle: "true"}, {ID: "e2", Source: "c", Target: "a", Handle: "true"}}),
			want: []found{{"bad-handle", "/data/edges/1"}}},
		{name: "duplicate edge with the same id", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e1", Source: "t", Target: "a"}}),
			want:  []found{{"duplicate-id", "/data/edges/1/id"}, {"bad-handle", "/data/edges/1"}}},

		// multiple-triggers
		{name: "two triggers", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"s", "trigger-schedule"}}, nil),
			want:  []found{{"multiple-triggers", "/data/nodes/2/data/type"}}},
		{name: "three triggers", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"s", "trigger-schedule"}, {"m", "trigger-webhook"}}, nil),
			want:  []found{{"multiple-triggers", "/data/nodes/1/data/type"}, {"multiple-triggers", "/data/nodes/2/data/type"}}},
		{name: "edge into the trigger", lim: defaultLimits,
			graph: build([]N{{"a", "ai-chat"}, {"t", "trigger-webhook"}}, []E{{ID: "e1", Source: "a", Target: "t"}}),
			want:  []found{{"multiple-triggers", "/data/edges/0/target"}}, msg: `"t"`},
		{name: "trigger-like names that are not triggers", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "triggered"}, {"b", "Trigger-manual"}, {"c", "trigger"}}, []E{{ID: "e", Source: "t", Target: "a"}}),
			// unknown types, but not counted as triggers: no multiple-triggers
			want: []found{{"unknown-node-type", "/data/nodes/1/data/type"}, {"unknown-node-type", "/data/nodes/2/data/type"}, {"unknown-node-type", "/data/nodes/3/data/type"}}},

		// cycle
		{name: "two-node cycle", lim: defaultLimits,
			graph: build(threeNodes, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "b"}, {ID: "e3", Source: "b", Target: "a"}}),
			want:  []found{{"cycle", "/data/nodes/1/id"}}, msg: `"a"`},
		{name: "cycle away from the trigger", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "ai-chat"}, {"c", "ai-chat"}},
				[]E{{ID: "e1", Source: "b", Target: "c"}, {ID: "e2", Source: "c", Target: "b"}}),
			want: []found{{"cycle", "/data/nodes/2/id"}}},
		{name: "diamond is not a cycle", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "ai-chat"}, {"c", "ai-chat"}},
				[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "t", Target: "b"}, {ID: "e3", Source: "a", Target: "c"}, {ID: "e4", Source: "b", Target: "c"}})},
		{name: "edges listed backwards are not a cycle", lim: defaultLimits,
			graph: build([]N{{"c", "ai-chat"}, {"b", "ai-chat"}, {"a", "ai-chat"}, {"t", "trigger-manual"}},
				[]E{{ID: "e3", Source: "b", Target: "c"}, {ID: "e2", Source: "a", Target: "b"}, {ID: "e1", Source: "t", Target: "a"}, {ID: "e4", Source: "a", Target: "c"}})},
		{name: "long chain closing into a cycle", lim: flow.Limits{}, graph: chain(100, 50),
			want: []found{{"cycle", "/data/nodes/50/id"}}, msg: `"c50"`},
		{name: "long chain closing to its start", lim: flow.Limits{}, graph: chain(300, 1),
			want: []found{{"cycle", "/data/nodes/1/id"}}},

		// base pointer
		{name: "empty base", base: "-", lim: defaultLimits,
			graph: build([]N{{"a", "ai-chat"}, {"a", "ai-chat"}}, nil),
			want:  []found{{"duplicate-id", "/nodes/1/id"}}},
		{name: "other base", base: "/graph", lim: defaultLimits,
			graph: build(twoNodes, []E{{ID: "e", Source: "t", Target: "zz"}}),
			want:  []found{{"dangling-edge", "/graph/edges/0/target"}}},

		// several at once, in document order
		{name: "several issues", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"flow", "ai-chat"}, {"a", "ai-chat"}, {"a", "ai-chat"}, {"s", "trigger-schedule"}},
				[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e1", Source: "a", Target: "s"}, {ID: "e3", Source: "a", Target: "nope"}, {ID: "e4", Source: "t", Target: "a"}}),
			want: []found{
				{"reserved-id", "/data/nodes/1/id"},
				{"duplicate-id", "/data/nodes/3/id"},
				{"multiple-triggers", "/data/nodes/4/data/type"},
				{"duplicate-id", "/data/edges/1/id"},
				{"multiple-triggers", "/data/edges/1/target"},
				{"dangling-edge", "/data/edges/2/target"},
				{"bad-handle", "/data/edges/3"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := mustParse(t, tc.graph)
			size := tc.size
			if size == 0 {
				size = len(tc.graph)
			}
			base := tc.base
			switch base {
			case "":
				base = "/data"
			case "-":
				base = ""
			}
			issues := g.CheckStructure(base, size, tc.lim)
			checkIssues(t, issues, tc.want)
			if tc.msg != "" && !strings.Contains(issues[0].Message, tc.msg) {
				t.Errorf("message %q does not mention %s", issues[0].Message, tc.msg)
			}
		})
	}
}

func TestCheckStructureEveryReservedRoot(t *testing.T) {
	roots := slices.Sorted(maps.Keys(flow.ReservedRoots))
	want := []string{"contact", "conversation", "execution", "flow", "input", "nodes", "now", "trigger", "vars"}
	if !slices.Equal(roots, want) {
		t.Fatalf("ReservedRoots = %v, want the roots of PRODUCT §6.4 %v", roots, want)
	}
	for _, root := range roots {
		t.Run(root, func(t *testing.T) {
			g := mustParse(t, build([]N{{"t", "trigger-manual"}, {"x", "ai-chat"}, {root, "ai-chat"}}, nil))
			checkIssues(t, g.CheckStructure("/data", 10, defaultLimits), []found{{"reserved-id", "/data/nodes/2/id"}})
		})
	}
}

func TestCheckStructureDeepChain(t *testing.T) {
	const n = 5000
	t.Run("no cycle", func(t *testing.T) {
		doc := chain(n, -1)
		g := mustParse(t, doc)
		checkIssues(t, g.CheckStructure("/data", len(doc), flow.Limits{}), nil)
		checkIssues(t, g.CheckCompleteness("/data"), nil)
	})
	t.Run("closed into a cycle at the start", func(t *testing.T) {
		doc := chain(n, 1)
		g := mustParse(t, doc)
		checkIssues(t, g.CheckStructure("/data", len(doc), flow.Limits{}), []found{{"cycle", "/data/nodes/1/id"}})
	})
	t.Run("closed into a cycle at the end", func(t *testing.T) {
		doc := chain(n, n-2)
		g := mustParse(t, doc)
		checkIssues(t, g.CheckStructure("/data", len(doc), flow.Limits{}), []found{{"cycle", fmt.Sprintf("/data/nodes/%d/id", n-2)}})
	})
	t.Run("default limits refuse it", func(t *testing.T) {
		doc := chain(n, -1)
		g := mustParse(t, doc)
		checkIssues(t, g.CheckStructure("/data", len(doc), defaultLimits), []found{{"too-large", "/data/nodes"}, {"too-large", "/data/edges"}})
	})
}

// ---------------------------------------------------------------------------
// CheckCompleteness and Validate

func TestCheckCompleteness(t *testing.T) {
	tests := []struct {
		name  string
		graph []byte
		base  string
		want  []found
		msg   string
	}{
		{name: "complete", graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "response-data"}},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "b"}})},
		{name: "trigger alone", graph: build([]N{{"t", "trigger-schedule"}}, nil)},
		{name: "trigger not first", graph: build([]N{{"a", "ai-chat"}, {"t", "trigger-webhook"}}, []E{{ID: "e", Source: "t", Target: "a"}})},
		{name: "diamond", graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "ai-chat"}, {"c", "ai-chat"}},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "t", Target: "b"}, {ID: "e3", Source: "a", Target: "c"}, {ID: "e4", Source: "b", Target: "c"}})},
		{name: "empty graph", graph: []byte(`{}`), want: []found{{"missing-trigger", "/data/nodes"}}, msg: "trigger"},
		{name: "no trigger", graph: build([]N{{"a", "ai-chat"}, {"b", "ai-chat"}}, []E{{ID: "e", Source: "a", Target: "b"}}),
			want: []found{{"missing-trigger", "/data/nodes"}}},
		{name: "missing trigger with another base", base: "/template/data", graph: build([]N{{"a", "ai-chat"}}, nil),
			want: []found{{"missing-trigger", "/template/data/nodes"}}},
		{name: "isolated node", graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "ai-chat"}}, []E{{ID: "e", Source: "t", Target: "a"}}),
			want: []found{{"unreachable", "/data/nodes/2"}}, msg: `"b"`},
		{name: "unreachable branch", graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "ai-chat"}, {"c", "ai-chat"}},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "b", Target: "c"}}),
			want: []found{{"unreachable", "/data/nodes/2"}, {"unreachable", "/data/nodes/3"}}},
		{name: "edges point the wrong way", graph: build([]N{{"a", "ai-chat"}, {"t", "trigger-manual"}}, []E{{ID: "e", Source: "a", Target: "t"}}),
			want: []found{{"unreachable", "/data/nodes/0"}}},
		{name: "second trigger is unreachable", graph: build([]N{{"t", "trigger-manual"}, {"s", "trigger-schedule"}}, nil),
			want: []found{{"unreachable", "/data/nodes/1"}}},
		{name: "cycle does not hang", graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"b", "ai-chat"}, {"z", "ai-chat"}},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "b"}, {ID: "e3", Source: "b", Target: "a"}}),
			want: []found{{"unreachable", "/data/nodes/3"}}},
		{name: "dangling edges are ignored", graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "ghost"}, {ID: "e3", Source: "ghost", Target: "a"}})},
		{name: "long chain", graph: chain(1000, -1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if base == "" {
				base = "/data"
			}
			issues := mustParse(t, tc.graph).CheckCompleteness(base)
			checkIssues(t, issues, tc.want)
			if tc.msg != "" && !strings.Contains(issues[0].Message, tc.msg) {
				t.Errorf("message %q does not mention %s", issues[0].Message, tc.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		graph []byte
		lim   flow.Limits
		want  []found
	}{
		{name: "valid and complete", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}}, []E{{ID: "e", Source: "t", Target: "a"}})},
		{name: "structure first, then completeness", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}, {"a", "ai-chat"}, {"b", "ai-chat"}}, []E{{ID: "e", Source: "t", Target: "a"}}),
			want:  []found{{"duplicate-id", "/data/nodes/2/id"}, {"unreachable", "/data/nodes/3"}}},
		{name: "completeness only", lim: defaultLimits,
			graph: build([]N{{"a", "ai-chat"}}, nil),
			want:  []found{{"missing-trigger", "/data/nodes"}}},
		{name: "structure only", lim: defaultLimits,
			graph: build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}}, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "a"}}),
			want:  []found{{"dangling-edge", "/data/edges/1/target"}}},
		{name: "too large and incomplete", lim: flow.Limits{MaxNodes: 1},
			graph: build([]N{{"a", "ai-chat"}, {"b", "ai-chat"}}, nil),
			want:  []found{{"too-large", "/data/nodes"}, {"missing-trigger", "/data/nodes"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkIssues(t, mustParse(t, tc.graph).Validate("/data", len(tc.graph), tc.lim), tc.want)
		})
	}
}

func TestIsTrigger(t *testing.T) {
	for typ, want := range map[string]bool{
		"trigger-manual": true, "trigger-webhook": true, "trigger-message": true, "trigger-schedule": true,
		"trigger": false, "ai-chat": false, "": false, "Trigger-manual": false, "x-trigger-manual": false,
	} {
		if got := flow.IsTrigger(typ); got != want {
			t.Errorf("IsTrigger(%q) = %v, want %v", typ, got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Fuzz and benchmark

func FuzzParseAndCheck(f *testing.F) {
	seeds := [][]byte{
		build([]N{{"t", "trigger-manual"}, {"a", "ai-chat"}}, []E{{ID: "e", Source: "t", Target: "a"}}),
		[]byte(hashBase),
		chain(20, 5),
		build([]N{{"t", "trigger-manual"}, {"input", "ai-chat"}, {"a", "ai-chat"}, {"a", "trigger-schedule"}},
			[]E{{ID: "e", Source: "t", Target: "a"}, {ID: "e", Source: "a", Target: "t"}, {ID: "x", Source: "a", Target: "a"}, {ID: "y", Source: "q", Target: "a"}}),
		[]byte(`{"nodes":[{"id":"a","data":{"type":"trigger-manual","executionStatus":"x"}}],"edges":[{"id":"e","source":"a","target":"a","sourceHandle":"out"}]}`),
		[]byte(`{"nodes":[1,null,"x",[]],"edges":[{},{"source":1,"target":{}}]}`),
		[]byte(`{"nodes":{},"edges":null,"viewport":7}`),
		[]byte(`{"nodes":[{"id":"","data":null}],"edges":[{"id":"","source":"","target":""}]}`),
		[]byte(`{}`),
		[]byte(`null`),
		[]byte(`[]`),
		[]byte(`{"nodes":[`),
		[]byte(`{"nodes":[]} trailing`),
		[]byte(""),
	}
	// Every registered type with its happy config, chained, so mutations reach the config checks.
	var all []CN
	var links []E
	for i, typ := range wantTypes {
		all = append(all, CN{ID: fmt.Sprintf("n%d", i), Type: typ, Config: happyConfigs[typ]})
		if i > 0 {
			links = append(links, E{ID: fmt.Sprintf("e%d", i), Source: "n0", Target: fmt.Sprintf("n%d", i)})
		}
	}
	seeds = append(seeds, graphOf(all, links))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		g, err := flow.Parse(in)
		if err != nil {
			if g != nil {
				t.Fatalf("Parse returned a graph with an error")
			}
			return
		}
		lim := flow.Limits{MaxNodes: 50, MaxEdges: 100, MaxBytes: 1 << 16}
		h := g.Hash()
		for _, is := range g.Validate("/data", len(in), lim) {
			warning := is.Severity == flow.SeverityWarning && is.Code == "bad-reference"
			if !strings.HasPrefix(is.Pointer, "/data") || is.Code == "" || (is.Severity != flow.SeverityError && !warning) {
				t.Fatalf("bad issue %+v", is)
			}
		}
		_ = g.CheckStructure("", len(in), flow.Limits{})
		_ = g.CheckCompleteness("")
		clean, err := g.Clean()
		if err != nil {
			t.Fatalf("Clean: %v", err)
		}
		if g.Hash() != h {
			t.Fatalf("Clean changed the hash")
		}
		g2, err := flow.Parse(clean)
		if err != nil {
			t.Fatalf("Clean output %q does not parse: %v", clean, err)
		}
		if g2.NodeCount() != g.NodeCount() || len(g2.Edges) != len(g.Edges) {
			t.Fatalf("re-parse changed the counts")
		}
		if g2.Hash() != h {
			t.Fatalf("re-parsing the clean output changed the hash")
		}
		if !slices.Equal(summary(g2.CheckStructure("/data", len(in), lim)), summary(g.CheckStructure("/data", len(in), lim))) {
			t.Fatalf("re-parsing the clean output changed the structural issues")
		}
	})
}

// benchGraph is a 200-node, 500-edge DAG: edges i→i+1, i→i+2 and i→i+3 until 500.
func benchGraph() []byte {
	const nodes, edges = 200, 500
	ns := make([]N, nodes)
	for i := range ns {
		typ := "ai-chat"
		if i == 0 {
			typ = "trigger-manual"
		}
		ns[i] = N{fmt.Sprintf("n%d", i), typ}
	}
	var es []E
	for d := 1; len(es) < edges; d++ {
		for i := 0; i+d < nodes && len(es) < edges; i++ {
			es = append(es, E{ID: fmt.Sprintf("e%d", len(es)), Source: ns[i].ID, Target: ns[i+d].ID})
		}
	}
	return build(ns, es)
}

func TestBenchGraphIsValid(t *testing.T) {
	doc := benchGraph()
	g := mustParse(t, doc)
	if g.NodeCount() != 200 || len(g.Edges) != 500 {
		t.Fatalf("bench graph has %d nodes and %d edges", g.NodeCount(), len(g.Edges))
	}
	checkIssues(t, g.Validate("/data", len(doc), defaultLimits), nil)
}

func BenchmarkCheckStructure(b *testing.B) {
	doc := benchGraph()
	g := mustParse(b, doc)
	if issues := g.CheckStructure("/data", len(doc), defaultLimits); len(issues) > 0 {
		b.Fatalf("bench graph has issues: %+v", issues)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = g.CheckStructure("/data", len(doc), defaultLimits)
	}
}

package flow_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/flow"
)

// CN is a node with its whole data object: type, config and any other data keys.
type CN struct {
	ID, Type string
	Config   any            // nil: no config key
	Data     map[string]any // extra data keys (on_error, retry, …)
}

// graphOf builds a graph document from CN nodes, through JSON so that numbers arrive as Parse gives them.
func graphOf(nodes []CN, edges []E) []byte {
	ns := make([]any, 0, len(nodes))
	for _, n := range nodes {
		d := map[string]any{"type": n.Type}
		if n.Config != nil {
			d["config"] = n.Config
		}
		for k, v := range n.Data {
			d[k] = v
		}
		ns = append(ns, map[string]any{"id": n.ID, "type": "custom", "position": map[string]any{"x": 0, "y": 0}, "data": d})
	}
	b, err := json.Marshal(map[string]any{"nodes": ns, "edges": edgeMaps(edges)})
	if err != nil {
		panic(err)
	}
	return b
}

// one is the graph trigger "t" → node "n" of type typ with cfg (and extra data keys).
func one(typ string, cfg any, data map[string]any) []byte {
	return graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: happyConfigs["trigger-manual"]}, {ID: "n", Type: typ, Config: cfg, Data: data}},
		[]E{{ID: "e1", Source: "t", Target: "n"}})
}

// with returns a copy of the type's minimal config with the given keys set (a nil value deletes).
func with(typ string, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range minimalConfigs[typ] {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// issue is the comparable part of an Issue, with its severity.
type issue struct{ Code, Pointer, Severity string }

func issuesOf(list []flow.Issue) []issue {
	out := make([]issue, 0, len(list))
	for _, is := range list {
		out = append(out, issue{is.Code, is.Pointer, is.Severity})
	}
	return out
}

func errs(codePtr ...string) []issue {
	var out []issue
	for i := 0; i+1 < len(codePtr); i += 2 {
		out = append(out, issue{codePtr[i], codePtr[i+1], flow.SeverityError})
	}
	return out
}

func warn(ptr string) issue { return issue{"bad-reference", ptr, flow.SeverityWarning} }

type checkCase struct {
	name  string
	graph []byte
	want  []issue // what Validate reports
	msg   string  // a substring of the first issue's message
}

// runChecks checks Validate's issues, and that CheckStructure reports exactly Validate's structural
// errors, and CheckCompleteness exactly its completeness issues.
func runChecks(t *testing.T, tests []checkCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := mustParse(t, tc.graph)
			got := g.Validate("/data", len(tc.graph), defaultLimits)
			if want := tc.want; !slices.Equal(issuesOf(got), want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("Validate issues:\n got  %v\n want %v\n full %+v", issuesOf(got), want, got)
			}
			for _, is := range got {
				if strings.TrimSpace(is.Message) == "" {
					t.Errorf("%s at %s: empty message", is.Code, is.Pointer)
				}
			}
			if tc.msg != "" && !strings.Contains(got[0].Message, tc.msg) {
				t.Errorf("message %q does not mention %q", got[0].Message, tc.msg)
			}
			structural := g.CheckStructure("/data", len(tc.graph), defaultLimits)
			complete := g.CheckCompleteness("/data")
			var wantStructural, wantComplete []issue
			for _, is := range issuesOf(got) {
				switch {
				case is.Severity == flow.SeverityWarning:
				case slices.Contains([]string{"missing-trigger", "unreachable", "missing-config"}, is.Code):
					wantComplete = append(wantComplete, is)
				default:
					wantStructural = append(wantStructural, is)
				}
			}
			if a, b := issuesOf(structural), wantStructural; !slices.Equal(a, b) && len(a)+len(b) > 0 {
				t.Errorf("CheckStructure = %v, want the structural errors of Validate %v", a, b)
			}
			if a, b := issuesOf(complete), wantComplete; !slices.Equal(a, b) && len(a)+len(b) > 0 {
				t.Errorf("CheckCompleteness = %v, want the completeness issues of Validate %v", a, b)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Every type's happy config

func TestHappyConfigs(t *testing.T) {
	for _, set := range []map[string]map[string]any{happyConfigs, minimalConfigs} {
		for _, typ := range wantTypes {
			if _, ok := set[typ]; !ok {
				t.Errorf("no example config for %s", typ)
			}
		}
	}
	var cases []checkCase
	for _, typ := range wantTypes {
		for _, kind := range []string{"full", "minimal"} {
			cfg := happyConfigs[typ]
			if kind == "minimal" {
				cfg = minimalConfigs[typ]
			}
			var graph []byte
			if flow.IsTrigger(typ) {
				graph = graphOf([]CN{{ID: "n", Type: typ, Config: cfg}, {ID: "r", Type: "response-data", Config: map[string]any{}}},
					[]E{{ID: "e1", Source: "n", Target: "r"}})
			} else {
				// trigger → n → every output of n → its own response node
				nodes := []CN{{ID: "t", Type: "trigger-manual", Config: happyConfigs["trigger-manual"]}, {ID: "n", Type: typ, Config: cfg}}
				edges := []E{{ID: "e0", Source: "t", Target: "n"}}
				var raw map[string]any
				_ = json.Unmarshal(graphOf(nodes[1:], nil), &raw)
				for k, h := range flow.OutputHandles(raw["nodes"].([]any)[0].(map[string]any)) {
					id := fmt.Sprintf("r%d", k)
					nodes = append(nodes, CN{ID: id, Type: "response-data", Config: map[string]any{"body": "{{n}}"}})
					edges = append(edges, E{ID: "e" + id, Source: "n", Target: id, Handle: h})
				}
				graph = graphOf(nodes, edges)
			}
			cases = append(cases, checkCase{name: typ + "/" + kind, graph: graph})
		}
	}
	runChecks(t, cases)
}

// ---------------------------------------------------------------------------
// unknown-node-type

func TestUnknownNodeType(t *testing.T) {
	runChecks(t, []checkCase{
		{name: "made-up type", graph: one("action-log", map[string]any{"message": "hi"}, nil),
			want: errs("unknown-node-type", "/data/nodes/1/data/type"), msg: `unknown node type "action-log"`},
		{name: "removed type names its replacement", graph: one("action-code", map[string]any{"code": "x"}, nil),
			want: errs("unknown-node-type", "/data/nodes/1/data/type"), msg: "logic-transform"},
		{name: "response-webhook", graph: one("response-webhook", nil, nil),
			want: errs("unknown-node-type", "/data/nodes/1/data/type"), msg: "response-data"},
		{name: "a type that joins later", graph: one("human-handoff", nil, nil),
			want: errs("unknown-node-type", "/data/nodes/1/data/type")},
		{name: "missing type", graph: one("", nil, nil),
			want: errs("unknown-node-type", "/data/nodes/1/data/type"), msg: "no data.type"},
		{name: "ids match exactly", graph: one("AI-Chat", map[string]any{"prompt": "x"}, nil),
			want: errs("unknown-node-type", "/data/nodes/1/data/type")},
		{name: "an unknown trigger is still unknown, and its edges are not checked", graph: graphOf(
			[]CN{{ID: "m", Type: "trigger-message"}, {ID: "a", Type: "ai-chat", Config: map[string]any{"prompt": "x"}}},
			[]E{{ID: "e", Source: "m", Target: "a", Handle: "anything"}}),
			want: errs("unknown-node-type", "/data/nodes/0/data/type")},
	})
}

// ---------------------------------------------------------------------------
// bad-config

func TestBadConfig(t *testing.T) {
	bad := func(ptr string) []issue { return errs("bad-config", "/data/nodes/1/data"+ptr) }
	longName := strings.Repeat("é", 51)
	many := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = fmt.Sprintf("c%d", i)
		}
		return out
	}
	manyCases := make([]any, 21)
	for i := range manyCases {
		manyCases[i] = map[string]any{"id": fmt.Sprintf("c%d", i), "operator": "is_empty"}
	}
	manyMappings := map[string]any{}
	for i := range 51 {
		manyMappings[fmt.Sprintf("k%02d", i)] = "1"
	}

	runChecks(t, []checkCase{
		// shape
		{name: "config not an object", graph: one("ai-chat", "prompt", nil), want: bad("/config"), msg: "must be an object"},
		{name: "config absent on a type without required keys", graph: one("response-data", nil, nil)},
		{name: "unknown key", graph: one("ai-chat", with("ai-chat", "promt", "x"), nil), want: bad("/config/promt"), msg: `"promt"`},
		{name: "unknown keys in key order, UI keys kept", graph: one("ai-chat", with("ai-chat", "zz", 1, "aa", 2, "_ui", map[string]any{"x": 1}), nil),
			want: append(bad("/config/aa"), bad("/config/zz")...)},
		{name: "unknown key with a slash is escaped", graph: one("response-data", map[string]any{"a/b~c": 1}, nil), want: bad("/config/a~1b~0c")},
		{name: "null and empty values count as absent", graph: one("action-http", with("action-http", "method", "", "timeout_ms", nil, "body_type", ""), nil)},

		// types
		{name: "text that is a number", graph: one("ai-chat", with("ai-chat", "prompt", 5), nil), want: bad("/config/prompt"), msg: "must be a string"},
		{name: "operand that is an object", graph: one("logic-condition", with("logic-condition", "value1", map[string]any{"a": 1}), nil), want: bad("/config/value1")},
		{name: "boolean as a string", graph: one("ai-chat", with("ai-chat", "json_output", "yes"), nil), want: bad("/config/json_output"), msg: "true or false"},
		{name: "number as a string", graph: one("action-http", with("action-http", "timeout_ms", "5000"), nil), want: bad("/config/timeout_ms"), msg: "must be a number"},
		{name: "key-value not an object", graph: one("action-http", with("action-http", "headers", []any{"a"}), nil), want: bad("/config/headers")},
		{name: "key-value with an object value", graph: one("action-http", with("action-http", "headers", map[string]any{"X-A": map[string]any{}}), nil),
			want: bad("/config/headers/X-A")},
		{name: "key-value with an empty key", graph: one("response-data", map[string]any{"headers": map[string]any{" ": "x"}}, nil),
			want: bad("/config/headers/ "), msg: "empty key"},
		{name: "list not a list", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": "q"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/inputFields")},

		// enums
		{name: "method", graph: one("action-http", with("action-http", "method", "FETCH"), nil), want: bad("/config/method"), msg: "GET, POST, PUT, PATCH, DELETE"},
		{name: "method is case-sensitive", graph: one("action-http", with("action-http", "method", "get"), nil), want: bad("/config/method")},
		{name: "body_type", graph: one("action-http", with("action-http", "body_type", "xml"), nil), want: bad("/config/body_type")},
		{name: "response_type", graph: one("action-http", with("action-http", "response_type", "html"), nil), want: bad("/config/response_type")},
		{name: "response_mode", graph: graphOf([]CN{{ID: "w", Type: "trigger-webhook", Config: map[string]any{"response_mode": "later"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/response_mode")},
		{name: "content_type", graph: one("ai-content-writer", with("ai-content-writer", "content_type", "poem"), nil), want: bad("/config/content_type")},
		{name: "tone and length", graph: one("ai-content-writer", with("ai-content-writer", "tone", "angry", "length", 3), nil),
			want: append(bad("/config/tone"), bad("/config/length")...)},
		{name: "condition operator", graph: one("logic-condition", with("logic-condition", "condition_type", "between"), nil),
			want: append(bad("/config/condition_type"), issue{"missing-config", "/data/nodes/1/data/config/value2", "error"})},

		// ranges
		{name: "temperature over", graph: one("ai-chat", with("ai-chat", "temperature", 2.01), nil), want: bad("/config/temperature"), msg: "from 0 to 2"},
		{name: "temperature under", graph: one("ai-gemini", with("ai-gemini", "temperature", -0.1), nil), want: bad("/config/temperature")},
		{name: "max_tokens fractional", graph: one("ai-chat", with("ai-chat", "max_tokens", 10.5), nil), want: bad("/config/max_tokens"), msg: "whole number from 1 to 8192"},
		{name: "max_tokens over", graph: one("ai-openai", with("ai-openai", "max_tokens", 8193), nil), want: bad("/config/max_tokens")},
		{name: "max_tokens as 1e3 is whole", graph: one("ai-chat", with("ai-chat", "max_tokens", json.RawMessage("1e3")), nil)},
		{name: "history_messages", graph: one("ai-chat", with("ai-chat", "history_messages", 0), nil), want: bad("/config/history_messages")},
		{name: "integration_id", graph: one("ai-chat", with("ai-chat", "integration_id", 0), nil), want: bad("/config/integration_id")},
		{name: "timeout_ms under", graph: one("action-http", with("action-http", "timeout_ms", 999), nil), want: bad("/config/timeout_ms")},
		{name: "timeout_ms over", graph: one("action-http", with("action-http", "timeout_ms", 60001), nil), want: bad("/config/timeout_ms")},
		{name: "status under", graph: one("response-data", map[string]any{"status": 199}, nil), want: bad("/config/status")},
		{name: "status over", graph: one("response-data", map[string]any{"status": 600}, nil), want: bad("/config/status")},
		{name: "status bounds", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual"}, {ID: "a", Type: "response-data", Config: map[string]any{"status": 200}},
			{ID: "b", Type: "response-data", Config: map[string]any{"status": 599}}}, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "b"}})},
		{name: "duration_seconds", graph: one("logic-delay", map[string]any{"duration_seconds": 604801}, nil), want: bad("/config/duration_seconds")},
		{name: "huge number", graph: one("action-http", with("action-http", "timeout_ms", json.RawMessage("1e400")), nil), want: bad("/config/timeout_ms")},

		// cron and time zone
		{name: "cron with six fields", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": "0 0 * * * *"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/schedule"), msg: "5 fields"},
		{name: "cron out of range", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": "0 25 * * *"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/schedule")},
		{name: "cron descriptor not allowed", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": "@every 1m"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/schedule"), msg: "@hourly, @daily, @weekly, @monthly"},
		{name: "cron with a TZ prefix and no fields", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": "TZ=UTC"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/schedule"), msg: "timezone"},
		{name: "cron not a string", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": 5}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/schedule")},
		{name: "time zone", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": "@weekly", "timezone": "Mars/Olympus"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/timezone"), msg: "IANA"},
		{name: "time zone Local", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": "@weekly", "timezone": "Local"}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/timezone")},
		{name: "time zone UTC", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"schedule": "0 0 1 1 *", "timezone": "UTC"}}}, nil)},

		// templates and CEL
		{name: "template syntax", graph: one("ai-chat", with("ai-chat", "prompt", "Hi {{ input.q "), nil), want: bad("/config/prompt"), msg: "template"},
		{name: "template syntax deep in a body", graph: one("action-http", with("action-http", "body", map[string]any{"a": []any{"ok", "{{ }}"}}), nil),
			want: bad("/config/body/a/1")},
		{name: "template syntax in a header", graph: one("action-http", with("action-http", "headers", map[string]any{"X-A": "{{input.}}"}), nil),
			want: bad("/config/headers/X-A")},
		{name: "an escaped template is text", graph: one("ai-chat", with("ai-chat", "prompt", `literal \{{ braces`), nil)},
		{name: "a non-templated field is not parsed", graph: one("ai-classify", with("ai-classify", "instructions", "{{ not a template"), nil)},
		{name: "CEL syntax", graph: one("logic-transform", map[string]any{"mappings": map[string]any{"ok": "1 + 1", "x": "1 +"}}, nil),
			want: bad("/config/mappings/x"), msg: "CEL"},
		{name: "CEL in set-variable", graph: one("logic-set-variable", map[string]any{"variables": map[string]any{"v": "("}}, nil),
			want: bad("/config/variables/v")},
		{name: "CEL value not a string", graph: one("logic-transform", map[string]any{"mappings": map[string]any{"x": 5}}, nil),
			want: bad("/config/mappings/x")},
		{name: "too many mappings", graph: one("logic-transform", map[string]any{"mappings": manyMappings}, nil),
			want: bad("/config/mappings"), msg: "at most 50"},

		// AI models
		{name: "model not in the catalogue", graph: one("ai-chat", with("ai-chat", "model", "gpt-99"), nil), want: bad("/config/model"), msg: "catalogue"},
		{name: "embedding model", graph: one("ai-chat", with("ai-chat", "model", "text-embedding-3-small"), nil), want: bad("/config/model"), msg: "chat model"},
		{name: "gemini preset with an openai model", graph: one("ai-gemini", with("ai-gemini", "model", "gpt-4o"), nil), want: bad("/config/model"), msg: "gemini"},
		{name: "openai preset with a gemini model", graph: one("ai-openai", with("ai-openai", "model", "gemini-2.5-flash"), nil), want: bad("/config/model"), msg: "openai"},
		{name: "classify model", graph: one("ai-classify", with("ai-classify", "model", "nope"), nil), want: bad("/config/model")},

		// ai-classify categories
		{name: "one category", graph: one("ai-classify", with("ai-classify", "categories", []any{"a"}), nil), want: bad("/config/categories"), msg: "2 to 20"},
		{name: "one category as a string", graph: one("ai-classify", with("ai-classify", "categories", "a,"), nil), want: bad("/config/categories")},
		{name: "blank categories string", graph: one("ai-classify", with("ai-classify", "categories", " , "), nil), want: bad("/config/categories")},
		{name: "21 categories", graph: one("ai-classify", with("ai-classify", "categories", many(21)), nil), want: bad("/config/categories")},
		{name: "20 categories", graph: one("ai-classify", with("ai-classify", "categories", many(20)), nil)},
		{name: "duplicate category", graph: one("ai-classify", with("ai-classify", "categories", []any{"a", "b", "a"}), nil), want: bad("/config/categories/2"), msg: "twice"},
		{name: "duplicate category in a string", graph: one("ai-classify", with("ai-classify", "categories", "a, b, a"), nil), want: bad("/config/categories")},
		{name: "reserved categories", graph: one("ai-classify", with("ai-classify", "categories", []any{"fallback", "ok", "error"}), nil),
			want: append(bad("/config/categories/0"), bad("/config/categories/2")...)},
		{name: "long category", graph: one("ai-classify", with("ai-classify", "categories", []any{"a", longName}), nil), want: bad("/config/categories/1"), msg: "51 characters"},
		{name: "50-character category", graph: one("ai-classify", with("ai-classify", "categories", []any{"a", strings.Repeat("é", 50)}), nil)},
		{name: "empty category", graph: one("ai-classify", with("ai-classify", "categories", []any{"a", "b", " "}), nil), want: bad("/config/categories/2")},
		{name: "category not a string", graph: one("ai-classify", with("ai-classify", "categories", []any{"a", "b", 3}), nil), want: bad("/config/categories/2")},
		{name: "categories an object", graph: one("ai-classify", with("ai-classify", "categories", map[string]any{"a": 1}), nil), want: bad("/config/categories")},

		// logic-switch cases
		{name: "case id pattern", graph: one("logic-switch", with("logic-switch", "cases", []any{map[string]any{"id": "Big Deal", "operator": "is_empty"}}), nil),
			want: bad("/config/cases/0/id"), msg: "a-z, 0-9"},
		{name: "case id too long", graph: one("logic-switch", with("logic-switch", "cases", []any{map[string]any{"id": strings.Repeat("a", 33), "operator": "is_empty"}}), nil),
			want: bad("/config/cases/0/id")},
		{name: "case id default", graph: one("logic-switch", with("logic-switch", "cases", []any{map[string]any{"id": "a", "operator": "is_empty"}, map[string]any{"id": "default", "operator": "is_empty"}}), nil),
			want: bad("/config/cases/1/id"), msg: "reserved"},
		{name: "case id error", graph: one("logic-switch", with("logic-switch", "cases", []any{map[string]any{"id": "error", "operator": "is_empty"}}), nil),
			want: bad("/config/cases/0/id")},
		{name: "duplicate case ids", graph: one("logic-switch", with("logic-switch", "cases", []any{
			map[string]any{"id": "a", "operator": "is_empty"}, map[string]any{"id": "b", "operator": "is_empty"}, map[string]any{"id": "a", "operator": "is_empty"}}), nil),
			want: bad("/config/cases/2/id"), msg: "case 0"},
		{name: "case operator", graph: one("logic-switch", with("logic-switch", "cases", []any{map[string]any{"id": "a", "operator": "between", "compare_to": 1}}), nil),
			want: bad("/config/cases/0/operator")},
		{name: "case unknown key", graph: one("logic-switch", with("logic-switch", "cases", []any{map[string]any{"id": "a", "operator": "is_empty", "value": 1, "_ui": 1}}), nil),
			want: bad("/config/cases/0/value")},
		{name: "case not an object", graph: one("logic-switch", with("logic-switch", "cases", []any{"a"}), nil), want: bad("/config/cases/0")},
		{name: "case compare_to template", graph: one("logic-switch", with("logic-switch", "cases", []any{map[string]any{"id": "a", "operator": "equals", "compare_to": "{{x"}}), nil),
			want: bad("/config/cases/0/compare_to")},
		{name: "21 cases", graph: one("logic-switch", with("logic-switch", "cases", manyCases), nil), want: bad("/config/cases"), msg: "at most 20"},

		// logic-delay
		{name: "duration and until", graph: one("logic-delay", map[string]any{"duration_seconds": 5, "until": "2030-01-01T00:00:00Z"}, nil),
			want: bad("/config/until"), msg: "not both"},
		{name: "until not RFC 3339", graph: one("logic-delay", map[string]any{"until": "tomorrow"}, nil), want: bad("/config/until"), msg: "RFC 3339"},
		{name: "until as a template", graph: one("logic-delay", map[string]any{"until": "{{input.q}}"}, nil)},

		// trigger-manual inputFields
		{name: "bad input key", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": []any{map[string]any{"key": "1st"}}}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/inputFields/0/key"), msg: "letter"},
		{name: "input key too long", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": []any{map[string]any{"key": "a" + strings.Repeat("b", 64)}}}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/inputFields/0/key")},
		{name: "duplicate input key", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": []any{map[string]any{"key": "a"}, map[string]any{"key": "a"}}}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/inputFields/1/key")},
		{name: "input type", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": []any{map[string]any{"key": "a", "type": "date"}}}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/inputFields/0/type")},
		{name: "input default of the wrong type", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": []any{
			map[string]any{"key": "a", "type": "number", "default": "3"}, map[string]any{"key": "b", "default": 3}, map[string]any{"key": "c", "type": "boolean", "default": "no"}}}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/inputFields/0/default", "bad-config", "/data/nodes/0/data/config/inputFields/1/default",
				"bad-config", "/data/nodes/0/data/config/inputFields/2/default")},
		{name: "input required not a boolean", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": []any{map[string]any{"key": "a", "required": "yes"}}}}}, nil),
			want: errs("bad-config", "/data/nodes/0/data/config/inputFields/0/required")},

		// action-http url
		{name: "url scheme", graph: one("action-http", with("action-http", "url", "ftp://example.com/x"), nil), want: bad("/config/url"), msg: "http and https"},
		{name: "url without a scheme", graph: one("action-http", with("action-http", "url", "example.com/x"), nil), want: bad("/config/url")},
		{name: "url file", graph: one("action-http", with("action-http", "url", "file:///etc/passwd"), nil), want: bad("/config/url")},
		{name: "url without a host", graph: one("action-http", with("action-http", "url", "http:///x"), nil), want: bad("/config/url")},
		{name: "templated url is checked at run time", graph: one("action-http", with("action-http", "url", "{{input.q}}"), nil)},

		// data.on_error and data.retry
		{name: "on_error unknown", graph: one("ai-chat", with("ai-chat"), map[string]any{"on_error": "explode"}), want: bad("/on_error"), msg: "stop, continue or branch"},
		{name: "on_error not a string", graph: one("ai-chat", with("ai-chat"), map[string]any{"on_error": true}), want: bad("/on_error")},
		{name: "on_error continue without out", graph: one("logic-condition", with("logic-condition"), map[string]any{"on_error": "continue"}),
			want: bad("/on_error"), msg: "logic-condition"},
		{name: "on_error continue on switch", graph: one("logic-switch", with("logic-switch"), map[string]any{"on_error": "continue"}), want: bad("/on_error")},
		{name: "on_error continue and branch where allowed", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual"},
			{ID: "a", Type: "ai-chat", Config: with("ai-chat"), Data: map[string]any{"on_error": "continue"}},
			{ID: "c", Type: "logic-condition", Config: with("logic-condition"), Data: map[string]any{"on_error": "branch"}},
			{ID: "h", Type: "action-http", Config: with("action-http"), Data: map[string]any{"on_error": "stop", "retry": map[string]any{"max_attempts": 5, "backoff_ms": 100, "exponential": false, "jitter": true}}}},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "c"}, {ID: "e3", Source: "c", Target: "h", Handle: "error"}})},
		{name: "retry ranges", graph: one("ai-chat", with("ai-chat"), map[string]any{"retry": map[string]any{"max_attempts": 6, "backoff_ms": 99, "exponential": "yes"}}),
			want: append(append(bad("/retry/max_attempts"), bad("/retry/backoff_ms")...), bad("/retry/exponential")...)},
		{name: "retry upper bounds", graph: one("ai-chat", with("ai-chat"), map[string]any{"retry": map[string]any{"max_attempts": 0, "backoff_ms": 60001}}),
			want: append(bad("/retry/max_attempts"), bad("/retry/backoff_ms")...)},
		{name: "retry not an object", graph: one("ai-chat", with("ai-chat"), map[string]any{"retry": 3}), want: bad("/retry")},
		{name: "null settings are absent", graph: one("ai-chat", with("ai-chat"), map[string]any{"retry": nil, "on_error": nil})},
	})
}

// ---------------------------------------------------------------------------
// bad-handle

func TestBadHandle(t *testing.T) {
	tr := CN{ID: "t", Type: "trigger-manual"}
	resp := func(id string) CN { return CN{ID: id, Type: "response-data"} }
	cond := CN{ID: "c", Type: "logic-condition", Config: with("logic-condition")}
	classify := CN{ID: "k", Type: "ai-classify", Config: with("ai-classify", "categories", []any{"sales", "support"})}
	sw := CN{ID: "s", Type: "logic-switch", Config: with("logic-switch", "cases", []any{map[string]any{"id": "hi", "operator": "is_empty"}})}
	runChecks(t, []checkCase{
		{name: "condition branches", graph: graphOf([]CN{tr, cond, resp("a"), resp("b")},
			[]E{{ID: "e0", Source: "t", Target: "c"}, {ID: "e1", Source: "c", Target: "a", Handle: "true"}, {ID: "e2", Source: "c", Target: "b", Handle: "false"}})},
		{name: "condition edge without a handle", graph: graphOf([]CN{tr, cond, resp("a")},
			[]E{{ID: "e0", Source: "t", Target: "c"}, {ID: "e1", Source: "c", Target: "a"}}),
			want: errs("bad-handle", "/data/edges/1/sourceHandle"), msg: "true, false"},
		{name: "condition edge with an unknown handle", graph: graphOf([]CN{tr, cond, resp("a")},
			[]E{{ID: "e0", Source: "t", Target: "c"}, {ID: "e1", Source: "c", Target: "a", Handle: "maybe"}}),
			want: errs("bad-handle", "/data/edges/1/sourceHandle"), msg: `"maybe"`},
		{name: "error handle needs on_error branch", graph: graphOf([]CN{tr, cond, resp("a")},
			[]E{{ID: "e0", Source: "t", Target: "c"}, {ID: "e1", Source: "c", Target: "a", Handle: "error"}}),
			want: errs("bad-handle", "/data/edges/1/sourceHandle")},
		{name: "classify categories and fallback", graph: graphOf([]CN{tr, classify, resp("a"), resp("b"), resp("f")},
			[]E{{ID: "e0", Source: "t", Target: "k"}, {ID: "e1", Source: "k", Target: "a", Handle: "sales"}, {ID: "e2", Source: "k", Target: "b", Handle: "support"},
				{ID: "e3", Source: "k", Target: "f", Handle: "fallback"}})},
		{name: "classify with a comma-separated string", graph: graphOf([]CN{tr, {ID: "k", Type: "ai-classify", Config: with("ai-classify", "categories", "sales, support")}, resp("a")},
			[]E{{ID: "e0", Source: "t", Target: "k"}, {ID: "e1", Source: "k", Target: "a", Handle: "support"}})},
		{name: "classify unknown category", graph: graphOf([]CN{tr, classify, resp("a")},
			[]E{{ID: "e0", Source: "t", Target: "k"}, {ID: "e1", Source: "k", Target: "a", Handle: "billing"}}),
			want: errs("bad-handle", "/data/edges/1/sourceHandle"), msg: "sales, support, fallback"},
		{name: "switch cases and default", graph: graphOf([]CN{tr, sw, resp("a"), resp("d")},
			[]E{{ID: "e0", Source: "t", Target: "s"}, {ID: "e1", Source: "s", Target: "a", Handle: "hi"}, {ID: "e2", Source: "s", Target: "d", Handle: "default"}})},
		{name: "switch unknown case", graph: graphOf([]CN{tr, sw, resp("a")},
			[]E{{ID: "e0", Source: "t", Target: "s"}, {ID: "e1", Source: "s", Target: "a", Handle: "lo"}}),
			want: errs("bad-handle", "/data/edges/1/sourceHandle")},
		{name: "single output: out or absent", graph: graphOf([]CN{tr, resp("a"), resp("b")},
			[]E{{ID: "e0", Source: "t", Target: "a", Handle: "out"}, {ID: "e1", Source: "a", Target: "b"}})},
		{name: "single output: other handle", graph: graphOf([]CN{tr, resp("a")}, []E{{ID: "e0", Source: "t", Target: "a", Handle: "true"}}),
			want: errs("bad-handle", "/data/edges/0/sourceHandle")},
		{name: "absent and out are the same handle", graph: graphOf([]CN{tr, resp("a")},
			[]E{{ID: "e0", Source: "t", Target: "a"}, {ID: "e1", Source: "t", Target: "a", Handle: "out"}}),
			want: errs("bad-handle", "/data/edges/1"), msg: "duplicates"},
		{name: "branch: error and out", graph: graphOf([]CN{tr, {ID: "a", Type: "ai-chat", Config: with("ai-chat"), Data: map[string]any{"on_error": "branch"}}, resp("ok"), resp("ko")},
			[]E{{ID: "e0", Source: "t", Target: "a"}, {ID: "e1", Source: "a", Target: "ok", Handle: "out"}, {ID: "e2", Source: "a", Target: "ko", Handle: "error"}})},
		{name: "branch: a handle is needed", graph: graphOf([]CN{tr, {ID: "a", Type: "ai-chat", Config: with("ai-chat"), Data: map[string]any{"on_error": "branch"}}, resp("ok")},
			[]E{{ID: "e0", Source: "t", Target: "a"}, {ID: "e1", Source: "a", Target: "ok"}}),
			want: errs("bad-handle", "/data/edges/1/sourceHandle"), msg: "out, error"},
		{name: "handle not a string", graph: []byte(`{"nodes":[{"id":"t","data":{"type":"trigger-manual"}},{"id":"a","data":{"type":"response-data"}}],` +
			`"edges":[{"id":"e","source":"t","target":"a","sourceHandle":1}]}`),
			want: errs("bad-handle", "/data/edges/0/sourceHandle")},
		{name: "null handle is absent", graph: []byte(`{"nodes":[{"id":"t","data":{"type":"trigger-manual"}},{"id":"a","data":{"type":"response-data"}}],` +
			`"edges":[{"id":"e","source":"t","target":"a","sourceHandle":null}]}`)},
	})
}

// ---------------------------------------------------------------------------
// bad-reference

func TestBadReference(t *testing.T) {
	tr := CN{ID: "t", Type: "trigger-manual"}
	chat := func(id, prompt string) CN {
		return CN{ID: id, Type: "ai-chat", Config: with("ai-chat", "prompt", prompt)}
	}
	runChecks(t, []checkCase{
		{name: "reserved roots", graph: graphOf([]CN{tr, chat("a",
			"{{trigger.x}} {{input.q}} {{vars.v}} {{conversation.id}} {{contact.name}} {{execution.id}} {{flow.name}} {{now}}")},
			[]E{{ID: "e", Source: "t", Target: "a"}})},
		{name: "upstream node", graph: graphOf([]CN{tr, chat("a", "x"), chat("b", "{{a.response}} {{ t.input }}")},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "b"}})},
		{name: "upstream through several hops and a hyphenated id", graph: graphOf([]CN{tr, chat("ai-1", "x"), chat("b", "x"), chat("c", `{{nodes["ai-1"].response}} {{ai-1.model}}`)},
			[]E{{ID: "e1", Source: "t", Target: "ai-1"}, {ID: "e2", Source: "ai-1", Target: "b"}, {ID: "e3", Source: "b", Target: "c"}})},
		{name: "unknown root", graph: graphOf([]CN{tr, chat("a", "Hi {{ghost.response}}")}, []E{{ID: "e", Source: "t", Target: "a"}}),
			want: errs("bad-reference", "/data/nodes/1/data/config/prompt"), msg: `"ghost"`},
		{name: "node ids match exactly, no prefixes", graph: graphOf([]CN{tr, chat("http_1", "x"), chat("b", "{{http.body}}")},
			[]E{{ID: "e1", Source: "t", Target: "http_1"}, {ID: "e2", Source: "http_1", Target: "b"}}),
			want: errs("bad-reference", "/data/nodes/2/data/config/prompt")},
		{name: "nodes root with an unknown id", graph: graphOf([]CN{tr, chat("a", `{{nodes["zz"].response}}`)}, []E{{ID: "e", Source: "t", Target: "a"}}),
			want: errs("bad-reference", "/data/nodes/1/data/config/prompt"), msg: `"zz"`},
		{name: "a default does not excuse an unknown root", graph: graphOf([]CN{tr, chat("a", "{{ghost.x ?? 1}}")}, []E{{ID: "e", Source: "t", Target: "a"}}),
			want: errs("bad-reference", "/data/nodes/1/data/config/prompt")},
		{name: "not upstream: a sibling", graph: graphOf([]CN{tr, chat("a", "x"), chat("b", "{{a.response}}")},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "t", Target: "b"}}),
			want: []issue{warn("/data/nodes/2/data/config/prompt")}, msg: "not upstream"},
		{name: "not upstream: downstream", graph: graphOf([]CN{tr, chat("a", "{{b.response}}"), chat("b", "x")},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "a", Target: "b"}}),
			want: []issue{warn("/data/nodes/1/data/config/prompt")}},
		{name: "not upstream: through nodes root", graph: graphOf([]CN{tr, chat("a", "x"), chat("b", "{{nodes.a.response}}")},
			[]E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "t", Target: "b"}}),
			want: []issue{warn("/data/nodes/2/data/config/prompt")}},
		{name: "itself", graph: graphOf([]CN{tr, chat("a", "{{a.response}}")}, []E{{ID: "e", Source: "t", Target: "a"}}),
			want: []issue{warn("/data/nodes/1/data/config/prompt")}, msg: "itself"},
		{name: "references everywhere templated", graph: graphOf([]CN{tr,
			{ID: "h", Type: "action-http", Config: with("action-http", "url", "https://x/{{g1}}", "query", map[string]any{"q": "{{g2.a}}"}, "headers", map[string]any{"H": "{{g3}}"},
				"body", map[string]any{"list": []any{"{{g4}}"}})},
			{ID: "s", Type: "logic-switch", Config: map[string]any{"value": "{{g5}}", "cases": []any{map[string]any{"id": "a", "operator": "equals", "compare_to": "{{g6}}"}}}}},
			[]E{{ID: "e1", Source: "t", Target: "h"}, {ID: "e2", Source: "h", Target: "s"}}),
			want: errs("bad-reference", "/data/nodes/1/data/config/url", "bad-reference", "/data/nodes/1/data/config/query/q",
				"bad-reference", "/data/nodes/1/data/config/headers/H", "bad-reference", "/data/nodes/1/data/config/body/list/0",
				"bad-reference", "/data/nodes/2/data/config/value", "bad-reference", "/data/nodes/2/data/config/cases/0/compare_to")},
		{name: "non-templated fields are not resolved", graph: graphOf([]CN{tr, {ID: "r", Type: "response-data", Config: map[string]any{"headers": map[string]any{"X": "{{ghost}}"}}}},
			[]E{{ID: "e", Source: "t", Target: "r"}})},
	})
}

// ---------------------------------------------------------------------------
// missing-config (completeness)

func TestMissingConfig(t *testing.T) {
	miss := func(ptrs ...string) []issue {
		var out []issue
		for _, p := range ptrs {
			out = append(out, issue{"missing-config", "/data/nodes/1/data/config" + p, flow.SeverityError})
		}
		return out
	}
	runChecks(t, []checkCase{
		{name: "no config at all", graph: one("ai-chat", nil, nil), want: miss("/prompt"), msg: "prompt"},
		{name: "blank prompt", graph: one("ai-chat", map[string]any{"prompt": "  "}, nil), want: miss("/prompt")},
		{name: "null prompt", graph: one("ai-openai", map[string]any{"prompt": nil}, nil), want: miss("/prompt")},
		{name: "every required key of classify", graph: one("ai-classify", map[string]any{}, nil), want: miss("/text", "/categories")},
		{name: "empty categories list", graph: one("ai-classify", map[string]any{"text": "x", "categories": []any{}}, nil), want: miss("/categories")},
		{name: "content writer", graph: one("ai-content-writer", map[string]any{"tone": "casual"}, nil), want: miss("/content_type", "/topic")},
		{name: "http url", graph: one("action-http", map[string]any{"method": "POST"}, nil), want: miss("/url")},
		{name: "condition", graph: one("logic-condition", map[string]any{}, nil), want: miss("/condition_type", "/value1", "/value2")},
		{name: "condition value2", graph: one("logic-condition", map[string]any{"condition_type": "equals", "value1": "a"}, nil), want: miss("/value2"), msg: "is_empty"},
		{name: "condition value2 not needed", graph: one("logic-condition", map[string]any{"condition_type": "is_empty", "value1": "a"}, nil)},
		{name: "condition value2 zero is a value", graph: one("logic-condition", map[string]any{"condition_type": "equals", "value1": "a", "value2": 0}, nil)},
		{name: "switch", graph: one("logic-switch", map[string]any{}, nil), want: miss("/value", "/cases")},
		{name: "switch case without id and operator", graph: one("logic-switch", map[string]any{"value": "x", "cases": []any{map[string]any{"compare_to": "a"}}}, nil),
			want: miss("/cases/0/id", "/cases/0/operator")},
		{name: "transform", graph: one("logic-transform", map[string]any{"mappings": map[string]any{}}, nil), want: miss("/mappings")},
		{name: "transform with an empty expression", graph: one("logic-transform", map[string]any{"mappings": map[string]any{"a": "1", "b": " ", "c": nil}}, nil),
			want: miss("/mappings/b", "/mappings/c")},
		{name: "set-variable", graph: one("logic-set-variable", nil, nil), want: miss("/variables")},
		{name: "delay", graph: one("logic-delay", map[string]any{}, nil), want: miss("/duration_seconds"), msg: "until"},
		{name: "input field without a key", graph: graphOf([]CN{{ID: "t", Type: "trigger-manual", Config: map[string]any{"inputFields": []any{map[string]any{"label": "Q"}}}}}, nil),
			want: []issue{{"missing-config", "/data/nodes/0/data/config/inputFields/0/key", flow.SeverityError}}},
		{name: "schedule", graph: graphOf([]CN{{ID: "s", Type: "trigger-schedule", Config: map[string]any{"timezone": "UTC"}}}, nil),
			want: []issue{{"missing-config", "/data/nodes/0/data/config/schedule", flow.SeverityError}}},
		{name: "with missing-trigger and unreachable, in node order", graph: graphOf([]CN{{ID: "a", Type: "ai-chat"}, {ID: "b", Type: "logic-delay"}}, nil),
			want: []issue{{"missing-trigger", "/data/nodes", "error"}, {"missing-config", "/data/nodes/0/data/config/prompt", "error"},
				{"missing-config", "/data/nodes/1/data/config/duration_seconds", "error"}}},
		{name: "unknown types are not checked for config", graph: one("nope", nil, nil), want: errs("unknown-node-type", "/data/nodes/1/data/type")},
	})
}

// ---------------------------------------------------------------------------
// Everything at once, in a stable order

func TestChecksOrderAndWarningsOnlyInValidate(t *testing.T) {
	graph := graphOf([]CN{
		{ID: "t", Type: "trigger-manual"},
		{ID: "x", Type: "action-code"},
		{ID: "a", Type: "ai-chat", Config: map[string]any{"prompt": "{{b.response}} {{ghost}}", "temperature": 9}},
		{ID: "b", Type: "logic-condition", Config: map[string]any{"condition_type": "equals", "value1": "1"}},
	}, []E{{ID: "e1", Source: "t", Target: "a"}, {ID: "e2", Source: "t", Target: "b"}, {ID: "e3", Source: "b", Target: "x", Handle: "yes"}})
	g := mustParse(t, graph)
	want := []issue{
		{"unknown-node-type", "/data/nodes/1/data/type", "error"},
		{"bad-handle", "/data/edges/2/sourceHandle", "error"},
		{"bad-reference", "/data/nodes/2/data/config/prompt", "warning"},
		{"bad-reference", "/data/nodes/2/data/config/prompt", "error"},
		{"bad-config", "/data/nodes/2/data/config/temperature", "error"},
		{"missing-config", "/data/nodes/3/data/config/value2", "error"},
	}
	got := issuesOf(g.Validate("/data", len(graph), defaultLimits))
	if !slices.Equal(got, want) {
		t.Fatalf("Validate:\n got  %v\n want %v", got, want)
	}
	for range 2 { // stable across runs (map iteration must not leak into the order)
		if again := issuesOf(g.Validate("/data", len(graph), defaultLimits)); !slices.Equal(again, got) {
			t.Fatalf("Validate is not deterministic:\n %v\n %v", got, again)
		}
	}
	for _, is := range g.CheckStructure("/data", len(graph), defaultLimits) {
		if is.Severity != flow.SeverityError {
			t.Errorf("CheckStructure returned a %s: %+v", is.Severity, is)
		}
	}
}

func TestValidateAllocations(t *testing.T) {
	doc := benchGraph()
	g := mustParse(t, doc)
	allocs := testing.AllocsPerRun(5, func() { _ = g.Validate("/data", len(doc), defaultLimits) })
	// 200 nodes, 500 edges: a few allocations per node and edge, not per byte.
	if allocs > 6000 {
		t.Errorf("Validate on the 200-node bench graph allocates %.0f times", allocs)
	}
}

func BenchmarkValidate(b *testing.B) {
	doc := benchGraph()
	g := mustParse(b, doc)
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Validate("/data", len(doc), defaultLimits)
	}
}

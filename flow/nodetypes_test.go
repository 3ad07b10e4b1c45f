package flow_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/flow"
)

// happyConfigs is, for every registered node type, a config that passes every check. Each one sets
// as many keys as is reasonable, so that a check rejecting a valid value shows up here. minimalConfigs
// is the smallest complete config, used by the graph-shape tests.
var happyConfigs = map[string]map[string]any{
	"trigger-manual": {"inputFields": []any{
		map[string]any{"key": "q", "label": "Question", "type": "text", "required": true, "default": "hi"},
		map[string]any{"key": "n_2", "type": "number", "default": 3},
		map[string]any{"key": "_flag", "type": "boolean", "default": false},
		map[string]any{"key": "payload", "type": "json", "default": map[string]any{"a": []any{1}}, "_ui": "kept"},
	}, "_note": "UI metadata is kept and ignored"},
	"trigger-webhook":  {"response_mode": "last_node"},
	"trigger-schedule": {"schedule": "*/15 9-17 * * MON-FRI", "timezone": "Europe/Paris"},
	"ai-chat": {"prompt": "Answer {{input.q}} for {{trigger.triggered_by}}", "system_prompt": "Be brief.", "model": "gpt-4o-mini",
		"temperature": 0.2, "max_tokens": 8192, "integration_id": 3, "use_conversation_history": true, "history_messages": 50, "json_output": false},
	"ai-gemini":   {"prompt": "Hi", "model": "gemini-2.5-pro", "temperature": 0, "max_tokens": 1},
	"ai-openai":   {"prompt": "Hi", "model": "gpt-4o", "temperature": 2},
	"ai-classify": {"text": "{{input.q}}", "categories": []any{"sales", "support", "Billing issue"}, "model": "gemini-2.5-flash", "instructions": "Pick one."},
	"ai-content-writer": {"content_type": "ad_copy", "topic": "Shoes for {{input.q}}", "tone": "humorous", "length": "long",
		"model": "gemini-2.5-flash"},
	"action-http": {"url": "https://api.example.com/items/{{input.q}}", "method": "POST",
		"query":     map[string]any{"page": "1", "q": "{{input.q}}", "n": 2, "raw": true},
		"headers":   map[string]any{"Authorization": "Bearer {{vars.token}}", "X-Trace/Id~": "{{execution.id}}"},
		"body_type": "json", "body": map[string]any{"items": []any{"{{input.q}}", 1, nil}, "meta": map[string]any{"at": "{{now}}"}},
		"timeout_ms": 60000, "fail_on_status": false, "response_type": "text"},
	"logic-condition": {"condition_type": "greater_than", "value1": "{{input.n_2}}", "value2": 2, "case_sensitive": true},
	"logic-switch": {"value": "{{input.q}}", "cases": []any{
		map[string]any{"id": "high", "operator": "equals", "compare_to": "high"},
		map[string]any{"id": "is-empty_2", "operator": "is_empty"},
		map[string]any{"id": "num", "operator": "greater_than", "compare_to": 10},
	}},
	"logic-transform":    {"mappings": map[string]any{"total": `input.n_2 * 2`, "name": `"x-" + string(input.q)`}},
	"logic-set-variable": {"variables": map[string]any{"count": "1", "greeting": `"hello"`}},
	"logic-delay":        {"until": "2030-01-01T09:00:00Z"},
	"response-data":      {"status": 201, "body": map[string]any{"answer": "{{input.q}}"}, "headers": map[string]any{"X-Run": "1"}},
}

var minimalConfigs = map[string]map[string]any{
	"trigger-manual":     {},
	"trigger-webhook":    {},
	"trigger-schedule":   {"schedule": "@daily"},
	"ai-chat":            {"prompt": "Hello"},
	"ai-gemini":          {"prompt": "Hello"},
	"ai-openai":          {"prompt": "Hello"},
	"ai-classify":        {"text": "hello", "categories": "yes, no"},
	"ai-content-writer":  {"content_type": "caption", "topic": "cats"},
	"action-http":        {"url": "https://example.com"},
	"logic-condition":    {"condition_type": "is_not_empty", "value1": "x"},
	"logic-switch":       {"value": "x", "cases": []any{map[string]any{"id": "a", "operator": "equals", "compare_to": "x"}}},
	"logic-transform":    {"mappings": map[string]any{"x": "1"}},
	"logic-set-variable": {"variables": map[string]any{"x": "1"}},
	"logic-delay":        {"duration_seconds": 1},
	"response-data":      {},
}

var wantTypes = []string{
	"trigger-manual", "trigger-schedule", "trigger-webhook",
	"ai-chat", "ai-classify", "ai-content-writer", "ai-gemini", "ai-openai",
	"action-http",
	"logic-condition", "logic-delay", "logic-set-variable", "logic-switch", "logic-transform",
	"response-data",
}

func TestNodeTypesCatalogue(t *testing.T) {
	types := flow.NodeTypes()
	ids := make([]string, len(types))
	for i, nt := range types {
		ids[i] = nt.ID
	}
	if !slices.Equal(ids, wantTypes) {
		t.Fatalf("NodeTypes() ids (in order) =\n %v\nwant\n %v", ids, wantTypes)
	}
	cats := flow.NodeCategories()
	if len(cats) != 5 {
		t.Fatalf("NodeCategories() has %d items, want 5", len(cats))
	}
	catIDs := make([]string, len(cats))
	for i, c := range cats {
		catIDs[i] = c.ID
		if c.Label == "" || !strings.HasPrefix(c.Color, "#") {
			t.Errorf("category %+v lacks a label or a colour", c)
		}
	}
	if !slices.Equal(catIDs, []string{"trigger", "ai", "action", "logic", "response"}) {
		t.Errorf("category ids = %v", catIDs)
	}
	used := map[string]bool{}
	seen := map[string]bool{}
	for _, nt := range types {
		t.Run(nt.ID, func(t *testing.T) {
			if seen[nt.ID] {
				t.Fatalf("duplicate id %s", nt.ID)
			}
			seen[nt.ID] = true
			used[nt.Category] = true
			if !slices.Contains(catIDs, nt.Category) {
				t.Errorf("category %q is not one of %v", nt.Category, catIDs)
			}
			if flow.IsTrigger(nt.ID) != (nt.Category == "trigger") {
				t.Errorf("IsTrigger(%s) disagrees with category %s", nt.ID, nt.Category)
			}
			if nt.Label == "" || nt.Icon == "" || nt.Color == "" || nt.Description == "" || nt.SchemaVersion < 1 {
				t.Errorf("incomplete display fields: %+v", nt)
			}
			if nt.OutputSchema == nil || nt.OutputSchema["type"] != "object" {
				t.Errorf("OutputSchema = %v, want a JSON Schema of an object", nt.OutputSchema)
			}
			if _, err := json.Marshal(nt.OutputSchema); err != nil {
				t.Errorf("OutputSchema does not marshal: %v", err)
			}
			if len(nt.Outputs) == 0 {
				t.Errorf("no static outputs")
			}
			if (nt.DynamicOutputs != "") != (nt.ID == "ai-classify" || nt.ID == "logic-switch") {
				t.Errorf("DynamicOutputs = %q", nt.DynamicOutputs)
			}
			wantPure := nt.Category == "trigger" || nt.Category == "logic" || nt.Category == "response"
			if nt.Pure != wantPure {
				t.Errorf("Pure = %v, want %v", nt.Pure, wantPure)
			}
			checkProperties(t, nt.ID, nt.Properties, false)
			got, ok := flow.LookupNodeType(nt.ID)
			if !ok || got.ID != nt.ID || got.Label != nt.Label {
				t.Errorf("LookupNodeType(%s) = %v, %v", nt.ID, got.ID, ok)
			}
		})
	}
	for _, c := range catIDs {
		if !used[c] {
			t.Errorf("category %s has no node type", c)
		}
	}
	for typ, hint := range flow.RemovedNodeTypes {
		if _, ok := flow.LookupNodeType(typ); ok {
			t.Errorf("removed type %s is registered", typ)
		}
		if hint == "" {
			t.Errorf("removed type %s has no hint", typ)
		}
	}
	if len(flow.RemovedNodeTypes) != 5 {
		t.Errorf("RemovedNodeTypes has %d entries, want the 5 of PRODUCT §6.2", len(flow.RemovedNodeTypes))
	}
	for _, later := range []string{"trigger-message", "action-send-message", "ai-knowledge", "logic-wait-reply", "human-handoff", ""} {
		if _, ok := flow.LookupNodeType(later); ok {
			t.Errorf("%q is registered, but it does not run yet", later)
		}
	}
	// NodeTypes returns a copy: changing it does not change the registry.
	types[0].ID = "changed"
	if flow.NodeTypes()[0].ID != wantTypes[0] {
		t.Errorf("NodeTypes() exposes the registry slice")
	}
}

func checkProperties(t *testing.T, owner string, props []flow.Property, item bool) {
	t.Helper()
	names := map[string]bool{}
	for _, p := range props {
		if names[p.Name] || p.Name == "" || strings.HasPrefix(p.Name, "_") {
			t.Errorf("%s: bad or duplicate property name %q", owner, p.Name)
		}
		names[p.Name] = true
		if !slices.Contains(flow.PropertyTypes, p.Type) {
			t.Errorf("%s.%s: type %q is not one of %v", owner, p.Name, p.Type, flow.PropertyTypes)
		}
		if p.Label == "" {
			t.Errorf("%s.%s: no label", owner, p.Name)
		}
		if (p.Type == "list") != (len(p.ItemProperties) > 0) {
			t.Errorf("%s.%s: item properties go with type list", owner, p.Name)
		}
		if p.Type == "select" || p.Type == "multi-select" {
			if (len(p.Options) == 0) == (p.OptionsSource == "") {
				t.Errorf("%s.%s: a select needs options or an options source (not both)", owner, p.Name)
			}
		} else if len(p.Options) > 0 || p.OptionsSource != "" {
			t.Errorf("%s.%s: options on a %s property", owner, p.Name, p.Type)
		}
		if (p.Min != nil || p.Max != nil) && p.Type != "number" {
			t.Errorf("%s.%s: min/max on a %s property", owner, p.Name, p.Type)
		}
		if p.Default != nil {
			switch p.Type {
			case "number":
				f, ok := toFloat(p.Default)
				if !ok || (p.Min != nil && f < *p.Min) || (p.Max != nil && f > *p.Max) {
					t.Errorf("%s.%s: default %v is outside its range", owner, p.Name, p.Default)
				}
			case "boolean":
				if _, ok := p.Default.(bool); !ok {
					t.Errorf("%s.%s: default %v is not a boolean", owner, p.Name, p.Default)
				}
			case "select":
				s, _ := p.Default.(string)
				if len(p.Options) > 0 && !slices.ContainsFunc(p.Options, func(o flow.Option) bool { return o.Value == s }) {
					t.Errorf("%s.%s: default %v is not an option", owner, p.Name, p.Default)
				}
			}
		}
		if p.Type == "list" {
			if item {
				t.Errorf("%s.%s: nested lists", owner, p.Name)
			}
			checkProperties(t, owner+"."+p.Name, p.ItemProperties, true)
		}
	}
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func TestNodeTypesMatchProductTable(t *testing.T) {
	// The config keys, required keys and templated keys of PRODUCT §6.3.
	want := map[string]struct{ keys, required, templated string }{
		"trigger-manual":     {"inputFields", "", ""},
		"trigger-webhook":    {"response_mode", "", ""},
		"trigger-schedule":   {"schedule timezone", "schedule", ""},
		"ai-chat":            {"prompt system_prompt model temperature max_tokens integration_id use_conversation_history history_messages json_output", "prompt", "prompt system_prompt"},
		"ai-gemini":          {"prompt system_prompt model temperature max_tokens integration_id use_conversation_history history_messages json_output", "prompt", "prompt system_prompt"},
		"ai-openai":          {"prompt system_prompt model temperature max_tokens integration_id use_conversation_history history_messages json_output", "prompt", "prompt system_prompt"},
		"ai-classify":        {"text categories model instructions", "text categories", "text"},
		"ai-content-writer":  {"content_type topic tone length model", "content_type topic", "topic"},
		"action-http":        {"url method query headers body_type body timeout_ms fail_on_status response_type", "url", "url query headers body"},
		"logic-condition":    {"condition_type value1 value2 case_sensitive", "condition_type value1", "value1 value2"},
		"logic-switch":       {"value cases", "value cases", "value"},
		"logic-transform":    {"mappings", "mappings", ""},
		"logic-set-variable": {"variables", "variables", ""},
		"logic-delay":        {"duration_seconds until", "", "until"},
		"response-data":      {"status body headers", "", "body"},
	}
	for id, w := range want {
		nt, ok := flow.LookupNodeType(id)
		if !ok {
			t.Errorf("%s is not registered", id)
			continue
		}
		var keys, req, tpl []string
		for _, p := range nt.Properties {
			keys = append(keys, p.Name)
			if p.Required {
				req = append(req, p.Name)
			}
			if p.Templated {
				tpl = append(tpl, p.Name)
			}
		}
		if got := strings.Join(keys, " "); got != w.keys {
			t.Errorf("%s keys = %q, want %q", id, got, w.keys)
		}
		if got := strings.Join(req, " "); got != w.required {
			t.Errorf("%s required = %q, want %q", id, got, w.required)
		}
		if got := strings.Join(tpl, " "); got != w.templated {
			t.Errorf("%s templated = %q, want %q", id, got, w.templated)
		}
	}
	defaults := map[string]map[string]any{
		"ai-gemini":       {"model": "gemini-2.5-flash", "temperature": 0.7, "max_tokens": 1024, "history_messages": 10},
		"ai-openai":       {"model": "gpt-4o"},
		"action-http":     {"method": "GET", "timeout_ms": 15000, "fail_on_status": true, "response_type": "auto"},
		"response-data":   {"status": 200},
		"trigger-webhook": {"response_mode": "immediate"},
	}
	for id, d := range defaults {
		nt, _ := flow.LookupNodeType(id)
		for _, p := range nt.Properties {
			if want, ok := d[p.Name]; ok && !reflect.DeepEqual(p.Default, want) {
				t.Errorf("%s.%s default = %#v, want %#v", id, p.Name, p.Default, want)
			}
		}
	}
	sw, _ := flow.LookupNodeType("logic-switch")
	ops := sw.Properties[1].ItemProperties[1].Options
	var values []string
	for _, o := range ops {
		values = append(values, o.Value)
	}
	if want := []string{"equals", "not_equals", "contains", "greater_than", "less_than", "is_empty", "is_not_empty"}; !slices.Equal(values, want) {
		t.Errorf("switch operators = %v, want %v", values, want)
	}
}

func TestOutputHandles(t *testing.T) {
	mk := func(typ string, cfg map[string]any, onError string) map[string]any {
		d := map[string]any{"type": typ, "config": cfg}
		if onError != "" {
			d["on_error"] = onError
		}
		return map[string]any{"id": "n", "data": d}
	}
	tests := []struct {
		name string
		node map[string]any
		want []string
	}{
		{"classify list", mk("ai-classify", map[string]any{"categories": []any{"sales", "support"}}, ""), []string{"sales", "support", "fallback"}},
		{"classify comma string", mk("ai-classify", map[string]any{"categories": " sales ,support,, "}, ""), []string{"sales", "support", "fallback"}},
		{"classify duplicates once", mk("ai-classify", map[string]any{"categories": []any{"a", "a", 3}}, ""), []string{"a", "fallback"}},
		{"classify without categories", mk("ai-classify", nil, ""), []string{"fallback"}},
		{"classify with branch", mk("ai-classify", map[string]any{"categories": []any{"x", "y"}}, "branch"), []string{"x", "y", "fallback", "error"}},
		{"switch", mk("logic-switch", map[string]any{"cases": []any{map[string]any{"id": "hi"}, map[string]any{"id": "lo"}, map[string]any{}}}, ""), []string{"hi", "lo", "default"}},
		{"switch with branch", mk("logic-switch", map[string]any{"cases": []any{map[string]any{"id": "a"}}}, "branch"), []string{"a", "default", "error"}},
		{"condition", mk("logic-condition", nil, ""), []string{"true", "false"}},
		{"condition with branch", mk("logic-condition", nil, "branch"), []string{"true", "false", "error"}},
		{"chat", mk("ai-chat", nil, ""), []string{"out"}},
		{"chat with continue", mk("ai-chat", nil, "continue"), []string{"out"}},
		{"chat with branch", mk("ai-chat", nil, "branch"), []string{"out", "error"}},
		{"trigger", mk("trigger-manual", nil, "stop"), []string{"out"}},
		{"unknown type", mk("nope", nil, "branch"), nil},
		{"no data", map[string]any{"id": "x"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := flow.OutputHandles(tc.node); !slices.Equal(got, tc.want) {
				t.Errorf("OutputHandles = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNodeSettings(t *testing.T) {
	def := flow.RetryPolicy{MaxAttempts: 1, Backoff: time.Second, Exponential: true}
	tests := []struct {
		name    string
		data    map[string]any
		onError string
		retry   flow.RetryPolicy
	}{
		{"absent", map[string]any{}, "stop", def},
		{"no data", nil, "stop", def},
		{"continue", map[string]any{"on_error": "continue"}, "continue", def},
		{"branch", map[string]any{"on_error": "branch"}, "branch", def},
		{"unknown on_error", map[string]any{"on_error": "explode"}, "stop", def},
		{"full retry", map[string]any{"retry": map[string]any{"max_attempts": json.Number("5"), "backoff_ms": json.Number("250"), "exponential": false}},
			"stop", flow.RetryPolicy{MaxAttempts: 5, Backoff: 250 * time.Millisecond, Exponential: false}},
		{"partial retry", map[string]any{"retry": map[string]any{"max_attempts": 3}}, "stop", flow.RetryPolicy{MaxAttempts: 3, Backoff: time.Second, Exponential: true}},
		{"out of range falls back", map[string]any{"retry": map[string]any{"max_attempts": 9, "backoff_ms": 10, "exponential": "no"}}, "stop", def},
		{"fractional falls back", map[string]any{"retry": map[string]any{"max_attempts": 2.5, "backoff_ms": 60000.0}}, "stop",
			flow.RetryPolicy{MaxAttempts: 1, Backoff: time.Minute, Exponential: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := map[string]any{"id": "a"}
			if tc.data != nil {
				n["data"] = tc.data
			}
			onError, retry := flow.NodeSettings(n)
			if onError != tc.onError || retry != tc.retry {
				t.Errorf("NodeSettings = %q, %+v; want %q, %+v", onError, retry, tc.onError, tc.retry)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		in   map[string]any
		want map[string]any
	}{
		{"ai-chat leaves the precedence keys absent", "ai-chat", map[string]any{"prompt": "hi", "_ui": 1},
			map[string]any{"prompt": "hi", "use_conversation_history": false, "history_messages": 10, "json_output": false}},
		{"ai-openai keeps given values", "ai-openai", map[string]any{"prompt": "hi", "model": "gpt-4o-mini", "temperature": 0.1, "history_messages": nil},
			map[string]any{"prompt": "hi", "model": "gpt-4o-mini", "temperature": 0.1, "use_conversation_history": false, "history_messages": 10, "json_output": false}},
		{"ai-classify normalises categories", "ai-classify", map[string]any{"text": "t", "categories": "a, b ,,c"},
			map[string]any{"text": "t", "categories": []any{"a", "b", "c"}}},
		{"ai-content-writer fills tone and length, not model", "ai-content-writer", map[string]any{"content_type": "caption", "topic": "x"},
			map[string]any{"content_type": "caption", "topic": "x", "tone": "professional", "length": "medium"}},
		{"action-http GET", "action-http", map[string]any{"url": "https://x"},
			map[string]any{"url": "https://x", "method": "GET", "body_type": "none", "timeout_ms": 15000, "fail_on_status": true, "response_type": "auto"}},
		{"action-http POST body defaults to json", "action-http", map[string]any{"url": "https://x", "method": "POST"},
			map[string]any{"url": "https://x", "method": "POST", "body_type": "json", "timeout_ms": 15000, "fail_on_status": true, "response_type": "auto"}},
		{"action-http explicit body type", "action-http", map[string]any{"url": "https://x", "method": "PUT", "body_type": "text", "timeout_ms": 1000},
			map[string]any{"url": "https://x", "method": "PUT", "body_type": "text", "timeout_ms": 1000, "fail_on_status": true, "response_type": "auto"}},
		{"list items get their defaults", "trigger-manual", map[string]any{"inputFields": []any{map[string]any{"key": "a", "_x": 1}, map[string]any{"key": "b", "type": "number"}}},
			map[string]any{"inputFields": []any{map[string]any{"key": "a", "type": "text", "required": false}, map[string]any{"key": "b", "type": "number", "required": false}}}},
		{"condition", "logic-condition", map[string]any{"condition_type": "equals", "value1": "a", "value2": "b"},
			map[string]any{"condition_type": "equals", "value1": "a", "value2": "b", "case_sensitive": false}},
		{"response-data", "response-data", nil, map[string]any{"status": 200}},
		{"nil config of a type without defaults", "logic-transform", nil, map[string]any{}},
		{"unknown type: only drops _ keys", "nope", map[string]any{"a": 1, "_b": 2}, map[string]any{"a": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if tc.in != nil {
				before, _ = json.Marshal(tc.in)
			}
			got := flow.WithDefaults(tc.typ, tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("WithDefaults =\n %#v\nwant\n %#v", got, tc.want)
			}
			if tc.in != nil {
				after, _ := json.Marshal(tc.in)
				if string(after) != string(before) {
					t.Errorf("WithDefaults changed its input: %s → %s", before, after)
				}
			}
		})
	}
	// Every registered type: the AI precedence keys are never filled; every other default is.
	for _, nt := range flow.NodeTypes() {
		got := flow.WithDefaults(nt.ID, map[string]any{})
		for _, p := range nt.Properties {
			_, filled := got[p.Name]
			precedence := nt.Category == "ai" && slices.Contains([]string{"model", "temperature", "max_tokens", "system_prompt"}, p.Name)
			if precedence && filled {
				t.Errorf("%s: WithDefaults filled %s", nt.ID, p.Name)
			}
			if !precedence && p.Default != nil && !filled {
				t.Errorf("%s: WithDefaults did not fill %s", nt.ID, p.Name)
			}
		}
	}
}

func TestNodeAccessors(t *testing.T) {
	n := map[string]any{"id": "a1", "data": map[string]any{"type": "ai-chat", "config": map[string]any{"prompt": "x"}}}
	if flow.NodeID(n) != "a1" || flow.NodeTypeOf(n) != "ai-chat" || flow.NodeLabel(n) != "AI chat" {
		t.Errorf("accessors: %q %q %q", flow.NodeID(n), flow.NodeTypeOf(n), flow.NodeLabel(n))
	}
	if !maps.Equal(flow.NodeConfig(n), map[string]any{"prompt": "x"}) {
		t.Errorf("NodeConfig = %v", flow.NodeConfig(n))
	}
	n["data"].(map[string]any)["label"] = "Mine"
	if flow.NodeLabel(n) != "Mine" {
		t.Errorf("NodeLabel ignores data.label")
	}
	odd := map[string]any{"id": 7, "data": map[string]any{"type": "zz", "config": "x"}}
	if flow.NodeID(odd) != "" || flow.NodeLabel(odd) != "zz" || flow.NodeConfig(odd) != nil {
		t.Errorf("accessors on an odd node: %q %q %v", flow.NodeID(odd), flow.NodeLabel(odd), flow.NodeConfig(odd))
	}
}

func TestParseSchedule(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	from := time.Date(2026, 3, 10, 10, 7, 0, 0, time.UTC) // a Tuesday
	tests := []struct {
		spec string
		loc  *time.Location
		next time.Time // zero: invalid
	}{
		{"@hourly", nil, time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)},
		{"@daily", nil, time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{"@weekly", nil, time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)},
		{"@monthly", nil, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"*/15 * * * *", nil, time.Date(2026, 3, 10, 10, 15, 0, 0, time.UTC)},
		{" 0 9 * * MON-FRI ", paris, time.Date(2026, 3, 11, 8, 0, 0, 0, time.UTC)},
		{"@yearly", nil, time.Time{}},
		{"@every 5m", nil, time.Time{}},
		{"@midnight", nil, time.Time{}},
		{"* * * *", nil, time.Time{}},
		{"0 * * * * *", nil, time.Time{}},
		{"61 * * * *", nil, time.Time{}},
		{"*/0 * * * *", nil, time.Time{}},
		{"TZ=UTC 0 * * * *", nil, time.Time{}},
		{"TZ=UTC", nil, time.Time{}},
		{"CRON_TZ=Europe/Paris 0 9 * * *", nil, time.Time{}},
		{"", nil, time.Time{}},
		{"   ", nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := flow.ParseSchedule(tc.spec, tc.loc)
			if tc.next.IsZero() {
				if err == nil {
					t.Fatalf("ParseSchedule(%q) accepted an invalid schedule", tc.spec)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSchedule(%q): %v", tc.spec, err)
			}
			if got := s.Next(from); !got.Equal(tc.next) {
				t.Errorf("Next(%v) = %v, want %v", from, got, tc.next)
			}
		})
	}
}

package flow

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/flow/expr"
)

// NodeType is one entry of the node-type catalogue (PRODUCT §5.4, §6.3). The registry below is the one
// source that both GET /node-types and the executor read, so what the editor shows is what runs.
type NodeType struct {
	ID, Label, Category, Icon, Color, Description string // Category: trigger|ai|action|logic|response
	SchemaVersion                                 int
	Deprecated                                    bool
	Properties                                    []Property
	Outputs                                       []Output       // static outputs; dynamic ones come from OutputHandles
	OutputSchema                                  map[string]any // JSON Schema of the output object (§6.3 "Output object")
	Pure                                          bool           // no side effects and no waiting: the engine may batch its persistence
	DynamicOutputs                                string         // "" | "categories" (ai-classify) | "cases" (logic-switch)

	handles, handlesBranch []string // the static handles, without and with the error handle (set by init)
}

// Property is one config field of a node type.
type Property struct {
	Name, Label, Type        string // one of PropertyTypes
	Required                 bool
	Default                  any
	Placeholder, Description string
	Options                  []Option
	OptionsSource            string // ai-models | ai-models:gemini | ai-models:openai | …
	Min, Max                 *float64
	Templated                bool
	ItemProperties           []Property // for "list" properties (inputFields, cases)

	integer  bool // a number property that takes whole numbers only
	scalar   bool // a text property that also takes a JSON number or boolean (condition operands)
	cel      bool // a key-value property whose values are CEL expressions
	maxItems int  // for list, string-list and key-value properties: at most this many entries (0: no limit)
	minItems int  // at least this many entries when present
}

// Option is one choice of a select or multi-select property.
type Option struct{ Value, Label string }

// Output is one static output handle of a node type.
type Output struct{ Handle, Label string }

// NodeCategory groups node types in the editor's palette.
type NodeCategory struct{ ID, Label, Color string }

// PropertyTypes are the editor widgets a property may ask for (PRODUCT §5.4, plus "list" for
// structured arrays described by ItemProperties).
var PropertyTypes = []string{
	"text", "textarea", "select", "multi-select", "number", "boolean", "key-value", "json", "expression",
	"cron", "timezone", "string-list", "list",
}

// Error-handling modes of data.on_error (PRODUCT §6.1, §6.5).
const (
	OnErrorStop     = "stop"
	OnErrorContinue = "continue"
	OnErrorBranch   = "branch"
)

// Handles with a fixed meaning.
const (
	HandleOut      = "out"
	HandleError    = "error"
	HandleFallback = "fallback" // ai-classify: no category matched
	HandleDefault  = "default"  // logic-switch: no case matched
	HandleTrue     = "true"
	HandleFalse    = "false"
)

var categories = []NodeCategory{
	{ID: "trigger", Label: "Triggers", Color: "#10b981"},
	{ID: "ai", Label: "AI", Color: "#8b5cf6"},
	{ID: "action", Label: "Actions", Color: "#3b82f6"},
	{ID: "logic", Label: "Logic", Color: "#f59e0b"},
	{ID: "response", Label: "Response", Color: "#64748b"},
}

// NodeCategories returns the five palette categories, in display order.
func NodeCategories() []NodeCategory { return slices.Clone(categories) }

// RemovedNodeTypes are node types of the reference that no longer exist, each with a hint naming the
// replacement (PRODUCT §6.2 unknown-node-type).
var RemovedNodeTypes = map[string]string{
	"action-code":         "user code no longer runs; use logic-transform, whose mappings are CEL expressions",
	"action-post-social":  "post through the provider's API with action-http",
	"action-upload-image": "upload the file through the media API (/media) and reference it, or call the provider with action-http",
	"action-upload-video": "upload the file through the media API (/media) and reference it, or call the provider with action-http",
	"response-webhook":    "use response-data, with trigger-webhook in response_mode last_node",
}

func ptr(f float64) *float64 { return &f }

func opts(values ...string) []Option {
	out := make([]Option, len(values))
	for i, v := range values {
		out[i] = Option{Value: v, Label: humanize(v)}
	}
	return out
}

// humanize turns an option value into a label: "ad_copy" → "Ad copy", "greater_than" → "Greater than".
func humanize(v string) string {
	s := strings.NewReplacer("_", " ", "-", " ").Replace(v)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// conditionOptions are the operators of logic-condition and logic-switch (PRODUCT §6.3), taken from
// the evaluator's own list so the catalogue and the engine cannot drift apart.
var conditionOptions = opts(expr.Operators...)

// JSON Schema helpers for OutputSchema.
func schemaObject(props map[string]any, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func schemaType(t string, extra ...any) map[string]any {
	s := map[string]any{"type": t}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i].(string)] = extra[i+1]
	}
	return s
}

var anyValue = map[string]any{}

func aiOutputSchema() map[string]any {
	return schemaObject(map[string]any{
		"response": schemaType("string"),
		"json":     anyValue,
		"model":    schemaType("string"),
		"provider": schemaType("string"),
		"usage": schemaType("object", "properties", map[string]any{
			"prompt_tokens":     schemaType("integer"),
			"completion_tokens": schemaType("integer"),
			"total_tokens":      schemaType("integer"),
		}),
		"finish_reason": schemaType("string"),
	}, "response", "model", "provider", "finish_reason")
}

// aiProperties are the config fields ai-chat and its presets share. source is the options source of
// model, defModel the model the editor shows when nothing else applies.
func aiProperties(source, defModel string) []Property {
	return []Property{
		{Name: "prompt", Label: "Prompt", Type: "textarea", Required: true, Templated: true,
			Placeholder: "Summarise {{trigger.message.text}}", Description: "The user message sent to the model."},
		{Name: "system_prompt", Label: "System prompt", Type: "textarea", Templated: true,
			Description: "Instructions for the model. When absent, the flow's agent config applies."},
		{Name: "model", Label: "Model", Type: "select", OptionsSource: source, Default: defModel,
			Description: "When absent: the agent config's model, then the organisation default, then AI_DEFAULT_MODEL."},
		{Name: "temperature", Label: "Temperature", Type: "number", Default: 0.7, Min: ptr(0), Max: ptr(2),
			Description: "Sampling temperature. When absent, the agent config's value applies."},
		{Name: "max_tokens", Label: "Max tokens", Type: "number", Default: 1024, Min: ptr(1), Max: ptr(8192), integer: true,
			Description: "The longest answer, in tokens. When absent, the agent config's value applies."},
		{Name: "integration_id", Label: "Integration", Type: "number", Min: ptr(1), integer: true,
			Description: "The AI integration whose key is used; absent means the provider's default integration."},
		{Name: "use_conversation_history", Label: "Use conversation history", Type: "boolean", Default: false,
			Description: "Send the conversation's last messages before the prompt."},
		{Name: "history_messages", Label: "History messages", Type: "number", Default: 10, Min: ptr(1), Max: ptr(50), integer: true,
			Description: "How many earlier messages to send when the history is used."},
		{Name: "json_output", Label: "JSON output", Type: "boolean", Default: false,
			Description: "Ask for a JSON answer and parse it into the output's json key."},
	}
}

// defaultModel is the provider's default chat model in the AI catalogue: what the editor shows when
// neither the node, the agent config nor the settings name one (AI_DEFAULT_MODEL is a gemini model).
func defaultModel(provider string) string {
	m, _ := ai.DefaultModel(provider)
	return m.ID
}

var outOnly = []Output{{Handle: HandleOut, Label: "Out"}}

// registry is the catalogue, sorted by category then id (see init).
var registry = []NodeType{
	{
		ID: "trigger-manual", Label: "Manual trigger", Category: "trigger", Icon: "play", Color: "#10b981",
		Description: "Starts the flow from the editor or the API, with optional typed input fields.",
		Properties: []Property{
			{Name: "inputFields", Label: "Input fields", Type: "list", maxItems: 50,
				Description: "The fields a manual run asks for; the run's input is checked against them.",
				ItemProperties: []Property{
					{Name: "key", Label: "Key", Type: "text", Required: true, Placeholder: "customer_email",
						Description: "A letter or underscore, then letters, digits or underscores (at most 64)."},
					{Name: "label", Label: "Label", Type: "text"},
					{Name: "type", Label: "Type", Type: "select", Default: "text", Options: opts("text", "number", "boolean", "json")},
					{Name: "required", Label: "Required", Type: "boolean", Default: false},
					{Name: "default", Label: "Default", Type: "json", Description: "The value used when the input omits the field."},
				}},
		},
		Outputs: outOnly,
		OutputSchema: schemaObject(map[string]any{
			"input":        schemaType("object"),
			"triggered_by": anyValue,
			"triggered_at": schemaType("string", "format", "date-time"),
		}, "input", "triggered_at"),
		Pure: true,
	},
	{
		ID: "trigger-webhook", Label: "Webhook trigger", Category: "trigger", Icon: "webhook", Color: "#10b981",
		Description: "Starts the flow when its webhook URL receives a POST.",
		Properties: []Property{
			{Name: "response_mode", Label: "Response mode", Type: "select", Default: "immediate",
				Options:     []Option{{Value: "immediate", Label: "Immediately (202)"}, {Value: "last_node", Label: "With the last response-data node"}},
				Description: "last_node waits up to 30 s for a response-data node, then answers 202."},
		},
		Outputs: outOnly,
		OutputSchema: schemaObject(map[string]any{
			"method":      schemaType("string"),
			"query":       schemaType("object"),
			"headers":     schemaType("object"),
			"body":        anyValue,
			"received_at": schemaType("string", "format", "date-time"),
		}, "method", "query", "headers", "body", "received_at"),
		Pure: true,
	},
	{
		ID: "trigger-schedule", Label: "Schedule trigger", Category: "trigger", Icon: "clock", Color: "#10b981",
		Description: "Starts the published flow on a cron schedule.",
		Properties: []Property{
			{Name: "schedule", Label: "Schedule", Type: "cron", Required: true, Placeholder: "0 9 * * 1-5",
				Description: "Five cron fields (minute hour day-of-month month day-of-week), or @hourly, @daily, @weekly, @monthly."},
			{Name: "timezone", Label: "Time zone", Type: "timezone", Placeholder: "Europe/Paris",
				Description: "An IANA time zone; absent means the organisation's time zone."},
		},
		Outputs: outOnly,
		OutputSchema: schemaObject(map[string]any{
			"scheduled_for": schemaType("string", "format", "date-time"),
			"fired_at":      schemaType("string", "format", "date-time"),
		}, "scheduled_for", "fired_at"),
		Pure: true,
	},
	{
		ID: "ai-chat", Label: "AI chat", Category: "ai", Icon: "message-square", Color: "#8b5cf6",
		Description:  "Sends a prompt to any catalogue chat model and returns its answer.",
		Properties:   aiProperties("ai-models", defaultModel(ai.ProviderGemini)),
		Outputs:      outOnly,
		OutputSchema: aiOutputSchema(),
	},
	{
		ID: "ai-gemini", Label: "Gemini", Category: "ai", Icon: "sparkles", Color: "#8b5cf6",
		Description:  "AI chat with a Google Gemini model.",
		Properties:   aiProperties("ai-models:gemini", defaultModel(ai.ProviderGemini)),
		Outputs:      outOnly,
		OutputSchema: aiOutputSchema(),
	},
	{
		ID: "ai-openai", Label: "OpenAI", Category: "ai", Icon: "bot", Color: "#8b5cf6",
		Description:  "AI chat with an OpenAI model.",
		Properties:   aiProperties("ai-models:openai", defaultModel(ai.ProviderOpenAI)),
		Outputs:      outOnly,
		OutputSchema: aiOutputSchema(),
	},
	{
		ID: "ai-classify", Label: "AI classify", Category: "ai", Icon: "tags", Color: "#8b5cf6",
		Description: "Sorts a text into one of your categories; each category is an output, plus fallback.",
		Properties: []Property{
			{Name: "text", Label: "Text", Type: "textarea", Required: true, Templated: true, Placeholder: "{{trigger.message.text}}",
				Description: "The text to classify."},
			{Name: "categories", Label: "Categories", Type: "string-list", Required: true, minItems: 2, maxItems: 20,
				Description: "2 to 20 unique names of 1 to 50 characters (not fallback or error); each becomes an output handle."},
			{Name: "model", Label: "Model", Type: "select", OptionsSource: "ai-models", Default: defaultModel(ai.ProviderGemini),
				Description: "When absent: the agent config's model, then the organisation default, then AI_DEFAULT_MODEL."},
			{Name: "instructions", Label: "Instructions", Type: "textarea", Description: "Extra guidance for the classifier."},
		},
		Outputs: []Output{{Handle: HandleFallback, Label: "No match"}},
		OutputSchema: schemaObject(map[string]any{
			"category":   schemaType("string", "nullable", true),
			"confidence": schemaType("number", "minimum", 0, "maximum", 1),
			"matched":    schemaType("boolean"),
		}, "category", "matched"),
		DynamicOutputs: "categories",
	},
	{
		ID: "ai-content-writer", Label: "AI content writer", Category: "ai", Icon: "pen-line", Color: "#8b5cf6",
		Description: "Writes a caption, ad copy, blog post or SEO text about a topic.",
		Properties: []Property{
			{Name: "content_type", Label: "Content type", Type: "select", Required: true,
				Options: []Option{{Value: "caption", Label: "Caption"}, {Value: "ad_copy", Label: "Ad copy"}, {Value: "blog_post", Label: "Blog post"}, {Value: "seo_content", Label: "SEO content"}}},
			{Name: "topic", Label: "Topic", Type: "textarea", Required: true, Templated: true, Description: "What to write about."},
			{Name: "tone", Label: "Tone", Type: "select", Default: "professional", Options: opts("professional", "casual", "friendly", "formal", "humorous")},
			{Name: "length", Label: "Length", Type: "select", Default: "medium", Options: opts("short", "medium", "long")},
			{Name: "model", Label: "Model", Type: "select", OptionsSource: "ai-models", Default: defaultModel(ai.ProviderGemini),
				Description: "When absent: the agent config's model, then the organisation default, then AI_DEFAULT_MODEL."},
		},
		Outputs:      outOnly,
		OutputSchema: aiOutputSchema(),
	},
	{
		ID: "action-http", Label: "HTTP request", Category: "action", Icon: "globe", Color: "#3b82f6",
		Description: "Calls an external http or https URL; private networks are refused.",
		Properties: []Property{
			{Name: "url", Label: "URL", Type: "text", Required: true, Templated: true, Placeholder: "https://api.example.com/items",
				Description: "An http or https URL."},
			{Name: "method", Label: "Method", Type: "select", Default: "GET", Options: []Option{
				{Value: "GET", Label: "GET"}, {Value: "POST", Label: "POST"}, {Value: "PUT", Label: "PUT"}, {Value: "PATCH", Label: "PATCH"}, {Value: "DELETE", Label: "DELETE"}}},
			{Name: "query", Label: "Query parameters", Type: "key-value", Templated: true},
			{Name: "headers", Label: "Headers", Type: "key-value", Templated: true},
			{Name: "body_type", Label: "Body type", Type: "select", Options: opts("none", "json", "form", "text"),
				Description: "Absent: json for POST, PUT and PATCH, none otherwise."},
			{Name: "body", Label: "Body", Type: "json", Templated: true, Description: "An object is sent as JSON; a string is sent as is."},
			{Name: "timeout_ms", Label: "Timeout (ms)", Type: "number", Default: 15000, Min: ptr(1000), Max: ptr(60000), integer: true},
			{Name: "fail_on_status", Label: "Fail on error status", Type: "boolean", Default: true,
				Description: "A status outside 2xx fails the node."},
			{Name: "response_type", Label: "Response type", Type: "select", Default: "auto", Options: opts("auto", "json", "text")},
		},
		Outputs: outOnly,
		OutputSchema: schemaObject(map[string]any{
			"status":      schemaType("integer"),
			"headers":     schemaType("object"),
			"body":        anyValue,
			"duration_ms": schemaType("integer"),
		}, "status", "headers", "body", "duration_ms"),
	},
	{
		ID: "logic-condition", Label: "Condition", Category: "logic", Icon: "git-branch", Color: "#f59e0b",
		Description: "Compares two values and follows the true or the false branch.",
		Properties: []Property{
			{Name: "condition_type", Label: "Operator", Type: "select", Required: true, Options: conditionOptions},
			{Name: "value1", Label: "Value", Type: "text", Required: true, Templated: true, scalar: true, Placeholder: "{{http_1.status}}"},
			{Name: "value2", Label: "Compare to", Type: "text", Templated: true, scalar: true,
				Description: "Required unless the operator is is_empty or is_not_empty."},
			{Name: "case_sensitive", Label: "Case sensitive", Type: "boolean", Default: false},
		},
		Outputs: []Output{{Handle: HandleTrue, Label: "True"}, {Handle: HandleFalse, Label: "False"}},
		OutputSchema: schemaObject(map[string]any{
			"result": schemaType("boolean"), "left": anyValue, "right": anyValue, "operator": schemaType("string"),
		}, "result", "operator"),
		Pure: true,
	},
	{
		ID: "logic-switch", Label: "Switch", Category: "logic", Icon: "split", Color: "#f59e0b",
		Description: "Follows the first case that matches the value, or default.",
		Properties: []Property{
			{Name: "value", Label: "Value", Type: "text", Required: true, Templated: true, scalar: true},
			{Name: "cases", Label: "Cases", Type: "list", Required: true, minItems: 1, maxItems: 20,
				Description: "1 to 20 cases; the first match wins. Each case id is an output handle.",
				ItemProperties: []Property{
					{Name: "id", Label: "Handle", Type: "text", Required: true, Placeholder: "high",
						Description: "1 to 32 of a-z, 0-9, _ and -; not default or error."},
					{Name: "operator", Label: "Operator", Type: "select", Required: true, Options: conditionOptions},
					{Name: "compare_to", Label: "Compare to", Type: "text", Templated: true, scalar: true},
				}},
		},
		Outputs:        []Output{{Handle: HandleDefault, Label: "Default"}},
		OutputSchema:   schemaObject(map[string]any{"matched_case": schemaType("string", "nullable", true)}),
		Pure:           true,
		DynamicOutputs: "cases",
	},
	{
		ID: "logic-transform", Label: "Transform", Category: "logic", Icon: "shuffle", Color: "#f59e0b",
		Description: "Computes new keys with CEL expressions over the earlier nodes' outputs.",
		Properties: []Property{
			{Name: "mappings", Label: "Mappings", Type: "key-value", Required: true, cel: true, maxItems: 50,
				Placeholder: `nodes["http_1"].body.total * 2`,
				Description: "Each key is computed by a CEL expression (at most 50 keys)."},
		},
		Outputs:      outOnly,
		OutputSchema: schemaType("object", "additionalProperties", true),
		Pure:         true,
	},
	{
		ID: "logic-set-variable", Label: "Set variables", Category: "logic", Icon: "variable", Color: "#f59e0b",
		Description: "Computes values with CEL expressions and stores them as vars.<key>.",
		Properties: []Property{
			{Name: "variables", Label: "Variables", Type: "key-value", Required: true, cel: true, maxItems: 50,
				Description: "Each variable is computed by a CEL expression."},
		},
		Outputs:      outOnly,
		OutputSchema: schemaType("object", "additionalProperties", true),
		Pure:         true,
	},
	{
		ID: "logic-delay", Label: "Delay", Category: "logic", Icon: "timer", Color: "#f59e0b",
		Description: "Waits for a number of seconds, or until a time, without holding a worker.",
		Properties: []Property{
			{Name: "duration_seconds", Label: "Duration (seconds)", Type: "number", Min: ptr(1), Max: ptr(604800), integer: true,
				Description: "Give this or until, not both."},
			{Name: "until", Label: "Until", Type: "text", Templated: true, Placeholder: "2030-01-01T09:00:00Z",
				Description: "An RFC 3339 time. Give this or duration_seconds, not both."},
		},
		Outputs: outOnly,
		OutputSchema: schemaObject(map[string]any{
			"resumed_at": schemaType("string", "format", "date-time"), "waited_ms": schemaType("integer"),
		}, "resumed_at", "waited_ms"),
		Pure: true,
	},
	{
		ID: "response-data", Label: "Response", Category: "response", Icon: "reply", Color: "#64748b",
		Description: "Sets the run's output, and the webhook's answer in last_node mode.",
		Properties: []Property{
			{Name: "status", Label: "Status", Type: "number", Default: 200, Min: ptr(200), Max: ptr(599), integer: true},
			{Name: "body", Label: "Body", Type: "json", Templated: true},
			{Name: "headers", Label: "Headers", Type: "key-value"},
		},
		Outputs: outOnly,
		OutputSchema: schemaObject(map[string]any{
			"status": schemaType("integer"), "body": anyValue, "headers": schemaType("object"),
		}, "status", "body"),
		Pure: true,
	},
}

var registryIndex map[string]int

func init() {
	order := map[string]int{}
	for i, c := range categories {
		order[c.ID] = i
	}
	slices.SortStableFunc(registry, func(a, b NodeType) int {
		return cmp.Or(cmp.Compare(order[a.Category], order[b.Category]), strings.Compare(a.ID, b.ID))
	})
	registryIndex = make(map[string]int, len(registry))
	for i := range registry {
		if registry[i].SchemaVersion == 0 {
			registry[i].SchemaVersion = 1
		}
		registryIndex[registry[i].ID] = i
		t := &registry[i]
		for _, o := range t.Outputs {
			t.handles = append(t.handles, o.Handle)
		}
		t.handlesBranch = append(slices.Clip(t.handles), HandleError)
	}
}

// NodeTypes returns the catalogue in a stable order: by category (trigger, ai, action, logic,
// response), then by id. The slice is a copy; the types' inner slices and maps are shared and must not
// be modified.
func NodeTypes() []NodeType { return slices.Clone(registry) }

// LookupNodeType returns the registered type with this id.
func LookupNodeType(id string) (NodeType, bool) {
	i, ok := registryIndex[id]
	if !ok {
		return NodeType{}, false
	}
	return registry[i], true
}

func lookup(id string) *NodeType {
	i, ok := registryIndex[id]
	if !ok {
		return nil
	}
	return &registry[i]
}

func (t *NodeType) property(name string) *Property {
	for i := range t.Properties {
		if t.Properties[i].Name == name {
			return &t.Properties[i]
		}
	}
	return nil
}

func (t *NodeType) hasOut() bool {
	for _, o := range t.Outputs {
		if o.Handle == HandleOut {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Accessors for a node of the generic graph.

// NodeID is the node's id.
func NodeID(n map[string]any) string { return str(n["id"]) }

// NodeTypeOf is the node's data.type, the node-type id.
func NodeTypeOf(n map[string]any) string { return nodeType(n) }

// NodeLabel is data.label, or the type's label when the node has none.
func NodeLabel(n map[string]any) string {
	d, _ := n["data"].(map[string]any)
	if l := str(d["label"]); l != "" {
		return l
	}
	if t := lookup(str(d["type"])); t != nil {
		return t.Label
	}
	return str(d["type"])
}

// NodeConfig is data.config, or nil when the node has none (or it is not an object).
func NodeConfig(n map[string]any) map[string]any {
	d, _ := n["data"].(map[string]any)
	c, _ := d["config"].(map[string]any)
	return c
}

func nodeData(n map[string]any) map[string]any {
	d, _ := n["data"].(map[string]any)
	return d
}

// OutputHandles returns the handles a node can select, from its type and config: ai-classify gives
// each category then fallback; logic-switch each case id then default; logic-condition true and
// false; other types out. data.on_error "branch" adds error. An unknown type has no handles.
func OutputHandles(node map[string]any) []string {
	t := lookup(nodeType(node))
	if t == nil {
		return nil
	}
	return slices.Clone(outputHandles(node, t))
}

// outputHandles is OutputHandles for a node of type t; for static types it returns the registry's
// own slice, which must not be modified.
func outputHandles(node map[string]any, t *NodeType) []string {
	branch := str(nodeData(node)["on_error"]) == OnErrorBranch
	if t.DynamicOutputs == "" {
		if branch {
			return t.handlesBranch
		}
		return t.handles
	}
	cfg := NodeConfig(node)
	var out []string
	switch t.DynamicOutputs {
	case "categories":
		cats := categoryList(cfg["categories"])
		out = make([]string, 0, len(cats)+2)
		for _, c := range cats {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	case "cases":
		cases, _ := cfg["cases"].([]any)
		out = make([]string, 0, len(cases)+2)
		for _, c := range cases {
			m, _ := c.(map[string]any)
			if id := str(m["id"]); id != "" && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	out = append(out, t.handles...)
	if branch && !slices.Contains(out, HandleError) {
		out = append(out, HandleError)
	}
	return out
}

// categoryList reads ai-classify categories: a list of strings, or a comma-separated string. Blank
// entries of a string are dropped and entries are trimmed; non-strings in a list are skipped.
func categoryList(v any) []string {
	switch c := v.(type) {
	case string:
		var out []string
		for part := range strings.SplitSeq(c, ",") {
			if p := strings.TrimSpace(part); p != "" {
				out = append(out, p)
			}
		}
		return out
	case []any:
		out := make([]string, 0, len(c))
		for _, item := range c {
			if s, ok := item.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return c
	}
	return nil
}

// RetryPolicy is a node's data.retry with its defaults applied.
type RetryPolicy struct {
	MaxAttempts int
	Backoff     time.Duration
	Exponential bool
}

// Retry bounds (PRODUCT §6.1).
const (
	retryMaxAttempts = 5
	retryMinBackoff  = 100
	retryMaxBackoff  = 60000
)

// NodeSettings parses data.on_error (stop, continue or branch; absent means stop) and data.retry
// ({max_attempts 1–5, backoff_ms 100–60000, exponential}; absent values mean 1, 1000 ms and true).
// Values that validation would reject fall back to their defaults.
func NodeSettings(node map[string]any) (onError string, retry RetryPolicy) {
	d := nodeData(node)
	onError = OnErrorStop
	switch s := str(d["on_error"]); s {
	case OnErrorContinue, OnErrorBranch:
		onError = s
	}
	retry = RetryPolicy{MaxAttempts: 1, Backoff: time.Second, Exponential: true}
	r, _ := d["retry"].(map[string]any)
	if n, ok := integer(r["max_attempts"]); ok && n >= 1 && n <= retryMaxAttempts {
		retry.MaxAttempts = int(n)
	}
	if n, ok := integer(r["backoff_ms"]); ok && n >= retryMinBackoff && n <= retryMaxBackoff {
		retry.Backoff = time.Duration(n) * time.Millisecond
	}
	if b, ok := r["exponential"].(bool); ok {
		retry.Exponential = b
	}
	return onError, retry
}

// aiEngineKeys are the AI config keys whose effective value the engine resolves through the
// precedence chain of PRODUCT §6.3 (node → agent config → settings → AI_DEFAULT_MODEL), so
// WithDefaults must not fill them.
var aiEngineKeys = map[string]bool{"model": true, "temperature": true, "max_tokens": true, "system_prompt": true}

// bodyMethods take a request body; action-http's body_type defaults to json for them, none otherwise.
var bodyMethods = map[string]bool{"POST": true, "PUT": true, "PATCH": true}

// WithDefaults returns a copy of cfg with each absent (or null) property filled with its default;
// keys starting with "_" are dropped. For AI types, model, temperature, max_tokens and system_prompt
// are left absent: the engine applies their precedence chain. ai-classify categories given as a
// comma-separated string become a list; list items (inputFields, cases) get their item defaults.
func WithDefaults(typeID string, cfg map[string]any) map[string]any {
	out := make(map[string]any, len(cfg)+4)
	for k, v := range cfg {
		if !strings.HasPrefix(k, "_") {
			out[k] = v
		}
	}
	t := lookup(typeID)
	if t == nil {
		return out
	}
	for i := range t.Properties {
		p := &t.Properties[i]
		if t.Category == "ai" && aiEngineKeys[p.Name] {
			continue
		}
		v, present := out[p.Name]
		if (!present || v == nil) && p.Default != nil {
			out[p.Name] = p.Default
			continue
		}
		if p.Type == "list" && len(p.ItemProperties) > 0 {
			if list, ok := v.([]any); ok {
				out[p.Name] = itemDefaults(p.ItemProperties, list)
			}
		}
	}
	switch typeID {
	case "ai-classify":
		if s, ok := out["categories"].(string); ok {
			cats := categoryList(s)
			list := make([]any, len(cats))
			for i, c := range cats {
				list[i] = c
			}
			out["categories"] = list
		}
	case "action-http":
		if v, ok := out["body_type"]; !ok || v == nil {
			if bodyMethods[strings.ToUpper(str(out["method"]))] {
				out["body_type"] = "json"
			} else {
				out["body_type"] = "none"
			}
		}
	}
	return out
}

func itemDefaults(props []Property, list []any) []any {
	out := make([]any, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			out[i] = item
			continue
		}
		c := make(map[string]any, len(props))
		for k, v := range m {
			if !strings.HasPrefix(k, "_") {
				c[k] = v
			}
		}
		for _, p := range props {
			if v, present := c[p.Name]; (!present || v == nil) && p.Default != nil {
				c[p.Name] = p.Default
			}
		}
		out[i] = c
	}
	return out
}

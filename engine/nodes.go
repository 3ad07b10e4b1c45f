package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/flow/expr"
	"github.com/wataomi/wataomi/netguard"
)

// Chatter is the AI provider abstraction the AI nodes call (ai.Router).
type Chatter interface {
	Chat(ctx context.Context, req ai.Request) (*ai.Response, error)
}

// AgentDefaults are a flow's agent config (PRODUCT §5.14) as the AI nodes use it.
type AgentDefaults struct {
	SystemPrompt string // the persona line joined with system_prompt
	Model        *string
	Temperature  *float64
	MaxTokens    *int
}

// Services are what nodes reach outside the engine.
type Services struct {
	AI   Chatter
	HTTP *http.Client // the outbound guard's client (netguard)
	// Agent returns the flow's agent config, nil when it has none.
	Agent func(ctx context.Context, flowID int64) (*AgentDefaults, error)
	// DefaultModel is settings.default_ai_model, else AI_DEFAULT_MODEL.
	DefaultModel func(ctx context.Context) string
}

type result struct {
	output  any
	handles []string
	wait    *time.Time
}

type nodeFunc func(ctx context.Context, x *Executor, st *State, n *node, cfg map[string]any) (result, error)

// handlers maps every registered node type to its implementation; a test
// checks that it covers flow.NodeTypes() exactly.
var handlers = map[string]nodeFunc{
	"trigger-manual":     runTrigger,
	"trigger-webhook":    runTrigger,
	"trigger-schedule":   runTrigger,
	"ai-chat":            runAIChat,
	"ai-gemini":          runAIChat,
	"ai-openai":          runAIChat,
	"ai-classify":        runAIClassify,
	"ai-content-writer":  runAIContentWriter,
	"action-http":        runHTTP,
	"logic-condition":    runCondition,
	"logic-switch":       runSwitch,
	"logic-transform":    runTransform,
	"logic-set-variable": runSetVariable,
	"logic-delay":        runDelay,
	"response-data":      runResponse,
}

// Implemented lists the node types the executor runs.
func Implemented() []string {
	out := make([]string, 0, len(handlers))
	for k := range handlers {
		out = append(out, k)
	}
	return out
}

// operandFields are resolved leniently: a missing key is "missing", not an error.
var operandFields = map[string]bool{"value1": true, "value2": true, "value": true, "cases": true}

// call resolves the node's templated config and runs it under its timeout.
func (x *Executor) call(ctx context.Context, st *State, n *node, rec *Record, lim Limits) (result, error) {
	fn := handlers[n.Type]
	if fn == nil {
		return result{}, nodeErr("unknown-node-type", "node type %q cannot run", n.Type)
	}
	cfg, err := st.resolveConfig(n)
	rec.Input = redact(cfg)
	if err != nil {
		return result{}, err
	}
	timeout := lim.NodeTimeout
	if n.Def.Category == "ai" {
		timeout = lim.AITimeout
	}
	if n.Type == "action-http" {
		if ms, ok := toFloat(cfg["timeout_ms"]); ok && time.Duration(ms)*time.Millisecond < timeout {
			timeout = time.Duration(ms) * time.Millisecond
		}
	}
	if n.Def.Pure {
		return fn(ctx, x, st, n, cfg)
	}
	nctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := fn(nctx, x, st, n, cfg)
	if err != nil && ctx.Err() == nil && errors.Is(nctx.Err(), context.DeadlineExceeded) {
		return res, &NodeError{Code: "timeout", Message: fmt.Sprintf("the node did not finish within %s", timeout), Retryable: true}
	}
	return res, err
}

func (st *State) resolveConfig(n *node) (map[string]any, error) {
	cfg := make(map[string]any, len(n.Config))
	for k, v := range n.Config {
		cfg[k] = v
	}
	for _, p := range n.Def.Properties {
		v, ok := cfg[p.Name]
		if !ok || !p.Templated && !(p.Name == "cases" && n.Type == "logic-switch") {
			continue
		}
		var (
			r   any
			err error
		)
		if operandFields[p.Name] && (n.Type == "logic-condition" || n.Type == "logic-switch") {
			r, err = expr.ResolveOperand(v, &st.scope)
		} else {
			r, err = expr.Resolve(v, &st.scope)
		}
		if err != nil {
			return cfg, err
		}
		cfg[p.Name] = r
	}
	return cfg, nil
}

var secretKey = regexp.MustCompile(`(?i)(authorization|secret|password|passwd|token|api[-_]?key|cookie|signature)`)

// secretWords are secretKey's alternatives in lower case, for the fast path of isSecretKey.
var secretWords = []string{"authorization", "secret", "password", "passwd", "token", "apikey", "api-key", "api_key", "cookie", "signature"}

// isSecretKey reports whether secretKey matches k. An ASCII key (every real
// header or field name) is checked by lower-case substrings, several times
// cheaper than the regexp, which redact runs on every config key of every
// node; other keys use the regexp, whose case folding also covers Unicode
// look-alikes such as the Kelvin sign.
func isSecretKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			return secretKey.MatchString(k)
		}
	}
	l := strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// redact copies v with the values of secret-looking keys replaced.
func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if isSecretKey(k) {
				out[k] = "[redacted]"
			} else {
				out[k] = redact(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = redact(e)
		}
		return out
	}
	if v == expr.Missing {
		return nil
	}
	return v
}

// ---- triggers ----

func runTrigger(_ context.Context, x *Executor, st *State, n *node, cfg map[string]any) (result, error) {
	in := st.Info.Input
	switch {
	case n.Type == "trigger-manual" && (st.Info.Mode == "manual" || st.Info.Mode == "test" || st.Info.Mode == "retry"):
		input, issues := ApplyInputFields(cfg, in)
		if len(issues) > 0 {
			return result{}, nodeErr("invalid-input", "%s", strings.Join(issues, "; "))
		}
		var by any
		if st.Info.TriggeredBy != nil {
			by = *st.Info.TriggeredBy
		}
		return result{output: map[string]any{"input": input, "triggered_by": by, "triggered_at": rfc3339(st.Info.QueuedAt)}, handles: []string{"out"}}, nil
	default:
		// Production triggers pass their payload as the input; a manual run of a
		// non-manual trigger uses input_data as the trigger's output (PRODUCT §6.5).
		return result{output: in, handles: []string{"out"}}, nil
	}
}

// ApplyInputFields checks input against a trigger-manual's inputFields: required
// keys present, values of the declared type, defaults filled. Unknown keys are kept.
func ApplyInputFields(cfg map[string]any, input map[string]any) (map[string]any, []string) {
	out := make(map[string]any, len(input))
	for k, v := range input {
		out[k] = v
	}
	fields, _ := cfg["inputFields"].([]any)
	var issues []string
	for _, f := range fields {
		fm, _ := f.(map[string]any)
		key, _ := fm["key"].(string)
		if key == "" {
			continue
		}
		v, present := out[key]
		if !present || v == nil {
			if d, ok := fm["default"]; ok && d != nil {
				out[key] = d
				continue
			}
			if req, _ := fm["required"].(bool); req {
				issues = append(issues, fmt.Sprintf("input field %q is required", key))
			}
			continue
		}
		typ, _ := fm["type"].(string)
		switch typ {
		case "number":
			if _, ok := toFloat(v); !ok {
				issues = append(issues, fmt.Sprintf("input field %q must be a number", key))
			}
		case "boolean":
			if _, ok := v.(bool); !ok {
				issues = append(issues, fmt.Sprintf("input field %q must be a boolean", key))
			}
		case "json":
		default:
			if _, ok := v.(string); !ok {
				issues = append(issues, fmt.Sprintf("input field %q must be a string", key))
			}
		}
	}
	return out, issues
}

// ---- logic ----

func runCondition(_ context.Context, _ *Executor, _ *State, _ *node, cfg map[string]any) (result, error) {
	op, _ := cfg["condition_type"].(string)
	cs, _ := cfg["case_sensitive"].(bool)
	left, right := cfg["value1"], cfg["value2"]
	ok, err := expr.Compare(op, left, right, cs)
	if err != nil {
		return result{}, err
	}
	h := "false"
	if ok {
		h = "true"
	}
	return result{output: map[string]any{"result": ok, "left": plain(left), "right": plain(right), "operator": op}, handles: []string{h}}, nil
}

func plain(v any) any {
	if v == expr.Missing {
		return nil
	}
	return v
}

func runSwitch(_ context.Context, _ *Executor, _ *State, _ *node, cfg map[string]any) (result, error) {
	value := cfg["value"]
	cases, _ := cfg["cases"].([]any)
	for _, c := range cases {
		cm, _ := c.(map[string]any)
		id, _ := cm["id"].(string)
		op, _ := cm["operator"].(string)
		ok, err := expr.Compare(op, value, cm["compare_to"], false)
		if err != nil {
			return result{}, err
		}
		if ok {
			return result{output: map[string]any{"matched_case": id}, handles: []string{id}}, nil
		}
	}
	return result{output: map[string]any{"matched_case": nil}, handles: []string{"default"}}, nil
}

// celVars are the CEL variables of a run: the reserved roots and the outputs of
// the nodes that ran.
func (st *State) celVars() map[string]any {
	vars := make(map[string]any, len(st.scope.Values))
	for k, v := range st.scope.Values {
		vars[k] = v
	}
	for _, k := range []string{"trigger", "now"} {
		if _, ok := vars[k]; !ok {
			vars[k] = nil
		}
	}
	return vars
}

func (st *State) evalMap(ctx context.Context, n *node, key string) (map[string]any, error) {
	m, _ := n.Config[key].(map[string]any)
	out := make(map[string]any, len(m))
	vars := st.celVars()
	for k, src := range m {
		s, _ := src.(string)
		prog, err := expr.Compile(s, st.Plan.nodeIDs)
		if err != nil {
			return nil, err
		}
		v, err := prog.Eval(ctx, vars)
		if err != nil {
			var ee *expr.Error
			if errors.As(err, &ee) {
				return nil, &NodeError{Code: ee.Code, Message: fmt.Sprintf("%s: %s", k, ee.Message)}
			}
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func runTransform(ctx context.Context, _ *Executor, st *State, n *node, _ map[string]any) (result, error) {
	out, err := st.evalMap(ctx, n, "mappings")
	if err != nil {
		return result{}, err
	}
	return result{output: out, handles: []string{"out"}}, nil
}

func runSetVariable(ctx context.Context, _ *Executor, st *State, n *node, _ map[string]any) (result, error) {
	out, err := st.evalMap(ctx, n, "variables")
	if err != nil {
		return result{}, err
	}
	for k, v := range out {
		st.vars[k] = v
	}
	return result{output: out, handles: []string{"out"}}, nil
}

func runDelay(_ context.Context, x *Executor, st *State, _ *node, cfg map[string]any) (result, error) {
	now := x.now()
	var until time.Time
	if s, ok := toFloat(cfg["duration_seconds"]); ok {
		until = now.Add(time.Duration(s * float64(time.Second)))
	} else {
		raw, _ := cfg["until"].(string)
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(raw))
		if err != nil {
			return result{}, nodeErr("bad-config", "until %q is not an RFC 3339 time", raw)
		}
		until = t.UTC()
	}
	lim := x.Limits.withDefaults()
	if !st.Info.QueuedAt.IsZero() && until.After(st.Info.QueuedAt.Add(lim.MaxLifetime)) {
		return result{}, nodeErr("limit-exceeded", "waiting until %s passes EXECUTION_MAX_LIFETIME_SECONDS", rfc3339(until))
	}
	if !until.After(now) {
		return result{output: map[string]any{"resumed_at": rfc3339(now), "waited_ms": 0}, handles: []string{"out"}}, nil
	}
	return result{wait: &until}, nil
}

func runResponse(_ context.Context, _ *Executor, _ *State, _ *node, cfg map[string]any) (result, error) {
	status := 200
	if f, ok := toFloat(cfg["status"]); ok {
		status = int(f)
	}
	headers := cfg["headers"]
	if headers == nil {
		headers = map[string]any{}
	}
	return result{output: map[string]any{"status": status, "body": cfg["body"], "headers": headers}, handles: []string{"out"}}, nil
}

// ---- AI ----

// aiSettings applies the precedence of PRODUCT §6.3 ai-chat: node config, then
// the agent config, then (for the model) settings and AI_DEFAULT_MODEL, then
// the node type's default. provider limits models to one provider ("" = any).
func aiSettings(ctx context.Context, x *Executor, st *State, n *node, cfg map[string]any) (ai.Request, error) {
	provider, fallbackModel := modelRules(n)
	var req ai.Request
	var agent *AgentDefaults
	if x.Services != nil && x.Services.Agent != nil {
		a, err := x.Services.Agent(ctx, st.Info.FlowID)
		if err != nil {
			return req, &NodeError{Code: "ai-unavailable", Message: "the agent config could not be read", Retryable: true}
		}
		agent = a
	}
	fits := func(m string) bool {
		if m == "" {
			return false
		}
		mod, ok := ai.LookupModel(m)
		return ok && mod.Kind == "chat" && (provider == "" || mod.Provider == provider)
	}
	if m, ok := n.RawCfg["model"].(string); ok && fits(m) {
		req.Model = m
	} else if agent != nil && agent.Model != nil && fits(*agent.Model) {
		req.Model = *agent.Model
	} else if x.Services != nil && x.Services.DefaultModel != nil && fits(x.Services.DefaultModel(ctx)) {
		req.Model = x.Services.DefaultModel(ctx)
	} else {
		req.Model = fallbackModel
	}
	if _, ok := n.RawCfg["temperature"]; ok {
		if f, ok := toFloat(cfg["temperature"]); ok {
			req.Temperature = &f
		}
	} else if agent != nil && agent.Temperature != nil {
		req.Temperature = agent.Temperature
	} else if d, ok := toFloat(defaultOf(n, "temperature")); ok {
		req.Temperature = &d
	}
	if _, ok := n.RawCfg["max_tokens"]; ok {
		if f, ok := toFloat(cfg["max_tokens"]); ok {
			v := int(f)
			req.MaxTokens = &v
		}
	} else if agent != nil && agent.MaxTokens != nil {
		req.MaxTokens = agent.MaxTokens
	} else if d, ok := toFloat(defaultOf(n, "max_tokens")); ok {
		v := int(d)
		req.MaxTokens = &v
	}
	if s, ok := cfg["system_prompt"].(string); ok && strings.TrimSpace(s) != "" {
		req.System = s
	} else if agent != nil {
		req.System = agent.SystemPrompt
	}
	return req, nil
}

func defaultOf(n *node, prop string) any {
	for _, p := range n.Def.Properties {
		if p.Name == prop {
			return p.Default
		}
	}
	return nil
}

// modelRules reads the node type's model property in the registry: its options source names the
// provider the model must belong to ("ai-models:gemini"; "ai-models" is any) and its default is the
// last step of the precedence chain.
func modelRules(n *node) (provider, fallback string) {
	for _, p := range n.Def.Properties {
		if p.Name == "model" {
			fallback, _ = p.Default.(string)
			_, provider, _ = strings.Cut(p.OptionsSource, ":")
		}
	}
	return provider, fallback
}

func (x *Executor) chat(ctx context.Context, req ai.Request) (*ai.Response, error) {
	if x.Services == nil || x.Services.AI == nil {
		return nil, &NodeError{Code: "ai-not-configured", Message: "no AI provider is configured"}
	}
	return x.Services.AI.Chat(ctx, req)
}

func aiOutput(resp *ai.Response) map[string]any {
	out := map[string]any{"response": resp.Text, "model": resp.Model, "provider": resp.Provider, "finish_reason": resp.FinishReason}
	if resp.JSON != nil {
		out["json"] = resp.JSON
	}
	if resp.Usage != nil {
		out["usage"] = map[string]any{"prompt_tokens": resp.Usage.PromptTokens, "completion_tokens": resp.Usage.CompletionTokens, "total_tokens": resp.Usage.TotalTokens}
	}
	return out
}

func runAIChat(ctx context.Context, x *Executor, st *State, n *node, cfg map[string]any) (result, error) {
	req, err := aiSettings(ctx, x, st, n, cfg)
	if err != nil {
		return result{}, err
	}
	prompt := toText(cfg["prompt"])
	req.Messages = []ai.Message{{Role: "user", Content: prompt}}
	req.JSON, _ = cfg["json_output"].(bool)
	resp, err := x.chat(ctx, req)
	if err != nil {
		return result{}, err
	}
	return result{output: aiOutput(resp), handles: []string{"out"}}, nil
}

func runAIContentWriter(ctx context.Context, x *Executor, st *State, n *node, cfg map[string]any) (result, error) {
	req, err := aiSettings(ctx, x, st, n, cfg)
	if err != nil {
		return result{}, err
	}
	kind := strings.ReplaceAll(toText(cfg["content_type"]), "_", " ")
	words := map[string]string{"short": "about 100 words", "medium": "about 300 words", "long": "about 800 words"}[toText(cfg["length"])]
	if words == "" {
		words = "about 300 words"
	}
	if req.System == "" {
		req.System = "You are an expert marketing and content writer. Write only the requested content, with no preamble."
	}
	req.Messages = []ai.Message{{Role: "user", Content: fmt.Sprintf("Write a %s (%s) in a %s tone about the following topic:\n\n%s",
		kind, words, toText(cfg["tone"]), toText(cfg["topic"]))}}
	resp, err := x.chat(ctx, req)
	if err != nil {
		return result{}, err
	}
	return result{output: aiOutput(resp), handles: []string{"out"}}, nil
}

func runAIClassify(ctx context.Context, x *Executor, st *State, n *node, cfg map[string]any) (result, error) {
	req, err := aiSettings(ctx, x, st, n, cfg)
	if err != nil {
		return result{}, err
	}
	var cats []string
	switch c := cfg["categories"].(type) {
	case []any:
		for _, v := range c {
			if s, ok := v.(string); ok {
				cats = append(cats, s)
			}
		}
	case string:
		for _, s := range strings.Split(c, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cats = append(cats, s)
			}
		}
	}
	req.System = "You classify text into exactly one of the given categories. Answer with a JSON object " +
		`{"category": <one of the categories, or null when none fits>, "confidence": <number from 0 to 1>}.`
	if ins := toText(cfg["instructions"]); ins != "" {
		req.System += "\n" + ins
	}
	catJSON, _ := json.Marshal(cats)
	req.Messages = []ai.Message{{Role: "user", Content: fmt.Sprintf("Categories: %s\n\nText:\n%s", catJSON, toText(cfg["text"]))}}
	req.JSON = true
	resp, err := x.chat(ctx, req)
	if err != nil {
		return result{}, err
	}
	obj, _ := resp.JSON.(map[string]any)
	got := strings.TrimSpace(toText(obj["category"]))
	out := map[string]any{"category": nil, "matched": false}
	if c, ok := toFloat(obj["confidence"]); ok {
		out["confidence"] = c
	}
	for _, c := range cats {
		if strings.EqualFold(c, got) {
			out["category"] = c
			out["matched"] = true
			return result{output: out, handles: []string{c}}, nil
		}
	}
	return result{output: out, handles: []string{"fallback"}}, nil
}

// ---- HTTP ----

var allowedResponseHeaders = []string{"Content-Type", "Content-Length", "Etag", "Last-Modified", "Location", "Retry-After", "X-Request-Id"}

func runHTTP(ctx context.Context, x *Executor, _ *State, _ *node, cfg map[string]any) (result, error) {
	if x.Services == nil || x.Services.HTTP == nil {
		return result{}, nodeErr("http-not-configured", "no outbound HTTP client is configured")
	}
	raw := toText(cfg["url"])
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return result{}, nodeErr("bad-config", "url %q is not an absolute http or https URL", raw)
	}
	if q, ok := cfg["query"].(map[string]any); ok && len(q) > 0 {
		vals := u.Query()
		for k, v := range q {
			vals.Set(k, toText(v))
		}
		u.RawQuery = vals.Encode()
	}
	method := strings.ToUpper(toText(cfg["method"]))
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	contentType := ""
	bodyType := toText(cfg["body_type"])
	if bodyType == "" {
		bodyType = "none"
		if method != http.MethodGet && method != http.MethodDelete {
			bodyType = "json"
		}
	}
	if b, present := cfg["body"]; present && b != nil && bodyType != "none" {
		switch bodyType {
		case "form":
			m, _ := b.(map[string]any)
			vals := url.Values{}
			for k, v := range m {
				vals.Set(k, toText(v))
			}
			body, contentType = strings.NewReader(vals.Encode()), "application/x-www-form-urlencoded"
		case "text":
			body, contentType = strings.NewReader(toText(b)), "text/plain; charset=utf-8"
		default:
			if s, ok := b.(string); ok {
				body, contentType = strings.NewReader(s), "application/json"
			} else {
				enc, err := json.Marshal(b)
				if err != nil {
					return result{}, nodeErr("bad-config", "body is not JSON: %v", err)
				}
				body, contentType = bytes.NewReader(enc), "application/json"
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return result{}, nodeErr("bad-config", "%v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if h, ok := cfg["headers"].(map[string]any); ok {
		for k, v := range h {
			req.Header.Set(k, toText(v))
		}
	}
	start := time.Now()
	resp, err := x.Services.HTTP.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	data, err := netguard.ReadLimited(resp.Body, netguard.MaxResponseBytes)
	if err != nil {
		return result{}, err
	}
	headers := map[string]any{}
	for _, h := range allowedResponseHeaders {
		if v := resp.Header.Get(h); v != "" {
			headers[strings.ToLower(h)] = v
		}
	}
	var parsed any = string(data)
	rt := toText(cfg["response_type"])
	isJSON := strings.Contains(resp.Header.Get("Content-Type"), "json")
	if rt == "json" || (rt != "text" && isJSON) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil {
			parsed = v
		} else if rt == "json" {
			return result{}, nodeErr("bad-response", "the response is not JSON: %v", err)
		}
	}
	out := map[string]any{"status": resp.StatusCode, "headers": headers, "body": parsed, "duration_ms": time.Since(start).Milliseconds()}
	fail := true
	if b, ok := cfg["fail_on_status"].(bool); ok {
		fail = b
	}
	if fail && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		return result{output: out}, &NodeError{Code: "http-status", Message: fmt.Sprintf("%s %s answered %d", method, u.Redacted(), resp.StatusCode),
			Retryable: resp.StatusCode == 429 || resp.StatusCode >= 500}
	}
	return result{output: out, handles: []string{"out"}}, nil
}

// classifyExternal maps errors from HTTP, AI and the guard to node errors.
func classifyExternal(err error) *NodeError {
	var ae *ai.Error
	if errors.As(err, &ae) {
		return &NodeError{Code: ae.Code, Message: ae.Message, Retryable: ae.Retryable}
	}
	if errors.Is(err, netguard.ErrBlocked) {
		return &NodeError{Code: "ssrf-blocked", Message: unwrapURLError(err).Error()}
	}
	var tl *netguard.TooLargeError
	if errors.As(err, &tl) {
		return &NodeError{Code: "response-too-large", Message: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &NodeError{Code: "timeout", Message: "the request timed out", Retryable: true}
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return &NodeError{Code: "network-error", Message: unwrapURLError(err).Error(), Retryable: true}
	}
	return &NodeError{Code: "node-error", Message: err.Error()}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ---- values ----

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case float32:
		return float64(t), true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case json.Number:
		f, err := t.Float64()
		return f, err == nil && !math.IsInf(f, 0)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		return f, err == nil
	}
	return 0, false
}

// toText renders a resolved value as text: strings as they are, others as compact JSON.
func toText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	}
	if v == expr.Missing {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

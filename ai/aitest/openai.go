package aitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// OpenAI's chat completions request
// (https://platform.openai.com/docs/api-reference/chat/create). The fake
// knows the parameters a chat client may send and refuses others, as the
// real API does ("Unrecognized request argument supplied").
type oMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	Refusal    json.RawMessage `json:"refusal"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type oRequest struct {
	Model               string     `json:"model"`
	Messages            []oMessage `json:"messages"`
	Temperature         *float64   `json:"temperature"`
	MaxTokens           *int       `json:"max_tokens"`
	MaxCompletionTokens *int       `json:"max_completion_tokens"`
	ResponseFormat      *struct {
		Type       string          `json:"type"`
		JSONSchema json.RawMessage `json:"json_schema"`
	} `json:"response_format"`
	Stream            *bool           `json:"stream"`
	StreamOptions     json.RawMessage `json:"stream_options"`
	N                 *int            `json:"n"`
	TopP              *float64        `json:"top_p"`
	Stop              json.RawMessage `json:"stop"`
	Seed              *int            `json:"seed"`
	User              string          `json:"user"`
	PresencePenalty   *float64        `json:"presence_penalty"`
	FrequencyPenalty  *float64        `json:"frequency_penalty"`
	LogitBias         json.RawMessage `json:"logit_bias"`
	Logprobs          *bool           `json:"logprobs"`
	TopLogprobs       *int            `json:"top_logprobs"`
	Tools             json.RawMessage `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	ReasoningEffort   string          `json:"reasoning_effort"`
	Metadata          json.RawMessage `json:"metadata"`
	Store             *bool           `json:"store"`
	ServiceTier       string          `json:"service_tier"`
}

// contentText reads a message's content: a string or an array of parts.
func contentText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n"), true
}

// validate returns the API's invalid_request_error message and param, or
// "".
func (o *oRequest) validate() (string, string) {
	if o.Model == "" {
		return "you must provide a model parameter", ""
	}
	if len(o.Messages) == 0 {
		return "[] is too short - 'messages'", "messages"
	}
	mentionsJSON := false
	for i, m := range o.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", m.Role),
				fmt.Sprintf("messages[%d].role", i)
		}
		text, ok := contentText(m.Content)
		if !ok {
			return fmt.Sprintf("Invalid type for 'messages[%d].content'.", i), fmt.Sprintf("messages[%d].content", i)
		}
		if strings.Contains(strings.ToLower(text), "json") {
			mentionsJSON = true
		}
	}
	if t := o.Temperature; t != nil && (*t < 0 || *t > 2) {
		return fmt.Sprintf("Invalid 'temperature': decimal out of range. Expected a value between 0 and 2, but got %v instead.", *t), "temperature"
	}
	if m := o.MaxTokens; m != nil && *m < 1 {
		return fmt.Sprintf("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", *m), "max_tokens"
	}
	if m := o.MaxCompletionTokens; m != nil && *m < 1 {
		return fmt.Sprintf("Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", *m), "max_completion_tokens"
	}
	if rf := o.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_schema":
		case "json_object":
			if !mentionsJSON {
				return "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.", "messages"
			}
		default:
			return fmt.Sprintf("Invalid value: '%s'. Supported values are: 'json_object', 'json_schema', and 'text'.", rf.Type), "response_format.type"
		}
	}
	return "", ""
}

// openAIErrorKind gives the error type and code OpenAI uses for a status.
func openAIErrorKind(status int) (typ string, code any) {
	switch {
	case status == 401:
		return "invalid_request_error", "invalid_api_key"
	case status == 404:
		return "invalid_request_error", "model_not_found"
	case status == 429:
		return "requests", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", nil
	}
	return "invalid_request_error", nil
}

func writeOpenAIError(w http.ResponseWriter, status int, message, param, code string, retryAfter time.Duration) {
	typ, c := openAIErrorKind(status)
	if code != "" {
		c = code
		if code == "insufficient_quota" {
			typ = code
		}
	}
	var p any
	if param != "" {
		p = param
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": message, "type": typ, "param": p, "code": c,
	}})
}

// maskKey shows a key the way OpenAI's "Incorrect API key" message does.
func maskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", 10) + k[len(k)-4:]
}

func (f *Fake) serveOpenAI(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.URL.Path != "/v1/chat/completions" {
		f.record(Request{Provider: OpenAI, Method: r.Method, Path: r.URL.Path, Body: body})
		writeOpenAIError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "", "", 0)
		return
	}
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	rec := Request{Provider: OpenAI, Method: r.Method, Path: r.URL.Path, APIKey: strings.TrimSpace(key), Body: body}

	var or oRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	decodeErr := dec.Decode(&or)
	if decodeErr == nil {
		rec.Model = or.Model
		var system []string
		for _, m := range or.Messages {
			text, _ := contentText(m.Content)
			switch m.Role {
			case "system", "developer":
				system = append(system, text)
			default:
				rec.Messages = append(rec.Messages, Message{Role: m.Role, Content: text})
			}
		}
		rec.System = strings.Join(system, "\n\n")
		rec.Temperature = or.Temperature
		rec.MaxTokens = or.MaxCompletionTokens
		if rec.MaxTokens == nil {
			rec.MaxTokens = or.MaxTokens
		}
		if or.ResponseFormat != nil {
			rec.JSON = or.ResponseFormat.Type == "json_object" || or.ResponseFormat.Type == "json_schema"
		}
	}

	refuse := func(status int, msg, param, code string) {
		f.record(rec)
		writeOpenAIError(w, status, msg, param, code, 0)
	}
	switch want := f.expectedKey(); {
	case r.Method != http.MethodPost:
		refuse(http.StatusMethodNotAllowed, fmt.Sprintf("Invalid method for URL (%s %s)", r.Method, r.URL.Path), "", "")
		return
	case rec.APIKey == "":
		refuse(http.StatusUnauthorized, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "", "missing_api_key")
		return
	case want != "" && rec.APIKey != want:
		refuse(http.StatusUnauthorized, "Incorrect API key provided: "+maskKey(rec.APIKey)+". You can find your API key at https://platform.openai.com/account/api-keys.", "", "invalid_api_key")
		return
	case decodeErr != nil:
		if name, ok := unknownField(decodeErr); ok {
			refuse(http.StatusBadRequest, "Unrecognized request argument supplied: "+name, "", "")
		} else {
			refuse(http.StatusBadRequest, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", "", "")
		}
		return
	}
	if msg, param := or.validate(); msg != "" {
		refuse(http.StatusBadRequest, msg, param, "")
		return
	}

	rec.Valid = true
	st, delay, seq := f.record(rec)
	if !f.wait(r, delay) {
		return
	}
	if st.Body != "" {
		writeRaw(w, st)
		return
	}
	if st.Status >= 400 {
		writeOpenAIError(w, st.Status, st.Message, "", st.ErrorCode, st.RetryAfter)
		return
	}
	a, err := st.answer(rec, "stop")
	if err != nil {
		writeOpenAIError(w, http.StatusInternalServerError, err.Error(), "", "", 0)
		return
	}
	msg := map[string]any{"role": "assistant", "content": a.text, "refusal": nil, "annotations": []any{}}
	if st.Blocked != "" {
		msg["content"], msg["refusal"] = nil, st.Blocked
	}
	out := map[string]any{
		"id":      fmt.Sprintf("chatcmpl-fake-%d", seq),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   or.Model,
		"choices": []any{map[string]any{
			"index": 0, "message": msg, "logprobs": nil, "finish_reason": a.finish,
		}},
		"service_tier":       "default",
		"system_fingerprint": "fp_fake",
	}
	if a.usage != nil {
		out["usage"] = map[string]any{
			"prompt_tokens":     a.usage.PromptTokens,
			"completion_tokens": a.usage.CompletionTokens,
			"total_tokens":      a.usage.TotalTokens,
		}
	}
	writeJSON(w, http.StatusOK, out)
}

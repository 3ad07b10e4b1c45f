package aitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The Gemini API's generateContent request
// (https://ai.google.dev/api/generate-content). The fake knows the fields a
// chat client may send and refuses others, as the real API does.
type gPart struct {
	Text             *string         `json:"text"`
	Thought          bool            `json:"thought"`
	InlineData       json.RawMessage `json:"inlineData"`
	FileData         json.RawMessage `json:"fileData"`
	FunctionCall     json.RawMessage `json:"functionCall"`
	FunctionResponse json.RawMessage `json:"functionResponse"`
}

type gContent struct {
	Role  string  `json:"role"`
	Parts []gPart `json:"parts"`
}

type gGenerationConfig struct {
	Temperature        *float64        `json:"temperature"`
	MaxOutputTokens    *int            `json:"maxOutputTokens"`
	ResponseMIMEType   string          `json:"responseMimeType"`
	ResponseSchema     json.RawMessage `json:"responseSchema"`
	ResponseJSONSchema json.RawMessage `json:"responseJsonSchema"`
	TopP               *float64        `json:"topP"`
	TopK               *float64        `json:"topK"`
	CandidateCount     *int            `json:"candidateCount"`
	StopSequences      []string        `json:"stopSequences"`
	Seed               *int            `json:"seed"`
	PresencePenalty    *float64        `json:"presencePenalty"`
	FrequencyPenalty   *float64        `json:"frequencyPenalty"`
	ThinkingConfig     json.RawMessage `json:"thinkingConfig"`
	ResponseModalities json.RawMessage `json:"responseModalities"`
}

type gRequest struct {
	Contents               []gContent         `json:"contents"`
	SystemInstruction      *gContent          `json:"systemInstruction"`
	SystemInstructionSnake *gContent          `json:"system_instruction"`
	GenerationConfig       *gGenerationConfig `json:"generationConfig"`
	GenerationConfigSnake  *gGenerationConfig `json:"generation_config"`
	SafetySettings         json.RawMessage    `json:"safetySettings"`
	Tools                  json.RawMessage    `json:"tools"`
	ToolConfig             json.RawMessage    `json:"toolConfig"`
	CachedContent          json.RawMessage    `json:"cachedContent"`
}

func partsText(parts []gPart) string {
	var texts []string
	for _, p := range parts {
		if p.Text != nil && !p.Thought {
			texts = append(texts, *p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// validate returns the API's INVALID_ARGUMENT message, or "".
func (g *gRequest) validate() string {
	if len(g.Contents) == 0 {
		return "* GenerateContentRequest.contents: contents is not specified\n"
	}
	for i, c := range g.Contents {
		if c.Role != "" && c.Role != "user" && c.Role != "model" {
			return "Please use a valid role: user, model."
		}
		if len(c.Parts) == 0 {
			return fmt.Sprintf("* GenerateContentRequest.contents[%d].parts: contents.parts must not be empty.\n", i)
		}
		for j, p := range c.Parts {
			if p.Text == nil && p.InlineData == nil && p.FileData == nil && p.FunctionCall == nil && p.FunctionResponse == nil {
				return fmt.Sprintf("* GenerateContentRequest.contents[%d].parts[%d].data: required oneof field 'data' must have one initialized field\n", i, j)
			}
		}
	}
	if gc := g.config(); gc != nil {
		if t := gc.Temperature; t != nil && (*t < 0 || *t > 2) {
			return "* GenerateContentRequest.generation_config.temperature: must be in the range [0.0, 2.0]\n"
		}
		if m := gc.MaxOutputTokens; m != nil && *m < 0 {
			return "* GenerateContentRequest.generation_config.max_output_tokens: must be positive\n"
		}
		switch gc.ResponseMIMEType {
		case "", "text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum":
		default:
			return "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`.\n"
		}
	}
	return ""
}

func (g *gRequest) config() *gGenerationConfig {
	if g.GenerationConfig != nil {
		return g.GenerationConfig
	}
	return g.GenerationConfigSnake
}

func (g *gRequest) system() *gContent {
	if g.SystemInstruction != nil {
		return g.SystemInstruction
	}
	return g.SystemInstructionSnake
}

func googleStatus(code int) string {
	switch code {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 500:
		return "INTERNAL"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}

// writeGoogleError writes a google.rpc.Status error body.
func writeGoogleError(w http.ResponseWriter, code int, status, message string, retryAfter time.Duration) {
	if status == "" {
		status = googleStatus(code)
	}
	e := map[string]any{"code": code, "message": message, "status": status}
	if retryAfter > 0 {
		e["details"] = []any{map[string]any{
			"@type":      "type.googleapis.com/google.rpc.RetryInfo",
			"retryDelay": seconds(retryAfter) + "s",
		}}
	}
	writeJSON(w, code, map[string]any{"error": e})
}

// geminiModel reads the model of /v1beta/models/{model}:generateContent.
func geminiModel(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v1beta/models/")
	if !ok {
		return "", false
	}
	model, ok := strings.CutSuffix(rest, ":generateContent")
	if !ok || model == "" || strings.Contains(model, "/") {
		return "", false
	}
	return model, true
}

func (f *Fake) serveGemini(w http.ResponseWriter, r *http.Request, body []byte) {
	model, ok := geminiModel(r.URL.Path)
	if !ok {
		f.record(Request{Provider: Gemini, Method: r.Method, Path: r.URL.Path, Body: body})
		writeGoogleError(w, http.StatusNotFound, "", "The requested URL "+r.URL.Path+" was not found on this server.", 0)
		return
	}
	if m, err := url.PathUnescape(model); err == nil {
		model = m
	}
	key := r.Header.Get("x-goog-api-key")
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	rec := Request{Provider: Gemini, Method: r.Method, Path: r.URL.Path, Model: model, APIKey: key, Body: body}

	var gr gRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	decodeErr := dec.Decode(&gr)
	if decodeErr == nil {
		if si := gr.system(); si != nil {
			rec.System = partsText(si.Parts)
		}
		for _, c := range gr.Contents {
			role := "user"
			if c.Role == "model" {
				role = "assistant"
			}
			rec.Messages = append(rec.Messages, Message{Role: role, Content: partsText(c.Parts)})
		}
		if gc := gr.config(); gc != nil {
			rec.Temperature, rec.MaxTokens = gc.Temperature, gc.MaxOutputTokens
			rec.JSON = gc.ResponseMIMEType == "application/json"
		}
	}

	refuse := func(code int, msg string) {
		f.record(rec)
		writeGoogleError(w, code, "", msg, 0)
	}
	switch want := f.expectedKey(); {
	case r.Method != http.MethodPost:
		refuse(http.StatusMethodNotAllowed, "Method not allowed.")
		return
	case key == "":
		refuse(http.StatusForbidden, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
		return
	case want != "" && key != want:
		refuse(http.StatusBadRequest, "API key not valid. Please pass a valid API key.")
		return
	case decodeErr != nil:
		if name, ok := unknownField(decodeErr); ok {
			refuse(http.StatusBadRequest, fmt.Sprintf("Invalid JSON payload received. Unknown name %q: Cannot find field.", name))
		} else {
			refuse(http.StatusBadRequest, "Invalid JSON payload received. "+decodeErr.Error())
		}
		return
	}
	if msg := gr.validate(); msg != "" {
		refuse(http.StatusBadRequest, msg)
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
		writeGoogleError(w, st.Status, st.ErrorCode, st.Message, st.RetryAfter)
		return
	}
	a, err := st.answer(rec, "STOP")
	if err != nil {
		writeGoogleError(w, http.StatusInternalServerError, "", err.Error(), 0)
		return
	}
	out := map[string]any{
		"modelVersion": model,
		"responseId":   fmt.Sprintf("fake-%d", seq),
	}
	if a.usage != nil {
		out["usageMetadata"] = map[string]any{
			"promptTokenCount":     a.usage.PromptTokens,
			"candidatesTokenCount": a.usage.CompletionTokens,
			"totalTokenCount":      a.usage.TotalTokens,
		}
	}
	if st.Blocked != "" {
		out["promptFeedback"] = map[string]any{"blockReason": st.Blocked}
		writeJSON(w, http.StatusOK, out)
		return
	}
	parts := []any{}
	if a.text != "" {
		parts = append(parts, map[string]any{"text": a.text})
	}
	out["candidates"] = []any{map[string]any{
		"content":      map[string]any{"role": "model", "parts": parts},
		"finishReason": a.finish,
		"index":        0,
	}}
	writeJSON(w, http.StatusOK, out)
}

package ai

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// geminiProvider speaks the Gemini API's generateContent
// (https://ai.google.dev/api/generate-content).
type geminiProvider struct {
	caller
	base string // without /v1beta
}

func (p *geminiProvider) Name() string { return ProviderGemini }

type geminiPart struct {
	Text    string `json:"text"`
	Thought bool   `json:"thought,omitempty"` // thinking summaries are not the answer
}

type geminiContent struct {
	Role  string       `json:"role,omitempty"`
	Parts []geminiPart `json:"parts"`
}

type geminiGenerationConfig struct {
	Temperature      *float64 `json:"temperature,omitempty"`
	MaxOutputTokens  *int     `json:"maxOutputTokens,omitempty"`
	ResponseMIMEType string   `json:"responseMimeType,omitempty"`
}

type geminiRequest struct {
	Contents          []geminiContent         `json:"contents"`
	SystemInstruction *geminiContent          `json:"systemInstruction,omitempty"`
	GenerationConfig  *geminiGenerationConfig `json:"generationConfig,omitempty"`
}

type geminiResponse struct {
	Candidates []struct {
		Content      geminiContent `json:"content"`
		FinishReason string        `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason        string `json:"blockReason"`
		BlockReasonMessage string `json:"blockReasonMessage"`
	} `json:"promptFeedback"`
	UsageMetadata *struct {
		PromptTokenCount     int `json:"promptTokenCount"`
		CandidatesTokenCount int `json:"candidatesTokenCount"`
		ThoughtsTokenCount   int `json:"thoughtsTokenCount"`
		TotalTokenCount      int `json:"totalTokenCount"`
	} `json:"usageMetadata"`
	ModelVersion string `json:"modelVersion"`
}

// googleError is the google.rpc.Status error body; some Google front ends
// wrap it in a one-element array.
type googleError struct {
	Error struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Status  string            `json:"status"`
		Details []json.RawMessage `json:"details"`
	} `json:"error"`
}

func (p *geminiProvider) endpoint(model string) string {
	base := p.base
	if !strings.HasSuffix(base, "/v1beta") && !strings.HasSuffix(base, "/v1") {
		base += "/v1beta"
	}
	model = strings.TrimPrefix(model, "models/")
	return base + "/models/" + url.PathEscape(model) + ":generateContent"
}

// Chat implements Provider.
func (p *geminiProvider) Chat(ctx context.Context, req Request) (*Response, error) {
	model, wireModel, _, _ := modelFor(ProviderGemini, req.Model)
	system, turns, err := splitMessages(ProviderGemini, req)
	if err != nil {
		return nil, err
	}
	body := geminiRequest{Contents: make([]geminiContent, 0, len(turns))}
	for _, m := range turns {
		role := "user"
		if m.Role == RoleAssistant {
			role = "model"
		}
		body.Contents = append(body.Contents, geminiContent{Role: role, Parts: []geminiPart{{Text: m.Content}}})
	}
	if system != "" {
		body.SystemInstruction = &geminiContent{Parts: []geminiPart{{Text: system}}}
	}
	if req.Temperature != nil || req.MaxTokens != nil || req.JSON {
		gc := &geminiGenerationConfig{Temperature: req.Temperature, MaxOutputTokens: req.MaxTokens}
		if req.JSON {
			gc.ResponseMIMEType = "application/json"
		}
		body.GenerationConfig = gc
	}

	key, err := p.key(ctx)
	if err != nil {
		return nil, err
	}
	r, err := p.post(ctx, p.endpoint(wireModel), key, func(h http.Header) { h.Set("x-goog-api-key", key) }, body)
	if err != nil {
		return nil, err
	}
	if r.status < 200 || r.status > 299 {
		msg, retryAfter := parseGoogleError(r.body)
		return nil, p.statusError(r, key, msg, retryAfter, false)
	}

	var gr geminiResponse
	if err := json.Unmarshal(r.body, &gr); err != nil {
		return nil, p.badBody(r, err)
	}
	if gr.PromptFeedback != nil && gr.PromptFeedback.BlockReason != "" && len(gr.Candidates) == 0 {
		msg := "the prompt was blocked (" + gr.PromptFeedback.BlockReason + ")"
		if gr.PromptFeedback.BlockReasonMessage != "" {
			msg += ": " + gr.PromptFeedback.BlockReasonMessage
		}
		return nil, &Error{Code: CodeBlocked, Provider: ProviderGemini, Status: r.status, Message: clip(msg)}
	}
	if len(gr.Candidates) == 0 {
		return nil, &Error{Code: CodeEmpty, Provider: ProviderGemini, Status: r.status, Message: "the response has no candidates"}
	}
	cand := gr.Candidates[0]
	var text strings.Builder
	for _, part := range cand.Content.Parts {
		if !part.Thought {
			text.WriteString(part.Text)
		}
	}
	finish := geminiFinishReason(cand.FinishReason)
	if strings.TrimSpace(text.String()) == "" {
		if finish == "content_filter" {
			return nil, &Error{Code: CodeBlocked, Provider: ProviderGemini, Status: r.status,
				Message: "the answer was blocked (" + cand.FinishReason + ")"}
		}
		return nil, &Error{Code: CodeEmpty, Provider: ProviderGemini, Status: r.status,
			Message: fmt.Sprintf("the model produced no text (finish reason %s)", orUnknown(cand.FinishReason))}
	}

	resp := &Response{
		Text:          text.String(),
		Model:         model,
		ProviderModel: gr.ModelVersion,
		Provider:      ProviderGemini,
		FinishReason:  finish,
	}
	if u := gr.UsageMetadata; u != nil {
		// Thinking tokens are billed as output, as OpenAI's completion_tokens
		// include reasoning tokens; both numbers are the provider's.
		resp.Usage = &Usage{
			PromptTokens:     u.PromptTokenCount,
			CompletionTokens: u.CandidatesTokenCount + u.ThoughtsTokenCount,
			TotalTokens:      u.TotalTokenCount,
		}
	}
	if req.JSON {
		v, err := parseJSONAnswer(ProviderGemini, resp.Text)
		if err != nil {
			return nil, err
		}
		resp.JSON = v
	}
	return resp, nil
}

// parseGoogleError extracts the message and RetryInfo delay of an error
// body.
func parseGoogleError(body []byte) (string, time.Duration) {
	var ge googleError
	if err := json.Unmarshal(body, &ge); err != nil {
		var arr []googleError
		if err := json.Unmarshal(body, &arr); err != nil || len(arr) == 0 {
			return bodySnippet(body), 0
		}
		ge = arr[0]
	}
	var retryAfter time.Duration
	for _, raw := range ge.Error.Details {
		var d struct {
			Type       string `json:"@type"`
			RetryDelay string `json:"retryDelay"`
		}
		if json.Unmarshal(raw, &d) == nil && strings.HasSuffix(d.Type, "google.rpc.RetryInfo") {
			if v, err := time.ParseDuration(d.RetryDelay); err == nil && v > 0 {
				retryAfter = v
			}
		}
	}
	msg := ge.Error.Message
	if msg == "" {
		msg = ge.Error.Status
	}
	return msg, retryAfter
}

func geminiFinishReason(r string) string {
	switch r {
	case "", "FINISH_REASON_UNSPECIFIED":
		return ""
	case "STOP":
		return "stop"
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return "content_filter"
	}
	return strings.ToLower(r)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

package ai

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// openAIProvider speaks OpenAI's Chat Completions API
// (https://platform.openai.com/docs/api-reference/chat/create), which
// OpenAI-compatible servers implement too.
type openAIProvider struct {
	caller
	base            string // including /v1
	legacyMaxTokens bool
}

func (p *openAIProvider) Name() string { return ProviderOpenAI }

type openAIMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type openAIResponseFormat struct {
	Type string `json:"type"`
}

type openAIRequest struct {
	Model               string                `json:"model"`
	Messages            []openAIMessage       `json:"messages"`
	Temperature         *float64              `json:"temperature,omitempty"`
	MaxTokens           *int                  `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int                  `json:"max_completion_tokens,omitempty"`
	ResponseFormat      *openAIResponseFormat `json:"response_format,omitempty"`
}

type openAIResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			// Content is a string, null (refusals), or on some compatible
			// servers an array of text parts.
			Content json.RawMessage `json:"content"`
			Refusal *string         `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

type openAIError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		// Code is a string on OpenAI, sometimes a number elsewhere.
		Code json.RawMessage `json:"code"`
	} `json:"error"`
}

// jsonInstruction is added to the system prompt in JSON mode when no
// message mentions JSON: OpenAI refuses json_object mode otherwise.
const jsonInstruction = "Answer with a single JSON object."

// Chat implements Provider.
func (p *openAIProvider) Chat(ctx context.Context, req Request) (*Response, error) {
	model, wireModel, m, _ := modelFor(ProviderOpenAI, req.Model)
	system, turns, err := splitMessages(ProviderOpenAI, req)
	if err != nil {
		return nil, err
	}
	if req.JSON && !mentionsJSON(system, turns) {
		system = strings.TrimSpace(system + "\n\n" + jsonInstruction)
	}
	body := openAIRequest{Model: wireModel, Messages: make([]openAIMessage, 0, len(turns)+1)}
	if system != "" {
		body.Messages = append(body.Messages, openAIMessage{Role: "system", Content: system})
	}
	for _, t := range turns {
		body.Messages = append(body.Messages, openAIMessage{Role: t.Role, Content: t.Content})
	}
	if !m.FixedTemperature {
		body.Temperature = req.Temperature
	}
	if p.legacyMaxTokens {
		body.MaxTokens = req.MaxTokens
	} else {
		body.MaxCompletionTokens = req.MaxTokens
	}
	if req.JSON {
		body.ResponseFormat = &openAIResponseFormat{Type: "json_object"}
	}

	key, err := p.key(ctx)
	if err != nil {
		return nil, err
	}
	r, err := p.post(ctx, p.base+"/chat/completions", key, func(h http.Header) { h.Set("Authorization", "Bearer "+key) }, body)
	if err != nil {
		return nil, err
	}
	if r.status < 200 || r.status > 299 {
		msg, code := parseOpenAIError(r.body)
		return nil, p.statusError(r, key, msg, 0, code == "insufficient_quota")
	}

	var or openAIResponse
	if err := json.Unmarshal(r.body, &or); err != nil {
		return nil, p.badBody(r, err)
	}
	if len(or.Choices) == 0 {
		return nil, &Error{Code: CodeEmpty, Provider: ProviderOpenAI, Status: r.status, Message: "the response has no choices"}
	}
	choice := or.Choices[0]
	if choice.Message.Refusal != nil && *choice.Message.Refusal != "" {
		return nil, &Error{Code: CodeBlocked, Provider: ProviderOpenAI, Status: r.status,
			Message: "the model refused to answer"}
	}
	text, err := openAIContent(choice.Message.Content)
	if err != nil {
		return nil, p.badBody(r, err)
	}
	if strings.TrimSpace(text) == "" {
		if choice.FinishReason == "content_filter" {
			return nil, &Error{Code: CodeBlocked, Provider: ProviderOpenAI, Status: r.status,
				Message: "the answer was blocked by the content filter"}
		}
		return nil, &Error{Code: CodeEmpty, Provider: ProviderOpenAI, Status: r.status,
			Message: "the model produced no text (finish reason " + orUnknown(choice.FinishReason) + ")"}
	}

	resp := &Response{
		Text:          text,
		Model:         model,
		ProviderModel: or.Model,
		Provider:      ProviderOpenAI,
		FinishReason:  strings.ToLower(choice.FinishReason),
	}
	if u := or.Usage; u != nil {
		resp.Usage = &Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	}
	if req.JSON {
		v, err := parseJSONAnswer(ProviderOpenAI, text)
		if err != nil {
			return nil, err
		}
		resp.JSON = v
	}
	return resp, nil
}

func mentionsJSON(system string, turns []Message) bool {
	if strings.Contains(strings.ToLower(system), "json") {
		return true
	}
	for _, t := range turns {
		if strings.Contains(strings.ToLower(t.Content), "json") {
			return true
		}
	}
	return false
}

// openAIContent reads message.content: a string, null, or text parts.
func openAIContent(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, part := range parts {
		if part.Type == "" || part.Type == "text" {
			b.WriteString(part.Text)
		}
	}
	return b.String(), nil
}

// parseOpenAIError extracts the message and code of an error body.
func parseOpenAIError(body []byte) (msg, code string) {
	var oe openAIError
	if err := json.Unmarshal(body, &oe); err != nil || (oe.Error.Message == "" && oe.Error.Type == "") {
		return bodySnippet(body), ""
	}
	_ = json.Unmarshal(oe.Error.Code, &code) // a number or null leaves code empty
	msg = oe.Error.Message
	if msg == "" {
		msg = oe.Error.Type
	}
	return msg, code
}

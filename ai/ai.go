package ai

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Provider names.
const (
	ProviderGemini = "gemini"
	ProviderOpenAI = "openai"
)

// Message roles accepted in [Request.Messages]. A RoleSystem message is
// folded into the system prompt (after [Request.System]) for both providers.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleSystem    = "system"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string // "user" | "assistant" (or "system", see RoleSystem)
	Content string
}

// Request is one chat completion request.
type Request struct {
	// Model is a catalogue id ([LookupModel]). The Router refuses ids that
	// are not chat models of the catalogue; a Provider used directly sends an
	// unknown id as it is (OpenAI-compatible servers), and an empty one
	// becomes the provider's default model.
	Model    string
	System   string
	Messages []Message
	// Temperature and MaxTokens are sent only when set, so the provider's
	// defaults apply otherwise. A zero Temperature is sent as 0.
	Temperature *float64
	MaxTokens   *int
	// JSON asks for a JSON answer (Gemini responseMimeType
	// "application/json", OpenAI response_format json_object). Response.JSON
	// then holds the parsed value; an answer that is not valid JSON gives an
	// *Error with Code "ai-bad-json".
	JSON bool
}

// Usage is what the provider reported; it is never estimated.
type Usage struct{ PromptTokens, CompletionTokens, TotalTokens int }

// Response is a successful chat completion.
type Response struct {
	Text string
	// Model is the catalogue id that was asked for (the request's model, or
	// the default); ProviderModel is the model version the provider reports
	// answering with (for example "gpt-4o-2024-08-06"), when it says.
	Model         string
	ProviderModel string
	Provider      string
	// FinishReason uses one vocabulary for both providers: "stop",
	// "length", "content_filter", or the provider's own value in lower case
	// for anything else.
	FinishReason string
	JSON         any    // the parsed answer when Request.JSON
	Usage        *Usage // nil when the provider did not report usage
}

// Error codes.
const (
	CodeRateLimited   = "ai-rate-limited"   // HTTP 429; retryable (unless the quota is exhausted)
	CodeUnavailable   = "ai-unavailable"    // 5xx, 408, network error or timeout; retryable
	CodeRejected      = "ai-rejected"       // any other 4xx, or a request we cannot send; not retryable
	CodeNotConfigured = "ai-not-configured" // no API key for the provider
	CodeModelUnknown  = "model-unknown"     // not a chat model of the catalogue
	CodeBadJSON       = "ai-bad-json"       // JSON mode, but the answer is not valid JSON
	CodeEmpty         = "ai-empty"          // the provider answered without any text
	CodeBlocked       = "ai-blocked"        // the provider's safety system blocked the prompt or answer
)

// Error is every failure of this package except the end of the caller's
// context (see the package doc).
type Error struct {
	Code string
	// Message is the provider's message, or ours. It never contains the API
	// key, nor prompt or answer text.
	Message string
	// Status is the provider's HTTP status, or 0 when no response came.
	Status    int
	Retryable bool
	Provider  string
	// RetryAfter is the wait the provider asked for (Retry-After header, or
	// Gemini's RetryInfo), 0 when it gave none.
	RetryAfter time.Duration

	cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	switch {
	case e.Provider != "" && e.Status != 0:
		fmt.Fprintf(&b, " (%s, HTTP %d)", e.Provider, e.Status)
	case e.Provider != "":
		fmt.Fprintf(&b, " (%s)", e.Provider)
	case e.Status != 0:
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap gives the underlying cause (a network error, a key lookup error),
// when there is one.
func (e *Error) Unwrap() error { return e.cause }

// IsRetryable reports whether err is an *Error marked retryable. A context
// cancellation is never retryable.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable
}

// Provider is one LLM provider.
type Provider interface {
	Name() string // "gemini" | "openai"
	Chat(ctx context.Context, req Request) (*Response, error)
}

package ai

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultGeminiBaseURL = "https://generativelanguage.googleapis.com"
	DefaultOpenAIBaseURL = "https://api.openai.com/v1"
	DefaultTimeout       = 120 * time.Second
	// MaxResponseBytes caps how much of a provider response is read.
	MaxResponseBytes = 4 << 20
)

// Options configures a Router. Provider endpoints are operator-configured
// and trusted: no outbound-request guard applies to them.
type Options struct {
	GeminiBaseURL, GeminiKey, OpenAIBaseURL, OpenAIKey string
	// DefaultModel is used when Request.Model is empty (AI_DEFAULT_MODEL);
	// "" means gemini-2.5-flash.
	DefaultModel string
	// Timeout bounds each provider call (AI_REQUEST_TIMEOUT_SECONDS); 0
	// means 120 s.
	Timeout time.Duration
	// HTTPClient nil means a client with dial and TLS handshake timeouts
	// that does not follow redirects (so a key header never travels to
	// another host).
	HTTPClient *http.Client
	// OpenAILegacyMaxTokens sends max_tokens instead of
	// max_completion_tokens, for OpenAI-compatible servers that predate it.
	OpenAILegacyMaxTokens bool
}

// Router dispatches a request to the provider of its catalogue model.
type Router struct {
	// Keys, when set, is asked for a provider's key first ("gemini" or
	// "openai"); an empty answer falls back to the static key of Options.
	// Set it before the Router is used.
	Keys func(ctx context.Context, provider string) (string, error)

	defaultModel string
	gemini       *geminiProvider
	openai       *openAIProvider
}

// New builds a Router. It does not contact any provider.
func New(opts Options) *Router {
	r := &Router{defaultModel: opts.DefaultModel}
	if r.defaultModel == "" {
		m, _ := DefaultModel(ProviderGemini)
		r.defaultModel = m.ID
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	client := opts.HTTPClient
	if client == nil {
		client = newHTTPClient()
	}
	geminiBase := strings.TrimRight(opts.GeminiBaseURL, "/")
	if geminiBase == "" {
		geminiBase = DefaultGeminiBaseURL
	}
	openAIBase := strings.TrimRight(opts.OpenAIBaseURL, "/")
	if openAIBase == "" {
		openAIBase = DefaultOpenAIBaseURL
	}
	r.gemini = &geminiProvider{
		caller: caller{name: ProviderGemini, client: client, timeout: timeout,
			key: r.keyFunc(ProviderGemini, opts.GeminiKey, "GOOGLE_API_KEY")},
		base: geminiBase,
	}
	r.openai = &openAIProvider{
		caller: caller{name: ProviderOpenAI, client: client, timeout: timeout,
			key: r.keyFunc(ProviderOpenAI, opts.OpenAIKey, "OPENAI_API_KEY")},
		base:            openAIBase,
		legacyMaxTokens: opts.OpenAILegacyMaxTokens,
	}
	return r
}

func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.MaxIdleConnsPerHost = 16
	// No ResponseHeaderTimeout: a non-streaming answer's headers come only
	// after the whole generation; the per-call context bounds it instead.
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// keyFunc resolves a provider's key: Router.Keys first, then the static
// key.
func (r *Router) keyFunc(provider, static, env string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if r.Keys != nil {
			k, err := r.Keys(ctx, provider)
			if err != nil {
				if ctx.Err() != nil {
					return "", fmt.Errorf("ai: %s key lookup: %w", provider, ctx.Err())
				}
				return "", &Error{Code: CodeUnavailable, Provider: provider, Retryable: true,
					Message: "the API key could not be looked up", cause: err}
			}
			if k != "" {
				return k, nil
			}
		}
		if static != "" {
			return static, nil
		}
		return "", &Error{Code: CodeNotConfigured, Provider: provider,
			Message: fmt.Sprintf("no API key for %s: add an integration or set %s", provider, env)}
	}
}

// Provider returns the named provider ("gemini" or "openai"), or nil. Its
// calls resolve keys like the Router's.
func (r *Router) Provider(name string) Provider {
	switch name {
	case ProviderGemini:
		return r.gemini
	case ProviderOpenAI:
		return r.openai
	}
	return nil
}

// Configured reports whether a key can be found for the provider right
// now.
func (r *Router) Configured(ctx context.Context, provider string) bool {
	var c *caller
	switch provider {
	case ProviderGemini:
		c = &r.gemini.caller
	case ProviderOpenAI:
		c = &r.openai.caller
	default:
		return false
	}
	k, err := c.key(ctx)
	return err == nil && k != ""
}

// Chat sends req to the provider of its model. An empty Model means
// Options.DefaultModel; a model that is not a catalogue chat model gives an
// *Error with Code "model-unknown".
func (r *Router) Chat(ctx context.Context, req Request) (*Response, error) {
	if req.Model == "" {
		req.Model = r.defaultModel
	}
	m, ok := LookupModel(req.Model)
	if !ok {
		return nil, &Error{Code: CodeModelUnknown, Message: fmt.Sprintf("unknown model %q", req.Model)}
	}
	if m.Kind != KindChat {
		return nil, &Error{Code: CodeModelUnknown, Message: fmt.Sprintf("%q is an %s model, not a chat model", m.ID, m.Kind)}
	}
	p := r.Provider(m.Provider)
	if p == nil {
		return nil, &Error{Code: CodeModelUnknown, Message: fmt.Sprintf("model %q needs provider %q, which is not supported", m.ID, m.Provider)}
	}
	return p.Chat(ctx, req)
}

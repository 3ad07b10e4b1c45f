package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wataomi/wataomi/netguard"
)

// Endpoints are the provider base URLs of the configuration (PRODUCT §8), which tests point at fakes.
type Endpoints struct {
	OpenAI           string // OPENAI_BASE_URL, with its /v1
	Gemini           string // GEMINI_BASE_URL
	Anthropic        string // ANTHROPIC_BASE_URL
	MetaGraph        string // META_GRAPH_BASE_URL
	MetaGraphVersion string // META_GRAPH_API_VERSION; an integration's graph_api_version wins
}

// DefaultVerifyTimeout bounds one live check.
const DefaultVerifyTimeout = 15 * time.Second

// anthropicVersion is the API version header Anthropic requires.
const anthropicVersion = "2023-06-01"

// Verifier makes the live check of POST /integrations/{id}/verify (PRODUCT §5.11): AI providers list
// their models, Meta apps get an app access token. Secrets travel only in headers or a POST form,
// never in a URL, so no transport error can carry one.
type Verifier struct {
	Endpoints Endpoints
	// Client calls the configured endpoints (operator-controlled, trusted).
	Client *http.Client
	// Guarded calls URLs taken from an integration (openai_compatible base_url): the outbound SSRF
	// guard (package netguard), with redirects off so a key is never sent on to another host.
	Guarded *http.Client
	// Timeout bounds one check; 0 means DefaultVerifyTimeout.
	Timeout time.Duration
}

// Result is the outcome of a check the provider answered: OK, or why the credentials were refused.
type Result struct {
	OK     bool
	Detail string
}

// UnavailableError means the provider could not be asked: unreachable, timed out, rate limited or
// failing (5xx). The check says nothing about the credentials, and the caller answers 503.
type UnavailableError struct {
	Provider   string
	Reason     string
	RetryAfter int // seconds, when the provider said
	cause      error
}

func (e *UnavailableError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("integration: %s unavailable: %s: %v", e.Provider, e.Reason, e.cause)
	}
	return fmt.Sprintf("integration: %s unavailable: %s", e.Provider, e.Reason)
}

func (e *UnavailableError) Unwrap() error { return e.cause }

// Verify checks an integration's credentials against its provider. settings are the stored ones.
func (v *Verifier) Verify(ctx context.Context, provider string, settings map[string]any, secrets map[string]string) (Result, error) {
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = DefaultVerifyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	key := secrets[SecretAPIKey]
	var (
		req    *http.Request
		err    error
		client = v.Client
		parse  func([]byte) (Result, bool)
	)
	switch provider {
	case OpenAI, OpenAICompatible:
		base := strings.TrimRight(v.Endpoints.OpenAI, "/")
		if provider == OpenAICompatible {
			base, _ = settings["base_url"].(string)
			client = v.Guarded
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/models", nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		parse = countModels("data", "The API key works: %d model(s) are available.")
	case Gemini:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(v.Endpoints.Gemini, "/")+"/v1beta/models", nil)
		if err == nil {
			req.Header.Set("x-goog-api-key", key)
		}
		parse = countModels("models", "The API key works: %d model(s) are available.")
	case Anthropic:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(v.Endpoints.Anthropic, "/")+"/v1/models", nil)
		if err == nil {
			req.Header.Set("x-api-key", key)
			req.Header.Set("anthropic-version", anthropicVersion)
		}
		parse = countModels("data", "The API key works: %d model(s) are available.")
	case Meta, Instagram:
		version := v.Endpoints.MetaGraphVersion
		if s, ok := settings["graph_api_version"].(string); ok && s != "" {
			version = s
		}
		clientID, _ := settings["client_id"].(string)
		form := url.Values{"client_id": {clientID}, "client_secret": {secrets[SecretClientSecret]}, "grant_type": {"client_credentials"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(v.Endpoints.MetaGraph, "/")+"/"+version+"/oauth/access_token",
			strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		parse = func(body []byte) (Result, bool) {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
				return Result{}, false
			}
			return Result{OK: true, Detail: "The app secret works: Meta issued an app access token."}, true
		}
	default:
		return Result{}, fmt.Errorf("integration: no live check for provider %q", provider)
	}
	if err != nil {
		return Result{OK: false, Detail: "The request to the provider cannot be built from these settings."}, nil
	}
	if client == nil {
		return Result{}, errors.New("integration: the verifier has no HTTP client")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return v.transportFailure(ctx, provider, err)
	}
	defer resp.Body.Close()
	body, err := netguard.ReadLimited(resp.Body, netguard.MaxResponseBytes)
	if err != nil {
		var tooLarge *netguard.TooLargeError
		if errors.As(err, &tooLarge) {
			return Result{OK: false, Detail: "The provider's answer is too large to be a model list."}, nil
		}
		return v.transportFailure(ctx, provider, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		reason := "it answered HTTP " + strconv.Itoa(resp.StatusCode)
		return Result{}, &UnavailableError{Provider: provider, Reason: reason, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if r, ok := parse(body); ok {
			return r, nil
		}
		return Result{OK: false, Detail: fmt.Sprintf("The provider answered HTTP %d, but not in the shape of its API (is the base URL right?).", resp.StatusCode)}, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Result{OK: false, Detail: fmt.Sprintf("The provider answered with a redirect (HTTP %d); redirects are not followed (is the base URL right?).", resp.StatusCode)}, nil
	}
	detail := fmt.Sprintf("The provider refused the credentials (HTTP %d).", resp.StatusCode)
	if msg := providerMessage(body, secrets); msg != "" {
		detail = fmt.Sprintf("The provider refused the credentials (HTTP %d): %s", resp.StatusCode, msg)
	}
	return Result{OK: false, Detail: detail}, nil
}

// transportFailure maps an error of the round trip. The *url.Error wrapper is dropped from the
// cause: the cause is logged, and although no secret is in a URL here, a URL may hold a path the
// operator did not mean to log.
func (v *Verifier) transportFailure(ctx context.Context, provider string, err error) (Result, error) {
	if errors.Is(err, netguard.ErrBlocked) {
		return Result{OK: false, Detail: "The base URL points to an address the outbound guard blocks (a private or local network)."}, nil
	}
	if errors.Is(err, netguard.ErrTooManyRedirects) {
		return Result{OK: false, Detail: "The provider answered with a redirect; redirects are not followed (is the base URL right?)."}, nil
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	reason := "it could not be reached"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		reason = "it did not answer in time"
	}
	return Result{}, &UnavailableError{Provider: provider, Reason: reason, cause: err}
}

// countModels parses a model list whose array is under key.
func countModels(key, format string) func([]byte) (Result, bool) {
	return func(body []byte) (Result, bool) {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			return Result{}, false
		}
		var list []json.RawMessage
		if raw, ok := m[key]; !ok || json.Unmarshal(raw, &list) != nil {
			return Result{}, false
		}
		return Result{OK: true, Detail: fmt.Sprintf(format, len(list))}, true
	}
}

// providerMessage extracts error.message, the shape OpenAI, Gemini, Anthropic and Meta share, with
// the secrets removed (some providers quote the key they got) before it is shortened, so no prefix of
// a secret survives the cut.
func providerMessage(body []byte, secrets map[string]string) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	msg := strings.Join(strings.Fields(scrub(e.Error.Message, secrets)), " ")
	if r := []rune(msg); len(r) > 300 {
		msg = string(r[:300]) + "…"
	}
	return msg
}

// scrub removes every secret from a provider's message.
func scrub(msg string, secrets map[string]string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

func retryAfter(h string) int {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n > 0 {
		return n
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return int(d.Seconds()) + 1
		}
	}
	return 0
}

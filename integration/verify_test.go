package integration_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/integration"
	"github.com/wataomi/wataomi/integration/integrationtest"
	"github.com/wataomi/wataomi/netguard"
)

func verifier(t *testing.T, f *integrationtest.Fake, allowLocal bool) *integration.Verifier {
	t.Helper()
	opts := netguard.Options{BlockPrivate: true, MaxRedirects: -1}
	if allowLocal {
		opts.AllowedHosts = []string{"127.0.0.1/32"}
	}
	g, err := netguard.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &integration.Verifier{
		Endpoints: integration.Endpoints{OpenAI: f.URL + "/v1", Gemini: f.URL, Anthropic: f.URL, MetaGraph: f.URL, MetaGraphVersion: "v21.0"},
		Client:    &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Guarded:   g.Client(),
		Timeout:   2 * time.Second,
	}
}

func TestVerify(t *testing.T) {
	f := integrationtest.New(t)
	v := verifier(t, f, true)
	ctx := context.Background()
	const wrongKey = "sk-wrong-key-quoted-by-the-provider-123456"
	compat := map[string]any{"base_url": f.URL + "/v1"}
	meta := map[string]any{"client_id": f.AppID}
	tests := []struct {
		name     string
		provider string
		settings map[string]any
		secrets  map[string]string
		ok       bool
		detail   string
	}{
		{"openai", integration.OpenAI, nil, map[string]string{"api_key": f.APIKey}, true, "The API key works: 2 model(s) are available."},
		{"openai wrong key", integration.OpenAI, nil, map[string]string{"api_key": wrongKey}, false,
			"The provider refused the credentials (HTTP 401): Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys."},
		{"openai compatible", integration.OpenAICompatible, compat, map[string]string{"api_key": f.APIKey}, true, "The API key works: 2 model(s) are available."},
		{"openai compatible wrong path", integration.OpenAICompatible, map[string]any{"base_url": f.URL + "/nope"}, map[string]string{"api_key": f.APIKey}, false,
			"The provider refused the credentials (HTTP 404)."},
		{"gemini", integration.Gemini, nil, map[string]string{"api_key": f.APIKey}, true, "The API key works: 3 model(s) are available."},
		{"gemini wrong key", integration.Gemini, nil, map[string]string{"api_key": wrongKey}, false,
			"The provider refused the credentials (HTTP 400): API key not valid. Please pass a valid API key."},
		{"anthropic", integration.Anthropic, nil, map[string]string{"api_key": f.APIKey}, true, "The API key works: 1 model(s) are available."},
		{"anthropic wrong key", integration.Anthropic, nil, map[string]string{"api_key": wrongKey}, false,
			"The provider refused the credentials (HTTP 401): invalid x-api-key"},
		{"meta", integration.Meta, meta, map[string]string{"client_secret": f.AppSecret}, true, "The app secret works: Meta issued an app access token."},
		{"meta wrong secret", integration.Meta, meta, map[string]string{"client_secret": wrongKey}, false,
			"The provider refused the credentials (HTTP 400): Error validating client secret."},
		{"instagram", integration.Instagram, meta, map[string]string{"client_secret": f.AppSecret}, true, "The app secret works: Meta issued an app access token."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := v.Verify(ctx, tt.provider, tt.settings, tt.secrets)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != tt.ok || res.Detail != tt.detail {
				t.Fatalf("got %+v, want ok=%v %q", res, tt.ok, tt.detail)
			}
			if strings.Contains(res.Detail, wrongKey) || strings.Contains(res.Detail, f.APIKey) || strings.Contains(res.Detail, f.AppSecret) {
				t.Fatalf("the detail carries a secret: %q", res.Detail)
			}
		})
	}

	// What went on the wire: each provider's credential in its own header, Meta's in a POST form,
	// never in a URL.
	for _, r := range f.Requests() {
		if strings.Contains(r.Path, f.APIKey) || strings.Contains(r.Path, f.AppSecret) {
			t.Errorf("a secret travelled in the URL %s", r.Path)
		}
	}
	reqs := f.Requests()
	if got := reqs[len(reqs)-1]; got.Method != http.MethodPost || got.Path != "/v21.0/oauth/access_token" ||
		got.Form["client_id"] != f.AppID || got.Form["grant_type"] != "client_credentials" {
		t.Errorf("meta request %+v", got)
	}
	if _, err := v.Verify(ctx, integration.Meta, map[string]any{"client_id": f.AppID, "graph_api_version": "v23.0"},
		map[string]string{"client_secret": f.AppSecret}); err != nil {
		t.Fatal(err)
	}
	reqs = f.Requests()
	if got := reqs[len(reqs)-1].Path; got != "/v23.0/oauth/access_token" {
		t.Errorf("the integration's graph_api_version was not used: %s", got)
	}
	if _, err := v.Verify(ctx, integration.Anthropic, nil, map[string]string{"api_key": f.APIKey}); err != nil {
		t.Fatal(err)
	}
	reqs = f.Requests()
	if h := reqs[len(reqs)-1].Header; h.Get("anthropic-version") != "2023-06-01" || h.Get("x-api-key") != f.APIKey {
		t.Errorf("anthropic headers %v", h)
	}
}

func TestVerifyUnavailable(t *testing.T) {
	f := integrationtest.New(t)
	v := verifier(t, f, true)
	ctx := context.Background()
	key := map[string]string{"api_key": f.APIKey}

	f.FailNext(http.StatusServiceUnavailable, "7")
	_, err := v.Verify(ctx, integration.OpenAI, nil, key)
	var ue *integration.UnavailableError
	if !errors.As(err, &ue) || ue.Provider != integration.OpenAI || ue.RetryAfter != 7 {
		t.Fatalf("503: %v", err)
	}
	f.FailNext(http.StatusTooManyRequests, "")
	if _, err := v.Verify(ctx, integration.Gemini, nil, key); !errors.As(err, &ue) || ue.RetryAfter != 0 {
		t.Fatalf("429: %v", err)
	}

	// Unreachable: a closed port.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	v2 := *v
	v2.Endpoints.Anthropic = deadURL
	_, err = v2.Verify(ctx, integration.Anthropic, nil, key)
	if !errors.As(err, &ue) || ue.Reason != "it could not be reached" || strings.Contains(err.Error(), f.APIKey) {
		t.Fatalf("unreachable: %v", err)
	}

	// Too slow: the check gives up at its timeout.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	v3 := *v
	v3.Endpoints.OpenAI, v3.Timeout = slow.URL, 200*time.Millisecond
	start := time.Now()
	_, err = v3.Verify(ctx, integration.OpenAI, nil, key)
	if !errors.As(err, &ue) || ue.Reason != "it did not answer in time" || time.Since(start) > 3*time.Second {
		t.Fatalf("slow: %v after %v", err, time.Since(start))
	}
}

// An openai_compatible base URL is the caller's: it goes through the SSRF guard, and the guard's
// refusal is a failed check (the settings are wrong), not an outage.
func TestVerifyGuardsIntegrationURLs(t *testing.T) {
	f := integrationtest.New(t)
	v := verifier(t, f, false) // 127.0.0.1 not allowed
	res, err := v.Verify(context.Background(), integration.OpenAICompatible, map[string]any{"base_url": f.URL + "/v1"},
		map[string]string{"api_key": f.APIKey})
	if err != nil || res.OK || !strings.Contains(res.Detail, "outbound guard") {
		t.Fatalf("got %+v, %v", res, err)
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("the fake received %d request(s) through a blocked URL", n)
	}
	// The configured endpoints are trusted: the same local fake answers through them.
	if res, err := v.Verify(context.Background(), integration.OpenAI, nil, map[string]string{"api_key": f.APIKey}); err != nil || !res.OK {
		t.Fatalf("configured endpoint: %+v, %v", res, err)
	}
	// A redirect is not followed (the key would travel with it).
	redir := httptest.NewServer(http.RedirectHandler(f.URL+"/v1/models", http.StatusFound))
	defer redir.Close()
	v.Endpoints.OpenAI = redir.URL
	if res, err := v.Verify(context.Background(), integration.OpenAI, nil, map[string]string{"api_key": f.APIKey}); err != nil || res.OK ||
		!strings.Contains(res.Detail, "redirect") {
		t.Fatalf("redirect: %+v, %v", res, err)
	}
	// A 200 that is not a model list is a failed check.
	odd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`<html>hi</html>`)) }))
	defer odd.Close()
	v.Endpoints.OpenAI = odd.URL
	if res, err := v.Verify(context.Background(), integration.OpenAI, nil, map[string]string{"api_key": f.APIKey}); err != nil || res.OK ||
		!strings.Contains(res.Detail, "not in the shape of its API") {
		t.Fatalf("odd answer: %+v, %v", res, err)
	}
}

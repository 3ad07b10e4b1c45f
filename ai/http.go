package ai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// caller is what both providers share: the HTTP client, the per-call
// timeout and the key resolver.
type caller struct {
	name    string
	client  *http.Client
	timeout time.Duration
	key     func(context.Context) (string, error)
}

// reply is a provider response that was read completely.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// post sends payload as JSON and reads the answer (at most
// MaxResponseBytes). Transport failures come back already mapped: the
// caller's context ending gives a wrapped ctx.Err(), everything else an
// *Error. Any status is returned as a reply; the provider maps it.
func (c *caller) post(ctx context.Context, url, key string, auth func(http.Header), payload any) (*reply, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, &Error{Code: CodeRejected, Provider: c.name, Message: "the request could not be encoded: " + err.Error()}
	}
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(callCtx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Code: CodeRejected, Provider: c.name, Message: redact("bad provider URL: "+err.Error(), key)}
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "wataomi")
	auth(hr.Header)

	resp, err := c.client.Do(hr)
	if err != nil {
		return nil, c.transportError(ctx, callCtx, key, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, c.transportError(ctx, callCtx, key, err)
	}
	if len(data) > MaxResponseBytes {
		return nil, &Error{Code: CodeUnavailable, Provider: c.name, Status: resp.StatusCode,
			Message: fmt.Sprintf("the response is larger than %d bytes", MaxResponseBytes)}
	}
	return &reply{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// transportError maps a failure to get or read a response.
func (c *caller) transportError(parent, call context.Context, key string, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("ai: %s request: %w", c.name, parent.Err())
	}
	if errors.Is(call.Err(), context.DeadlineExceeded) {
		return &Error{Code: CodeUnavailable, Provider: c.name, Retryable: true,
			Message: fmt.Sprintf("no answer within %s", c.timeout), cause: context.DeadlineExceeded}
	}
	return &Error{Code: CodeUnavailable, Provider: c.name, Retryable: true,
		Message: redact(err.Error(), key), cause: err}
}

// statusError maps a non-2xx status. quotaExhausted marks a 429 that
// waiting will not cure (OpenAI's insufficient_quota).
func (c *caller) statusError(r *reply, key, msg string, retryAfter time.Duration, quotaExhausted bool) *Error {
	msg = clip(redact(msg, key))
	if msg == "" {
		msg = http.StatusText(r.status)
	}
	if ra := parseRetryAfter(r.header.Get("Retry-After")); ra > 0 {
		retryAfter = ra
	}
	e := &Error{Provider: c.name, Status: r.status, Message: msg}
	switch {
	case r.status == http.StatusTooManyRequests:
		e.Code, e.Retryable, e.RetryAfter = CodeRateLimited, !quotaExhausted, retryAfter
	case r.status >= 500, r.status == http.StatusRequestTimeout:
		e.Code, e.Retryable, e.RetryAfter = CodeUnavailable, true, retryAfter
	default:
		e.Code = CodeRejected
	}
	return e
}

// badBody is a 2xx response we cannot understand.
func (c *caller) badBody(r *reply, err error) *Error {
	return &Error{Code: CodeUnavailable, Provider: c.name, Status: r.status,
		Message: "the response could not be decoded: " + err.Error()}
}

// bodySnippet is used as the message of an error response without the
// provider's usual error shape (a proxy's HTML page, for example).
func bodySnippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if strings.HasPrefix(s, "<") {
		return "" // HTML says nothing useful; the status text stands in
	}
	return s
}

func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// redact removes the key from a message, wherever the provider or a
// transport error put it.
func redact(msg, key string) string {
	if key == "" {
		return msg
	}
	return strings.ReplaceAll(msg, key, "[redacted]")
}

const maxMessageBytes = 1000

// clip keeps error messages short enough for logs and problem details.
func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= maxMessageBytes {
		return s
	}
	cut := maxMessageBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// splitMessages builds the system prompt: Request.System, then every
// RoleSystem message, in order, and checks the roles of the others.
func splitMessages(provider string, req Request) (system string, turns []Message, err error) {
	var parts []string
	if s := strings.TrimSpace(req.System); s != "" {
		parts = append(parts, req.System)
	}
	for i, m := range req.Messages {
		switch m.Role {
		case RoleSystem:
			if strings.TrimSpace(m.Content) != "" {
				parts = append(parts, m.Content)
			}
		case RoleUser, RoleAssistant:
			turns = append(turns, m)
		default:
			return "", nil, &Error{Code: CodeRejected, Provider: provider,
				Message: fmt.Sprintf("messages[%d]: role %q is not user, assistant or system", i, m.Role)}
		}
	}
	if len(turns) == 0 {
		return "", nil, &Error{Code: CodeRejected, Provider: provider, Message: "no user or assistant message to send"}
	}
	return strings.Join(parts, "\n\n"), turns, nil
}

// parseJSONAnswer parses a JSON-mode answer. A Markdown code fence around
// it is tolerated; anything after the value is not.
func parseJSONAnswer(provider, text string) (any, error) {
	s := strings.TrimSpace(text)
	if rest, ok := strings.CutPrefix(s, "```"); ok {
		if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
			rest = rest[nl+1:]
		}
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "```"))
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err != nil {
		return nil, &Error{Code: CodeBadJSON, Provider: provider,
			Message: "the model's answer is not valid JSON: " + err.Error(), cause: err}
	}
	return v, nil
}

// modelFor maps a request model to what is sent to the provider and what
// Response.Model says.
func modelFor(provider, id string) (catalogueID, providerID string, m Model, known bool) {
	if id == "" {
		if d, ok := DefaultModel(provider); ok {
			return d.ID, d.ProviderModelID, d, true
		}
	}
	if m, ok := LookupModel(id); ok && m.Provider == provider {
		return m.ID, m.ProviderModelID, m, true
	}
	return id, id, Model{}, false
}

// Package aitest holds httptest fakes of the Gemini and OpenAI chat APIs
// that speak the real wire formats, for tests of package ai and of
// everything built on it (the flow engine's AI nodes, /ai endpoints).
//
//	g := aitest.NewGemini(t)            // base URL for GEMINI_BASE_URL
//	o := aitest.NewOpenAI(t)            // base URL (ending in /v1) for OPENAI_BASE_URL
//	g.Fail(503, "overloaded").Reply("hello")
//	r := ai.New(ai.Options{GeminiBaseURL: g.URL, GeminiKey: "k", OpenAIBaseURL: o.URL, OpenAIKey: "k"})
//	...
//	reqs := g.Requests()                // what was sent: model, messages, temperature, ...
//
// Scripted steps are consumed in order, one per valid request; with none
// left, a fake answers "echo: <last user message>" (in JSON mode the object
// {"echo": "<last user message>"}). Like the real APIs, a fake refuses a
// request without a key, with a wrong key (see RequireKey), with unknown
// fields or with invalid values, and such a refusal consumes no step.
//
// The package deliberately does not import package ai, so ai's own tests
// can use it.
package aitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Provider names.
const (
	Gemini = "gemini"
	OpenAI = "openai"
)

// Message is one decoded conversation turn. Its fields match ai.Message,
// so ai.Message(m) converts it.
type Message struct{ Role, Content string }

// Usage is token usage. Its fields match ai.Usage.
type Usage struct{ PromptTokens, CompletionTokens, TotalTokens int }

// Request is what a fake received, decoded from the provider's format.
type Request struct {
	Provider string // "gemini" | "openai"
	Method   string
	Path     string
	Model    string // from the URL (Gemini) or the body (OpenAI)
	APIKey   string // the key as sent (x-goog-api-key or ?key=; Bearer)
	// System is the system prompt: Gemini's systemInstruction, or OpenAI's
	// system and developer messages joined with a blank line.
	System string
	// Messages are the other turns, with roles "user" and "assistant"
	// (Gemini's "model" becomes "assistant").
	Messages    []Message
	Temperature *float64
	// MaxTokens is Gemini's maxOutputTokens, or OpenAI's
	// max_completion_tokens, else max_tokens.
	MaxTokens *int
	// JSON is Gemini's responseMimeType application/json, or OpenAI's
	// response_format json_object or json_schema.
	JSON bool
	// Body is the raw request body, for assertions on the exact shape.
	Body []byte
	// Valid is false when the fake refused the request (key, shape or
	// values), true when it reached the scripted steps.
	Valid bool
}

// Step scripts one answer.
type Step struct {
	// Text is the answer; "" means the default echo. JSON, when not nil, is
	// marshalled to become the text.
	Text string
	JSON any
	// Empty answers with no text at all (Text and JSON are ignored).
	Empty bool
	// FinishReason is in the provider's vocabulary ("MAX_TOKENS",
	// "length", ...); "" means STOP / stop.
	FinishReason string
	// Usage overrides the default counts (words in, words out); NoUsage
	// leaves usage out of the answer.
	Usage   *Usage
	NoUsage bool
	// Blocked answers with a safety block: Gemini's promptFeedback with
	// this blockReason (for example "SAFETY") and no candidates; OpenAI's
	// message.refusal with this text.
	Blocked string

	// Status ≥ 400 answers with the provider's error body carrying
	// Message. ErrorCode overrides the error's Gemini status (for example
	// "RESOURCE_EXHAUSTED") or OpenAI code (for example
	// "insufficient_quota").
	Status    int
	Message   string
	ErrorCode string
	// RetryAfter is sent as a Retry-After header (OpenAI) or a RetryInfo
	// detail (Gemini).
	RetryAfter time.Duration

	// Body, when set, is written as it is, with Status (200 if 0).
	Body string

	// Delay overrides the fake's Delay for this step.
	Delay time.Duration
}

// Fake is one fake provider. All its methods are safe for concurrent use.
type Fake struct {
	// URL is the base URL to configure: the server root for Gemini, the
	// server root plus /v1 for OpenAI.
	URL string

	provider  string
	srv       *httptest.Server
	done      chan struct{}
	closeOnce sync.Once

	mu    sync.Mutex
	queue []Step
	delay time.Duration
	key   string
	reqs  []Request
	seq   int
}

// NewGemini starts a fake Gemini API, closed when the test ends.
func NewGemini(t testing.TB) *Fake { t.Helper(); return newFake(t, Gemini) }

// NewOpenAI starts a fake OpenAI API, closed when the test ends.
func NewOpenAI(t testing.TB) *Fake { t.Helper(); return newFake(t, OpenAI) }

func newFake(t testing.TB, provider string) *Fake {
	f := &Fake{provider: provider, done: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	if provider == OpenAI {
		f.URL += "/v1"
	}
	t.Cleanup(f.Close)
	return f
}

// Close stops the server; delayed answers in flight end at once. Later
// calls fail with a connection error, which simulates a provider that is
// down. It is called when the test ends.
func (f *Fake) Close() {
	f.closeOnce.Do(func() {
		close(f.done)
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
}

// Reply queues an answer with this text.
func (f *Fake) Reply(text string) *Fake { return f.Push(Step{Text: text}) }

// ReplyJSON queues an answer whose text is v marshalled to JSON.
func (f *Fake) ReplyJSON(v any) *Fake { return f.Push(Step{JSON: v}) }

// Fail queues an error answer with this HTTP status and message, in the
// provider's error format.
func (f *Fake) Fail(status int, message string) *Fake {
	return f.Push(Step{Status: status, Message: message})
}

// Push queues steps.
func (f *Fake) Push(steps ...Step) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(f.queue, steps...)
	return f
}

// Delay makes every following answer wait d first (a step's own Delay
// wins). The wait ends early when the client goes away.
func (f *Fake) Delay(d time.Duration) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
	return f
}

// RequireKey makes the fake refuse any other key, as the real API does an
// invalid one. Without it any non-empty key is accepted.
func (f *Fake) RequireKey(key string) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key = key
	return f
}

// Requests returns a copy of every request received, in order.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Request, len(f.reqs))
	for i, r := range f.reqs {
		out[i] = r.clone()
	}
	return out
}

// LastRequest returns the last request received.
func (f *Fake) LastRequest() (Request, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return Request{}, false
	}
	return f.reqs[len(f.reqs)-1].clone(), true
}

// Pending is the number of scripted steps not consumed yet.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue)
}

func (r Request) clone() Request {
	r.Messages = slices.Clone(r.Messages)
	r.Body = slices.Clone(r.Body)
	if r.Temperature != nil {
		v := *r.Temperature
		r.Temperature = &v
	}
	if r.MaxTokens != nil {
		v := *r.MaxTokens
		r.MaxTokens = &v
	}
	return r
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	switch f.provider {
	case Gemini:
		f.serveGemini(w, r, body)
	case OpenAI:
		f.serveOpenAI(w, r, body)
	}
}

// record stores a request and, for a valid one, takes the next step and
// the delay that applies to it.
func (f *Fake) record(rec Request) (Step, time.Duration, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, rec.clone())
	f.seq++
	if !rec.Valid {
		return Step{}, 0, f.seq
	}
	var st Step
	if len(f.queue) > 0 {
		st = f.queue[0]
		f.queue = f.queue[1:]
	}
	d := f.delay
	if st.Delay > 0 {
		d = st.Delay
	}
	return st, d, f.seq
}

func (f *Fake) expectedKey() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.key
}

// wait sleeps d, or less if the client leaves or the fake closes; it
// reports whether the answer should still be written.
func (f *Fake) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-f.done:
		return false
	}
}

// answer is what a step resolves to for a valid request.
type answer struct {
	text   string
	finish string
	usage  *Usage
}

func (st Step) answer(rec Request, defaultFinish string) (answer, error) {
	a := answer{text: st.Text, finish: st.FinishReason}
	switch {
	case st.Empty:
		a.text = ""
	case st.JSON != nil:
		b, err := json.Marshal(st.JSON)
		if err != nil {
			return a, fmt.Errorf("aitest: ReplyJSON value: %w", err)
		}
		a.text = string(b)
	case a.text == "":
		last := ""
		for _, m := range rec.Messages {
			if m.Role == "user" {
				last = m.Content
			}
		}
		if rec.JSON {
			b, _ := json.Marshal(map[string]string{"echo": last})
			a.text = string(b)
		} else {
			a.text = "echo: " + last
		}
	}
	if a.finish == "" {
		a.finish = defaultFinish
	}
	switch {
	case st.NoUsage:
	case st.Usage != nil:
		u := *st.Usage
		a.usage = &u
	default:
		in := len(strings.Fields(rec.System))
		for _, m := range rec.Messages {
			in += len(strings.Fields(m.Content))
		}
		out := len(strings.Fields(a.text))
		a.usage = &Usage{PromptTokens: in, CompletionTokens: out, TotalTokens: in + out}
	}
	return a, nil
}

// writeRaw writes a step's verbatim Body.
func writeRaw(w http.ResponseWriter, st Step) {
	status := st.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, st.Body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// unknownField turns encoding/json's message into the field name, if that
// is what it is about.
func unknownField(err error) (string, bool) {
	name, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	return strings.Trim(name, `"`), ok
}

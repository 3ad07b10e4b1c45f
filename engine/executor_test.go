package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/ai/aitest"
	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/netguard"
)

// ---------------------------------------------------------------------------
// Test graphs

// gnode is one node of a test graph.
type gnode struct {
	id, typ string
	cfg     map[string]any
	onError string
	retry   map[string]any
}

// gedge is one edge of a test graph; handle "" leaves sourceHandle out.
type gedge struct{ src, dst, handle string }

// buildGraph writes a React-Flow style graph and checks that it passes the
// same checks a save and a publish apply (no error-severity issue), so every
// test runs a graph the product would accept.
func buildGraph(tb testing.TB, nodes []gnode, edges []gedge) []byte {
	tb.Helper()
	ns := make([]any, len(nodes))
	for i, n := range nodes {
		data := map[string]any{"type": n.typ, "label": "Node " + n.id}
		if n.cfg != nil {
			data["config"] = n.cfg
		}
		if n.onError != "" {
			data["on_error"] = n.onError
		}
		if n.retry != nil {
			data["retry"] = n.retry
		}
		ns[i] = map[string]any{"id": n.id, "type": "custom", "position": map[string]any{"x": 200 * i, "y": 0}, "data": data}
	}
	es := make([]any, len(edges))
	for i, e := range edges {
		m := map[string]any{"id": fmt.Sprintf("e%d-%s-%s", i, e.src, e.dst), "source": e.src, "target": e.dst}
		if e.handle != "" {
			m["sourceHandle"] = e.handle
		}
		es[i] = m
	}
	g, err := json.Marshal(map[string]any{"nodes": ns, "edges": es})
	if err != nil {
		tb.Fatalf("marshal graph: %v", err)
	}
	assertValidGraph(tb, g)
	return g
}

// assertValidGraph fails the test when the graph has an error-severity issue
// in the structural checks (every save) or the completeness checks (publish).
func assertValidGraph(tb testing.TB, g []byte) {
	tb.Helper()
	parsed, err := flow.Parse(g)
	if err != nil {
		tb.Fatalf("flow.Parse: %v", err)
	}
	issues := parsed.CheckStructure("", len(g), flow.Limits{})
	issues = append(issues, parsed.CheckCompleteness("")...)
	bad := false
	for _, is := range issues {
		if is.Severity == flow.SeverityError {
			tb.Errorf("test graph issue %s at %s: %s", is.Code, is.Pointer, is.Message)
			bad = true
		}
	}
	if bad {
		tb.FailNow()
	}
}

func mustCompile(tb testing.TB, g []byte) *Plan {
	tb.Helper()
	p, err := Compile(g)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return p
}

// manual is a trigger-manual node with id "t".
func manual() gnode { return gnode{id: "t", typ: "trigger-manual"} }

func transform(id string, mappings map[string]any) gnode {
	return gnode{id: id, typ: "logic-transform", cfg: map[string]any{"mappings": mappings}}
}

func response(id string, body any) gnode {
	return gnode{id: id, typ: "response-data", cfg: map[string]any{"body": body}}
}

func httpNode(id, url string) gnode {
	return gnode{id: id, typ: "action-http", cfg: map[string]any{"url": url}}
}

func condition(id, op string, v1, v2 any) gnode {
	cfg := map[string]any{"condition_type": op, "value1": v1}
	if v2 != nil {
		cfg["value2"] = v2
	}
	return gnode{id: id, typ: "logic-condition", cfg: cfg}
}

// chain links ids with default-handle edges.
func chain(ids ...string) []gedge {
	var out []gedge
	for i := 1; i < len(ids); i++ {
		out = append(out, gedge{src: ids[i-1], dst: ids[i]})
	}
	return out
}

// ---------------------------------------------------------------------------
// The rig: an executor wired to the AI fakes, an SSRF guard that lets
// 127.0.0.1 through (httptest servers), a recorded Sleep and an optional
// manual clock.

type rig struct {
	gemini, openai *aitest.Fake
	x              *Executor

	mu     sync.Mutex
	sleeps []time.Duration
	clock  time.Time // zero: the real clock
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{gemini: aitest.NewGemini(t), openai: aitest.NewOpenAI(t)}
	guard, err := netguard.New(netguard.Options{AllowedHosts: []string{"127.0.0.1/32"}, BlockPrivate: true})
	if err != nil {
		t.Fatalf("netguard.New: %v", err)
	}
	r.x = &Executor{
		Services: &Services{
			AI:   ai.New(ai.Options{GeminiBaseURL: r.gemini.URL, GeminiKey: "k", OpenAIBaseURL: r.openai.URL, OpenAIKey: "k"}),
			HTTP: guard.Client(),
		},
		Now: r.now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			r.mu.Lock()
			r.sleeps = append(r.sleeps, d)
			r.mu.Unlock()
			return ctx.Err()
		},
	}
	return r
}

func (r *rig) now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clock.IsZero() {
		return time.Now().UTC()
	}
	return r.clock
}

func (r *rig) setClock(t time.Time) {
	r.mu.Lock()
	r.clock = t
	r.mu.Unlock()
}

func (r *rig) slept() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sleeps)
}

func (r *rig) info(input map[string]any) RunInfo {
	now := r.now()
	return RunInfo{ExecutionID: 1, Mode: "manual", FlowID: 1, FlowName: "f", StartedAt: now, QueuedAt: now, Input: input}
}

// run compiles g and executes it once with a fresh MemorySink.
func (r *rig) run(t testing.TB, g []byte, input map[string]any) (Outcome, *MemorySink) {
	t.Helper()
	return r.runCtx(context.Background(), t, g, input)
}

func (r *rig) runCtx(ctx context.Context, t testing.TB, g []byte, input map[string]any) (Outcome, *MemorySink) {
	t.Helper()
	st := NewState(mustCompile(t, g), r.info(input), nil)
	sink := NewMemorySink()
	return r.x.Execute(ctx, st, sink), sink
}

// ---------------------------------------------------------------------------
// Assertions

// canon is v as canonical JSON (sorted keys, numbers as written), so values
// built in tests compare with json.Number-bearing outputs.
func canon(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal %#v: %v", v, err)
	}
	var x any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		tb.Fatalf("decode: %v", err)
	}
	b, _ = json.Marshal(x)
	return string(b)
}

func jsonEqual(tb testing.TB, what string, got, want any) {
	tb.Helper()
	if g, w := canon(tb, got), canon(tb, want); g != w {
		tb.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func record(tb testing.TB, sink *MemorySink, id string) *Record {
	tb.Helper()
	sink.mu.Lock()
	rec := sink.Records[id]
	sink.mu.Unlock()
	if rec == nil {
		tb.Fatalf("node %q has no record", id)
	}
	return rec
}

// wantStatuses checks node record statuses; "" means the node has no record.
func wantStatuses(tb testing.TB, sink *MemorySink, want map[string]string) {
	tb.Helper()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for id, status := range want {
		rec := sink.Records[id]
		switch {
		case status == "" && rec != nil:
			tb.Errorf("node %q: want no record, got one with status %s", id, rec.Status)
		case status != "" && rec == nil:
			tb.Errorf("node %q: want status %s, got no record", id, status)
		case status != "" && rec.Status != status:
			tb.Errorf("node %q: status %s, want %s (error %v)", id, rec.Status, status, rec.Error)
		}
	}
}

func wantOutcome(tb testing.TB, out Outcome, status, code string) {
	tb.Helper()
	if out.Status != status {
		tb.Fatalf("outcome status %q, want %q (error %v at %q)", out.Status, status, out.Error, out.ErrorNode)
	}
	switch {
	case code == "" && out.Error != nil && status != "interrupted":
		tb.Errorf("outcome error %v, want none", out.Error)
	case code != "" && (out.Error == nil || out.Error.Code != code):
		tb.Errorf("outcome error %v, want code %q", out.Error, code)
	}
}

// trace lists "event:node" for the node events, in order.
func trace(sink *MemorySink) []string {
	sink.mu.Lock()
	defer sink.mu.Unlock()
	var out []string
	for _, e := range sink.Events {
		id, _ := e.Data["node_id"].(string)
		out = append(out, e.Name+":"+id)
	}
	return out
}

func indexOf(list []string, s string) int { return slices.Index(list, s) }

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// HTTP servers

// jsonServer answers every request with status and body, counting requests.
func jsonServer(t testing.TB, status int, body any) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	b, _ := json.Marshal(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// scriptedServer answers with the statuses in order (200 once they run out).
func scriptedServer(t testing.TB, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1))
		status := http.StatusOK
		if n <= len(statuses) {
			status = statuses[n-1]
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"call":%d}`, n)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// slowServer holds every request until the client goes away (or 10 s, or
// the test ends); arrived receives one value per request.
func slowServer(t testing.TB) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	return srv, arrived
}

// ---------------------------------------------------------------------------
// Tests

func TestLinearFlow(t *testing.T) {
	r := newRig(t)
	trig := manual()
	trig.cfg = map[string]any{"inputFields": []any{
		map[string]any{"key": "name", "type": "text", "required": true},
		map[string]any{"key": "count", "type": "number", "default": 3},
	}}
	g := buildGraph(t, []gnode{
		trig,
		transform("x", map[string]any{
			"greeting": `"hello " + trigger.input.name`,
			"double":   `trigger.input.count * 2`,
			"flow":     `flow.name + "#" + string(execution.id)`,
		}),
		response("r", map[string]any{"msg": "{{x.greeting}}", "double": "{{x.double}}", "flow": "{{x.flow}}"}),
	}, chain("t", "x", "r"))

	out, sink := r.run(t, g, map[string]any{"name": "Ada", "extra": true})
	wantOutcome(t, out, "completed", "")
	if out.HasErrors || out.Completed != 3 || out.Failed != 0 || out.Skipped != 0 {
		t.Errorf("outcome counts: %+v", out)
	}
	wantBody := map[string]any{"msg": "hello Ada", "double": 6, "flow": "f#1"}
	jsonEqual(t, "output_data", out.OutputData, map[string]any{"status": 200, "body": wantBody, "headers": map[string]any{}})
	jsonEqual(t, "response record output", record(t, sink, "r").Output, out.OutputData)
	// The trigger keeps unknown input keys and fills defaults.
	jsonEqual(t, "trigger input", record(t, sink, "t").Output.(map[string]any)["input"],
		map[string]any{"name": "Ada", "count": 3, "extra": true})

	want := []string{
		"node.started:t", "node.completed:t",
		"node.started:x", "node.completed:x",
		"node.started:r", "node.completed:r",
	}
	if got := trace(sink); !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got  %v\n want %v", got, want)
	}
	for _, id := range []string{"t", "x", "r"} {
		rec := record(t, sink, id)
		if rec.Status != NodeCompleted || rec.Attempt != 1 || rec.Handle != "out" || rec.CompletedAt == nil || rec.DurationMS == nil {
			t.Errorf("record %s: %+v", id, rec)
		}
		if rec.Label != "Node "+id {
			t.Errorf("record %s label %q", id, rec.Label)
		}
	}

	// The required input field is enforced.
	out, sink = r.run(t, g, map[string]any{"count": 1})
	wantOutcome(t, out, "failed", "invalid-input")
	if !strings.Contains(out.Error.Message, `"name" is required`) {
		t.Errorf("message %q", out.Error.Message)
	}
	wantStatuses(t, sink, map[string]string{"t": NodeFailed, "x": "", "r": ""})
}

func TestJoins(t *testing.T) {
	r := newRig(t)

	t.Run("after a branch", func(t *testing.T) {
		// t → cond → (true: b, false: c) → d
		g := buildGraph(t, []gnode{
			manual(),
			condition("cond", "equals", "{{t.input.go}}", "yes"),
			transform("b", map[string]any{"v": `"from b"`}),
			transform("c", map[string]any{"v": `"from c"`}),
			response("d", map[string]any{"v": "{{b.v}}"}),
		}, []gedge{{"t", "cond", ""}, {"cond", "b", "true"}, {"cond", "c", "false"}, {"b", "d", ""}, {"c", "d", ""}})
		out, sink := r.run(t, g, map[string]any{"go": "yes"})
		wantOutcome(t, out, "completed", "")
		wantStatuses(t, sink, map[string]string{"b": NodeCompleted, "c": NodeSkipped, "d": NodeCompleted})
		tr := trace(sink)
		if n := countOf(tr, "node.started:d"); n != 1 {
			t.Errorf("d started %d times: %v", n, tr)
		}
		if indexOf(tr, "node.completed:b") > indexOf(tr, "node.started:d") {
			t.Errorf("d started before b completed: %v", tr)
		}
		jsonEqual(t, "d body", out.OutputData.(map[string]any)["body"], map[string]any{"v": "from b"})
		if out.Skipped != 1 || out.Completed != 4 {
			t.Errorf("counts %+v", out)
		}
		if rec := record(t, sink, "c"); rec.Attempt != 0 || rec.Output != nil {
			t.Errorf("skipped record %+v", rec)
		}
	})

	t.Run("fan-out then fan-in", func(t *testing.T) {
		// t → p_b, t → p_a; both → j. Ties run in node-id order: p_a first.
		g := buildGraph(t, []gnode{
			manual(),
			transform("p_b", map[string]any{"v": `2`}),
			transform("p_a", map[string]any{"v": `1`}),
			transform("j", map[string]any{"sum": `p_a.v + p_b.v`}),
		}, []gedge{{"t", "p_b", ""}, {"t", "p_a", ""}, {"p_b", "j", ""}, {"p_a", "j", ""}})
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "completed", "")
		tr := trace(sink)
		want := []string{
			"node.started:t", "node.completed:t", "node.started:p_a", "node.completed:p_a",
			"node.started:p_b", "node.completed:p_b", "node.started:j", "node.completed:j",
		}
		if !reflect.DeepEqual(tr, want) {
			t.Errorf("events:\n got  %v\n want %v", tr, want)
		}
		jsonEqual(t, "j output", record(t, sink, "j").Output, map[string]any{"sum": 3})
	})

	t.Run("all parents skipped", func(t *testing.T) {
		// cond is true, so both false-side parents of j are skipped; j and its child too.
		g := buildGraph(t, []gnode{
			manual(),
			condition("cond", "is_empty", "{{t.input.none}}", nil),
			transform("ok", map[string]any{"v": `1`}),
			transform("c1", map[string]any{"v": `1`}),
			transform("c2", map[string]any{"v": `2`}),
			transform("j", map[string]any{"v": `3`}),
			transform("after", map[string]any{"v": `4`}),
		}, []gedge{{"t", "cond", ""}, {"cond", "ok", "true"}, {"cond", "c1", "false"}, {"cond", "c2", "false"},
			{"c1", "j", ""}, {"c2", "j", ""}, {"j", "after", ""}})
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "completed", "")
		wantStatuses(t, sink, map[string]string{"ok": NodeCompleted, "c1": NodeSkipped, "c2": NodeSkipped, "j": NodeSkipped, "after": NodeSkipped})
		if out.Skipped != 4 {
			t.Errorf("skipped %d, want 4", out.Skipped)
		}
		tr := trace(sink)
		for _, id := range []string{"c1", "c2", "j", "after"} {
			if countOf(tr, "node.skipped:"+id) != 1 || countOf(tr, "node.started:"+id) != 0 {
				t.Errorf("node %s events: %v", id, tr)
			}
		}
	})
}

func TestOnError(t *testing.T) {
	r := newRig(t)
	failing, _ := jsonServer(t, http.StatusInternalServerError, map[string]any{"oops": true})

	kinds := []struct {
		name string
		node func(onError string) gnode
		code string
	}{
		{"cel-error", func(onError string) gnode {
			n := transform("bad", map[string]any{"v": `trigger.input.nope`})
			n.onError = onError
			return n
		}, "expression-error"},
		{"http-500", func(onError string) gnode {
			n := httpNode("bad", failing.URL+"/x")
			n.onError = onError
			return n
		}, "http-status"},
	}
	for _, k := range kinds {
		t.Run(k.name+"/stop", func(t *testing.T) {
			g := buildGraph(t, []gnode{manual(), k.node("stop"), transform("next", map[string]any{"v": `1`})}, chain("t", "bad", "next"))
			out, sink := r.run(t, g, nil)
			wantOutcome(t, out, "failed", k.code)
			if out.ErrorNode != "bad" || out.HasErrors {
				t.Errorf("outcome %+v", out)
			}
			wantStatuses(t, sink, map[string]string{"bad": NodeFailed, "next": ""})
			rec := record(t, sink, "bad")
			if rec.Error == nil || rec.Error.Code != k.code || rec.Handle != "" || rec.Output != nil {
				t.Errorf("record %+v (error %v)", rec, rec.Error)
			}
			if got := countOf(trace(sink), "node.failed:bad"); got != 1 {
				t.Errorf("node.failed events: %d", got)
			}
		})
		t.Run(k.name+"/continue", func(t *testing.T) {
			g := buildGraph(t, []gnode{manual(), k.node("continue"),
				response("next", map[string]any{"code": "{{bad.error.code}}", "msg": "{{bad.error.message}}"})}, chain("t", "bad", "next"))
			out, sink := r.run(t, g, nil)
			wantOutcome(t, out, "completed", "")
			if !out.HasErrors || out.Failed != 1 {
				t.Errorf("outcome %+v", out)
			}
			wantStatuses(t, sink, map[string]string{"bad": NodeFailed, "next": NodeCompleted})
			rec := record(t, sink, "bad")
			if rec.Handle != "out" || rec.Error == nil || rec.Error.Code != k.code {
				t.Errorf("record handle %q error %v", rec.Handle, rec.Error)
			}
			jsonEqual(t, "failed output", rec.Output, map[string]any{"error": map[string]any{"code": k.code, "message": rec.Error.Message}})
			body := out.OutputData.(map[string]any)["body"].(map[string]any)
			if body["code"] != k.code || body["msg"] != rec.Error.Message {
				t.Errorf("the next node read %v", body)
			}
		})
		t.Run(k.name+"/branch", func(t *testing.T) {
			g := buildGraph(t, []gnode{manual(), k.node("branch"),
				transform("ok_path", map[string]any{"v": `1`}),
				transform("ok_after", map[string]any{"v": `1`}),
				transform("err_path", map[string]any{"code": `bad.error.code`}),
			}, []gedge{{"t", "bad", ""}, {"bad", "ok_path", "out"}, {"ok_path", "ok_after", ""}, {"bad", "err_path", "error"}})
			out, sink := r.run(t, g, nil)
			wantOutcome(t, out, "completed", "")
			if !out.HasErrors {
				t.Errorf("has_errors is false")
			}
			wantStatuses(t, sink, map[string]string{"bad": NodeFailed, "err_path": NodeCompleted, "ok_path": NodeSkipped, "ok_after": NodeSkipped})
			if rec := record(t, sink, "bad"); rec.Handle != "error" {
				t.Errorf("handle %q, want error", rec.Handle)
			}
			jsonEqual(t, "error path output", record(t, sink, "err_path").Output, map[string]any{"code": k.code})
		})
	}

	t.Run("condition/branch on type-mismatch", func(t *testing.T) {
		c := condition("cond", "greater_than", "abc", 5)
		c.onError = "branch"
		g := buildGraph(t, []gnode{manual(), c,
			transform("yes", map[string]any{"v": `1`}), transform("no", map[string]any{"v": `1`}), transform("oops", map[string]any{"v": `1`}),
		}, []gedge{{"t", "cond", ""}, {"cond", "yes", "true"}, {"cond", "no", "false"}, {"cond", "oops", "error"}})
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "completed", "")
		wantStatuses(t, sink, map[string]string{"cond": NodeFailed, "yes": NodeSkipped, "no": NodeSkipped, "oops": NodeCompleted})
		if rec := record(t, sink, "cond"); rec.Error == nil || rec.Error.Code != "type-mismatch" {
			t.Errorf("cond error %v", rec.Error)
		}
	})
}

func TestRetries(t *testing.T) {
	retry := map[string]any{"max_attempts": 3, "backoff_ms": 100, "exponential": true}
	cases := []struct {
		name        string
		statuses    []int
		retry       map[string]any
		status      string
		attempt     int
		hits        int32
		sleeps      []time.Duration
		failedEvent int
	}{
		{"503 then 200", []int{503, 200}, retry, NodeCompleted, 2, 2, []time.Duration{100 * time.Millisecond}, 1},
		{"429 then 200", []int{429}, retry, NodeCompleted, 2, 2, []time.Duration{100 * time.Millisecond}, 1},
		{"400 is not retried", []int{400}, retry, NodeFailed, 1, 1, nil, 1},
		{"three 503s exhaust the attempts", []int{503, 503, 503}, retry, NodeFailed, 3, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, 3},
		{"constant backoff", []int{503, 503, 503}, map[string]any{"max_attempts": 3, "backoff_ms": 100, "exponential": false}, NodeFailed, 3, 3,
			[]time.Duration{100 * time.Millisecond, 100 * time.Millisecond}, 3},
		{"no retry policy", []int{503}, nil, NodeFailed, 1, 1, nil, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			srv, hits := scriptedServer(t, tc.statuses...)
			h := httpNode("h", srv.URL+"/flaky")
			h.retry = tc.retry
			g := buildGraph(t, []gnode{manual(), h, response("r", map[string]any{"call": "{{h.body.call}}"})}, chain("t", "h", "r"))
			out, sink := r.run(t, g, nil)
			rec := record(t, sink, "h")
			if rec.Status != tc.status || rec.Attempt != tc.attempt {
				t.Errorf("record status %s attempt %d, want %s attempt %d (error %v)", rec.Status, rec.Attempt, tc.status, tc.attempt, rec.Error)
			}
			if got := hits.Load(); got != tc.hits {
				t.Errorf("server saw %d requests, want %d", got, tc.hits)
			}
			if got := r.slept(); !reflect.DeepEqual(got, tc.sleeps) {
				t.Errorf("backoffs %v, want %v", got, tc.sleeps)
			}
			tr := trace(sink)
			if got := countOf(tr, "node.failed:h"); got != tc.failedEvent {
				t.Errorf("node.failed events %d, want %d: %v", got, tc.failedEvent, tr)
			}
			if got := countOf(tr, "node.started:h"); got != tc.attempt {
				t.Errorf("node.started events %d, want %d", got, tc.attempt)
			}
			if tc.status == NodeCompleted {
				wantOutcome(t, out, "completed", "")
				jsonEqual(t, "output", out.OutputData.(map[string]any)["body"], map[string]any{"call": tc.attempt})
				// The failed attempts' events said they would be retried.
				for _, e := range sink.Events {
					if e.Name == "node.failed" && e.Data["will_retry"] != true {
						t.Errorf("node.failed before a retry has will_retry=%v", e.Data["will_retry"])
					}
				}
			} else {
				wantOutcome(t, out, "failed", "http-status")
				if rec.Error.Retryable != (tc.statuses[0] >= 500) {
					t.Errorf("retryable %v", rec.Error.Retryable)
				}
			}
		})
	}
}

func TestLimits(t *testing.T) {
	big := func(n int) string { return `"` + strings.Repeat("x", n) + `"` }

	t.Run("max steps", func(t *testing.T) {
		r := newRig(t)
		r.x.Limits.MaxSteps = 3
		g := buildGraph(t, []gnode{manual(), transform("a", map[string]any{"v": `1`}), transform("b", map[string]any{"v": `2`}),
			transform("c", map[string]any{"v": `3`}), transform("d", map[string]any{"v": `4`})}, chain("t", "a", "b", "c", "d"))
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "failed", "limit-exceeded")
		if out.ErrorNode != "c" || !strings.Contains(out.Error.Message, "EXECUTION_MAX_STEPS (3") {
			t.Errorf("outcome %+v / %v", out, out.Error)
		}
		wantStatuses(t, sink, map[string]string{"b": NodeCompleted, "c": NodeFailed, "d": ""})
	})

	t.Run("max steps counts retries", func(t *testing.T) {
		r := newRig(t)
		r.x.Limits.MaxSteps = 3
		srv, hits := scriptedServer(t, 503, 503, 503, 503)
		h := httpNode("h", srv.URL)
		h.retry = map[string]any{"max_attempts": 5, "backoff_ms": 100}
		g := buildGraph(t, []gnode{manual(), h}, chain("t", "h"))
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "failed", "limit-exceeded")
		if hits.Load() != 2 { // t is step 1, then two attempts of h
			t.Errorf("server saw %d requests, want 2", hits.Load())
		}
		wantStatuses(t, sink, map[string]string{"h": NodeFailed})
	})

	t.Run("node output", func(t *testing.T) {
		r := newRig(t)
		r.x.Limits.MaxNodeOutput = 300
		g := buildGraph(t, []gnode{manual(), transform("small", map[string]any{"v": big(100)}),
			transform("huge", map[string]any{"v": big(400)}), transform("after", map[string]any{"v": `1`})}, chain("t", "small", "huge", "after"))
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "failed", "limit-exceeded")
		if out.ErrorNode != "huge" || !strings.Contains(out.Error.Message, "over the limit of 300") {
			t.Errorf("outcome at %q: %v", out.ErrorNode, out.Error)
		}
		wantStatuses(t, sink, map[string]string{"small": NodeCompleted, "huge": NodeFailed, "after": ""})
	})

	t.Run("total output", func(t *testing.T) {
		r := newRig(t)
		r.x.Limits.MaxTotalOutput = 2500
		g := buildGraph(t, []gnode{manual(), transform("a", map[string]any{"v": big(1000)}),
			transform("b", map[string]any{"v": big(1000)}), transform("c", map[string]any{"v": big(1000)}),
			transform("d", map[string]any{"v": `1`})}, chain("t", "a", "b", "c", "d"))
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "failed", "limit-exceeded")
		if out.ErrorNode != "c" || !strings.Contains(out.Error.Message, "run's outputs") {
			t.Errorf("outcome at %q: %v", out.ErrorNode, out.Error)
		}
		wantStatuses(t, sink, map[string]string{"a": NodeCompleted, "b": NodeCompleted, "c": NodeFailed, "d": ""})
	})

	timeouts := []struct {
		name        string
		nodeTimeout time.Duration
		timeoutMS   any
		want        time.Duration
	}{
		{"NODE_TIMEOUT", 200 * time.Millisecond, nil, 200 * time.Millisecond},
		{"timeout_ms", 0, 1000, time.Second},
	}
	for _, tc := range timeouts {
		t.Run("node timeout/"+tc.name, func(t *testing.T) {
			r := newRig(t)
			r.x.Limits.NodeTimeout = tc.nodeTimeout
			srv, _ := slowServer(t)
			h := httpNode("h", srv.URL)
			if tc.timeoutMS != nil {
				h.cfg["timeout_ms"] = tc.timeoutMS
			}
			g := buildGraph(t, []gnode{manual(), h, transform("after", map[string]any{"v": `1`})}, chain("t", "h", "after"))
			start := time.Now()
			out, sink := r.run(t, g, nil)
			took := time.Since(start)
			wantOutcome(t, out, "failed", "timeout")
			if took < tc.want || took > tc.want+2*time.Second {
				t.Errorf("the run took %s, want about %s", took, tc.want)
			}
			if !strings.Contains(out.Error.Message, tc.want.String()) {
				t.Errorf("message %q does not name %s", out.Error.Message, tc.want)
			}
			wantStatuses(t, sink, map[string]string{"h": NodeFailed, "after": ""})
		})
	}

	t.Run("run time", func(t *testing.T) {
		r := newRig(t)
		srv, _ := slowServer(t)
		g := buildGraph(t, []gnode{manual(), httpNode("h", srv.URL), transform("after", map[string]any{"v": `1`})}, chain("t", "h", "after"))
		ctx, cancel := context.WithTimeoutCause(context.Background(), 200*time.Millisecond, ErrRunTimeLimit)
		defer cancel()
		start := time.Now()
		out, sink := r.runCtx(ctx, t, g, nil)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the run took %s", took)
		}
		wantOutcome(t, out, "failed", "limit-exceeded")
		if out.ErrorNode != "h" || !strings.Contains(out.Error.Message, "EXECUTION_MAX_RUN_SECONDS") {
			t.Errorf("outcome at %q: %v", out.ErrorNode, out.Error)
		}
		wantStatuses(t, sink, map[string]string{"h": NodeFailed, "after": ""})
		if got := countOf(trace(sink), "node.failed:h"); got != 1 {
			t.Errorf("node.failed events %d", got)
		}
	})
}

func TestReferences(t *testing.T) {
	r := newRig(t)
	api, _ := jsonServer(t, 200, map[string]any{
		"total": 42, "ratio": 0.5, "flag": true, "nul": nil, "s": "str",
		"obj": map[string]any{"b": "<x>", "a": 1}, "list": []any{1, "two"},
	})
	bad := transform("bad", map[string]any{"v": `trigger.input.nope`})
	bad.onError = "continue"

	type expect struct {
		code    string   // "" = the run completes
		msgs    []string // substrings of the error message
		body    any      // the response body (when code == "")
		inputIs func(t *testing.T, in map[string]any)
	}
	cases := []struct {
		name  string
		nodes []gnode
		edges []gedge
		input map[string]any
		want  expect
	}{
		{
			name:  "unknown key names the available keys",
			nodes: []gnode{manual(), response("r", map[string]any{"v": "{{t.input.nope}}"})},
			edges: chain("t", "r"),
			input: map[string]any{"beta": 1, "alpha": 2},
			want:  expect{code: "unresolved-reference", msgs: []string{"{{t.input.nope}}", `key "nope" not found in t.input`, "available keys: alpha, beta"}},
		},
		{
			name:  "unknown key of a node output",
			nodes: []gnode{manual(), httpNode("h", api.URL), response("r", map[string]any{"v": "{{h.text}}"})},
			edges: chain("t", "h", "r"),
			want:  expect{code: "unresolved-reference", msgs: []string{`key "text" not found`, "available keys: body, duration_ms, headers, status"}},
		},
		{
			name: "skipped node",
			nodes: []gnode{manual(), condition("cond", "equals", 1, 1),
				transform("b", map[string]any{"v": `1`}), transform("c", map[string]any{"v": `2`}),
				response("d", map[string]any{"v": "{{c.v}}"})},
			edges: []gedge{{"t", "cond", ""}, {"cond", "b", "true"}, {"cond", "c", "false"}, {"b", "d", ""}, {"c", "d", ""}},
			want:  expect{code: "unresolved-reference", msgs: []string{"{{c.v}}", `node "c" was skipped`}},
		},
		{
			name: "skipped node with a default",
			nodes: []gnode{manual(), condition("cond", "equals", 1, 1),
				transform("b", map[string]any{"v": `1`}), transform("c", map[string]any{"v": `2`}),
				response("d", map[string]any{"v": "{{c.v ?? 7}}"})},
			edges: []gedge{{"t", "cond", ""}, {"cond", "b", "true"}, {"cond", "c", "false"}, {"b", "d", ""}, {"c", "d", ""}},
			want:  expect{body: map[string]any{"v": 7}},
		},
		{
			name:  "node that has not run",
			nodes: []gnode{manual(), response("a", map[string]any{"v": "{{b.v}}"}), transform("b", map[string]any{"v": `1`})},
			edges: chain("t", "a", "b"),
			want:  expect{code: "unresolved-reference", msgs: []string{`node "b" has not run`}},
		},
		{
			// A node that failed under on_error continue has the output {error}:
			// its error is readable (that is what the error handling needs), any
			// other key is unresolved like a missing key.
			name:  "failed node: its error is readable",
			nodes: []gnode{manual(), bad, response("r", map[string]any{"code": "{{bad.error.code}}", "keys": "{{bad.error}}"})},
			edges: chain("t", "bad", "r"),
			want: expect{inputIs: func(t *testing.T, in map[string]any) {
				body := in["body"].(map[string]any)
				if body["code"] != "expression-error" {
					t.Errorf("code %#v", body["code"])
				}
				e, _ := body["keys"].(map[string]any)
				if msg, _ := e["message"].(string); len(e) != 2 || !strings.Contains(msg, "trigger.input.nope") {
					t.Errorf("the error object %#v", body["keys"])
				}
			}},
		},
		{
			name:  "failed node: other keys are unresolved",
			nodes: []gnode{manual(), bad, response("r", map[string]any{"v": "{{bad.v}}"})},
			edges: chain("t", "bad", "r"),
			want:  expect{code: "unresolved-reference", msgs: []string{"{{bad.v}}", `key "v" not found`, "available keys: error"}},
		},
		{
			name:  "defaults",
			nodes: []gnode{manual(), response("r", map[string]any{"a": "{{t.input.nope ?? \"fallback\"}}", "b": "{{t.input.nul ?? 5}}", "c": "{{t.input.x ?? 9}}", "d": "{{t.input.list[5] ?? [1]}}"})},
			edges: chain("t", "r"),
			input: map[string]any{"nul": nil, "x": 1, "list": []any{0}},
			want:  expect{body: map[string]any{"a": "fallback", "b": 5, "c": 1, "d": []any{1}}},
		},
		{
			name:  "typed substitution",
			nodes: []gnode{manual(), httpNode("h", api.URL), response("r", map[string]any{"count": "{{h.body.total}}", "ratio": "{{h.body.ratio}}", "flag": "{{h.body.flag}}", "obj": "{{h.body.obj}}", "nul": "{{h.body.nul}}"})},
			edges: chain("t", "h", "r"),
			want: expect{
				body: map[string]any{"count": 42, "ratio": 0.5, "flag": true, "obj": map[string]any{"a": 1, "b": "<x>"}, "nul": nil},
				inputIs: func(t *testing.T, in map[string]any) {
					body := in["body"].(map[string]any)
					if n, ok := body["count"].(json.Number); !ok || n.String() != "42" {
						t.Errorf("count in the resolved input is %#v, want the number 42", body["count"])
					}
					if b, ok := body["flag"].(bool); !ok || !b {
						t.Errorf("flag in the resolved input is %#v", body["flag"])
					}
					if _, ok := body["obj"].(map[string]any); !ok {
						t.Errorf("obj in the resolved input is %#v", body["obj"])
					}
				},
			},
		},
		{
			name: "string interpolation",
			nodes: []gnode{manual(), httpNode("h", api.URL), response("r", map[string]any{
				"line": "n={{h.body.total}} r={{h.body.ratio}} b={{h.body.flag}} z={{h.body.nul}} s={{h.body.s}} o={{h.body.obj}} l={{h.body.list}}",
				"esc":  `\{{literal}} {{t.input.who}}`,
			})},
			edges: chain("t", "h", "r"),
			input: map[string]any{"who": "me"},
			want: expect{body: map[string]any{
				"line": `n=42 r=0.5 b=true z=null s=str o={"a":1,"b":"<x>"} l=[1,"two"]`,
				"esc":  "{{literal}} me",
			}},
		},
		{
			name:  "reserved roots",
			nodes: []gnode{manual(), response("r", map[string]any{"flow": "{{flow.name}}", "id": "{{execution.id}}", "mode": "{{execution.mode}}", "in": "{{input.k}}", "nodes": "{{nodes.t.input.k}}"})},
			edges: chain("t", "r"),
			input: map[string]any{"k": "v"},
			want:  expect{body: map[string]any{"flow": "f", "id": 1, "mode": "manual", "in": "v", "nodes": "v"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := buildGraph(t, tc.nodes, tc.edges)
			out, sink := r.run(t, g, tc.input)
			if tc.want.code != "" {
				wantOutcome(t, out, "failed", tc.want.code)
				for _, m := range tc.want.msgs {
					if !strings.Contains(out.Error.Message, m) {
						t.Errorf("message %q lacks %q", out.Error.Message, m)
					}
				}
				if rec := record(t, sink, out.ErrorNode); rec.Status != NodeFailed || rec.Error == nil || rec.Error.Code != tc.want.code {
					t.Errorf("record of %s: %+v", out.ErrorNode, rec)
				}
				return
			}
			wantOutcome(t, out, "completed", "")
			if tc.want.body != nil {
				jsonEqual(t, "body", out.OutputData.(map[string]any)["body"], tc.want.body)
			}
			if tc.want.inputIs != nil {
				var id string
				for _, n := range tc.nodes {
					if n.typ == "response-data" {
						id = n.id
					}
				}
				in, ok := record(t, sink, id).Input.(map[string]any)
				if !ok {
					t.Fatalf("resolved input %#v", record(t, sink, id).Input)
				}
				tc.want.inputIs(t, in)
			}
		})
	}
}

func TestDelayAndResume(t *testing.T) {
	r := newRig(t)
	start := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	r.setClock(start)
	var hits sync.Map // path → *atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, _ := hits.LoadOrStore(req.URL.Path, new(atomic.Int32))
		n := c.(*atomic.Int32).Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"n":%d}`, req.URL.Path, n)
	}))
	t.Cleanup(srv.Close)
	count := func(path string) int32 {
		c, ok := hits.Load(path)
		if !ok {
			return 0
		}
		return c.(*atomic.Int32).Load()
	}

	g := buildGraph(t, []gnode{
		manual(),
		httpNode("h1", srv.URL+"/one"),
		{id: "sv", typ: "logic-set-variable", cfg: map[string]any{"variables": map[string]any{"x": `21 * 2`}}},
		{id: "d", typ: "logic-delay", cfg: map[string]any{"duration_seconds": 60}},
		httpNode("h2", srv.URL+"/two"),
		response("r", map[string]any{"one": "{{h1.body.path}}", "two": "{{h2.body.path}}", "waited": "{{d.waited_ms}}", "x": "{{vars.x}}"}),
	}, chain("t", "h1", "sv", "d", "h2", "r"))
	plan := mustCompile(t, g)
	info := r.info(nil)

	sink1 := NewMemorySink()
	out := r.x.Execute(context.Background(), NewState(plan, info, nil), sink1)
	wantOutcome(t, out, "waiting", "")
	if !out.WaitUntil.Equal(start.Add(time.Minute)) || out.WaitNode != "d" {
		t.Errorf("wait until %s at %q, want %s at d", out.WaitUntil, out.WaitNode, start.Add(time.Minute))
	}
	wantStatuses(t, sink1, map[string]string{"t": NodeCompleted, "h1": NodeCompleted, "sv": NodeCompleted, "d": NodeWaiting, "h2": "", "r": ""})
	if countOf(trace(sink1), "execution.waiting:d") != 1 {
		t.Errorf("events %v", trace(sink1))
	}
	if count("/one") != 1 || count("/two") != 0 {
		t.Fatalf("requests after the first run: one=%d two=%d", count("/one"), count("/two"))
	}

	// The timer fires 61 s later; the run is rebuilt from its stored records.
	r.setClock(start.Add(61 * time.Second))
	var stored []*Record
	for _, rec := range sink1.Records {
		cp := *rec
		stored = append(stored, &cp)
	}
	sink2 := NewMemorySink()
	out = r.x.Execute(context.Background(), NewState(plan, info, stored), sink2)
	wantOutcome(t, out, "completed", "")
	if count("/one") != 1 || count("/two") != 1 {
		t.Errorf("requests after the resume: one=%d two=%d, want 1 and 1", count("/one"), count("/two"))
	}
	jsonEqual(t, "body", out.OutputData.(map[string]any)["body"], map[string]any{"one": "/one", "two": "/two", "waited": 61000, "x": 42})
	tr := trace(sink2)
	for _, id := range []string{"t", "h1", "sv"} {
		if countOf(tr, "node.started:"+id) != 0 {
			t.Errorf("node %s ran again: %v", id, tr)
		}
	}
	if countOf(tr, "node.completed:d") != 1 || countOf(tr, "node.started:d") != 0 {
		t.Errorf("delay events on resume: %v", tr)
	}
	rec := record(t, sink2, "d")
	if rec.Status != NodeCompleted || rec.Attempt != 1 {
		t.Errorf("delay record %+v", rec)
	}
	jsonEqual(t, "delay output", rec.Output, map[string]any{"resumed_at": "2030-01-01T09:01:01Z", "waited_ms": 61000})

	t.Run("until in the past does not wait", func(t *testing.T) {
		g := buildGraph(t, []gnode{manual(), {id: "d", typ: "logic-delay", cfg: map[string]any{"until": "2029-12-31T00:00:00Z"}}}, chain("t", "d"))
		out, sink := r.run(t, g, nil)
		wantOutcome(t, out, "completed", "")
		jsonEqual(t, "waited", record(t, sink, "d").Output.(map[string]any)["waited_ms"], 0)
	})
	t.Run("until from a template", func(t *testing.T) {
		g := buildGraph(t, []gnode{manual(), {id: "d", typ: "logic-delay", cfg: map[string]any{"until": "{{t.input.at}}"}}}, chain("t", "d"))
		out, _ := r.run(t, g, map[string]any{"at": "2030-01-02T00:00:00+01:00"})
		wantOutcome(t, out, "waiting", "")
		if want := time.Date(2030, 1, 1, 23, 0, 0, 0, time.UTC); !out.WaitUntil.Equal(want) {
			t.Errorf("wait until %s, want %s", out.WaitUntil, want)
		}
	})
}

func TestCancellation(t *testing.T) {
	t.Run("cancel requested", func(t *testing.T) {
		r := newRig(t)
		srv, arrived := slowServer(t)
		g := buildGraph(t, []gnode{manual(), httpNode("h", srv.URL), transform("after", map[string]any{"v": `1`})}, chain("t", "h", "after"))
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		cancelled := make(chan time.Time, 1)
		go func() {
			select {
			case <-arrived:
			case <-time.After(5 * time.Second):
			}
			cancelled <- time.Now()
			cancel(ErrCancelRequested)
		}()
		out, sink := r.runCtx(ctx, t, g, nil)
		at := <-cancelled
		if took := time.Since(at); took > time.Second {
			t.Errorf("Execute returned %s after the cancel", took)
		}
		wantOutcome(t, out, "cancelled", "")
		wantStatuses(t, sink, map[string]string{"t": NodeCompleted, "h": NodeCancelled, "after": ""})
		if rec := record(t, sink, "h"); rec.Error == nil || rec.Error.Code != "cancelled" || rec.CompletedAt == nil {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		r := newRig(t)
		srv, arrived := slowServer(t)
		g := buildGraph(t, []gnode{manual(), httpNode("h", srv.URL), transform("after", map[string]any{"v": `1`})}, chain("t", "h", "after"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-arrived:
			case <-time.After(5 * time.Second):
			}
			cancel()
		}()
		start := time.Now()
		out, sink := r.runCtx(ctx, t, g, nil)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the run took %s", took)
		}
		wantOutcome(t, out, "interrupted", "")
		wantStatuses(t, sink, map[string]string{"t": NodeCompleted, "h": NodeRunning, "after": ""})
		if rec := record(t, sink, "h"); rec.CompletedAt != nil || rec.Error != nil {
			t.Errorf("an interrupted record was finished: %+v", rec)
		}
	})

	t.Run("cancel at a checkpoint", func(t *testing.T) {
		r := newRig(t)
		srv, hits := jsonServer(t, 200, map[string]any{})
		g := buildGraph(t, []gnode{manual(), httpNode("h", srv.URL), transform("after", map[string]any{"v": `1`})}, chain("t", "h", "after"))
		st := NewState(mustCompile(t, g), r.info(nil), nil)
		sink := NewMemorySink()
		sink.OnCheckpoint = func(context.Context) error { return ErrCancelRequested }
		out := r.x.Execute(context.Background(), st, sink)
		wantOutcome(t, out, "cancelled", "")
		wantStatuses(t, sink, map[string]string{"h": NodeCancelled, "after": ""})
		if hits.Load() != 0 {
			t.Errorf("the request was sent after the cancel")
		}
	})
}

package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// Helpers prefixed ex.

var exAllowLocal = map[string]string{"HTTP_ALLOWED_HOSTS": "127.0.0.1/32"}

// exGreeting: a manual trigger with a required `name`, a transform, and a response.
const exGreeting = `{"nodes":[` +
	`{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-manual","config":{"inputFields":[{"key":"name","type":"text","required":true}]}}},` +
	`{"id":"x1","type":"custom","position":{"x":1,"y":0},"data":{"type":"logic-transform","config":{"mappings":{"upper":"trigger.input.name.upperAscii()","n":"size(trigger.input.name)"}}}},` +
	`{"id":"r1","type":"custom","position":{"x":2,"y":0},"data":{"type":"response-data","config":{"status":200,"body":{"greeting":"Hello {{x1.upper}}","n":"{{x1.n}}"}}}}` +
	`],"edges":[{"id":"e1","source":"t1","target":"x1"},{"id":"e2","source":"x1","target":"r1"}]}`

// exHTTPGraph: trigger → action-http (url) → response.
func exHTTPGraph(url string, extra string) string {
	return `{"nodes":[` +
		`{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-manual","config":{}}},` +
		`{"id":"h1","type":"custom","position":{"x":1,"y":0},"data":{"type":"action-http","config":{"url":"` + url + `","method":"GET"` + extra + `}}},` +
		`{"id":"r1","type":"custom","position":{"x":2,"y":0},"data":{"type":"response-data","config":{"body":{"status":"{{h1.status}}"}}}}` +
		`],"edges":[{"id":"e1","source":"t1","target":"h1"},{"id":"e2","source":"h1","target":"r1"}]}`
}

func exRun(t *testing.T, e *testEnv, tok string, flowID int64, input map[string]any, waitMS int) (*http.Response, *api.Execution, []byte) {
	t.Helper()
	body := api.ExecutionCreate{FlowId: flowID}
	if input != nil {
		body.InputData = &input
	}
	w := waitMS
	resp, err := e.Client(tok).CreateExecutionWithResponse(flCtx, &api.CreateExecutionParams{WaitMs: &w}, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.HTTPResponse, resp.JSON201, resp.Body
}

func exGet(t *testing.T, e *testEnv, tok string, id int64) *api.Execution {
	t.Helper()
	resp, err := e.Client(tok).GetExecutionWithResponse(flCtx, id, nil)
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("get execution %d: %v %d %s", id, err, resp.StatusCode(), resp.Body)
	}
	return resp.JSON200
}

// exWait polls a run until its status is one of want.
func exWait(t *testing.T, e *testEnv, tok string, id int64, want ...string) *api.Execution {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ex := exGet(t, e, tok, id)
		for _, w := range want {
			if string(ex.Status) == w {
				return ex
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %d stayed %s, want %v", id, ex.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exNode(t *testing.T, ex *api.Execution, id string) api.NodeExecution {
	t.Helper()
	for _, n := range ex.NodeExecutions {
		if n.NodeId == id {
			return n
		}
	}
	t.Fatalf("execution %d has no record for node %s", ex.Id, id)
	return api.NodeExecution{}
}

// slowServer answers /slow only when released or when the client goes away; hits counts requests.
type slowServer struct {
	*httptest.Server
	hits     atomic.Int64
	started  chan struct{}
	aborted  chan struct{}
	release  chan struct{}
	once     sync.Once
	abortOne sync.Once
}

// Release lets every waiting and later request answer at once.
func (s *slowServer) Release() { s.once.Do(func() { close(s.release) }) }

func newSlowServer(t *testing.T) *slowServer {
	s := &slowServer{started: make(chan struct{}, 16), aborted: make(chan struct{}), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.started <- struct{}{}
		select {
		case <-s.release:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		case <-r.Context().Done():
			s.abortOne.Do(func() { close(s.aborted) })
		case <-time.After(30 * time.Second):
		}
	}))
	t.Cleanup(func() { s.Release(); s.Close() })
	return s
}

// ---------------------------------------------------------------------------------------------------

func TestExecutionsRunWaitAndRead(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Greeter", Data: flGraph(t, exGreeting)})

	resp, ex, body := exRun(t, e, tok, f.Id, map[string]any{"name": "ada"}, 10000)
	if resp.StatusCode != http.StatusCreated || ex == nil {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); loc != fmt.Sprintf("%s/executions/%d", BasePath, ex.Id) {
		t.Fatalf("Location = %q", loc)
	}
	if ex.Status != api.ExecutionStatus("completed") || ex.Mode != api.ExecutionMode("manual") || ex.HasErrors {
		t.Fatalf("run ended %s mode %s errors %v: %s", ex.Status, ex.Mode, ex.HasErrors, body)
	}
	out, _ := json.Marshal(ex.OutputData)
	if !strings.Contains(string(out), `"greeting":"Hello ADA"`) || !strings.Contains(string(out), `"n":3`) {
		t.Fatalf("output_data = %s; want the greeting and n as a number", out)
	}
	if ex.TotalNodes != 3 || ex.CompletedNodes != 3 || len(ex.NodeExecutions) != 3 {
		t.Fatalf("counts total %d completed %d records %d", ex.TotalNodes, ex.CompletedNodes, len(ex.NodeExecutions))
	}
	for i, want := range []string{"t1", "x1", "r1"} {
		if n := ex.NodeExecutions[i]; n.NodeId != want || n.Status != api.NodeExecutionStatus("completed") || n.Attempt != 1 {
			t.Fatalf("record %d = %s %s attempt %d, want %s completed", i, n.NodeId, n.Status, n.Attempt, want)
		}
	}
	if tb, _ := ex.TriggeredBy.Get(); tb == 0 {
		t.Fatal("triggered_by is not set")
	}

	// GET with the graph, and one node record whole.
	g, err := e.Client(tok).GetExecutionWithResponse(flCtx, ex.Id, &api.GetExecutionParams{Include: flPtr(api.GetExecutionParamsInclude("graph"))})
	if err != nil || g.JSON200 == nil || g.JSON200.Graph == nil || len(g.JSON200.Graph.Nodes) != 3 {
		t.Fatalf("include=graph: %v %s", err, g.Body)
	}
	rec := exNode(t, ex, "x1")
	r, b := e.Do(http.MethodGet, fmt.Sprintf("%s/executions/%d/nodes/%d", BasePath, ex.Id, rec.Id), tok, "", nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(b), `"upper":"ADA"`) {
		t.Fatalf("node record: %d %s", r.StatusCode, b)
	}
	r, b = e.Do(http.MethodGet, fmt.Sprintf("%s/executions/%d/nodes/%d", BasePath, ex.Id, rec.Id+1000), tok, "", nil)
	flWantProblem(t, r, b, http.StatusNotFound, "not-found")

	// Another editor cannot see a private flow's runs.
	_, other := e.User(rbac.Editor)
	r, b = e.Do(http.MethodGet, fmt.Sprintf("%s/executions/%d", BasePath, ex.Id), other, "", nil)
	flWantProblem(t, r, b, http.StatusNotFound, "not-found")
	list, err := e.Client(other).ListExecutionsWithResponse(flCtx, nil)
	if err != nil || list.JSON200 == nil || len(list.JSON200.Items) != 0 {
		t.Fatalf("other's list: %v %s", err, list.Body)
	}
}

func TestExecutionsInputAndGates(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Greeter", Data: flGraph(t, exGreeting)})
	count := func() int64 {
		var n int64
		e.DB.Model(&store.Execution{}).Count(&n)
		return n
	}

	r, _, b := exRun(t, e, tok, f.Id, map[string]any{}, 0)
	p := flWantProblem(t, r, b, http.StatusUnprocessableEntity, "unprocessable")
	if !strings.Contains(string(b), `input field \"name\" is required`) {
		t.Fatalf("detail does not name the field: %+v", p)
	}
	r, _, b = exRun(t, e, tok, f.Id, map[string]any{"name": 12}, 0)
	flWantProblem(t, r, b, http.StatusUnprocessableEntity, "unprocessable")

	loose := flCreate(t, e, tok, api.FlowCreate{Name: "Loose", Data: flGraph(t, flGraphLoose)})
	r, _, b = exRun(t, e, tok, loose.Id, nil, 0)
	flWantProblem(t, r, b, http.StatusUnprocessableEntity, "invalid-graph")

	r, _, b = exRun(t, e, tok, 999999, nil, 0)
	flWantProblem(t, r, b, http.StatusUnprocessableEntity, "unprocessable")

	_, viewer := e.User(rbac.Viewer)
	r, _, b = exRun(t, e, viewer, f.Id, map[string]any{"name": "x"}, 0)
	flWantProblem(t, r, b, http.StatusForbidden, "forbidden")

	r, b = e.Do(http.MethodPost, BasePath+"/executions?wait_ms=30001", tok, "application/json", strings.NewReader(fmt.Sprintf(`{"flow_id":%d}`, f.Id)))
	flWantProblem(t, r, b, http.StatusBadRequest, "validation-error")
	if n := count(); n != 0 {
		t.Fatalf("%d runs were created by refused requests", n)
	}
}

func TestExecutionsCursorList(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Greeter", Data: flGraph(t, exGreeting)})
	var ids []int64
	for i := 0; i < 5; i++ {
		_, ex, b := exRun(t, e, tok, f.Id, map[string]any{"name": "n" + strconv.Itoa(i)}, 10000)
		if ex == nil {
			t.Fatalf("run: %s", b)
		}
		ids = append(ids, ex.Id)
	}
	c := e.Client(tok)
	lim := 2
	fid := f.Id
	var got []int64
	var cursor *string
	for page := 0; page < 5; page++ {
		resp, err := c.ListExecutionsWithResponse(flCtx, &api.ListExecutionsParams{Limit: &lim, FlowId: &fid, Cursor: cursor})
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("list: %v %s", err, resp.Body)
		}
		for _, it := range resp.JSON200.Items {
			got = append(got, it.Id)
		}
		nc, err := resp.JSON200.NextCursor.Get()
		if err != nil || !resp.JSON200.HasMore {
			break
		}
		cursor = &nc
	}
	want := []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages = %v, want %v (newest first)", got, want)
	}
	// A cursor is bound to its filters; a malformed one is refused too.
	resp, _ := c.ListExecutionsWithResponse(flCtx, &api.ListExecutionsParams{Limit: &lim, FlowId: &fid})
	nc, _ := resp.JSON200.NextCursor.Get()
	r, b := e.Do(http.MethodGet, BasePath+"/executions?limit=2&cursor="+nc, tok, "", nil)
	p := flWantProblem(t, r, b, http.StatusBadRequest, "validation-error")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "#/query/cursor" {
		t.Fatalf("errors = %+v", p.Errors)
	}
	r, b = e.Do(http.MethodGet, BasePath+"/executions?cursor=bm90LWEtY3Vyc29y", tok, "", nil)
	flWantProblem(t, r, b, http.StatusBadRequest, "validation-error")
	// Filters: status and triggered_by=me.
	r, b = e.Do(http.MethodGet, BasePath+"/executions?status=failed&status=cancelled", tok, "", nil)
	if r.StatusCode != 200 || !strings.Contains(string(b), `"items":[]`) {
		t.Fatalf("status filter: %d %s", r.StatusCode, b)
	}
	r, b = e.Do(http.MethodGet, BasePath+"/executions?triggered_by=me&mode=manual", tok, "", nil)
	var page api.ExecutionCursorPage
	if r.StatusCode != 200 || json.Unmarshal(b, &page) != nil || len(page.Items) != 5 {
		t.Fatalf("me filter: %d %s", r.StatusCode, b)
	}
}

// exEvent is one parsed SSE event.
type exEvent struct {
	Name string
	ID   int
	Data map[string]any
}

// exReadSSE reads events until the terminal one, or until stop(ev) says so.
func exReadSSE(t *testing.T, r io.Reader, stop func(exEvent) bool) (events []exEvent, sawRetry bool) {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur exEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "retry: 2000":
			sawRetry = true
		case strings.HasPrefix(line, "event: "):
			cur.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			cur.ID, _ = strconv.Atoi(strings.TrimPrefix(line, "id: "))
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		case line == "" && cur.Name != "":
			events = append(events, cur)
			if stop != nil && stop(cur) {
				return events, sawRetry
			}
			if strings.HasPrefix(cur.Name, "execution.") && cur.Name != "execution.created" && cur.Name != "execution.started" && cur.Name != "execution.waiting" {
				return events, sawRetry
			}
			cur = exEvent{}
		}
	}
	return events, sawRetry
}

func TestExecutionsStreamAndReplay(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, exAllowLocal)
	_, tok := e.User(rbac.Editor)
	slow := newSlowServer(t)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Slow", Data: flGraph(t, exHTTPGraph(slow.URL+"/slow", ""))})

	// A raw server (the validating one buffers whole responses) to see events as they come.
	raw := httptest.NewServer(e.Server.Echo)
	t.Cleanup(raw.Close)
	req, _ := http.NewRequest(http.MethodPost, raw.URL+BasePath+"/executions/stream", strings.NewReader(fmt.Sprintf(`{"flow_id":%d}`, f.Id)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Read until the HTTP node has started, then disconnect.
	first, sawRetry := exReadSSE(t, resp.Body, func(ev exEvent) bool { return ev.Name == "node.started" && ev.Data["node_id"] == "h1" })
	resp.Body.Close()
	if !sawRetry || len(first) < 4 || first[0].Name != "execution.created" || first[1].Name != "execution.started" {
		t.Fatalf("first events = %+v (retry %v)", first, sawRetry)
	}
	for i, ev := range first {
		if ev.ID != i+1 || int(ev.Data["seq"].(float64)) != ev.ID || ev.Data["execution_id"] == nil || ev.Data["at"] == nil {
			t.Fatalf("event %d = %+v; want id and seq %d with execution_id and at", i, ev, i+1)
		}
	}
	execID := int64(first[0].Data["execution_id"].(float64))
	n := first[len(first)-1].ID

	<-slow.started
	slow.Release()

	// Reconnect after event n: exactly the events after n, in order, then the terminal one.
	req, _ = http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s/executions/%d/events", raw.URL, BasePath, execID), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Last-Event-ID", strconv.Itoa(n))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := exReadSSE(t, resp.Body, nil)
	resp.Body.Close()
	if len(rest) == 0 || rest[0].ID != n+1 {
		t.Fatalf("after Last-Event-ID %d got %+v", n, rest)
	}
	for i, ev := range rest {
		if ev.ID != n+1+i {
			t.Fatalf("event ids not contiguous after %d: %+v", n, rest)
		}
	}
	last := rest[len(rest)-1]
	if last.Name != "execution.completed" || last.Data["status"] != "completed" {
		t.Fatalf("last event = %+v", last)
	}
	names := []string{}
	for _, ev := range rest {
		names = append(names, ev.Name)
	}
	if got := strings.Join(names, ","); got != "node.completed,node.started,node.completed,execution.completed" {
		t.Fatalf("events after reconnect = %s", got)
	}

	// The whole stream again through the validating server (a finished run: replay, then close).
	r, b := e.Send(t, http.MethodGet, fmt.Sprintf("%s/executions/%d/events", BasePath, execID), http.Header{"Authorization": {"Bearer " + tok}}, nil)
	all, _ := exReadSSE(t, strings.NewReader(string(b)), nil)
	if r.StatusCode != 200 || len(all) != last.ID {
		t.Fatalf("full replay: %d, %d events, want %d", r.StatusCode, len(all), last.ID)
	}
	// A bad Last-Event-ID is a 400.
	r, b = e.Send(t, http.MethodGet, fmt.Sprintf("%s/executions/%d/events", BasePath, execID),
		http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-Id": {"x"}}, nil)
	flWantProblem(t, r, b, http.StatusBadRequest, "validation-error")
}

func TestExecutionsCancelStopsInFlightHTTP(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, exAllowLocal)
	u, tok := e.User(rbac.Editor)
	slow := newSlowServer(t)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Slow", Data: flGraph(t, exHTTPGraph(slow.URL+"/slow", ""))})
	_, ex, b := exRun(t, e, tok, f.Id, nil, 0)
	if ex == nil {
		t.Fatalf("run: %s", b)
	}
	select {
	case <-slow.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the HTTP node never called the server")
	}
	start := time.Now()
	resp, err := e.Client(tok).CancelExecutionWithResponse(flCtx, ex.Id)
	if err != nil || resp.StatusCode() != http.StatusAccepted {
		t.Fatalf("cancel: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	select {
	case <-slow.aborted:
	case <-time.After(time.Second):
		t.Fatal("the in-flight HTTP call was not aborted within a second")
	}
	got := exWait(t, e, tok, ex.Id, "cancelled", "completed", "failed")
	if got.Status != api.ExecutionStatus("cancelled") || time.Since(start) > 3*time.Second {
		t.Fatalf("status %s after %v", got.Status, time.Since(start))
	}
	if n := exNode(t, got, "h1"); n.Status != api.NodeExecutionStatus("cancelled") {
		t.Fatalf("h1 = %s", n.Status)
	}
	for _, n := range got.NodeExecutions {
		if n.NodeId == "r1" {
			t.Fatal("an unrun node got a record")
		}
	}
	// Cancelling again: the run has ended.
	r, b2 := e.Do(http.MethodPost, fmt.Sprintf("%s/executions/%d/cancel", BasePath, ex.Id), tok, "", nil)
	flWantProblem(t, r, b2, http.StatusConflict, "invalid-state")
	rows, err := store.ListAuditForResource(flCtx, e.DB.DB, "execution", ex.Id)
	if err != nil || len(rows) != 1 || rows[0].Action != "execution.cancel" || *rows[0].ActorUserID != u.ID {
		t.Fatalf("audit rows = %+v, %v", rows, err)
	}
}

func TestExecutionsRetryFromFailedNodeAndDelete(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, exAllowLocal)
	_, tok := e.User(rbac.Editor)
	var fail atomic.Bool
	fail.Store(true)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if fail.Load() {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Flaky", Data: flGraph(t, exHTTPGraph(srv.URL+"/x", ""))})
	_, ex, b := exRun(t, e, tok, f.Id, nil, 10000)
	if ex == nil || ex.Status != api.ExecutionStatus("failed") {
		t.Fatalf("first run: %s", b)
	}
	errV, _ := ex.Error.Get()
	if errV.Code != "http-status" || func() string { s, _ := errV.NodeId.Get(); return s }() != "h1" {
		t.Fatalf("error = %+v", errV)
	}
	// A failed run cannot be... deleted? It can: it has ended. Retry first.
	fail.Store(false)
	w := 10000
	resp, err := e.Client(tok).RetryExecutionWithResponse(flCtx, ex.Id, &api.RetryExecutionParams{WaitMs: &w}, api.ExecutionRetry{})
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("retry: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	re := resp.JSON201
	if re.Status != api.ExecutionStatus("completed") || re.Mode != api.ExecutionMode("retry") {
		t.Fatalf("retry ended %s mode %s", re.Status, re.Mode)
	}
	if of, _ := re.RetryOf.Get(); of != ex.Id {
		t.Fatalf("retry_of = %d", of)
	}
	trig := exNode(t, re, "t1")
	orig := exNode(t, ex, "t1")
	if from, _ := trig.ReusedFrom.Get(); from != orig.Id {
		t.Fatalf("t1 reused_from = %d, want %d", from, orig.Id)
	}
	if h := exNode(t, re, "h1"); h.ReusedFrom.IsSpecified() && !h.ReusedFrom.IsNull() {
		t.Fatal("the failed node was reused instead of run again")
	}
	if hits.Load() != 2 {
		t.Fatalf("server hits = %d, want 2", hits.Load())
	}
	// A completed run cannot be retried.
	r, b2 := e.Do(http.MethodPost, fmt.Sprintf("%s/executions/%d/retry", BasePath, re.Id), tok, "application/json", strings.NewReader(`{}`))
	flWantProblem(t, r, b2, http.StatusConflict, "invalid-state")

	// Delete: the ended run and its records go.
	_, editorDel := e.User(rbac.Manager)
	_ = editorDel
	r, b2 = e.Do(http.MethodDelete, fmt.Sprintf("%s/executions/%d", BasePath, ex.Id), tok, "", nil)
	flWantProblem(t, r, b2, http.StatusForbidden, "forbidden") // editors lack execution:delete
	_, admin := e.User(rbac.Admin)
	r, _ = e.Do(http.MethodDelete, fmt.Sprintf("%s/executions/%d", BasePath, ex.Id), admin, "", nil)
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	var left int64
	e.DB.Model(&store.NodeExecution{}).Where("execution_id = ?", ex.Id).Count(&left)
	if left != 0 {
		t.Fatalf("%d node records left", left)
	}
}

func TestExecutionsDeleteActiveRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, exAllowLocal)
	_, tok := e.User(rbac.Editor)
	_, admin := e.User(rbac.Admin)
	slow := newSlowServer(t)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Slow", Data: flGraph(t, exHTTPGraph(slow.URL+"/slow", ""))})
	_, ex, _ := exRun(t, e, tok, f.Id, nil, 0)
	<-slow.started
	r, b := e.Do(http.MethodDelete, fmt.Sprintf("%s/executions/%d", BasePath, ex.Id), admin, "", nil)
	flWantProblem(t, r, b, http.StatusConflict, "invalid-state")
}

func TestExecutionsConcurrencyLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, map[string]string{"HTTP_ALLOWED_HOSTS": "127.0.0.1/32", "EXECUTION_MAX_CONCURRENT_PER_USER": "1"})
	_, tok := e.User(rbac.Editor)
	slow := newSlowServer(t)
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Slow", Data: flGraph(t, exHTTPGraph(slow.URL+"/slow", ""))})
	if r, ex, b := exRun(t, e, tok, f.Id, nil, 0); ex == nil {
		t.Fatalf("first: %d %s", r.StatusCode, b)
	}
	r, _, b := exRun(t, e, tok, f.Id, nil, 0)
	flWantProblem(t, r, b, http.StatusTooManyRequests, "rate-limited")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestFlowWebhookTrigger(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	graph := func(mode string) string {
		return `{"nodes":[` +
			`{"id":"w1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-webhook","config":{"response_mode":"` + mode + `"}}},` +
			`{"id":"r1","type":"custom","position":{"x":1,"y":0},"data":{"type":"response-data","config":{"status":201,"headers":{"X-Flow":"yes"},"body":{"got":"{{trigger.body.x}}","auth":"{{trigger.headers.authorization ?? none}}"}}}}` +
			`],"edges":[{"id":"e1","source":"w1","target":"r1"}]}`
	}
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Hook", Data: flGraph(t, graph("last_node"))})
	if f.WebhookUrl.IsSpecified() && !f.WebhookUrl.IsNull() {
		t.Fatal("a draft flow has a webhook_url")
	}
	pub := flPublish(t, e, tok, f.Id, nil)
	hookURL, err := pub.WebhookUrl.Get()
	if err != nil || !strings.Contains(hookURL, "/api/v1/webhooks/flows/") {
		t.Fatalf("webhook_url after publish = %q (%v)", hookURL, err)
	}
	path := hookURL[strings.Index(hookURL, "/api/v1"):]
	r, b := e.Send(t, http.MethodPost, path+"?src=test", http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer secret"}}, strings.NewReader(`{"x":5}`))
	if r.StatusCode != http.StatusCreated || r.Header.Get("X-Flow") != "yes" {
		t.Fatalf("last_node answer: %d %s", r.StatusCode, b)
	}
	if !strings.Contains(string(b), `"got":5`) || !strings.Contains(string(b), `"auth":"none"`) {
		t.Fatalf("answer body %s: want the number and no auth header", b)
	}

	// Rotation: the old key stops at once.
	rot, err := e.Client(tok).RotateFlowWebhookKeyWithResponse(flCtx, f.Id)
	if err != nil || rot.JSON200 == nil || rot.JSON200.WebhookUrl == hookURL {
		t.Fatalf("rotate: %v %s", err, rot.Body)
	}
	r, b = e.Send(t, http.MethodPost, path, http.Header{"Content-Type": {"application/json"}}, strings.NewReader(`{}`))
	flWantProblem(t, r, b, http.StatusNotFound, "not-found")

	// Immediate mode answers 202 with the run.
	g := flPatch(t, e, tok, f.Id, api.FlowUpdate{Data: flGraph(t, graph("immediate"))})
	flPublish(t, e, tok, g.Id, nil)
	newPath := rot.JSON200.WebhookUrl[strings.Index(rot.JSON200.WebhookUrl, "/api/v1"):]
	r, b = e.Send(t, http.MethodPost, newPath, http.Header{"Content-Type": {"text/plain"}}, strings.NewReader("hello"))
	var acc api.FlowWebhookAccepted
	if r.StatusCode != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.ExecutionId == 0 {
		t.Fatalf("immediate: %d %s", r.StatusCode, b)
	}
	run := exWait(t, e, tok, acc.ExecutionId, "completed", "failed")
	if run.Mode != api.ExecutionMode("webhook") || run.InputData["body"] != "hello" {
		t.Fatalf("webhook run mode %s input %v", run.Mode, run.InputData)
	}

	// Unpublished: the key answers 404; a flow without trigger-webhook cannot rotate.
	r, _ = e.Do(http.MethodPost, flPath(f.Id, "/unpublish"), tok, "", nil)
	if r.StatusCode != 200 {
		t.Fatalf("unpublish: %d", r.StatusCode)
	}
	r, b = e.Send(t, http.MethodPost, newPath, http.Header{"Content-Type": {"application/json"}}, strings.NewReader(`{}`))
	flWantProblem(t, r, b, http.StatusNotFound, "not-found")
	plain := flCreate(t, e, tok, api.FlowCreate{Name: "Plain", Data: flGraph(t, flGraphOK)})
	r, b = e.Do(http.MethodPost, flPath(plain.Id, "/webhook-key"), tok, "", nil)
	flWantProblem(t, r, b, http.StatusConflict, "invalid-state")
}

func TestNodeTypesCatalogue(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, tok := e.User(rbac.Viewer)
	c := e.Client(tok)
	list, err := c.ListNodeTypesWithResponse(flCtx, nil)
	if err != nil || list.JSON200 == nil {
		t.Fatalf("list: %v %s", err, list.Body)
	}
	ids := map[string]bool{}
	for _, nt := range list.JSON200.Items {
		ids[nt.Id] = true
	}
	for _, want := range []string{"trigger-manual", "trigger-webhook", "trigger-schedule", "ai-gemini", "ai-openai", "ai-classify",
		"ai-content-writer", "action-http", "logic-condition", "logic-switch", "logic-transform", "logic-set-variable", "logic-delay", "response-data"} {
		if !ids[want] {
			t.Errorf("node type %s missing", want)
		}
	}
	for _, absent := range []string{"trigger-message", "action-send-message", "human-handoff", "ai-knowledge", "action-code"} {
		if ids[absent] {
			t.Errorf("node type %s is listed but does not run yet", absent)
		}
	}
	cat := api.NodeTypeCategoryID("logic")
	logic, _ := c.ListNodeTypesWithResponse(flCtx, &api.ListNodeTypesParams{Category: &cat})
	for _, nt := range logic.JSON200.Items {
		if nt.Category != cat {
			t.Fatalf("category filter let %s through", nt.Id)
		}
	}
	one, _ := c.GetNodeTypeWithResponse(flCtx, "logic-condition")
	if one.JSON200 == nil || len(one.JSON200.Outputs) != 2 {
		t.Fatalf("get: %s", one.Body)
	}
	r, b := e.Do(http.MethodGet, BasePath+"/node-types/nope", tok, "", nil)
	flWantProblem(t, r, b, http.StatusNotFound, "not-found")
	r, b = e.Do(http.MethodGet, BasePath+"/node-types/categories", tok, "", nil)
	var cats api.NodeTypeCategoryList
	if r.StatusCode != 200 || json.Unmarshal(b, &cats) != nil || len(cats.Items) != 5 {
		t.Fatalf("categories: %d %s", r.StatusCode, b)
	}
	r, _ = e.Do(http.MethodGet, BasePath+"/node-types", "", "", nil)
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", r.StatusCode)
	}
}

var _ = context.Background

// The flow receiver is limited per endpoint key (RATE_LIMIT_PUBLIC_PER_MINUTE), not per address.
func TestFlowWebhookRateLimitPerKey(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, map[string]string{"RATE_LIMIT_PUBLIC_PER_MINUTE": "2"})
	_, tok := e.User(rbac.Editor)
	g := `{"nodes":[{"id":"w1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-webhook","config":{}}},` +
		`{"id":"r1","type":"custom","position":{"x":1,"y":0},"data":{"type":"response-data","config":{}}}],` +
		`"edges":[{"id":"e1","source":"w1","target":"r1"}]}`
	var paths []string
	for _, name := range []string{"A", "B"} {
		f := flCreate(t, e, tok, api.FlowCreate{Name: name, Data: flGraph(t, g)})
		u, _ := flPublish(t, e, tok, f.Id, nil).WebhookUrl.Get()
		paths = append(paths, u[strings.Index(u, "/api/v1"):])
	}
	post := func(p string) *http.Response {
		r, _ := e.Send(t, http.MethodPost, p, http.Header{"Content-Type": {"application/json"}}, strings.NewReader(`{}`))
		return r
	}
	for i := 0; i < 2; i++ {
		if r := post(paths[0]); r.StatusCode != http.StatusAccepted || r.Header.Get("RateLimit-Limit") != "2" {
			t.Fatalf("call %d: %d limit %q", i, r.StatusCode, r.Header.Get("RateLimit-Limit"))
		}
	}
	r, b := e.Send(t, http.MethodPost, paths[0], http.Header{"Content-Type": {"application/json"}}, strings.NewReader(`{}`))
	flWantProblem(t, r, b, http.StatusTooManyRequests, "rate-limited")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Another key from the same address has its own budget.
	if r := post(paths[1]); r.StatusCode != http.StatusAccepted {
		t.Fatalf("other key: %d", r.StatusCode)
	}
}

// Publishing a flow with trigger-schedule arms it: Flow.next_run_at is its next fire time; unpublishing disarms.
func TestFlowScheduleNextRunAt(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	g := `{"nodes":[{"id":"s1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-schedule","config":{"schedule":"*/5 * * * *","timezone":"UTC"}}},` +
		`{"id":"r1","type":"custom","position":{"x":1,"y":0},"data":{"type":"response-data","config":{}}}],` +
		`"edges":[{"id":"e1","source":"s1","target":"r1"}]}`
	f := flCreate(t, e, tok, api.FlowCreate{Name: "Every five", Data: flGraph(t, g)})
	if !f.NextRunAt.IsNull() {
		t.Fatal("a draft has next_run_at")
	}
	before := time.Now().UTC()
	pub := flPublish(t, e, tok, f.Id, nil)
	next, err := pub.NextRunAt.Get()
	if err != nil {
		t.Fatalf("published schedule has no next_run_at: %v", err)
	}
	at := next.Time
	if !at.After(before) || at.After(before.Add(5*time.Minute+time.Second)) || at.Minute()%5 != 0 || at.Second() != 0 {
		t.Fatalf("next_run_at = %s (now %s)", at, before)
	}
	if got := flGet(t, e, tok, f.Id); got.NextRunAt.IsNull() {
		t.Fatal("GET lost next_run_at")
	}
	r, b := e.Do(http.MethodPost, flPath(f.Id, "/unpublish"), tok, "", nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(b), `"next_run_at":null`) {
		t.Fatalf("unpublish: %d %s", r.StatusCode, b)
	}
	var n int64
	e.DB.Model(&store.FlowSchedule{}).Where("flow_id = ?", f.Id).Count(&n)
	if n != 0 {
		t.Fatal("unpublishing left the schedule armed")
	}
}

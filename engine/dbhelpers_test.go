package engine

// Helpers of the database-backed engine tests (durable_test.go,
// scheduler_test.go): a fresh migrated database per test (storetest), a user
// and a flow, engines built on it without starting River (the tests call Run,
// Tick and Purge directly, as River's workers do), a manual clock, a local
// HTTP server the tests hold and release, and readers of the stored rows.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/netguard"
	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

// ---------------------------------------------------------------------------
// Clock

// dbClock is a manual clock shared by the engines of a test.
type dbClock struct {
	mu sync.Mutex
	t  time.Time
}

func newDBClock(t time.Time) *dbClock { return &dbClock{t: t.UTC()} }

func (c *dbClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *dbClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t.UTC()
	c.mu.Unlock()
}

func (c *dbClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ---------------------------------------------------------------------------
// Graphs

// dnode is one node of a test graph.
type dnode struct {
	id, typ string
	cfg     map[string]any
}

// dedge is one edge; handle "" leaves sourceHandle out.
type dedge struct{ src, dst, handle string }

// dbChain links ids with default-handle edges.
func dbChain(ids ...string) []dedge {
	var out []dedge
	for i := 1; i < len(ids); i++ {
		out = append(out, dedge{src: ids[i-1], dst: ids[i]})
	}
	return out
}

// dbGraph writes a React-Flow style graph and fails the test unless it
// passes the structural checks of every save and the completeness checks of
// a publish without an error-severity issue.
func dbGraph(tb testing.TB, nodes []dnode, edges []dedge) []byte {
	tb.Helper()
	ns := make([]any, len(nodes))
	for i, n := range nodes {
		cfg := n.cfg
		if cfg == nil {
			cfg = map[string]any{}
		}
		ns[i] = map[string]any{"id": n.id, "type": "custom", "position": map[string]any{"x": 200 * i, "y": 0},
			"data": map[string]any{"type": n.typ, "label": "Node " + n.id, "config": cfg}}
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
	parsed, err := flow.Parse(g)
	if err != nil {
		tb.Fatalf("flow.Parse: %v", err)
	}
	issues := parsed.CheckStructure("", len(g), flow.Limits{})
	issues = append(issues, parsed.CheckCompleteness("")...)
	for _, is := range issues {
		if is.Severity == flow.SeverityError {
			tb.Errorf("test graph issue %s at %s: %s", is.Code, is.Pointer, is.Message)
		}
	}
	if tb.Failed() {
		tb.FailNow()
	}
	return g
}

// linearGraph is trigger t → transform a → action-http h (GET url) →
// transform b → response-data r; b reads a's and h's outputs, r reads b's.
func linearGraph(tb testing.TB, url string, httpCfg map[string]any) []byte {
	tb.Helper()
	cfg := map[string]any{"url": url, "method": "GET"}
	for k, v := range httpCfg {
		cfg[k] = v
	}
	return dbGraph(tb, []dnode{
		{id: "t", typ: "trigger-manual"},
		{id: "a", typ: "logic-transform", cfg: map[string]any{"mappings": map[string]any{"x": "1 + 2"}}},
		{id: "h", typ: "action-http", cfg: cfg},
		{id: "b", typ: "logic-transform", cfg: map[string]any{"mappings": map[string]any{"y": "a.x * 10", "call": "h.body.call"}}},
		{id: "r", typ: "response-data", cfg: map[string]any{"status": 200, "body": map[string]any{"y": "{{b.y}}", "call": "{{b.call}}"}}},
	}, dbChain("t", "a", "h", "b", "r"))
}

// ---------------------------------------------------------------------------
// The environment: a database with a user, and engines on it

type dbEnv struct {
	t     *testing.T
	db    *store.DB
	clock *dbClock
	user  int64
	http  *http.Client
	logs  *logBuffer
}

// newDBEnv opens a fresh database with one admin user. The clock starts at
// the current time (River compares scheduled_at with its own clock).
func newDBEnv(t *testing.T) *dbEnv {
	t.Helper()
	db := storetest.New(t)
	now := store.Now()
	u := store.User{Email: "owner@example.com", Name: "Owner", Role: "admin", IsActive: true, CreatedAt: now, UpdatedAt: now}
	if err := db.Create(&u).Error; err != nil {
		t.Fatalf("create user: %v", err)
	}
	guard, err := netguard.New(netguard.Options{AllowedHosts: []string{"127.0.0.1/32"}, BlockPrivate: true})
	if err != nil {
		t.Fatalf("netguard.New: %v", err)
	}
	return &dbEnv{t: t, db: db, clock: newDBClock(now), user: u.ID, http: guard.Client(), logs: &logBuffer{}}
}

// flow stores a draft flow holding graph.
func (env *dbEnv) flow(graph []byte) int64 {
	env.t.Helper()
	now := store.Now()
	f := store.Flow{Name: "Flow " + randSuffix(), OwnerID: env.user, Visibility: "private", Status: "draft",
		Data: graph, Revision: 1, Version: 1, CreatedAt: now, UpdatedAt: now}
	if err := env.db.Create(&f).Error; err != nil {
		env.t.Fatalf("create flow: %v", err)
	}
	return f.ID
}

// publishedFlow stores a flow published as version 1 holding graph.
func (env *dbEnv) publishedFlow(graph []byte) int64 {
	env.t.Helper()
	id := env.flow(graph)
	now := store.Now()
	v := store.FlowVersion{FlowID: id, Version: 1, Name: "v1", Data: graph, ContentHash: "h1", CreatedBy: &env.user, CreatedAt: now}
	if err := env.db.Create(&v).Error; err != nil {
		env.t.Fatalf("create flow version: %v", err)
	}
	one := 1
	if err := env.db.Model(&store.Flow{}).Where("id = ?", id).
		Updates(map[string]any{"status": "published", "published_version": one}).Error; err != nil {
		env.t.Fatalf("publish flow: %v", err)
	}
	return id
}

// engine builds an engine on the environment's database and clock, River not
// started. cfg's zero fields get the test defaults.
func (env *dbEnv) engine(bus Bus, cfg Config) *Engine {
	env.t.Helper()
	if bus == nil {
		bus = NewMemoryBus()
	}
	if cfg.Clock == nil {
		cfg.Clock = env.clock.Now
	}
	if cfg.FetchPollInterval == 0 {
		cfg.FetchPollInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = env.logger()
	}
	e, err := New(env.db, bus, &Services{HTTP: env.http}, cfg)
	if err != nil {
		env.t.Fatalf("engine.New: %v", err)
	}
	return e
}

// startEngine builds an engine on the real clock and starts its River
// workers; it is stopped (5 s grace) when the test ends.
func (env *dbEnv) startEngine(cfg Config) *Engine {
	env.t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = func() time.Time { return time.Now().UTC() }
	}
	e := env.engine(NewMemoryBus(), cfg)
	if err := e.Start(context.Background()); err != nil {
		env.t.Fatalf("Start: %v", err)
	}
	env.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			env.t.Errorf("Stop: %v", err)
		}
	})
	return e
}

// logger writes to the environment's log buffer (see wantNoErrorLogs).
func (env *dbEnv) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// enqueue inserts a manual run of graph (the flow's working copy) and its job.
func (env *dbEnv) enqueue(e *Engine, flowID int64, graph []byte) int64 {
	env.t.Helper()
	ex := &store.Execution{FlowID: flowID, FlowRevision: 1, Graph: graph, Mode: "manual", InputData: []byte("{}"), TriggeredBy: &env.user}
	if err := env.db.Tx(context.Background(), func(tx *gorm.DB) error { return e.Enqueue(context.Background(), tx, ex) }); err != nil {
		env.t.Fatalf("Enqueue: %v", err)
	}
	if ex.ID == 0 || ex.JobID == nil {
		env.t.Fatalf("Enqueue left id %d, job %v", ex.ID, ex.JobID)
	}
	return ex.ID
}

// cancel runs the API's cancel: Cancel in a transaction, AfterCancel once it committed.
func (env *dbEnv) cancel(e *Engine, id int64) CancelResult {
	env.t.Helper()
	ctx := context.Background()
	ex := env.exec(id)
	var res CancelResult
	err := env.db.Tx(ctx, func(tx *gorm.DB) error {
		r, err := e.Cancel(ctx, tx, &ex)
		res = r
		return err
	})
	if err != nil {
		env.t.Fatalf("Cancel: %v", err)
	}
	e.AfterCancel(ctx, id, res)
	return res
}

func (env *dbEnv) exec(id int64) store.Execution {
	env.t.Helper()
	var ex store.Execution
	if err := env.db.First(&ex, id).Error; err != nil {
		env.t.Fatalf("load execution %d: %v", id, err)
	}
	return ex
}

// nodes returns the node records of a run by node id.
func (env *dbEnv) nodes(id int64) map[string]store.NodeExecution {
	env.t.Helper()
	var rows []store.NodeExecution
	if err := env.db.Where("execution_id = ?", id).Order("id").Find(&rows).Error; err != nil {
		env.t.Fatalf("load node records: %v", err)
	}
	out := make(map[string]store.NodeExecution, len(rows))
	for _, r := range rows {
		if _, dup := out[r.NodeID]; dup {
			env.t.Errorf("run %d has two records of node %s", id, r.NodeID)
		}
		out[r.NodeID] = r
	}
	return out
}

func (env *dbEnv) events(id int64) []store.ExecutionEvent {
	env.t.Helper()
	var rows []store.ExecutionEvent
	if err := env.db.Where("execution_id = ?", id).Order("seq").Find(&rows).Error; err != nil {
		env.t.Fatalf("load events: %v", err)
	}
	return rows
}

func (env *dbEnv) count(model any, where string, args ...any) int64 {
	env.t.Helper()
	var n int64
	q := env.db.Model(model)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		env.t.Fatalf("count: %v", err)
	}
	return n
}

// wantNodeStatuses checks the stored node records; "" means no record.
func (env *dbEnv) wantNodeStatuses(id int64, want map[string]string) map[string]store.NodeExecution {
	env.t.Helper()
	got := env.nodes(id)
	for node, status := range want {
		r, ok := got[node]
		switch {
		case status == "" && ok:
			env.t.Errorf("node %s: want no record, got one %s", node, r.Status)
		case status != "" && !ok:
			env.t.Errorf("node %s: want %s, got no record", node, status)
		case status != "" && r.Status != status:
			env.t.Errorf("node %s: status %s, want %s (error %s)", node, r.Status, status, jsonText(r.Error))
		}
	}
	for node, r := range got {
		if _, ok := want[node]; !ok {
			env.t.Errorf("unexpected record of node %s (%s)", node, r.Status)
		}
	}
	return got
}

// wantEvents checks that the run's persisted events are numbered 1..N with
// no gap, that N is the run's event_seq, that only the last one is terminal
// and it is terminal. It returns the events as "name node_id#attempt".
func (env *dbEnv) wantEvents(id int64, terminal string) []string {
	env.t.Helper()
	evs := env.events(id)
	ex := env.exec(id)
	var trace []string
	for i, ev := range evs {
		if ev.Seq != i+1 {
			env.t.Errorf("event %d (%s) has seq %d, want %d", i, ev.Event, ev.Seq, i+1)
		}
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			env.t.Fatalf("event %d data: %v", ev.Seq, err)
		}
		if s, _ := data["seq"].(float64); int(s) != ev.Seq {
			env.t.Errorf("event %d data.seq = %v", ev.Seq, data["seq"])
		}
		if eid, _ := data["execution_id"].(float64); int64(eid) != id {
			env.t.Errorf("event %d data.execution_id = %v, want %d", ev.Seq, data["execution_id"], id)
		}
		isTerminal := ev.Event == "execution.completed" || ev.Event == "execution.failed" || ev.Event == "execution.cancelled"
		if isTerminal && i != len(evs)-1 {
			env.t.Errorf("terminal event %s at seq %d is not the last of %d", ev.Event, ev.Seq, len(evs))
		}
		s := ev.Event
		if n, ok := data["node_id"].(string); ok && strings.HasPrefix(ev.Event, "node.") {
			s += " " + n
			if a, ok := data["attempt"].(float64); ok {
				s += fmt.Sprintf("#%d", int(a))
			}
		}
		trace = append(trace, s)
	}
	if len(evs) == 0 {
		env.t.Fatalf("run %d has no events", id)
	}
	if last := evs[len(evs)-1].Event; last != terminal {
		env.t.Errorf("last event %s, want %s", last, terminal)
	}
	if ex.EventSeq != len(evs) {
		env.t.Errorf("execution event_seq %d, but %d events are stored", ex.EventSeq, len(evs))
	}
	return trace
}

// wantNoErrorLogs fails when the engines logged at error level.
func (env *dbEnv) wantNoErrorLogs() {
	env.t.Helper()
	if s := env.logs.String(); strings.Contains(s, "level=ERROR") {
		env.t.Errorf("the engine logged errors:\n%s", s)
	}
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func jsonText(j *store.JSON) string {
	if j == nil {
		return "null"
	}
	return string(*j)
}

// jsonValue decodes stored JSON (numbers as float64).
func jsonValue(tb testing.TB, j *store.JSON) any {
	tb.Helper()
	if j == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(*j, &v); err != nil {
		tb.Fatalf("stored JSON %q: %v", *j, err)
	}
	return v
}

var randCounter atomic.Int64

func randSuffix() string {
	return fmt.Sprintf("%d-%d", time.Now().UnixNano(), randCounter.Add(1))
}

// ---------------------------------------------------------------------------
// A local HTTP server the test holds

// gateServer counts requests and answers {"call": n} with the next scripted
// status (200 once the script runs out). While hold is set, a request waits
// until the test releases it, the client goes away, or holdMax passes.
type gateServer struct {
	*httptest.Server
	hits    atomic.Int32
	hold    atomic.Bool
	arrived chan int32
	release chan struct{}
	holdMax time.Duration

	mu       sync.Mutex
	statuses []int
	aborted  int // requests whose client went away while held
}

func newGateServer(t *testing.T, hold bool, holdMax time.Duration, statuses ...int) *gateServer {
	t.Helper()
	g := &gateServer{arrived: make(chan int32, 64), release: make(chan struct{}), holdMax: holdMax, statuses: statuses}
	g.hold.Store(hold)
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := g.hits.Add(1)
		select {
		case g.arrived <- n:
		default:
		}
		if g.hold.Load() {
			select {
			case <-r.Context().Done():
				g.mu.Lock()
				g.aborted++
				g.mu.Unlock()
				return
			case <-g.release:
			case <-time.After(g.holdMax):
			}
		}
		status := http.StatusOK
		g.mu.Lock()
		if int(n) <= len(g.statuses) {
			status = g.statuses[n-1]
		}
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"call":%d}`, n)
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(g.release) })
		g.Close()
	})
	return g
}

// waitArrived waits for the next request to reach the server.
func (g *gateServer) waitArrived(t *testing.T, within time.Duration) int32 {
	t.Helper()
	select {
	case n := <-g.arrived:
		return n
	case <-time.After(within):
		t.Fatalf("no request reached the server within %s", within)
		return 0
	}
}

func (g *gateServer) abortedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.aborted
}

// ---------------------------------------------------------------------------
// Redis

// testRedisClient connects to TEST_REDIS_URL, or skips the test.
func testRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		t.Skip("TEST_REDIS_URL not set")
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at TEST_REDIS_URL: %v", err)
	}
	return rdb
}

// waitFor polls cond every 20 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

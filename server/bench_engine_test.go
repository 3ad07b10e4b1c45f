// The end-to-end benchmark of the flow engine (`task bench:engine`): on PostgreSQL, concurrent
// clients POST /api/v1/executions?wait_ms=30000 for a 10-node logic flow (condition, switch,
// transforms, set-variable, response) and the answer comes when the run has ended. It reports
// runs/s, p50/p99 from the POST to the terminal state, and SQL statements per run (GORM's, River's
// own queries not included). Run it with
//
//	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable go test -run '^$' -bench BenchmarkEngineRuns -benchtime 600x ./server/
//
// The aim is ≥ 100 runs/s on a 2-core machine. The executor alone is measured in memory by
// engine's BenchmarkExecutor10NodeLogic.
package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/engine"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

const benchLogicFlow = `{"nodes":[
{"id":"t1","type":"custom","position":{"x":0,"y":0},"data":{"type":"trigger-manual","config":{"inputFields":[{"key":"score","type":"number","required":true}]}}},
{"id":"x1","type":"custom","position":{"x":1,"y":0},"data":{"type":"logic-transform","config":{"mappings":{"doubled":"trigger.input.score * 2","label":"'s' + string(trigger.input.score)"}}}},
{"id":"c1","type":"custom","position":{"x":2,"y":0},"data":{"type":"logic-condition","config":{"condition_type":"greater_than","value1":"{{x1.doubled}}","value2":"10"}}},
{"id":"hi","type":"custom","position":{"x":3,"y":0},"data":{"type":"logic-transform","config":{"mappings":{"tier":"'high'"}}}},
{"id":"lo","type":"custom","position":{"x":3,"y":1},"data":{"type":"logic-transform","config":{"mappings":{"tier":"'low'"}}}},
{"id":"s1","type":"custom","position":{"x":4,"y":0},"data":{"type":"logic-switch","config":{"value":"{{x1.label}}","cases":[{"id":"seven","operator":"equals","compare_to":"s7"},{"id":"three","operator":"equals","compare_to":"s3"}]}}},
{"id":"v1","type":"custom","position":{"x":5,"y":0},"data":{"type":"logic-set-variable","config":{"variables":{"seen":"true"}}}},
{"id":"v2","type":"custom","position":{"x":5,"y":1},"data":{"type":"logic-set-variable","config":{"variables":{"seen":"false"}}}},
{"id":"x2","type":"custom","position":{"x":6,"y":0},"data":{"type":"logic-transform","config":{"mappings":{"summary":"{'score': trigger.input.score, 'seen': vars.seen}"}}}},
{"id":"r1","type":"custom","position":{"x":7,"y":0},"data":{"type":"response-data","config":{"status":200,"body":{"summary":"{{x2.summary}}"}}}}
],"edges":[
{"id":"e1","source":"t1","target":"x1"},{"id":"e2","source":"x1","target":"c1"},
{"id":"e3","source":"c1","sourceHandle":"true","target":"hi"},{"id":"e4","source":"c1","sourceHandle":"false","target":"lo"},
{"id":"e5","source":"hi","target":"s1"},{"id":"e6","source":"lo","target":"s1"},
{"id":"e7","source":"s1","sourceHandle":"seven","target":"v1"},{"id":"e8","source":"s1","sourceHandle":"three","target":"v1"},
{"id":"e9","source":"s1","sourceHandle":"default","target":"v2"},
{"id":"e10","source":"v1","target":"x2"},{"id":"e11","source":"v2","target":"x2"},{"id":"e12","source":"x2","target":"r1"}
]}`

func BenchmarkEngineRuns(b *testing.B) {
	if storetest.Dialect() != store.Postgres {
		b.Skip("set TEST_DATABASE_URL: the engine benchmark runs on PostgreSQL")
	}
	cfg := testConfig(b, map[string]string{"EXECUTION_MAX_CONCURRENT_PER_USER": "1000"})
	db := bnOpenPool(b, storetest.New(b), 20)
	u := &store.User{Email: "bench@example.com", Name: "Bench", Role: string(rbac.Admin), IsActive: true}
	if err := db.Create(u).Error; err != nil {
		b.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(benchLogicFlow)); err != nil {
		b.Fatal(err)
	}
	f := &store.Flow{Name: "Bench logic", OwnerID: u.ID, Visibility: "private", Status: "draft", Data: compact.Bytes(), Revision: 1, Version: 1, NodeCount: 10}
	if err := db.Create(f).Error; err != nil {
		b.Fatal(err)
	}
	tokens := bnTokens(b, cfg)
	tok, _, err := tokens.Issue(u.ID, u.Role, "", 0)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	eng := testEngine(b, cfg, db, nil, logger, engine.Options{FetchPollInterval: 200 * time.Millisecond})
	srv, err := New(Deps{Config: cfg, DB: db, Tokens: tokens, Logger: logger, Shared: auth.NewMemoryShared(), Engine: eng})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Echo)
	b.Cleanup(hs.Close)
	counter := bnCountQueries(b, db)

	run := func(i int) (time.Duration, error) {
		body := fmt.Sprintf(`{"flow_id":%d,"input_data":{"score":%d}}`, f.ID, i%10)
		req, _ := http.NewRequest(http.MethodPost, hs.URL+BasePath+"/executions?wait_ms=30000", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var ex struct {
			Status string `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ex); err != nil || resp.StatusCode != http.StatusCreated || ex.Status != "completed" {
			return 0, fmt.Errorf("run %d: %d %s %v", i, resp.StatusCode, ex.Status, err)
		}
		return time.Since(start), nil
	}
	for i := 0; i < 20; i++ { // warm up
		if _, err := run(i); err != nil {
			b.Fatal(err)
		}
	}
	counter.n.Store(0)
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < bnWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				d, err := run(i)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
	b.ReportMetric(bnPercentile(lat, 50), "p50_ms")
	b.ReportMetric(bnPercentile(lat, 99), "p99_ms")
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "queries/run")
}

// The HTTP benchmark of the flows API (`task bench`): PostgreSQL with 10,000 flows, authenticated
// GET /api/v1/flows/{id}, GET /api/v1/flows?page=3&page_size=25 and POST /api/v1/flows, each through
// the full middleware chain and, in the same run, through a bare Echo with the same handlers (the
// baseline). Run it with
//
//	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable go test -run '^$' -bench BenchmarkHTTP -benchtime 3000x ./server/
//
// It reports req/s, p50_ms, p99_ms and queries/op (SQL statements per request). The aim: full keeps
// ≥ 75% of baseline's req/s. TestBenchListQueryCount checks the "no query per row" half on both
// dialects in the ordinary test run.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

const (
	bnFlows     = 10_000 // seeded flows
	bnBatch     = 1_000  // rows per INSERT while seeding
	bnWorkers   = 8      // concurrent clients
	bnWarmup    = 50     // untimed requests before each measurement
	bnListQuery = "?page=3&page_size=25"
)

// bnFixture is the seeded database and its two servers, shared by every sub-benchmark.
type bnFixture struct {
	db        *store.DB
	queries   *bnQueryCounter
	user      *store.User
	principal *httpx.Principal
	token     string
	flowIDs   []int64
	full      *httptest.Server // New(Deps{...}).Echo: the whole middleware chain
	baseline  *httptest.Server // the same strict handlers on a bare Echo
}

func BenchmarkHTTP(b *testing.B) {
	if os.Getenv(storetest.EnvDatabaseURL) == "" {
		b.Skip("set TEST_DATABASE_URL to a PostgreSQL admin URL to run the HTTP benchmark")
	}
	fx := bnSetup(b)

	endpoints := []struct {
		name   string
		status int
		req    func(base string, i int) (*http.Request, error)
	}{
		{"get_flow", http.StatusOK, func(base string, i int) (*http.Request, error) {
			// A stride through the ids so consecutive requests read different rows.
			id := fx.flowIDs[(i*7919)%len(fx.flowIDs)]
			return http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s/flows/%d", base, BasePath, id), nil)
		}},
		{"list_page3", http.StatusOK, func(base string, _ int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, base+BasePath+"/flows"+bnListQuery, nil)
		}},
		{"create_flow", http.StatusCreated, func(base string, i int) (*http.Request, error) {
			r, err := http.NewRequest(http.MethodPost, base+BasePath+"/flows", bytes.NewReader(bnCreateBody(i)))
			if err == nil {
				r.Header.Set("Content-Type", "application/json")
			}
			return r, err
		}},
	}
	// Endpoint-major order: both modes of an endpoint run back to back on the same data (the creates,
	// which grow the table, come last), so neither mode is measured on a bigger table than the other.
	for _, ep := range endpoints {
		b.Run(ep.name, func(b *testing.B) {
			for _, mode := range []struct {
				name string
				srv  *httptest.Server
			}{{"full", fx.full}, {"baseline", fx.baseline}} {
				b.Run(mode.name, func(b *testing.B) {
					bnLoad(b, fx, mode.srv, ep.status, ep.req)
				})
			}
		})
	}
}

// bnLoad sends b.N requests from bnWorkers keep-alive clients and reports throughput and latency.
func bnLoad(b *testing.B, fx *bnFixture, srv *httptest.Server, want int, mk func(base string, i int) (*http.Request, error)) {
	tr := &http.Transport{MaxIdleConns: 4 * bnWorkers, MaxIdleConnsPerHost: 4 * bnWorkers, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	bearer := "Bearer " + fx.token

	var (
		failMu sync.Mutex
		fail   error
	)
	do := func(i int) time.Duration {
		req, err := mk(srv.URL, i)
		if err != nil {
			failMu.Lock()
			fail = err
			failMu.Unlock()
			return 0
		}
		req.Header.Set("Authorization", bearer)
		start := time.Now()
		resp, err := client.Do(req)
		if err == nil {
			var body []byte
			if resp.StatusCode != want {
				body, _ = io.ReadAll(resp.Body)
			} else {
				_, err = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			if err == nil && resp.StatusCode != want {
				err = fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.RequestURI(), resp.StatusCode, want, body)
			}
		}
		d := time.Since(start)
		if err != nil {
			failMu.Lock()
			if fail == nil {
				fail = err
			}
			failMu.Unlock()
		}
		return d
	}
	run := func(n int, lat []time.Duration) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < bnWorkers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					d := do(i)
					if lat != nil {
						lat[i] = d
					}
				}
			}()
		}
		wg.Wait()
	}

	run(bnWarmup, nil) // connections open, plans cached, pages warm
	if fail != nil {
		b.Fatal(fail)
	}
	lat := make([]time.Duration, b.N)
	q0 := fx.queries.n.Load()
	b.ResetTimer()
	start := time.Now()
	run(b.N, lat)
	elapsed := time.Since(start)
	b.StopTimer()
	queries := fx.queries.n.Load() - q0
	if fail != nil {
		b.Fatal(fail)
	}

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(bnPercentile(lat, 50), "p50_ms")
	b.ReportMetric(bnPercentile(lat, 99), "p99_ms")
	b.ReportMetric(float64(queries)/float64(b.N), "queries/op")
}

// bnPercentile is the nearest-rank percentile of sorted latencies, in milliseconds.
func bnPercentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return float64(sorted[rank]) / float64(time.Millisecond)
}

// bnSetup builds the fixture: a fresh PostgreSQL database reopened with the production pool size,
// the seed, and both servers. It runs once per BenchmarkHTTP invocation (once per process with the
// default -count 1); everything is released when the benchmark ends.
func bnSetup(b *testing.B) *bnFixture {
	b.Helper()
	cfg := testConfig(b, nil)
	db := bnOpenPool(b, storetest.New(b), store.DefaultMaxConns)
	fx := &bnFixture{db: db, queries: bnCountQueries(b, db)}

	u := &store.User{Email: "bench.editor@example.com", Name: "Bench Editor", Role: string(rbac.Editor), IsActive: true}
	u.SearchText = store.SearchText(u.Name, u.Email)
	if err := db.Create(u).Error; err != nil {
		b.Fatal(err)
	}
	fx.user = u
	fx.principal = &httpx.Principal{Kind: httpx.KindUser, UserID: u.ID, Role: rbac.Role(u.Role), Email: u.Email, Name: u.Name}
	start := time.Now()
	fx.flowIDs = bnSeedFlows(b, db, u.ID, bnFlows)
	b.Logf("seeded %d flows in %v", len(fx.flowIDs), time.Since(start).Round(time.Millisecond))

	tokens := bnTokens(b, cfg)
	tok, _, err := tokens.Issue(u.ID, u.Role, "", 0)
	if err != nil {
		b.Fatal(err)
	}
	fx.token = tok

	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv, err := New(Deps{Config: cfg, DB: db, Tokens: tokens, Logger: logger, Shared: auth.NewMemoryShared(), Engine: testEngine(b, cfg, db, nil, logger)})
	if err != nil {
		b.Fatal(err)
	}
	fx.full = httptest.NewServer(srv.Echo)
	b.Cleanup(fx.full.Close)
	fx.baseline = httptest.NewServer(bnBaseline(srv, logger, fx.principal))
	b.Cleanup(fx.baseline.Close)
	return fx
}

// bnBaseline is the same strict handlers on a bare Echo: the error handler, the generated routes and
// one middleware that supplies the principal the handlers need (no request id, access log, recover,
// security headers, CORS, validation, authentication or authorisation).
func bnBaseline(srv *Server, logger *slog.Logger, p *httpx.Principal) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(logger)
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			c.SetRequest(req.WithContext(httpx.WithPrincipal(req.Context(), p)))
			return next(c)
		}
	})
	api.RegisterHandlersWithBaseURL(e, api.NewStrictHandler(&handlers{s: srv}, nil), BasePath)
	return e
}

func bnTokens(t testing.TB, cfg *config.Config) *auth.Tokens {
	t.Helper()
	tokens, err := auth.TokensFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// bnOpenPool reopens the fresh PostgreSQL database with a pool of conns (storetest's is 4, the
// server's default DB_MAX_CONNS is 20); the handle is closed before storetest drops the database.
func bnOpenPool(t testing.TB, db *store.DB, conns int) *store.DB {
	t.Helper()
	if db.Dialect != store.Postgres {
		return db
	}
	var name string
	if err := db.Raw("SELECT current_database()").Scan(&name).Error; err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(os.Getenv(storetest.EnvDatabaseURL))
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawPath = "/"+name, ""
	big, err := store.Open(context.Background(), store.Postgres, u.String(), conns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = big.Close() })
	return big
}

// bnGraph is a small realistic graph of 2 or 3 nodes: a trigger, an action, sometimes a condition.
func bnGraph(i int) []byte {
	nodes := []map[string]any{
		{"id": "start", "type": "custom", "position": map[string]any{"x": 0, "y": 0},
			"data": map[string]any{"type": "trigger-manual", "label": "Start"}},
		{"id": "http_1", "type": "custom", "position": map[string]any{"x": 240, "y": 0},
			"data": map[string]any{"type": "action-http", "label": "Fetch", "config": map[string]any{
				"method": "GET", "url": fmt.Sprintf("https://api.example.com/items/%d", i)}}},
	}
	edges := []map[string]any{{"id": "e1", "source": "start", "target": "http_1"}}
	if i%2 == 1 {
		nodes = append(nodes, map[string]any{"id": "check", "type": "custom", "position": map[string]any{"x": 480, "y": 0},
			"data": map[string]any{"type": "logic-condition", "label": "Ok?", "config": map[string]any{
				"condition_type": "equals", "value1": "{{nodes.http_1.status}}", "value2": 200}}})
		edges = append(edges, map[string]any{"id": "e2", "source": "http_1", "target": "check"})
	}
	raw, _ := json.Marshal(map[string]any{"nodes": nodes, "edges": edges, "viewport": map[string]any{"x": 0, "y": 0, "zoom": 1}})
	return raw
}

// bnCreateBody is the POST /flows body of request i.
func bnCreateBody(i int) []byte {
	return []byte(fmt.Sprintf(`{"name":"Bench created %d","description":"made by the benchmark","data":%s}`, i, bnGraph(i)))
}

// bnSeedFlows inserts n flows owned by ownerID, with their version 1, in batches, and returns the
// ids. The graph, hash and node count are derived as the server derives them on save.
func bnSeedFlows(t testing.TB, db *store.DB, ownerID int64, n int) []int64 {
	t.Helper()
	ids := make([]int64, 0, n)
	base := store.Now().Add(-time.Duration(n) * time.Minute)
	for lo := 0; lo < n; lo += bnBatch {
		hi := min(lo+bnBatch, n)
		flows := make([]store.Flow, 0, hi-lo)
		for i := lo; i < hi; i++ {
			parsed, err := flow.Parse(bnGraph(i))
			if err != nil {
				t.Fatal(err)
			}
			clean, err := parsed.Clean()
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("Flow %05d", i)
			desc := fmt.Sprintf("Seeded flow number %d for the benchmark", i)
			at := base.Add(time.Duration(i) * time.Minute)
			f := store.Flow{Name: name, Description: &desc, Status: "draft", Visibility: "private", OwnerID: ownerID,
				Data: clean, Revision: 1, Version: 1, NodeCount: parsed.NodeCount(), ContentHash: parsed.Hash(),
				SearchText: store.SearchText(name, desc), CreatedAt: at, UpdatedAt: at}
			switch i % 10 {
			case 0, 1, 2: // published
				one, h := 1, f.ContentHash
				f.Status, f.PublishedVersion, f.PublishedHash = "published", &one, &h
			case 3: // shared with everyone
				f.Visibility = "public"
			}
			flows = append(flows, f)
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := tx.CreateInBatches(&flows, bnBatch).Error; err != nil {
				return err
			}
			versions := make([]store.FlowVersion, 0, len(flows))
			for i := range flows {
				f := &flows[i]
				versions = append(versions, store.FlowVersion{FlowID: f.ID, Version: 1, Name: "Initial version",
					Data: f.Data, ContentHash: f.ContentHash, CreatedBy: &ownerID, CreatedAt: f.CreatedAt})
			}
			return tx.CreateInBatches(&versions, bnBatch).Error
		})
		if err != nil {
			t.Fatalf("seed flows %d..%d: %v", lo, hi, err)
		}
		for i := range flows {
			ids = append(ids, flows[i].ID)
		}
	}
	return ids
}

// bnQueryCounter counts the SQL statements GORM runs on a database (reads, row/raw, writes).
type bnQueryCounter struct{ n atomic.Int64 }

func bnCountQueries(t testing.TB, db *store.DB) *bnQueryCounter {
	t.Helper()
	c := &bnQueryCounter{}
	inc := func(*gorm.DB) { c.n.Add(1) }
	cb := db.Callback()
	for _, err := range []error{
		cb.Query().After("gorm:query").Register("bench:count_query", inc),
		cb.Row().After("gorm:row").Register("bench:count_row", inc),
		cb.Raw().After("gorm:raw").Register("bench:count_raw", inc),
		cb.Create().After("gorm:create").Register("bench:count_create", inc),
		cb.Update().After("gorm:update").Register("bench:count_update", inc),
		cb.Delete().After("gorm:delete").Register("bench:count_delete", inc),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestBenchListQueryCount is the "no query per row" check: listing flows costs the same small number
// of statements (the caller's user row, the count, the page) whatever the page size.
func TestBenchListQueryCount(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		cfg := testConfig(t, nil)
		queries := bnCountQueries(t, db)
		u := &store.User{Email: "lister@example.com", Name: "Lister", Role: string(rbac.Editor), IsActive: true}
		u.SearchText = store.SearchText(u.Name, u.Email)
		if err := db.Create(u).Error; err != nil {
			t.Fatal(err)
		}
		bnSeedFlows(t, db, u.ID, 60)
		tokens := bnTokens(t, cfg)
		tok, _, err := tokens.Issue(u.ID, u.Role, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		lg := slog.New(slog.NewJSONHandler(io.Discard, nil))
		srv, err := New(Deps{Config: cfg, DB: db, Tokens: tokens, Logger: lg, Shared: auth.NewMemoryShared(), Engine: testEngine(t, cfg, db, nil, lg)})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Echo)
		defer hs.Close()

		count := func(size int) int64 {
			t.Helper()
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s/flows?page=2&page_size=%d", hs.URL, BasePath, size), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			before := queries.n.Load()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			n := queries.n.Load() - before
			var page struct {
				Items []json.RawMessage `json:"items"`
				Total int64             `json:"total"`
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("page_size=%d: status %d: %s", size, resp.StatusCode, body)
			}
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != size || page.Total != 60 {
				t.Fatalf("page_size=%d: %d items of %d, want %d of 60", size, len(page.Items), page.Total, size)
			}
			return n
		}
		small, large := count(5), count(25)
		t.Logf("statements per list request: page_size=5 → %d, page_size=25 → %d", small, large)
		if large != small {
			t.Errorf("page_size=25 ran %d statements, page_size=5 ran %d: a query per row", large, small)
		}
		if large > 4 {
			t.Errorf("a list request ran %d statements, want ≤ 4 (user, count, page)", large)
		}
	})
}

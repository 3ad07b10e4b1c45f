package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/redis/go-redis/v9"

	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/engine"
	"github.com/wataomi/wataomi/store"
)

func init() {
	// The response validator reads event streams as text.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// testEngine starts a flow engine on db for one test (50 ms fetch poll, a Redis
// bus namespace of its own), stopped when the test ends.
func testEngine(t testing.TB, cfg *config.Config, db *store.DB, rdb *redis.Client, log *slog.Logger, opts ...engine.Options) *engine.Engine {
	t.Helper()
	var o engine.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.FetchPollInterval == 0 {
		o.FetchPollInterval = 50 * time.Millisecond
	}
	if o.BusNamespace == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		o.BusNamespace = "test-" + hex.EncodeToString(b)
	}
	eng, err := engine.FromConfig(context.Background(), cfg, db, rdb, log, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
		_ = eng.Bus().Close()
	})
	return eng
}

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/integration"
	"github.com/wataomi/wataomi/netguard"
	"github.com/wataomi/wataomi/store"
)

// Options adjust an engine built from configuration (tests).
type Options struct {
	FetchPollInterval time.Duration
	Clock             func() time.Time
	// BusNamespace separates the Redis channels of databases; default: derived from DATABASE_URL.
	BusNamespace string
	// Agent returns a flow's agent config (PRODUCT §5.14); nil: none.
	Agent func(ctx context.Context, flowID int64) (*AgentDefaults, error)
}

// FromConfig builds the engine of a process: the River client on db, the bus
// on Redis (or in-process without it), the AI router and the outbound guard.
func FromConfig(ctx context.Context, cfg *config.Config, db *store.DB, rdb *redis.Client, log *slog.Logger, opts Options) (*Engine, error) {
	var bus Bus
	if rdb != nil {
		ns := opts.BusNamespace
		if ns == "" {
			sum := sha256.Sum256([]byte(cfg.DatabaseDSN()))
			ns = hex.EncodeToString(sum[:6])
		}
		rb, err := NewRedisBus(ctx, rdb, log, ns)
		if err != nil {
			return nil, err
		}
		bus = rb
	} else {
		bus = NewMemoryBus()
	}
	guard, err := netguard.New(netguard.Options{AllowedHosts: cfg.HTTPAllowedHosts, BlockPrivate: cfg.HTTPBlockPrivateNetworks})
	if err != nil {
		return nil, err
	}
	router := ai.New(ai.Options{GeminiBaseURL: cfg.GeminiBaseURL, GeminiKey: cfg.GoogleAPIKey, OpenAIBaseURL: cfg.OpenAIBaseURL,
		OpenAIKey: cfg.OpenAIAPIKey, DefaultModel: cfg.AIDefaultModel, Timeout: cfg.AIRequestTimeout()})
	// Keys come from the provider's active integration first, then the environment (PRODUCT §8).
	ring, err := integration.KeyringFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	router.Keys = integration.NewSecrets(db.DB, ring).ProviderKey
	agent := opts.Agent
	if agent == nil {
		agent = StoreAgent(db)
	}
	services := &Services{AI: router, HTTP: guard.Client(), Agent: agent, DefaultModel: StoreDefaultModel(db, cfg.AIDefaultModel)}
	poll := opts.FetchPollInterval
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	return New(db, bus, services, Config{
		Limits: Limits{
			MaxSteps:    cfg.ExecutionMaxSteps,
			NodeTimeout: cfg.NodeTimeout(),
			AITimeout:   cfg.AIRequestTimeout(),
			MaxLifetime: time.Duration(cfg.ExecutionMaxLifetimeSeconds) * time.Second,
		},
		MaxRunTime:             time.Duration(cfg.ExecutionMaxRunSeconds) * time.Second,
		Concurrency:            cfg.WorkerConcurrency,
		MaintenanceConcurrency: cfg.WorkerConcurrencyMaintenance,
		SchedulerEnabled:       cfg.SchedulerEnabled,
		MisfireGrace:           time.Duration(cfg.ScheduleMisfireGraceSeconds) * time.Second,
		EventRetention:         time.Duration(cfg.ExecutionEventsRetentionHours) * time.Hour,
		ExecutionRetention:     time.Duration(cfg.ExecutionRetentionDays) * 24 * time.Hour,
		FetchPollInterval:      poll,
		Clock:                  opts.Clock,
		DefaultTimezone:        StoreDefaultTimezone,
		AuditRetention:         cfg.AuditRetention(),
		Logger:                 log,
	})
}

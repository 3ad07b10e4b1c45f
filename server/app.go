// Package server wires Echo: the root routes, the middleware chain of DESIGN §3, the one problem+json
// error handler, and the strict handlers that implement the generated interface (one file per tag).
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/engine"
	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/integration"
	"github.com/wataomi/wataomi/media"
	"github.com/wataomi/wataomi/openapi"
	"github.com/wataomi/wataomi/server/idempotency"
	"github.com/wataomi/wataomi/store"
)

// Version is the server's build version, shown at / .
var Version = "1.0.0"

// Deps are what the server needs from the outside; Redis is nil on the embedded default.
type Deps struct {
	Config *config.Config
	DB     *store.DB
	Redis  *redis.Client
	Tokens *auth.Tokens
	Logger *slog.Logger
	// Shared holds what replicas share (revocations, OAuth state, rate limits): Redis, or in-process.
	Shared auth.Shared
	// Casdoor is nil when single sign-on is not configured; its operations then answer 503.
	Casdoor *auth.Casdoor
	// Idempotency holds Idempotency-Key claims and answers; nil chooses by Redis: shared through
	// Redis when it is configured, in-process otherwise.
	Idempotency idempotency.Store
	// Engine runs flows (River workers, the executor and the event bus).
	Engine *engine.Engine
}

// Server is the HTTP application.
type Server struct {
	Echo     *echo.Echo
	deps     Deps
	limits   flow.Limits
	oa       *openAPI
	draining atomic.Bool
	integ    *integrations
	media    media.Driver
}

// New builds the server. It refuses to start when the contract has an operation without a guard.
func New(d Deps) (*Server, error) {
	if d.Config.APIV1Str != BasePath {
		return nil, fmt.Errorf("API_V1_STR must be %s", BasePath)
	}
	doc, err := embeddedSpec()
	if err != nil {
		return nil, fmt.Errorf("embedded contract: %w", err)
	}
	flowBody := d.Config.FlowMaxBytes + 256<<10
	if d.Shared == nil {
		return nil, fmt.Errorf("server: Deps.Shared is required")
	}
	if d.Engine == nil {
		return nil, fmt.Errorf("server: Deps.Engine is required")
	}
	oa, err := newOpenAPI(doc, &tokenAuthenticator{tokens: d.Tokens, db: d.DB, shared: d.Shared},
		map[string]int64{"": d.Config.APIMaxBodyBytes, "flow": flowBody,
			"media-image": d.Config.MediaMaxImageBytes + 64<<10, "media-file": d.Config.MediaMaxFileBytes + 64<<10})
	if err != nil {
		return nil, err
	}
	oa.limiter = &rateLimiter{shared: d.Shared, window: time.Minute}
	oa.publicLimit, oa.principalLimit, oa.aiLimit = d.Config.RateLimitPublicPerMinute, d.Config.RateLimitPerMinute, d.Config.RateLimitAIPerMinute
	if d.Idempotency == nil {
		d.Idempotency = idempotency.NewMemory()
		if d.Redis != nil {
			d.Idempotency = idempotency.NewRedis(d.Redis)
		}
	}
	ring, err := integration.KeyringFromConfig(d.Config)
	if err != nil {
		return nil, err
	}
	oa.idem = newIdempotencyKeeper(d.Idempotency, ring, d.Config.IdempotencyTTL(), d.Logger)
	s := &Server{deps: d, oa: oa, limits: flow.Limits{MaxNodes: d.Config.FlowMaxNodes, MaxEdges: d.Config.FlowMaxEdges, MaxBytes: int(d.Config.FlowMaxBytes)}}
	oa.denied = s.auditDenied
	if s.integ, err = newIntegrations(d.Config, ring); err != nil {
		return nil, err
	}
	if s.media, err = newMediaStorage(d.Config); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(d.Logger)
	e.IPExtractor = ipExtractor(d.Config)

	e.Pre(middleware.RemoveTrailingSlash())
	e.Use(requestID, accessLog(d.Logger))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true, LogLevel: 0,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			d.Logger.ErrorContext(c.Request().Context(), "panic", "error", err.Error(), "stack", string(stack))
			return internalError(err)
		}}))
	e.Use(securityHeaders)
	cors := middleware.CORSConfig{
		AllowOrigins:     d.Config.CORSOrigins,
		AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders:     []string{"Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID"},
		ExposeHeaders:    []string{"ETag", "Location", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-Request-ID", "Idempotent-Replayed"},
		AllowCredentials: false,
		MaxAge:           600,
	}
	if len(cors.AllowOrigins) == 0 { // Echo would read an empty list as "*"; no origins means none
		cors.AllowOriginFunc = func(string) (bool, error) { return false, nil }
	}
	e.Use(middleware.CORSWithConfig(cors))
	e.Use(oa.middleware)

	s.rootRoutes(e)
	api.RegisterHandlersWithBaseURL(e, api.NewStrictHandler(&handlers{s: s}, nil), BasePath)
	s.Echo = e
	return s, nil
}

// RootRoutes are the only routes outside the contract (PRODUCT §5.23).
var RootRoutes = []string{"GET /", "GET /health", "GET /ready", "GET /openapi.yaml", "GET /openapi.json",
	"GET /docs", "GET /redoc", "GET /docs/assets/*"}

func (s *Server) rootRoutes(e *echo.Echo) {
	e.GET("/", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"name": s.deps.Config.ProjectName, "version": Version, "docs": "/docs"})
	})
	e.GET("/health", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/ready", s.ready)
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", openapi.BundledYAML)
	})
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapi.BundledJSON)
	})
	s.docsRoutes(e)
}

// Drain turns /ready to 503 so load balancers stop sending traffic before shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// ready is the readiness probe: the database, Redis when configured, and no pending migration. It
// answers a 503 problem carrying the checks when one fails or while the server drains.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"db": "ok", "redis": "not configured", "migrations": "ok"}
	var failed []string
	if err := s.deps.DB.Ping(ctx); err != nil {
		checks["db"], checks["migrations"] = "unavailable", "unknown"
		failed = append(failed, "database")
	} else if n, err := store.PendingMigrations(ctx, s.deps.DB); err != nil || n > 0 {
		checks["migrations"] = "pending"
		failed = append(failed, "migrations")
	}
	if s.deps.Redis != nil {
		checks["redis"] = "ok"
		if err := s.deps.Redis.Ping(ctx).Err(); err != nil {
			checks["redis"] = "unavailable"
			failed = append(failed, "redis")
		}
	}
	if s.draining.Load() {
		p := problem(http.StatusServiceUnavailable, "dependency-unavailable", "The server is shutting down.")
		p.Checks, p.RetryAfter = checks, 5
		return p
	}
	if len(failed) > 0 {
		p := problem(http.StatusServiceUnavailable, "dependency-unavailable", "Not ready: "+strings.Join(failed, ", ")+".")
		p.Checks, p.Dependency, p.RetryAfter = checks, failed[0], 5
		return p
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ok", "checks": checks})
}

func ipExtractor(cfg *config.Config) echo.IPExtractor {
	if len(cfg.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range cfg.TrustedProxies {
		if _, n, err := net.ParseCIDR(p.String()); err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

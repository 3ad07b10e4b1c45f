package server

import (
	"log/slog"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"

	"github.com/wataomi/wataomi/server/httpx"
)

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID accepts a well-formed X-Request-ID or generates a ULID, and echoes it (PRODUCT §2.1). It
// also records the client IP as TRUSTED_PROXIES allows, for logs, audit rows and rate limits, and the
// User-Agent for audit rows.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		id := req.Header.Get(echo.HeaderXRequestID)
		if !requestIDRe.MatchString(id) {
			id = ulid.Make().String()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		ctx := httpx.WithClientIP(httpx.WithRequestID(req.Context(), id), c.RealIP())
		ctx = httpx.WithUserAgent(ctx, req.UserAgent())
		c.SetRequest(req.WithContext(ctx))
		return next(c)
	}
}

// accessLog writes one JSON line per request with the fields of PRODUCT §9.3. It renders errors
// itself first so the logged status is the one the client got. Bodies, tokens and query strings are
// never logged.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			req := c.Request()
			ctx := req.Context()
			route := c.Path()
			if op := httpx.OperationFrom(ctx); op != nil {
				route = op.Route
			}
			attrs := []slog.Attr{
				slog.String("request_id", httpx.RequestID(ctx)),
				slog.String("method", req.Method),
				slog.String("route", route),
				slog.Int("status", c.Response().Status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("client_ip", c.RealIP()),
				slog.Int64("bytes", c.Response().Size),
			}
			if p := httpx.PrincipalFrom(ctx); p != nil {
				attrs = append(attrs, slog.Int64("user_id", p.UserID))
			}
			log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
			return nil
		}
	}
}

// securityHeaders sets the headers of PRODUCT §9.1 S13 on every response.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		return next(c)
	}
}

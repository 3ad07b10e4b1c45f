package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/server/httpx"
)

// Rate-limit bucket namespaces. Every bucket of one namespace shares that namespace's limit.
const (
	bucketPublic      = "public:"       // per client IP on x-public operations
	bucketPrincipal   = "principal:"    // per user or API token
	bucketAI          = "ai:"           // per user or API token on x-rate-limit: ai operations
	bucketFlowWebhook = "flow-webhook:" // per endpoint key on POST /webhooks/flows/{endpoint_key}
)

// rateLimiter counts requests in fixed windows (RATE_LIMIT_*_PER_MINUTE: one minute) in the store every
// replica shares (auth.Shared.Hit: Redis, or in-process on the embedded default).
type rateLimiter struct {
	shared auth.Shared
	window time.Duration // one minute; tests shorten it
}

// limit counts one request against bucket, which allows limit requests per window, and sets
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (seconds, rounded up) on h. Over the limit
// it returns 429 rate-limited with Retry-After; a store failure is 503 (fail closed). Any key works
// as a bucket (an IP, a principal, a receiver's endpoint key); give it a namespace prefix so that
// buckets of different limits never share a counter.
func (l *rateLimiter) limit(ctx context.Context, h http.Header, bucket string, limit int) error {
	res, err := l.shared.Hit(ctx, bucket, limit, l.window)
	if err != nil {
		return dependencyDown("redis", err)
	}
	reset := int((res.Reset + time.Second - 1) / time.Second)
	h.Set("RateLimit-Limit", strconv.Itoa(res.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(reset))
	if !res.Allowed {
		p := problem(http.StatusTooManyRequests, "rate-limited", fmt.Sprintf("Too many requests; retry in %d s.", max(reset, 1)))
		p.RetryAfter = max(reset, 1)
		return p
	}
	return nil
}

// principalKey names a principal in rate-limit buckets and idempotency scopes: each user, and each API
// token separately from its owner.
func principalKey(p *httpx.Principal) string {
	if p.Kind == httpx.KindAPIToken {
		return p.Kind + ":" + strconv.FormatInt(p.TokenID, 10)
	}
	return p.Kind + ":" + strconv.FormatInt(p.UserID, 10)
}

// limitPrincipal is the per-principal limiter (PRODUCT §2.3): RATE_LIMIT_PER_MINUTE per user or API
// token, or RATE_LIMIT_AI_PER_MINUTE in a bucket of its own on x-rate-limit: ai operations. It runs
// after authentication and before authorisation (PRODUCT §2.2: 401 → 429 → 403).
func (o *openAPI) limitPrincipal(ctx context.Context, h http.Header, p *httpx.Principal, class string) error {
	if class == "ai" {
		return o.limiter.limit(ctx, h, bucketAI+principalKey(p), o.aiLimit)
	}
	return o.limiter.limit(ctx, h, bucketPrincipal+principalKey(p), o.principalLimit)
}

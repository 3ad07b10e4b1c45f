package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/server/idempotency"
)

// idempotencyLockTTL frees the key of a request that crashed while holding it (PRODUCT §2.3).
const idempotencyLockTTL = 60 * time.Second

// replayedHeaders are the response headers kept with an answer and sent again on a replay.
var replayedHeaders = []string{echo.HeaderContentType, "Location", "ETag", "Cache-Control"}

// storedResponse is an answer kept under an Idempotency-Key.
type storedResponse struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header"`
	Body   []byte            `json:"body"`
}

// idempotencyKeeper runs x-idempotent operations under the caller's Idempotency-Key (PRODUCT §2.3).
type idempotencyKeeper struct {
	store   idempotency.Store
	ttl     time.Duration // IDEMPOTENCY_TTL_HOURS
	lockTTL time.Duration
	// ring encrypts kept answers (the secrets at rest keyring, ENCRYPTION_KEY): they can hold secrets
	// shown once (a new API token), and the store (Redis) must not become a second place to read them.
	ring *secretbox.Keyring
	log  *slog.Logger
	// beforeRun, when set, is called once the key is claimed and before the handler runs (tests
	// hold a request there to observe 409 idempotency-in-progress).
	beforeRun func(ctx context.Context)
}

func newIdempotencyKeeper(store idempotency.Store, ring *secretbox.Keyring, ttl time.Duration, log *slog.Logger) *idempotencyKeeper {
	return &idempotencyKeeper{store: store, ttl: ttl, lockTTL: idempotencyLockTTL, ring: ring, log: log}
}

// run answers a request that carries an Idempotency-Key. It is called by the OpenAPI filter after
// authentication, the rate limit, authorisation and validation, right before the handler: a request
// refused by any of those changes nothing and is re-checked on a retry, so it neither claims the key
// nor gets kept; the caller is known, and allowed, before the key is looked up, so nobody can probe
// or block another principal's keys; and the key itself has passed the header's pattern.
//
// The scope is (principal, method, concrete path, key) and the fingerprint is fp (the raw body and
// the sorted query). A stored answer with the same fingerprint is replayed with Idempotent-Replayed;
// another fingerprint is 422 idempotency-key-reused; a claim still running is 409
// idempotency-in-progress. Otherwise the handler runs with its response captured; its answer is kept
// for IDEMPOTENCY_TTL_HOURS, except a 5xx, a panic or a 429 (an answer that asks for a retry, such as
// EXECUTION_MAX_CONCURRENT_PER_USER), which release the claim so that a retry can run.
func (k *idempotencyKeeper) run(c echo.Context, p *httpx.Principal, key, fp string, next echo.HandlerFunc) error {
	req := c.Request()
	ctx := req.Context()
	scope := idempotency.ScopeKey(principalKey(p), req.Method, req.URL.Path, key)
	lock, entry, err := k.store.Begin(ctx, scope, fp, k.lockTTL)
	if err != nil {
		return dependencyDown("redis", err)
	}
	if entry != nil {
		return k.answerTaken(c, scope, fp, entry)
	}

	kept := false
	defer func() {
		if !kept { // a 5xx, a 429, an unwritten response or a panic: free the key for a retry
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := k.store.Release(bg, lock); err != nil {
				k.log.ErrorContext(bg, "idempotency: release failed", "request_id", httpx.RequestID(ctx), "error", err.Error())
			}
		}
	}()
	if k.beforeRun != nil {
		k.beforeRun(ctx)
	}
	res := c.Response()
	capture := &captureWriter{ResponseWriter: res.Writer}
	res.Writer = capture
	if err := next(c); err != nil {
		c.Error(err) // render the problem now, so that the answer the client gets is the one kept
	}
	res.Writer = capture.ResponseWriter
	if !res.Committed || res.Status >= 500 || res.Status == http.StatusTooManyRequests {
		return nil
	}
	stored := storedResponse{Status: res.Status, Header: map[string]string{}, Body: capture.body.Bytes()}
	for _, h := range replayedHeaders {
		if v := res.Header().Get(h); v != "" {
			stored.Header[h] = v
		}
	}
	data, err := k.sealResponse(scope, stored)
	if err != nil {
		k.log.ErrorContext(ctx, "idempotency: cannot keep the answer", "request_id", httpx.RequestID(ctx), "error", err.Error())
		return nil
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch err := k.store.Complete(bg, lock, data, k.ttl); {
	case err == nil, errors.Is(err, idempotency.ErrLockLost):
		// Lost: the claim expired and another request took the key; its answer stands.
		kept = true
	default:
		// The client already has its answer; without the record a retry would run again, so say so.
		k.log.ErrorContext(bg, "idempotency: cannot keep the answer", "request_id", httpx.RequestID(ctx), "error", err.Error())
	}
	return nil
}

// answerTaken answers a request whose key is already claimed or answered.
func (k *idempotencyKeeper) answerTaken(c echo.Context, scope, fp string, entry *idempotency.Entry) error {
	if entry.Fingerprint != fp {
		return unprocessable("idempotency-key-reused",
			"This Idempotency-Key was already used with a different request (body or query); use a new key for a new request.")
	}
	if !entry.Done {
		p := conflict("idempotency-in-progress", "A request with this Idempotency-Key is still running; retry shortly to get its answer.")
		p.RetryAfter = 1
		return p
	}
	stored, err := k.openResponse(scope, entry.Data)
	if err != nil {
		return internalError(fmt.Errorf("idempotency: stored answer: %w", err))
	}
	h := c.Response().Header()
	for name, v := range stored.Header {
		h.Set(name, v)
	}
	h.Set("Idempotent-Replayed", "true")
	c.Response().WriteHeader(stored.Status)
	_, err = c.Response().Write(stored.Body)
	return err
}

// sealResponse encodes and encrypts an answer, bound to its scope (a record cannot be moved to
// another key).
func (k *idempotencyKeeper) sealResponse(scope string, r storedResponse) ([]byte, error) {
	plain, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sealed, err := k.ring.Seal(plain, idempotencyAAD(scope))
	return []byte(sealed), err
}

func (k *idempotencyKeeper) openResponse(scope string, data []byte) (storedResponse, error) {
	var r storedResponse
	plain, err := k.ring.Open(string(data), idempotencyAAD(scope))
	if err != nil {
		return r, err
	}
	err = json.Unmarshal(plain, &r)
	return r, err
}

func idempotencyAAD(scope string) string { return "idempotency:" + scope }

// captureWriter copies what the handler writes, for keeping.
type captureWriter struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.body.Write(b[:n])
	return n, err
}

func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SharedKeyPrefix prefixes every key this package writes to Redis.
const SharedKeyPrefix = "wataomi:"

// Revocation kinds accepted by Shared.Revoke.
const (
	RevokeJTI = "jti" // one access token
	RevokeSID = "sid" // a whole refresh family: every access token carrying that sid
)

var (
	// ErrSharedUnavailable wraps every failure of the shared store (Redis
	// unreachable, timeout, protocol error). Callers fail closed: 503.
	ErrSharedUnavailable = errors.New("shared store unavailable")

	// ErrStateNotFound is returned by TakeState for a state that does not
	// exist, has expired or was already taken.
	ErrStateNotFound = errors.New("oauth state not found")

	// ErrStateExists is returned by PutState when the key is already in use.
	ErrStateExists = errors.New("oauth state already exists")
)

// Shared is the ephemeral state the replicas share (PRODUCT §2.3 "Rate
// limits", §3.2, §8 REDIS_URL; DESIGN §4): OAuth state, the jti/sid
// deny-list and rate-limit counters. NewRedisShared is the multi-replica
// implementation, NewMemoryShared the in-process one of the embedded default.
// Both are safe for concurrent use.
type Shared interface {
	// PutState stores an OAuth state for ttl; it fails with ErrStateExists if
	// key is already stored.
	PutState(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// TakeState atomically gets and deletes a state: of concurrent callers at
	// most one receives the value. ErrStateNotFound if absent or expired.
	TakeState(ctx context.Context, key string) ([]byte, error)
	// Revoke puts id (kind RevokeJTI or RevokeSID) on the deny-list until
	// until plus ClockSkew (so a token still accepted within the verifier's
	// leeway stays revoked). An until already past that is a no-op. An
	// existing entry is never shortened.
	Revoke(ctx context.Context, kind, id string, until time.Time) error
	// Revoked reports whether jti or sid is on the deny-list, in one round
	// trip. An empty argument is not looked up.
	Revoked(ctx context.Context, jti, sid string) (bool, error)
	// Hit counts one request against bucket in a fixed window that starts
	// at the bucket's first hit and lasts window.
	Hit(ctx context.Context, bucket string, limit int, window time.Duration) (RateResult, error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
}

// RateResult is the outcome of Shared.Hit. Remaining never goes below 0;
// Reset is the time until the current window ends (0 < Reset ≤ window).
type RateResult struct {
	Allowed   bool
	Limit     int
	Remaining int
	Reset     time.Duration
}

func newRateResult(count int64, limit int, reset, window time.Duration) RateResult {
	if reset <= 0 || reset > window {
		reset = window
	}
	remaining := int64(limit) - count
	if remaining < 0 {
		remaining = 0
	}
	return RateResult{Allowed: count <= int64(limit), Limit: limit, Remaining: int(remaining), Reset: reset}
}

func checkHitArgs(limit int, window time.Duration) error {
	if limit <= 0 {
		return fmt.Errorf("auth: rate limit must be positive, got %d", limit)
	}
	if window < time.Millisecond {
		return fmt.Errorf("auth: rate window must be at least 1ms, got %s", window)
	}
	return nil
}

func checkRevokeKind(kind, id string) error {
	if kind != RevokeJTI && kind != RevokeSID {
		return fmt.Errorf("auth: unknown revocation kind %q", kind)
	}
	if id == "" {
		return errors.New("auth: empty revocation id")
	}
	return nil
}

func stateKey(key string) string        { return SharedKeyPrefix + "oauth_state:" + key }
func revokedKey(kind, id string) string { return SharedKeyPrefix + "revoked:" + kind + ":" + id }
func rateKey(bucket string) string      { return SharedKeyPrefix + "rl:" + bucket }

// ---------------------------------------------------------------------------
// Redis

type redisShared struct {
	rdb *redis.Client
}

// NewRedisShared returns the Redis implementation of Shared. Every Redis
// error is returned wrapped with ErrSharedUnavailable.
func NewRedisShared(rdb *redis.Client) Shared { return &redisShared{rdb: rdb} }

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrSharedUnavailable, op, err)
}

func (s *redisShared) PutState(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if key == "" {
		return errors.New("auth: empty state key")
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("auth: state ttl must be at least 1ms, got %s", ttl)
	}
	ok, err := s.rdb.SetNX(ctx, stateKey(key), value, ttl).Result()
	if err != nil {
		return unavailable("put state", err)
	}
	if !ok {
		return ErrStateExists
	}
	return nil
}

func (s *redisShared) TakeState(ctx context.Context, key string) ([]byte, error) {
	if key == "" {
		return nil, ErrStateNotFound
	}
	v, err := s.rdb.GetDel(ctx, stateKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrStateNotFound
	}
	if err != nil {
		return nil, unavailable("take state", err)
	}
	return v, nil
}

func (s *redisShared) Revoke(ctx context.Context, kind, id string, until time.Time) error {
	if err := checkRevokeKind(kind, id); err != nil {
		return err
	}
	ttl := time.Until(until.Add(ClockSkew))
	if ttl <= 0 {
		return nil
	}
	ttl = ttl.Round(time.Millisecond) + time.Millisecond // never shorter than asked
	k := revokedKey(kind, id)
	// SET NX creates the entry; PEXPIRE GT extends one that expires sooner
	// and never shortens one that expires later.
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, k, "1", ttl)
		p.Do(ctx, "pexpire", k, ttl.Milliseconds(), "gt")
		return nil
	})
	if err != nil {
		return unavailable("revoke", err)
	}
	return nil
}

func (s *redisShared) Revoked(ctx context.Context, jti, sid string) (bool, error) {
	keys := make([]string, 0, 2)
	if jti != "" {
		keys = append(keys, revokedKey(RevokeJTI, jti))
	}
	if sid != "" {
		keys = append(keys, revokedKey(RevokeSID, sid))
	}
	if len(keys) == 0 {
		return false, nil
	}
	n, err := s.rdb.Exists(ctx, keys...).Result()
	if err != nil {
		return false, unavailable("revoked", err)
	}
	return n > 0, nil
}

func (s *redisShared) Hit(ctx context.Context, bucket string, limit int, window time.Duration) (RateResult, error) {
	if err := checkHitArgs(limit, window); err != nil {
		return RateResult{}, err
	}
	k := rateKey(bucket)
	var incr *redis.IntCmd
	var pttl *redis.DurationCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		p.Do(ctx, "pexpire", k, window.Milliseconds(), "nx")
		pttl = p.PTTL(ctx, k)
		return nil
	})
	if err != nil {
		return RateResult{}, unavailable("rate limit", err)
	}
	return newRateResult(incr.Val(), limit, pttl.Val(), window), nil
}

func (s *redisShared) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// In-process

// memorySweepEvery bounds how often the in-process store scans for expired
// entries (rate-limit buckets per IP would otherwise accumulate).
const memorySweepEvery = time.Minute

type memEntry struct {
	value   []byte
	count   int64
	expires time.Time
}

type memoryShared struct {
	mu        sync.Mutex
	now       func() time.Time
	states    map[string]memEntry
	revoked   map[string]memEntry
	counters  map[string]memEntry
	lastSweep time.Time
}

// NewMemoryShared returns an in-process Shared for a single replica (the
// embedded default without REDIS_URL). Expired entries are dropped when read
// and by a sweep at most once a minute.
func NewMemoryShared() Shared { return newMemoryShared(time.Now) }

func newMemoryShared(now func() time.Time) *memoryShared {
	return &memoryShared{
		now:       now,
		states:    map[string]memEntry{},
		revoked:   map[string]memEntry{},
		counters:  map[string]memEntry{},
		lastSweep: now(),
	}
}

// lock takes the mutex, sweeps if due and returns the current time.
func (m *memoryShared) lock() time.Time {
	m.mu.Lock()
	now := m.now()
	if now.Sub(m.lastSweep) >= memorySweepEvery {
		m.lastSweep = now
		for _, mp := range []map[string]memEntry{m.states, m.revoked, m.counters} {
			for k, e := range mp {
				if !now.Before(e.expires) {
					delete(mp, k)
				}
			}
		}
	}
	return now
}

// live returns the entry of k in mp if it has not expired.
func live(mp map[string]memEntry, k string, now time.Time) (memEntry, bool) {
	e, ok := mp[k]
	if !ok {
		return memEntry{}, false
	}
	if !now.Before(e.expires) {
		delete(mp, k)
		return memEntry{}, false
	}
	return e, true
}

func (m *memoryShared) PutState(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return errors.New("auth: empty state key")
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("auth: state ttl must be at least 1ms, got %s", ttl)
	}
	now := m.lock()
	defer m.mu.Unlock()
	if _, ok := live(m.states, key, now); ok {
		return ErrStateExists
	}
	m.states[key] = memEntry{value: append([]byte{}, value...), expires: now.Add(ttl)}
	return nil
}

func (m *memoryShared) TakeState(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := m.lock()
	defer m.mu.Unlock()
	e, ok := live(m.states, key, now)
	if !ok {
		return nil, ErrStateNotFound
	}
	delete(m.states, key)
	return e.value, nil
}

func (m *memoryShared) Revoke(ctx context.Context, kind, id string, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkRevokeKind(kind, id); err != nil {
		return err
	}
	now := m.lock()
	defer m.mu.Unlock()
	exp := until.Add(ClockSkew)
	if !exp.After(now) {
		return nil
	}
	k := kind + ":" + id
	if e, ok := live(m.revoked, k, now); ok && !e.expires.Before(exp) {
		return nil
	}
	m.revoked[k] = memEntry{expires: exp}
	return nil
}

func (m *memoryShared) Revoked(ctx context.Context, jti, sid string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := m.lock()
	defer m.mu.Unlock()
	if jti != "" {
		if _, ok := live(m.revoked, RevokeJTI+":"+jti, now); ok {
			return true, nil
		}
	}
	if sid != "" {
		if _, ok := live(m.revoked, RevokeSID+":"+sid, now); ok {
			return true, nil
		}
	}
	return false, nil
}

func (m *memoryShared) Hit(ctx context.Context, bucket string, limit int, window time.Duration) (RateResult, error) {
	if err := ctx.Err(); err != nil {
		return RateResult{}, err
	}
	if err := checkHitArgs(limit, window); err != nil {
		return RateResult{}, err
	}
	now := m.lock()
	defer m.mu.Unlock()
	e, ok := live(m.counters, bucket, now)
	if !ok {
		e = memEntry{expires: now.Add(window)}
	}
	e.count++
	m.counters[bucket] = e
	return newRateResult(e.count, limit, e.expires.Sub(now), window), nil
}

func (m *memoryShared) Ping(ctx context.Context) error { return ctx.Err() }

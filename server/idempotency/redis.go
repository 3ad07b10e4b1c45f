package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeyPrefix prefixes every Redis key of this package.
const KeyPrefix = "wataomi:idem:"

// ErrUnavailable wraps every Redis failure; callers fail closed (503).
var ErrUnavailable = errors.New("idempotency store unavailable")

// record is the Redis value of a key: the lock holder's token, the fingerprint and, once done, the
// stored answer.
type record struct {
	Token       string `json:"t"`
	Fingerprint string `json:"fp"`
	Done        bool   `json:"done"`
	Data        []byte `json:"data,omitempty"`
}

type redisStore struct{ rdb *redis.Client }

// NewRedis returns the Store shared by every replica through Redis.
func NewRedis(rdb *redis.Client) Store { return &redisStore{rdb: rdb} }

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// completeScript stores the answer (ARGV[2], for ARGV[3] ms) unless another request's lock or
// answer holds the key (its token differs from ARGV[1]).
var completeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).t ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// releaseScript deletes the key if it is still the lock of token ARGV[1].
var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local r = cjson.decode(v)
if r.t == ARGV[1] and not r.done then return redis.call('DEL', KEYS[1]) end
return 0`)

func (s *redisStore) Begin(ctx context.Context, key, fp string, lockTTL time.Duration) (*Lock, *Entry, error) {
	k := KeyPrefix + key
	l := newLock(key, fp)
	val, err := json.Marshal(record{Token: l.token, Fingerprint: fp})
	if err != nil {
		return nil, nil, err
	}
	// SET NX either claims the key or finds it taken; a key that expires between SET NX and GET is
	// claimed on the next round.
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, k, val, lockTTL).Result()
		if err != nil {
			return nil, nil, unavailable("begin", err)
		}
		if ok {
			return l, nil, nil
		}
		raw, err := s.rdb.Get(ctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, nil, unavailable("begin", err)
		}
		var r record
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, nil, fmt.Errorf("idempotency: corrupt record: %w", err)
		}
		return nil, &Entry{Fingerprint: r.Fingerprint, Done: r.Done, Data: r.Data}, nil
	}
	return nil, nil, unavailable("begin", errors.New("key keeps expiring"))
}

func (s *redisStore) Complete(ctx context.Context, l *Lock, data []byte, ttl time.Duration) error {
	val, err := json.Marshal(record{Token: l.token, Fingerprint: l.Fingerprint, Done: true, Data: data})
	if err != nil {
		return err
	}
	n, err := completeScript.Run(ctx, s.rdb, []string{KeyPrefix + l.Key}, l.token, val, ttl.Milliseconds()).Int()
	if err != nil {
		return unavailable("complete", err)
	}
	if n == 0 {
		return ErrLockLost
	}
	return nil
}

func (s *redisStore) Release(ctx context.Context, l *Lock) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{KeyPrefix + l.Key}, l.token).Err(); err != nil {
		return unavailable("release", err)
	}
	return nil
}

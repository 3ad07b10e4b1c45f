package auth

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The same contract runs against the in-process store always and against
// Redis when TEST_REDIS_URL is set. The Redis database is shared with other
// tests: every key is unique to this run, and nothing is flushed.

func TestMemorySharedContract(t *testing.T) {
	runSharedContract(t, func(t *testing.T) Shared { return NewMemoryShared() })
}

func TestRedisSharedContract(t *testing.T) {
	rdb := testRedis(t)
	runSharedContract(t, func(t *testing.T) Shared { return NewRedisShared(rdb) })
}

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		t.Skip("TEST_REDIS_URL not set")
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at TEST_REDIS_URL: %v", err)
	}
	return rdb
}

// uniq returns a key unique to this test run.
func uniq(name string) string { return "test-" + NewFamilyID() + "-" + name }

func runSharedContract(t *testing.T, newStore func(t *testing.T) Shared) {
	ctx := context.Background()

	t.Run("Ping", func(t *testing.T) {
		if err := newStore(t).Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("StateRoundTrip", func(t *testing.T) {
		s := newStore(t)
		key := uniq("state")
		val := []byte(`{"verifier":"v","redirect_uri":"http://x/cb"}`)
		if err := s.PutState(ctx, key, val, time.Minute); err != nil {
			t.Fatalf("PutState: %v", err)
		}
		if err := s.PutState(ctx, key, []byte("other"), time.Minute); !errors.Is(err, ErrStateExists) {
			t.Fatalf("second PutState = %v, want ErrStateExists", err)
		}
		got, err := s.TakeState(ctx, key)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("TakeState = %q, %v; want %q", got, err, val)
		}
		if _, err := s.TakeState(ctx, key); !errors.Is(err, ErrStateNotFound) {
			t.Fatalf("second TakeState = %v, want ErrStateNotFound", err)
		}
		if _, err := s.TakeState(ctx, uniq("never-put")); !errors.Is(err, ErrStateNotFound) {
			t.Fatalf("TakeState(unknown) = %v, want ErrStateNotFound", err)
		}
	})

	t.Run("StateBadArgs", func(t *testing.T) {
		s := newStore(t)
		tests := []struct {
			name string
			key  string
			ttl  time.Duration
		}{
			{"empty key", "", time.Minute},
			{"zero ttl", uniq("zero"), 0},
			{"negative ttl", uniq("neg"), -time.Second},
		}
		for _, tt := range tests {
			if err := s.PutState(ctx, tt.key, []byte("v"), tt.ttl); err == nil {
				t.Errorf("%s: PutState succeeded", tt.name)
			}
		}
	})

	t.Run("StateExpires", func(t *testing.T) {
		s := newStore(t)
		key := uniq("expiring")
		if err := s.PutState(ctx, key, []byte("v"), 100*time.Millisecond); err != nil {
			t.Fatalf("PutState: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
		if _, err := s.TakeState(ctx, key); !errors.Is(err, ErrStateNotFound) {
			t.Fatalf("TakeState after ttl = %v, want ErrStateNotFound", err)
		}
		// An expired key can be put again.
		if err := s.PutState(ctx, key, []byte("w"), time.Minute); err != nil {
			t.Fatalf("PutState after expiry: %v", err)
		}
	})

	t.Run("StateConcurrentTake", func(t *testing.T) {
		s := newStore(t)
		key := uniq("race")
		if err := s.PutState(ctx, key, []byte("v"), time.Minute); err != nil {
			t.Fatalf("PutState: %v", err)
		}
		var wins, misses atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.TakeState(ctx, key)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrStateNotFound):
					misses.Add(1)
				default:
					t.Errorf("TakeState: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || misses.Load() != 19 {
			t.Fatalf("wins=%d misses=%d, want 1 and 19", wins.Load(), misses.Load())
		}
	})

	t.Run("Revocation", func(t *testing.T) {
		s := newStore(t)
		jti, sid, other := uniq("jti"), uniq("sid"), uniq("other")
		until := time.Now().Add(time.Minute)
		if err := s.Revoke(ctx, RevokeJTI, jti, until); err != nil {
			t.Fatalf("Revoke jti: %v", err)
		}
		if err := s.Revoke(ctx, RevokeSID, sid, until); err != nil {
			t.Fatalf("Revoke sid: %v", err)
		}
		tests := []struct {
			name     string
			jti, sid string
			want     bool
		}{
			{"revoked jti", jti, other, true},
			{"revoked sid", other, sid, true},
			{"both revoked", jti, sid, true},
			{"jti only", jti, "", true},
			{"sid only", "", sid, true},
			{"neither", other, other, false},
			{"kinds are separate: sid value as jti", sid, other, false},
			{"kinds are separate: jti value as sid", other, jti, false},
			{"empty", "", "", false},
		}
		for _, tt := range tests {
			got, err := s.Revoked(ctx, tt.jti, tt.sid)
			if err != nil || got != tt.want {
				t.Errorf("%s: Revoked = %v, %v; want %v", tt.name, got, err, tt.want)
			}
		}
	})

	t.Run("RevokeBadArgs", func(t *testing.T) {
		s := newStore(t)
		tests := []struct{ kind, id string }{
			{"user", uniq("x")},
			{"", uniq("x")},
			{RevokeJTI, ""},
		}
		for _, tt := range tests {
			if err := s.Revoke(ctx, tt.kind, tt.id, time.Now().Add(time.Hour)); err == nil {
				t.Errorf("Revoke(%q, %q) succeeded", tt.kind, tt.id)
			}
		}
	})

	t.Run("RevokeExpiry", func(t *testing.T) {
		s := newStore(t)
		past, soon, long := uniq("past"), uniq("soon"), uniq("long")
		// Expired beyond the verifier's leeway: nothing to store.
		if err := s.Revoke(ctx, RevokeJTI, past, time.Now().Add(-ClockSkew-time.Second)); err != nil {
			t.Fatalf("Revoke past: %v", err)
		}
		// Kept ClockSkew past until: still revoked within the leeway.
		if err := s.Revoke(ctx, RevokeJTI, soon, time.Now().Add(-ClockSkew+400*time.Millisecond)); err != nil {
			t.Fatalf("Revoke soon: %v", err)
		}
		// Never shortened by a later, shorter Revoke.
		if err := s.Revoke(ctx, RevokeSID, long, time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("Revoke long: %v", err)
		}
		if err := s.Revoke(ctx, RevokeSID, long, time.Now().Add(-ClockSkew+100*time.Millisecond)); err != nil {
			t.Fatalf("Revoke long again: %v", err)
		}
		check := func(when, id, sid string, want bool) {
			t.Helper()
			if got, err := s.Revoked(ctx, id, sid); err != nil || got != want {
				t.Errorf("%s: Revoked(%s) = %v, %v; want %v", when, id+sid, got, err, want)
			}
		}
		check("before", past, "", false)
		check("before", soon, "", true)
		check("before", "", long, true)
		time.Sleep(900 * time.Millisecond)
		check("after", soon, "", false)
		check("after", "", long, true)
	})

	t.Run("HitCounts", func(t *testing.T) {
		s := newStore(t)
		bucket := uniq("bucket")
		const limit = 3
		window := 5 * time.Second
		tests := []struct {
			allowed   bool
			remaining int
		}{
			{true, 2}, {true, 1}, {true, 0}, {false, 0}, {false, 0},
		}
		for i, tt := range tests {
			r, err := s.Hit(ctx, bucket, limit, window)
			if err != nil {
				t.Fatalf("hit %d: %v", i+1, err)
			}
			if r.Allowed != tt.allowed || r.Remaining != tt.remaining || r.Limit != limit {
				t.Errorf("hit %d = %+v, want allowed=%v remaining=%d limit=%d", i+1, r, tt.allowed, tt.remaining, limit)
			}
			if r.Reset <= 0 || r.Reset > window {
				t.Errorf("hit %d: Reset = %s, want in (0, %s]", i+1, r.Reset, window)
			}
		}
		// Another bucket is independent.
		if r, err := s.Hit(ctx, uniq("bucket2"), limit, window); err != nil || !r.Allowed || r.Remaining != limit-1 {
			t.Errorf("other bucket = %+v, %v", r, err)
		}
	})

	t.Run("HitWindowResets", func(t *testing.T) {
		s := newStore(t)
		bucket := uniq("window")
		window := 300 * time.Millisecond
		if r, err := s.Hit(ctx, bucket, 1, window); err != nil || !r.Allowed {
			t.Fatalf("first hit = %+v, %v", r, err)
		}
		if r, err := s.Hit(ctx, bucket, 1, window); err != nil || r.Allowed {
			t.Fatalf("second hit = %+v, %v; want denied", r, err)
		}
		time.Sleep(700 * time.Millisecond)
		if r, err := s.Hit(ctx, bucket, 1, window); err != nil || !r.Allowed || r.Remaining != 0 {
			t.Fatalf("hit in a new window = %+v, %v; want allowed", r, err)
		}
	})

	t.Run("HitBadArgs", func(t *testing.T) {
		s := newStore(t)
		tests := []struct {
			limit  int
			window time.Duration
		}{
			{0, time.Minute}, {-1, time.Minute}, {1, 0}, {1, time.Microsecond},
		}
		for _, tt := range tests {
			if _, err := s.Hit(ctx, uniq("bad"), tt.limit, tt.window); err == nil {
				t.Errorf("Hit(limit=%d, window=%s) succeeded", tt.limit, tt.window)
			}
		}
	})
}

func TestRedisSharedUnavailable(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	s := NewRedisShared(rdb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	tests := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"PutState", func() error { return s.PutState(ctx, "k", []byte("v"), time.Minute) }},
		{"TakeState", func() error { _, err := s.TakeState(ctx, "k"); return err }},
		{"Revoke", func() error { return s.Revoke(ctx, RevokeJTI, "j", time.Now().Add(time.Hour)) }},
		{"Revoked", func() error { _, err := s.Revoked(ctx, "j", "s"); return err }},
		{"Hit", func() error { _, err := s.Hit(ctx, "b", 10, time.Minute); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrSharedUnavailable) {
				t.Fatalf("err = %v, want ErrSharedUnavailable", err)
			}
			if errors.Is(err, ErrStateNotFound) {
				t.Fatal("an outage must not look like a missing state")
			}
		})
	}
}

func TestRedisSharedKeys(t *testing.T) {
	rdb := testRedis(t)
	s := NewRedisShared(rdb)
	ctx := context.Background()

	state, jti, bucket := uniq("k-state"), uniq("k-jti"), uniq("k-bucket")
	t.Cleanup(func() {
		rdb.Del(context.Background(), stateKey(state), revokedKey(RevokeJTI, jti), rateKey(bucket))
	})
	if err := s.PutState(ctx, state, []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Minute)
	if err := s.Revoke(ctx, RevokeJTI, jti, until); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hit(ctx, bucket, 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key            string
		minTTL, maxTTL time.Duration
	}{
		{"wataomi:oauth_state:" + state, 59 * time.Second, time.Minute},
		{"wataomi:revoked:jti:" + jti, time.Minute + ClockSkew - 2*time.Second, time.Minute + ClockSkew + time.Second},
		{"wataomi:rl:" + bucket, 59 * time.Second, time.Minute},
	}
	for _, tt := range tests {
		ttl, err := rdb.PTTL(ctx, tt.key).Result()
		if err != nil || ttl < tt.minTTL || ttl > tt.maxTTL {
			t.Errorf("PTTL(%s) = %s, %v; want in [%s, %s]", tt.key, ttl, err, tt.minTTL, tt.maxTTL)
		}
	}
}

func TestMemorySharedSweep(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := newMemoryShared(func() time.Time { return now })
	ctx := context.Background()

	if err := m.PutState(ctx, "s", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, RevokeJTI, "j", now); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Hit(ctx, "b", 1, time.Second); err != nil {
		t.Fatal(err)
	}
	if len(m.states)+len(m.revoked)+len(m.counters) != 3 {
		t.Fatalf("entries before sweep: %d %d %d", len(m.states), len(m.revoked), len(m.counters))
	}
	now = now.Add(memorySweepEvery + ClockSkew)
	if _, err := m.Revoked(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if n := len(m.states) + len(m.revoked) + len(m.counters); n != 0 {
		t.Fatalf("%d entries survived the sweep", n)
	}
}

func TestMemorySharedCopiesValues(t *testing.T) {
	m := NewMemoryShared()
	ctx := context.Background()
	v := []byte("abc")
	if err := m.PutState(ctx, "k", v, time.Minute); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, err := m.TakeState(ctx, "k")
	if err != nil || string(got) != "abc" {
		t.Fatalf("TakeState = %q, %v; want abc", got, err)
	}
}

func TestNewRateResult(t *testing.T) {
	w := time.Minute
	tests := []struct {
		name  string
		count int64
		limit int
		reset time.Duration
		want  RateResult
	}{
		{"first", 1, 3, 30 * time.Second, RateResult{true, 3, 2, 30 * time.Second}},
		{"at limit", 3, 3, time.Second, RateResult{true, 3, 0, time.Second}},
		{"over", 4, 3, time.Second, RateResult{false, 3, 0, time.Second}},
		{"no ttl falls back to window", 1, 3, -time.Millisecond, RateResult{true, 3, 2, w}},
		{"ttl above window clamped", 1, 3, 2 * w, RateResult{true, 3, 2, w}},
	}
	for _, tt := range tests {
		if got := newRateResult(tt.count, tt.limit, tt.reset, w); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

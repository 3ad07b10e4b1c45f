package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// stores runs fn on the in-process store and, with TEST_REDIS_URL, on the Redis one. wait lets the
// store's clock pass d: a fake clock in process, a real (short) sleep on Redis.
func stores(t *testing.T, fn func(t *testing.T, s Store, wait func(d time.Duration))) {
	t.Run("memory", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Unix(1_800_000_000, 0)
		m := newMemory(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		fn(t, m, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() })
	})
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		t.Run("redis", func(t *testing.T) {
			opt, err := redis.ParseURL(u)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opt)
			t.Cleanup(func() { rdb.Close() })
			fn(t, NewRedis(rdb), time.Sleep)
		})
	}
}

// freshKey is a key no other run uses (the Redis database outlives the test).
func freshKey(t *testing.T) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return ScopeKey("user:1", "POST", "/api/v1/teams", t.Name()+hex.EncodeToString(b))
}

func TestStoreLifecycle(t *testing.T) {
	stores(t, func(t *testing.T, s Store, wait func(time.Duration)) {
		ctx := context.Background()
		key := freshKey(t)
		lock, entry, err := s.Begin(ctx, key, "fp1", time.Minute)
		if err != nil || lock == nil || entry != nil {
			t.Fatalf("first Begin: lock %v entry %v err %v", lock, entry, err)
		}
		// Claimed: a second request sees the running claim and its fingerprint.
		l2, e2, err := s.Begin(ctx, key, "fp2", time.Minute)
		if err != nil || l2 != nil || e2 == nil || e2.Done || e2.Fingerprint != "fp1" {
			t.Fatalf("Begin while running: lock %v entry %+v err %v", l2, e2, err)
		}
		if err := s.Complete(ctx, lock, []byte("answer"), time.Hour); err != nil {
			t.Fatal(err)
		}
		_, e3, err := s.Begin(ctx, key, "fp1", time.Minute)
		if err != nil || e3 == nil || !e3.Done || string(e3.Data) != "answer" || e3.Fingerprint != "fp1" {
			t.Fatalf("Begin after Complete: %+v %v", e3, err)
		}
		// Release after Complete leaves the answer in place.
		if err := s.Release(ctx, lock); err != nil {
			t.Fatal(err)
		}
		if _, e4, _ := s.Begin(ctx, key, "fp1", time.Minute); e4 == nil || !e4.Done {
			t.Fatalf("Release dropped a stored answer: %+v", e4)
		}
	})
}

func TestStoreReleaseFreesTheKey(t *testing.T) {
	stores(t, func(t *testing.T, s Store, wait func(time.Duration)) {
		ctx := context.Background()
		key := freshKey(t)
		lock, _, err := s.Begin(ctx, key, "fp", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, lock); err != nil {
			t.Fatal(err)
		}
		again, entry, err := s.Begin(ctx, key, "fp", time.Minute)
		if err != nil || again == nil || entry != nil {
			t.Fatalf("Begin after Release: lock %v entry %+v err %v", again, entry, err)
		}
		// A stale lock cannot release another request's claim.
		if err := s.Release(ctx, lock); err != nil {
			t.Fatal(err)
		}
		if _, e, _ := s.Begin(ctx, key, "fp", time.Minute); e == nil || e.Done {
			t.Fatalf("a stale Release dropped another request's claim: %+v", e)
		}
	})
}

// A crashed request's claim expires (PRODUCT §2.3: after 60 s); its late Complete cannot overwrite
// the answer of the request that claimed the key next.
func TestStoreLockExpires(t *testing.T) {
	stores(t, func(t *testing.T, s Store, wait func(time.Duration)) {
		ctx := context.Background()
		key := freshKey(t)
		stale, _, err := s.Begin(ctx, key, "fp", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		wait(250 * time.Millisecond)
		fresh, entry, err := s.Begin(ctx, key, "fp", time.Minute)
		if err != nil || fresh == nil || entry != nil {
			t.Fatalf("Begin after the lock expired: lock %v entry %+v err %v", fresh, entry, err)
		}
		if err := s.Complete(ctx, fresh, []byte("second"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, stale, []byte("first"), time.Hour); !errors.Is(err, ErrLockLost) {
			t.Fatalf("Complete with an expired lock: %v, want ErrLockLost", err)
		}
		if _, e, _ := s.Begin(ctx, key, "fp", time.Minute); e == nil || string(e.Data) != "second" {
			t.Fatalf("stored answer %+v, want the second request's", e)
		}
		// Answers expire too.
		short := freshKey(t)
		l, _, _ := s.Begin(ctx, short, "fp", time.Minute)
		if err := s.Complete(ctx, l, []byte("x"), 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		wait(250 * time.Millisecond)
		if l, e, _ := s.Begin(ctx, short, "fp", time.Minute); l == nil || e != nil {
			t.Fatalf("an expired answer is still kept: %+v", e)
		}
	})
}

// Of many concurrent claims exactly one wins.
func TestStoreBeginIsExclusive(t *testing.T) {
	stores(t, func(t *testing.T, s Store, wait func(time.Duration)) {
		key := freshKey(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 16 {
			wg.Go(func() {
				l, _, err := s.Begin(context.Background(), key, "fp", time.Minute)
				if err != nil {
					t.Error(err)
				}
				if l != nil {
					mu.Lock()
					won++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d claims won, want 1", won)
		}
	})
}

func TestScopeAndFingerprint(t *testing.T) {
	if ScopeKey("user:1", "POST", "/a", "k") == ScopeKey("user:2", "POST", "/a", "k") ||
		ScopeKey("user:1", "POST", "/a", "k") == ScopeKey("user:1", "POST", "/b", "k") ||
		ScopeKey("user:1", "POST", "/a", "k") == ScopeKey("user:1", "PUT", "/a", "k") ||
		ScopeKey("user:1", "POST", "/ab", "") == ScopeKey("user:1", "POST", "/a", "b") {
		t.Error("scope keys collide across principals, methods, paths or key boundaries")
	}
	q1, _ := url.ParseQuery("b=2&a=1")
	q2, _ := url.ParseQuery("a=1&b=2")
	q3, _ := url.ParseQuery("a=1&b=3")
	if Fingerprint([]byte(`{}`), q1) != Fingerprint([]byte(`{}`), q2) {
		t.Error("the fingerprint depends on query parameter order")
	}
	if Fingerprint([]byte(`{}`), q1) == Fingerprint([]byte(`{}`), q3) || Fingerprint([]byte(`{}`), q1) == Fingerprint([]byte(`{ }`), q1) {
		t.Error("different queries or bodies share a fingerprint")
	}
}

package idempotency

import (
	"context"
	"sync"
	"time"
)

// sweepEvery bounds how often the in-process store scans for expired keys.
const sweepEvery = time.Minute

type memEntry struct {
	Entry
	token   string
	expires time.Time
}

type memory struct {
	mu        sync.Mutex
	now       func() time.Time
	entries   map[string]memEntry
	lastSweep time.Time
}

// NewMemory returns the in-process Store of a single replica (no REDIS_URL).
func NewMemory() Store { return newMemory(time.Now) }

func newMemory(now func() time.Time) *memory {
	return &memory{now: now, entries: map[string]memEntry{}, lastSweep: now()}
}

// lock takes the mutex, drops expired keys when a sweep is due and returns the current time.
func (m *memory) lock() time.Time {
	m.mu.Lock()
	now := m.now()
	if now.Sub(m.lastSweep) >= sweepEvery {
		m.lastSweep = now
		for k, e := range m.entries {
			if !now.Before(e.expires) {
				delete(m.entries, k)
			}
		}
	}
	return now
}

func (m *memory) live(key string, now time.Time) (memEntry, bool) {
	e, ok := m.entries[key]
	if ok && !now.Before(e.expires) {
		delete(m.entries, key)
		return memEntry{}, false
	}
	return e, ok
}

func (m *memory) Begin(ctx context.Context, key, fp string, lockTTL time.Duration) (*Lock, *Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	now := m.lock()
	defer m.mu.Unlock()
	if e, ok := m.live(key, now); ok {
		out := e.Entry
		out.Data = append([]byte(nil), e.Data...)
		return nil, &out, nil
	}
	l := newLock(key, fp)
	m.entries[key] = memEntry{Entry: Entry{Fingerprint: fp}, token: l.token, expires: now.Add(lockTTL)}
	return l, nil, nil
}

func (m *memory) Complete(ctx context.Context, l *Lock, data []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := m.lock()
	defer m.mu.Unlock()
	if e, ok := m.live(l.Key, now); ok && e.token != l.token {
		return ErrLockLost
	}
	m.entries[l.Key] = memEntry{Entry: Entry{Fingerprint: l.Fingerprint, Done: true, Data: append([]byte(nil), data...)},
		token: l.token, expires: now.Add(ttl)}
	return nil
}

func (m *memory) Release(ctx context.Context, l *Lock) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := m.lock()
	defer m.mu.Unlock()
	if e, ok := m.live(l.Key, now); ok && e.token == l.token && !e.Done {
		delete(m.entries, l.Key)
	}
	return nil
}

package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"time"
)

// ErrLockLost is returned by Complete when the lock expired and another request claimed the key:
// nothing is stored, and the other request's answer stands.
var ErrLockLost = errors.New("idempotency: lock lost")

// Entry is what a key holds.
type Entry struct {
	// Fingerprint identifies the request that claimed the key (see Fingerprint).
	Fingerprint string
	// Done is false while the claiming request still runs (the lock), true once its answer is stored.
	Done bool
	// Data is the stored answer (Done only), opaque to the store.
	Data []byte
}

// Lock is a claim on a key by one request; only its holder can complete or release it.
type Lock struct {
	Key         string
	Fingerprint string
	token       string
}

// Store holds keys for every replica. Implementations are safe for concurrent use.
type Store interface {
	// Begin claims key for a request with fingerprint fp. When the key is free it stores a lock
	// that expires after lockTTL (so a crashed request frees it) and returns it with a nil Entry.
	// Otherwise it returns what the key holds (a running lock or a stored answer) and a nil Lock.
	Begin(ctx context.Context, key, fp string, lockTTL time.Duration) (*Lock, *Entry, error)
	// Complete replaces the lock with the stored answer data, kept for ttl. ErrLockLost when the
	// lock is no longer the caller's.
	Complete(ctx context.Context, l *Lock, data []byte, ttl time.Duration) error
	// Release drops the lock (the request failed with a 5xx or panicked) so a retry can run. A lock
	// that is no longer the caller's is left alone.
	Release(ctx context.Context, l *Lock) error
}

// ScopeKey is the store key of an Idempotency-Key: one per (principal, method, concrete path, key),
// hashed so that callers' keys never appear in the store.
func ScopeKey(principal, method, path, key string) string {
	h := sha256.New()
	for _, part := range []string{principal, method, path, key} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Fingerprint is the SHA-256 of the raw body plus the sorted query string: the same key with another
// fingerprint is a different request.
func Fingerprint(body []byte, query url.Values) string {
	h := sha256.New()
	h.Write(body)
	h.Write([]byte{0})
	h.Write([]byte(query.Encode())) // Encode sorts by key; repeated values keep their order
	return hex.EncodeToString(h.Sum(nil))
}

func newLock(key, fp string) *Lock {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return &Lock{Key: key, Fingerprint: fp, token: hex.EncodeToString(b)}
}

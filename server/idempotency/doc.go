// Package idempotency keeps the state of requests made with an Idempotency-Key (PRODUCT §2.3) where
// every replica sees it: Redis (NewRedis), or in-process for the single-replica embedded default
// (NewMemory). A key is first locked by the request that claims it, then holds that request's stored
// answer; the HTTP side (scope, fingerprint, capture and replay) lives in package server.
package idempotency

package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// VerifierLen is the length of the PKCE code_verifier made by NewVerifier
// (RFC 7636 allows 43–128).
const VerifierLen = 64

// NewState returns a single-use OAuth state: 32 random bytes, base64url
// without padding (43 characters).
func NewState() string { return randomB64(32) }

// NewVerifier returns a PKCE code_verifier of VerifierLen characters from the
// RFC 7636 unreserved set (it is 48 random bytes in base64url, whose alphabet
// A–Z a–z 0–9 "-" "_" is a subset of the unreserved characters).
func NewVerifier() string { return randomB64(VerifierLen / 4 * 3) }

// Challenge returns the S256 code_challenge of verifier:
// base64url(SHA-256(verifier)) without padding.
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomB64 returns n random bytes in base64url without padding.
// crypto/rand.Read never fails (it aborts the process instead).
func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Prefixes of our opaque tokens (PRODUCT §3.2.1 "Refresh token", §3.3).
const (
	RefreshTokenPrefix = "wtr_"
	APITokenPrefix     = "wto_"

	// APITokenDisplayLen is the length of the recognisable prefix of an API
	// token that is stored and shown (the "prefix" field of §3.3).
	APITokenDisplayLen = 12
)

// NewRefreshToken returns a new opaque refresh token ("wtr_" + 32 random
// bytes base64url) and its hash (HashOpaque), which is all that is stored.
func NewRefreshToken() (token, hash string) {
	token = RefreshTokenPrefix + randomB64(32)
	return token, HashOpaque(token)
}

// NewAPIToken returns a new API token ("wto_" + 32 random bytes base64url),
// its display prefix (the first APITokenDisplayLen characters) and its hash
// (HashOpaque). The token itself is shown once and never stored.
func NewAPIToken() (token, prefix, hash string) {
	token = APITokenPrefix + randomB64(32)
	return token, token[:APITokenDisplayLen], HashOpaque(token)
}

// HashOpaque returns the lower-case hex SHA-256 of the whole token, the form
// in which opaque tokens are stored and looked up.
func HashOpaque(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// IsAPIToken reports whether s has the API-token prefix "wto_" (as opposed
// to one of our JWTs), so a bearer credential can be routed to the right
// verifier.
func IsAPIToken(s string) bool { return strings.HasPrefix(s, APITokenPrefix) }

// NewFamilyID returns a new refresh-token family id (128 random bits,
// base64url without padding, 22 characters). It is the sid of the access
// tokens issued in that family.
func NewFamilyID() string { return randomB64(16) }

package config

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// EncryptionKeySize is the length ENCRYPTION_KEY must decode to (AES-256).
const EncryptionKeySize = 32

// encryptionInfo is the HKDF info of the development key derived from SECRET_KEY (PRODUCT §8).
const encryptionInfo = "wataomi-encryption"

var graphVersionRe = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// finishEncryption decodes ENCRYPTION_KEY and ENCRYPTION_KEYS_PREVIOUS, or derives the development
// key; it runs after SECRET_KEY is settled. It also checks META_GRAPH_API_VERSION.
func (c *Config) finishEncryption(prod bool, bad func(key, format string, args ...any), warn func(format string, args ...any)) {
	if !graphVersionRe.MatchString(c.MetaGraphAPIVersion) {
		bad("META_GRAPH_API_VERSION", "must look like v21.0, got %q", c.MetaGraphAPIVersion)
	}
	for i, s := range c.EncryptionKeysPrevious {
		k, err := parseEncryptionKey(s)
		if err != nil {
			// The value is a key: never echoed, only its position.
			bad("ENCRYPTION_KEYS_PREVIOUS", "item %d %v", i+1, err)
			continue
		}
		c.encPrevious = append(c.encPrevious, k)
	}
	var derived []byte
	if !prod && len(c.SecretKey) > 0 {
		k, err := deriveEncryptionKey(c.SecretKey)
		if err != nil {
			bad("ENCRYPTION_KEY", "unset, and no key could be derived from SECRET_KEY: %v", err)
			return
		}
		derived = k
	}
	if c.EncryptionKey == "" {
		switch {
		case prod:
			bad("ENCRYPTION_KEY", "is required in production (%d bytes, base64; secrets at rest are encrypted with it)", EncryptionKeySize)
		case derived != nil:
			c.encKey = derived
			warn("ENCRYPTION_KEY is unset: secrets at rest are encrypted with a key derived from SECRET_KEY; production requires ENCRYPTION_KEY")
		}
		return
	}
	k, err := parseEncryptionKey(c.EncryptionKey)
	if err != nil {
		bad("ENCRYPTION_KEY", "%v", err)
		return
	}
	c.encKey = k
	if derived != nil {
		// Outside production, rows written before ENCRYPTION_KEY was set still open (and a rotation
		// re-seals them); production never falls back to a key derived from another secret.
		c.encPrevious = append(c.encPrevious, derived)
	}
}

// parseEncryptionKey decodes a base64 key (standard or URL alphabet, padded or not) of exactly 32
// bytes. Its errors never include the value.
func parseEncryptionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != EncryptionKeySize {
				return nil, fmt.Errorf("must decode to %d bytes, got %d", EncryptionKeySize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("must be base64")
}

func deriveEncryptionKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, encryptionInfo, EncryptionKeySize)
}

// EncryptionKeys are the keys of secrets at rest: the current one, which seals (ENCRYPTION_KEY, or
// outside production the key derived from SECRET_KEY when it is unset), and the previous ones, which
// only open. current is nil when the configuration is invalid.
func (c *Config) EncryptionKeys() (current []byte, previous [][]byte) {
	return c.encKey, c.encPrevious
}

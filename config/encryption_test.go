package config

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// Test keys: 32 bytes each, in the encodings ENCRYPTION_KEY accepts.
var (
	testEncryptionKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789ABCDEF"))
	testPreviousKey   = base64.RawURLEncoding.EncodeToString([]byte("previous-key-number-one-32-bytes"))
	testPreviousKey2  = base64.URLEncoding.EncodeToString([]byte("previous-key-number-two-32-bytes"))
)

func TestEncryptionKeys(t *testing.T) {
	derive := func(secret string) []byte {
		k, err := hkdf.Key(sha256.New, []byte(secret), nil, "wataomi-encryption", 32)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	t.Run("configured, with previous keys", func(t *testing.T) {
		c, _ := mustLoad(t, prodEnv(map[string]string{"ENCRYPTION_KEYS_PREVIOUS": testPreviousKey + ", " + testPreviousKey2}), nil)
		cur, prev := c.EncryptionKeys()
		if string(cur) != "0123456789abcdef0123456789ABCDEF" {
			t.Fatalf("current key %q", cur)
		}
		want := [][]byte{[]byte("previous-key-number-one-32-bytes"), []byte("previous-key-number-two-32-bytes")}
		if !slices.EqualFunc(prev, want, bytes.Equal) {
			t.Fatalf("previous keys %q, want %q (production never adds the derived key)", prev, want)
		}
		if slices.ContainsFunc(c.Warnings(), func(s string) bool { return strings.Contains(s, "ENCRYPTION_KEY") }) {
			t.Fatalf("warnings %q", c.Warnings())
		}
	})

	t.Run("development derives from SECRET_KEY with a warning", func(t *testing.T) {
		c, _ := mustLoad(t, map[string]string{"SECRET_KEY": strongKey}, nil)
		cur, prev := c.EncryptionKeys()
		if !bytes.Equal(cur, derive(strongKey)) || len(prev) != 0 {
			t.Fatalf("current %x previous %d; want the HKDF of SECRET_KEY", cur, len(prev))
		}
		if bytes.Contains(cur, []byte(strongKey[:16])) {
			t.Fatal("the derived key contains SECRET_KEY")
		}
		if !slices.ContainsFunc(c.Warnings(), func(s string) bool { return strings.Contains(s, "ENCRYPTION_KEY is unset") }) {
			t.Fatalf("no warning about the derived key: %q", c.Warnings())
		}
	})

	t.Run("development without SECRET_KEY derives from the persisted key", func(t *testing.T) {
		c, _ := mustLoad(t, map[string]string{}, nil)
		cur, _ := c.EncryptionKeys()
		if len(c.SecretKey) == 0 || !bytes.Equal(cur, derive(string(c.SecretKey))) {
			t.Fatal("the development encryption key is not derived from the persisted SECRET_KEY")
		}
	})

	t.Run("development with ENCRYPTION_KEY still opens rows of the derived key", func(t *testing.T) {
		c, _ := mustLoad(t, map[string]string{"SECRET_KEY": strongKey, "ENCRYPTION_KEY": testEncryptionKey}, nil)
		cur, prev := c.EncryptionKeys()
		if string(cur) != "0123456789abcdef0123456789ABCDEF" || len(prev) != 1 || !bytes.Equal(prev[0], derive(strongKey)) {
			t.Fatalf("current %q previous %x", cur, prev)
		}
	})

	bad := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"production without ENCRYPTION_KEY", prodEnv(map[string]string{"ENCRYPTION_KEY": ""}), "ENCRYPTION_KEY: is required in production"},
		{"not base64", prodEnv(map[string]string{"ENCRYPTION_KEY": "not base64!!"}), "ENCRYPTION_KEY: must be base64"},
		{"16 bytes", prodEnv(map[string]string{"ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(make([]byte, 16))}), "ENCRYPTION_KEY: must decode to 32 bytes, got 16"},
		{"a bad previous key", prodEnv(map[string]string{"ENCRYPTION_KEYS_PREVIOUS": testPreviousKey + ",c2hvcnQ="}), "ENCRYPTION_KEYS_PREVIOUS: item 2 must decode to 32 bytes, got 5"},
		{"bad key in development", map[string]string{"ENCRYPTION_KEY": "short"}, "ENCRYPTION_KEY: must"},
		{"graph version", map[string]string{"META_GRAPH_API_VERSION": "21"}, "META_GRAPH_API_VERSION: must look like v21.0"},
		{"anthropic URL", map[string]string{"ANTHROPIC_BASE_URL": "api.anthropic.com"}, "ANTHROPIC_BASE_URL: must be an absolute http(s) URL"},
		{"meta URL", map[string]string{"META_GRAPH_BASE_URL": "ftp://graph"}, "META_GRAPH_BASE_URL: must be an absolute http(s) URL"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.env, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			for _, k := range []string{"not base64!!", "c2hvcnQ=", testPreviousKey} {
				if strings.Contains(err.Error(), k) {
					t.Fatalf("the error quotes a key: %v", err)
				}
			}
		})
	}
}

func TestIntegrationEndpointDefaults(t *testing.T) {
	c, _ := mustLoad(t, map[string]string{"SECRET_KEY": strongKey}, nil)
	for _, d := range []struct{ name, got, want string }{
		{"ANTHROPIC_BASE_URL", c.AnthropicBaseURL, "https://api.anthropic.com"},
		{"META_GRAPH_BASE_URL", c.MetaGraphBaseURL, "https://graph.facebook.com"},
		{"META_GRAPH_API_VERSION", c.MetaGraphAPIVersion, "v21.0"},
	} {
		if d.got != d.want {
			t.Errorf("%s = %q, want %q", d.name, d.got, d.want)
		}
	}
}

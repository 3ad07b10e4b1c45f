package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestHashOpaque(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		if got := HashOpaque(tt.in); got != tt.want {
			t.Errorf("HashOpaque(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestNewRefreshToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, hash := NewRefreshToken()
		checkOpaque(t, tok, RefreshTokenPrefix)
		sum := sha256.Sum256([]byte(tok))
		if hash != hex.EncodeToString(sum[:]) || hash != HashOpaque(tok) {
			t.Fatalf("hash %s is not the hex SHA-256 of the whole token", hash)
		}
		if IsAPIToken(tok) {
			t.Fatal("a refresh token is reported as an API token")
		}
		if seen[tok] {
			t.Fatal("duplicate refresh token")
		}
		seen[tok] = true
	}
}

func TestNewAPIToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, prefix, hash := NewAPIToken()
		checkOpaque(t, tok, APITokenPrefix)
		if len(prefix) != 12 || !strings.HasPrefix(tok, prefix) || !strings.HasPrefix(prefix, "wto_") {
			t.Fatalf("prefix %q is not the first 12 characters of the token", prefix)
		}
		if hash != HashOpaque(tok) || len(hash) != 64 {
			t.Fatalf("hash %q is not HashOpaque(token)", hash)
		}
		if !IsAPIToken(tok) {
			t.Fatal("IsAPIToken(new API token) = false")
		}
		if seen[tok] {
			t.Fatal("duplicate API token")
		}
		seen[tok] = true
	}
}

func checkOpaque(t *testing.T, tok, prefix string) {
	t.Helper()
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok {
		t.Fatalf("token does not start with %q", prefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != 32 {
		t.Fatalf("token body is not 32 bytes of base64url (len %d, err %v)", len(b), err)
	}
}

func TestIsAPIToken(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"wto_abc", true},
		{"wto_", true},
		{"WTO_abc", false},
		{"wtr_abc", false},
		{"eyJhbGciOiJIUzI1NiJ9.e30.x", false},
		{"", false},
		{" wto_abc", false},
	}
	for _, tt := range tests {
		if got := IsAPIToken(tt.in); got != tt.want {
			t.Errorf("IsAPIToken(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewFamilyID(t *testing.T) {
	a, b := NewFamilyID(), NewFamilyID()
	if a == b {
		t.Fatal("duplicate family id")
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 16 || len(a) != 22 {
		t.Fatalf("family id %q is not 128 bits base64url", a)
	}
}

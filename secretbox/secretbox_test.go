package secretbox

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func key(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	k := key(t)
	ring, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("sk-distinctive-plaintext-0123456789")
	ct, err := ring.Seal(plain, "integrations:1:secrets")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(k)
	wantPrefix := "v1:" + hex.EncodeToString(sum[:])[:8] + ":"
	if !strings.HasPrefix(ct, wantPrefix) {
		t.Fatalf("ciphertext %q does not start with %q", ct, wantPrefix)
	}
	if strings.Contains(ct, string(plain)) || bytes.Contains([]byte(ct), []byte(base64.RawURLEncoding.EncodeToString(plain))) {
		t.Fatal("the ciphertext carries the plaintext")
	}
	got, err := ring.Open(ct, "integrations:1:secrets")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if !ring.IsCurrent(ct) || ring.CurrentKeyID() != KeyID(k) {
		t.Fatal("the ciphertext is not reported as sealed under the current key")
	}
	// An empty plaintext round-trips too.
	ct0, err := ring.Seal(nil, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.Open(ct0, "x"); err != nil || len(got) != 0 {
		t.Fatalf("empty plaintext: %q, %v", got, err)
	}
}

// A random nonce per encryption: sealing the same plaintext twice gives different ciphertexts.
func TestSealIsRandomised(t *testing.T) {
	ring, err := New(key(t))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	nonces := map[string]bool{}
	for range 50 {
		ct, err := ring.Seal([]byte("same"), "aad")
		if err != nil {
			t.Fatal(err)
		}
		if seen[ct] {
			t.Fatal("two seals of the same plaintext are equal")
		}
		seen[ct] = true
		_, raw, err := parse(ct)
		if err != nil {
			t.Fatal(err)
		}
		n := string(raw[:nonceSize])
		if nonces[n] {
			t.Fatal("a nonce was reused")
		}
		nonces[n] = true
	}
}

func TestOpenRefuses(t *testing.T) {
	k := key(t)
	ring, _ := New(k)
	other, _ := New(key(t))
	ct, err := ring.Seal([]byte("secret value"), "integrations:1:secrets")
	if err != nil {
		t.Fatal(err)
	}
	kid, body, _ := strings.Cut(strings.TrimPrefix(ct, "v1:"), ":")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return "v1:" + kid + ":" + base64.RawURLEncoding.EncodeToString(b)
	}
	// A keyring holding a different key under the same id (as if ids collided) fails authentication.
	forged, _ := New(key(t))
	forged.aeads[kid] = forged.aeads[forged.current]
	cases := []struct {
		name string
		ring *Keyring
		ct   string
		aad  string
		want error
	}{
		{"another key", other, ct, "integrations:1:secrets", ErrUnknownKey},
		{"a different key under the same id", forged, ct, "integrations:1:secrets", ErrDecrypt},
		{"another row", ring, ct, "integrations:2:secrets", ErrDecrypt},
		{"another field", ring, ct, "integrations:1:settings", ErrDecrypt},
		{"tampered nonce", ring, flip(0), "integrations:1:secrets", ErrDecrypt},
		{"tampered body", ring, flip(nonceSize + 1), "integrations:1:secrets", ErrDecrypt},
		{"tampered tag", ring, flip(len(raw) - 1), "integrations:1:secrets", ErrDecrypt},
		{"truncated", ring, "v1:" + kid + ":" + base64.RawURLEncoding.EncodeToString(raw[:nonceSize+3]), "integrations:1:secrets", ErrMalformed},
		{"plaintext", ring, "secret value", "", ErrMalformed},
		{"unknown version", ring, "v2" + strings.TrimPrefix(ct, "v1"), "integrations:1:secrets", ErrMalformed},
		{"bad key id", ring, "v1:zzzzzzzz:" + body, "integrations:1:secrets", ErrMalformed},
		{"bad base64", ring, "v1:" + kid + ":***", "integrations:1:secrets", ErrMalformed},
		{"empty", ring, "", "", ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.ring.Open(c.ct, c.aad)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret value") {
				t.Fatalf("the error carries the plaintext: %v", err)
			}
		})
	}
}

// Rotation: a ring with B current and A previous opens what A sealed, and seals under B.
func TestKeyringRotation(t *testing.T) {
	a, b := key(t), key(t)
	ringA, _ := New(a)
	ct, err := ringA.Seal([]byte("under A"), "r")
	if err != nil {
		t.Fatal(err)
	}
	ringB, err := New(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if ringB.IsCurrent(ct) {
		t.Fatal("a ciphertext under A is reported current in a ring whose current key is B")
	}
	got, err := ringB.Open(ct, "r")
	if err != nil || string(got) != "under A" {
		t.Fatalf("Open with A as previous = %q, %v", got, err)
	}
	ct2, err := ringB.Seal(got, "r")
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := KeyIDOf(ct2); kid != KeyID(b) || !ringB.IsCurrent(ct2) {
		t.Fatalf("re-sealed under %s, want %s", kid, KeyID(b))
	}
	// B alone opens the re-sealed value, and no longer the old one.
	onlyB, _ := New(b)
	if _, err := onlyB.Open(ct2, "r"); err != nil {
		t.Fatal(err)
	}
	if _, err := onlyB.Open(ct, "r"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("B alone opened A's ciphertext: %v", err)
	}
	// The current key listed again among the previous ones is harmless.
	if _, err := New(b, b, a); err != nil {
		t.Fatal(err)
	}
}

func TestKeysAreChecked(t *testing.T) {
	if _, err := New(make([]byte, 16)); err == nil {
		t.Error("a 16-byte current key was accepted")
	}
	if _, err := New(key(t), make([]byte, 31)); err == nil {
		t.Error("a 31-byte previous key was accepted")
	}
}

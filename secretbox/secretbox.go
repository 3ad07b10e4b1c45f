package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of an AES-256 key.
const KeySize = 32

// version is the prefix of the ciphertext format: "v1:<kid>:<base64url(nonce|ciphertext|tag)>".
const version = "v1"

const nonceSize = 12

// The errors of Open. None of them says anything about the plaintext or the key bytes.
var (
	// ErrMalformed: the value is not a ciphertext of this package.
	ErrMalformed = errors.New("secretbox: malformed ciphertext")
	// ErrUnknownKey: the ciphertext names a key the keyring does not hold.
	ErrUnknownKey = errors.New("secretbox: ciphertext sealed with an unknown key")
	// ErrDecrypt: authentication failed — a wrong key with a colliding id, tampered bytes, or
	// additional data that differs from the data it was sealed with.
	ErrDecrypt = errors.New("secretbox: ciphertext does not authenticate")
)

// KeyID is the id a ciphertext carries for key: the first 8 hex characters of SHA-256(key). It
// identifies the key without revealing it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Keyring seals with its current key and opens with any of its keys. It is safe for concurrent use.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// New builds a keyring from the current key and the previous ones (each 32 bytes). A previous key
// equal to the current one is ignored.
func New(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	id, err := k.add(current)
	if err != nil {
		return nil, fmt.Errorf("secretbox: current key: %w", err)
	}
	k.current = id
	for i, p := range previous {
		if _, err := k.add(p); err != nil {
			return nil, fmt.Errorf("secretbox: previous key %d: %w", i+1, err)
		}
	}
	return k, nil
}

func (k *Keyring) add(key []byte) (string, error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("is %d bytes; want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	id := KeyID(key)
	if _, dup := k.aeads[id]; !dup {
		k.aeads[id] = aead
	}
	return id, nil
}

// CurrentKeyID is the id of the key Seal uses.
func (k *Keyring) CurrentKeyID() string { return k.current }

// Seal encrypts plaintext under the current key with a fresh random nonce, binding it to aad.
func (k *Keyring) Seal(plaintext []byte, aad string) (string, error) {
	aead := k.aeads[k.current]
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("secretbox: nonce: %w", err)
	}
	buf = aead.Seal(buf, buf[:nonceSize], plaintext, []byte(aad))
	return version + ":" + k.current + ":" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a ciphertext of Seal with the key it names, checking aad.
func (k *Keyring) Open(ciphertext, aad string) ([]byte, error) {
	kid, raw, err := parse(ciphertext)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("%w (key id %s)", ErrUnknownKey, kid)
	}
	if len(raw) < nonceSize+aead.Overhead() {
		return nil, ErrMalformed
	}
	out, err := aead.Open(nil, raw[:nonceSize], raw[nonceSize:], []byte(aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// KeyIDOf returns the key id a ciphertext names.
func KeyIDOf(ciphertext string) (string, error) {
	kid, _, err := parse(ciphertext)
	return kid, err
}

// IsCurrent reports whether a ciphertext is sealed under the current key (a rotation skips it).
func (k *Keyring) IsCurrent(ciphertext string) bool {
	kid, err := KeyIDOf(ciphertext)
	return err == nil && kid == k.current
}

func parse(ciphertext string) (kid string, raw []byte, err error) {
	v, rest, ok := strings.Cut(ciphertext, ":")
	if !ok || v != version {
		return "", nil, ErrMalformed
	}
	kid, body, ok := strings.Cut(rest, ":")
	if !ok || len(kid) != 8 {
		return "", nil, ErrMalformed
	}
	if _, err := hex.DecodeString(kid); err != nil {
		return "", nil, ErrMalformed
	}
	raw, err = base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", nil, ErrMalformed
	}
	return kid, raw, nil
}

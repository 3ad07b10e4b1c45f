package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/store"
)

// KeyringFromConfig is the keyring of ENCRYPTION_KEY and ENCRYPTION_KEYS_PREVIOUS (or, outside
// production, of the key derived from SECRET_KEY).
func KeyringFromConfig(cfg *config.Config) (*secretbox.Keyring, error) {
	cur, prev := cfg.EncryptionKeys()
	if cur == nil {
		return nil, errors.New("integration: no encryption key is configured (ENCRYPTION_KEY)")
	}
	return secretbox.New(cur, prev...)
}

// AAD binds an integration's ciphertext to its row, so a ciphertext copied into another row does
// not open.
func AAD(id int64) string { return fmt.Sprintf("integrations:%d:secrets", id) }

// Box seals and opens the secrets of integration rows.
type Box struct{ ring *secretbox.Keyring }

// NewBox returns a Box over the keyring.
func NewBox(ring *secretbox.Keyring) *Box { return &Box{ring: ring} }

// Keyring is the box's keyring.
func (b *Box) Keyring() *secretbox.Keyring { return b.ring }

// Seal encrypts the secrets of the integration with the given id under the current key; no
// secrets give nil (the column is NULL).
func (b *Box) Seal(id int64, secrets map[string]string) (*string, error) {
	if id == 0 {
		return nil, errors.New("integration: secrets are sealed after the row has its id")
	}
	if len(secrets) == 0 {
		return nil, nil
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	ct, err := b.ring.Seal(plain, AAD(id))
	clear(plain)
	if err != nil {
		return nil, err
	}
	return &ct, nil
}

// Open decrypts an integration's secrets (an empty map when it has none). The error names the row
// and the reason, never a secret.
func (b *Box) Open(in *store.Integration) (map[string]string, error) {
	out := map[string]string{}
	if in.SecretsCiphertext == nil {
		return out, nil
	}
	plain, err := b.ring.Open(*in.SecretsCiphertext, AAD(in.ID))
	if err != nil {
		return nil, fmt.Errorf("integration %d: secrets cannot be opened: %w", in.ID, err)
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("integration %d: secrets are not a JSON object", in.ID)
	}
	return out, nil
}

// Hint is what a read shows of one secret (PRODUCT §5.11 secrets_set): its last four characters
// when the secret is long enough for that to reveal little, and when it was set.
type Hint struct {
	Last4     *string   `json:"last4"`
	UpdatedAt time.Time `json:"updated_at"`
}

// minLenForLast4 is the shortest secret whose last four characters are shown.
const minLenForLast4 = 16

// Hints decodes the secrets_meta column.
func Hints(meta store.JSON) (map[string]Hint, error) {
	out := map[string]Hint{}
	if len(meta) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(meta, &out); err != nil {
		return nil, fmt.Errorf("integration: secrets_meta: %w", err)
	}
	return out, nil
}

// UpdateHints records the hints of the changed secrets and drops those of removed ones.
func UpdateHints(meta store.JSON, secrets map[string]string, changed []string, now time.Time) (store.JSON, error) {
	hints, err := Hints(meta)
	if err != nil {
		return nil, err
	}
	for name := range hints {
		if _, ok := secrets[name]; !ok {
			delete(hints, name)
		}
	}
	for _, name := range changed {
		v, ok := secrets[name]
		if !ok {
			continue
		}
		h := Hint{UpdatedAt: now.UTC()}
		if n := utf8.RuneCountInString(v); n >= minLenForLast4 {
			r := []rune(v)
			last := string(r[n-4:])
			h.Last4 = &last
		}
		hints[name] = h
	}
	b, err := json.Marshal(hints)
	return store.JSON(b), err
}

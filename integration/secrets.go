package integration

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/store"
)

// Secrets hands the secrets of integrations to the code that calls the providers: the flow engine
// and the AI endpoints (ProviderKey, PRODUCT §5.18: integrations first, then the environment's key)
// and the channel adapters (Secret, for example a Meta app secret for signature checks). Nothing is
// cached, so a replaced secret takes effect at once. It is safe for concurrent use.
type Secrets struct {
	db  *gorm.DB
	box *Box
}

// NewSecrets returns the secrets of the integrations in db, opened with ring.
func NewSecrets(db *gorm.DB, ring *secretbox.Keyring) *Secrets {
	return &Secrets{db: db, box: NewBox(ring)}
}

// ProviderKey returns the API key of the integration an AI provider ("gemini", "openai",
// "anthropic") uses: its active default integration, else its most recently created active one. It
// returns "" without error when the provider has no active integration, so that the caller falls back
// to GOOGLE_API_KEY / OPENAI_API_KEY / ANTHROPIC_API_KEY (PRODUCT §8). A stored key that cannot be
// opened (a key missing from ENCRYPTION_KEYS_PREVIOUS) is an error, not a silent fallback.
func (s *Secrets) ProviderKey(ctx context.Context, provider string) (string, error) {
	spec, ok := Spec(provider)
	if !ok || !spec.AI {
		return "", fmt.Errorf("integration: %q is not an AI provider with an API key", provider)
	}
	in, err := store.ActiveIntegrationFor(ctx, s.db, provider)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	secrets, err := s.box.Open(in)
	if err != nil {
		return "", err
	}
	return secrets[SecretAPIKey], nil
}

// Secret returns one secret of an integration; "" when it is not set. A missing integration is
// store.ErrNotFound.
func (s *Secrets) Secret(ctx context.Context, integrationID int64, name string) (string, error) {
	in, err := store.GetIntegration(ctx, s.db, integrationID)
	if err != nil {
		return "", err
	}
	secrets, err := s.box.Open(in)
	if err != nil {
		return "", err
	}
	return secrets[name], nil
}

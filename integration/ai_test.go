package integration_test

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/ai/aitest"
	"github.com/wataomi/wataomi/integration"
	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

// The AI router asks Secrets.ProviderKey first and falls back to the environment's key when the
// provider has no active integration (PRODUCT §5.18, §8): the key the provider receives shows it.
func TestAIRouterUsesIntegrationKeys(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		k := make([]byte, secretbox.KeySize)
		_, _ = rand.Read(k)
		ring, err := secretbox.New(k)
		if err != nil {
			t.Fatal(err)
		}
		gem := aitest.NewGemini(t)
		router := ai.New(ai.Options{GeminiBaseURL: gem.URL, GeminiKey: "env-google-api-key"})
		router.Keys = integration.NewSecrets(db.DB, ring).ProviderKey
		lastKey := func() string {
			t.Helper()
			if _, err := router.Chat(ctx, ai.Request{Model: "gemini-2.5-flash", Messages: []ai.Message{{Role: "user", Content: "hi"}}}); err != nil {
				t.Fatal(err)
			}
			reqs := gem.Requests()
			return reqs[len(reqs)-1].APIKey
		}
		if got := lastKey(); got != "env-google-api-key" {
			t.Fatalf("without an integration the key sent was %q, want GOOGLE_API_KEY's", got)
		}
		in := &store.Integration{Provider: integration.Gemini, Name: "g", IsActive: true, IsDefault: true, Status: integration.StatusUnverified}
		if err := store.SaveIntegration(ctx, db.DB, in); err != nil {
			t.Fatal(err)
		}
		ct, err := integration.NewBox(ring).Seal(in.ID, map[string]string{"api_key": "integration-gemini-key"})
		if err != nil {
			t.Fatal(err)
		}
		in.SecretsCiphertext = ct
		if err := store.SaveIntegration(ctx, db.DB, in); err != nil {
			t.Fatal(err)
		}
		if got := lastKey(); got != "integration-gemini-key" {
			t.Fatalf("with an active integration the key sent was %q", got)
		}
		in.IsActive = false
		if err := store.SaveIntegration(ctx, db.DB, in); err != nil {
			t.Fatal(err)
		}
		if got := lastKey(); got != "env-google-api-key" {
			t.Fatalf("after deactivating the integration the key sent was %q", got)
		}
	})
}

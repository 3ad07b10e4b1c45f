package integration

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, secretbox.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t *testing.T, current []byte, previous ...[]byte) *secretbox.Keyring {
	t.Helper()
	r, err := secretbox.New(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// insert stores an integration with its secrets sealed by box, as the API does: the row first, then
// its ciphertext bound to the id.
func insert(t *testing.T, db *store.DB, box *Box, provider, name string, active, isDefault bool, secrets map[string]string) *store.Integration {
	t.Helper()
	ctx := context.Background()
	in := &store.Integration{Provider: provider, Name: name, IsActive: active, IsDefault: isDefault, Status: StatusUnverified}
	if err := store.SaveIntegration(ctx, db.DB, in); err != nil {
		t.Fatal(err)
	}
	ct, err := box.Seal(in.ID, secrets)
	if err != nil {
		t.Fatal(err)
	}
	in.SecretsCiphertext = ct
	if err := store.SaveIntegration(ctx, db.DB, in); err != nil {
		t.Fatal(err)
	}
	return in
}

func TestSealedRows(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		k := newKey(t)
		box := NewBox(ring(t, k))
		const plain = "sk-distinctive-row-secret-7f3a9c2e"
		a := insert(t, db, box, OpenAI, "a", true, false, map[string]string{"api_key": plain})
		b := insert(t, db, box, OpenAI, "b", true, false, map[string]string{"api_key": "sk-other-row-secret-0000000000"})

		// The column holds a ciphertext under the key's id, never the plaintext.
		got, err := store.GetIntegration(ctx, db.DB, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SecretsCiphertext == nil || strings.Contains(*got.SecretsCiphertext, plain) ||
			!strings.HasPrefix(*got.SecretsCiphertext, "v1:"+secretbox.KeyID(k)+":") {
			t.Fatalf("column holds %v", got.SecretsCiphertext)
		}
		var raw string
		if err := db.Raw("SELECT secrets_ciphertext FROM integrations WHERE id = ?", a.ID).Scan(&raw).Error; err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw, plain) || strings.Contains(raw, "sk-distinctive") {
			t.Fatal("the database holds the plaintext")
		}
		secrets, err := box.Open(got)
		if err != nil || secrets["api_key"] != plain {
			t.Fatalf("Open = %v, %v", secrets, err)
		}

		// Another key does not open it.
		if _, err := NewBox(ring(t, newKey(t))).Open(got); !errors.Is(err, secretbox.ErrUnknownKey) {
			t.Fatalf("another key: %v", err)
		}
		// Tampering is detected.
		tampered := *got
		ct := []byte(*got.SecretsCiphertext)
		if ct[len(ct)-3] != 'A' { // another base64url character: different bytes, still well-formed
			ct[len(ct)-3] = 'A'
		} else {
			ct[len(ct)-3] = 'B'
		}
		s := string(ct)
		tampered.SecretsCiphertext = &s
		if _, err := box.Open(&tampered); !errors.Is(err, secretbox.ErrDecrypt) {
			t.Fatalf("a tampered ciphertext: %v", err)
		}
		// Swapping ciphertexts between two rows: neither opens in the other's row.
		if err := db.Exec("UPDATE integrations SET secrets_ciphertext = (SELECT secrets_ciphertext FROM integrations WHERE id = ?) WHERE id = ?", a.ID, b.ID).Error; err != nil {
			t.Fatal(err)
		}
		swapped, err := store.GetIntegration(ctx, db.DB, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := box.Open(swapped); !errors.Is(err, secretbox.ErrDecrypt) {
			t.Fatalf("row b opened row a's ciphertext: %v", err)
		}
		if _, err := box.Open(swapped); err == nil || strings.Contains(err.Error(), plain) {
			t.Fatalf("swapped row: %v", err)
		}
	})
}

func TestProviderKey(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := ring(t, newKey(t))
		box := NewBox(r)
		sec := NewSecrets(db.DB, r)
		key := func(p string) string {
			t.Helper()
			k, err := sec.ProviderKey(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
		if k := key(Gemini); k != "" {
			t.Fatalf("no integration: %q, want \"\" (the caller falls back to GOOGLE_API_KEY)", k)
		}
		insert(t, db, box, Gemini, "inactive", false, false, map[string]string{"api_key": "g-inactive"})
		if k := key(Gemini); k != "" {
			t.Fatalf("only an inactive integration: %q", k)
		}
		old := insert(t, db, box, Gemini, "old", true, false, map[string]string{"api_key": "g-old"})
		if k := key(Gemini); k != "g-old" {
			t.Fatalf("one active: %q", k)
		}
		insert(t, db, box, Gemini, "newer", true, false, map[string]string{"api_key": "g-newer"})
		if k := key(Gemini); k != "g-newer" {
			t.Fatalf("no default: %q, want the most recent active", k)
		}
		old.IsDefault = true
		if err := store.SaveIntegration(ctx, db.DB, old); err != nil {
			t.Fatal(err)
		}
		if k := key(Gemini); k != "g-old" {
			t.Fatalf("with a default: %q, want the default", k)
		}
		// A deactivated default gives way to the most recent active one.
		old.IsActive = false
		if err := store.SaveIntegration(ctx, db.DB, old); err != nil {
			t.Fatal(err)
		}
		if k := key(Gemini); k != "g-newer" {
			t.Fatalf("inactive default: %q", k)
		}
		// Providers are separate.
		if k := key(OpenAI); k != "" {
			t.Fatalf("openai: %q", k)
		}
		insert(t, db, box, OpenAI, "o", true, true, map[string]string{"api_key": "o-key"})
		if k := key(OpenAI); k != "o-key" {
			t.Fatalf("openai: %q", k)
		}
		// A key that cannot be opened is an error, not a silent fallback to the environment's key.
		other := NewSecrets(db.DB, ring(t, newKey(t)))
		if k, err := other.ProviderKey(ctx, OpenAI); err == nil || k != "" {
			t.Fatalf("unopenable key: %q, %v", k, err)
		}
		if _, err := sec.ProviderKey(ctx, Meta); err == nil {
			t.Fatal("meta has no API key, yet ProviderKey answered")
		}
		// Secret reads one secret of one integration.
		m := insert(t, db, box, Meta, "app", true, false, map[string]string{"client_secret": "meta-app-secret"})
		if s, err := sec.Secret(ctx, m.ID, SecretClientSecret); err != nil || s != "meta-app-secret" {
			t.Fatalf("Secret = %q, %v", s, err)
		}
		if _, err := sec.Secret(ctx, m.ID+1000, SecretClientSecret); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing integration: %v", err)
		}
	})
}

func TestRotate(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, b := newKey(t), newKey(t)
		boxA := NewBox(ring(t, a))
		var ids []int64
		for _, name := range []string{"one", "two", "three"} {
			in := insert(t, db, boxA, Anthropic, name, true, false, map[string]string{"api_key": "key-" + name})
			ids = append(ids, in.ID)
		}
		noSecrets := &store.Integration{Provider: Meta, Name: "empty", IsActive: true, Status: StatusUnverified}
		if err := store.SaveIntegration(ctx, db.DB, noSecrets); err != nil {
			t.Fatal(err)
		}
		// B current, A previous: still opens.
		ringBA := ring(t, b, a)
		boxBA := NewBox(ringBA)
		before, _ := store.GetIntegration(ctx, db.DB, ids[0])
		if s, err := boxBA.Open(before); err != nil || s["api_key"] != "key-one" {
			t.Fatalf("B with A previous: %v, %v", s, err)
		}
		before2, _ := store.GetIntegration(ctx, db.DB, ids[1])
		st, err := Rotate(ctx, db, ringBA)
		if err != nil || st.Rotated != 3 || st.Changed != 0 || len(st.Failed) != 0 {
			t.Fatalf("Rotate = %+v, %v", st, err)
		}
		boxB := NewBox(ring(t, b))
		for i, id := range ids {
			in, err := store.GetIntegration(ctx, db.DB, id)
			if err != nil {
				t.Fatal(err)
			}
			if kid, _ := secretbox.KeyIDOf(*in.SecretsCiphertext); kid != secretbox.KeyID(b) {
				t.Fatalf("row %d is under %s after the rotation, want %s", id, kid, secretbox.KeyID(b))
			}
			if s, err := boxB.Open(in); err != nil || s["api_key"] != "key-"+[]string{"one", "two", "three"}[i] {
				t.Fatalf("B alone: %v, %v", s, err)
			}
			if _, err := boxA.Open(in); err == nil {
				t.Fatal("A still opens a rotated row")
			}
		}
		if after, _ := store.GetIntegration(ctx, db.DB, ids[1]); !after.UpdatedAt.Equal(before2.UpdatedAt) {
			t.Error("a rotation changed updated_at")
		}
		// Idempotent: nothing left to do.
		if st, err := Rotate(ctx, db, ringBA); err != nil || st.Rotated != 0 {
			t.Fatalf("second Rotate = %+v, %v", st, err)
		}
		// A row under a key the ring does not hold is reported and left alone; the others rotate.
		c := newKey(t)
		stray := insert(t, db, NewBox(ring(t, c)), Anthropic, "stray", true, false, map[string]string{"api_key": "key-stray"})
		insert(t, db, boxA, Anthropic, "late", true, false, map[string]string{"api_key": "key-late"})
		st, err = Rotate(ctx, db, ringBA)
		if err == nil || st.Rotated != 1 || len(st.Failed) != 1 || st.Failed[0] != stray.ID {
			t.Fatalf("Rotate with a stray row = %+v, %v", st, err)
		}
		if strings.Contains(err.Error(), "key-stray") {
			t.Fatal("the error carries a secret")
		}
		if got, _ := store.GetIntegration(ctx, db.DB, stray.ID); *got.SecretsCiphertext != *stray.SecretsCiphertext {
			t.Fatal("the stray row was changed")
		}
		// A concurrent change between the read and the write wins.
		if ok, err := store.ReplaceIntegrationCiphertext(ctx, db.DB, ids[0], "v1:00000000:not-what-it-holds", "x"); err != nil || ok {
			t.Fatalf("a stale swap applied: %v, %v", ok, err)
		}
	})
}

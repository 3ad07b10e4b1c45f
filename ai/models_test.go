package ai_test

import (
	"slices"
	"testing"

	"github.com/wataomi/wataomi/ai"
)

func TestCatalogue(t *testing.T) {
	required := map[string]struct{ provider, kind string }{
		"gemini-2.5-flash":     {"gemini", "chat"},
		"gemini-2.5-pro":       {"gemini", "chat"},
		"gemini-2.0-flash":     {"gemini", "chat"},
		"gpt-4o":               {"openai", "chat"},
		"gpt-4o-mini":          {"openai", "chat"},
		"gpt-4.1":              {"openai", "chat"},
		"gpt-4.1-mini":         {"openai", "chat"},
		"gemini-embedding-001": {"gemini", "embedding"},
	}
	models := ai.Models()
	seen := map[string]bool{}
	defaults := map[string][]string{}
	for _, m := range models {
		if seen[m.ID] {
			t.Errorf("duplicate id %s", m.ID)
		}
		seen[m.ID] = true
		if m.Provider != "gemini" && m.Provider != "openai" {
			t.Errorf("%s: provider %q", m.ID, m.Provider)
		}
		if m.Kind != ai.KindChat && m.Kind != ai.KindEmbedding {
			t.Errorf("%s: kind %q", m.ID, m.Kind)
		}
		if m.Label == "" || m.ProviderModelID == "" || m.ContextWindow <= 0 {
			t.Errorf("%s: incomplete entry %+v", m.ID, m)
		}
		if m.Kind == ai.KindChat && (m.MaxOutputTokens <= 0 || !slices.Contains(m.Capabilities, ai.CapChat)) {
			t.Errorf("%s: chat model without output limit or chat capability", m.ID)
		}
		if m.Kind == ai.KindEmbedding && (m.Default || !slices.Contains(m.Capabilities, ai.CapEmbeddings)) {
			t.Errorf("%s: embedding model marked default or without the embeddings capability", m.ID)
		}
		if m.Default {
			defaults[m.Provider] = append(defaults[m.Provider], m.ID)
		}
	}
	for id, want := range required {
		m, ok := ai.LookupModel(id)
		if !ok {
			t.Errorf("%s missing from the catalogue", id)
			continue
		}
		if m.Provider != want.provider || m.Kind != want.kind {
			t.Errorf("%s: %s/%s, want %s/%s", id, m.Provider, m.Kind, want.provider, want.kind)
		}
	}
	if !slices.Equal(defaults["gemini"], []string{"gemini-2.5-flash"}) || !slices.Equal(defaults["openai"], []string{"gpt-4o"}) {
		t.Errorf("defaults %v, want gemini-2.5-flash and gpt-4o only", defaults)
	}
	for provider, want := range map[string]string{"gemini": "gemini-2.5-flash", "openai": "gpt-4o"} {
		if m, ok := ai.DefaultModel(provider); !ok || m.ID != want {
			t.Errorf("DefaultModel(%s) = %s, %v", provider, m.ID, ok)
		}
	}
	if _, ok := ai.DefaultModel("anthropic"); ok {
		t.Error("DefaultModel(anthropic) found something")
	}
	if _, ok := ai.LookupModel("gpt-9"); ok {
		t.Error("LookupModel(gpt-9) found something")
	}
}

func TestCatalogueIsCopied(t *testing.T) {
	m, _ := ai.LookupModel("gpt-4o")
	m.Capabilities[0] = "mutated"
	ms := ai.Models()
	ms[0].ID = "mutated"
	ms[0].Capabilities[0] = "mutated"
	if again, _ := ai.LookupModel("gpt-4o"); again.Capabilities[0] == "mutated" {
		t.Error("LookupModel shares its Capabilities slice with the catalogue")
	}
	if first := ai.Models()[0]; first.ID == "mutated" || first.Capabilities[0] == "mutated" {
		t.Error("Models shares its entries with the catalogue")
	}
}

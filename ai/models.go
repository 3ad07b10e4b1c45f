package ai

import "slices"

// Model kinds.
const (
	KindChat      = "chat"
	KindEmbedding = "embedding"
)

// Model capabilities (PRODUCT §5.18 GET /ai/models).
const (
	CapChat       = "chat"
	CapVision     = "vision"
	CapEmbeddings = "embeddings"
	CapStreaming  = "streaming"
)

// Model is one catalogue entry.
type Model struct {
	ID, Label, Provider string
	Kind                string // "chat" | "embedding"
	// Default marks the provider's default chat model (the ai-gemini and
	// ai-openai node presets). Embedding models are never Default: the
	// embedding default is EMBEDDING_MODEL.
	Default bool
	// ProviderModelID is the id sent to the provider.
	ProviderModelID string
	ContextWindow   int // input tokens
	MaxOutputTokens int // 0 for embedding models
	Capabilities    []string
	// FixedTemperature marks models that accept only their default
	// temperature (OpenAI reasoning models answer 400 to any other value):
	// Request.Temperature is not sent for them.
	FixedTemperature bool
}

// catalogue is the shipped model list. The ids are the providers' stable
// aliases; limits are from the providers' model pages. Previews and
// retired models are left out.
var catalogue = []Model{
	{ID: "gemini-2.5-flash", Label: "Gemini 2.5 Flash", Provider: ProviderGemini, Kind: KindChat, Default: true,
		ContextWindow: 1_048_576, MaxOutputTokens: 65_536, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gemini-2.5-pro", Label: "Gemini 2.5 Pro", Provider: ProviderGemini, Kind: KindChat,
		ContextWindow: 1_048_576, MaxOutputTokens: 65_536, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gemini-2.5-flash-lite", Label: "Gemini 2.5 Flash-Lite", Provider: ProviderGemini, Kind: KindChat,
		ContextWindow: 1_048_576, MaxOutputTokens: 65_536, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gemini-2.0-flash", Label: "Gemini 2.0 Flash", Provider: ProviderGemini, Kind: KindChat,
		ContextWindow: 1_048_576, MaxOutputTokens: 8_192, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gemini-2.0-flash-lite", Label: "Gemini 2.0 Flash-Lite", Provider: ProviderGemini, Kind: KindChat,
		ContextWindow: 1_048_576, MaxOutputTokens: 8_192, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gemini-embedding-001", Label: "Gemini Embedding", Provider: ProviderGemini, Kind: KindEmbedding,
		ContextWindow: 2_048, Capabilities: []string{CapEmbeddings}},

	{ID: "gpt-4o", Label: "GPT-4o", Provider: ProviderOpenAI, Kind: KindChat, Default: true,
		ContextWindow: 128_000, MaxOutputTokens: 16_384, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gpt-4o-mini", Label: "GPT-4o mini", Provider: ProviderOpenAI, Kind: KindChat,
		ContextWindow: 128_000, MaxOutputTokens: 16_384, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gpt-4.1", Label: "GPT-4.1", Provider: ProviderOpenAI, Kind: KindChat,
		ContextWindow: 1_047_576, MaxOutputTokens: 32_768, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gpt-4.1-mini", Label: "GPT-4.1 mini", Provider: ProviderOpenAI, Kind: KindChat,
		ContextWindow: 1_047_576, MaxOutputTokens: 32_768, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gpt-5", Label: "GPT-5", Provider: ProviderOpenAI, Kind: KindChat, FixedTemperature: true,
		ContextWindow: 400_000, MaxOutputTokens: 128_000, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "gpt-5-mini", Label: "GPT-5 mini", Provider: ProviderOpenAI, Kind: KindChat, FixedTemperature: true,
		ContextWindow: 400_000, MaxOutputTokens: 128_000, Capabilities: []string{CapChat, CapVision, CapStreaming}},
	{ID: "text-embedding-3-small", Label: "text-embedding-3-small", Provider: ProviderOpenAI, Kind: KindEmbedding,
		ContextWindow: 8_191, Capabilities: []string{CapEmbeddings}},
}

func init() {
	for i := range catalogue {
		if catalogue[i].ProviderModelID == "" {
			catalogue[i].ProviderModelID = catalogue[i].ID
		}
	}
}

func cloneModel(m Model) Model {
	m.Capabilities = slices.Clone(m.Capabilities)
	return m
}

// Models returns the catalogue, a fresh copy on every call.
func Models() []Model {
	out := make([]Model, len(catalogue))
	for i, m := range catalogue {
		out[i] = cloneModel(m)
	}
	return out
}

// LookupModel finds a catalogue model by id.
func LookupModel(id string) (Model, bool) {
	for _, m := range catalogue {
		if m.ID == id {
			return cloneModel(m), true
		}
	}
	return Model{}, false
}

// DefaultModel returns the provider's default chat model.
func DefaultModel(provider string) (Model, bool) {
	for _, m := range catalogue {
		if m.Provider == provider && m.Default {
			return cloneModel(m), true
		}
	}
	return Model{}, false
}

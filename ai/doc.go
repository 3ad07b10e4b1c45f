// Package ai talks to the LLM providers behind one interface (PRODUCT.md
// §5.18, §6.3).
//
// Today it holds:
//
//   - the model catalogue ([Models], [LookupModel], [DefaultModel]): our
//     stable model ids, their provider and what they can do;
//   - two chat providers speaking the providers' real wire formats: Gemini
//     (POST {GEMINI_BASE_URL}/v1beta/models/{model}:generateContent, key in
//     the x-goog-api-key header) and OpenAI or an OpenAI-compatible server
//     (POST {OPENAI_BASE_URL}/chat/completions, Bearer key);
//   - a [Router] that picks the provider from the catalogue model and
//     resolves the key: first from an optional Keys function (integrations),
//     then from the static key of [Options] (GOOGLE_API_KEY, OPENAI_API_KEY).
//
// Every failure is an [*Error] with a stable code (see the Code constants)
// and a Retryable flag the flow engine uses for node retries, except when
// the caller's context ends: then the error wraps ctx.Err() so that
// errors.Is(err, context.Canceled) holds and nothing is retried. Error
// messages carry the provider's own message, never the API key (any
// occurrence of the key is redacted) and never prompt or answer text.
//
// The package does not import config: the server maps config.Config onto
// [Options]. Package aitest holds httptest fakes of both providers.
package ai

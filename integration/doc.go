// Package integration holds the organisation's provider credentials (PRODUCT §5.11) outside the
// HTTP layer: the provider catalogue and the checks of each provider's settings and secrets, the
// sealing of secrets at rest (package secretbox, bound to their row), the live verification against
// the providers, the re-encryption of every row under the current key (`wataomi secrets rotate`),
// and Secrets, which the flow engine and the channel adapters ask for a provider's key.
//
// Secrets are write-only: nothing here returns a secret except Secrets, for the outbound call that
// needs it, and no error, log line or hint carries one.
package integration

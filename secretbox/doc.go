// Package secretbox encrypts secrets at rest (PRODUCT §8 ENCRYPTION_KEY, §9.1 S4): AES-256-GCM with a
// random 12-byte nonce per encryption and no fixed salt. Every ciphertext names the key that sealed it,
// so a keyring holding the current key and the previous ones (ENCRYPTION_KEYS_PREVIOUS) opens rows
// written before a rotation, and a rotation re-seals them under the current key. The caller binds each
// ciphertext to where it is stored with additional authenticated data (for example
// "integrations:42:secrets"), so a ciphertext copied to another row or field does not open.
package secretbox

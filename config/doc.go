// Package config loads the server's configuration (PRODUCT §8) and refuses
// unsafe production settings before anything else starts.
//
// Layers, lowest first: built-in defaults, config.yaml (CONFIG_FILE, optional;
// keys are the env names in lower case), a .env file in the working directory
// (never in production, where a forgotten developer file must not change the
// server), and the process environment. An empty value in any layer counts as
// unset, so it falls through to the layer below.
//
// Every problem found is reported at once, so one failed start shows them all.
// Redacted and WriteCheck print the effective values for `wataomi config check`
// without ever printing a secret.
package config

// Package openapi embeds the bundled contract so the binary serves exactly the committed bytes.
package openapi

import _ "embed"

//go:embed openapi.bundled.yaml
var BundledYAML []byte

//go:embed openapi.bundled.json
var BundledJSON []byte

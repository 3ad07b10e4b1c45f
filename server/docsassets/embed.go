// Package docsassets holds the Swagger UI and Redoc files that the server serves under /docs/assets/
// (PRODUCT §5.23). They are byte-exact copies from npm (swagger-ui-dist@5.35.0, redoc@2.5.4), written
// by `npm run vendor:docs` in tools/js; do not edit them by hand.
package docsassets

import "embed"

// FS holds the vendored files at its root.
//
//go:embed swagger-ui-bundle.js swagger-ui.css favicon-32x32.png redoc.standalone.js
var FS embed.FS

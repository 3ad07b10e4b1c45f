// Package rbac is the single source of truth for roles and permissions
// (PRODUCT.md §4.1–4.2). Handlers, the permissions API and token scoping all
// consult it instead of keeping their own lists, so the matrix cannot drift.
//
// The package is pure: no I/O, no configuration, and the matrix is built once
// at init so [Has] can sit on the hot path of every request.
package rbac

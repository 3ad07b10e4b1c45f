// Package flow holds what the engine knows about a flow's graph: structural and completeness checks,
// canonical hashing for has_unpublished_changes, and (with the engine work) node types, templating and
// execution. It knows nothing of HTTP or of the API types.
package flow

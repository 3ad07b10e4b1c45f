// Package expr holds the flow engine's templating, condition operators and CEL expressions
// (PRODUCT §6.3 "Condition operators", §6.4).
//
// Templates. A string leaf may hold `{{ path }}` or `{{ path ?? literal }}`, where path is
// root(.key | [index] | ["quoted key"])*. The root is a node id or a reserved root, matched exactly.
// `\{{` is a literal `{{`. ParseTemplate and Refs find references; Resolve substitutes them.
//
// Resolution rules (Resolve):
//   - A string that is exactly one template (no text around it, not even spaces) takes the referenced
//     JSON value with its type. Referenced objects and arrays are deep-copied, so the result may be
//     changed (for example to redact secrets) without touching node outputs.
//   - Inside a longer string, strings go in as they are and other values as compact JSON
//     (null, true, 12, {"a":1}; object keys sorted, no HTML escaping).
//   - `?? literal` is used when the reference cannot be resolved for any reason (missing key, index out
//     of range, node not run, skipped or failed, unknown root) and also when it resolves to null. The
//     literal is JSON (a number, true, false, null, a "string", an array or an object); any other text
//     is taken, trimmed, as a string.
//   - Otherwise an unresolvable reference fails with *Error{Code: "unresolved-reference"}.
//
// Operands (ResolveOperand) differ only for a missing key, a missing index or a read through null:
// such a reference resolves to Missing. A string that is exactly one template returns Missing itself;
// inside a longer string Missing renders as an empty string, and inside an object or array it becomes
// null. A root that cannot be read (unknown, not run, skipped, failed) still fails.
//
// Condition operators (Compare) follow the §6.3 table; see Compare for the exact rules, including how
// Missing is treated.
//
// CEL (Compile, Program.Eval) backs logic-transform and logic-set-variable. See Compile for the
// declared variables and Eval for the limits (CostLimit, TimeLimit, MaxResultBytes).
package expr

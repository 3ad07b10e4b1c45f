package expr

// Error codes carried by *Error.
const (
	CodeUnresolvedReference = "unresolved-reference"
	CodeTypeMismatch        = "type-mismatch"
	CodeExpressionError     = "expression-error"
	CodeLimitExceeded       = "limit-exceeded"
	CodeBadTemplate         = "bad-template"
)

// Error is a node-level failure. Code is one of the Code… constants above. Messages name the template
// or expression and the reason; they never include resolved values (which may be secrets), only
// types, keys and the expression text written by the flow author.
type Error struct{ Code, Message string }

// Error returns the message alone; the code is in Code.
func (e *Error) Error() string { return e.Message }

func newError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

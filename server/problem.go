package server

import (
	"errors"
	"fmt"
	"net/http"
)

// Problem is an error that becomes an application/problem+json response (PRODUCT §2.2). Handlers and
// middleware return it; the one error handler renders it.
type Problem struct {
	Status            int
	Slug              string
	Detail            string
	Errors            []FieldError
	MissingPermission string
	Dependency        string
	RetryAfter        int
	ExistingID        *int64
	References        []Reference
	Checks            map[string]string // readiness checks (GET /ready)
	Header            http.Header       // extra response headers (Allow, WWW-Authenticate, Retry-After)
	cause             error             // logged for 5xx, never rendered
}

// FieldError is one item of errors[].
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
	Code    string `json:"code"`
}

// Reference names a row that still uses a resource (409 in-use).
type Reference struct {
	Type string `json:"type"`
	ID   int64  `json:"id"`
}

func (p *Problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%s: %s: %v", p.Slug, p.Detail, p.cause)
	}
	return p.Slug + ": " + p.Detail
}

func (p *Problem) Unwrap() error { return p.cause }

// titles fixes one title per slug.
var titles = map[string]string{
	"validation-error":        "Validation error",
	"unauthenticated":         "Unauthenticated",
	"refresh-superseded":      "Refresh token superseded",
	"forbidden":               "Forbidden",
	"account-disabled":        "Account disabled",
	"not-found":               "Not found",
	"method-not-allowed":      "Method not allowed",
	"already-exists":          "Already exists",
	"in-use":                  "In use",
	"invalid-state":           "Invalid state",
	"last-super-admin":        "Last super admin",
	"system-resource":         "System resource",
	"precondition-failed":     "Precondition failed",
	"payload-too-large":       "Payload too large",
	"unsupported-media-type":  "Unsupported media type",
	"unprocessable":           "Unprocessable request",
	"invalid-graph":           "Invalid graph",
	"invalid-oauth-state":     "Invalid OAuth state",
	"messaging-window-closed": "Messaging window closed",
	"model-unknown":           "Unknown model",
	"credentials-invalid":     "Invalid credentials",
	"idempotency-key-reused":  "Idempotency key reused",
	"idempotency-in-progress": "Request in progress",
	"flow-not-published":      "Flow not published",
	"rate-limited":            "Too many requests",
	"internal-error":          "Internal error",
	"dependency-unavailable":  "Dependency unavailable",
}

func problem(status int, slug, detail string) *Problem {
	if _, ok := titles[slug]; !ok {
		panic("unknown problem slug " + slug)
	}
	return &Problem{Status: status, Slug: slug, Detail: detail}
}

func notFound(what string) *Problem {
	return problem(http.StatusNotFound, "not-found", what+" not found")
}

func validationError(errs ...FieldError) *Problem {
	p := problem(http.StatusBadRequest, "validation-error", "")
	p.Errors = errs
	if len(errs) == 1 {
		p.Detail = "The request has 1 invalid field."
	} else {
		p.Detail = fmt.Sprintf("The request has %d invalid fields.", len(errs))
	}
	return p
}

func unprocessable(slug, detail string, errs ...FieldError) *Problem {
	p := problem(http.StatusUnprocessableEntity, slug, detail)
	p.Errors = errs
	return p
}

func conflict(slug, detail string) *Problem { return problem(http.StatusConflict, slug, detail) }

func internalError(cause error) *Problem {
	p := problem(http.StatusInternalServerError, "internal-error", "An unexpected error occurred; it has been logged with the request id.")
	p.cause = cause
	return p
}

func unauthenticated(detail string) *Problem {
	p := problem(http.StatusUnauthorized, "unauthenticated", detail)
	p.Header = http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}
	return p
}

func forbidden(missing string) *Problem {
	p := problem(http.StatusForbidden, "forbidden", "")
	if missing != "" {
		p.Detail = "This action needs the " + missing + " permission."
		p.MissingPermission = missing
	} else {
		p.Detail = "You may not perform this action."
	}
	return p
}

// accountDisabled is 403 account-disabled: the user (or an API token's owner) is inactive.
func accountDisabled() *Problem {
	return problem(http.StatusForbidden, "account-disabled", "This account is disabled.")
}

func dependencyDown(dep string, cause error) *Problem {
	p := problem(http.StatusServiceUnavailable, "dependency-unavailable", "A dependency is unavailable: "+dep+".")
	p.Dependency, p.RetryAfter, p.cause = dep, 5, cause
	return p
}

func asProblem(err error) (*Problem, bool) {
	var p *Problem
	ok := errors.As(err, &p)
	return p, ok
}

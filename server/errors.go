package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// problemBody is the wire form of a Problem; optional members are omitted when empty.
type problemBody struct {
	Type              string            `json:"type"`
	Title             string            `json:"title"`
	Status            int               `json:"status"`
	Detail            string            `json:"detail"`
	Instance          string            `json:"instance"`
	RequestID         string            `json:"request_id"`
	Errors            []FieldError      `json:"errors,omitempty"`
	MissingPermission string            `json:"missing_permission,omitempty"`
	Dependency        string            `json:"dependency,omitempty"`
	RetryAfter        int               `json:"retry_after,omitempty"`
	ExistingID        *int64            `json:"existing_id,omitempty"`
	References        []Reference       `json:"references,omitempty"`
	Checks            map[string]string `json:"checks,omitempty"`
}

// errorHandler is the single place where every error — middleware, validation, binding, handler,
// panic, routing — becomes application/problem+json.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := toProblem(err)
		if p.Status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed",
				"request_id", httpx.RequestID(c.Request().Context()), "status", p.Status, "error", err.Error())
		}
		h := c.Response().Header()
		for k, vs := range p.Header {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
		if p.RetryAfter > 0 && h.Get("Retry-After") == "" {
			h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
		}
		if p.Errors == nil && p.Slug == "validation-error" {
			p.Errors = []FieldError{}
		}
		body := problemBody{
			Type: "urn:wataomi:problem:" + p.Slug, Title: titles[p.Slug], Status: p.Status, Detail: p.Detail,
			Instance: c.Request().URL.Path, RequestID: httpx.RequestID(c.Request().Context()), Errors: p.Errors,
			MissingPermission: p.MissingPermission, Dependency: p.Dependency, RetryAfter: p.RetryAfter,
			ExistingID: p.ExistingID, References: p.References, Checks: p.Checks,
		}
		buf, _ := json.Marshal(body)
		h.Set(echo.HeaderContentType, "application/problem+json")
		if c.Request().Method == http.MethodHead {
			c.Response().WriteHeader(p.Status)
			return
		}
		c.Response().WriteHeader(p.Status)
		_, _ = c.Response().Write(buf)
	}
}

// toProblem maps any error to a Problem. Unknown errors are 500s whose cause is logged, not shown.
func toProblem(err error) *Problem {
	if p, ok := asProblem(err); ok {
		return p
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return problem(http.StatusRequestEntityTooLarge, "payload-too-large", fmt.Sprintf("The body is over the limit of %d bytes for this operation.", mbe.Limit))
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return fromHTTPError(he)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("resource")
	}
	return internalError(err)
}

func fromHTTPError(he *echo.HTTPError) *Problem {
	if he.Internal != nil {
		var mbe *http.MaxBytesError
		if errors.As(he.Internal, &mbe) {
			return toProblem(mbe)
		}
	}
	msg := fmt.Sprint(he.Message)
	switch he.Code {
	case http.StatusNotFound:
		return problem(he.Code, "not-found", "No route matches this path.")
	case http.StatusMethodNotAllowed:
		return problem(he.Code, "method-not-allowed", "This path does not accept this method.")
	case http.StatusRequestEntityTooLarge:
		return problem(he.Code, "payload-too-large", "The body is over the limit for this operation.")
	case http.StatusUnsupportedMediaType:
		return problem(he.Code, "unsupported-media-type", "The request's Content-Type is not accepted here.")
	case http.StatusBadRequest:
		// The generated strict handlers report body decoding failures this way; the OpenAPI middleware
		// has already validated everything else.
		if strings.Contains(msg, "decode JSON") || strings.Contains(msg, "JSON") {
			return validationError(FieldError{Pointer: "", Detail: "the body is not valid JSON", Code: "malformed-json"})
		}
		return validationError(FieldError{Pointer: "", Detail: "the request is malformed", Code: "malformed"})
	case http.StatusUnauthorized:
		return unauthenticated("Authentication is required.")
	case http.StatusForbidden:
		return forbidden("")
	case http.StatusServiceUnavailable:
		return problem(he.Code, "dependency-unavailable", "A dependency is unavailable.")
	}
	if he.Code >= 500 {
		return internalError(he)
	}
	return internalError(he)
}

var propRe = regexp.MustCompile(`property "([^"]+)" is (missing|unsupported)`)

// fromValidation maps kin-openapi request validation errors to one 400/413/415 Problem, with a
// pointer per invalid field. kin's own messages embed validator internals, so details are ours.
func fromValidation(err error) *Problem {
	var fields []FieldError
	var special *Problem
	var visit func(error)
	visit = func(e error) {
		if special != nil {
			return
		}
		var mbe *http.MaxBytesError
		if errors.As(e, &mbe) {
			special = toProblem(mbe)
			return
		}
		// A direct assertion: errors.As would also match the MultiError inside a RequestError.
		if me, ok := e.(openapi3.MultiError); ok {
			for _, x := range me {
				visit(x)
			}
			return
		}
		var re *openapi3filter.RequestError
		if errors.As(e, &re) {
			if strings.Contains(re.Error(), "header Content-Type has unexpected value") {
				special = problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "The request's Content-Type is not accepted here; send application/json.")
				return
			}
			base := ""
			if re.Parameter != nil {
				base = "#/" + re.Parameter.In + "/" + re.Parameter.Name
			}
			fields = append(fields, fieldsOf(re.Err, re, base)...)
			return
		}
		fields = append(fields, FieldError{Pointer: "", Detail: "the request is invalid", Code: "invalid"})
	}
	visit(err)
	if special != nil {
		return special
	}
	if len(fields) == 0 {
		fields = []FieldError{{Pointer: "", Detail: "the request is invalid", Code: "invalid"}}
	}
	return validationError(fields...)
}

func fieldsOf(err error, re *openapi3filter.RequestError, base string) []FieldError {
	if err == nil {
		detail := "is invalid"
		if strings.Contains(re.Reason, "required") || strings.Contains(re.Reason, "missing") {
			if re.Parameter == nil {
				return []FieldError{{Pointer: "", Detail: "a request body is required", Code: "required"}}
			}
			return []FieldError{{Pointer: base, Detail: "is required", Code: "required"}}
		}
		return []FieldError{{Pointer: base, Detail: detail, Code: "invalid"}}
	}
	if multi, ok := err.(openapi3.MultiError); ok {
		var out []FieldError
		for _, e := range multi {
			out = append(out, fieldsOf(e, re, base)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		return schemaFields(se, base)
	}
	var pe *openapi3filter.ParseError
	if errors.As(err, &pe) {
		if re.Parameter == nil {
			return []FieldError{{Pointer: "", Detail: "the body is not valid JSON", Code: "malformed-json"}}
		}
		return []FieldError{{Pointer: base, Detail: "has the wrong type or format", Code: "type"}}
	}
	if errors.Is(err, openapi3filter.ErrInvalidRequired) {
		return []FieldError{{Pointer: base, Detail: "is required", Code: "required"}}
	}
	if re.Parameter == nil && (strings.Contains(err.Error(), "JSON") || strings.Contains(err.Error(), "json")) {
		return []FieldError{{Pointer: "", Detail: "the body is not valid JSON", Code: "malformed-json"}}
	}
	return []FieldError{{Pointer: base, Detail: "is invalid", Code: "invalid"}}
}

// schemaFields maps one schema error to errors[] items.
func schemaFields(se *openapi3.SchemaError, base string) []FieldError {
	ptr := base
	for _, seg := range se.JSONPointer() {
		ptr += "/" + escapePointer(seg)
	}
	code := se.SchemaField
	if m := propRe.FindStringSubmatch(se.Reason); m != nil {
		// kin points a missing member at the member itself, but an unsupported one at its parent.
		if m[2] == "missing" {
			code = "required"
		} else {
			ptr += "/" + escapePointer(m[1])
			code = "additionalProperties"
		}
	}
	switch code {
	case "":
		code = "invalid"
	case "nullable": // kin's own validator; in JSON Schema terms null is a type mismatch
		code = "type"
	}
	return []FieldError{{Pointer: ptr, Detail: describe(code, se.Schema), Code: code}}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// describe words a failed keyword from the schema's own limits.
func describe(code string, s *openapi3.Schema) string {
	if s == nil {
		s = &openapi3.Schema{}
	}
	num := func(f *float64) string {
		if f == nil {
			return "?"
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	switch code {
	case "required":
		return "is required"
	case "additionalProperties":
		return "is not allowed here"
	case "type":
		if s.Type != nil {
			return "must be of type " + strings.Join(s.Type.Slice(), " or ")
		}
		return "has the wrong type"
	case "enum":
		vals := make([]string, 0, len(s.Enum))
		for _, v := range s.Enum {
			vals = append(vals, fmt.Sprint(v))
		}
		return "must be one of: " + strings.Join(vals, ", ")
	case "minLength":
		return fmt.Sprintf("must be at least %d character(s) long", s.MinLength)
	case "maxLength":
		if s.MaxLength != nil {
			return fmt.Sprintf("must be at most %d character(s) long", *s.MaxLength)
		}
	case "pattern":
		return "does not match the pattern " + s.Pattern
	case "format":
		return "is not a valid " + s.Format
	case "minimum":
		return "must be at least " + num(s.Min)
	case "maximum":
		return "must be at most " + num(s.Max)
	case "minItems":
		return fmt.Sprintf("must have at least %d items", s.MinItems)
	case "maxItems":
		if s.MaxItems != nil {
			return fmt.Sprintf("must have at most %d items", *s.MaxItems)
		}
	case "uniqueItems":
		return "must not contain duplicates"
	}
	return "is invalid"
}

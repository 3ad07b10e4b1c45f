package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/wataomi/wataomi/gen/permissions"
	"github.com/wataomi/wataomi/openapi"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/server/idempotency"
)

// BasePath is fixed by the contract's servers entry.
const BasePath = "/api/v1"

// Authenticator turns a credential presented for one security scheme into a principal. It returns a
// *Problem (401, 403 account-disabled, 503) when it refuses.
type Authenticator interface {
	Authenticate(ctx context.Context, scheme string, r *http.Request) (*httpx.Principal, error)
}

// openAPI is our request filter on kin-openapi: route (404/405) → body limit (413) → content type
// (415) → per-IP limit on x-public operations (429) → authentication (401) → per-principal limit
// (429) → authorisation from gen/permissions (403) → parameters and body (400) → Idempotency-Key on
// x-idempotent operations (replay, 409, 422) → handler.
type openAPI struct {
	doc        *openapi3.T
	router     routers.Router
	authn      Authenticator
	bodyLimits map[string]int64 // x-body-limit class → bytes; "" is the default
	options    openapi3filter.Options
	// guards is the generated guard table (gen/permissions); tests substitute a copy.
	guards map[string]permissions.Guard
	// limiter counts requests per client IP on x-public operations and per principal on the others
	// (nil: no limits).
	limiter        *rateLimiter
	publicLimit    int // RATE_LIMIT_PUBLIC_PER_MINUTE
	principalLimit int // RATE_LIMIT_PER_MINUTE
	aiLimit        int // RATE_LIMIT_AI_PER_MINUTE
	// idem runs x-idempotent operations under an Idempotency-Key (nil: the header is ignored).
	idem *idempotencyKeeper
	// denied sees every error of an API request once the handler (and its transaction) is done; the
	// server records 403 refusals there (permission.denied). nil: not recorded.
	denied func(ctx context.Context, err error)
}

// stringFormats are the formats kin-openapi does not check by itself (it knows only byte, date,
// date-time, int32 and int64). They must be passed per validation: kin ignores document-level ones.
var stringFormats = map[string]openapi3.StringFormatValidator{
	"email": openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail),
	"uuid":  openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122),
	"iana-tz": openapi3.NewCallbackValidator(func(s string) error {
		if s == "" || strings.EqualFold(s, "local") {
			return errors.New("not an IANA time zone")
		}
		_, err := time.LoadLocation(s)
		return err
	}),
}

// requestOptions are the kin-openapi options of the request filter.
func requestOptions() openapi3filter.Options {
	return openapi3filter.Options{
		MultiError:              true,
		KeepValidatedValue:      true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidators(stringFormats)},
		// Security already ran in authenticate; this pass checks parameters and body only.
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
	}
}

// embeddedSpec is the parsed embedded contract, shared read-only by every server of the process
// (parsing and validating it takes about 0.2 s).
var embeddedSpec = sync.OnceValues(func() (*openapi3.T, error) { return loadSpec(openapi.BundledJSON) })

// loadSpec parses and validates a contract.
func loadSpec(raw []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	// Validate requests with kin's OpenAPI 3.0 validator. The contract stays in the 3.0-expressible
	// subset plus `type: [T, "null"]` (PRODUCT §2.1), which that validator understands. Left at 3.1,
	// kin compiles a JSON Schema 2020-12 validator on every request (about half the CPU of a create,
	// measured by BenchmarkHTTP) and reports errors in a second shape for schemas without $refs.
	doc.OpenAPI = "3.0.3"
	return doc, nil
}

func newOpenAPI(doc *openapi3.T, authn Authenticator, bodyLimits map[string]int64) (*openAPI, error) {
	if err := checkGuards(doc); err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	o := &openAPI{doc: doc, router: router, authn: authn, bodyLimits: bodyLimits, guards: permissions.Operations}
	o.options = requestOptions()
	return o, nil
}

// checkGuards refuses to start when the contract and the generated guard table disagree: every
// operation must have exactly one guard in gen/permissions (deny by default).
func checkGuards(doc *openapi3.T) error {
	var problems []string
	seen := map[string]bool{}
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			g, ok := permissions.Operations[op.OperationID]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s %s (%s) has no guard", method, path, op.OperationID))
			case g.Method != method || g.Path != path || g.Idempotent != (op.Extensions["x-idempotent"] == true) ||
				g.RateLimit != stringExt(op, "x-rate-limit"):
				problems = append(problems, fmt.Sprintf("%s: guard table is stale", op.OperationID))
			case btoi(g.Permission != "")+btoi(g.Public)+btoi(g.Authenticated) != 1:
				problems = append(problems, fmt.Sprintf("%s: needs exactly one guard", op.OperationID))
			}
			seen[op.OperationID] = true
		}
	}
	for id := range permissions.Operations {
		if !seen[id] {
			problems = append(problems, id+": guard without an operation")
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("operation guards: %s", strings.Join(problems, "; "))
	}
	return nil
}

// stringExt is a string extension of op, or "".
func stringExt(op *openapi3.Operation, key string) string {
	s, _ := op.Extensions[key].(string)
	return s
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (o *openAPI) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	serve := o.serve(next)
	return func(c echo.Context) error {
		err := serve(c)
		if err != nil && o.denied != nil {
			// The request's context as the chain left it: with the operation and, once
			// authenticated, the principal; the handler and its transaction are done.
			o.denied(c.Request().Context(), err)
		}
		return err
	}
}

func (o *openAPI) serve(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.URL.Path != BasePath && !strings.HasPrefix(req.URL.Path, BasePath+"/") {
			return next(c)
		}
		route, pathParams, err := o.router.FindRoute(req)
		if err != nil {
			return o.routeError(req, err)
		}
		guard, ok := o.guards[route.Operation.OperationID]
		if !ok { // checkGuards makes this unreachable; deny anyway.
			return forbidden("")
		}
		op := &httpx.Operation{Guard: guard, Route: BasePath + route.Path, PathParams: pathParams}
		ctx := httpx.WithOperation(req.Context(), op)
		req = req.WithContext(ctx)
		c.SetRequest(req) // the access log reports the route template even when a later check refuses

		// 413 before anything reads the body.
		limit := o.bodyLimits[guard.BodyLimit]
		if req.ContentLength > limit {
			return problem(http.StatusRequestEntityTooLarge, "payload-too-large", fmt.Sprintf("The body is over the limit of %d bytes for this operation.", limit))
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)

		if err := checkContentType(route.Operation, req); err != nil {
			return err
		}

		input := &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route, Options: &o.options}
		if guard.Public && o.limiter != nil {
			// The flow webhook receiver is limited per endpoint key instead of per address (PRODUCT §2.3).
			bucket := bucketPublic + httpx.ClientIP(ctx)
			if key := pathParams["endpoint_key"]; key != "" && route.Operation.OperationID == "receiveFlowWebhook" {
				bucket = bucketFlowWebhook + key
			}
			if err := o.limiter.limit(ctx, c.Response().Header(), bucket, o.publicLimit); err != nil {
				return err
			}
		}
		// Uploads (multipart raw-body ops) are streamed by the handler: nothing here reads their body,
		// and authentication sees a body-less copy (kin's security check would buffer the body).
		stream := guard.RawBody && isMultipart(route.Operation)
		var principal *httpx.Principal
		if !guard.Public {
			authInput := input
			if stream {
				bodyless := *input
				bodyless.Request = req.Clone(ctx)
				bodyless.Request.Body, bodyless.Request.ContentLength = http.NoBody, 0
				authInput = &bodyless
			}
			p, err := o.authenticate(ctx, authInput, route)
			if err != nil {
				return err
			}
			ctx = httpx.WithPrincipal(ctx, p)
			c.SetRequest(req.WithContext(ctx)) // the access log names the caller even when a later check refuses
			if o.limiter != nil {
				if err := o.limitPrincipal(ctx, c.Response().Header(), p, guard.RateLimit); err != nil {
					return err
				}
			}
			if err := authorize(p, guard); err != nil {
				return err
			}
			principal = p
		}

		if stream {
			if err := checkMultipart(req); err != nil {
				return err
			}
			opts := o.options
			opts.ExcludeRequestBody = true
			input.Options = &opts
		}
		var raw []byte
		buffered := false
		if guard.RawBody && !stream {
			if raw, err = io.ReadAll(req.Body); err != nil {
				return err
			}
			buffered = true
			ctx = httpx.WithRawBody(ctx, raw)
			ctx = httpx.WithRequestHead(ctx, &httpx.RequestHead{Header: req.Header.Clone(), Query: req.URL.Query()})
			req.Body = io.NopCloser(bytes.NewReader(raw))
			opts := o.options
			opts.ExcludeRequestBody = true
			input.Options = &opts
		}
		if !guard.RawBody && isJSONBody(route.Operation, req) {
			// kin and the strict handler decode with json.Decoder, which ignores data after the first
			// value: `{"name":"x"} trailing` would pass. A body must be exactly one JSON document.
			if raw, err = io.ReadAll(req.Body); err != nil {
				return err
			}
			buffered = true
			if len(bytes.TrimSpace(raw)) > 0 && !json.Valid(raw) {
				return validationError(FieldError{Pointer: "", Detail: "the body is not valid JSON", Code: "malformed-json"})
			}
			req.Body = io.NopCloser(bytes.NewReader(raw))
		}
		idemKey, fingerprint := "", ""
		if guard.Idempotent && principal != nil && o.idem != nil {
			idemKey = req.Header.Get("Idempotency-Key")
		}
		if idemKey != "" {
			if !buffered && req.Body != nil && req.Body != http.NoBody {
				if raw, err = io.ReadAll(req.Body); err != nil {
					return err
				}
				req.Body = io.NopCloser(bytes.NewReader(raw))
			}
			// Taken before validation, which may inject parameter defaults into the query.
			fingerprint = idempotency.Fingerprint(raw, req.URL.Query())
		}
		input.Request = req.WithContext(ctx)
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			return fromValidation(err)
		}
		c.SetRequest(input.Request)
		if idemKey != "" {
			return o.idem.run(c, principal, idemKey, fingerprint, next)
		}
		return next(c)
	}
}

func (o *openAPI) routeError(req *http.Request, err error) error {
	var re *routers.RouteError
	if errors.As(err, &re) && errors.Is(err, routers.ErrMethodNotAllowed) {
		p := problem(http.StatusMethodNotAllowed, "method-not-allowed", "This path does not accept "+req.Method+".")
		p.Header = http.Header{"Allow": {strings.Join(o.allowed(req), ", ")}}
		return p
	}
	return problem(http.StatusNotFound, "not-found", "No operation matches this path.")
}

// allowed lists the methods the contract declares for the request's path.
func (o *openAPI) allowed(req *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath}, Host: req.Host}
		if _, _, err := o.router.FindRoute(probe); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// checkContentType answers 415 for a body whose media type the operation does not declare. A body-less
// request is left to the validator (which reports a missing required body as 400).
func checkContentType(op *openapi3.Operation, req *http.Request) error {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	if req.ContentLength == 0 && req.Header.Get("Transfer-Encoding") == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err == nil && op.RequestBody.Value.Content.Get(mt) != nil {
		return nil
	}
	accepted := make([]string, 0, len(op.RequestBody.Value.Content))
	for k := range op.RequestBody.Value.Content {
		accepted = append(accepted, k)
	}
	sort.Strings(accepted)
	return problem(http.StatusUnsupportedMediaType, "unsupported-media-type",
		"The request's Content-Type is not accepted here; send "+strings.Join(accepted, " or ")+".")
}

// isMultipart reports whether the operation takes multipart/form-data (the uploads).
func isMultipart(op *openapi3.Operation) bool {
	return op.RequestBody != nil && op.RequestBody.Value != nil && op.RequestBody.Value.Content.Get("multipart/form-data") != nil
}

// checkMultipart answers 400 for an upload without a multipart body and boundary; checkContentType
// already refused another media type with 415.
func checkMultipart(req *http.Request) error {
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return validationError(FieldError{Pointer: "#/header/Content-Type", Detail: "send the file as multipart/form-data (with a boundary) in the field file", Code: "required"})
	}
	return nil
}

// isJSONBody reports whether the request carries a JSON body for an operation that declares one.
func isJSONBody(op *openapi3.Operation, req *http.Request) bool {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return false
	}
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) && op.RequestBody.Value.Content.Get(mt) != nil
}

// authenticate runs the operation's security requirements through kin, with our Authenticator as the
// AuthenticationFunc; the first refusal's Problem is what the client sees.
func (o *openAPI) authenticate(ctx context.Context, input *openapi3filter.RequestValidationInput, route *routers.Route) (*httpx.Principal, error) {
	security := route.Operation.Security
	if security == nil {
		security = &route.Spec.Security
	}
	var principal *httpx.Principal
	var refusal error
	authFn := func(ctx context.Context, ai *openapi3filter.AuthenticationInput) error {
		p, err := o.authn.Authenticate(ctx, ai.SecuritySchemeName, ai.RequestValidationInput.Request)
		if err != nil {
			if refusal == nil {
				refusal = err
			}
			return err
		}
		principal = p
		return nil
	}
	opts := o.options
	opts.AuthenticationFunc = authFn
	in := *input
	in.Options = &opts
	if err := openapi3filter.ValidateSecurityRequirements(ctx, &in, *security); err != nil || principal == nil {
		if refusal != nil {
			return nil, refusal
		}
		// kin buffers the body before it calls the AuthenticationFunc, so a chunked body over the limit
		// (no Content-Length to check up front) surfaces here: 413 comes before 401.
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, toProblem(mbe)
		}
		return nil, unauthenticated("A bearer token is required.")
	}
	return principal, nil
}

// authorize applies the generated guard: principal kind, then permission. Deny by default.
func authorize(p *httpx.Principal, g permissions.Guard) error {
	if p == nil {
		return unauthenticated("A bearer token is required.")
	}
	if len(g.Principals) > 0 {
		ok := false
		for _, k := range g.Principals {
			ok = ok || k == p.Kind
		}
		if !ok {
			pr := forbidden("")
			pr.Detail = "This operation is not available to this kind of credential."
			return pr
		}
	}
	switch {
	case g.Authenticated:
		return nil
	case g.Permission != "":
		if p.Has(g.Permission) {
			return nil
		}
		return forbidden(g.Permission)
	}
	return forbidden("")
}

// Command permgen reads the bundled contract and writes gen/permissions: the guard of every operation
// (x-permission, x-public or x-authenticated, plus x-principals, x-body-limit, x-raw-body, x-idempotent
// and x-rate-limit). The authorisation, idempotency and rate-limit middleware and the startup check read
// only this table, so no permission is ever written by hand. Generation fails on an operation without
// exactly one guard, on an unknown extension or extension value, on a permission that is not in the
// rbac catalogue, and on x-idempotent where it cannot be honoured (a method other than POST, PUT or
// PATCH, or no Idempotency-Key header parameter) or an Idempotency-Key parameter without x-idempotent;
// catalogue permissions no operation uses are listed.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"go/format"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wataomi/wataomi/rbac"
)

type guard struct {
	opID, method, path, perm, bodyLimit, rateLimit string
	public, authenticated, rawBody, idempotent     bool
	principals                                     []string
}

// bodyLimits are the x-body-limit classes: flow bodies, and the two upload caps (PRODUCT §2.1).
var bodyLimits = map[string]bool{"flow": true, "media-image": true, "media-file": true}

// rateLimits are the x-rate-limit classes (PRODUCT §2.3): "ai" ops count against
// RATE_LIMIT_AI_PER_MINUTE instead of RATE_LIMIT_PER_MINUTE.
var rateLimits = map[string]bool{"ai": true}

// idempotentMethods are the methods x-idempotent may mark.
var idempotentMethods = map[string]bool{"POST": true, "PUT": true, "PATCH": true}

// idempotencyHeader is the header parameter every x-idempotent operation declares (by a reference to
// components/parameters/IdempotencyKey).
const idempotencyHeader = "Idempotency-Key"

func main() {
	in := flag.String("in", "openapi/openapi.bundled.yaml", "bundled spec")
	out := flag.String("out", "gen/permissions/permissions.gen.go", "output file")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "permgen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	doc, err := openapi3.NewLoader().LoadFromFile(in)
	if err != nil {
		return err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return err
	}
	var guards []guard
	var problems []string
	used := map[string]bool{}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			g, errs := readGuard(method, path, item, op)
			problems = append(problems, errs...)
			if g.perm != "" {
				used[g.perm] = true
			}
			guards = append(guards, g)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("invalid guards:\n  %s", strings.Join(problems, "\n  "))
	}
	sort.Slice(guards, func(i, j int) bool { return guards[i].opID < guards[j].opID })
	var unused []string
	for _, p := range rbac.Catalogue() {
		if !used[p.Name] {
			unused = append(unused, p.Name)
		}
	}
	src, err := render(guards, unused)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dirOf(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, src, 0o644); err != nil {
		return err
	}
	fmt.Printf("permgen: %d operations; %d catalogue permissions not used by any operation yet\n", len(guards), len(unused))
	return nil
}

func readGuard(method, path string, item *openapi3.PathItem, op *openapi3.Operation) (guard, []string) {
	g := guard{opID: op.OperationID, method: method, path: path}
	var errs []string
	where := method + " " + path
	if g.opID == "" {
		errs = append(errs, where+": no operationId")
	}
	markers := 0
	for key, raw := range op.Extensions {
		switch key {
		case "x-permission":
			markers++
			s, ok := raw.(string)
			if !ok || !rbac.IsKnown(s) {
				errs = append(errs, fmt.Sprintf("%s: x-permission %v is not in the rbac catalogue", where, raw))
			}
			g.perm = s
		case "x-public":
			markers++
			if b, ok := raw.(bool); !ok || !b {
				errs = append(errs, where+": x-public must be true")
			}
			g.public = true
		case "x-authenticated":
			markers++
			if b, ok := raw.(bool); !ok || !b {
				errs = append(errs, where+": x-authenticated must be true")
			}
			g.authenticated = true
		case "x-principals":
			list, ok := raw.([]any)
			if !ok || len(list) == 0 {
				errs = append(errs, where+": x-principals must be a non-empty list")
			}
			for _, p := range list {
				if s, _ := p.(string); s == "user" || s == "api_token" {
					g.principals = append(g.principals, s)
				} else {
					errs = append(errs, fmt.Sprintf("%s: unknown principal kind %v", where, p))
				}
			}
		case "x-body-limit":
			s, _ := raw.(string)
			if !bodyLimits[s] {
				errs = append(errs, fmt.Sprintf("%s: unknown x-body-limit %v", where, raw))
			}
			g.bodyLimit = s
		case "x-raw-body":
			g.rawBody = raw == true
		case "x-idempotent":
			if b, ok := raw.(bool); !ok || !b {
				errs = append(errs, where+": x-idempotent must be true")
			}
			g.idempotent = true
		case "x-rate-limit":
			s, _ := raw.(string)
			if !rateLimits[s] {
				errs = append(errs, fmt.Sprintf("%s: unknown x-rate-limit %v", where, raw))
			}
			g.rateLimit = s
		default:
			if strings.HasPrefix(key, "x-") {
				errs = append(errs, where+": unknown extension "+key)
			}
		}
	}
	hasKey := declaresIdempotencyKey(item, op)
	if g.idempotent && !idempotentMethods[method] {
		errs = append(errs, where+": x-idempotent is only for POST, PUT and PATCH")
	}
	if g.idempotent && !hasKey {
		errs = append(errs, where+": x-idempotent needs the "+idempotencyHeader+" header parameter (components/parameters/IdempotencyKey)")
	}
	if hasKey && !g.idempotent {
		errs = append(errs, where+": declares "+idempotencyHeader+" but is not x-idempotent")
	}
	if markers != 1 {
		errs = append(errs, fmt.Sprintf("%s: needs exactly one of x-permission, x-public, x-authenticated (has %d)", where, markers))
	}
	secured := op.Security == nil || len(*op.Security) > 0
	if g.public && secured {
		errs = append(errs, where+": x-public operations declare security: []")
	}
	if !g.public && !secured {
		errs = append(errs, where+": security: [] needs x-public")
	}
	return g, errs
}

// declaresIdempotencyKey reports whether the operation (or its path item) declares the Idempotency-Key
// header parameter.
func declaresIdempotencyKey(item *openapi3.PathItem, op *openapi3.Operation) bool {
	params := append(openapi3.Parameters{}, item.Parameters...)
	params = append(params, op.Parameters...)
	for _, ref := range params {
		if ref != nil && ref.Value != nil && ref.Value.In == openapi3.ParameterInHeader &&
			http.CanonicalHeaderKey(ref.Value.Name) == idempotencyHeader {
			return true
		}
	}
	return false
}

func render(guards []guard, unused []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by tools/permgen from openapi/openapi.bundled.yaml; DO NOT EDIT.\n\n")
	b.WriteString("// Package permissions is the operation guard table generated from the contract.\n")
	b.WriteString("package permissions\n\n")
	b.WriteString(guardType)
	b.WriteString("// Operations holds the guard of every operation in the contract, keyed by operationId.\n")
	b.WriteString("var Operations = map[string]Guard{\n")
	for _, g := range guards {
		fmt.Fprintf(&b, "\t%q: {OperationID: %q, Method: %q, Path: %q, Permission: %q, Public: %t, Authenticated: %t, Principals: %#v, BodyLimit: %q, RawBody: %t, Idempotent: %t, RateLimit: %q},\n",
			g.opID, g.opID, g.method, g.path, g.perm, g.public, g.authenticated, g.principals, g.bodyLimit, g.rawBody, g.idempotent, g.rateLimit)
	}
	b.WriteString("}\n\n")
	b.WriteString("// UnusedPermissions lists catalogue permissions that no operation requires yet.\n")
	fmt.Fprintf(&b, "var UnusedPermissions = %#v\n", unused)
	return format.Source(b.Bytes())
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i]
	}
	return "."
}

const guardType = `// Guard is what the contract says about who may call one operation.
type Guard struct {
	OperationID   string
	Method        string
	Path          string // the spec's path template, without the /api/v1 base
	Permission    string // x-permission; empty when Public or Authenticated
	Public        bool   // x-public: no credential
	Authenticated bool   // x-authenticated: any accepted principal
	Principals    []string // x-principals: the principal kinds allowed; empty means any
	BodyLimit     string // x-body-limit class; empty means API_MAX_BODY_BYTES
	RawBody       bool   // x-raw-body
	Idempotent    bool   // x-idempotent: honours Idempotency-Key (PRODUCT §2.3)
	RateLimit     string // x-rate-limit class ("ai"); empty means RATE_LIMIT_PER_MINUTE
}

`

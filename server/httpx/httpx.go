// Package httpx carries per-request facts (request id, principal, matched operation, raw body) through
// the request context, so strict handlers — which see only a context.Context — can read them.
package httpx

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/wataomi/wataomi/gen/permissions"
	"github.com/wataomi/wataomi/rbac"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
	keyOperation
	keyRawBody
	keyClientIP
	keyRequestHead
)

// Principal kinds.
const (
	KindUser     = "user"
	KindAPIToken = "api_token"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind      string
	UserID    int64 // the user, or the API token's owner
	Role      rbac.Role
	Email     string
	Name      string
	JTI       string    // access-token id (users)
	SID       string    // refresh family id (users)
	TokenID   int64     // API token id (api_token)
	Scopes    []string  // API token scopes (api_token)
	ExpiresAt time.Time // when the credential expires
}

// Has reports whether the principal holds perm: the user's current role, and for an API token also
// its scopes (the effective set is scopes ∩ the owner's role, PRODUCT §3.3).
func (p *Principal) Has(perm string) bool {
	if p == nil || !rbac.Has(p.Role, perm) {
		return false
	}
	return p.Kind != KindAPIToken || slices.Contains(p.Scopes, perm)
}

// Permissions is the sorted effective permission set.
func (p *Principal) Permissions() []string {
	out := []string{}
	for _, perm := range rbac.PermissionsOf(p.Role) {
		if p.Has(perm) {
			out = append(out, perm)
		}
	}
	return out
}

// Operation is the contract operation a request matched.
type Operation struct {
	Guard      permissions.Guard
	Route      string // the full route template, e.g. /api/v1/flows/{id}
	PathParams map[string]string
}

func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, keyRequestID, id)
}

// RequestID returns the request id, or "" outside a request.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, keyPrincipal, p)
}

// PrincipalFrom returns the caller, or nil on public operations.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(keyPrincipal).(*Principal)
	return p
}

func WithOperation(ctx context.Context, op *Operation) context.Context {
	return context.WithValue(ctx, keyOperation, op)
}

// OperationFrom returns the matched contract operation, or nil outside the API.
func OperationFrom(ctx context.Context) *Operation {
	op, _ := ctx.Value(keyOperation).(*Operation)
	return op
}

func WithRawBody(ctx context.Context, b []byte) context.Context {
	return context.WithValue(ctx, keyRawBody, b)
}

// RawBody returns the capped raw request body of x-raw-body operations.
func RawBody(ctx context.Context) []byte {
	b, _ := ctx.Value(keyRawBody).([]byte)
	return b
}

func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, keyClientIP, ip)
}

// ClientIP is the caller's address as the server trusts it (TRUSTED_PROXIES).
func ClientIP(ctx context.Context) string {
	s, _ := ctx.Value(keyClientIP).(string)
	return s
}

// RequestHead is what a raw-body receiver reads of its request besides the body.
type RequestHead struct {
	Header http.Header
	Query  url.Values
}

func WithRequestHead(ctx context.Context, h *RequestHead) context.Context {
	return context.WithValue(ctx, keyRequestHead, h)
}

// RequestHeadFrom returns the headers and query of an x-raw-body operation's request.
func RequestHeadFrom(ctx context.Context) *RequestHead {
	h, _ := ctx.Value(keyRequestHead).(*RequestHead)
	return h
}

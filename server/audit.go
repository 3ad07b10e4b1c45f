package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// auditEntry is one change to record (PRODUCT §5.17). It is written with writeAudit in the same
// transaction as the change, so a change and its audit row commit or roll back together.
type auditEntry struct {
	Action       string
	ResourceType string
	ResourceID   int64
	Status       string         // default success
	Fields       []string       // names of the changed fields
	Before       map[string]any // values before, for the fields where showing them is safe
	After        map[string]any
	Actor        *httpx.Principal // default: the request's principal
	ActorUser    *store.User      // for unauthenticated actions (login): the user acting
	// SystemActor names a system actor ("casdoor", "anonymous"); default "system". It is used only
	// when there is neither a principal nor an ActorUser.
	SystemActor string
	// Refusals and failures (permission.denied, auth.login_failed): what was refused and why.
	Operation         string
	MissingPermission string
	Reason            string
	// Metadata is what else an action that changes nothing records (analytics.export: its dataset,
	// format, range and zone). Never secrets.
	Metadata map[string]string
}

// writeAudit writes e through db: the business transaction, or the plain handle for the rows that
// record a refusal (nothing else is written then). The request's id, client IP and User-Agent come
// from ctx; under an API token the row names the token and its owner (PRODUCT §3.3).
func writeAudit(ctx context.Context, db *gorm.DB, e auditEntry) error {
	display := e.SystemActor
	if display == "" {
		display = store.ActorSystem
	}
	row := &store.AuditLog{Action: e.Action, ResourceType: e.ResourceType, Status: e.Status, ActorType: store.ActorSystem, ActorDisplay: display}
	if e.ResourceID != 0 {
		id := e.ResourceID
		row.ResourceID = &id
	}
	p := e.Actor
	if p == nil {
		p = httpx.PrincipalFrom(ctx)
	}
	switch {
	case p != nil:
		uid := p.UserID
		row.ActorUserID, row.ActorType, row.ActorDisplay = &uid, store.ActorUser, displayOf(p.Name, p.Email)
		if p.Kind == httpx.KindAPIToken {
			tid := p.TokenID
			row.ActorType, row.APITokenID = store.ActorAPIToken, &tid
		}
	case e.ActorUser != nil:
		uid := e.ActorUser.ID
		row.ActorUserID, row.ActorType, row.ActorDisplay = &uid, store.ActorUser, displayOf(e.ActorUser.Name, e.ActorUser.Email)
	}
	if rid := httpx.RequestID(ctx); rid != "" {
		row.RequestID = &rid
	}
	if ip := httpx.ClientIP(ctx); ip != "" {
		row.IP = &ip
	}
	if ua := httpx.UserAgent(ctx); ua != "" {
		row.UserAgent = &ua
	}
	changes, err := store.AuditChanges(e.Fields, e.Before, e.After)
	if err != nil {
		return err
	}
	row.Changes = changes
	if meta := auditMetadata(e); meta != nil {
		b, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		j := store.JSON(b)
		row.Metadata = &j
	}
	return store.InsertAudit(ctx, db, row)
}

// auditMetadata holds what a refusal or failure row says beyond the changes; nil when empty.
func auditMetadata(e auditEntry) map[string]string {
	m := map[string]string{}
	for k, v := range e.Metadata {
		m[k] = v
	}
	for k, v := range map[string]string{"operation": e.Operation, "missing_permission": e.MissingPermission, "reason": e.Reason} {
		if v != "" {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func displayOf(name, email string) string {
	if name != "" {
		return name
	}
	return email
}

// auditOutOfBand writes a row that records a refusal or a failure, after the request's business
// transaction (if any) has rolled back, through the plain handle. The row must not depend on the
// client still waiting, and a failure to write it never changes the answer: it is logged.
func (s *Server) auditOutOfBand(ctx context.Context, e auditEntry) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := writeAudit(ctx, s.deps.DB.DB, e); err != nil {
		s.deps.Logger.ErrorContext(ctx, "audit row not written", "action", e.Action, "request_id", httpx.RequestID(ctx), "error", err.Error())
	}
}

// auditThrottled reports whether an out-of-band row of this bucket may be written now: at most one
// per bucket per minute, counted in the store every replica shares (Redis, or in-process). Refusals
// cost the caller nothing, so without this a script could fill the audit log at request rate. When
// the shared store cannot be asked the row is skipped (and logged): an outage must not open an
// unbounded write path.
func (s *Server) auditThrottled(ctx context.Context, bucket string) bool {
	res, err := s.deps.Shared.Hit(ctx, "audit:"+bucket, 1, time.Minute)
	if err != nil {
		s.deps.Logger.WarnContext(ctx, "audit throttle unavailable; row skipped", "bucket", bucket, "error", err.Error())
		return true
	}
	return !res.Allowed
}

// auditDenied records permission.denied for a 403 `forbidden` answered to an authenticated caller:
// the authorisation step's refusals (missing permission, principal kind) and the handlers' ownership
// and role refusals alike (PRODUCT §5.17, "every 403"). 401s and 403 `account-disabled` are not
// permission decisions and are not recorded. It runs after the handler returned, so outside any
// business transaction, and writes at most one row per (principal, operation) per minute.
func (s *Server) auditDenied(ctx context.Context, err error) {
	pr, ok := asProblem(err)
	if !ok || pr.Status != http.StatusForbidden || pr.Slug != "forbidden" {
		return
	}
	p, op := httpx.PrincipalFrom(ctx), httpx.OperationFrom(ctx)
	if p == nil || op == nil {
		return
	}
	who := "u" + strconv.FormatInt(p.UserID, 10)
	if p.Kind == httpx.KindAPIToken {
		who = "t" + strconv.FormatInt(p.TokenID, 10)
	}
	if s.auditThrottled(ctx, "denied:"+who+":"+op.Guard.OperationID) {
		return
	}
	e := auditEntry{Action: "permission.denied", Status: store.AuditDenied, ResourceType: deniedResource(op),
		Operation: op.Guard.OperationID, MissingPermission: pr.MissingPermission}
	if id, err := strconv.ParseInt(op.PathParams["id"], 10, 64); err == nil && id > 0 {
		e.ResourceID = id
	}
	s.auditOutOfBand(ctx, e)
}

// deniedResource names what a refused operation is about, with the resource types the audit rows of
// changes use: the permission's resource (token → api_token), else the path's first segment.
func deniedResource(op *httpx.Operation) string {
	if res, _, ok := strings.Cut(op.Guard.Permission, ":"); ok {
		if res == "token" {
			return "api_token"
		}
		return res
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(op.Guard.Path, "/"), "/")
	switch seg {
	case "casdoor", "users":
		return "user"
	}
	return strings.TrimSuffix(strings.ReplaceAll(seg, "-", "_"), "s")
}

// Reasons of auth.login_failed.
const (
	loginInvalidState  = "invalid-state"
	loginCodeRejected  = "code-rejected"
	loginTokenInvalid  = "token-invalid"
	loginAccountOff    = "account-disabled"
	loginEmailConflict = "email-conflict"
	loginNoEmail       = "no-email"
)

// auditLoginFailed records auth.login_failed for a refused sign-in (PRODUCT §5.17), outside any
// transaction, at most once per (client IP, reason) per minute: the callback is public, so anyone
// can make it fail. u is the user the attempt was for, when it is known.
func (s *Server) auditLoginFailed(ctx context.Context, reason string, u *store.User, email string) {
	if s.auditThrottled(ctx, "login_failed:"+httpx.ClientIP(ctx)+":"+reason) {
		return
	}
	e := auditEntry{Action: "auth.login_failed", ResourceType: "user", Status: store.AuditFailure, Reason: reason,
		ActorUser: u, SystemActor: "anonymous"}
	if u != nil {
		e.ResourceID = u.ID
	} else if email != "" {
		e.SystemActor = email
	}
	if reason == loginAccountOff {
		e.Status = store.AuditDenied
	}
	s.auditOutOfBand(ctx, e)
}

// ---- The audit log API (PRODUCT §5.17) ----

func (h *handlers) ListAuditLogs(ctx context.Context, req api.ListAuditLogsRequestObject) (api.ListAuditLogsResponseObject, error) {
	prm := req.Params
	limit := 50
	if prm.Limit != nil {
		limit = *prm.Limit
	}
	f := store.AuditFilter{}
	filters := map[string]string{}
	if prm.ActorUserId != nil {
		f.ActorUserID = *prm.ActorUserId
		filters["actor_user_id"] = strconv.FormatInt(f.ActorUserID, 10)
	}
	if prm.ApiTokenId != nil {
		f.APITokenID = *prm.ApiTokenId
		filters["api_token_id"] = strconv.FormatInt(f.APITokenID, 10)
	}
	if prm.Action != nil {
		f.ActionPrefix = *prm.Action
		filters["action"] = f.ActionPrefix
	}
	if prm.ResourceType != nil {
		f.ResourceType = *prm.ResourceType
		filters["resource_type"] = f.ResourceType
	}
	if prm.ResourceId != nil {
		f.ResourceID = *prm.ResourceId
		filters["resource_id"] = strconv.FormatInt(f.ResourceID, 10)
	}
	if prm.Status != nil {
		f.Status = string(*prm.Status)
		filters["status"] = f.Status
	}
	if prm.From != nil {
		t := prm.From.UTC()
		f.From, filters["from"] = &t, t.Format(time.RFC3339Nano)
	}
	if prm.To != nil {
		t := prm.To.UTC()
		f.To, filters["to"] = &t, t.Format(time.RFC3339Nano)
	}
	fp := cursorFilters("-id", filters)
	before, err := decodeCursor(prm.Cursor, fp)
	if err != nil {
		return nil, err
	}
	f.BeforeID, f.Limit = before, limit+1
	rows, err := store.ListAudit(ctx, h.s.deps.DB.DB, f)
	if err != nil {
		return nil, err
	}
	out := api.AuditLogPage{Items: make([]api.AuditLog, 0, min(len(rows), limit)), NextCursor: NullableFrom[string](nil)}
	if len(rows) > limit {
		rows, out.HasMore = rows[:limit], true
		next := encodeCursor(rows[limit-1].ID, fp)
		out.NextCursor = NullableFrom(&next)
	}
	for i := range rows {
		item, err := auditLogOf(&rows[i])
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, item)
	}
	return api.ListAuditLogs200JSONResponse{Body: out}, nil
}

func (h *handlers) GetAuditLog(ctx context.Context, req api.GetAuditLogRequestObject) (api.GetAuditLogResponseObject, error) {
	a, err := store.GetAudit(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("Audit entry")
		}
		return nil, err
	}
	out, err := auditLogOf(a)
	if err != nil {
		return nil, err
	}
	return api.GetAuditLog200JSONResponse{Body: out}, nil
}

// auditLogOf maps a stored entry to the API's shape.
func auditLogOf(a *store.AuditLog) (api.AuditLog, error) {
	d := api.AuditDetails{Fields: []string{}, Before: map[string]any{}, After: map[string]any{},
		Operation: NullableFrom[string](nil), MissingPermission: NullableFrom[string](nil), Reason: NullableFrom[string](nil)}
	if a.Changes != nil {
		var ch struct {
			Fields        []string
			Before, After map[string]any
		}
		if err := json.Unmarshal(*a.Changes, &ch); err != nil {
			return api.AuditLog{}, fmt.Errorf("audit %d: changes: %w", a.ID, err)
		}
		if ch.Fields != nil {
			d.Fields = ch.Fields
		}
		if ch.Before != nil {
			d.Before = ch.Before
		}
		if ch.After != nil {
			d.After = ch.After
		}
	}
	if a.Metadata != nil {
		var m map[string]any
		if err := json.Unmarshal(*a.Metadata, &m); err != nil {
			return api.AuditLog{}, fmt.Errorf("audit %d: metadata: %w", a.ID, err)
		}
		str := func(k string) *string {
			if v, ok := m[k].(string); ok && v != "" {
				return &v
			}
			return nil
		}
		d.Operation, d.MissingPermission, d.Reason = NullableFrom(str("operation")), NullableFrom(str("missing_permission")), NullableFrom(str("reason"))
	}
	return api.AuditLog{
		Id: a.ID, OccurredAt: apitime.From(a.OccurredAt), Action: a.Action, ResourceType: a.ResourceType,
		ResourceId: NullableFrom(a.ResourceID), Status: api.AuditStatus(a.Status), Details: d,
		Actor: api.AuditActor{Type: api.AuditActorType(a.ActorType), UserId: NullableFrom(a.ActorUserID),
			ApiTokenId: NullableFrom(a.APITokenID), Display: a.ActorDisplay},
		Ip: NullableFrom(a.IP), UserAgent: NullableFrom(a.UserAgent), RequestId: NullableFrom(a.RequestID),
	}, nil
}

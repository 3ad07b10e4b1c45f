package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oapi-codegen/nullable"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/engine"
	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

const maxInputBytes = 256 << 10

func executionLocation(id int64) string { return fmt.Sprintf("%s/executions/%d", BasePath, id) }

// decodeMap reads a JSON object, keeping numbers as json.Number.
func decodeMap(b []byte) map[string]any {
	var m map[string]any
	if len(b) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		_ = dec.Decode(&m)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m
}

func decodeAny(b *store.JSON) any {
	if b == nil {
		return nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(*b)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

func executionSummary(ex *store.Execution) api.ExecutionSummary {
	out := api.ExecutionSummary{
		Id: ex.ID, FlowId: ex.FlowID, FlowRevision: ex.FlowRevision, Mode: api.ExecutionMode(ex.Mode), Status: api.ExecutionStatus(ex.Status),
		HasErrors: ex.HasErrors, QueuedAt: apitime.From(ex.QueuedAt), TotalNodes: ex.TotalNodes, CompletedNodes: ex.CompletedNodes,
		FailedNodes: ex.FailedNodes, SkippedNodes: ex.SkippedNodes,
		FlowVersion: NullableFrom(ex.FlowVersion), TriggeredBy: NullableFrom(ex.TriggeredBy), ApiTokenId: NullableFrom(ex.APITokenID),
		ConversationId: NullableFrom(ex.ConversationID), RetryOf: NullableFrom(ex.RetryOf), DurationMs: NullableFrom(ex.DurationMS),
		StartedAt: nullTime(ex.StartedAt), CompletedAt: nullTime(ex.CompletedAt), Error: nullable.NewNullNullable[api.ExecutionError](),
	}
	if ex.Error != nil {
		var e struct {
			Code    string  `json:"code"`
			Message string  `json:"message"`
			NodeID  *string `json:"node_id"`
		}
		if json.Unmarshal(*ex.Error, &e) == nil {
			out.Error = nullable.NewNullableWithValue(api.ExecutionError{Code: e.Code, Message: e.Message, NodeId: NullableFrom(e.NodeID)})
		}
	}
	return out
}

func nullTime(t *time.Time) nullable.Nullable[apitime.Time] {
	if t == nil {
		return nullable.NewNullNullable[apitime.Time]()
	}
	return nullable.NewNullableWithValue(apitime.From(*t))
}

const eventOutputCap = 64 << 10

func nodeExecution(r *store.NodeExecution, full bool) api.NodeExecution {
	out := api.NodeExecution{Id: r.ID, NodeId: r.NodeID, NodeType: r.NodeType, NodeLabel: r.NodeLabel, Status: api.NodeExecutionStatus(r.Status),
		Attempt: r.Attempt, StartedAt: apitime.From(r.StartedAt), CompletedAt: nullTime(r.CompletedAt), DurationMs: NullableFrom(r.DurationMS),
		Handle: NullableFrom(r.Handle), ReusedFrom: NullableFrom(r.ReusedFrom), Error: nullable.NewNullNullable[api.NodeError]()}
	out.Input, out.Output = nullAny(decodeAny(r.Input)), nullAny(decodeAny(r.Output))
	if !full {
		if r.Input != nil && len(*r.Input) > eventOutputCap {
			out.Input, out.Truncated = nullAny(string((*r.Input)[:eventOutputCap])), true
		}
		if r.Output != nil && len(*r.Output) > eventOutputCap {
			out.Output, out.Truncated = nullAny(string((*r.Output)[:eventOutputCap])), true
		}
	}
	if r.Error != nil {
		var e api.NodeError
		if json.Unmarshal(*r.Error, &e) == nil {
			out.Error = nullable.NewNullableWithValue(e)
		}
	}
	return out
}

// executionFull is GET of one run: the run, its node records ordered by start then id, optionally the graph.
func (s *Server) executionFull(ctx context.Context, ex *store.Execution, withGraph bool) (api.Execution, error) {
	var rows []store.NodeExecution
	if err := s.deps.DB.WithContext(ctx).Where("execution_id = ?", ex.ID).Order("started_at, id").Find(&rows).Error; err != nil {
		return api.Execution{}, err
	}
	sum := executionSummary(ex)
	out := api.Execution{
		Id: sum.Id, FlowId: sum.FlowId, FlowRevision: sum.FlowRevision, FlowVersion: sum.FlowVersion, Mode: sum.Mode, Status: sum.Status,
		TriggeredBy: sum.TriggeredBy, ApiTokenId: sum.ApiTokenId, ConversationId: sum.ConversationId, RetryOf: sum.RetryOf,
		HasErrors: sum.HasErrors, Error: sum.Error, QueuedAt: sum.QueuedAt, StartedAt: sum.StartedAt, CompletedAt: sum.CompletedAt,
		DurationMs: sum.DurationMs, TotalNodes: sum.TotalNodes, CompletedNodes: sum.CompletedNodes, FailedNodes: sum.FailedNodes,
		SkippedNodes: sum.SkippedNodes, InputData: decodeMap(ex.InputData), OutputData: nullAny(decodeAny(ex.OutputData)),
		NodeExecutions: make([]api.NodeExecution, 0, len(rows)),
	}
	for i := range rows {
		out.NodeExecutions = append(out.NodeExecutions, nodeExecution(&rows[i], false))
	}
	if withGraph {
		var g api.Graph
		if err := json.Unmarshal(ex.Graph, &g); err != nil {
			return out, err
		}
		out.Graph = &g
	}
	return out, nil
}

// visibleExecution loads a run whose flow the caller can read; anything else is 404.
func (s *Server) visibleExecution(ctx context.Context, id int64) (*store.Execution, error) {
	_, v := viewerOf(ctx)
	var ex store.Execution
	err := s.deps.DB.WithContext(ctx).Where("executions.id = ?", id).
		Where("executions.flow_id IN (?)", s.deps.DB.Model(&store.Flow{}).Select("flows.id").Scopes(store.ScopeVisible("flows", v))).
		First(&ex).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("execution")
	}
	return &ex, err
}

func (s *Server) reload(ctx context.Context, id int64) (*store.Execution, error) {
	var ex store.Execution
	return &ex, s.deps.DB.WithContext(ctx).First(&ex, id).Error
}

// waitTerminal waits up to d for a run to end and returns it as it then stands.
func (s *Server) waitTerminal(ctx context.Context, id int64, d time.Duration) (*store.Execution, error) {
	if d <= 0 {
		return s.reload(ctx, id)
	}
	ch, unsub := s.deps.Engine.Bus().Subscribe(id)
	defer unsub()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	poll := time.NewTicker(250 * time.Millisecond) // a missed live event costs at most this
	defer poll.Stop()
	for {
		ex, err := s.reload(ctx, id)
		if err != nil || store.IsTerminal(ex.Status) {
			return ex, err
		}
		select {
		case ev := <-ch:
			if !ev.Terminal() {
				continue
			}
		case <-poll.C:
		case <-deadline.C:
			return s.reload(ctx, id)
		case <-ctx.Done():
			return s.reload(context.WithoutCancel(ctx), id)
		}
	}
}

// startRun checks and queues a run of a flow the caller can read (POST /executions and /stream).
func (s *Server) startRun(ctx context.Context, body *api.ExecutionCreate) (*store.Execution, error) {
	p, v := viewerOf(ctx)
	f, err := store.GetFlow(ctx, s.deps.DB.DB, v, body.FlowId)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, unprocessable("unprocessable", "The flow does not exist or is not visible to you.",
				FieldError{Pointer: "/flow_id", Detail: "names no flow you can read", Code: "unprocessable"})
		}
		return nil, err
	}
	if f.Status == "archived" || f.ArchivedAt != nil {
		return nil, unprocessable("invalid-state", "The flow is archived; restore it first.")
	}
	graph, revision := f.Data, f.Revision
	var version *int
	if body.Version != nil {
		fv, err := store.GetFlowVersion(ctx, s.deps.DB.DB, f.ID, *body.Version)
		if errors.Is(err, store.ErrNotFound) {
			return nil, unprocessable("unprocessable", "The flow has no such version.",
				FieldError{Pointer: "/version", Detail: "names no version of this flow", Code: "unprocessable"})
		}
		if err != nil {
			return nil, err
		}
		graph, version = fv.Data, &fv.Version
	}
	if err := s.requireRunnable(graph); err != nil {
		return nil, err
	}
	input := map[string]any{}
	if body.InputData != nil {
		input = *body.InputData
	}
	rawInput, err := json.Marshal(input)
	if err != nil {
		return nil, err
	}
	if len(rawInput) > maxInputBytes {
		return nil, unprocessable("unprocessable", fmt.Sprintf("input_data is %d bytes, over the limit of %d.", len(rawInput), maxInputBytes),
			FieldError{Pointer: "/input_data", Detail: "is too large", Code: "maxLength"})
	}
	if issues := engine.ValidateInput(graph, decodeMap(rawInput)); len(issues) > 0 {
		errs := make([]FieldError, len(issues))
		for i, is := range issues {
			errs[i] = FieldError{Pointer: "/input_data", Detail: is, Code: "input"}
		}
		return nil, unprocessable("unprocessable", "input_data does not match the trigger's input fields.", errs...)
	}
	ex := &store.Execution{FlowID: f.ID, FlowVersion: version, FlowRevision: revision, Graph: graph, Mode: "manual", InputData: rawInput}
	uid := p.UserID
	ex.TriggeredBy = &uid
	if p.Kind == httpx.KindAPIToken {
		tid := p.TokenID
		ex.APITokenID = &tid
	}
	limit := s.deps.Config.ExecutionMaxConcurrentPerUser
	err = s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var active int64
		if err := tx.WithContext(ctx).Model(&store.Execution{}).
			Where("triggered_by = ? AND mode IN ? AND status IN ?", uid, []string{"manual", "test"}, []string{store.ExecQueued, store.ExecRunning}).
			Count(&active).Error; err != nil {
			return err
		}
		if limit > 0 && active >= int64(limit) {
			pr := problem(http.StatusTooManyRequests, "rate-limited",
				fmt.Sprintf("You have %d runs queued or running; the limit is %d.", active, limit))
			pr.Header = http.Header{"Retry-After": {"5"}}
			return pr
		}
		return s.deps.Engine.Enqueue(ctx, tx, ex)
	})
	if err != nil {
		return nil, err
	}
	return ex, nil
}

// requireRunnable is the execute gate: the structural and completeness checks.
func (s *Server) requireRunnable(graph store.JSON) error {
	err := s.requireComplete(graph)
	if pr, ok := asProblem(err); ok && pr.Slug == "invalid-graph" {
		pr.Detail = strings.Replace(pr.Detail, "cannot be published", "cannot run", 1)
	}
	return err
}

func waitMS(p *api.WaitMS) time.Duration {
	if p == nil {
		return 0
	}
	return time.Duration(*p) * time.Millisecond
}

func (h *handlers) CreateExecution(ctx context.Context, req api.CreateExecutionRequestObject) (api.CreateExecutionResponseObject, error) {
	ex, err := h.s.startRun(ctx, req.Body)
	if err != nil {
		return nil, err
	}
	resp, err := h.s.created(ctx, ex.ID, req.Params.WaitMs)
	if err != nil {
		return nil, err
	}
	return api.CreateExecution201JSONResponse{ExecutionCreatedJSONResponse: resp}, nil
}

// created waits up to wait_ms for a new run to end and answers with it as it then stands.
func (s *Server) created(ctx context.Context, id int64, wait *api.WaitMS) (api.ExecutionCreatedJSONResponse, error) {
	ex, err := s.waitTerminal(ctx, id, waitMS(wait))
	if err != nil {
		return api.ExecutionCreatedJSONResponse{}, err
	}
	out, err := s.executionFull(ctx, ex, false)
	if err != nil {
		return api.ExecutionCreatedJSONResponse{}, err
	}
	return api.ExecutionCreatedJSONResponse{Body: out, Headers: api.ExecutionCreatedResponseHeaders{Location: executionLocation(ex.ID)}}, nil
}

func (h *handlers) StreamExecution(ctx context.Context, req api.StreamExecutionRequestObject) (api.StreamExecutionResponseObject, error) {
	ex, err := h.s.startRun(ctx, req.Body)
	if err != nil {
		return nil, err
	}
	return sseResponse{s: h.s, ctx: ctx, id: ex.ID}, nil
}

func (h *handlers) GetExecutionEvents(ctx context.Context, req api.GetExecutionEventsRequestObject) (api.GetExecutionEventsResponseObject, error) {
	ex, err := h.s.visibleExecution(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	after := 0
	if req.Params.LastEventID != nil {
		after, _ = strconv.Atoi(*req.Params.LastEventID)
	}
	return sseResponse{s: h.s, ctx: ctx, id: ex.ID, after: after}, nil
}

func (h *handlers) ListExecutions(ctx context.Context, req api.ListExecutionsRequestObject) (api.ListExecutionsResponseObject, error) {
	p, v := viewerOf(ctx)
	q := h.s.deps.DB.WithContext(ctx).Model(&store.Execution{}).
		Where("flow_id IN (?)", h.s.deps.DB.Model(&store.Flow{}).Select("flows.id").Scopes(store.ScopeVisible("flows", v)))
	prm := req.Params
	norm := map[string]string{}
	if prm.FlowId != nil {
		q = q.Where("flow_id = ?", *prm.FlowId)
		norm["flow_id"] = strconv.FormatInt(*prm.FlowId, 10)
	}
	if prm.Status != nil && len(*prm.Status) > 0 {
		st := make([]string, len(*prm.Status))
		for i, s := range *prm.Status {
			st[i] = string(s)
		}
		q = q.Where("status IN ?", st)
		norm["status"] = strings.Join(slices.Sorted(slices.Values(st)), ",")
	}
	if prm.Mode != nil {
		q = q.Where("mode = ?", string(*prm.Mode))
		norm["mode"] = string(*prm.Mode)
	}
	if prm.TriggeredBy != nil {
		id := p.UserID
		if *prm.TriggeredBy != "me" {
			id, _ = strconv.ParseInt(*prm.TriggeredBy, 10, 64)
		}
		q = q.Where("triggered_by = ?", id)
		norm["triggered_by"] = strconv.FormatInt(id, 10)
	}
	if prm.From != nil {
		q = q.Where("queued_at >= ?", prm.From.UTC())
		norm["from"] = prm.From.UTC().Format(time.RFC3339Nano)
	}
	if prm.To != nil {
		q = q.Where("queued_at < ?", prm.To.UTC())
		norm["to"] = prm.To.UTC().Format(time.RFC3339Nano)
	}
	filters := cursorFilters("-id", norm)
	after, err := decodeCursor((*string)(prm.Cursor), filters)
	if err != nil {
		return nil, err
	}
	if after > 0 {
		q = q.Where("id < ?", after)
	}
	limit := 50
	if prm.Limit != nil {
		limit = int(*prm.Limit)
	}
	var rows []store.Execution
	if err := q.Omit("graph", "input_data", "output_data").Order("id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := api.ExecutionCursorPage{Items: make([]api.ExecutionSummary, 0, len(rows))}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	for i := range rows {
		out.Items = append(out.Items, executionSummary(&rows[i]))
	}
	out.HasMore = more
	out.NextCursor = nullable.NewNullNullable[string]()
	if more {
		out.NextCursor = nullable.NewNullableWithValue(encodeCursor(rows[len(rows)-1].ID, filters))
	}
	return api.ListExecutions200JSONResponse{Body: out}, nil
}

func (h *handlers) GetExecution(ctx context.Context, req api.GetExecutionRequestObject) (api.GetExecutionResponseObject, error) {
	ex, err := h.s.visibleExecution(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	out, err := h.s.executionFull(ctx, ex, req.Params.Include != nil && *req.Params.Include == "graph")
	if err != nil {
		return nil, err
	}
	return api.GetExecution200JSONResponse{Body: out}, nil
}

func (h *handlers) GetNodeExecution(ctx context.Context, req api.GetNodeExecutionRequestObject) (api.GetNodeExecutionResponseObject, error) {
	ex, err := h.s.visibleExecution(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	var r store.NodeExecution
	err = h.s.deps.DB.WithContext(ctx).Where("id = ? AND execution_id = ?", req.NodeExecutionId, ex.ID).First(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("node execution")
	}
	if err != nil {
		return nil, err
	}
	return api.GetNodeExecution200JSONResponse{Body: nodeExecution(&r, true)}, nil
}

func (h *handlers) CancelExecution(ctx context.Context, req api.CancelExecutionRequestObject) (api.CancelExecutionResponseObject, error) {
	ex, err := h.s.visibleExecution(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	if store.IsTerminal(ex.Status) {
		return nil, conflict("invalid-state", "The run has already ended ("+ex.Status+").")
	}
	var res engine.CancelResult
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		r, err := h.s.deps.Engine.Cancel(ctx, tx, ex)
		if err != nil {
			return err
		}
		res = r
		if r == engine.CancelTerminal {
			return nil
		}
		return writeAudit(ctx, tx, auditEntry{Action: "execution.cancel", ResourceType: "execution", ResourceID: ex.ID,
			Fields: []string{"status"}, Before: map[string]any{"status": ex.Status}})
	})
	if err != nil {
		return nil, err
	}
	if res == engine.CancelTerminal {
		return nil, conflict("invalid-state", "The run has already ended.")
	}
	h.s.deps.Engine.AfterCancel(ctx, ex.ID, res)
	cur, err := h.s.reload(ctx, ex.ID)
	if err != nil {
		return nil, err
	}
	out, err := h.s.executionFull(ctx, cur, false)
	if err != nil {
		return nil, err
	}
	return api.CancelExecution202JSONResponse{Body: out}, nil
}

func (h *handlers) RetryExecution(ctx context.Context, req api.RetryExecutionRequestObject) (api.RetryExecutionResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	orig, err := h.s.visibleExecution(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	if orig.Status != store.ExecFailed && orig.Status != store.ExecCancelled {
		return nil, conflict("invalid-state", "Only a failed or cancelled run can be retried; this one is "+orig.Status+".")
	}
	fromStart := req.Body != nil && req.Body.From != nil && *req.Body.From == api.ExecutionRetryFrom("start")
	var input []byte
	if req.Body != nil && req.Body.InputData != nil {
		if input, err = json.Marshal(*req.Body.InputData); err != nil {
			return nil, err
		}
		if issues := engine.ValidateInput(orig.Graph, decodeMap(input)); len(issues) > 0 {
			errs := make([]FieldError, len(issues))
			for i, is := range issues {
				errs[i] = FieldError{Pointer: "/input_data", Detail: is, Code: "input"}
			}
			return nil, unprocessable("unprocessable", "input_data does not match the trigger's input fields.", errs...)
		}
	}
	uid := p.UserID
	var tokenID *int64
	if p.Kind == httpx.KindAPIToken {
		t := p.TokenID
		tokenID = &t
	}
	var ex *store.Execution
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		ex, err = h.s.deps.Engine.Retry(ctx, tx, orig, fromStart, input, &uid, tokenID)
		return err
	})
	if err != nil {
		return nil, err
	}
	resp, err := h.s.created(ctx, ex.ID, req.Params.WaitMs)
	if err != nil {
		return nil, err
	}
	return api.RetryExecution201JSONResponse{ExecutionCreatedJSONResponse: resp}, nil
}

func (h *handlers) DeleteExecution(ctx context.Context, req api.DeleteExecutionRequestObject) (api.DeleteExecutionResponseObject, error) {
	ex, err := h.s.visibleExecution(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	err = h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.WithContext(ctx).Where("id = ? AND status IN ?", ex.ID, store.TerminalStatuses).Delete(&store.Execution{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return conflict("invalid-state", "The run is still active; cancel it first.")
		}
		return writeAudit(ctx, tx, auditEntry{Action: "execution.delete", ResourceType: "execution", ResourceID: ex.ID,
			Before: map[string]any{"flow_id": ex.FlowID, "status": ex.Status}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteExecution204Response{}, nil
}

// ---- flow webhook key and receiver ----

func newWebhookKey() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) webhookURL(key string) string {
	return strings.TrimRight(s.deps.Config.PublicBaseURL, "/") + BasePath + "/webhooks/flows/" + key
}

func graphHasType(graph []byte, typ string) bool {
	g, err := flow.Parse(graph)
	if err != nil {
		return false
	}
	for _, n := range g.Nodes {
		if flow.NodeTypeOf(n) == typ {
			return true
		}
	}
	return false
}

func (h *handlers) RotateFlowWebhookKey(ctx context.Context, req api.RotateFlowWebhookKeyRequestObject) (api.RotateFlowWebhookKeyResponseObject, error) {
	audit := func(f *store.Flow) auditEntry {
		return auditEntry{Action: "flow.webhook_key_rotated", ResourceType: "flow", ResourceID: f.ID, Fields: []string{"webhook_key"}}
	}
	f, err := h.s.mutateFlow(ctx, req.Id, nil, false, audit, func(tx *gorm.DB, f *store.Flow) (bool, error) {
		if !graphHasType(f.Data, "trigger-webhook") {
			return false, conflict("invalid-state", "The flow has no trigger-webhook node.")
		}
		k := newWebhookKey()
		f.WebhookKey = &k
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return api.RotateFlowWebhookKey200JSONResponse{Body: api.FlowWebhookKey{WebhookUrl: h.s.webhookURL(*f.WebhookKey)}}, nil
}

var droppedWebhookHeaders = map[string]bool{"authorization": true, "cookie": true, "proxy-authorization": true, "x-api-key": true, "set-cookie": true}

const lastNodeWait = 30 * time.Second

func (h *handlers) ReceiveFlowWebhook(ctx context.Context, req api.ReceiveFlowWebhookRequestObject) (api.ReceiveFlowWebhookResponseObject, error) {
	var f store.Flow
	err := h.s.deps.DB.WithContext(ctx).Where("webhook_key = ?", req.EndpointKey).First(&f).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("webhook")
	}
	if err != nil {
		return nil, err
	}
	if f.Status != "published" || f.PublishedVersion == nil || f.ArchivedAt != nil {
		return nil, notFound("webhook")
	}
	fv, err := store.GetFlowVersion(ctx, h.s.deps.DB.DB, f.ID, *f.PublishedVersion)
	if err != nil {
		return nil, err
	}
	plan, err := engine.Compile(fv.Data)
	if err != nil || plan.Trigger < 0 || plan.Nodes[plan.Trigger].Type != "trigger-webhook" {
		return nil, notFound("webhook")
	}
	mode, _ := plan.Nodes[plan.Trigger].Config["response_mode"].(string)
	r := httpx.RequestHeadFrom(ctx)
	headers := map[string]any{}
	query := map[string]any{}
	if r != nil {
		for k, v := range r.Header {
			lk := strings.ToLower(k)
			if !droppedWebhookHeaders[lk] {
				headers[lk] = strings.Join(v, ", ")
			}
		}
		for k, v := range r.Query {
			query[k] = strings.Join(v, ",")
		}
	}
	raw := httpx.RawBody(ctx)
	var body any = string(raw)
	switch {
	case req.JSONBody != nil && len(raw) > 0:
		var v any
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if dec.Decode(&v) == nil {
			body = v
		}
	case req.FormdataBody != nil:
		if vals, err := url.ParseQuery(string(raw)); err == nil {
			m := make(map[string]any, len(vals))
			for k, v := range vals {
				m[k] = strings.Join(v, ",")
			}
			body = m
		}
	}
	if len(raw) == 0 {
		body = nil
	}
	now := store.Now()
	input, err := json.Marshal(map[string]any{"method": http.MethodPost, "query": query, "headers": headers, "body": body, "received_at": now.Format(time.RFC3339Nano)})
	if err != nil {
		return nil, err
	}
	ex := &store.Execution{FlowID: f.ID, FlowVersion: f.PublishedVersion, FlowRevision: f.Revision, Graph: fv.Data, Mode: "webhook", InputData: input}
	if err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error { return h.s.deps.Engine.Enqueue(ctx, tx, ex) }); err != nil {
		return nil, err
	}
	if mode == "last_node" {
		cur, err := h.s.waitTerminal(ctx, ex.ID, lastNodeWait)
		if err == nil && cur.Status == store.ExecCompleted && cur.OutputData != nil {
			if a := (webhookAnswer{v: decodeAny(cur.OutputData)}); a.status() < 300 {
				return a, nil
			}
		}
		if err == nil {
			ex = cur
		}
	}
	return api.ReceiveFlowWebhook202JSONResponse{Body: api.FlowWebhookAccepted{ExecutionId: ex.ID, Status: api.ExecutionStatus(ex.Status)}}, nil
}

// webhookAnswer is a response-data output sent back as the receiver's answer.
type webhookAnswer struct{ v any }

func (a webhookAnswer) VisitReceiveFlowWebhookResponse(w http.ResponseWriter) error {
	m, _ := a.v.(map[string]any)
	status := a.status()
	if hs, ok := m["headers"].(map[string]any); ok {
		for k, v := range hs {
			if s, ok := v.(string); ok && safeResponseHeader(k) {
				w.Header().Set(k, s)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(m["body"])
}

func (a webhookAnswer) status() int {
	m, _ := a.v.(map[string]any)
	if n, ok := m["status"].(json.Number); ok {
		if v, err := n.Int64(); err == nil && v >= 200 && v <= 599 {
			return int(v)
		}
	}
	return http.StatusOK
}

// safeResponseHeader keeps a flow from setting headers that belong to the server.
func safeResponseHeader(k string) bool {
	switch strings.ToLower(k) {
	case "content-type", "content-length", "set-cookie", "transfer-encoding", "connection", "x-request-id",
		"strict-transport-security", "content-security-policy", "access-control-allow-origin":
		return false
	}
	return true
}

func nullAny(v any) nullable.Nullable[any] {
	if v == nil {
		return nullable.NewNullNullable[any]()
	}
	return nullable.NewNullableWithValue(v)
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wataomi/wataomi/flow/expr"
)

// Node statuses (PRODUCT §6.5).
const (
	NodeRunning   = "running"
	NodeCompleted = "completed"
	NodeFailed    = "failed"
	NodeSkipped   = "skipped"
	NodeWaiting   = "waiting"
	NodeCancelled = "cancelled"
)

// Limits bound one run (PRODUCT §6.5). Zero values mean the defaults.
type Limits struct {
	MaxSteps       int           // node attempts per run (EXECUTION_MAX_STEPS)
	NodeTimeout    time.Duration // NODE_TIMEOUT_SECONDS
	AITimeout      time.Duration // AI_REQUEST_TIMEOUT_SECONDS
	MaxNodeOutput  int           // bytes of one node's output as JSON
	MaxTotalOutput int           // bytes of all node outputs of a run
	MaxLifetime    time.Duration // EXECUTION_MAX_LIFETIME_SECONDS, waits included
}

func (l Limits) withDefaults() Limits {
	if l.MaxSteps <= 0 {
		l.MaxSteps = 1000
	}
	if l.NodeTimeout <= 0 {
		l.NodeTimeout = 60 * time.Second
	}
	if l.AITimeout <= 0 {
		l.AITimeout = 120 * time.Second
	}
	if l.MaxNodeOutput <= 0 {
		l.MaxNodeOutput = 1 << 20
	}
	if l.MaxTotalOutput <= 0 {
		l.MaxTotalOutput = 10 << 20
	}
	if l.MaxLifetime <= 0 {
		l.MaxLifetime = 7 * 24 * time.Hour
	}
	return l
}

// NodeError is a node failure with a stable code (PRODUCT §6.3–6.5).
type NodeError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"-"`
}

func (e *NodeError) Error() string { return e.Code + ": " + e.Message }

func nodeErr(code, format string, args ...any) *NodeError {
	return &NodeError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Causes of a cancelled run context.
var (
	// ErrCancelRequested: the run was cancelled through the API.
	ErrCancelRequested = errors.New("cancel requested")
	// ErrRunTimeLimit: EXECUTION_MAX_RUN_SECONDS of running time are used up.
	ErrRunTimeLimit = errors.New("run time limit")
)

// Record is the state of one node record as the executor sees it.
type Record struct {
	NodeID      string
	NodeType    string
	Label       string
	Status      string
	Attempt     int
	Handle      string
	Input       any
	Output      any
	Error       *NodeError
	StartedAt   time.Time
	CompletedAt *time.Time
	DurationMS  *int64
	ReusedFrom  *int64
	DBID        int64 // set by the sink once the record is stored
	dirty       bool
}

// Sink receives what a run produces. The executor calls Checkpoint before and
// after every node with side effects; everything else may be buffered.
type Sink interface {
	Event(name string, data map[string]any)
	Record(r *Record)
	Checkpoint(ctx context.Context) error
}

// Outcome is how Execute stopped.
type Outcome struct {
	Status     string // completed | failed | cancelled | waiting | interrupted
	Error      *NodeError
	ErrorNode  string
	HasErrors  bool
	OutputData any
	WaitUntil  time.Time
	WaitNode   string
	Completed  int
	Failed     int
	Skipped    int
}

// RunInfo is what the reserved template roots expose about the run.
type RunInfo struct {
	ExecutionID    int64
	Mode           string
	FlowID         int64
	FlowName       string
	StartedAt      time.Time
	QueuedAt       time.Time
	TriggeredBy    *int64
	Input          map[string]any
	ConversationID *int64
}

// State is one run in memory: which nodes have run, their outputs, and which
// edges are taken.
type State struct {
	Plan    *Plan
	Info    RunInfo
	Records []*Record // by node index; nil = no record yet
	edges   []int8    // 0 undecided, 1 taken, 2 not taken
	outputs map[string]any
	scope   expr.Scope
	vars    map[string]any
	steps   int
	total   int
	hasErr  bool
	outData any
}

// NewState prepares a run of plan. records are the node records already
// stored for it (a resumed or retried run); final ones are replayed, not run.
func NewState(plan *Plan, info RunInfo, records []*Record) *State {
	st := &State{
		Plan:    plan,
		Info:    info,
		Records: make([]*Record, len(plan.Nodes)),
		edges:   make([]int8, len(plan.Edges)),
		outputs: make(map[string]any, len(plan.Nodes)),
		vars:    map[string]any{},
	}
	st.scope = expr.Scope{Values: make(map[string]any, len(plan.Nodes)+10), Missing: map[string]string{}}
	if info.Input == nil {
		st.Info.Input = map[string]any{}
	}
	for _, r := range records {
		if i, ok := plan.byID[r.NodeID]; ok {
			st.Records[i] = r
			st.steps += r.Attempt
		}
	}
	st.scope.Values["input"] = st.Info.Input
	st.scope.Values["vars"] = st.vars
	st.scope.Values["nodes"] = st.outputs
	st.scope.Values["conversation"] = nil
	st.scope.Values["contact"] = nil
	st.scope.Values["execution"] = map[string]any{"id": info.ExecutionID, "mode": info.Mode, "started_at": rfc3339(info.StartedAt)}
	st.scope.Values["flow"] = map[string]any{"id": info.FlowID, "name": info.FlowName}
	for _, id := range plan.nodeIDs {
		st.scope.Missing[id] = "has not run"
	}
	return st
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Executor runs plans. It is safe for concurrent use by many runs.
type Executor struct {
	Services *Services
	Limits   Limits
	Now      func() time.Time
	// Sleep waits between retry attempts; tests may shorten it.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (x *Executor) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now().UTC()
}

func (x *Executor) sleep(ctx context.Context, d time.Duration) error {
	if x.Sleep != nil {
		return x.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Execute runs st until it completes, fails, is cancelled, waits or is
// interrupted (ctx cancelled without a cause this package knows: the worker is
// shutting down, and another worker will resume the run).
func (x *Executor) Execute(ctx context.Context, st *State, sink Sink) Outcome {
	lim := x.Limits.withDefaults()
	p := st.Plan
	for _, i := range p.Order {
		n := p.Nodes[i]
		if ctx.Err() != nil {
			// Between nodes: a cancel, the run-time limit or a shutdown stops the run here.
			return st.outcome(stoppedBetween(ctx))
		}
		if rec := st.Records[i]; rec != nil {
			switch rec.Status {
			case NodeCompleted, NodeSkipped:
				st.replay(n, rec)
				continue
			case NodeFailed:
				if rec.Handle != "" { // continued or branched: final
					st.hasErr = true
					st.replay(n, rec)
					continue
				}
			case NodeWaiting:
				// The timer fired: the wait is over.
				now := x.now()
				out := map[string]any{"resumed_at": rfc3339(now), "waited_ms": now.Sub(rec.StartedAt).Milliseconds()}
				st.finish(n, rec, NodeCompleted, out, []string{"out"}, nil, now)
				sink.Record(rec)
				sink.Event("node.completed", st.completedEvent(n, rec))
				continue
			}
		}
		live := len(n.In) == 0
		for _, k := range n.In {
			if st.edges[k] == 1 {
				live = true
				break
			}
		}
		if !live {
			st.skip(n, x.now(), sink)
			continue
		}
		if out, stop := x.runNode(ctx, st, n, lim, sink); stop {
			return st.outcome(out)
		}
	}
	return st.outcome(Outcome{Status: "completed"})
}

func (st *State) outcome(o Outcome) Outcome {
	o.HasErrors = o.HasErrors || st.hasErr
	if o.OutputData == nil {
		o.OutputData = st.outData
	}
	for _, r := range st.Records {
		if r == nil {
			continue
		}
		switch r.Status {
		case NodeCompleted:
			o.Completed++
		case NodeFailed:
			o.Failed++
		case NodeSkipped:
			o.Skipped++
		}
	}
	return o
}

// replay restores a final record: its output becomes readable and its edges are decided.
func (st *State) replay(n *node, rec *Record) {
	switch rec.Status {
	case NodeSkipped:
		st.scope.Missing[n.ID] = "was skipped"
		st.decide(n, nil)
	default:
		st.setOutput(n, rec.Output)
		st.decide(n, []string{rec.Handle})
		if n.Type == "response-data" && rec.Status == NodeCompleted {
			st.outData = rec.Output
		}
		if n.Type == "logic-set-variable" && rec.Status == NodeCompleted {
			if m, ok := rec.Output.(map[string]any); ok {
				for k, v := range m {
					st.vars[k] = v
				}
			}
		}
	}
}

func (st *State) setOutput(n *node, out any) {
	st.outputs[n.ID] = out
	st.scope.Values[n.ID] = out
	delete(st.scope.Missing, n.ID)
	if n.idx == st.Plan.Trigger {
		st.scope.Values["trigger"] = out
	}
}

// decide marks every outgoing edge of n taken when its handle was selected.
func (st *State) decide(n *node, handles []string) {
	for _, k := range n.Out {
		st.edges[k] = 2
		for _, h := range handles {
			if st.Plan.Edges[k].Handle == h {
				st.edges[k] = 1
				break
			}
		}
	}
}

func (st *State) skip(n *node, now time.Time, sink Sink) {
	rec := &Record{NodeID: n.ID, NodeType: n.Type, Label: n.Label, Status: NodeSkipped, Attempt: 0, StartedAt: now, CompletedAt: &now}
	zero := int64(0)
	rec.DurationMS = &zero
	st.Records[n.idx] = rec
	st.scope.Missing[n.ID] = "was skipped"
	st.decide(n, nil)
	sink.Record(rec)
	sink.Event("node.skipped", map[string]any{"node_id": n.ID})
}

func (st *State) finish(n *node, rec *Record, status string, out any, handles []string, nerr *NodeError, now time.Time) {
	rec.Status = status
	rec.Output = out
	rec.Error = nerr
	rec.CompletedAt = &now
	d := now.Sub(rec.StartedAt).Milliseconds()
	rec.DurationMS = &d
	if len(handles) > 0 {
		rec.Handle = handles[0]
	}
	if status == NodeCompleted || len(handles) > 0 {
		st.setOutput(n, out)
		st.decide(n, handles)
	} else {
		st.scope.Missing[n.ID] = "failed"
	}
}

func (st *State) completedEvent(n *node, rec *Record) map[string]any {
	out, truncated := truncateOutput(rec.Output)
	ev := map[string]any{"node_id": n.ID, "handle": rec.Handle, "duration_ms": derefInt(rec.DurationMS), "output": out}
	if truncated {
		ev["truncated"] = true
	}
	return ev
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// runNode runs one node with its retries and on_error policy. stop reports
// that the run ends here, with out describing how.
func (x *Executor) runNode(ctx context.Context, st *State, n *node, lim Limits, sink Sink) (out Outcome, stop bool) {
	rec := st.Records[n.idx]
	if rec == nil {
		rec = &Record{NodeID: n.ID, NodeType: n.Type, Label: n.Label}
		st.Records[n.idx] = rec
	}
	pure := n.Def.Pure
	for attempt := rec.Attempt + 1; ; attempt++ {
		if st.steps >= lim.MaxSteps {
			nerr := nodeErr("limit-exceeded", "the run reached EXECUTION_MAX_STEPS (%d node attempts)", lim.MaxSteps)
			st.finish(n, rec, NodeFailed, nil, nil, nerr, x.now())
			sink.Record(rec)
			sink.Event("node.failed", map[string]any{"node_id": n.ID, "attempt": rec.Attempt, "will_retry": false, "error": nerr})
			return Outcome{Status: "failed", Error: nerr, ErrorNode: n.ID}, true
		}
		st.steps++
		now := x.now()
		rec.Attempt = attempt
		rec.Status = NodeRunning
		rec.StartedAt = now
		rec.Error, rec.Output, rec.CompletedAt, rec.DurationMS, rec.Handle = nil, nil, nil, nil, ""
		st.scope.Values["now"] = rfc3339(now)
		sink.Event("node.started", map[string]any{"node_id": n.ID, "node_type": n.Type, "label": n.Label, "attempt": attempt})
		if !pure {
			sink.Record(rec)
			if err := sink.Checkpoint(ctx); err != nil {
				return x.interrupted(ctx, st, n, rec, sink, err)
			}
		}
		res, err := x.call(ctx, st, n, rec, lim)
		now = x.now()
		if err == nil && res.wait != nil {
			rec.Status = NodeWaiting
			sink.Record(rec)
			ev := map[string]any{"node_id": n.ID, "until": rfc3339(*res.wait)}
			sink.Event("execution.waiting", ev)
			return Outcome{Status: "waiting", WaitUntil: *res.wait, WaitNode: n.ID}, true
		}
		if err == nil {
			err = st.checkOutput(res.output, lim)
		}
		if err == nil {
			st.finish(n, rec, NodeCompleted, res.output, res.handles, nil, now)
			if n.Type == "response-data" {
				st.outData = res.output
			}
			sink.Record(rec)
			sink.Event("node.completed", st.completedEvent(n, rec))
			if !pure {
				if err := sink.Checkpoint(ctx); err != nil {
					return x.interrupted(ctx, st, n, rec, sink, err)
				}
			}
			return Outcome{}, false
		}
		// The run context ended: cancellation, the run-time limit or a shutdown.
		if ctx.Err() != nil {
			return x.interrupted(ctx, st, n, rec, sink, ctx.Err())
		}
		nerr := asNodeError(err)
		retry := nerr.Retryable && attempt < n.Retry.MaxAttempts
		sink.Event("node.failed", map[string]any{"node_id": n.ID, "attempt": attempt, "will_retry": retry, "error": nerr})
		if retry {
			if err := x.sleep(ctx, backoff(n.Retry.Backoff, n.Retry.Exponential, attempt)); err != nil {
				return x.interrupted(ctx, st, n, rec, sink, err)
			}
			continue
		}
		switch n.OnError {
		case "continue":
			st.hasErr = true
			st.finish(n, rec, NodeFailed, errorOutput(nerr), []string{"out"}, nerr, now)
		case "branch":
			st.hasErr = true
			st.finish(n, rec, NodeFailed, errorOutput(nerr), []string{"error"}, nerr, now)
		default:
			st.finish(n, rec, NodeFailed, nil, nil, nerr, now)
		}
		sink.Record(rec)
		if !pure {
			if err := sink.Checkpoint(ctx); err != nil {
				return x.interrupted(ctx, st, n, rec, sink, err)
			}
		}
		if rec.Handle == "" {
			return Outcome{Status: "failed", Error: nerr, ErrorNode: n.ID}, true
		}
		return Outcome{}, false
	}
}

// errorOutput is the output of a node that failed under on_error continue or
// branch: {error: {code, message}} as plain JSON values, so templates
// ({{id.error.code}}) and CEL (id.error.code) can read it like any output,
// and it is the same value before and after a round trip through the database.
func errorOutput(nerr *NodeError) map[string]any {
	return map[string]any{"error": map[string]any{"code": nerr.Code, "message": nerr.Message}}
}

// interrupted ends a run whose context stopped (or whose checkpoint failed)
// while n was running.
func (x *Executor) interrupted(ctx context.Context, st *State, n *node, rec *Record, sink Sink, err error) (Outcome, bool) {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(err, ErrCancelRequested) || errors.Is(cause, ErrCancelRequested):
		now := x.now()
		st.finish(n, rec, NodeCancelled, nil, nil, nodeErr("cancelled", "the run was cancelled"), now)
		sink.Record(rec)
		return Outcome{Status: "cancelled"}, true
	case errors.Is(cause, ErrRunTimeLimit):
		nerr := nodeErr("limit-exceeded", "the run used up EXECUTION_MAX_RUN_SECONDS of running time")
		st.finish(n, rec, NodeFailed, nil, nil, nerr, x.now())
		sink.Record(rec)
		sink.Event("node.failed", map[string]any{"node_id": n.ID, "attempt": rec.Attempt, "will_retry": false, "error": nerr})
		return Outcome{Status: "failed", Error: nerr, ErrorNode: n.ID}, true
	default:
		// Shutdown or a lost database: leave the record as it is; the run resumes elsewhere.
		return Outcome{Status: "interrupted", Error: nodeErr("interrupted", "%v", err)}, true
	}
}

// stoppedBetween is how a run whose context ended between two nodes stops.
func stoppedBetween(ctx context.Context) Outcome {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrCancelRequested):
		return Outcome{Status: "cancelled"}
	case errors.Is(cause, ErrRunTimeLimit):
		return Outcome{Status: "failed", Error: nodeErr("limit-exceeded", "the run used up EXECUTION_MAX_RUN_SECONDS of running time")}
	default:
		return Outcome{Status: "interrupted", Error: nodeErr("interrupted", "%v", ctx.Err())}
	}
}

func backoff(base time.Duration, exponential bool, attempt int) time.Duration {
	if base <= 0 {
		base = time.Second
	}
	if !exponential {
		return base
	}
	d := base
	for i := 1; i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	return d
}

func (st *State) checkOutput(out any, lim Limits) error {
	n, _, err := jsonSize(out)
	if err != nil {
		return nodeErr("bad-output", "the node output is not JSON: %v", err)
	}
	if n > lim.MaxNodeOutput {
		return nodeErr("limit-exceeded", "the node output is %d bytes, over the limit of %d", n, lim.MaxNodeOutput)
	}
	st.total += n
	if st.total > lim.MaxTotalOutput {
		return nodeErr("limit-exceeded", "the run's outputs reached %d bytes, over the limit of %d", st.total, lim.MaxTotalOutput)
	}
	return nil
}

// asNodeError maps any error from a node to a NodeError.
func asNodeError(err error) *NodeError {
	var ne *NodeError
	if errors.As(err, &ne) {
		return ne
	}
	var ee *expr.Error
	if errors.As(err, &ee) {
		return &NodeError{Code: ee.Code, Message: ee.Message}
	}
	return classifyExternal(err)
}

const maxEventOutput = 64 << 10

// truncateOutput caps an output at 64 KiB of JSON for events and lists.
func truncateOutput(v any) (any, bool) {
	n, b, err := jsonSize(v)
	if err != nil || n <= maxEventOutput {
		return v, false
	}
	return string(b[:maxEventOutput]), true
}

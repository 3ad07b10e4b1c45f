package engine

// Database-backed tests of the run lifecycle (PRODUCT §5.3, §6.5, §6.6):
// resuming after a dead worker, cancellation (in one process and across
// replicas), the terminal guard, durable delays, retry from the failed node,
// and a River end-to-end smoke test. Helpers are in dbhelpers_test.go.

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"gorm.io/gorm"

	"github.com/wataomi/wataomi/store"
)

// TestDurableResumeAfterWorkerDeath is the "kill the worker mid-run":
// a worker dies while an HTTP call is in flight; another engine on the same
// database resumes the run from its last completed node.
func TestDurableResumeAfterWorkerDeath(t *testing.T) {
	env := newDBEnv(t)
	srv := newGateServer(t, true, 30*time.Second)
	g := linearGraph(t, srv.URL+"/slow", nil)
	flowID := env.flow(g)
	e1 := env.engine(NewMemoryBus(), Config{})
	id := env.enqueue(e1, flowID, g)

	ctx1, kill := context.WithCancel(context.Background())
	defer kill()
	done := make(chan error, 1)
	go func() { done <- e1.Run(ctx1, id) }()
	srv.waitArrived(t, 10*time.Second)
	kill() // a dying worker: a plain cancel, no cause
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after its worker context was cancelled; River would not retry the job")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of its context being cancelled")
	}

	if ex := env.exec(id); ex.Status != store.ExecRunning || ex.CompletedAt != nil {
		t.Fatalf("after the worker died: status %s, completed_at %v; want running, none", ex.Status, ex.CompletedAt)
	}
	before := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeRunning})
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range []string{"t", "a", "h"} {
		if before[n].Attempt != 1 {
			t.Errorf("node %s attempt %d after the first worker, want 1", n, before[n].Attempt)
		}
	}
	waitFor(t, 5*time.Second, "the server to see the first request aborted", func() bool { return srv.abortedCount() == 1 })

	// A second engine (another replica, its own bus) picks the job up; the
	// server now answers at once.
	srv.hold.Store(false)
	env.clock.Advance(2 * time.Second)
	resumedAt := env.clock.Now()
	e2 := env.engine(NewMemoryBus(), Config{})
	if err := e2.Run(context.Background(), id); err != nil {
		t.Fatalf("resumed Run: %v", err)
	}

	ex := env.exec(id)
	if ex.Status != store.ExecCompleted || ex.CompletedNodes != 5 || ex.FailedNodes != 0 || ex.HasErrors {
		t.Fatalf("resumed run: status %s, completed_nodes %d, failed_nodes %d, has_errors %v (error %s)",
			ex.Status, ex.CompletedNodes, ex.FailedNodes, ex.HasErrors, jsonText(ex.Error))
	}
	out, _ := jsonValue(t, ex.OutputData).(map[string]any)
	if body, _ := out["body"].(map[string]any); body["y"] != float64(30) || body["call"] != float64(2) {
		t.Errorf("output_data %s: want body {y: 30, call: 2} (the second request's answer)", jsonText(ex.OutputData))
	}
	after := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeCompleted, "b": NodeCompleted, "r": NodeCompleted})
	for _, n := range []string{"t", "a"} {
		b, a := before[n], after[n]
		if a.ID != b.ID || a.Attempt != 1 || !a.StartedAt.Equal(b.StartedAt) || jsonText(a.Output) != jsonText(b.Output) {
			t.Errorf("node %s ran again: before {id %d, attempt %d, started %s, output %s}, after {id %d, attempt %d, started %s, output %s}",
				n, b.ID, b.Attempt, b.StartedAt, jsonText(b.Output), a.ID, a.Attempt, a.StartedAt, jsonText(a.Output))
		}
	}
	if h := after["h"]; h.ID != before["h"].ID || h.Attempt != 2 || !h.StartedAt.Equal(resumedAt) {
		t.Errorf("http node after resume: id %d (was %d), attempt %d, started %s; want the same record, attempt 2, started %s",
			h.ID, before["h"].ID, h.Attempt, h.StartedAt, resumedAt)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("the server saw %d requests, want 2 (one aborted, one answered)", n)
	}
	trace := env.wantEvents(id, "execution.completed")
	want := []string{
		"execution.created", "execution.started",
		"node.started t#1", "node.completed t", "node.started a#1", "node.completed a",
		"node.started h#1", // the dead worker's last checkpoint
		"node.started h#2", "node.completed h", "node.started b#1", "node.completed b",
		"node.started r#1", "node.completed r", "execution.completed",
	}
	if !slices.Equal(trace, want) {
		t.Errorf("events:\n got  %q\n want %q", trace, want)
	}
	env.wantNoErrorLogs()
}

// TestCancelInFlight: a cancel reaches the worker running the run, which
// aborts the in-flight HTTP call at once (PRODUCT §6.5 Cancellation).
func TestCancelInFlight(t *testing.T) {
	t.Run("one process", func(t *testing.T) {
		env := newDBEnv(t)
		e := env.engine(NewMemoryBus(), Config{})
		id, srv := cancelInFlight(t, env, e, e)

		// A cancelled run can be retried: the http node and what follows run again.
		srv.hold.Store(false)
		orig := env.exec(id)
		var retry *store.Execution
		if err := env.db.Tx(context.Background(), func(tx *gorm.DB) error {
			var err error
			retry, err = e.Retry(context.Background(), tx, &orig, false, nil, &env.user, nil)
			return err
		}); err != nil {
			t.Fatalf("Retry: %v", err)
		}
		copies := env.wantNodeStatuses(retry.ID, map[string]string{"t": NodeCompleted, "a": NodeCompleted})
		if err := e.Run(context.Background(), retry.ID); err != nil {
			t.Fatalf("Run retry: %v", err)
		}
		if ex := env.exec(retry.ID); ex.Status != store.ExecCompleted {
			t.Fatalf("retry of the cancelled run: %s (%s)", ex.Status, jsonText(ex.Error))
		}
		after := env.wantNodeStatuses(retry.ID, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeCompleted, "b": NodeCompleted, "r": NodeCompleted})
		if after["t"].ID != copies["t"].ID || after["a"].ID != copies["a"].ID || after["h"].ReusedFrom != nil {
			t.Errorf("retry of the cancelled run re-ran reused nodes or reused the cancelled one")
		}
	})
	t.Run("across replicas (Redis)", func(t *testing.T) {
		rdb := testRedisClient(t)
		env := newDBEnv(t)
		ns := "enginetest-" + randSuffix()
		ctx := context.Background()
		var engines [2]*Engine
		for i := range engines {
			bus, err := NewRedisBus(ctx, rdb, env.logger(), ns)
			if err != nil {
				t.Fatalf("NewRedisBus: %v", err)
			}
			t.Cleanup(func() { _ = bus.Close() })
			engines[i] = env.engine(bus, Config{})
		}
		// Let both pattern subscriptions reach Redis before anything is published.
		waitFor(t, 3*time.Second, "both buses to subscribe", func() bool {
			n, err := rdb.PubSubNumPat(ctx).Result()
			return err == nil && n >= 2
		})
		cancelInFlight(t, env, engines[0], engines[1])
	})
}

// cancelInFlight runs a run on runner with an HTTP call that would take 30 s,
// cancels it through canceller, and checks that runner stops it within 1 s.
func cancelInFlight(t *testing.T, env *dbEnv, runner, canceller *Engine) (int64, *gateServer) {
	t.Helper()
	srv := newGateServer(t, true, 30*time.Second)
	g := linearGraph(t, srv.URL+"/slow", nil)
	flowID := env.flow(g)
	id := env.enqueue(runner, flowID, g)
	events, unsubscribe := canceller.Bus().Subscribe(id) // the canceller's replica follows the stream
	defer unsubscribe()

	done := make(chan error, 1)
	go func() { done <- runner.Run(context.Background(), id) }()
	srv.waitArrived(t, 10*time.Second)
	if ex := env.exec(id); ex.Status != store.ExecRunning {
		t.Fatalf("status %s while the http node is in flight, want running", ex.Status)
	}
	start := time.Now()
	if res := env.cancel(canceller, id); res != CancelSignalled {
		t.Fatalf("Cancel of a running run = %v, want CancelSignalled", res)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Run returned %s after the cancel, want within 1 s", d)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1 s of the cancel")
	}
	ex := env.exec(id)
	if ex.Status != store.ExecCancelled || ex.CancelRequestedAt == nil || ex.CompletedAt == nil || ex.Error != nil {
		t.Errorf("cancelled run: status %s, cancel_requested_at %v, completed_at %v, error %s",
			ex.Status, ex.CancelRequestedAt, ex.CompletedAt, jsonText(ex.Error))
	}
	// The unrun nodes b and r get no record.
	env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeCancelled})
	env.wantEvents(id, "execution.cancelled")
	waitFor(t, 2*time.Second, "the server to see the request aborted", func() bool { return srv.abortedCount() == 1 })
	// The terminal event reached the canceller's bus.
	deadline := time.After(3 * time.Second)
	for got := false; !got; {
		select {
		case ev := <-events:
			got = ev.Name == "execution.cancelled"
		case <-deadline:
			t.Fatal("the canceller's bus did not receive execution.cancelled")
		}
	}
	env.wantNoErrorLogs()
	return id, srv
}

// TestCancelWhileNoWorkerHoldsTheRun: a cancel of a running run whose worker
// died reaches nobody; the next delivery of its job ends it cancelled, with
// the interrupted node's record cancelled and the counts of what ran.
func TestCancelWhileNoWorkerHoldsTheRun(t *testing.T) {
	env := newDBEnv(t)
	srv := newGateServer(t, true, 30*time.Second)
	g := linearGraph(t, srv.URL+"/slow", nil)
	flowID := env.flow(g)
	e1 := env.engine(NewMemoryBus(), Config{})
	id := env.enqueue(e1, flowID, g)

	ctx1, kill := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e1.Run(ctx1, id) }()
	srv.waitArrived(t, 10*time.Second)
	kill()
	if err := <-done; err == nil {
		t.Fatal("Run returned nil after its worker context was cancelled")
	}

	e2 := env.engine(NewMemoryBus(), Config{})
	if res := env.cancel(e2, id); res != CancelSignalled {
		t.Fatalf("Cancel = %v, want CancelSignalled", res)
	}
	env.clock.Advance(time.Second)
	if err := e2.Run(context.Background(), id); err != nil {
		t.Fatalf("Run of the cancel-requested run: %v", err)
	}
	ex := env.exec(id)
	if ex.Status != store.ExecCancelled || ex.CompletedNodes != 2 || ex.FailedNodes != 0 {
		t.Errorf("run: status %s, completed_nodes %d, failed_nodes %d; want cancelled, 2, 0", ex.Status, ex.CompletedNodes, ex.FailedNodes)
	}
	nodes := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeCancelled})
	if h := nodes["h"]; h.CompletedAt == nil || h.Attempt != 1 {
		t.Errorf("interrupted node: completed_at %v, attempt %d; want set, 1", h.CompletedAt, h.Attempt)
	}
	env.wantEvents(id, "execution.cancelled")
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("the server saw %d requests, want 1", n)
	}
}

// TestCancelQueuedRun: a queued run is cancelled at once, its job cancelled,
// and a later Run (a job that was already fetched) does nothing.
func TestCancelQueuedRun(t *testing.T) {
	env := newDBEnv(t)
	srv := newGateServer(t, false, 0)
	g := linearGraph(t, srv.URL+"/x", nil)
	flowID := env.flow(g)
	e := env.engine(NewMemoryBus(), Config{})
	id := env.enqueue(e, flowID, g)
	events, unsubscribe := e.Bus().Subscribe(id)
	defer unsubscribe()

	env.clock.Advance(1500 * time.Millisecond)
	if res := env.cancel(e, id); res != CancelDone {
		t.Fatalf("Cancel of a queued run = %v, want CancelDone", res)
	}
	ex := env.exec(id)
	if ex.Status != store.ExecCancelled || ex.CompletedAt == nil || ex.DurationMS == nil || *ex.DurationMS != 1500 {
		t.Fatalf("cancelled queued run: status %s, completed_at %v, duration_ms %v; want cancelled after 1500 ms",
			ex.Status, ex.CompletedAt, ex.DurationMS)
	}
	job, err := e.river.JobGet(context.Background(), *ex.JobID)
	if err != nil {
		t.Fatalf("JobGet: %v", err)
	}
	if job.State != rivertype.JobStateCancelled {
		t.Errorf("the run's job is %s, want cancelled", job.State)
	}
	if trace := env.wantEvents(id, "execution.cancelled"); len(trace) != 2 {
		t.Errorf("events %q, want created and cancelled", trace)
	}
	select {
	case ev := <-events:
		if ev.Name != "execution.cancelled" || ev.Seq != 2 {
			t.Errorf("published %s seq %d, want execution.cancelled seq 2", ev.Name, ev.Seq)
		}
	case <-time.After(time.Second):
		t.Error("execution.cancelled was not published")
	}

	if err := e.Run(context.Background(), id); err != nil {
		t.Fatalf("Run of a cancelled run: %v", err)
	}
	if got := env.exec(id); got.Status != store.ExecCancelled || got.EventSeq != 2 || got.StartedAt != nil {
		t.Errorf("Run changed a cancelled run: status %s, event_seq %d, started_at %v", got.Status, got.EventSeq, got.StartedAt)
	}
	env.wantNodeStatuses(id, map[string]string{})
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("the server saw %d requests", n)
	}
}

// TestCancelTerminalGuard: Cancel of an ended run (even through a stale copy
// that still says queued, running or waiting) is CancelTerminal and writes nothing.
func TestCancelTerminalGuard(t *testing.T) {
	env := newDBEnv(t)
	srv := newGateServer(t, false, 0, 200, 400)
	e := env.engine(NewMemoryBus(), Config{})
	ctx := context.Background()

	g := linearGraph(t, srv.URL+"/x", nil)
	flowID := env.flow(g)
	completed := env.enqueue(e, flowID, g)
	failed := env.enqueue(e, flowID, g)
	for _, id := range []int64{completed, failed} {
		if err := e.Run(ctx, id); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	cancelled := env.enqueue(e, flowID, g)
	if res := env.cancel(e, cancelled); res != CancelDone {
		t.Fatalf("Cancel queued = %v", res)
	}
	runs := map[string]int64{store.ExecCompleted: completed, store.ExecFailed: failed, store.ExecCancelled: cancelled}
	for status, id := range runs {
		if got := env.exec(id).Status; got != status {
			t.Fatalf("setup: run %d is %s, want %s", id, got, status)
		}
	}

	for status, id := range runs {
		for _, seen := range []string{status, store.ExecQueued, store.ExecRunning, store.ExecWaiting} {
			t.Run(status+" seen as "+seen, func(t *testing.T) {
				env.clock.Advance(time.Second)
				before := env.exec(id)
				evs := len(env.events(id))
				stale := before
				stale.Status = seen
				var res CancelResult
				if err := env.db.Tx(ctx, func(tx *gorm.DB) error {
					var err error
					res, err = e.Cancel(ctx, tx, &stale)
					return err
				}); err != nil {
					t.Fatalf("Cancel: %v", err)
				}
				e.AfterCancel(ctx, id, res)
				if res != CancelTerminal {
					t.Errorf("Cancel = %v, want CancelTerminal", res)
				}
				after := env.exec(id)
				if after.Status != before.Status || !after.UpdatedAt.Equal(before.UpdatedAt) || after.EventSeq != before.EventSeq ||
					!timePtrEqual(after.CancelRequestedAt, before.CancelRequestedAt) || !timePtrEqual(after.CompletedAt, before.CompletedAt) {
					t.Errorf("Cancel changed an ended run:\n before %+v\n after  %+v", before, after)
				}
				if n := len(env.events(id)); n != evs {
					t.Errorf("Cancel added %d events", n-evs)
				}
			})
		}
	}
}

func timePtrEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func delayGraph(t *testing.T) []byte {
	t.Helper()
	return dbGraph(t, []dnode{
		{id: "t", typ: "trigger-manual"},
		{id: "a", typ: "logic-transform", cfg: map[string]any{"mappings": map[string]any{"x": "1 + 2"}}},
		{id: "d", typ: "logic-delay", cfg: map[string]any{"duration_seconds": 60}},
		{id: "b", typ: "logic-transform", cfg: map[string]any{"mappings": map[string]any{"waited": "d.waited_ms", "x": "a.x"}}},
		{id: "r", typ: "response-data", cfg: map[string]any{"status": 200, "body": map[string]any{"waited": "{{b.waited}}"}}},
	}, dbChain("t", "a", "d", "b", "r"))
}

// TestDelayWaitsDurably: logic-delay parks the run on a River job scheduled
// at the wake-up time, without holding a worker; the timer resumes it.
func TestDelayWaitsDurably(t *testing.T) {
	env := newDBEnv(t)
	g := delayGraph(t)
	flowID := env.flow(g)
	e := env.engine(NewMemoryBus(), Config{})
	ctx := context.Background()

	id := env.enqueue(e, flowID, g)
	firstJob := *env.exec(id).JobID
	t0 := env.clock.Now()
	if err := e.Run(ctx, id); err != nil {
		t.Fatalf("Run: %v", err)
	}
	ex := env.exec(id)
	if ex.Status != store.ExecWaiting || ex.CompletedAt != nil {
		t.Fatalf("status %s, want waiting", ex.Status)
	}
	env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "d": NodeWaiting})
	wake := t0.Add(60 * time.Second)
	if ex.JobID == nil || *ex.JobID == firstJob {
		t.Fatalf("job_id %v: want the timer job, not the run's first job %d", ex.JobID, firstJob)
	}
	var scheduled int64
	if err := env.db.Raw("SELECT count(*) FROM river_job WHERE id = ? AND state = 'scheduled' AND kind = ?", *ex.JobID, ExecuteArgs{}.Kind()).
		Scan(&scheduled).Error; err != nil {
		t.Fatalf("query river_job: %v", err)
	}
	if scheduled != 1 {
		t.Errorf("river_job %d is not a scheduled %s job", *ex.JobID, ExecuteArgs{}.Kind())
	}
	job, err := e.river.JobGet(ctx, *ex.JobID)
	if err != nil {
		t.Fatalf("JobGet: %v", err)
	}
	if d := job.ScheduledAt.Sub(wake); d < -time.Second || d > time.Second {
		t.Errorf("timer job scheduled at %s, want %s (now + 60 s)", job.ScheduledAt.UTC(), wake)
	}
	var args ExecuteArgs
	if err := json.Unmarshal(job.EncodedArgs, &args); err != nil || args.ExecutionID != id {
		t.Errorf("timer job args %s, want execution %d", job.EncodedArgs, id)
	}
	evs := env.events(id)
	var waiting map[string]any
	if last := evs[len(evs)-1]; last.Event != "execution.waiting" || json.Unmarshal(last.Data, &waiting) != nil ||
		waiting["node_id"] != "d" || waiting["until"] != rfc3339(wake) {
		t.Errorf("last event %s %s, want execution.waiting {node_id: d, until: %s}", last.Event, last.Data, rfc3339(wake))
	}

	env.clock.Advance(61 * time.Second)
	if err := e.Run(ctx, id); err != nil {
		t.Fatalf("Run after the wake-up: %v", err)
	}
	ex = env.exec(id)
	if ex.Status != store.ExecCompleted {
		t.Fatalf("status %s after the wake-up, want completed (%s)", ex.Status, jsonText(ex.Error))
	}
	nodes := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "d": NodeCompleted, "b": NodeCompleted, "r": NodeCompleted})
	dOut, _ := jsonValue(t, nodes["d"].Output).(map[string]any)
	if dOut["resumed_at"] != rfc3339(t0.Add(61*time.Second)) || dOut["waited_ms"] != float64(61000) {
		t.Errorf("delay output %s, want {resumed_at: %s, waited_ms: 61000}", jsonText(nodes["d"].Output), rfc3339(t0.Add(61*time.Second)))
	}
	if nodes["d"].Attempt != 1 {
		t.Errorf("delay attempt %d, want 1", nodes["d"].Attempt)
	}
	out, _ := jsonValue(t, ex.OutputData).(map[string]any)
	if body, _ := out["body"].(map[string]any); body["waited"] != float64(61000) {
		t.Errorf("output_data %s: want body.waited 61000 (downstream read the delay's output)", jsonText(ex.OutputData))
	}
	if ex.RunMS >= 60000 {
		t.Errorf("run_ms %d includes the wait", ex.RunMS)
	}
	if ex.DurationMS == nil || *ex.DurationMS != 61000 {
		t.Errorf("duration_ms %v, want 61000 (the wait included)", ex.DurationMS)
	}
	trace := env.wantEvents(id, "execution.completed")
	want := []string{
		"execution.created", "execution.started",
		"node.started t#1", "node.completed t", "node.started a#1", "node.completed a",
		"node.started d#1", "execution.waiting", "node.completed d",
		"node.started b#1", "node.completed b", "node.started r#1", "node.completed r", "execution.completed",
	}
	if !slices.Equal(trace, want) {
		t.Errorf("events:\n got  %q\n want %q", trace, want)
	}

	t.Run("cancel while waiting", func(t *testing.T) {
		id := env.enqueue(e, flowID, g)
		if err := e.Run(ctx, id); err != nil {
			t.Fatalf("Run: %v", err)
		}
		timer := *env.exec(id).JobID
		if res := env.cancel(e, id); res != CancelDone {
			t.Fatalf("Cancel of a waiting run = %v, want CancelDone", res)
		}
		if ex := env.exec(id); ex.Status != store.ExecCancelled {
			t.Fatalf("status %s, want cancelled", ex.Status)
		}
		env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "d": NodeCancelled})
		job, err := e.river.JobGet(ctx, timer)
		if err != nil {
			t.Fatalf("JobGet: %v", err)
		}
		if job.State != rivertype.JobStateCancelled {
			t.Errorf("timer job is %s, want cancelled", job.State)
		}
		env.wantEvents(id, "execution.cancelled")
		env.clock.Advance(2 * time.Minute)
		if err := e.Run(ctx, id); err != nil {
			t.Fatalf("Run of the cancelled run: %v", err)
		}
		if ex := env.exec(id); ex.Status != store.ExecCancelled {
			t.Errorf("the timer resumed a cancelled run: %s", ex.Status)
		}
		env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "d": NodeCancelled})
	})

	t.Run("woken past the lifetime limit", func(t *testing.T) {
		short := env.engine(NewMemoryBus(), Config{Limits: Limits{MaxLifetime: 2 * time.Minute}})
		id := env.enqueue(short, flowID, g)
		if err := short.Run(ctx, id); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if ex := env.exec(id); ex.Status != store.ExecWaiting {
			t.Fatalf("status %s, want waiting", ex.Status)
		}
		env.clock.Advance(3 * time.Minute) // the timer was late: River was down
		if err := short.Run(ctx, id); err != nil {
			t.Fatalf("Run: %v", err)
		}
		ex := env.exec(id)
		var runErr map[string]any
		if ex.Error != nil {
			_ = json.Unmarshal(*ex.Error, &runErr)
		}
		if ex.Status != store.ExecFailed || runErr["code"] != "limit-exceeded" || runErr["node_id"] != "d" || ex.CompletedNodes != 2 || ex.FailedNodes != 1 {
			t.Errorf("run: status %s, error %s, completed_nodes %d, failed_nodes %d; want failed, limit-exceeded at d, 2, 1",
				ex.Status, jsonText(ex.Error), ex.CompletedNodes, ex.FailedNodes)
		}
		env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "d": NodeFailed})
		env.wantEvents(id, "execution.failed")
	})

	t.Run("a stale job does not end the wait early", func(t *testing.T) {
		// The run's first job is delivered again while the run waits (River
		// rescues a job whose completion was lost in a crash): only the timer
		// job may resume the run.
		id := env.enqueue(e, flowID, g)
		first := *env.exec(id).JobID
		if err := e.Run(ctx, id); err != nil {
			t.Fatalf("Run: %v", err)
		}
		w := &executeWorker{e: e}
		job := &river.Job[ExecuteArgs]{JobRow: &rivertype.JobRow{ID: first, Kind: ExecuteArgs{}.Kind()}, Args: ExecuteArgs{ExecutionID: id}}
		if err := w.Work(ctx, job); err != nil {
			t.Fatalf("Work of the stale job: %v", err)
		}
		if ex := env.exec(id); ex.Status != store.ExecWaiting {
			t.Fatalf("a stale job moved the waiting run to %s", ex.Status)
		}
		env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "d": NodeWaiting})
		env.clock.Advance(61 * time.Second)
		job.JobRow.ID = *env.exec(id).JobID
		if err := w.Work(ctx, job); err != nil {
			t.Fatalf("Work of the timer job: %v", err)
		}
		if ex := env.exec(id); ex.Status != store.ExecCompleted {
			t.Errorf("the timer job left the run %s", ex.Status)
		}
	})
	env.wantNoErrorLogs()
}

// TestRetryFromFailedNode: a retry copies the records of the nodes that
// completed upstream of the failure (reused_from) and runs only the failed
// node and what follows; a retry from the start copies nothing.
func TestRetryFromFailedNode(t *testing.T) {
	env := newDBEnv(t)
	srv := newGateServer(t, false, 0, 400) // the first call fails, the next ones answer 200
	g := linearGraph(t, srv.URL+"/api", map[string]any{"fail_on_status": true})
	flowID := env.flow(g)
	e := env.engine(NewMemoryBus(), Config{})
	ctx := context.Background()

	id := env.enqueue(e, flowID, g)
	if err := e.Run(ctx, id); err != nil {
		t.Fatalf("Run: %v", err)
	}
	orig := env.exec(id)
	var runErr map[string]any
	_ = json.Unmarshal(*orig.Error, &runErr)
	if orig.Status != store.ExecFailed || runErr["code"] != "http-status" || runErr["node_id"] != "h" {
		t.Fatalf("original run: status %s, error %s; want failed with http-status at h", orig.Status, jsonText(orig.Error))
	}
	origNodes := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeFailed})
	env.wantEvents(id, "execution.failed")

	retry := func(fromStart bool) store.Execution {
		t.Helper()
		var ex *store.Execution
		if err := env.db.Tx(ctx, func(tx *gorm.DB) error {
			var err error
			ex, err = e.Retry(ctx, tx, &orig, fromStart, nil, &env.user, nil)
			return err
		}); err != nil {
			t.Fatalf("Retry: %v", err)
		}
		got := env.exec(ex.ID)
		if got.Mode != "retry" || got.RetryOf == nil || *got.RetryOf != id || got.Status != store.ExecQueued ||
			got.TriggeredBy == nil || *got.TriggeredBy != env.user || got.JobID == nil ||
			string(got.InputData) != string(orig.InputData) || got.FlowRevision != orig.FlowRevision {
			t.Fatalf("retry run: %+v", got)
		}
		return got
	}

	t.Run("from the failed node", func(t *testing.T) {
		rx := retry(false)
		copies := env.wantNodeStatuses(rx.ID, map[string]string{"t": NodeCompleted, "a": NodeCompleted})
		for _, n := range []string{"t", "a"} {
			c, o := copies[n], origNodes[n]
			if c.ReusedFrom == nil || *c.ReusedFrom != o.ID || c.ID == o.ID || c.Attempt != o.Attempt ||
				jsonText(c.Output) != jsonText(o.Output) || !c.StartedAt.Equal(o.StartedAt) {
				t.Errorf("copy of %s: %+v, want a new row reusing %d with the same output", n, c, o.ID)
			}
		}
		if err := e.Run(ctx, rx.ID); err != nil {
			t.Fatalf("Run retry: %v", err)
		}
		got := env.exec(rx.ID)
		if got.Status != store.ExecCompleted || got.CompletedNodes != 5 {
			t.Fatalf("retry run: status %s, completed_nodes %d (%s)", got.Status, got.CompletedNodes, jsonText(got.Error))
		}
		after := env.wantNodeStatuses(rx.ID, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeCompleted, "b": NodeCompleted, "r": NodeCompleted})
		for _, n := range []string{"t", "a"} {
			if after[n].ID != copies[n].ID || jsonText(after[n].Output) != jsonText(copies[n].Output) {
				t.Errorf("reused node %s ran again", n)
			}
		}
		for _, n := range []string{"h", "b", "r"} {
			if after[n].ReusedFrom != nil || after[n].Attempt != 1 {
				t.Errorf("node %s: reused_from %v, attempt %d; want a fresh first attempt", n, after[n].ReusedFrom, after[n].Attempt)
			}
		}
		if n := srv.hits.Load(); n != 2 {
			t.Errorf("the server saw %d requests, want 2", n)
		}
		trace := env.wantEvents(rx.ID, "execution.completed")
		want := []string{"execution.created", "execution.started",
			"node.started h#1", "node.completed h", "node.started b#1", "node.completed b",
			"node.started r#1", "node.completed r", "execution.completed"}
		if !slices.Equal(trace, want) {
			t.Errorf("events:\n got  %q\n want %q", trace, want)
		}
	})

	t.Run("from the start", func(t *testing.T) {
		hits := srv.hits.Load()
		rx := retry(true)
		env.wantNodeStatuses(rx.ID, map[string]string{})
		if err := e.Run(ctx, rx.ID); err != nil {
			t.Fatalf("Run retry: %v", err)
		}
		if got := env.exec(rx.ID); got.Status != store.ExecCompleted {
			t.Fatalf("retry run: status %s (%s)", got.Status, jsonText(got.Error))
		}
		after := env.wantNodeStatuses(rx.ID, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeCompleted, "b": NodeCompleted, "r": NodeCompleted})
		for n, r := range after {
			if r.ReusedFrom != nil {
				t.Errorf("node %s reused %d in a retry from the start", n, *r.ReusedFrom)
			}
		}
		if n := srv.hits.Load() - hits; n != 1 {
			t.Errorf("the server saw %d more requests, want 1", n)
		}
	})
	env.wantNoErrorLogs()
}

// TestRiverEndToEnd: with the workers started, an enqueued run is claimed
// and completed by River, and a delay is resumed by its timer job.
func TestRiverEndToEnd(t *testing.T) {
	env := newDBEnv(t)
	e := env.startEngine(Config{})

	t.Run("simple run", func(t *testing.T) {
		g := dbGraph(t, []dnode{
			{id: "t", typ: "trigger-manual"},
			{id: "a", typ: "logic-transform", cfg: map[string]any{"mappings": map[string]any{"x": "1 + 2"}}},
			{id: "r", typ: "response-data", cfg: map[string]any{"status": 200, "body": map[string]any{"v": "{{a.x}}"}}},
		}, dbChain("t", "a", "r"))
		id := env.enqueue(e, env.flow(g), g)
		waitFor(t, 10*time.Second, "the run to complete", func() bool { return store.IsTerminal(env.exec(id).Status) })
		ex := env.exec(id)
		if ex.Status != store.ExecCompleted {
			t.Fatalf("status %s (%s)", ex.Status, jsonText(ex.Error))
		}
		out, _ := jsonValue(t, ex.OutputData).(map[string]any)
		if body, _ := out["body"].(map[string]any); body["v"] != float64(3) {
			t.Errorf("output_data %s, want body.v 3", jsonText(ex.OutputData))
		}
		env.wantEvents(id, "execution.completed")
	})

	t.Run("delay resumed by its timer job", func(t *testing.T) {
		g := dbGraph(t, []dnode{
			{id: "t", typ: "trigger-manual"},
			{id: "d", typ: "logic-delay", cfg: map[string]any{"duration_seconds": 1}},
			{id: "r", typ: "response-data", cfg: map[string]any{"status": 200, "body": map[string]any{"waited": "{{d.waited_ms}}"}}},
		}, dbChain("t", "d", "r"))
		id := env.enqueue(e, env.flow(g), g)
		// River's scheduler moves due jobs every 5 s.
		waitFor(t, 20*time.Second, "the delayed run to complete", func() bool { return store.IsTerminal(env.exec(id).Status) })
		ex := env.exec(id)
		if ex.Status != store.ExecCompleted {
			t.Fatalf("status %s (%s)", ex.Status, jsonText(ex.Error))
		}
		nodes := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "d": NodeCompleted, "r": NodeCompleted})
		if w, _ := jsonValue(t, nodes["d"].Output).(map[string]any)["waited_ms"].(float64); w < 1000 {
			t.Errorf("the delay waited %v ms, want at least 1000", w)
		}
	})
	env.wantNoErrorLogs()
}

// TestRiverWorkerStoppedMidRun is the durability test through River: a
// worker stopped during an HTTP call (its job context cancelled) leaves the
// job to be retried, and another engine's worker finishes the run from the
// last completed node.
func TestRiverWorkerStoppedMidRun(t *testing.T) {
	env := newDBEnv(t)
	srv := newGateServer(t, true, 30*time.Second)
	g := linearGraph(t, srv.URL+"/slow", nil)
	flowID := env.flow(g)
	e1 := env.engine(NewMemoryBus(), Config{Clock: func() time.Time { return time.Now().UTC() }})
	if err := e1.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	id := env.enqueue(e1, flowID, g)
	srv.waitArrived(t, 10*time.Second)
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := e1.Stop(sctx) // the grace runs out: the job's context is cancelled
	scancel()
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	ex := env.exec(id)
	if ex.Status != store.ExecRunning {
		t.Fatalf("after the worker stopped: status %s, want running", ex.Status)
	}
	before := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeRunning})
	job, err := e1.river.JobGet(context.Background(), *ex.JobID)
	if err != nil {
		t.Fatalf("JobGet: %v", err)
	}
	if job.State != rivertype.JobStateRetryable && job.State != rivertype.JobStateAvailable {
		t.Fatalf("the interrupted job is %s, want retryable", job.State)
	}

	srv.hold.Store(false)
	env.startEngine(Config{})
	// River retries after about a second; its scheduler makes the job available within 5 s more.
	waitFor(t, 20*time.Second, "the run to complete on the second engine", func() bool { return store.IsTerminal(env.exec(id).Status) })
	if ex := env.exec(id); ex.Status != store.ExecCompleted {
		t.Fatalf("status %s (%s)", ex.Status, jsonText(ex.Error))
	}
	after := env.wantNodeStatuses(id, map[string]string{"t": NodeCompleted, "a": NodeCompleted, "h": NodeCompleted, "b": NodeCompleted, "r": NodeCompleted})
	for _, n := range []string{"t", "a"} {
		if after[n].ID != before[n].ID || after[n].Attempt != 1 || !after[n].StartedAt.Equal(before[n].StartedAt) {
			t.Errorf("node %s ran again", n)
		}
	}
	if after["h"].Attempt != 2 {
		t.Errorf("http node attempt %d, want 2", after["h"].Attempt)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("the server saw %d requests, want 2", n)
	}
	env.wantEvents(id, "execution.completed")
	env.wantNoErrorLogs()
}

// TestRiverSchedulerTick: with SchedulerEnabled the periodic schedule.tick
// job runs on River's leader and starts a due schedule's run, which a worker
// completes.
func TestRiverSchedulerTick(t *testing.T) {
	env := newDBEnv(t)
	g := scheduleGraph(t, "*/5 * * * *", "UTC")
	flowID := env.publishedFlow(g)
	e := env.engine(NewMemoryBus(), Config{Clock: func() time.Time { return time.Now().UTC() }})
	env.arm(e, flowID, g)
	due := store.Now().Add(-10 * time.Second)
	if err := env.db.Model(&store.FlowSchedule{}).Where("flow_id = ?", flowID).Update("next_run_at", due).Error; err != nil {
		t.Fatalf("make the schedule due: %v", err)
	}
	env.startEngine(Config{SchedulerEnabled: true, TickInterval: time.Second})
	var runs []store.Execution
	waitFor(t, 20*time.Second, "the scheduled run to complete", func() bool {
		runs = env.scheduleRuns(flowID)
		return len(runs) == 1 && store.IsTerminal(runs[0].Status)
	})
	ex := runs[0]
	if ex.Status != store.ExecCompleted || ex.Mode != "schedule" || ex.ScheduledFor == nil || !ex.ScheduledFor.Equal(due) {
		t.Errorf("scheduled run: status %s, mode %s, scheduled_for %v; want completed, schedule, %s", ex.Status, ex.Mode, ex.ScheduledFor, due)
	}
	if fs := env.schedule(flowID); fs == nil || !fs.NextRunAt.After(time.Now()) {
		t.Errorf("next_run_at %v, want a future fire", fs)
	}
	env.wantNoErrorLogs()
}

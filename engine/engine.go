package engine

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wataomi/wataomi/store"
)

// Queue names (PRODUCT §6.5).
const (
	QueueExecutions  = "executions"
	QueueMaintenance = "maintenance"
)

// Config tunes an Engine; zero values mean the PRODUCT §8 defaults.
type Config struct {
	Limits                 Limits
	MaxRunTime             time.Duration // EXECUTION_MAX_RUN_SECONDS
	Concurrency            int           // WORKER_CONCURRENCY
	MaintenanceConcurrency int           // WORKER_CONCURRENCY_MAINTENANCE
	SchedulerEnabled       bool
	MisfireGrace           time.Duration // SCHEDULE_MISFIRE_GRACE_SECONDS
	EventRetention         time.Duration // EXECUTION_EVENTS_RETENTION_HOURS
	ExecutionRetention     time.Duration // EXECUTION_RETENTION_DAYS
	FetchPollInterval      time.Duration // 200 ms; 50 ms in tests
	TickInterval           time.Duration // schedule.tick period (30 s)
	// DefaultTimezone is the organisation's timezone for schedules without one,
	// read in the transaction that arms them.
	DefaultTimezone func(ctx context.Context, tx *gorm.DB) string
	// AuditRetention is AUDIT_RETENTION_DAYS; maintenance.purge applies it (0: never).
	AuditRetention time.Duration
	// Clock is the scheduler's and the executor's time source (tests inject one).
	Clock  func() time.Time
	Logger *slog.Logger
}

// Engine runs flows durably: River jobs over the store, the executor, the bus.
type Engine struct {
	db    *store.DB
	river *river.Client[*sql.Tx]
	exec  *Executor
	bus   Bus
	cfg   Config
	log   *slog.Logger

	mu      sync.Mutex
	running map[int64]context.CancelCauseFunc
}

// ExecuteArgs is the River job of one run (also the timer of a waiting run).
type ExecuteArgs struct {
	ExecutionID int64 `json:"execution_id"`
}

func (ExecuteArgs) Kind() string { return "execution.run" }

type executeWorker struct {
	river.WorkerDefaults[ExecuteArgs]
	e *Engine
}

func (w *executeWorker) Timeout(*river.Job[ExecuteArgs]) time.Duration {
	return w.e.cfg.MaxRunTime + 30*time.Second
}

func (w *executeWorker) Work(ctx context.Context, job *river.Job[ExecuteArgs]) error {
	err := w.e.run(ctx, job.Args.ExecutionID, job.ID)
	if err != nil && job.Attempt >= job.MaxAttempts {
		// River gives up on the job after this attempt: end the run instead of
		// leaving it running for ever.
		w.e.log.ErrorContext(ctx, "execution abandoned after its last attempt", "execution_id", job.Args.ExecutionID, "error", err.Error())
		return w.e.abandon(context.WithoutCancel(ctx), job.Args.ExecutionID, err)
	}
	return err
}

// abandon fails a run whose job cannot run any more (worker-lost).
func (e *Engine) abandon(ctx context.Context, id int64, cause error) error {
	var ex store.Execution
	if err := e.db.WithContext(ctx).First(&ex, id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		return err
	}
	if store.IsTerminal(ex.Status) {
		return nil
	}
	sink := &dbSink{e: e, ex: &ex}
	return sink.finishUnrun(ctx, Outcome{Status: store.ExecFailed,
		Error: nodeErr("worker-lost", "the run was interrupted on every attempt; the last error: %v", cause)})
}

// New builds an engine; Start starts its workers.
func New(db *store.DB, bus Bus, services *Services, cfg Config) (*Engine, error) {
	if cfg.MaxRunTime <= 0 {
		cfg.MaxRunTime = 300 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.MaintenanceConcurrency <= 0 {
		cfg.MaintenanceConcurrency = 1
	}
	if cfg.MisfireGrace <= 0 {
		cfg.MisfireGrace = 300 * time.Second
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = 24 * time.Hour
	}
	if cfg.ExecutionRetention <= 0 {
		cfg.ExecutionRetention = 30 * 24 * time.Hour
	}
	if cfg.FetchPollInterval <= 0 {
		cfg.FetchPollInterval = 200 * time.Millisecond
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = func() time.Time { return time.Now().UTC() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Engine{db: db, bus: bus, cfg: cfg, log: cfg.Logger, running: map[int64]context.CancelCauseFunc{}}
	e.exec = &Executor{Services: services, Limits: cfg.Limits, Now: func() time.Time { return cfg.Clock().UTC().Truncate(time.Millisecond) }}
	workers := river.NewWorkers()
	river.AddWorker(workers, &executeWorker{e: e})
	river.AddWorker(workers, &tickWorker{e: e})
	river.AddWorker(workers, &purgeWorker{e: e})
	rcfg := &river.Config{
		Queues: map[string]river.QueueConfig{
			QueueExecutions:  {MaxWorkers: cfg.Concurrency},
			QueueMaintenance: {MaxWorkers: cfg.MaintenanceConcurrency},
		},
		Workers:              workers,
		FetchPollInterval:    cfg.FetchPollInterval,
		FetchCooldown:        min(cfg.FetchPollInterval/4, 5*time.Millisecond),
		JobTimeout:           cfg.MaxRunTime + 30*time.Second,
		RescueStuckJobsAfter: 2 * (cfg.MaxRunTime + 30*time.Second),
		MaxAttempts:          3,
		Logger:               slog.New(discardHandler{}),
	}
	if cfg.SchedulerEnabled {
		rcfg.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.TickInterval),
				func() (river.JobArgs, *river.InsertOpts) { return TickArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
				func() (river.JobArgs, *river.InsertOpts) { return PurgeArgs{}, nil }, nil),
		}
	}
	rc, err := river.NewClient(db.RiverDriver(), rcfg)
	if err != nil {
		return nil, fmt.Errorf("engine: river: %w", err)
	}
	e.river = rc
	bus.OnCancel(e.signalled)
	return e, nil
}

type discardHandler struct{ slog.Handler }

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }

// Start starts the workers (and, on River's elected leader, the periodic jobs).
func (e *Engine) Start(ctx context.Context) error { return e.river.Start(ctx) }

// Stop waits for running jobs up to ctx's deadline, then cancels them; a
// cancelled run is resumed by another worker (or this one after a restart).
func (e *Engine) Stop(ctx context.Context) error {
	err := e.river.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		hard, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return e.river.StopAndCancel(hard)
	}
	return err
}

// Bus is the engine's event and signal bus.
func (e *Engine) Bus() Bus { return e.bus }

// Executor exposes the executor (benchmarks).
func (e *Engine) Executor() *Executor { return e.exec }

func (e *Engine) now() time.Time { return e.exec.Now() }

// signalled handles a cancel signal: the run's context is cancelled if it runs here.
func (e *Engine) signalled(execID int64) {
	e.mu.Lock()
	cancel := e.running[execID]
	e.mu.Unlock()
	if cancel != nil {
		cancel(ErrCancelRequested)
	}
}

// Enqueue inserts ex and its River job in tx (the caller's transaction), with
// the execution.created event. ex.Graph, FlowID, Mode, InputData must be set.
func (e *Engine) Enqueue(ctx context.Context, tx *gorm.DB, ex *store.Execution) error {
	_, err := e.enqueue(ctx, tx, ex, false)
	return err
}

// enqueue inserts the run; with ignoreDup a run that conflicts with an
// existing one (same flow and scheduled_for) is not inserted and ok is false.
func (e *Engine) enqueue(ctx context.Context, tx *gorm.DB, ex *store.Execution, ignoreDup bool) (ok bool, err error) {
	now := e.now()
	ex.Status = store.ExecQueued
	ex.QueuedAt, ex.UpdatedAt = now, now
	ex.EventSeq = 1
	q := tx.WithContext(ctx)
	if ignoreDup {
		q = q.Clauses(clause.OnConflict{DoNothing: true})
	}
	res := q.Create(ex)
	if res.Error != nil {
		return false, res.Error
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	return true, e.enqueueJob(ctx, tx, ex, now)
}

func (e *Engine) enqueueJob(ctx context.Context, tx *gorm.DB, ex *store.Execution, now time.Time) error {
	data, _ := json.Marshal(map[string]any{"execution_id": ex.ID, "seq": 1, "at": rfc3339(now), "flow_id": ex.FlowID, "mode": ex.Mode, "status": store.ExecQueued})
	if err := tx.WithContext(ctx).Create(&store.ExecutionEvent{ExecutionID: ex.ID, Seq: 1, Event: "execution.created", Data: data, CreatedAt: now}).Error; err != nil {
		return err
	}
	stx, ok := store.SQLTx(tx)
	if !ok {
		return errors.New("engine: Enqueue needs a transaction")
	}
	res, err := e.river.InsertTx(ctx, stx, ExecuteArgs{ExecutionID: ex.ID}, &river.InsertOpts{Queue: QueueExecutions})
	if err != nil {
		return fmt.Errorf("engine: enqueue: %w", err)
	}
	ex.JobID = &res.Job.ID
	return tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ?", ex.ID).Update("job_id", res.Job.ID).Error
}

// CancelResult says what Cancel did.
type CancelResult int

const (
	CancelDone      CancelResult = iota // the run was queued or waiting and is now cancelled
	CancelSignalled                     // the run is running; its worker stops it
	CancelTerminal                      // the run had already ended
)

// Cancel cancels a run (PRODUCT §5.3): queued and waiting runs in one
// transaction here, running ones through their worker.
func (e *Engine) Cancel(ctx context.Context, tx *gorm.DB, ex *store.Execution) (CancelResult, error) {
	now := e.now()
	switch ex.Status {
	case store.ExecQueued, store.ExecWaiting:
		res := tx.WithContext(ctx).Model(&store.Execution{}).
			Where("id = ? AND status IN ?", ex.ID, []string{store.ExecQueued, store.ExecWaiting}).
			Updates(map[string]any{"status": store.ExecCancelled, "completed_at": now, "cancel_requested_at": now, "updated_at": now,
				"duration_ms": durationSince(ex, now), "event_seq": gorm.Expr("event_seq + 1")})
		if res.Error != nil {
			return 0, res.Error
		}
		if res.RowsAffected == 1 {
			if err := tx.WithContext(ctx).Model(&store.NodeExecution{}).Where("execution_id = ? AND status = ?", ex.ID, NodeWaiting).
				Updates(map[string]any{"status": NodeCancelled, "completed_at": now}).Error; err != nil {
				return 0, err
			}
			if ex.JobID != nil {
				if stx, ok := store.SQLTx(tx); ok {
					if _, err := e.river.JobCancelTx(ctx, stx, *ex.JobID); err != nil && !errors.Is(err, river.ErrNotFound) {
						return 0, err
					}
				}
			}
			var seq int
			if err := tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ?", ex.ID).Select("event_seq").Scan(&seq).Error; err != nil {
				return 0, err
			}
			ev := terminalEvent(ex.ID, seq, now, store.ExecCancelled, ex.HasErrors, nil, nil, durationSince(ex, now))
			if err := tx.WithContext(ctx).Create(&ev.row).Error; err != nil {
				return 0, err
			}
			return CancelDone, nil
		}
		// It started meanwhile: signal it.
		fallthrough
	case store.ExecRunning:
		res := tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ? AND status NOT IN ?", ex.ID, store.TerminalStatuses).
			Updates(map[string]any{"cancel_requested_at": now, "updated_at": now})
		if res.Error != nil {
			return 0, res.Error
		}
		if res.RowsAffected == 0 {
			return CancelTerminal, nil
		}
		return CancelSignalled, nil
	}
	return CancelTerminal, nil
}

// AfterCancel publishes what Cancel decided once its transaction committed: the
// signal to the running worker, or the terminal event Cancel wrote.
func (e *Engine) AfterCancel(ctx context.Context, id int64, r CancelResult) {
	switch r {
	case CancelSignalled:
		e.bus.SignalCancel(ctx, id)
	case CancelDone:
		var row store.ExecutionEvent
		err := e.db.WithContext(ctx).Where("execution_id = ? AND event = ?", id, "execution."+store.ExecCancelled).
			Order("seq DESC").Take(&row).Error
		if err == nil {
			e.bus.Publish(ctx, id, []Event{{ExecutionID: id, Seq: row.Seq, Name: row.Event, Data: json.RawMessage(row.Data)}})
		}
	}
}

func durationSince(ex *store.Execution, now time.Time) int64 {
	start := ex.QueuedAt
	if ex.StartedAt != nil {
		start = *ex.StartedAt
	}
	return now.Sub(start).Milliseconds()
}

type builtEvent struct {
	row   store.ExecutionEvent
	event Event
}

func buildEvent(execID int64, seq int, name string, at time.Time, data map[string]any) builtEvent {
	if data == nil {
		data = map[string]any{}
	}
	data["execution_id"] = execID
	data["seq"] = seq
	data["at"] = rfc3339(at)
	b, err := json.Marshal(data)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"execution_id": execID, "seq": seq, "at": rfc3339(at), "error": "unencodable event data"})
	}
	return builtEvent{
		row:   store.ExecutionEvent{ExecutionID: execID, Seq: seq, Event: name, Data: b, CreatedAt: at},
		event: Event{ExecutionID: execID, Seq: seq, Name: name, Data: b},
	}
}

func terminalEvent(execID int64, seq int, at time.Time, status string, hasErrors bool, nerr *NodeError, output any, durationMS int64) builtEvent {
	data := map[string]any{"status": status, "completed_at": rfc3339(at), "duration_ms": durationMS, "has_errors": hasErrors}
	if nerr != nil {
		data["error"] = nerr
	}
	if output != nil {
		data["output_data"] = output
	}
	return buildEvent(execID, seq, "execution."+status, at, data)
}

// ---- the worker side ----

// Run executes (or resumes) one run; it is what the River job calls. An error
// makes River retry the job later (crash recovery).
func (e *Engine) Run(ctx context.Context, id int64) error { return e.run(ctx, id, 0) }

// run is Run for the River job jobID (0: any). A waiting run is resumed only
// by its timer job (job_id): another job of the run delivered meanwhile (River
// rescues a job whose completion was lost in a crash) would end the wait early.
func (e *Engine) run(ctx context.Context, id, jobID int64) error {
	// The run with its flow's name (the `flow` template root), in one read.
	var row struct {
		store.Execution `gorm:"embedded"`
		FlowName        string `gorm:"column:flow_name"`
	}
	err := e.db.WithContext(ctx).Model(&store.Execution{}).Select("executions.*, flows.name AS flow_name").
		Joins("JOIN flows ON flows.id = executions.flow_id").Where("executions.id = ?", id).Take(&row).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil // deleted meanwhile
		}
		return err
	}
	ex := row.Execution
	if store.IsTerminal(ex.Status) {
		return nil
	}
	if jobID != 0 && ex.Status == store.ExecWaiting && ex.JobID != nil && *ex.JobID != jobID {
		return nil
	}
	sink := &dbSink{e: e, ex: &ex}
	now := e.now()
	if ex.CancelRequestedAt != nil {
		return sink.finishUnrun(ctx, Outcome{Status: store.ExecCancelled})
	}
	if now.After(ex.QueuedAt.Add(e.exec.Limits.withDefaults().MaxLifetime)) {
		return sink.finishUnrun(ctx, Outcome{Status: store.ExecFailed, Error: nodeErr("limit-exceeded", "the run passed EXECUTION_MAX_LIFETIME_SECONDS")})
	}
	plan, err := Compile(ex.Graph)
	if err != nil {
		return sink.finish(ctx, Outcome{Status: store.ExecFailed, Error: nodeErr("invalid-graph", "%v", err)}, 0)
	}
	var rows []store.NodeExecution
	if err := e.db.WithContext(ctx).Where("execution_id = ?", id).Order("id").Find(&rows).Error; err != nil {
		return err
	}
	records := make([]*Record, 0, len(rows))
	for i := range rows {
		records = append(records, recordFromRow(&rows[i]))
	}
	sink.known = len(records)
	if err := sink.start(ctx, len(plan.Nodes)); err != nil {
		return err
	}
	var input map[string]any
	_ = decodeJSON(ex.InputData, &input)
	started := now
	if ex.StartedAt != nil {
		started = *ex.StartedAt
	}
	st := NewState(plan, RunInfo{ExecutionID: ex.ID, Mode: ex.Mode, FlowID: ex.FlowID, FlowName: row.FlowName,
		StartedAt: started, QueuedAt: ex.QueuedAt, TriggeredBy: ex.TriggeredBy, Input: input, ConversationID: ex.ConversationID}, records)

	remaining := e.cfg.MaxRunTime - time.Duration(ex.RunMS)*time.Millisecond
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runCtx, stopTimer := context.WithTimeoutCause(runCtx, max(remaining, time.Millisecond), ErrRunTimeLimit)
	defer stopTimer()
	e.mu.Lock()
	e.running[id] = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.running, id)
		e.mu.Unlock()
	}()
	begin := time.Now()
	out := e.exec.Execute(runCtx, st, sink)
	used := time.Since(begin).Milliseconds()
	switch out.Status {
	case "interrupted":
		// Shutdown: River retries the job; the next worker resumes here.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errors.New(out.Error.Message)
	case "waiting":
		return sink.wait(ctx, out, used)
	default:
		return sink.finish(context.WithoutCancel(ctx), out, used)
	}
}

func decodeJSON(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func recordFromRow(r *store.NodeExecution) *Record {
	rec := &Record{NodeID: r.NodeID, NodeType: r.NodeType, Label: r.NodeLabel, Status: r.Status, Attempt: r.Attempt,
		StartedAt: r.StartedAt, CompletedAt: r.CompletedAt, DurationMS: r.DurationMS, ReusedFrom: r.ReusedFrom, DBID: r.ID}
	if r.Handle != nil {
		rec.Handle = *r.Handle
	}
	if r.Output != nil {
		_ = decodeJSON(*r.Output, &rec.Output)
	}
	if r.Input != nil {
		_ = decodeJSON(*r.Input, &rec.Input)
	}
	if r.Error != nil {
		var ne NodeError
		if json.Unmarshal(*r.Error, &ne) == nil {
			rec.Error = &ne
		}
	}
	return rec
}

// dbSink persists what the executor produces, in batches: one transaction per
// checkpoint, holding every buffered record and event.
type dbSink struct {
	e     *Engine
	ex    *store.Execution
	known int
	// startUpd is the pending move to running, written with the next batch.
	startUpd map[string]any
	events   []builtEvent
	records  []*Record
}

func (s *dbSink) Event(name string, data map[string]any) {
	s.ex.EventSeq++
	s.events = append(s.events, buildEvent(s.ex.ID, s.ex.EventSeq, name, s.e.now(), data))
}

func (s *dbSink) Record(r *Record) {
	if !r.dirty {
		r.dirty = true
		s.records = append(s.records, r)
	}
}

func jsonPtr(v any) *store.JSON {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	j := store.JSON(b)
	return &j
}

func rowFromRecord(execID int64, r *Record) store.NodeExecution {
	row := store.NodeExecution{ID: r.DBID, ExecutionID: execID, NodeID: r.NodeID, NodeType: r.NodeType, NodeLabel: r.Label,
		Status: r.Status, Attempt: r.Attempt, Input: jsonPtr(r.Input), Output: jsonPtr(r.Output), ReusedFrom: r.ReusedFrom,
		StartedAt: r.StartedAt, CompletedAt: r.CompletedAt, DurationMS: r.DurationMS}
	if r.Handle != "" {
		h := r.Handle
		row.Handle = &h
	}
	if r.Error != nil {
		row.Error = jsonPtr(r.Error)
	}
	return row
}

// flush writes the buffered records and events in tx.
func (s *dbSink) flush(ctx context.Context, tx *gorm.DB) error {
	if s.startUpd != nil {
		res := tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ? AND status IN ?", s.ex.ID,
			[]string{store.ExecQueued, store.ExecWaiting}).Updates(s.startUpd)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errStateChanged
		}
	}
	var inserts []store.NodeExecution
	var insertRecs []*Record
	for _, r := range s.records {
		row := rowFromRecord(s.ex.ID, r)
		if r.DBID == 0 {
			inserts = append(inserts, row)
			insertRecs = append(insertRecs, r)
			continue
		}
		if err := tx.WithContext(ctx).Model(&store.NodeExecution{}).Where("id = ?", r.DBID).Updates(map[string]any{
			"status": row.Status, "attempt": row.Attempt, "handle": row.Handle, "input": row.Input, "output": row.Output,
			"error": row.Error, "started_at": row.StartedAt, "completed_at": row.CompletedAt, "duration_ms": row.DurationMS,
		}).Error; err != nil {
			return err
		}
	}
	if len(inserts) > 0 {
		if err := tx.WithContext(ctx).Create(&inserts).Error; err != nil {
			return err
		}
		for i, r := range insertRecs {
			r.DBID = inserts[i].ID
		}
	}
	if len(s.events) > 0 {
		rows := make([]store.ExecutionEvent, len(s.events))
		for i, ev := range s.events {
			rows[i] = ev.row
		}
		if err := tx.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
			return err
		}
	}
	return nil
}

func (s *dbSink) committed(ctx context.Context) {
	s.startUpd = nil
	for _, r := range s.records {
		r.dirty = false
	}
	s.records = s.records[:0]
	if len(s.events) > 0 {
		evs := make([]Event, len(s.events))
		for i, ev := range s.events {
			evs[i] = ev.event
		}
		s.events = s.events[:0]
		s.e.bus.Publish(ctx, s.ex.ID, evs)
	}
}

// Checkpoint persists everything buffered and reports a pending cancel request.
func (s *dbSink) Checkpoint(ctx context.Context) error {
	var cancelAt *time.Time
	err := s.e.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := s.flush(ctx, tx); err != nil {
			return err
		}
		var row struct{ CancelRequestedAt *time.Time }
		if err := tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ?", s.ex.ID).Select("cancel_requested_at").Scan(&row).Error; err != nil {
			return err
		}
		cancelAt = row.CancelRequestedAt
		return tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ?", s.ex.ID).
			Updates(map[string]any{"event_seq": s.ex.EventSeq, "updated_at": s.e.now()}).Error
	})
	if errors.Is(err, errStateChanged) {
		return ErrCancelRequested
	}
	if err != nil {
		return err
	}
	s.committed(ctx)
	if cancelAt != nil {
		return ErrCancelRequested
	}
	return nil
}

// start moves the run to running and announces it. The change is written
// with the first batch (checkpoint, wait or finish), so a run of pure nodes
// costs one transaction; a worker that dies before that batch leaves the run
// queued, and River's retry runs it again from the start.
func (s *dbSink) start(_ context.Context, total int) error {
	if s.ex.Status == store.ExecRunning {
		return nil // resumed after a crash
	}
	now := s.e.now()
	s.startUpd = map[string]any{"status": store.ExecRunning, "updated_at": now, "total_nodes": total}
	if s.ex.StartedAt == nil {
		s.startUpd["started_at"] = now
		s.ex.StartedAt = &now
		s.Event("execution.started", map[string]any{"started_at": rfc3339(now), "total_nodes": total})
	}
	s.ex.Status = store.ExecRunning
	return nil
}

// errStateChanged: the run left queued or waiting before its start was written (the API cancelled it).
var errStateChanged = errors.New("engine: the run changed state meanwhile")

// wait parks the run on a durable timer: a River job scheduled at the wake-up time.
func (s *dbSink) wait(ctx context.Context, out Outcome, usedMS int64) error {
	return s.commit(ctx, func(tx *gorm.DB) *gorm.DB {
		stx, _ := store.SQLTx(tx)
		res, err := s.e.river.InsertTx(ctx, stx, ExecuteArgs{ExecutionID: s.ex.ID}, &river.InsertOpts{Queue: QueueExecutions, ScheduledAt: out.WaitUntil})
		if err != nil {
			_ = tx.AddError(err)
			return tx
		}
		return tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ? AND status = ?", s.ex.ID, store.ExecRunning).
			Updates(map[string]any{"status": store.ExecWaiting, "event_seq": s.ex.EventSeq, "run_ms": gorm.Expr("run_ms + ?", usedMS),
				"job_id": res.Job.ID, "updated_at": s.e.now()})
	})
}

// commit writes the buffered batch and then update, a guarded UPDATE of the
// run, in one transaction. A guard that matches no row means the run ended or
// changed state meanwhile: nothing is written and the run is left as it is.
func (s *dbSink) commit(ctx context.Context, update func(tx *gorm.DB) *gorm.DB) error {
	err := s.e.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := s.flush(ctx, tx); err != nil {
			return err
		}
		r := update(tx)
		if r.Error != nil {
			return r.Error
		}
		if r.RowsAffected == 0 {
			return errTerminalMeanwhile
		}
		return nil
	})
	if errors.Is(err, errTerminalMeanwhile) || errors.Is(err, errStateChanged) {
		return nil
	}
	if err != nil {
		return err
	}
	s.committed(ctx)
	return nil
}

var errTerminalMeanwhile = errors.New("terminal meanwhile")

// finish writes the terminal state, guarded so nothing overwrites a terminal row.
func (s *dbSink) finish(ctx context.Context, out Outcome, usedMS int64) error {
	now := s.e.now()
	status := out.Status
	dur := durationSince(s.ex, now)
	var errJSON *store.JSON
	var evErr *NodeError
	if out.Error != nil && status == store.ExecFailed {
		evErr = out.Error
		errJSON = jsonPtr(map[string]any{"code": out.Error.Code, "message": out.Error.Message, "node_id": nilIfEmpty(out.ErrorNode)})
	}
	s.ex.EventSeq++
	ev := terminalEvent(s.ex.ID, s.ex.EventSeq, now, status, out.HasErrors, evErr, out.OutputData, dur)
	s.events = append(s.events, ev)
	return s.commit(ctx, func(tx *gorm.DB) *gorm.DB {
		return tx.WithContext(ctx).Model(&store.Execution{}).Where("id = ? AND status NOT IN ?", s.ex.ID, store.TerminalStatuses).
			Updates(map[string]any{"status": status, "completed_at": now, "duration_ms": dur, "has_errors": out.HasErrors,
				"error": errJSON, "output_data": jsonPtr(out.OutputData), "event_seq": s.ex.EventSeq, "updated_at": now,
				"run_ms": gorm.Expr("run_ms + ?", usedMS), "completed_nodes": out.Completed, "failed_nodes": out.Failed,
				"skipped_nodes": out.Skipped})
	})
}

// finishUnrun ends a run before it executes again (a cancel that no worker
// received, as when its worker died; the lifetime limit): the node records
// left running or waiting become cancelled (failed, for a failed run), and
// the counts and output come from the stored records.
func (s *dbSink) finishUnrun(ctx context.Context, out Outcome) error {
	var rows []store.NodeExecution
	if err := s.e.db.WithContext(ctx).Where("execution_id = ?", s.ex.ID).Order("id").Find(&rows).Error; err != nil {
		return err
	}
	now := s.e.now()
	for i := range rows {
		rec := recordFromRow(&rows[i])
		if rec.Status == NodeRunning || rec.Status == NodeWaiting {
			rec.Status, rec.Error = NodeCancelled, nodeErr("cancelled", "the run was cancelled")
			if out.Status == store.ExecFailed {
				rec.Status, rec.Error, out.ErrorNode = NodeFailed, out.Error, rec.NodeID
			}
			rec.CompletedAt = &now
			d := now.Sub(rec.StartedAt).Milliseconds()
			rec.DurationMS = &d
			s.Record(rec)
		}
		switch rec.Status {
		case NodeCompleted:
			out.Completed++
			if rec.NodeType == "response-data" {
				out.OutputData = rec.Output
			}
		case NodeFailed:
			out.Failed++
			out.HasErrors = out.HasErrors || rec.Handle != ""
		case NodeSkipped:
			out.Skipped++
		}
	}
	return s.finish(ctx, out, 0)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Retry creates a new run of orig on the same graph snapshot (PRODUCT §6.5):
// from "start", or from the node(s) that failed or were cancelled, with the
// records of every node that completed upstream of them copied (reused_from).
func (e *Engine) Retry(ctx context.Context, tx *gorm.DB, orig *store.Execution, fromStart bool, input []byte, by, tokenID *int64) (*store.Execution, error) {
	newInput := input != nil
	if !newInput {
		input = orig.InputData
	}
	origID := orig.ID
	ex := &store.Execution{FlowID: orig.FlowID, FlowVersion: orig.FlowVersion, FlowRevision: orig.FlowRevision, Graph: orig.Graph,
		Mode: "retry", TriggeredBy: by, APITokenID: tokenID, ConversationID: orig.ConversationID, RetryOf: &origID, InputData: input}
	if err := e.Enqueue(ctx, tx, ex); err != nil {
		return nil, err
	}
	if fromStart {
		return ex, nil
	}
	plan, err := Compile(orig.Graph)
	if err != nil {
		return nil, err
	}
	var rows []store.NodeExecution
	if err := tx.WithContext(ctx).Where("execution_id = ?", orig.ID).Order("id").Find(&rows).Error; err != nil {
		return nil, err
	}
	// Nodes downstream of a failed or cancelled node run again.
	tainted := map[int]bool{}
	status := map[string]*store.NodeExecution{}
	for i := range rows {
		status[rows[i].NodeID] = &rows[i]
	}
	for _, i := range plan.Order {
		n := plan.Nodes[i]
		r := status[n.ID]
		bad := r == nil || r.Status == NodeFailed || r.Status == NodeCancelled || r.Status == NodeRunning || r.Status == NodeWaiting
		for _, k := range n.In {
			if tainted[plan.Edges[k].Src] {
				bad = true
			}
		}
		// New input makes the trigger, and so everything, run again with it.
		tainted[i] = bad || (newInput && i == plan.Trigger)
	}
	var copies []store.NodeExecution
	for _, i := range plan.Order {
		r := status[plan.Nodes[i].ID]
		if tainted[i] || r == nil {
			continue
		}
		c := *r
		c.ID = 0
		c.ExecutionID = ex.ID
		from := r.ID
		c.ReusedFrom = &from
		copies = append(copies, c)
	}
	if len(copies) > 0 {
		if err := tx.WithContext(ctx).Create(&copies).Error; err != nil {
			return nil, err
		}
	}
	return ex, nil
}

// ValidateInput checks input_data against the trigger-manual's inputFields.
func ValidateInput(graph []byte, input map[string]any) []string {
	plan, err := Compile(graph)
	if err != nil || plan.Trigger < 0 {
		return nil
	}
	t := plan.Nodes[plan.Trigger]
	if t.Type != "trigger-manual" {
		return nil
	}
	_, issues := ApplyInputFields(t.Config, input)
	return issues
}

// Terminal is the statuses clients stop waiting at.
func Terminal(status string) bool { return store.IsTerminal(status) }

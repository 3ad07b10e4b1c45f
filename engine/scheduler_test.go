package engine

// Database-backed tests of the scheduler (PRODUCT §6.5 Scheduler: arming,
// ticks that never double, misfires, DST) and of the retention purge.
// Helpers are in dbhelpers_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/store"
)

// scheduleGraph is trigger-schedule t → transform a (reads the trigger) → response r.
func scheduleGraph(t *testing.T, spec, tz string) []byte {
	t.Helper()
	return dbGraph(t, []dnode{
		{id: "t", typ: "trigger-schedule", cfg: map[string]any{"schedule": spec, "timezone": tz}},
		{id: "a", typ: "logic-transform", cfg: map[string]any{"mappings": map[string]any{"when": "trigger.scheduled_for"}}},
		{id: "r", typ: "response-data", cfg: map[string]any{"status": 200, "body": map[string]any{"when": "{{a.when}}"}}},
	}, dbChain("t", "a", "r"))
}

// arm publishes-like: it arms flowID's schedule from graph, as the publish handler does.
func (env *dbEnv) arm(e *Engine, flowID int64, graph []byte) *time.Time {
	env.t.Helper()
	var next *time.Time
	if err := env.db.Tx(context.Background(), func(tx *gorm.DB) error {
		var err error
		next, err = e.Arm(context.Background(), tx, flowID, graph)
		return err
	}); err != nil {
		env.t.Fatalf("Arm: %v", err)
	}
	return next
}

// schedule returns flowID's armed schedule, nil when disarmed.
func (env *dbEnv) schedule(flowID int64) *store.FlowSchedule {
	env.t.Helper()
	var rows []store.FlowSchedule
	if err := env.db.Where("flow_id = ?", flowID).Find(&rows).Error; err != nil {
		env.t.Fatalf("load schedule: %v", err)
	}
	if len(rows) == 0 {
		return nil
	}
	return &rows[0]
}

// scheduleRuns lists flowID's runs, oldest first.
func (env *dbEnv) scheduleRuns(flowID int64) []store.Execution {
	env.t.Helper()
	var rows []store.Execution
	if err := env.db.Where("flow_id = ?", flowID).Order("id").Find(&rows).Error; err != nil {
		env.t.Fatalf("load runs: %v", err)
	}
	return rows
}

// tickAll calls Tick on every engine at once and returns the runs started in total.
func tickAll(t *testing.T, engines ...*Engine) int {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	counts := make([]int, len(engines))
	errs := make([]error, len(engines))
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			counts[i], errs[i] = e.Tick(context.Background())
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range engines {
		if errs[i] != nil {
			t.Fatalf("Tick of engine %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	return total
}

var schedBase = time.Date(2026, 11, 20, 10, 2, 30, 0, time.UTC) // a Friday; */5 is next due at 10:05

// TestSchedulerTicksOnce: two engines (two replicas) ticking at the same
// instant start exactly one run per due time.
func TestSchedulerTicksOnce(t *testing.T) {
	env := newDBEnv(t)
	env.clock.Set(schedBase)
	g := scheduleGraph(t, "*/5 * * * *", "UTC")
	flowID := env.publishedFlow(g)
	e1 := env.engine(NewMemoryBus(), Config{MisfireGrace: 300 * time.Second})
	e2 := env.engine(NewMemoryBus(), Config{MisfireGrace: 300 * time.Second})

	due := time.Date(2026, 11, 20, 10, 5, 0, 0, time.UTC)
	if next := env.arm(e1, flowID, g); next == nil || !next.Equal(due) {
		t.Fatalf("Arm returned %v, want %s", next, due)
	}
	if fs := env.schedule(flowID); fs == nil || !fs.NextRunAt.Equal(due) || fs.Schedule != "*/5 * * * *" || fs.Timezone != "UTC" {
		t.Fatalf("armed schedule %+v, want next_run_at %s", fs, due)
	}

	env.clock.Set(due.Add(-time.Second))
	if n := tickAll(t, e1, e2); n != 0 {
		t.Fatalf("a tick before the due time started %d runs", n)
	}

	for round := 1; round <= 2; round++ {
		env.clock.Set(due)
		if n := tickAll(t, e1, e2); n != 1 {
			t.Errorf("round %d: two concurrent ticks started %d runs, want 1", round, n)
		}
		runs := env.scheduleRuns(flowID)
		if len(runs) != round {
			t.Fatalf("round %d: %d runs stored, want %d", round, len(runs), round)
		}
		ex := runs[round-1]
		if ex.Mode != "schedule" || ex.ScheduledFor == nil || !ex.ScheduledFor.Equal(due) || ex.Status != store.ExecQueued ||
			ex.FlowVersion == nil || *ex.FlowVersion != 1 || ex.JobID == nil || ex.TriggeredBy != nil {
			t.Errorf("round %d: run %+v", round, ex)
		}
		var input map[string]any
		if err := json.Unmarshal(ex.InputData, &input); err != nil || input["scheduled_for"] != rfc3339(due) || input["fired_at"] != rfc3339(due) {
			t.Errorf("round %d: input_data %s", round, ex.InputData)
		}
		if fs := env.schedule(flowID); fs == nil || !fs.NextRunAt.Equal(due.Add(5*time.Minute)) {
			t.Errorf("round %d: next_run_at %v, want %s", round, fs, due.Add(5*time.Minute))
		}
		// A second tick at the same instant finds nothing due.
		if n := tickAll(t, e1, e2); n != 0 {
			t.Errorf("round %d: a repeated tick started %d runs", round, n)
		}
		due = due.Add(5 * time.Minute)
	}

	// The scheduled run runs the published graph with the schedule as the trigger's output.
	first := env.scheduleRuns(flowID)[0]
	if err := e1.Run(context.Background(), first.ID); err != nil {
		t.Fatalf("Run: %v", err)
	}
	ex := env.exec(first.ID)
	out, _ := jsonValue(t, ex.OutputData).(map[string]any)
	if body, _ := out["body"].(map[string]any); ex.Status != store.ExecCompleted || body["when"] != rfc3339(*first.ScheduledFor) {
		t.Errorf("scheduled run: status %s, output_data %s; want body.when %s", ex.Status, jsonText(ex.OutputData), rfc3339(*first.ScheduledFor))
	}
	env.wantNoErrorLogs()
}

// TestSchedulerMisfire: a tick less than the grace late runs once; a later
// one is skipped and logged; either way next_run_at moves to the next fire
// after now.
func TestSchedulerMisfire(t *testing.T) {
	due := time.Date(2026, 11, 20, 10, 5, 0, 0, time.UTC)
	cases := []struct {
		name     string
		late     time.Duration
		wantRuns int
		wantNext time.Time
	}{
		{"2 min late runs once", 2 * time.Minute, 1, due.Add(5 * time.Minute)},
		{"exactly the grace late runs once", 5 * time.Minute, 1, due.Add(10 * time.Minute)},
		{"10 min late is skipped", 10 * time.Minute, 0, due.Add(15 * time.Minute)},
		{"a day late is skipped once", 24*time.Hour + 7*time.Minute, 0, due.Add(24*time.Hour + 10*time.Minute)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newDBEnv(t)
			env.clock.Set(schedBase)
			g := scheduleGraph(t, "*/5 * * * *", "UTC")
			flowID := env.publishedFlow(g)
			e := env.engine(NewMemoryBus(), Config{MisfireGrace: 300 * time.Second})
			env.arm(e, flowID, g)

			env.clock.Set(due.Add(tc.late))
			if n := tickAll(t, e); n != tc.wantRuns {
				t.Errorf("Tick %s late started %d runs, want %d", tc.late, n, tc.wantRuns)
			}
			runs := env.scheduleRuns(flowID)
			if len(runs) != tc.wantRuns {
				t.Fatalf("%d runs stored, want %d", len(runs), tc.wantRuns)
			}
			if tc.wantRuns == 1 && !runs[0].ScheduledFor.Equal(due) {
				t.Errorf("scheduled_for %s, want the missed fire %s", runs[0].ScheduledFor, due)
			}
			if fs := env.schedule(flowID); fs == nil || !fs.NextRunAt.Equal(tc.wantNext) {
				t.Errorf("next_run_at %v, want %s", fs, tc.wantNext)
			}
			logged := strings.Contains(env.logs.String(), "schedule misfire skipped")
			if logged != (tc.wantRuns == 0) {
				t.Errorf("misfire logged: %v, want %v", logged, tc.wantRuns == 0)
			}
			if n := tickAll(t, e); n != 0 {
				t.Errorf("a second tick started %d runs", n)
			}
			env.wantNoErrorLogs()
		})
	}
}

// TestSchedulerDisarms: a schedule whose flow is no longer published (or is
// archived) is removed at its tick and starts nothing; Arm without a
// published schedule graph disarms.
func TestSchedulerDisarms(t *testing.T) {
	due := time.Date(2026, 11, 20, 10, 5, 0, 0, time.UTC)
	cases := []struct {
		name   string
		change map[string]any
	}{
		{"unpublished", map[string]any{"status": "draft", "published_version": nil}},
		{"archived", map[string]any{"archived_at": schedBase}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newDBEnv(t)
			env.clock.Set(schedBase)
			g := scheduleGraph(t, "*/5 * * * *", "UTC")
			flowID := env.publishedFlow(g)
			e := env.engine(NewMemoryBus(), Config{})
			env.arm(e, flowID, g)
			if err := env.db.Model(&store.Flow{}).Where("id = ?", flowID).Updates(tc.change).Error; err != nil {
				t.Fatalf("change flow: %v", err)
			}
			env.clock.Set(due)
			if n := tickAll(t, e); n != 0 {
				t.Errorf("Tick started %d runs of a flow that is %s", n, tc.name)
			}
			if fs := env.schedule(flowID); fs != nil {
				t.Errorf("schedule still armed: %+v", fs)
			}
			if runs := env.scheduleRuns(flowID); len(runs) != 0 {
				t.Errorf("%d runs stored", len(runs))
			}
			env.wantNoErrorLogs()
		})
	}

	t.Run("Arm without a schedule", func(t *testing.T) {
		env := newDBEnv(t)
		env.clock.Set(schedBase)
		g := scheduleGraph(t, "*/5 * * * *", "UTC")
		manualG := dbGraph(t, []dnode{{id: "t", typ: "trigger-manual"}, {id: "r", typ: "response-data", cfg: map[string]any{"status": 200}}}, dbChain("t", "r"))
		flowID := env.publishedFlow(g)
		e := env.engine(NewMemoryBus(), Config{})
		for _, tc := range []struct {
			name  string
			graph []byte
		}{{"unpublished (nil graph)", nil}, {"no trigger-schedule", manualG}} {
			env.arm(e, flowID, g)
			if env.schedule(flowID) == nil {
				t.Fatal("Arm did not arm")
			}
			if next := env.arm(e, flowID, tc.graph); next != nil {
				t.Errorf("%s: Arm returned next %s", tc.name, next)
			}
			if fs := env.schedule(flowID); fs != nil {
				t.Errorf("%s: schedule still armed: %+v", tc.name, fs)
			}
		}
	})
}

// TestScheduleDST: a wall-clock time that does not exist is skipped; one
// that happens twice fires once (PRODUCT §6.5 Scheduler).
func TestScheduleDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("tzdata: %v", err)
	}
	at := func(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, ny) }
	cases := []struct {
		name string
		spec string
		from time.Time
		want []string // successive fires, RFC 3339 in New York time
	}{
		{"spring forward: 02:30 on 03-08 does not exist", "30 2 * * *", at(2026, 3, 7, 12, 0),
			[]string{"2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"}},
		{"spring forward from just before the gap", "30 2 * * *", at(2026, 3, 8, 1, 59),
			[]string{"2026-03-09T02:30:00-04:00"}},
		{"fall back: 01:30 on 11-01 fires once", "30 1 * * *", at(2026, 10, 31, 12, 0),
			[]string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"}},
		{"fall back from between the two 01:30s", "30 1 * * *", time.Date(2026, 11, 1, 5, 45, 0, 0, time.UTC),
			[]string{"2026-11-02T01:30:00-05:00"}},
		{"hourly across fall back: 01:00 once", "0 * * * *", at(2026, 11, 1, 0, 30),
			[]string{"2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"}},
		{"hourly across spring forward", "0 * * * *", at(2026, 3, 8, 0, 30),
			[]string{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}},
		{"daily at 09:00 keeps the wall clock across the change", "0 9 * * *", at(2026, 3, 7, 12, 0),
			[]string{"2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(tc.spec, "America/New_York")
			if err != nil {
				t.Fatalf("ParseSchedule: %v", err)
			}
			var got []string
			prev := tc.from
			for range tc.want {
				next := s.Next(prev)
				if next.Location() != time.UTC {
					t.Errorf("Next returned %s in %s, want UTC", next, next.Location())
				}
				if !next.After(prev) {
					t.Fatalf("Next(%s) = %s is not after it", prev, next)
				}
				got = append(got, next.In(ny).Format(time.RFC3339))
				prev = next
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("fires from %s:\n got  %v\n want %v", tc.from.In(ny).Format(time.RFC3339), got, tc.want)
			}
		})
	}

	t.Run("bad schedules", func(t *testing.T) {
		for _, c := range []struct{ spec, tz string }{
			{"@every 5m", "UTC"}, {"61 * * * *", "UTC"}, {"* * * *", "UTC"}, {"0 9 * * *", "Mars/Olympus"},
		} {
			if _, err := ParseSchedule(c.spec, c.tz); err == nil {
				t.Errorf("ParseSchedule(%q, %q) accepted", c.spec, c.tz)
			}
		}
	})

	t.Run("through Tick: the ambiguous 01:30 runs once", func(t *testing.T) {
		env := newDBEnv(t)
		env.clock.Set(time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC)) // 00:00 EDT
		g := scheduleGraph(t, "30 1 * * *", "America/New_York")
		flowID := env.publishedFlow(g)
		e := env.engine(NewMemoryBus(), Config{})
		first := time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC) // 01:30 EDT
		if next := env.arm(e, flowID, g); next == nil || !next.Equal(first) {
			t.Fatalf("Arm: next %v, want %s", next, first)
		}
		env.clock.Set(first)
		if n := tickAll(t, e); n != 1 {
			t.Fatalf("tick at 01:30 EDT started %d runs", n)
		}
		second := time.Date(2026, 11, 2, 6, 30, 0, 0, time.UTC) // 01:30 EST the next day
		if fs := env.schedule(flowID); fs == nil || !fs.NextRunAt.Equal(second) {
			t.Errorf("next_run_at %v, want %s", fs, second)
		}
		env.clock.Set(time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC)) // 01:30 EST, the repeated hour
		if n := tickAll(t, e); n != 0 {
			t.Errorf("tick at the repeated 01:30 started %d runs", n)
		}
		env.wantNoErrorLogs()
	})
}

// TestPurge: events past EventRetention and ended runs past
// ExecutionRetention are deleted (their node records and events with them);
// newer ones and active runs are kept.
func TestPurge(t *testing.T) {
	env := newDBEnv(t)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	env.clock.Set(now)
	g := dbGraph(t, []dnode{{id: "t", typ: "trigger-manual"}, {id: "r", typ: "response-data", cfg: map[string]any{"status": 200}}}, dbChain("t", "r"))
	flowID := env.flow(g)
	e := env.engine(NewMemoryBus(), Config{EventRetention: 24 * time.Hour, ExecutionRetention: 30 * 24 * time.Hour})
	day := 24 * time.Hour

	insert := func(status string, ended time.Duration) int64 {
		t.Helper()
		queued := now.Add(-ended - time.Minute)
		ex := store.Execution{FlowID: flowID, FlowRevision: 1, Graph: g, Mode: "manual", Status: status, InputData: []byte("{}"),
			QueuedAt: queued, UpdatedAt: queued}
		if store.IsTerminal(status) {
			c := now.Add(-ended)
			ex.CompletedAt = &c
			ex.UpdatedAt = c
		}
		if err := env.db.Create(&ex).Error; err != nil {
			t.Fatalf("insert run: %v", err)
		}
		started := queued
		done := started.Add(time.Second)
		rec := store.NodeExecution{ExecutionID: ex.ID, NodeID: "t", NodeType: "trigger-manual", Status: NodeCompleted, Attempt: 1,
			StartedAt: started, CompletedAt: &done}
		if err := env.db.Create(&rec).Error; err != nil {
			t.Fatalf("insert node record: %v", err)
		}
		return ex.ID
	}
	addEvents := func(id int64, from, n int, age time.Duration) {
		t.Helper()
		rows := make([]store.ExecutionEvent, n)
		for i := range rows {
			rows[i] = store.ExecutionEvent{ExecutionID: id, Seq: from + i, Event: "node.started", Data: []byte(`{}`), CreatedAt: now.Add(-age)}
		}
		if err := env.db.CreateInBatches(rows, 200).Error; err != nil {
			t.Fatalf("insert events: %v", err)
		}
	}

	// Runs past the retention (more than one batch of 500).
	var old []int64
	for i := 0; i < 520; i++ {
		status := []string{store.ExecCompleted, store.ExecFailed, store.ExecCancelled}[i%3]
		old = append(old, insert(status, 31*day))
	}
	addEvents(old[0], 1, 3, 31*day)
	recent := insert(store.ExecCompleted, 29*day)
	addEvents(recent, 1, 700, 25*time.Hour) // past the event retention: deleted (two batches)
	addEvents(recent, 701, 5, 23*time.Hour) // within it: kept
	active := map[string]int64{}
	for _, status := range []string{store.ExecQueued, store.ExecRunning, store.ExecWaiting} {
		id := insert(status, 60*day)
		addEvents(id, 1, 2, 60*day)
		addEvents(id, 3, 1, time.Hour)
		active[status] = id
	}
	// A stray completed_at does not make an active run purgeable: its status decides.
	if err := env.db.Model(&store.Execution{}).Where("id = ?", active[store.ExecRunning]).Update("completed_at", now.Add(-60*day)).Error; err != nil {
		t.Fatalf("set completed_at: %v", err)
	}

	n, err := e.Purge(context.Background())
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	// 3 + 700 + 3×2 events, and 520 runs.
	if want := int64(3 + 700 + 6 + 520); n != want {
		t.Errorf("Purge deleted %d rows, want %d", n, want)
	}
	if c := env.count(&store.Execution{}, "id IN ?", old); c != 0 {
		t.Errorf("%d ended runs past the retention are left", c)
	}
	if c := env.count(&store.NodeExecution{}, "execution_id IN ?", old); c != 0 {
		t.Errorf("%d node records of purged runs are left", c)
	}
	if c := env.count(&store.ExecutionEvent{}, "execution_id = ?", old[0]); c != 0 {
		t.Errorf("%d events of a purged run are left", c)
	}
	if ex := env.exec(recent); ex.Status != store.ExecCompleted {
		t.Errorf("recent run: %s", ex.Status)
	}
	if c := env.count(&store.ExecutionEvent{}, "execution_id = ?", recent); c != 5 {
		t.Errorf("recent run keeps %d events, want the 5 within the event retention", c)
	}
	for status, id := range active {
		if c := env.count(&store.Execution{}, "id = ?", id); c != 1 {
			t.Errorf("the %s run was deleted", status)
		}
		if c := env.count(&store.NodeExecution{}, "execution_id = ?", id); c != 1 {
			t.Errorf("the %s run lost its node record", status)
		}
		if c := env.count(&store.ExecutionEvent{}, "execution_id = ?", id); c != 1 {
			t.Errorf("the %s run keeps %d events, want the 1 within the event retention", status, c)
		}
	}
	if n, err := e.Purge(context.Background()); err != nil || n != 0 {
		t.Errorf("a second Purge deleted %d rows (%v), want 0", n, err)
	}
}

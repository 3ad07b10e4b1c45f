package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/store"
)

// Schedule is a parsed trigger-schedule.
type Schedule struct {
	sched cron.Schedule
	loc   *time.Location
}

// ParseSchedule parses a trigger-schedule in an IANA zone ("" is UTC) with the
// same rules as graph validation (flow.ParseSchedule).
func ParseSchedule(spec, tz string) (*Schedule, error) {
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, err
	}
	s, err := flow.ParseSchedule(spec, loc)
	if err != nil {
		return nil, err
	}
	return &Schedule{sched: s, loc: loc}, nil
}

// Next is the first fire time strictly after t. A wall-clock time that does
// not exist (DST gap) is skipped; one that happens twice (DST overlap) fires
// once, at its first occurrence.
func (s *Schedule) Next(t time.Time) time.Time {
	n := s.sched.Next(t.In(s.loc))
	// The second occurrence of an ambiguous time has the same wall clock as
	// a fire one hour (the DST shift) earlier: skip it.
	for i := 0; i < 3 && !n.IsZero(); i++ {
		prev := n.Add(-time.Hour)
		if wall(prev) != wall(n) || s.sched.Next(prev.Add(-time.Second)).Equal(n) {
			break
		}
		n = s.sched.Next(n)
	}
	return n.UTC()
}

func wall(t time.Time) string { return t.Format("2006-01-02T15:04") }

// scheduleOf finds the trigger-schedule of a graph.
func scheduleOf(graph []byte) (spec, tz string, ok bool) {
	g, err := flow.Parse(graph)
	if err != nil {
		return "", "", false
	}
	for _, n := range g.Nodes {
		if flow.NodeTypeOf(n) == "trigger-schedule" {
			cfg := flow.NodeConfig(n)
			spec, _ = cfg["schedule"].(string)
			tz, _ = cfg["timezone"].(string)
			return spec, tz, spec != ""
		}
	}
	return "", "", false
}

// Arm keeps flow_schedules right for a flow after publish, unpublish, archive
// or restore: published graph → armed at its next fire time; otherwise disarmed.
// It runs in the caller's transaction. It returns the next run time, if armed.
func (e *Engine) Arm(ctx context.Context, tx *gorm.DB, flowID int64, publishedGraph []byte) (*time.Time, error) {
	spec, tz, ok := scheduleOf(publishedGraph)
	if publishedGraph == nil || !ok {
		return nil, tx.WithContext(ctx).Where("flow_id = ?", flowID).Delete(&store.FlowSchedule{}).Error
	}
	if tz == "" && e.cfg.DefaultTimezone != nil {
		tz = e.cfg.DefaultTimezone(ctx, tx)
	}
	s, err := ParseSchedule(spec, tz)
	if err != nil {
		return nil, err
	}
	now := e.now()
	next := s.Next(now)
	row := store.FlowSchedule{FlowID: flowID, Schedule: spec, Timezone: s.loc.String(), NextRunAt: next, UpdatedAt: now}
	err = tx.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "flow_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"schedule", "timezone", "next_run_at", "updated_at"}),
	}).Create(&row).Error
	return &next, err
}

// TickArgs is the periodic scheduler job.
type TickArgs struct{}

func (TickArgs) Kind() string { return "schedule.tick" }

func (TickArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueMaintenance} }

type tickWorker struct {
	river.WorkerDefaults[TickArgs]
	e *Engine
}

func (w *tickWorker) Work(ctx context.Context, _ *river.Job[TickArgs]) error {
	_, err := w.e.Tick(ctx)
	return err
}

// Tick enqueues the due runs of every armed schedule (PRODUCT §6.5): a run
// less than the misfire grace late runs once; an older one is skipped. The
// unique (flow_id, scheduled_for) index makes concurrent ticks harmless.
func (e *Engine) Tick(ctx context.Context) (int, error) {
	now := e.now()
	var due []store.FlowSchedule
	if err := e.db.WithContext(ctx).Where("next_run_at <= ?", now).Order("next_run_at").Limit(500).Find(&due).Error; err != nil {
		return 0, err
	}
	started := 0
	for _, fs := range due {
		n, err := e.fire(ctx, fs, now)
		if err != nil {
			e.log.ErrorContext(ctx, "schedule tick failed", "flow_id", fs.FlowID, "error", err)
			continue
		}
		started += n
	}
	return started, nil
}

func (e *Engine) fire(ctx context.Context, fs store.FlowSchedule, now time.Time) (int, error) {
	s, err := ParseSchedule(fs.Schedule, fs.Timezone)
	if err != nil {
		return 0, err
	}
	started := 0
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		next := s.Next(now)
		res := tx.WithContext(ctx).Model(&store.FlowSchedule{}).Where("flow_id = ? AND next_run_at = ?", fs.FlowID, fs.NextRunAt).
			Updates(map[string]any{"next_run_at": next, "updated_at": now})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error // another process took this tick
		}
		late := now.Sub(fs.NextRunAt)
		if late > e.cfg.MisfireGrace {
			e.log.WarnContext(ctx, "schedule misfire skipped", "flow_id", fs.FlowID, "scheduled_for", fs.NextRunAt, "late", late.String())
			return nil
		}
		var f store.Flow
		if err := tx.WithContext(ctx).First(&f, fs.FlowID).Error; err != nil {
			return err
		}
		if f.Status != "published" || f.PublishedVersion == nil || f.ArchivedAt != nil {
			return tx.WithContext(ctx).Where("flow_id = ?", fs.FlowID).Delete(&store.FlowSchedule{}).Error
		}
		v, err := store.GetFlowVersion(ctx, tx, f.ID, *f.PublishedVersion)
		if err != nil {
			return err
		}
		scheduled := fs.NextRunAt
		input, _ := json.Marshal(map[string]any{"scheduled_for": rfc3339(scheduled), "fired_at": rfc3339(now)})
		ex := &store.Execution{FlowID: f.ID, FlowVersion: f.PublishedVersion, FlowRevision: f.Revision, Graph: v.Data,
			Mode: "schedule", InputData: input, ScheduledFor: &scheduled, TriggeredBy: nil}
		ok, err := e.enqueue(ctx, tx, ex, true)
		if ok {
			started++
		}
		return err
	})
	return started, err
}

// PurgeArgs is the hourly maintenance job (execution and event retention).
type PurgeArgs struct{}

func (PurgeArgs) Kind() string { return "maintenance.purge" }

func (PurgeArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueMaintenance} }

type purgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	e *Engine
}

func (w *purgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	_, err := w.e.Purge(ctx)
	return err
}

// Purge deletes events past EXECUTION_EVENTS_RETENTION_HOURS and terminal runs
// past EXECUTION_RETENTION_DAYS, in batches of at most 500 rows.
func (e *Engine) Purge(ctx context.Context) (int64, error) {
	now := e.now()
	var total int64
	for _, step := range []struct {
		model any
		where string
		arg   any
	}{
		{&store.ExecutionEvent{}, "created_at < ?", now.Add(-e.cfg.EventRetention)},
	} {
		for {
			res := e.db.WithContext(ctx).Where("(execution_id, seq) IN (?)",
				e.db.Model(step.model).Select("execution_id, seq").Where(step.where, step.arg).Limit(500)).Delete(step.model)
			if res.Error != nil {
				return total, res.Error
			}
			total += res.RowsAffected
			if res.RowsAffected < 500 {
				break
			}
		}
	}
	if e.cfg.AuditRetention > 0 {
		n, err := store.PurgeAuditBefore(ctx, e.db.DB, now.Add(-e.cfg.AuditRetention))
		total += n
		if err != nil {
			return total, err
		}
	}
	cutoff := now.Add(-e.cfg.ExecutionRetention)
	for {
		res := e.db.WithContext(ctx).Where("id IN (?)", e.db.Model(&store.Execution{}).Select("id").
			Where("status IN ? AND completed_at < ?", store.TerminalStatuses, cutoff).Limit(500)).Delete(&store.Execution{})
		if res.Error != nil {
			return total, res.Error
		}
		total += res.RowsAffected
		if res.RowsAffected < 500 {
			break
		}
	}
	return total, nil
}

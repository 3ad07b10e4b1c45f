package store

import (
	"context"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// RunFigures count the runs of one range by status (PRODUCT §5.16). DurationSum and DurationN are
// the summed duration and the number of completed runs that have one, for the mean.
type RunFigures struct {
	Total, Completed, Failed, Cancelled, Active int64
	DurationSum, DurationN                      int64
}

// Add accumulates o into f.
func (f *RunFigures) Add(o RunFigures) {
	f.Total += o.Total
	f.Completed += o.Completed
	f.Failed += o.Failed
	f.Cancelled += o.Cancelled
	f.Active += o.Active
	f.DurationSum += o.DurationSum
	f.DurationN += o.DurationN
}

// visibleRuns is the runs of the flows the viewer can read (PRODUCT §4.3: executions follow the
// flow), of one flow when flowID is not 0.
func visibleRuns(ctx context.Context, db *gorm.DB, v Viewer, flowID int64) *gorm.DB {
	q := db.WithContext(ctx).Model(&Execution{}).
		Where("executions.flow_id IN (?)", db.Model(&Flow{}).Select("flows.id").Scopes(ScopeVisible("flows", v)))
	if flowID != 0 {
		q = q.Where("executions.flow_id = ?", flowID)
	}
	return q
}

// CountRunsByBucket counts, in one query, the visible runs queued in each half-open range
// [bounds[i], bounds[i+1]); it returns len(bounds)-1 figures. The bounds are UTC instants computed by
// the caller (local midnights of a time zone), so no database date function is involved and both
// dialects bucket alike.
func CountRunsByBucket(ctx context.Context, db *gorm.DB, v Viewer, flowID int64, bounds []time.Time) ([]RunFigures, error) {
	if len(bounds) < 2 {
		return nil, nil
	}
	n := len(bounds) - 1
	var sb strings.Builder
	args := make([]any, 0, n)
	if n == 1 {
		sb.WriteString("0")
	} else {
		sb.WriteString("CASE")
		for i := 1; i < n; i++ {
			sb.WriteString(" WHEN executions.queued_at < ? THEN ")
			sb.WriteString(strconv.Itoa(i - 1))
			args = append(args, bounds[i].UTC())
		}
		sb.WriteString(" ELSE " + strconv.Itoa(n-1) + " END")
	}
	sb.WriteString(" AS b, " +
		"COUNT(*) AS total, " +
		"SUM(CASE WHEN executions.status = 'completed' THEN 1 ELSE 0 END) AS completed, " +
		"SUM(CASE WHEN executions.status = 'failed' THEN 1 ELSE 0 END) AS failed, " +
		"SUM(CASE WHEN executions.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled, " +
		"SUM(CASE WHEN executions.status IN ('queued', 'running', 'waiting') THEN 1 ELSE 0 END) AS active, " +
		"CAST(SUM(CASE WHEN executions.status = 'completed' AND executions.duration_ms IS NOT NULL " +
		"THEN executions.duration_ms ELSE 0 END) AS BIGINT) AS duration_sum, " +
		"SUM(CASE WHEN executions.status = 'completed' AND executions.duration_ms IS NOT NULL THEN 1 ELSE 0 END) AS duration_n")
	var rows []struct {
		B                                           int
		Total, Completed, Failed, Cancelled, Active int64
		DurationSum, DurationN                      int64
	}
	err := visibleRuns(ctx, db, v, flowID).Select(sb.String(), args...).
		Where("executions.queued_at >= ? AND executions.queued_at < ?", bounds[0].UTC(), bounds[n].UTC()).
		Group("b").Scan(&rows).Error
	if err != nil {
		return nil, Classify(err)
	}
	out := make([]RunFigures, n)
	for _, r := range rows {
		if r.B < 0 || r.B >= n {
			continue
		}
		out[r.B] = RunFigures{Total: r.Total, Completed: r.Completed, Failed: r.Failed, Cancelled: r.Cancelled,
			Active: r.Active, DurationSum: r.DurationSum, DurationN: r.DurationN}
	}
	return out, nil
}

// LastRunAt is the newest queued_at among the visible runs of a flow queued in [from, to), nil when
// there is none.
func LastRunAt(ctx context.Context, db *gorm.DB, v Viewer, flowID int64, from, to time.Time) (*time.Time, error) {
	var rows []struct{ QueuedAt time.Time }
	err := visibleRuns(ctx, db, v, flowID).Select("executions.queued_at AS queued_at").
		Where("executions.queued_at >= ? AND executions.queued_at < ?", from.UTC(), to.UTC()).
		Order("executions.queued_at DESC, executions.id DESC").Limit(1).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return nil, Classify(err)
	}
	t := rows[0].QueuedAt.UTC()
	return &t, nil
}

// ExportRun is one row of the executions export: the run's columns without its graph, input or
// output, and the flow's name.
type ExportRun struct {
	ID             int64
	FlowID         int64
	FlowName       string
	FlowVersion    *int
	FlowRevision   int
	Mode           string
	Status         string
	TriggeredBy    *int64
	APITokenID     *int64 `gorm:"column:api_token_id"`
	ConversationID *int64
	RetryOf        *int64
	HasErrors      bool
	Error          *JSON
	QueuedAt       time.Time
	StartedAt      *time.Time
	CompletedAt    *time.Time
	DurationMS     *int64 `gorm:"column:duration_ms"`
	TotalNodes     int
	CompletedNodes int
	FailedNodes    int
	SkippedNodes   int
}

// ExportRunsAfter reads the next keyset batch of the executions export: the visible runs queued in
// [from, to) with an id above afterID, by id, at most limit rows. The rows are read in full before it
// returns, so no cursor stays open while the caller writes them to the network.
func ExportRunsAfter(ctx context.Context, db *gorm.DB, v Viewer, from, to time.Time, afterID int64, limit int) ([]ExportRun, error) {
	rows := []ExportRun{}
	err := db.WithContext(ctx).Model(&Execution{}).
		Select("executions.id, executions.flow_id, flows.name AS flow_name, executions.flow_version, executions.flow_revision, "+
			"executions.mode, executions.status, executions.triggered_by, executions.api_token_id, executions.conversation_id, "+
			"executions.retry_of, executions.has_errors, executions.error, executions.queued_at, executions.started_at, "+
			"executions.completed_at, executions.duration_ms, executions.total_nodes, executions.completed_nodes, "+
			"executions.failed_nodes, executions.skipped_nodes").
		Joins("JOIN flows ON flows.id = executions.flow_id").
		Scopes(ScopeVisible("flows", v)).
		Where("executions.queued_at >= ? AND executions.queued_at < ? AND executions.id > ?", from.UTC(), to.UTC(), afterID).
		Order("executions.id").Limit(limit).Scan(&rows).Error
	return rows, Classify(err)
}

package store

import "time"

// Execution statuses (PRODUCT §6.5). The last three are terminal: a row in one
// of them is never written again (every update is guarded).
const (
	ExecQueued    = "queued"
	ExecRunning   = "running"
	ExecWaiting   = "waiting"
	ExecCompleted = "completed"
	ExecFailed    = "failed"
	ExecCancelled = "cancelled"
)

// TerminalStatuses are the final execution statuses.
var TerminalStatuses = []string{ExecCompleted, ExecFailed, ExecCancelled}

// IsTerminal reports whether an execution status is final.
func IsTerminal(status string) bool {
	return status == ExecCompleted || status == ExecFailed || status == ExecCancelled
}

// Execution is one run of a flow (PRODUCT §5.3). Graph is the snapshot that
// runs, so a retry or a resumed run uses exactly the same graph.
type Execution struct {
	ID                int64      `gorm:"column:id;primaryKey"`
	FlowID            int64      `gorm:"column:flow_id;not null"`
	FlowVersion       *int       `gorm:"column:flow_version"`
	FlowRevision      int        `gorm:"column:flow_revision;not null"`
	Graph             JSON       `gorm:"column:graph;not null"`
	Mode              string     `gorm:"column:mode;not null"`
	Status            string     `gorm:"column:status;not null;default:queued"`
	TriggeredBy       *int64     `gorm:"column:triggered_by"`
	APITokenID        *int64     `gorm:"column:api_token_id"`
	ConversationID    *int64     `gorm:"column:conversation_id"`
	RetryOf           *int64     `gorm:"column:retry_of"`
	InputData         JSON       `gorm:"column:input_data;not null"`
	OutputData        *JSON      `gorm:"column:output_data"`
	Error             *JSON      `gorm:"column:error"`
	HasErrors         bool       `gorm:"column:has_errors;not null"`
	QueuedAt          time.Time  `gorm:"column:queued_at;not null"`
	StartedAt         *time.Time `gorm:"column:started_at"`
	CompletedAt       *time.Time `gorm:"column:completed_at"`
	DurationMS        *int64     `gorm:"column:duration_ms"`
	RunMS             int64      `gorm:"column:run_ms;not null"` // running time used so far, waits excluded
	TotalNodes        int        `gorm:"column:total_nodes;not null"`
	CompletedNodes    int        `gorm:"column:completed_nodes;not null"`
	FailedNodes       int        `gorm:"column:failed_nodes;not null"`
	SkippedNodes      int        `gorm:"column:skipped_nodes;not null"`
	EventSeq          int        `gorm:"column:event_seq;not null"` // the last event sequence number written
	CancelRequestedAt *time.Time `gorm:"column:cancel_requested_at"`
	JobID             *int64     `gorm:"column:job_id"`
	ScheduledFor      *time.Time `gorm:"column:scheduled_for"` // schedule runs: unique with flow_id, so a tick never doubles
	UpdatedAt         time.Time  `gorm:"column:updated_at;not null"`
}

func (Execution) TableName() string { return "executions" }

// NodeExecution is the record of one node in a run: one row per node, its
// attempt counting the tries (PRODUCT §5.3).
type NodeExecution struct {
	ID          int64      `gorm:"column:id;primaryKey"`
	ExecutionID int64      `gorm:"column:execution_id;not null"`
	NodeID      string     `gorm:"column:node_id;not null"`
	NodeType    string     `gorm:"column:node_type;not null"`
	NodeLabel   string     `gorm:"column:node_label;not null"`
	Status      string     `gorm:"column:status;not null"`
	Attempt     int        `gorm:"column:attempt;not null"`
	Handle      *string    `gorm:"column:handle"`
	Input       *JSON      `gorm:"column:input"`
	Output      *JSON      `gorm:"column:output"`
	Error       *JSON      `gorm:"column:error"`
	ReusedFrom  *int64     `gorm:"column:reused_from"`
	StartedAt   time.Time  `gorm:"column:started_at;not null"`
	CompletedAt *time.Time `gorm:"column:completed_at"`
	DurationMS  *int64     `gorm:"column:duration_ms"`
}

func (NodeExecution) TableName() string { return "node_executions" }

// ExecutionEvent is one persisted event of a run's stream (PRODUCT §6.6).
type ExecutionEvent struct {
	ExecutionID int64     `gorm:"column:execution_id;primaryKey;autoIncrement:false"`
	Seq         int       `gorm:"column:seq;primaryKey;autoIncrement:false"`
	Event       string    `gorm:"column:event;not null"`
	Data        JSON      `gorm:"column:data;not null"`
	CreatedAt   time.Time `gorm:"column:created_at;not null"`
}

func (ExecutionEvent) TableName() string { return "execution_events" }

// FlowSchedule is the armed trigger-schedule of a published flow.
type FlowSchedule struct {
	FlowID    int64     `gorm:"column:flow_id;primaryKey;autoIncrement:false"`
	Schedule  string    `gorm:"column:schedule;not null"`
	Timezone  string    `gorm:"column:timezone;not null"`
	NextRunAt time.Time `gorm:"column:next_run_at;not null"`
	UpdatedAt time.Time `gorm:"column:updated_at;not null"`
}

func (FlowSchedule) TableName() string { return "flow_schedules" }

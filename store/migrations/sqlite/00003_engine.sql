-- +goose Up
-- The flow engine (PRODUCT §5.3, §6.5, §6.6): runs, their node records and
-- events, the armed schedules and the webhook trigger keys.
ALTER TABLE flows ADD COLUMN webhook_key text;
CREATE UNIQUE INDEX flows_webhook_key ON flows (webhook_key);

CREATE TABLE executions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id             INTEGER      NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    flow_version        INTEGER,
    flow_revision       INTEGER     NOT NULL,
    graph               TEXT       NOT NULL,
    mode                TEXT        NOT NULL,
    status              TEXT        NOT NULL DEFAULT 'queued',
    triggered_by        INTEGER      REFERENCES users (id) ON DELETE SET NULL,
    api_token_id        INTEGER      REFERENCES api_tokens (id) ON DELETE SET NULL,
    conversation_id     INTEGER,
    retry_of            INTEGER      REFERENCES executions (id) ON DELETE SET NULL,
    input_data          TEXT       NOT NULL,
    output_data         TEXT,
    error               TEXT,
    has_errors          INTEGER     NOT NULL DEFAULT 0,
    queued_at           DATETIME NOT NULL,
    started_at          DATETIME,
    completed_at        DATETIME,
    duration_ms         INTEGER,
    run_ms              INTEGER      NOT NULL DEFAULT 0,
    total_nodes         INTEGER     NOT NULL DEFAULT 0,
    completed_nodes     INTEGER     NOT NULL DEFAULT 0,
    failed_nodes        INTEGER     NOT NULL DEFAULT 0,
    skipped_nodes       INTEGER     NOT NULL DEFAULT 0,
    event_seq           INTEGER     NOT NULL DEFAULT 0,
    cancel_requested_at DATETIME,
    job_id              INTEGER,
    scheduled_for       DATETIME,
    updated_at          DATETIME NOT NULL
);
CREATE INDEX executions_flow_id_id ON executions (flow_id, id);
CREATE INDEX executions_status ON executions (status);
CREATE INDEX executions_triggered_by ON executions (triggered_by);
CREATE INDEX executions_api_token_id ON executions (api_token_id);
CREATE INDEX executions_retry_of ON executions (retry_of);
CREATE UNIQUE INDEX executions_flow_id_scheduled_for ON executions (flow_id, scheduled_for);

CREATE TABLE node_executions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id  INTEGER      NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    node_id       TEXT        NOT NULL,
    node_type     TEXT        NOT NULL,
    node_label    TEXT        NOT NULL DEFAULT '',
    status        TEXT        NOT NULL,
    attempt       INTEGER     NOT NULL DEFAULT 1,
    handle        TEXT,
    input         TEXT,
    output        TEXT,
    error         TEXT,
    reused_from   INTEGER,
    started_at    DATETIME NOT NULL,
    completed_at  DATETIME,
    duration_ms   INTEGER
);
CREATE UNIQUE INDEX node_executions_execution_id_node_id ON node_executions (execution_id, node_id);

CREATE TABLE execution_events (
    execution_id INTEGER      NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER     NOT NULL,
    event        TEXT        NOT NULL,
    data         TEXT       NOT NULL,
    created_at   DATETIME NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE INDEX execution_events_created_at ON execution_events (created_at);

CREATE TABLE flow_schedules (
    flow_id     INTEGER      PRIMARY KEY REFERENCES flows (id) ON DELETE CASCADE,
    schedule    TEXT        NOT NULL,
    timezone    TEXT        NOT NULL,
    next_run_at DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL
);
CREATE INDEX flow_schedules_next_run_at ON flow_schedules (next_run_at);

-- +goose Down
DROP TABLE flow_schedules;
DROP TABLE execution_events;
DROP TABLE node_executions;
DROP TABLE executions;
DROP INDEX flows_webhook_key;
ALTER TABLE flows DROP COLUMN webhook_key;

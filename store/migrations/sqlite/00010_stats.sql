-- +goose Up
-- Stats (PRODUCT §5.16) count runs by queued_at ranges, over every visible flow or one flow.
CREATE INDEX executions_queued_at ON executions (queued_at);
CREATE INDEX executions_flow_id_queued_at ON executions (flow_id, queued_at);

-- +goose Down
DROP INDEX executions_flow_id_queued_at;
DROP INDEX executions_queued_at;

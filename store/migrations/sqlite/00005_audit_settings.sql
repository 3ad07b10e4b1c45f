-- +goose Up
-- Audit log filters (PRODUCT §5.17): the list is keyset-paged by id, newest
-- first, so the actor and token filters read (column, id) in index order.
DROP INDEX audit_logs_actor_user_id;
DROP INDEX audit_logs_api_token_id;
CREATE INDEX audit_logs_actor_user_id_id ON audit_logs (actor_user_id, id);
CREATE INDEX audit_logs_api_token_id_id ON audit_logs (api_token_id, id);
CREATE INDEX audit_logs_action ON audit_logs (action, id);

-- Organisation settings (PRODUCT §5.22): exactly one row, id 1, created here
-- with the defaults of store.DefaultSettings. default_ai_model NULL means
-- AI_DEFAULT_MODEL. Times are UTC text, as everywhere on SQLite.
CREATE TABLE settings (
    id                          INTEGER  PRIMARY KEY CHECK (id = 1),
    org_name                    TEXT     NOT NULL DEFAULT 'WataOmi',
    default_timezone            TEXT     NOT NULL DEFAULT 'UTC',
    default_language            TEXT     NOT NULL DEFAULT 'en',
    default_ai_model            TEXT,
    auto_handoff_on_agent_reply INTEGER  NOT NULL DEFAULT 1,
    reset_bot_on_resolve        INTEGER  NOT NULL DEFAULT 1,
    bot_fallback_message        TEXT     NOT NULL DEFAULT 'Sorry, something went wrong. An agent will reply shortly.',
    conversation_reopen_hours   INTEGER  NOT NULL DEFAULT 24,
    auto_resolve_after_hours    INTEGER  NOT NULL DEFAULT 0,
    send_read_receipts          INTEGER  NOT NULL DEFAULT 0,
    messenger_human_agent_tag   INTEGER  NOT NULL DEFAULT 0,
    updated_at                  DATETIME NOT NULL
);
INSERT INTO settings (id, updated_at) VALUES (1, strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'));

-- +goose Down
DROP TABLE settings;
DROP INDEX audit_logs_action;
DROP INDEX audit_logs_api_token_id_id;
DROP INDEX audit_logs_actor_user_id_id;
CREATE INDEX audit_logs_actor_user_id ON audit_logs (actor_user_id);
CREATE INDEX audit_logs_api_token_id ON audit_logs (api_token_id);

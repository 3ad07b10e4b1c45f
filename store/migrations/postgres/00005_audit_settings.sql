-- +goose Up
-- Audit log filters (PRODUCT §5.17): the list is keyset-paged by id, newest
-- first, so the actor and token filters read (column, id) in index order. The
-- action filter is a prefix match (LIKE 'flow.%'); text_pattern_ops lets
-- PostgreSQL use the index whatever the database collation.
DROP INDEX audit_logs_actor_user_id;
DROP INDEX audit_logs_api_token_id;
CREATE INDEX audit_logs_actor_user_id_id ON audit_logs (actor_user_id, id);
CREATE INDEX audit_logs_api_token_id_id ON audit_logs (api_token_id, id);
CREATE INDEX audit_logs_action ON audit_logs (action text_pattern_ops, id);

-- Organisation settings (PRODUCT §5.22): exactly one row, id 1, created here
-- with the defaults of store.DefaultSettings. default_ai_model NULL means
-- AI_DEFAULT_MODEL.
CREATE TABLE settings (
    id                          bigint      PRIMARY KEY CHECK (id = 1),
    org_name                    text        NOT NULL DEFAULT 'WataOmi',
    default_timezone            text        NOT NULL DEFAULT 'UTC',
    default_language            text        NOT NULL DEFAULT 'en',
    default_ai_model            text,
    auto_handoff_on_agent_reply boolean     NOT NULL DEFAULT true,
    reset_bot_on_resolve        boolean     NOT NULL DEFAULT true,
    bot_fallback_message        text        NOT NULL DEFAULT 'Sorry, something went wrong. An agent will reply shortly.',
    conversation_reopen_hours   integer     NOT NULL DEFAULT 24,
    auto_resolve_after_hours    integer     NOT NULL DEFAULT 0,
    send_read_receipts          boolean     NOT NULL DEFAULT false,
    messenger_human_agent_tag   boolean     NOT NULL DEFAULT false,
    updated_at                  timestamptz NOT NULL
);
INSERT INTO settings (id, updated_at) VALUES (1, now());

-- +goose Down
DROP TABLE settings;
DROP INDEX audit_logs_action;
DROP INDEX audit_logs_api_token_id_id;
DROP INDEX audit_logs_actor_user_id_id;
CREATE INDEX audit_logs_actor_user_id ON audit_logs (actor_user_id);
CREATE INDEX audit_logs_api_token_id ON audit_logs (api_token_id);

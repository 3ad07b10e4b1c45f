-- +goose Up
-- Refresh tokens (PRODUCT §3.2.1): only the SHA-256 of the opaque token is
-- stored. A family is one login; rotation chains its tokens through
-- replaced_by_id.
CREATE TABLE refresh_tokens (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    family_id      TEXT     NOT NULL,
    user_id        INTEGER  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash     TEXT     NOT NULL,
    issued_at      DATETIME NOT NULL,
    expires_at     DATETIME NOT NULL,
    used_at        DATETIME,
    revoked_at     DATETIME,
    replaced_by_id INTEGER  REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    ip             TEXT,
    user_agent     TEXT
);
CREATE UNIQUE INDEX refresh_tokens_token_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
-- The self reference (SET NULL on delete) and the retention purge.
CREATE INDEX refresh_tokens_replaced_by_id ON refresh_tokens (replaced_by_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- API tokens (PRODUCT §3.3): scopes is a JSON array of permission strings.
-- The unique (owner_id, name) index also serves lookups by owner.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id     INTEGER  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT     NOT NULL,
    prefix       TEXT     NOT NULL,
    token_hash   TEXT     NOT NULL,
    scopes       TEXT     NOT NULL DEFAULT '[]',
    expires_at   DATETIME NOT NULL,
    last_used_at DATETIME,
    last_used_ip TEXT,
    revoked_at   DATETIME,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX api_tokens_token_hash ON api_tokens (token_hash);
CREATE UNIQUE INDEX api_tokens_owner_id_name ON api_tokens (owner_id, name);

-- Audit logs (PRODUCT §5.17). actor_user_id, api_token_id and resource_id
-- have no foreign key on purpose: the history outlives the rows it names
-- (PRODUCT §9.2), and actor_display keeps who it was.
CREATE TABLE audit_logs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at   DATETIME NOT NULL,
    action        TEXT     NOT NULL,
    status        TEXT     NOT NULL DEFAULT 'success',
    actor_type    TEXT     NOT NULL,
    actor_user_id INTEGER,
    actor_display TEXT     NOT NULL DEFAULT '',
    api_token_id  INTEGER,
    resource_type TEXT     NOT NULL DEFAULT '',
    resource_id   INTEGER,
    request_id    TEXT,
    ip            TEXT,
    user_agent    TEXT,
    changes       TEXT,
    metadata      TEXT
);
CREATE INDEX audit_logs_occurred_at ON audit_logs (occurred_at, id);
CREATE INDEX audit_logs_resource ON audit_logs (resource_type, resource_id);
CREATE INDEX audit_logs_actor_user_id ON audit_logs (actor_user_id);
CREATE INDEX audit_logs_api_token_id ON audit_logs (api_token_id);

-- +goose Down
DROP TABLE audit_logs;
DROP TABLE api_tokens;
DROP TABLE refresh_tokens;

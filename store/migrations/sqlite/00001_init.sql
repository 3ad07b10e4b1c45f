-- +goose Up
-- Times are DATETIME so the driver hands them back as time.Time; SQLite still
-- stores them as text (UTC, "2006-01-02 15:04:05.999999999-07:00").
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id   TEXT,
    email         TEXT     NOT NULL,
    name          TEXT     NOT NULL DEFAULT '',
    avatar_url    TEXT,
    role          TEXT     NOT NULL DEFAULT 'user',
    is_active     INTEGER  NOT NULL DEFAULT 1,
    last_login_at DATETIME,
    search_text   TEXT     NOT NULL DEFAULT '',
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);
CREATE UNIQUE INDEX users_external_id ON users (external_id);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT     NOT NULL,
    description TEXT,
    search_text TEXT     NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL
);
CREATE UNIQUE INDEX teams_name ON teams (name);

CREATE TABLE team_members (
    team_id    INTEGER  NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id    INTEGER  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_id ON team_members (user_id);

CREATE TABLE flows (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT     NOT NULL,
    description       TEXT,
    status            TEXT     NOT NULL DEFAULT 'draft',
    visibility        TEXT     NOT NULL DEFAULT 'private',
    team_id           INTEGER  REFERENCES teams (id) ON DELETE SET NULL,
    owner_id          INTEGER  NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    data              TEXT     NOT NULL DEFAULT '{"nodes":[],"edges":[]}',
    revision          INTEGER  NOT NULL DEFAULT 1,
    version           INTEGER  NOT NULL DEFAULT 1,
    published_version INTEGER,
    node_count        INTEGER  NOT NULL DEFAULT 0,
    content_hash      TEXT     NOT NULL DEFAULT '',
    published_hash    TEXT,
    archived_at       DATETIME,
    search_text       TEXT     NOT NULL DEFAULT '',
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL
);
CREATE INDEX flows_owner_id ON flows (owner_id);
CREATE INDEX flows_status ON flows (status);
CREATE INDEX flows_created_at_id ON flows (created_at, id);
CREATE INDEX flows_updated_at_id ON flows (updated_at, id);
CREATE INDEX flows_team_id ON flows (team_id);

CREATE TABLE flow_versions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id      INTEGER  NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    version      INTEGER  NOT NULL,
    name         TEXT     NOT NULL DEFAULT '',
    description  TEXT,
    data         TEXT     NOT NULL,
    content_hash TEXT     NOT NULL DEFAULT '',
    created_by   INTEGER  REFERENCES users (id) ON DELETE SET NULL,
    created_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX flow_versions_flow_id_version ON flow_versions (flow_id, version);
CREATE INDEX flow_versions_created_by ON flow_versions (created_by);

-- +goose Down
DROP TABLE flow_versions;
DROP TABLE flows;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE users;

-- +goose Up
-- Archives (PRODUCT §5.13): one record per archive of an entity (flow, later
-- bot), with the full entity as JSON and its status before the archive.
-- entity_id has no FK (polymorphic; the entity may be deleted meanwhile, and
-- a restore then recreates it). owner_id, visibility and team_id copy the
-- snapshot's ownership so that the §4.3 scope runs as SQL; the user columns
-- become null once that user is deleted (DELETE /users moves owner_id to the
-- heir first). At most one unrestored record per entity.
CREATE TABLE archives (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_type     TEXT        NOT NULL,
    entity_id       INTEGER     NOT NULL,
    entity_name     TEXT        NOT NULL,
    snapshot        TEXT        NOT NULL,
    previous_status TEXT        NOT NULL,
    reason          TEXT,
    owner_id        INTEGER     REFERENCES users (id) ON DELETE SET NULL,
    visibility      TEXT        NOT NULL DEFAULT 'private',
    team_id         INTEGER     REFERENCES teams (id) ON DELETE SET NULL,
    archived_by     INTEGER     REFERENCES users (id) ON DELETE SET NULL,
    archived_at     DATETIME    NOT NULL,
    is_restored     INTEGER     NOT NULL DEFAULT 0,
    restored_at     DATETIME,
    restored_by     INTEGER     REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX archives_open_entity ON archives (entity_type, entity_id) WHERE NOT is_restored;
CREATE INDEX archives_archived_at_id ON archives (archived_at, id);
CREATE INDEX archives_entity ON archives (entity_type, entity_id);
CREATE INDEX archives_owner_id ON archives (owner_id);
CREATE INDEX archives_team_id ON archives (team_id);
CREATE INDEX archives_archived_by ON archives (archived_by);
CREATE INDEX archives_restored_by ON archives (restored_by);

-- +goose Down
DROP TABLE archives;

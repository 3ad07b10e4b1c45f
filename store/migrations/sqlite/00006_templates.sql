-- +goose Up
-- Templates (PRODUCT §5.5): reusable graphs. Seeded ones are is_system with a
-- unique system_key (NULLs do not clash). source_flow_id is null once that
-- flow is deleted; created_by once that user is deleted (DELETE /users moves
-- them to the heir first). category_id and tags come with the metadata
-- resource (§5.12).
CREATE TABLE templates (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT     NOT NULL,
    description    TEXT,
    icon           TEXT,
    data           TEXT     NOT NULL DEFAULT '{"nodes":[],"edges":[]}',
    placeholders   TEXT     NOT NULL DEFAULT '[]',
    source_flow_id INTEGER  REFERENCES flows (id) ON DELETE SET NULL,
    is_system      INTEGER  NOT NULL DEFAULT 0,
    system_key     TEXT,
    usage_count    INTEGER  NOT NULL DEFAULT 0,
    created_by     INTEGER  REFERENCES users (id) ON DELETE SET NULL,
    search_text    TEXT     NOT NULL DEFAULT '',
    created_at     DATETIME NOT NULL,
    updated_at     DATETIME NOT NULL
);
CREATE UNIQUE INDEX templates_system_key ON templates (system_key);
CREATE INDEX templates_created_at_id ON templates (created_at, id);
CREATE INDEX templates_source_flow_id ON templates (source_flow_id);
CREATE INDEX templates_created_by ON templates (created_by);

-- A flow created from a template keeps its id until the template is deleted.
ALTER TABLE flows ADD COLUMN template_id INTEGER REFERENCES templates (id) ON DELETE SET NULL;
CREATE INDEX flows_template_id ON flows (template_id);

-- Agent configs (PRODUCT §5.14): at most one per flow, deleted with it. The
-- AI fields are nullable and hold no defaults: null means "not set here".
CREATE TABLE agent_configs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_id       INTEGER  NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    name          TEXT     NOT NULL,
    personality   TEXT     NOT NULL DEFAULT 'friendly',
    tone          TEXT     NOT NULL DEFAULT 'informal',
    language      TEXT     NOT NULL DEFAULT 'en',
    system_prompt TEXT     NOT NULL,
    temperature   REAL,
    max_tokens    INTEGER,
    model         TEXT,
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);
CREATE UNIQUE INDEX agent_configs_flow_id ON agent_configs (flow_id);

-- +goose Down
DROP TABLE agent_configs;
DROP INDEX flows_template_id;
ALTER TABLE flows DROP COLUMN template_id;
DROP TABLE templates;

-- +goose Up
-- Metadata (PRODUCT §5.12): tags, categories and icons, organisation-wide.
-- name_key is the name NFC-normalised and lower-cased in Go (store.NameKey),
-- so uniqueness is case-insensitive and the same on both dialects.
CREATE TABLE tags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT        NOT NULL,
    name_key    TEXT        NOT NULL,
    color       TEXT        NOT NULL DEFAULT '#6366f1',
    description TEXT,
    usage_count INTEGER     NOT NULL DEFAULT 0,
    search_text TEXT        NOT NULL DEFAULT '',
    created_at  DATETIME    NOT NULL,
    updated_at  DATETIME    NOT NULL
);
CREATE UNIQUE INDEX tags_name_key ON tags (name_key);

-- Categories nest (parent_id, same entity_type, depth <= 3). A parent with
-- children cannot be deleted (RESTRICT; the API answers 409 in-use first).
CREATE TABLE categories (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT        NOT NULL,
    name_key    TEXT        NOT NULL,
    slug        TEXT        NOT NULL,
    entity_type TEXT        NOT NULL,
    icon        TEXT,
    color       TEXT        NOT NULL DEFAULT '#6366f1',
    description TEXT,
    parent_id   INTEGER      REFERENCES categories (id) ON DELETE RESTRICT,
    sort_order  INTEGER     NOT NULL DEFAULT 0,
    is_system   INTEGER     NOT NULL DEFAULT 0,
    created_at  DATETIME    NOT NULL,
    updated_at  DATETIME    NOT NULL
);
CREATE UNIQUE INDEX categories_entity_type_name_key ON categories (entity_type, name_key);
CREATE UNIQUE INDEX categories_entity_type_slug ON categories (entity_type, slug);
CREATE INDEX categories_parent_id ON categories (parent_id);

CREATE TABLE icons (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT        NOT NULL,
    library     TEXT        NOT NULL DEFAULT 'react-icons/fi',
    category    TEXT        NOT NULL DEFAULT 'general',
    tags        TEXT        NOT NULL DEFAULT '[]',
    is_favorite INTEGER     NOT NULL DEFAULT 0,
    search_text TEXT        NOT NULL DEFAULT '',
    created_at  DATETIME    NOT NULL,
    updated_at  DATETIME    NOT NULL
);
CREATE UNIQUE INDEX icons_name ON icons (name);

-- Tag links; they go with either side. tags.usage_count counts them and is
-- kept in the transaction of every link change.
CREATE TABLE flow_tags (
    flow_id INTEGER NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    tag_id  INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (flow_id, tag_id)
);
CREATE INDEX flow_tags_tag_id ON flow_tags (tag_id);
CREATE TABLE template_tags (
    template_id INTEGER NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (template_id, tag_id)
);
CREATE INDEX template_tags_tag_id ON template_tags (tag_id);

-- A category in use cannot be deleted (RESTRICT; the API answers 409 in-use).
ALTER TABLE flows ADD COLUMN category_id INTEGER REFERENCES categories (id) ON DELETE RESTRICT;
CREATE INDEX flows_category_id ON flows (category_id);
ALTER TABLE templates ADD COLUMN category_id INTEGER REFERENCES categories (id) ON DELETE RESTRICT;
CREATE INDEX templates_category_id ON templates (category_id);

-- +goose Down
DROP INDEX templates_category_id;
ALTER TABLE templates DROP COLUMN category_id;
DROP INDEX flows_category_id;
ALTER TABLE flows DROP COLUMN category_id;
DROP TABLE template_tags;
DROP TABLE flow_tags;
DROP TABLE icons;
DROP TABLE categories;
DROP TABLE tags;

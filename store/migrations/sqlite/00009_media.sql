-- +goose Up
-- Media (PRODUCT §5.15): uploaded files, stored by the local driver (file_key names the file under
-- MEDIA_LOCAL_DIR and the public URL) or by Cloudinary (public_id in the uploader's folder
-- wataomi/<user_id>). mime_type is sniffed from the bytes, never taken from the client. uploaded_by is
-- RESTRICT: a user delete moves media to transfer_to first.
CREATE TABLE media (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    storage       TEXT     NOT NULL,
    public_id     TEXT     NOT NULL,
    file_key      TEXT,
    url           TEXT     NOT NULL,
    secure_url    TEXT     NOT NULL,
    resource_type TEXT     NOT NULL,
    format        TEXT     NOT NULL,
    mime_type     TEXT     NOT NULL,
    width         INTEGER,
    height        INTEGER,
    bytes         INTEGER  NOT NULL,
    filename      TEXT     NOT NULL,
    uploaded_by   INTEGER  NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at    DATETIME NOT NULL
);
CREATE UNIQUE INDEX media_storage_public_id ON media (storage, public_id);
CREATE UNIQUE INDEX media_file_key ON media (file_key);
CREATE INDEX media_uploaded_by_created_at ON media (uploaded_by, created_at, id);
CREATE INDEX media_created_at ON media (created_at, id);

-- +goose Down
DROP TABLE media;

-- +goose Up
-- Integrations (PRODUCT §5.11): organisation-wide provider credentials. The secrets are never stored
-- in plaintext: secrets_ciphertext is one AES-256-GCM ciphertext of the JSON object of secrets
-- (package secretbox, "v1:<key id>:<base64url>", bound to "integrations:<id>:secrets"), and
-- secrets_meta holds only hints (the last four characters of long secrets, when each was set).
-- settings holds the provider's non-secret fields, except is_default, which is a column so that one
-- default per provider is a constraint.
CREATE TABLE integrations (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    provider           TEXT     NOT NULL,
    name               TEXT     NOT NULL,
    is_active          INTEGER  NOT NULL DEFAULT 1,
    is_default         INTEGER  NOT NULL DEFAULT 0,
    settings           TEXT     NOT NULL DEFAULT '{}',
    secrets_ciphertext TEXT,
    secrets_meta       TEXT     NOT NULL DEFAULT '{}',
    verify_token       TEXT,
    endpoint_key       TEXT,
    status             TEXT     NOT NULL DEFAULT 'unverified',
    last_verified_at   DATETIME,
    created_by         INTEGER  REFERENCES users (id) ON DELETE SET NULL,
    created_at         DATETIME NOT NULL,
    updated_at         DATETIME NOT NULL
);
CREATE UNIQUE INDEX integrations_provider_name ON integrations (provider, name);
CREATE UNIQUE INDEX integrations_endpoint_key ON integrations (endpoint_key);
CREATE UNIQUE INDEX integrations_provider_default ON integrations (provider) WHERE is_default;
CREATE INDEX integrations_created_at ON integrations (created_at, id);
CREATE INDEX integrations_created_by ON integrations (created_by);

-- +goose Down
DROP TABLE integrations;

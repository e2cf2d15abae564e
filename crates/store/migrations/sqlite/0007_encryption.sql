-- Envelope encryption. See the PostgreSQL twin and docs/security.md.

CREATE TABLE key_versions (
    version      INTEGER PRIMARY KEY NOT NULL,
    provider     TEXT NOT NULL,
    check_value  BLOB NOT NULL,
    state        TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'decrypt_only', 'retired')),
    created_at   TEXT NOT NULL
);

CREATE TABLE tenant_data_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    version      INTEGER NOT NULL,
    kek_version  INTEGER NOT NULL,
    wrapped_key  BLOB NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
    created_at   TEXT NOT NULL,
    retired_at   TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, version)
);
CREATE UNIQUE INDEX tenant_data_keys_one_active ON tenant_data_keys (tenant_id) WHERE state = 'active';

DELETE FROM oauth_signing_keys;

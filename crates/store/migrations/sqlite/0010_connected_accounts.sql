-- Per-user upstream accounts. See the PostgreSQL twin.
ALTER TABLE tenant_oauth_credentials ADD COLUMN resource TEXT;

CREATE TABLE connected_accounts (
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                 TEXT NOT NULL,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider           TEXT NOT NULL,
    access_token       BLOB NOT NULL,
    refresh_token      BLOB,
    scopes             TEXT NOT NULL,
    expires_at         TEXT,
    lifetime_secs      INTEGER,
    status             TEXT NOT NULL CHECK (status IN ('active', 'needs_reconsent')),
    last_error         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, user_id, provider)
);

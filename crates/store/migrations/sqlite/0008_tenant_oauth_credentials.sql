-- A tenant's own app registrations at upstream OAuth providers. See the PostgreSQL twin.
CREATE TABLE tenant_oauth_credentials (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider            TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    client_secret       BLOB NOT NULL,
    secret_fingerprint  TEXT NOT NULL,
    auth_url            TEXT NOT NULL,
    token_url           TEXT NOT NULL,
    scopes              TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);

-- OAuth 2.1 authorization server, one per tenant (issuer {public_url}/t/{slug}).
-- See the PostgreSQL twin for the commentary.

ALTER TABLE tenants ADD COLUMN oauth_dynamic_registration INTEGER NOT NULL DEFAULT 1;

CREATE TABLE oauth_apps (
    tenant_id                   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id                   TEXT NOT NULL,
    client_name                 TEXT,
    client_uri                  TEXT,
    redirect_uris               TEXT NOT NULL,
    grant_types                 TEXT NOT NULL,
    scopes                      TEXT NOT NULL,
    application_type            TEXT NOT NULL CHECK (application_type IN ('web', 'native')),
    token_endpoint_auth_method  TEXT NOT NULL,
    secret_hash                 TEXT,
    registration                TEXT NOT NULL CHECK (registration IN ('admin', 'dynamic')),
    created_by                  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at                  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);
CREATE INDEX oauth_apps_by_creator ON oauth_apps (tenant_id, created_by);

CREATE TABLE oauth_grants (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT REFERENCES users (id) ON DELETE CASCADE,
    scopes          TEXT NOT NULL,
    resource        TEXT NOT NULL,
    code_hash       TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT,
    revoked_reason  TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX oauth_grants_by_code ON oauth_grants (tenant_id, code_hash);
CREATE INDEX oauth_grants_by_client ON oauth_grants (tenant_id, client_id);

CREATE TABLE oauth_codes (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    code_hash       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    resource        TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, code_hash)
);

CREATE TABLE oauth_refresh_tokens (
    tenant_id   TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    grant_id    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, grant_id) REFERENCES oauth_grants (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX oauth_refresh_tokens_by_grant ON oauth_refresh_tokens (tenant_id, grant_id);

CREATE TABLE oauth_signing_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kid          TEXT NOT NULL,
    alg          TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_jwk   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    created_at   TEXT NOT NULL,
    retired_at   TEXT,
    PRIMARY KEY (tenant_id, kid)
);
CREATE UNIQUE INDEX oauth_signing_keys_one_active ON oauth_signing_keys (tenant_id) WHERE state = 'active';

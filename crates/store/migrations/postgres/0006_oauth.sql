-- OAuth 2.1 authorization server, one per tenant (issuer {public_url}/t/{slug}).

-- Dynamic client registration (RFC 7591) can be switched off per tenant.
ALTER TABLE tenants ADD COLUMN oauth_dynamic_registration boolean NOT NULL DEFAULT true;

-- Registered clients: created by an admin or through dynamic registration. Clients
-- identified by a metadata-document URL are not stored (fetched and cached instead).
CREATE TABLE oauth_apps (
    tenant_id                   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id                   text NOT NULL,
    client_name                 text,
    client_uri                  text,
    redirect_uris               jsonb NOT NULL,
    grant_types                 jsonb NOT NULL,
    scopes                      jsonb NOT NULL,
    application_type            text NOT NULL CHECK (application_type IN ('web', 'native')),
    token_endpoint_auth_method  text NOT NULL,
    secret_hash                 text,
    registration                text NOT NULL CHECK (registration IN ('admin', 'dynamic')),
    created_by                  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at                  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);
CREATE INDEX oauth_apps_by_creator ON oauth_apps (tenant_id, created_by);

-- A grant: one authorization (a redeemed code, or a client-credentials request) and
-- everything issued from it. Revoking the grant revokes its refresh tokens and, through
-- the resource server's check, its access tokens. code_hash lets a replayed code find
-- (and revoke) the grant it produced.
CREATE TABLE oauth_grants (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    client_id       text NOT NULL,
    user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    scopes          jsonb NOT NULL,
    resource        text NOT NULL,
    code_hash       text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX oauth_grants_by_code ON oauth_grants (tenant_id, code_hash);
CREATE INDEX oauth_grants_by_client ON oauth_grants (tenant_id, client_id);

-- Authorization codes: hashed, single use, deleted on redemption.
CREATE TABLE oauth_codes (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    code_hash       text NOT NULL,
    client_id       text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri    text NOT NULL,
    code_challenge  text NOT NULL,
    resource        text NOT NULL,
    scopes          jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, code_hash)
);

-- Refresh tokens: hashed, rotated on every use; a used one presented again revokes its grant.
CREATE TABLE oauth_refresh_tokens (
    tenant_id   uuid NOT NULL,
    token_hash  text NOT NULL,
    grant_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, grant_id) REFERENCES oauth_grants (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX oauth_refresh_tokens_by_grant ON oauth_refresh_tokens (tenant_id, grant_id);

-- Access-token signing keys. One active key per tenant; retired keys stay published
-- until the tokens they signed have expired. The private key is PKCS#8 DER; it is
-- stored unencrypted until envelope encryption lands (see docs/oauth.md).
CREATE TABLE oauth_signing_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kid          text NOT NULL,
    alg          text NOT NULL,
    private_key  bytea NOT NULL,
    public_jwk   jsonb NOT NULL,
    state        text NOT NULL CHECK (state IN ('active', 'retired')),
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz,
    PRIMARY KEY (tenant_id, kid)
);
CREATE UNIQUE INDEX oauth_signing_keys_one_active ON oauth_signing_keys (tenant_id) WHERE state = 'active';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['oauth_apps', 'oauth_grants', 'oauth_codes', 'oauth_refresh_tokens', 'oauth_signing_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_scope ON %I USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant()) '
                       'WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO cairn_app', t);
    END LOOP;
END $$;

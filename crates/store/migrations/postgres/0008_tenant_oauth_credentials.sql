-- A tenant's own app registrations at upstream OAuth providers (GitHub, Google, …).
-- client_secret is an encrypted envelope (keyring); the fingerprint lets admins tell
-- secrets apart without reading them.
CREATE TABLE tenant_oauth_credentials (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider            text NOT NULL,
    client_id           text NOT NULL,
    client_secret       bytea NOT NULL,
    secret_fingerprint  text NOT NULL,
    auth_url            text NOT NULL,
    token_url           text NOT NULL,
    scopes              jsonb NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);

ALTER TABLE tenant_oauth_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_oauth_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenant_oauth_credentials
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_oauth_credentials TO cairn_app;

-- API keys. Only an HMAC of the key (under the server's pepper) is stored. During a
-- rotation the previous hash stays valid until previous_expires_at.
CREATE TABLE api_keys (
    tenant_id             uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                    uuid NOT NULL,
    public_id             text NOT NULL,
    name                  text NOT NULL,
    user_id               uuid,
    environment           text NOT NULL CHECK (environment IN ('live', 'test')),
    scopes                jsonb NOT NULL,
    tier                  text NOT NULL,
    secret_hash           bytea NOT NULL,
    previous_secret_hash  bytea,
    previous_expires_at   timestamptz,
    expires_at            timestamptz,
    created_at            timestamptz NOT NULL,
    rotated_at            timestamptz,
    last_used_at          timestamptz,
    revoked_at            timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, public_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON api_keys
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO cairn_app;

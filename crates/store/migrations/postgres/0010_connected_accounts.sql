-- Per-user upstream accounts: Cairn is the OAuth client of an upstream provider, with
-- the tenant's credentials. Tokens are encrypted envelopes (keyring); `id` names the
-- row in their associated data.
ALTER TABLE tenant_oauth_credentials ADD COLUMN resource text;

CREATE TABLE connected_accounts (
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                 text NOT NULL,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider           text NOT NULL,
    access_token       bytea NOT NULL,
    refresh_token      bytea,
    scopes             text NOT NULL,
    expires_at         timestamptz,
    lifetime_secs      bigint,
    status             text NOT NULL CHECK (status IN ('active', 'needs_reconsent')),
    last_error         text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, user_id, provider)
);

ALTER TABLE connected_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE connected_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON connected_accounts
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON connected_accounts TO cairn_app;

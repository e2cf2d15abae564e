-- Invitations: how a tenant admin adds a person. The admin names an e-mail address; the
-- person joins by signing in with their own account (the token alone is not enough), so
-- an admin never reaches, or learns of, a user of another tenant. The token is stored as
-- its SHA-256 digest. status: pending → accepted | revoked | expired (each expiry is
-- audited once, when it is first noticed).
CREATE TABLE invitations (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_digest text NOT NULL UNIQUE,
    invited_by   text NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked', 'expired')),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    accepted_by  uuid,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX invitations_pending ON invitations (tenant_id, expires_at) WHERE status = 'pending';
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON invitations
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON invitations TO cairn_app;

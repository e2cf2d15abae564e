-- Invitations: how a tenant admin adds a person. The admin names an e-mail address; the
-- person joins by signing in with their own account (the token alone is not enough), so
-- an admin never reaches, or learns of, a user of another tenant. The token is stored as
-- its SHA-256 digest. status: pending → accepted | revoked | expired (each expiry is
-- audited once, when it is first noticed).
CREATE TABLE invitations (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    email        TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_digest TEXT NOT NULL UNIQUE,
    invited_by   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked', 'expired')),
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    ended_at     TEXT,
    accepted_by  TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX invitations_pending ON invitations (tenant_id, expires_at) WHERE status = 'pending';

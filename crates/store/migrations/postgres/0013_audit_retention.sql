-- Per-tenant audit retention (days; the application refuses fewer than 90).
ALTER TABLE tenants ADD COLUMN audit_retention_days integer NOT NULL DEFAULT 365;

-- Where a chain starts after a purge: the last purged link. Verification resumes here.
CREATE TABLE audit_chain_checkpoints (
    chain_id  uuid PRIMARY KEY,
    seq       bigint NOT NULL,
    hash      text NOT NULL,
    purged_at timestamptz NOT NULL
);
ALTER TABLE audit_chain_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_chain_checkpoints
    USING (cairn_platform_scope() OR chain_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR chain_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON audit_chain_checkpoints TO cairn_app;

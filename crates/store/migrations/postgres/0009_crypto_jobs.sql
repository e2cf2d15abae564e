-- Background re-encryption after a data-key rotation or rollback: one job per tenant,
-- progress persisted per batch, a lease so that one replica runs a job at a time.
CREATE TABLE crypto_jobs (
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                uuid NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('rotate', 'rollback')),
    target_key        uuid NOT NULL,
    state             text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    progress          jsonb NOT NULL,
    lease_owner       text,
    lease_expires_at  timestamptz,
    error             text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX crypto_jobs_running ON crypto_jobs (state, lease_expires_at);

ALTER TABLE crypto_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE crypto_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON crypto_jobs
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON crypto_jobs TO cairn_app;

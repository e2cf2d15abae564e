-- Background re-encryption jobs. See the PostgreSQL twin.
CREATE TABLE crypto_jobs (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('rotate', 'rollback')),
    target_key        TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    progress          TEXT NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  TEXT,
    error             TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    finished_at       TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX crypto_jobs_running ON crypto_jobs (state, lease_expires_at);

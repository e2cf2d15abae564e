-- Per-tenant audit retention (days; the application refuses fewer than 90).
ALTER TABLE tenants ADD COLUMN audit_retention_days INTEGER NOT NULL DEFAULT 365;

-- Where a chain starts after a purge: the last purged link. Verification resumes here.
CREATE TABLE audit_chain_checkpoints (
    chain_id  TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL,
    purged_at TEXT NOT NULL
);

-- Tamper-evident audit chains: one per tenant (keyed by tenant id) and one for platform
-- events (keyed by the nil UUID). Rows written before this migration carry no link.
ALTER TABLE audit_events ADD COLUMN seq INTEGER;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_events_chain ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action, occurred_at);
CREATE INDEX audit_events_actor ON audit_events (tenant_id, actor_kind, actor_id, occurred_at);

ALTER TABLE platform_audit_events ADD COLUMN seq INTEGER;
ALTER TABLE platform_audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE platform_audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX platform_audit_events_chain ON platform_audit_events (seq);

-- The newest link of each chain; writers lock it (PostgreSQL: FOR UPDATE) so concurrent
-- writers and replicas append one after the other.
CREATE TABLE audit_chain_heads (
    chain_id TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL,
    hash     TEXT NOT NULL
);

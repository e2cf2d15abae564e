-- Tamper-evident audit chains: one per tenant (keyed by tenant id) and one for platform
-- events (keyed by the nil UUID). Rows written before this migration carry no link.
ALTER TABLE audit_events ADD COLUMN seq bigint, ADD COLUMN prev_hash text, ADD COLUMN hash text;
CREATE UNIQUE INDEX audit_events_chain ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action, occurred_at);
CREATE INDEX audit_events_actor ON audit_events (tenant_id, actor_kind, actor_id, occurred_at);

ALTER TABLE platform_audit_events ADD COLUMN seq bigint, ADD COLUMN prev_hash text, ADD COLUMN hash text;
CREATE UNIQUE INDEX platform_audit_events_chain ON platform_audit_events (seq);

-- The newest link of each chain; writers lock it (FOR UPDATE) so concurrent writers and
-- replicas append one after the other.
CREATE TABLE audit_chain_heads (
    chain_id uuid PRIMARY KEY,
    seq      bigint NOT NULL,
    hash     text NOT NULL
);
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_chain_heads
    USING (cairn_platform_scope() OR chain_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR chain_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON audit_chain_heads TO cairn_app;

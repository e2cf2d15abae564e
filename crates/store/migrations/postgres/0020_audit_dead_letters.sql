-- Audit events the writer could not append to their chain (for instance because an edited
-- chain head makes every insert collide with a stored link): kept whole here instead of
-- being retried forever or dropped. Keyed by chain: the tenant id, or the nil UUID for
-- platform events. `event` is the event as JSON text (not jsonb: any content fits, even a
-- NUL escape that jsonb refuses).
CREATE TABLE audit_dead_letters (
    chain_id     uuid NOT NULL,
    id           uuid NOT NULL,
    occurred_at  timestamptz NOT NULL,
    action       text NOT NULL,
    event        text NOT NULL,
    error        text NOT NULL,
    set_aside_at timestamptz NOT NULL,
    PRIMARY KEY (chain_id, id)
);
ALTER TABLE audit_dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_dead_letters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_dead_letters
    USING (cairn_platform_scope() OR chain_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR chain_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON audit_dead_letters TO cairn_app;

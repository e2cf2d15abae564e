-- Alert rules per tenant (counts of audit events over a window) and each rule's state:
-- when it last fired per group, and how many alerts the cool-down suppressed since.
CREATE TABLE alert_rules (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            text NOT NULL,
    name          text NOT NULL,
    action        text NOT NULL,
    outcome       text,
    threshold     bigint NOT NULL,
    window_secs   bigint NOT NULL,
    group_by      text NOT NULL,
    cooldown_secs bigint NOT NULL,
    severity      text NOT NULL,
    email_to      text,
    webhook       boolean NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE alert_state (
    tenant_id     uuid NOT NULL,
    rule_id       text NOT NULL,
    group_key     text NOT NULL,
    last_fired_at timestamptz,
    suppressed    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, rule_id, group_key)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['alert_rules', 'alert_state'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_scope ON %I
            USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
            WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO cairn_app', t);
    END LOOP;
END
$$;

-- Platform-wide alert rules (the operator's): they count matching audit events of every
-- tenant and of the platform. Same shape as a tenant's rules; `scope_id` is always the
-- nil UUID (like the platform audit chain's head) so both kinds share their SQL.
CREATE TABLE platform_alert_rules (
    scope_id      uuid NOT NULL,
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
    PRIMARY KEY (scope_id, id),
    UNIQUE (scope_id, name)
);

CREATE TABLE platform_alert_state (
    scope_id      uuid NOT NULL,
    rule_id       text NOT NULL,
    group_key     text NOT NULL,
    last_fired_at timestamptz,
    suppressed    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scope_id, rule_id, group_key)
);

-- Platform rules count one action over every tenant in a window.
CREATE INDEX audit_events_action_time ON audit_events (action, occurred_at);
CREATE INDEX platform_audit_events_action ON platform_audit_events (action, occurred_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['platform_alert_rules', 'platform_alert_state'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY platform_only ON %I
            USING (cairn_platform_scope()) WITH CHECK (cairn_platform_scope())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO cairn_app', t);
    END LOOP;
END
$$;

-- Platform-wide alert rules (the operator's): they count matching audit events of every
-- tenant and of the platform. Same shape as a tenant's rules; `scope_id` is always the
-- nil UUID (like the platform audit chain's head) so both kinds share their SQL.
CREATE TABLE platform_alert_rules (
    scope_id      TEXT NOT NULL,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    action        TEXT NOT NULL,
    outcome       TEXT,
    threshold     INTEGER NOT NULL,
    window_secs   INTEGER NOT NULL,
    group_by      TEXT NOT NULL,
    cooldown_secs INTEGER NOT NULL,
    severity      TEXT NOT NULL,
    email_to      TEXT,
    webhook       BOOLEAN NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (scope_id, id),
    UNIQUE (scope_id, name)
);

CREATE TABLE platform_alert_state (
    scope_id      TEXT NOT NULL,
    rule_id       TEXT NOT NULL,
    group_key     TEXT NOT NULL,
    last_fired_at TEXT,
    suppressed    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope_id, rule_id, group_key)
);

-- Platform rules count one action over every tenant in a window.
CREATE INDEX audit_events_action_time ON audit_events (action, occurred_at);
CREATE INDEX platform_audit_events_action ON platform_audit_events (action, occurred_at);

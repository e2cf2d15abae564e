-- Alert rules per tenant (counts of audit events over a window) and each rule's state:
-- when it last fired per group, and how many alerts the cool-down suppressed since.
CREATE TABLE alert_rules (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
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
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE alert_state (
    tenant_id     TEXT NOT NULL,
    rule_id       TEXT NOT NULL,
    group_key     TEXT NOT NULL,
    last_fired_at TEXT,
    suppressed    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, rule_id, group_key)
);

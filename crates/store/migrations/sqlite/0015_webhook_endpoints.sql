-- Outbound webhooks: endpoints tenants subscribe, deliveries (one per event and endpoint)
-- and every attempt made.
CREATE TABLE webhook_endpoints (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             TEXT NOT NULL,
    url            TEXT NOT NULL,
    event_types    TEXT NOT NULL,
    secret         BLOB NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    failing_since  TEXT,
    disabled_at    TEXT,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    tenant_id    TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    response     TEXT,
    error        TEXT,
    PRIMARY KEY (tenant_id, delivery_id, attempt)
);

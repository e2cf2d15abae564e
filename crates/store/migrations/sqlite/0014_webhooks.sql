-- Inbound webhooks: per-tenant named sources (verification scheme + sealed secrets),
-- verified events, and the message ids seen recently (replay protection).
CREATE TABLE webhook_sources (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    scheme          TEXT NOT NULL,
    secret          BLOB NOT NULL,
    previous_secret BLOB,
    previous_until  TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE webhook_events (
    tenant_id   TEXT NOT NULL,
    received_at TEXT NOT NULL,
    id          TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    message_id  TEXT,
    event_type  TEXT,
    payload     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, received_at, id)
);
CREATE INDEX webhook_events_time ON webhook_events (received_at);

CREATE TABLE webhook_seen (
    tenant_id  TEXT NOT NULL,
    source_id  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seen_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, source_id, message_id)
);
CREATE INDEX webhook_seen_time ON webhook_seen (seen_at);

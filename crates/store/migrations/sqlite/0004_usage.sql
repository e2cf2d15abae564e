-- Usage metering: raw events (one per MCP request) and hourly/daily roll-ups that the
-- batched writer maintains in the same transaction as the events.
CREATE TABLE usage_events (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    key_id          TEXT,
    user_id         TEXT,
    method          TEXT NOT NULL,
    tool            TEXT,
    outcome         TEXT NOT NULL,
    latency_us      INTEGER NOT NULL,
    request_bytes   INTEGER NOT NULL,
    response_bytes  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX usage_events_time ON usage_events (tenant_id, occurred_at);

-- key_id and tool are empty strings when absent, so they can be part of the key.
-- billable counts served tools/call, resources/read and prompts/get: what quotas meter.
CREATE TABLE usage_rollups (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period          TEXT NOT NULL CHECK (period IN ('hour', 'day')),
    period_start    TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    tool            TEXT NOT NULL,
    calls           INTEGER NOT NULL,
    billable        INTEGER NOT NULL,
    errors          INTEGER NOT NULL,
    request_bytes   INTEGER NOT NULL,
    response_bytes  INTEGER NOT NULL,
    latency_us_sum  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, period, period_start, key_id, tool)
);

-- Usage metering: raw events (one per MCP request) and hourly/daily roll-ups that the
-- batched writer maintains in the same transaction as the events.
CREATE TABLE usage_events (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    key_id          uuid,
    user_id         uuid,
    method          text NOT NULL,
    tool            text,
    outcome         text NOT NULL,
    latency_us      bigint NOT NULL,
    request_bytes   bigint NOT NULL,
    response_bytes  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX usage_events_time ON usage_events (tenant_id, occurred_at);

-- key_id and tool are empty strings when absent, so they can be part of the key.
-- billable counts served tools/call, resources/read and prompts/get: what quotas meter.
CREATE TABLE usage_rollups (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period          text NOT NULL CHECK (period IN ('hour', 'day')),
    period_start    timestamptz NOT NULL,
    key_id          text NOT NULL,
    tool            text NOT NULL,
    calls           bigint NOT NULL,
    billable        bigint NOT NULL,
    errors          bigint NOT NULL,
    request_bytes   bigint NOT NULL,
    response_bytes  bigint NOT NULL,
    latency_us_sum  bigint NOT NULL,
    PRIMARY KEY (tenant_id, period, period_start, key_id, tool)
);

ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON usage_events
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
ALTER TABLE usage_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON usage_rollups
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON usage_events, usage_rollups TO cairn_app;

-- Outbound webhooks: endpoints tenants subscribe, deliveries (one per event and endpoint)
-- and every attempt made.
CREATE TABLE webhook_endpoints (
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             text NOT NULL,
    url            text NOT NULL,
    event_types    text NOT NULL,
    secret         bytea NOT NULL,
    status         text NOT NULL CHECK (status IN ('enabled', 'disabled')),
    failing_since  timestamptz,
    disabled_at    timestamptz,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
    tenant_id       uuid NOT NULL,
    id              text NOT NULL,
    endpoint_id     text NOT NULL,
    event_type      text NOT NULL,
    payload         text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    tenant_id    uuid NOT NULL,
    delivery_id  text NOT NULL,
    attempt      integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    latency_ms   bigint NOT NULL,
    response     text,
    error        text,
    PRIMARY KEY (tenant_id, delivery_id, attempt)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_deliveries', 'webhook_attempts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_scope ON %I
            USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
            WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO cairn_app', t);
    END LOOP;
END
$$;

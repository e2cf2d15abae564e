-- Inbound webhooks: per-tenant named sources (verification scheme + sealed secrets),
-- verified events, and the message ids seen recently (replay protection).
CREATE TABLE webhook_sources (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              text NOT NULL,
    name            text NOT NULL,
    scheme          text NOT NULL,
    secret          bytea NOT NULL,
    previous_secret bytea,
    previous_until  timestamptz,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- Range-partitioned by month; partitions are created ahead by the server
-- (`Store::ensure_webhook_partitions`) and retention drops whole partitions.
CREATE TABLE webhook_events (
    tenant_id   uuid NOT NULL,
    received_at timestamptz NOT NULL,
    id          text NOT NULL,
    source_id   text NOT NULL,
    message_id  text,
    event_type  text,
    payload     text NOT NULL,
    PRIMARY KEY (tenant_id, received_at, id)
) PARTITION BY RANGE (received_at);

CREATE TABLE webhook_seen (
    tenant_id  uuid NOT NULL,
    source_id  text NOT NULL,
    message_id text NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, source_id, message_id)
);
CREATE INDEX webhook_seen_time ON webhook_seen (seen_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_sources', 'webhook_events', 'webhook_seen'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_scope ON %I
            USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
            WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO cairn_app', t);
    END LOOP;
END
$$;

-- Inbound webhooks are handed to a handler by event type: the source keeps its handler
-- list (JSON), each event what its handler did. Columns added to the partitioned parent
-- reach every partition.
ALTER TABLE webhook_sources ADD COLUMN handlers text NOT NULL DEFAULT '[]';
ALTER TABLE webhook_events ADD COLUMN status text NOT NULL DEFAULT 'stored';
ALTER TABLE webhook_events ADD COLUMN handler text;
ALTER TABLE webhook_events ADD COLUMN result text;
ALTER TABLE webhook_events ADD COLUMN handled_at timestamptz;

-- Inbound webhooks are handed to a handler by event type: the source keeps its handler
-- list (JSON), each event what its handler did.
ALTER TABLE webhook_sources ADD COLUMN handlers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE webhook_events ADD COLUMN status TEXT NOT NULL DEFAULT 'stored';
ALTER TABLE webhook_events ADD COLUMN handler TEXT;
ALTER TABLE webhook_events ADD COLUMN result TEXT;
ALTER TABLE webhook_events ADD COLUMN handled_at TEXT;

-- Operator-only tenant flag: serve the official MCP conformance suite's fixtures and
-- allow unauthenticated MCP access (the suite sends no credentials). Never on by default.
ALTER TABLE tenants ADD COLUMN conformance_fixtures boolean NOT NULL DEFAULT false;

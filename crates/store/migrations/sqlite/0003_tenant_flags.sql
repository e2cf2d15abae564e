-- Operator-only tenant flag: serve the official MCP conformance suite's fixtures and
-- allow unauthenticated MCP access (the suite sends no credentials). Never on by default.
ALTER TABLE tenants ADD COLUMN conformance_fixtures INTEGER NOT NULL DEFAULT 0 CHECK (conformance_fixtures IN (0, 1));

-- A key presented at the wrong tenant's endpoint is told apart from an unknown one (a
-- denied cross-tenant attempt is audited) by its public id alone.
CREATE INDEX api_keys_public_id ON api_keys (public_id);

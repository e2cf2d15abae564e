-- Envelope encryption. A master key (KEK, outside the database) wraps per-tenant data
-- keys (DEKs); DEKs encrypt secret columns. See docs/security.md.

-- One row per master-key version ever used: an HMAC check value that detects a wrong
-- master key at start instead of at the first decryption. Platform-wide, no tenant.
CREATE TABLE key_versions (
    version      integer PRIMARY KEY,
    provider     text NOT NULL,
    check_value  bytea NOT NULL,
    -- active: wraps new data keys; decrypt_only: still configured to unwrap old ones;
    -- retired: no longer configured. Maintained at every start.
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'decrypt_only', 'retired')),
    created_at   timestamptz NOT NULL
);
ALTER TABLE key_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE key_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON key_versions
    USING (cairn_platform_scope()) WITH CHECK (cairn_platform_scope());
GRANT SELECT, INSERT, UPDATE ON key_versions TO cairn_app;

-- A tenant's data keys, wrapped under a KEK version. One is active (encrypts);
-- decrypt_only ones still open old rows during a rotation; retired ones open nothing.
CREATE TABLE tenant_data_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    version      integer NOT NULL,
    kek_version  integer NOT NULL,
    wrapped_key  bytea NOT NULL,
    state        text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, version)
);
CREATE UNIQUE INDEX tenant_data_keys_one_active ON tenant_data_keys (tenant_id) WHERE state = 'active';

ALTER TABLE tenant_data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenant_data_keys
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_data_keys TO cairn_app;

-- Signing keys created before encryption held their private half in clear: discard
-- them (a new key is created on first use; tokens they signed stop verifying).
DELETE FROM oauth_signing_keys;

-- API keys. Only an HMAC of the key (under the server's pepper) is stored. During a
-- rotation the previous hash stays valid until previous_expires_at.
CREATE TABLE api_keys (
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                    TEXT NOT NULL,
    public_id             TEXT NOT NULL,
    name                  TEXT NOT NULL,
    user_id               TEXT,
    environment           TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    scopes                TEXT NOT NULL,
    tier                  TEXT NOT NULL,
    secret_hash           BLOB NOT NULL,
    previous_secret_hash  BLOB,
    previous_expires_at   TEXT,
    expires_at            TEXT,
    created_at            TEXT NOT NULL,
    rotated_at            TEXT,
    last_used_at          TEXT,
    revoked_at            TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, public_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
);

-- Foundation: tenants, users, memberships, operator tokens, audit events.
-- SQLite stores UUIDs and timestamps as TEXT (RFC 3339, UTC) and JSON as TEXT.
-- Isolation on SQLite is the store's tenant argument; PostgreSQL adds RLS underneath.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    region      TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE memberships (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, tenant_id);

CREATE TABLE operator_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    token_digest  TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);

-- Audit rows outlive the tenant they describe (no foreign key): a deleted tenant's
-- trail is still evidence.
CREATE TABLE audit_events (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target       TEXT,
    outcome      TEXT NOT NULL,
    request_id   TEXT,
    source_ip    TEXT,
    user_agent   TEXT,
    details      TEXT NOT NULL DEFAULT 'null',
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_time ON audit_events (tenant_id, occurred_at);

CREATE TABLE platform_audit_events (
    id           TEXT PRIMARY KEY NOT NULL,
    occurred_at  TEXT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target       TEXT,
    outcome      TEXT NOT NULL,
    request_id   TEXT,
    source_ip    TEXT,
    user_agent   TEXT,
    details      TEXT NOT NULL DEFAULT 'null'
);
CREATE INDEX platform_audit_events_time ON platform_audit_events (occurred_at);

-- Foundation: tenants, users, memberships, operator tokens, audit events,
-- and the row-level-security set-up every later tenant table follows.
--
-- The application runs every statement as the role `cairn_app` (the pool issues
-- SET ROLE on connect). cairn_app cannot bypass RLS. A transaction declares its scope
-- with set_config(..., true), i.e. transaction-local:
--   app.tenant_id = '<uuid>'  -> sees exactly that tenant's rows
--   app.platform  = 'on'      -> operator scope: platform tables and all tenants
-- With neither set, tenant tables return no rows.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_app') THEN
        CREATE ROLE cairn_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
EXCEPTION
    -- Several databases on one cluster may migrate at the same moment (tests do).
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'cairn_app', 'MEMBER') THEN
        EXECUTE format('GRANT cairn_app TO %I', current_user);
    END IF;
END
$$;

-- Scope helpers. STABLE so the planner evaluates them once per statement and can use
-- indexes on tenant_id.
CREATE FUNCTION cairn_current_tenant() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE FUNCTION cairn_platform_scope() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(current_setting('app.platform', true), '') = 'on' $$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    plan        text NOT NULL,
    region      text,
    status      text NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    display_name   text NOT NULL,
    password_hash  text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, tenant_id);

CREATE TABLE operator_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    token_digest  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Audit rows outlive the tenant they describe (no foreign key): a deleted tenant's
-- trail is still evidence.
CREATE TABLE audit_events (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    occurred_at  timestamptz NOT NULL,
    actor_kind   text NOT NULL,
    actor_id     text,
    action       text NOT NULL,
    target       text,
    outcome      text NOT NULL,
    request_id   text,
    source_ip    text,
    user_agent   text,
    details      jsonb NOT NULL DEFAULT 'null',
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_time ON audit_events (tenant_id, occurred_at);

CREATE TABLE platform_audit_events (
    id           uuid PRIMARY KEY,
    occurred_at  timestamptz NOT NULL,
    actor_kind   text NOT NULL,
    actor_id     text,
    action       text NOT NULL,
    target       text,
    outcome      text NOT NULL,
    request_id   text,
    source_ip    text,
    user_agent   text,
    details      jsonb NOT NULL DEFAULT 'null'
);
CREATE INDEX platform_audit_events_time ON platform_audit_events (occurred_at);

-- Row-level security. FORCE applies it to the table owner too.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenants
    USING (cairn_platform_scope() OR id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR id = cairn_current_tenant());

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON memberships
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());

-- A tenant scope sees only the users who are its members.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON users
    USING (cairn_platform_scope() OR EXISTS (
        SELECT 1 FROM memberships m
        WHERE m.user_id = users.id AND m.tenant_id = cairn_current_tenant()))
    WITH CHECK (cairn_platform_scope());

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_events
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());

ALTER TABLE operator_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE operator_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON operator_tokens
    USING (cairn_platform_scope()) WITH CHECK (cairn_platform_scope());

ALTER TABLE platform_audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON platform_audit_events
    USING (cairn_platform_scope()) WITH CHECK (cairn_platform_scope());

GRANT USAGE ON SCHEMA public TO cairn_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, users, memberships, operator_tokens,
    audit_events, platform_audit_events TO cairn_app;
GRANT EXECUTE ON FUNCTION cairn_current_tenant(), cairn_platform_scope() TO cairn_app;

-- An external identity provider a tenant trusts (Clerk, Auth0, Keycloak…): JWTs it
-- issues for members of the tenant are accepted. At most one per tenant.
CREATE TABLE tenant_identity_providers (
    tenant_id    uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    issuer       text NOT NULL,
    jwks_url     text NOT NULL,
    audience     text NOT NULL,
    user_claim   text NOT NULL,
    algorithms   jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

ALTER TABLE tenant_identity_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_identity_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenant_identity_providers
    USING (cairn_platform_scope() OR tenant_id = cairn_current_tenant())
    WITH CHECK (cairn_platform_scope() OR tenant_id = cairn_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_identity_providers TO cairn_app;

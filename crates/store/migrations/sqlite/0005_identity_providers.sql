-- An external identity provider a tenant trusts (Clerk, Auth0, Keycloak…): JWTs it
-- issues for members of the tenant are accepted. At most one per tenant.
CREATE TABLE tenant_identity_providers (
    tenant_id    TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    issuer       TEXT NOT NULL,
    jwks_url     TEXT NOT NULL,
    audience     TEXT NOT NULL,
    user_claim   TEXT NOT NULL,
    algorithms   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

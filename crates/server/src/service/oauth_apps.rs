//! OAuth clients created by an operator or tenant admin, and the tenant's access-token
//! signing keys.

use cairn_core::audit::Outcome;
use cairn_core::ids::UserId;
use cairn_core::oauth::{ClientMetadata, Source};
use cairn_store::oauth_apps::{OAuthApp, Registration};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::oauth::register::{create_client, CreatedClient};
use crate::state::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOAuthApp {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    /// `none` (public client), `client_secret_basic` (default) or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// Default: `authorization_code` and `refresh_token`.
    pub grant_types: Option<Vec<String>>,
    /// `web` or `native`; default from the redirect URIs.
    pub application_type: Option<String>,
    pub client_uri: Option<String>,
    /// Space-separated scopes the client may ask for (default the MCP scopes).
    pub scope: Option<String>,
    /// The user the client belongs to (for "list for user").
    pub created_by: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppQuery {
    pub created_by: Option<String>,
}

fn invalid(message: String) -> ApiError {
    ApiError::new(Code::InvalidField, message)
}

pub async fn create(ctx: &Ctx, slug: &str, input: CreateOAuthApp) -> Result<CreatedClient, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let meta = ClientMetadata {
        client_id: None,
        redirect_uris: Some(input.redirect_uris),
        application_type: input.application_type,
        token_endpoint_auth_method: input.token_endpoint_auth_method,
        grant_types: Some(
            input
                .grant_types
                .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]),
        ),
        response_types: None,
        client_name: Some(input.client_name),
        client_uri: input.client_uri,
        logo_uri: None,
        scope: input.scope,
    };
    let client = meta.validate(Source::Admin, None).map_err(|e| invalid(e.to_string()))?;
    let created_by = match input.created_by.as_deref() {
        Some(u) => {
            let user = UserId::parse("created_by", u)?;
            if ctx.store().member_role(tenant.id, user).await?.is_none() {
                return Err(ApiError::new(
                    Code::MembershipNotFound,
                    "created_by is not a member of this tenant",
                ));
            }
            Some(user)
        }
        None => None,
    };
    let created = create_client(ctx.store(), tenant.id, &client, Registration::Admin, created_by).await?;
    let event = ctx
        .event("oauth.client_registered", Outcome::Success)
        .tenant(tenant.id)
        .target(created.app.client_id.clone())
        .details(
            json!({ "registration": "admin", "client_name": created.app.client.client_name,
            "confidential": created.client_secret.is_some() }),
        );
    ctx.audit(event).await;
    Ok(created)
}

pub async fn list(ctx: &Ctx, slug: &str, query: AppQuery) -> Result<Vec<OAuthApp>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let created_by = query
        .created_by
        .as_deref()
        .map(|u| UserId::parse("created_by", u))
        .transpose()?;
    Ok(ctx.store().list_oauth_apps(tenant.id, created_by).await?)
}

pub async fn show(ctx: &Ctx, slug: &str, client_id: &str) -> Result<OAuthApp, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    ctx.store()
        .get_oauth_app(tenant.id, client_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::OAuthClientNotFound, "no such OAuth client"))
}

pub async fn delete(ctx: &Ctx, slug: &str, client_id: &str) -> Result<(), ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    if !ctx.store().delete_oauth_app(tenant.id, client_id).await? {
        return Err(ApiError::new(Code::OAuthClientNotFound, "no such OAuth client"));
    }
    let event = ctx
        .event("oauth.client_deleted", Outcome::Success)
        .tenant(tenant.id)
        .target(client_id.to_owned());
    ctx.audit(event).await;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct RotatedKey {
    /// The new active key.
    pub kid: String,
}

/// Makes a new signing key active; the old one stays published until its tokens expire.
pub async fn rotate_signing_key(ctx: &Ctx, slug: &str) -> Result<RotatedKey, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let kid = ctx
        .state
        .oauth
        .signer
        .rotate(ctx.store(), tenant.id)
        .await
        .map_err(|e| match e {
            crate::oauth::jwt::SignError::Store(s) => ApiError::from(s),
            crate::oauth::jwt::SignError::Crypto(c) => ApiError::internal(c),
            crate::oauth::jwt::SignError::Keyring(k) => k.into(),
        })?;
    let event = ctx
        .event("oauth.signing_key_rotated", Outcome::Success)
        .tenant(tenant.id)
        .target(kid.clone());
    ctx.audit(event).await;
    Ok(RotatedKey { kid })
}

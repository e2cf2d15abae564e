//! A tenant's credentials at upstream OAuth providers (`store_tenant_oauth_credentials`,
//! `get_tenant_oauth_credentials`, `get_tenant_oauth_credential`). The secret is
//! encrypted with the tenant's data key and never returned; a fingerprint identifies it.

use cairn_core::audit::Outcome;
use cairn_core::ids::TenantId;
use cairn_store::oauth_credentials::{OAuthCredential, PutCredential};
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::crypto::Slot;
use crate::error::{ApiError, Code};
use crate::state::{AppState, Ctx};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutOAuthCredential {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Sent as `resource` (RFC 8707) to providers that need it (e.g. another Cairn).
    #[serde(default)]
    pub resource: Option<String>,
}

impl std::fmt::Debug for PutOAuthCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutOAuthCredential")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        code: Code::InvalidField,
        message: message.into(),
        field: Some(field),
    }
}

fn slot(provider: &str) -> Slot<'_> {
    Slot {
        table: "tenant_oauth_credentials",
        column: "client_secret",
        row: provider,
    }
}

pub fn check_provider(provider: &str) -> Result<(), ApiError> {
    let ok = !provider.is_empty()
        && provider.len() <= 63
        && provider.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && provider
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid("provider", "provider: 1–63 of a-z, 0-9, - and _"))
    }
}

fn check_url(state: &AppState, field: &'static str, value: &str) -> Result<String, ApiError> {
    let url = url::Url::parse(value).map_err(|_| invalid(field, format!("{field}: must be a URL")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let http_ok = url.scheme() == "http" && loopback && state.config.upstream_allow_http_loopback;
    if url.scheme() != "https" && !http_ok {
        return Err(invalid(field, format!("{field}: must be an https URL")));
    }
    if url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid(
            field,
            format!("{field}: must not carry a fragment or credentials"),
        ));
    }
    Ok(url.to_string())
}

/// `fp_` + 12 hex characters of a peppered HMAC: tells secrets apart, reveals nothing.
fn fingerprint(state: &AppState, secret: &str) -> String {
    let digest = state.keys.hasher().hash(secret);
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("fp_{hex}")
}

pub async fn put(
    ctx: &Ctx,
    slug: &str,
    provider: &str,
    input: PutOAuthCredential,
) -> Result<OAuthCredential, ApiError> {
    check_provider(provider)?;
    let client_id = cairn_core::validate_text("client_id", &input.client_id, 500)?;
    if input.client_secret.is_empty() || input.client_secret.len() > 4096 {
        return Err(invalid("client_secret", "client_secret: 1–4096 bytes"));
    }
    let auth_url = check_url(&ctx.state, "auth_url", &input.auth_url)?;
    let token_url = check_url(&ctx.state, "token_url", &input.token_url)?;
    if input.scopes.len() > 100
        || input
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.len() > 200 || s.contains(' '))
    {
        return Err(invalid("scopes", "scopes: up to 100 scope names without spaces"));
    }
    let resource = input
        .resource
        .as_deref()
        .map(|r| check_url(&ctx.state, "resource", r))
        .transpose()?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let sealed = ctx
        .state
        .keyring
        .encrypt(ctx.store(), tenant.id, slot(provider), input.client_secret.as_bytes())
        .await?;
    let fp = fingerprint(&ctx.state, &input.client_secret);
    let stored = ctx
        .store()
        .put_oauth_credential(
            tenant.id,
            &PutCredential {
                provider,
                client_id: &client_id,
                sealed_secret: &sealed,
                secret_fingerprint: &fp,
                auth_url: &auth_url,
                token_url: &token_url,
                scopes: &input.scopes,
                resource: resource.as_deref(),
            },
        )
        .await?;
    let event = ctx
        .event("oauth_credential.stored", Outcome::Success)
        .tenant(tenant.id)
        .target(provider.to_owned())
        .details(json!({ "client_id": stored.client_id, "secret_fingerprint": stored.secret_fingerprint }));
    ctx.audit(event).await;
    Ok(stored)
}

pub async fn list(ctx: &Ctx, slug: &str) -> Result<Vec<OAuthCredential>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    Ok(ctx.store().list_oauth_credentials(tenant.id).await?)
}

pub async fn get(ctx: &Ctx, slug: &str, provider: &str) -> Result<OAuthCredential, ApiError> {
    check_provider(provider)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let found = ctx
        .store()
        .get_oauth_credential(tenant.id, provider)
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, "no credentials for this provider"))?;
    let event = ctx
        .event("oauth_credential.read", Outcome::Success)
        .tenant(tenant.id)
        .target(provider.to_owned());
    ctx.audit(event).await;
    Ok(found)
}

pub async fn delete(ctx: &Ctx, slug: &str, provider: &str) -> Result<(), ApiError> {
    check_provider(provider)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    if !ctx.store().delete_oauth_credential(tenant.id, provider).await? {
        return Err(ApiError::new(Code::NotFound, "no credentials for this provider"));
    }
    let event = ctx
        .event("oauth_credential.deleted", Outcome::Success)
        .tenant(tenant.id)
        .target(provider.to_owned());
    ctx.audit(event).await;
    Ok(())
}

/// The credentials with the secret in clear, for Cairn acting as an OAuth client upstream.
pub async fn open_secret(
    state: &AppState,
    tenant: TenantId,
    provider: &str,
) -> Result<Option<(OAuthCredential, Zeroizing<String>)>, crate::connections::ConnectionError> {
    let Some(cred) = state.store.get_oauth_credential(tenant, provider).await? else {
        return Ok(None);
    };
    let plain = state
        .keyring
        .decrypt(&state.store, tenant, slot(provider), &cred.sealed_secret)
        .await?;
    let secret = Zeroizing::new(String::from_utf8_lossy(&plain).into_owned());
    Ok(Some((cred, secret)))
}

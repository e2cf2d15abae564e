//! A tenant's trusted external identity provider.

use cairn_core::audit::Outcome;
use cairn_store::identity_providers::IdentityProvider;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::idp::ALGORITHMS;
use crate::state::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutIdentityProvider {
    /// Must equal the `iss` claim of the tokens.
    pub issuer: String,
    pub jwks_url: String,
    /// Must appear in the `aud` claim.
    pub audience: String,
    /// The claim holding the user's e-mail address (default `email`).
    pub user_claim: Option<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA).
    pub algorithms: Option<Vec<String>>,
}

fn invalid(field: &'static str, message: String) -> ApiError {
    ApiError {
        code: Code::InvalidField,
        message,
        field: Some(field),
    }
}

pub async fn put(ctx: &Ctx, slug: &str, input: PutIdentityProvider) -> Result<IdentityProvider, ApiError> {
    let issuer = cairn_core::validate_text("issuer", &input.issuer, 500)?;
    let audience = cairn_core::validate_text("audience", &input.audience, 500)?;
    let user_claim = cairn_core::validate_text("user_claim", input.user_claim.as_deref().unwrap_or("email"), 200)?;
    let url = url::Url::parse(&input.jwks_url).map_err(|_| invalid("jwks_url", "jwks_url: must be a URL".into()))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let http_ok = url.scheme() == "http" && loopback && ctx.state.config.idp_allow_http_loopback;
    if url.scheme() != "https" && !http_ok {
        return Err(invalid("jwks_url", "jwks_url: must be an https URL".into()));
    }
    let algorithms = input
        .algorithms
        .unwrap_or_else(|| vec!["RS256".into(), "ES256".into(), "EdDSA".into()]);
    if algorithms.is_empty() {
        return Err(invalid("algorithms", "algorithms: name at least one".into()));
    }
    if let Some(bad) = algorithms.iter().find(|a| !ALGORITHMS.contains(&a.as_str())) {
        let known = ALGORITHMS.join(", ");
        return Err(invalid(
            "algorithms",
            format!("algorithms: '{bad}' is not allowed (asymmetric only: {known})"),
        ));
    }
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let idp = ctx
        .store()
        .put_identity_provider(tenant.id, &issuer, url.as_str(), &audience, &user_claim, &algorithms)
        .await?;
    ctx.state.idp.evict(tenant.id);
    let event = ctx
        .event("identity_provider.configured", Outcome::Success)
        .tenant(tenant.id)
        .details(json!({ "issuer": idp.issuer, "jwks_url": idp.jwks_url, "algorithms": idp.algorithms }));
    ctx.audit(event).await;
    Ok(idp)
}

pub async fn get(ctx: &Ctx, slug: &str) -> Result<IdentityProvider, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    ctx.store()
        .get_identity_provider(tenant.id)
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, "this tenant has no identity provider"))
}

pub async fn delete(ctx: &Ctx, slug: &str) -> Result<(), ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    if !ctx.store().delete_identity_provider(tenant.id).await? {
        return Err(ApiError::new(Code::NotFound, "this tenant has no identity provider"));
    }
    ctx.state.idp.evict(tenant.id);
    ctx.audit(
        ctx.event("identity_provider.removed", Outcome::Success)
            .tenant(tenant.id),
    )
    .await;
    Ok(())
}

//! API keys of a tenant: create (shown once), list, rotate with overlap, revoke.

use cairn_core::api_key::{self, ApiKey, KeyEnv, Scope};
use cairn_core::audit::Outcome;
use cairn_core::ids::{ApiKeyId, UserId};
use cairn_store::api_keys::NewApiKey;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use super::{List, ListParams};
use crate::error::{ApiError, Code};
use crate::state::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    pub scopes: Vec<String>,
    pub tier: Option<String>,
    /// `live` (default) or `test`.
    pub environment: Option<String>,
    pub user_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old secret keeps working; default from config.
    pub overlap_secs: Option<u64>,
}

/// A key with its secret: the only time the secret is ever shown.
#[derive(Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

pub async fn create(ctx: &Ctx, slug: &str, input: CreateKey) -> Result<IssuedKey, ApiError> {
    let name = cairn_core::validate_text("name", &input.name, 100)?;
    let scopes = Scope::parse_list(&input.scopes)?;
    let environment = input
        .environment
        .as_deref()
        .map(KeyEnv::parse)
        .transpose()?
        .unwrap_or(KeyEnv::Live);
    let user_id = input
        .user_id
        .as_deref()
        .map(|u| UserId::parse("user_id", u))
        .transpose()?;
    let config = &ctx.state.config;
    let tier_name = input.tier.unwrap_or_else(|| config.default_tier.clone());
    let Some(tier) = config.tiers.get(&tier_name) else {
        let reason = format!("tier: unknown tier '{tier_name}' (known: {})", config.tier_names());
        return Err(ApiError {
            code: Code::InvalidField,
            message: reason,
            field: Some("tier"),
        });
    };
    let now = Utc::now();
    if input.expires_at.is_some_and(|t| t <= now) {
        return Err(cairn_core::ValidationError::new("expires_at", "must be in the future").into());
    }
    // A tier with a lifetime (trial) bounds the expiry even if the caller asks for more.
    let tier_end = tier.expires_after_days.map(|d| now + Duration::days(i64::from(d)));
    let expires_at = match (input.expires_at, tier_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let minted = api_key::mint(environment);
    let new = NewApiKey {
        public_id: minted.public_id,
        name,
        user_id,
        environment,
        scopes,
        tier: tier_name,
        expires_at,
        secret_hash: ctx.state.keys.hasher().hash(minted.plaintext.expose_secret()).to_vec(),
    };
    let key = ctx.store().create_api_key(tenant.id, &new).await.map_err(|e| match e {
        cairn_store::StoreError::MembershipNotFound => ApiError {
            code: Code::InvalidField,
            message: "user_id: the user is not a member of this tenant".into(),
            field: Some("user_id"),
        },
        other => other.into(),
    })?;
    let event = ctx
        .event("api_key.created", Outcome::Success)
        .tenant(tenant.id)
        .target(key.id.to_string())
        .details(
            json!({ "public_id": key.public_id, "scopes": key.scopes, "tier": key.tier, "expires_at": key.expires_at }),
        );
    ctx.audit(event).await;
    Ok(IssuedKey {
        key,
        secret: minted.plaintext,
    })
}

pub async fn list(ctx: &Ctx, slug: &str, params: &ListParams) -> Result<List<ApiKey>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    Ok(ctx.store().list_api_keys(tenant.id, &params.page()).await?.into())
}

fn key_id(id: &str) -> Result<ApiKeyId, ApiError> {
    ApiKeyId::parse("key_id", id).map_err(|_| ApiError::new(Code::ApiKeyNotFound, "api key not found"))
}

pub async fn get(ctx: &Ctx, slug: &str, id: &str) -> Result<ApiKey, ApiError> {
    let id = key_id(id)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    Ok(ctx.store().get_api_key(tenant.id, id).await?)
}

pub async fn rotate(ctx: &Ctx, slug: &str, id: &str, input: RotateKey) -> Result<IssuedKey, ApiError> {
    let id = key_id(id)?;
    let overlap = input
        .overlap_secs
        .unwrap_or(ctx.state.config.api_key_rotation_overlap_secs);
    let overlap = Duration::seconds(i64::try_from(overlap.min(365 * 86_400)).unwrap_or(0));
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let current = ctx.store().get_api_key(tenant.id, id).await?;
    if current.revoked_at.is_some() {
        return Err(ApiError::new(Code::Conflict, "a revoked key cannot be rotated"));
    }
    let secret = api_key::remint(current.environment, &current.public_id);
    let hash = ctx.state.keys.hasher().hash(secret.expose_secret());
    let key = ctx
        .store()
        .rotate_api_key(tenant.id, id, &hash, Utc::now() + overlap)
        .await?;
    ctx.state.keys.evict(tenant.id, &key.public_id);
    let event = ctx
        .event("api_key.rotated", Outcome::Success)
        .tenant(tenant.id)
        .target(key.id.to_string())
        .details(json!({ "public_id": key.public_id, "previous_valid_until": key.previous_expires_at }));
    ctx.audit(event).await;
    let data = json!({ "key_id": key.id, "public_id": key.public_id, "previous_valid_until": key.previous_expires_at });
    crate::webhooks_out::publish(&ctx.state, tenant.id, "key.rotated", data).await;
    Ok(IssuedKey { key, secret })
}

pub async fn revoke(ctx: &Ctx, slug: &str, id: &str) -> Result<ApiKey, ApiError> {
    let id = key_id(id)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let key = ctx.store().revoke_api_key(tenant.id, id).await?;
    ctx.state.keys.evict(tenant.id, &key.public_id);
    let event = ctx
        .event("api_key.revoked", Outcome::Success)
        .tenant(tenant.id)
        .target(key.id.to_string())
        .details(json!({ "public_id": key.public_id }));
    ctx.audit(event).await;
    Ok(key)
}

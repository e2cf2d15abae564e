//! Outbound webhook endpoints: a tenant subscribes URLs to event types; each endpoint
//! has its own Standard Webhooks secret (sealed, shown once). Deliveries and their
//! attempts can be inspected and replayed.

use cairn_core::audit::Outcome;
use cairn_core::ids::{WebhookDeliveryId, WebhookEndpointId};
use cairn_core::webhook::standard::WebhookSecret;
use cairn_store::webhook_endpoints::{AttemptRow, DeliveryRow, WebhookEndpoint};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::crypto::Slot;
use crate::error::{ApiError, Code};
use crate::state::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    pub url: String,
    /// Event types (`kb.ingest.completed`, `key.rotated`, …) or `*` for all.
    pub event_types: Vec<String>,
    /// A `whsec_…` secret; generated when absent.
    pub secret: Option<String>,
}

#[derive(Serialize)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// Shown once: the receiver verifies signatures with it.
    pub secret: String,
}

#[derive(Serialize)]
pub struct DeliveryReport {
    #[serde(flatten)]
    pub delivery: DeliveryRow,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    pub attempts_log: Vec<AttemptReport>,
}

#[derive(Serialize)]
pub struct AttemptReport {
    #[serde(flatten)]
    pub attempt: AttemptRow,
    pub attempted_at: chrono::DateTime<chrono::Utc>,
}

fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such webhook endpoint or delivery")
}

fn check_types(types: &[String]) -> Result<(), ApiError> {
    let ok = (1..=32).contains(&types.len())
        && types.iter().all(|t| {
            (1..=64).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-*".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "event_types",
            "event_types: 1 to 32 names like kb.ingest.completed, or *",
        ))
    }
}

pub async fn create(ctx: &Ctx, slug: &str, input: CreateEndpoint) -> Result<CreatedEndpoint, ApiError> {
    crate::webhooks_out::check_url(&input.url, &ctx.state.config.webhooks)
        .map_err(|e| ApiError::invalid_field("url", e))?;
    check_types(&input.event_types)?;
    let secret = match &input.secret {
        Some(s) => WebhookSecret::parse(s).map_err(|e| ApiError::invalid_field("secret", e.reason))?,
        None => WebhookSecret::generate(),
    };
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let id = WebhookEndpointId::new();
    let row = id.to_string();
    let slot = Slot {
        table: "webhook_endpoints",
        column: "secret",
        row: &row,
    };
    let sealed = ctx
        .state
        .keyring
        .encrypt(&ctx.state.store, tenant.id, slot, secret.expose_bytes())
        .await?;
    let endpoint = ctx
        .store()
        .create_webhook_endpoint(tenant.id, id, &input.url, &input.event_types, &sealed)
        .await?;
    let event = ctx
        .event("webhook_endpoint.created", Outcome::Success)
        .tenant(tenant.id)
        .target(endpoint.id.to_string())
        .details(json!({ "url": endpoint.url, "event_types": endpoint.event_types }));
    ctx.audit(event).await;
    Ok(CreatedEndpoint {
        endpoint,
        secret: secret.expose_encoded().expose_secret().to_owned(),
    })
}

pub async fn list(ctx: &Ctx, slug: &str) -> Result<Vec<WebhookEndpoint>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    Ok(ctx.store().webhook_endpoints(tenant.id).await?)
}

pub async fn delete(ctx: &Ctx, slug: &str, id: &str) -> Result<(), ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let id: WebhookEndpointId = id.parse().map_err(|_| not_found())?;
    if !ctx.store().delete_webhook_endpoint(tenant.id, id).await? {
        return Err(not_found());
    }
    let event = ctx
        .event("webhook_endpoint.deleted", Outcome::Success)
        .tenant(tenant.id)
        .target(id.to_string());
    ctx.audit(event).await;
    Ok(())
}

/// Turns a disabled endpoint back on (after the receiver was fixed).
pub async fn enable(ctx: &Ctx, slug: &str, id: &str) -> Result<WebhookEndpoint, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let id: WebhookEndpointId = id.parse().map_err(|_| not_found())?;
    if !ctx.store().enable_webhook_endpoint(tenant.id, id).await? {
        return Err(not_found());
    }
    let event = ctx
        .event("webhook_endpoint.enabled", Outcome::Success)
        .tenant(tenant.id)
        .target(id.to_string());
    ctx.audit(event).await;
    ctx.store().webhook_endpoint(tenant.id, id).await?.ok_or_else(not_found)
}

/// An endpoint's newest deliveries with every attempt.
pub async fn deliveries(ctx: &Ctx, slug: &str, id: &str) -> Result<Vec<DeliveryReport>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let id: WebhookEndpointId = id.parse().map_err(|_| not_found())?;
    ctx.store()
        .webhook_endpoint(tenant.id, id)
        .await?
        .ok_or_else(not_found)?;
    let mut out = Vec::new();
    for d in ctx.store().webhook_deliveries(tenant.id, id, 100).await? {
        let did: WebhookDeliveryId = d.id.parse().map_err(|_| ApiError::internal("bad delivery id"))?;
        let attempts = ctx.store().webhook_attempts(tenant.id, did).await?;
        out.push(DeliveryReport {
            created_at: d.created_at(),
            next_attempt_at: d.next_attempt_at(),
            attempts_log: attempts
                .into_iter()
                .map(|a| AttemptReport {
                    attempted_at: a.attempted_at(),
                    attempt: a,
                })
                .collect(),
            delivery: d,
        });
    }
    Ok(out)
}

/// Sends a delivery again now (after the receiver was fixed, say).
pub async fn replay(ctx: &Ctx, slug: &str, endpoint: &str, delivery: &str) -> Result<(), ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let delivery: WebhookDeliveryId = delivery.parse().map_err(|_| not_found())?;
    let found = ctx
        .store()
        .webhook_delivery(tenant.id, delivery)
        .await?
        .ok_or_else(not_found)?;
    if found.endpoint_id != endpoint {
        return Err(not_found());
    }
    ctx.store().replay_webhook_delivery(tenant.id, delivery).await?;
    let event = ctx
        .event("webhook_delivery.replayed", Outcome::Success)
        .tenant(tenant.id)
        .target(delivery.to_string());
    ctx.audit(event).await;
    Ok(())
}

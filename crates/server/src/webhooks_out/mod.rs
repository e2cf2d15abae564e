//! Outbound webhooks: platform events (`kb.ingest.completed`, `key.rotated`, …) go to the
//! endpoints a tenant subscribed, signed per Standard Webhooks. A background worker on
//! every replica claims due deliveries (a lease, so no two replicas send the same attempt),
//! sends them with a timeout, logs every attempt, retries on the configured schedule and
//! disables an endpoint that keeps failing (audited). Endpoints on private, loopback or
//! link-local addresses are refused unless `webhooks.allow_private_addresses` (tests).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::ids::{TenantId, WebhookDeliveryId};
use cairn_core::webhook::standard::{self, WebhookSecret};
use cairn_store::webhook_endpoints::AttemptOutcome;
use serde_json::{json, Value};

use crate::config::webhooks::WebhookConfig;
use crate::crypto::Slot;
use crate::oauth::cimd::{dialable, PublicOnly};
use crate::state::AppState;

pub mod operator;

/// Deliveries one worker pass claims.
const CLAIM: i64 = 20;

/// Publishes `event_type` with `data` to every endpoint of `tenant` subscribed to it.
/// Failures are logged, never surfaced: the action that caused the event has happened.
pub async fn publish(app: &AppState, tenant: TenantId, event_type: &str, data: Value) {
    let payload = json!({ "type": event_type, "timestamp": chrono::Utc::now().to_rfc3339(), "data": data });
    if let Err(e) = app
        .store
        .enqueue_webhook_deliveries(tenant, event_type, &payload.to_string())
        .await
    {
        tracing::warn!(%tenant, event_type, error = %e, "could not enqueue webhook deliveries");
    }
}

/// Why a URL may not be an endpoint (or may not be called now).
pub fn check_url(url: &str, cfg: &WebhookConfig) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("url: http or https only".into());
    }
    if parsed.scheme() == "http" && !cfg.allow_private_addresses {
        return Err("url: https only".into());
    }
    match parsed.host() {
        None => return Err("url: no host".into()),
        // A literal address is dialled without DNS: checked here, names by the resolver.
        Some(url::Host::Ipv4(ip)) if !cfg.allow_private_addresses && !dialable(IpAddr::V4(ip), false) => {
            return Err("url: private, loopback and link-local addresses are not allowed".into())
        }
        Some(url::Host::Ipv6(ip)) if !cfg.allow_private_addresses && !dialable(IpAddr::V6(ip), false) => {
            return Err("url: private, loopback and link-local addresses are not allowed".into())
        }
        Some(url::Host::Domain(d)) if !cfg.allow_private_addresses && d.eq_ignore_ascii_case("localhost") => {
            return Err("url: private, loopback and link-local addresses are not allowed".into())
        }
        _ => {}
    }
    Ok(parsed)
}

pub(crate) fn client(cfg: &WebhookConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(cfg.timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(PublicOnly {
            allow_loopback: cfg.allow_private_addresses,
        }))
        .build()
        .unwrap_or_default()
}

/// The delivery worker of this server.
pub fn spawn_worker(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = client(&state.config.webhooks);
        let mut tick = tokio::time::interval(Duration::from_millis(state.config.webhooks.poll_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_due(&state, &http).await {
                tracing::warn!(error = %e, "webhook delivery pass failed");
            }
        }
    })
}

/// Sends every delivery due now; returns how many were attempted.
pub async fn run_due(state: &AppState, http: &reqwest::Client) -> Result<usize, cairn_store::StoreError> {
    let now = chrono::Utc::now();
    let lease = now + chrono::Duration::seconds(i64::try_from(state.config.webhooks.timeout_secs).unwrap_or(60) + 30);
    let claimed = state.store.claim_webhook_deliveries(now, lease, CLAIM).await?;
    let n = claimed.len();
    let mut sends = tokio::task::JoinSet::new();
    for (tenant, id) in claimed {
        let (state, http) = (state.clone(), http.clone());
        sends.spawn(async move { deliver(&state, &http, tenant, id).await });
    }
    while sends.join_next().await.is_some() {}
    Ok(n)
}

async fn deliver(state: &AppState, http: &reqwest::Client, tenant: TenantId, id: WebhookDeliveryId) {
    if let Err(e) = try_deliver(state, http, tenant, id).await {
        tracing::warn!(%tenant, delivery = %id, error = %e, "webhook delivery failed to run");
    }
}

async fn try_deliver(
    state: &AppState,
    http: &reqwest::Client,
    tenant: TenantId,
    id: WebhookDeliveryId,
) -> Result<(), String> {
    let cfg = &state.config.webhooks;
    let store = &state.store;
    let Some(d) = store.webhook_delivery(tenant, id).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let endpoint_id = d.endpoint_id.parse().map_err(|_| "bad endpoint id".to_owned())?;
    let Some(endpoint) = store
        .webhook_endpoint(tenant, endpoint_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let row = endpoint.id.to_string();
    let slot = Slot {
        table: "webhook_endpoints",
        column: "secret",
        row: &row,
    };
    let secret = state
        .keyring
        .decrypt(store, tenant, slot, &endpoint.secret)
        .await
        .map_err(|e| e.to_string())?;
    let secret = WebhookSecret::from_bytes(&secret).map_err(|e| e.reason)?;
    let now = chrono::Utc::now();
    let attempt = d.attempts + 1;
    let started = Instant::now();
    let sent = match check_url(&endpoint.url, cfg) {
        Err(e) => Err(e),
        Ok(url) => {
            let signature = standard::sign(&secret, &d.id, now.timestamp(), d.payload.as_bytes());
            http.post(url)
                .header("content-type", "application/json")
                .header(standard::HEADER_ID, &d.id)
                .header(standard::HEADER_TIMESTAMP, now.timestamp().to_string())
                .header(standard::HEADER_SIGNATURE, signature)
                .body(d.payload.clone())
                .send()
                .await
                .map_err(without_url)
        }
    };
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status_code, response, error) = match sent {
        Ok(resp) => {
            let code = i32::from(resp.status().as_u16());
            let body = resp.bytes().await.unwrap_or_default();
            let cut = &body[..body.len().min(cfg.response_log_bytes)];
            (Some(code), Some(String::from_utf8_lossy(cut).into_owned()), None)
        }
        Err(e) => (None, None, Some(e)),
    };
    let succeeded = status_code.is_some_and(|c| (200..300).contains(&c));
    let retry_at = if succeeded {
        None
    } else {
        usize::try_from(attempt)
            .ok()
            .and_then(|k| cfg.retry_schedule_secs.get(k))
            .map(|secs| now + chrono::Duration::seconds(i64::try_from(*secs).unwrap_or(i64::MAX / 2)))
    };
    let outcome = AttemptOutcome {
        attempt,
        status_code,
        latency_ms,
        response: response.as_deref(),
        error: error.as_deref(),
        succeeded,
        retry_at,
    };
    let disable_after = chrono::Duration::seconds(i64::try_from(cfg.disable_after_secs).unwrap_or(i64::MAX / 2));
    let disabled = store
        .record_webhook_attempt(tenant, id, endpoint.id, &outcome, now, disable_after)
        .await
        .map_err(|e| e.to_string())?;
    if disabled {
        let event = AuditEvent::new(Actor::System, "webhook_endpoint.disabled", Outcome::Success)
            .tenant(tenant)
            .target(endpoint.id.to_string())
            .details(
                json!({ "url": endpoint.url, "failing_since": endpoint.failing_since, "last_status": status_code }),
            );
        state.audit.emit(event).await;
        // The tenant is told: its other endpoints may subscribe, and alert rules on
        // `webhook_endpoint.disabled` e-mail it.
        let data = json!({ "endpoint_id": endpoint.id, "url": endpoint.url, "failing_since": endpoint.failing_since });
        publish(state, tenant, "webhook_endpoint.disabled", data).await;
    }
    Ok(())
}

/// A transport error without the URL (it may carry a token in its query).
pub(crate) fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

//! The operator's alert endpoint (`webhooks.operator_url`): platform alert rules send
//! `alert.fired` there, signed with `webhooks.operator_secret`. There is no tenant to own a
//! delivery row, so attempts follow the retry schedule in a task of this server (lost if
//! it stops); each attempt is logged.

use std::time::Duration;

use cairn_core::webhook::standard::{self, WebhookSecret};
use serde_json::Value;

use crate::state::AppState;

/// Queues `payload` for the operator's endpoint; `false` when none is configured.
pub fn send(state: &AppState, payload: Value) -> bool {
    let cfg = state.config.webhooks.clone();
    let (Some(url), Some(secret)) = (cfg.operator_url.clone(), cfg.operator_secret.clone()) else {
        return false;
    };
    let Ok(secret) = WebhookSecret::parse(&secret) else {
        tracing::warn!("webhooks.operator_secret is not a whsec_ secret; operator alert not sent");
        return false;
    };
    let http = super::client(&cfg);
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let body = payload.to_string();
    tokio::spawn(async move {
        for (attempt, delay) in cfg.retry_schedule_secs.iter().enumerate() {
            tokio::time::sleep(Duration::from_secs(*delay)).await;
            let result = match super::check_url(&url, &cfg) {
                Err(e) => Err(e),
                Ok(target) => {
                    let now = chrono::Utc::now().timestamp();
                    let signature = standard::sign(&secret, &id, now, body.as_bytes());
                    http.post(target)
                        .header("content-type", "application/json")
                        .header(standard::HEADER_ID, &id)
                        .header(standard::HEADER_TIMESTAMP, now.to_string())
                        .header(standard::HEADER_SIGNATURE, signature)
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(super::without_url)
                        .map(|r| r.status())
                }
            };
            match result {
                Ok(status) if status.is_success() => {
                    tracing::info!(message = %id, attempt = attempt + 1, "operator alert delivered");
                    return;
                }
                Ok(status) => tracing::warn!(message = %id, attempt = attempt + 1, %status, "operator alert refused"),
                Err(e) => tracing::warn!(message = %id, attempt = attempt + 1, error = %e, "operator alert failed"),
            }
        }
        tracing::error!(message = %id, "operator alert undeliverable after every retry");
    });
    true
}

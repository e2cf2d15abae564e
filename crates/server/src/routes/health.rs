use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// The process is up and serving HTTP.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

/// Every dependency answers within `ready_timeout_ms`; 503 otherwise. Error details
/// stay in the log.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let timeout = Duration::from_millis(state.config.ready_timeout_ms);
    let started = Instant::now();
    let database = match tokio::time::timeout(timeout, state.store.ping()).await {
        Ok(Ok(())) => json!({
            "status": "up",
            "backend": state.store.backend().as_str(),
            "latency_ms": started.elapsed().as_secs_f64() * 1000.0,
        }),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            json!({ "status": "down", "backend": state.store.backend().as_str(), "error": "unreachable" })
        }
        Err(_) => {
            tracing::warn!(?timeout, "readiness: database timed out");
            json!({ "status": "down", "backend": state.store.backend().as_str(), "error": "timeout" })
        }
    };
    let up = database["status"] == "up";
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if up { "ready" } else { "not_ready" }, "checks": { "database": database } })),
    )
}

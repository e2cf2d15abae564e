use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::config::RedisFailureMode;
use crate::state::AppState;

/// `None` when there is nothing to check; a timeout counts as an error.
async fn timeout_or<F>(timeout: Duration, check: F) -> Option<Result<(), String>>
where
    F: std::future::Future<Output = Option<Result<(), String>>>,
{
    match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Some(Err("timeout".into())),
    }
}

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
    let mut up = database["status"] == "up";
    let mut checks = json!({ "database": database });
    let started = Instant::now();
    if let Some(result) = timeout_or(timeout, state.limits.ping()).await {
        let fail_closed = state.limits.failure_mode() == RedisFailureMode::FailClosed;
        checks["redis"] = match result {
            Ok(()) => json!({ "status": "up", "latency_ms": started.elapsed().as_secs_f64() * 1000.0 }),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: redis unreachable");
                // Failing open, the service works without Redis (limits fall back to this
                // replica), so it stays ready but reports the degradation.
                up &= !fail_closed;
                let mode = if fail_closed { "fail_closed" } else { "fail_open" };
                json!({ "status": "down", "error": "unreachable", "failure_mode": mode })
            }
        };
    }
    // Extraction failures cost one document each; they are reported, never "not ready".
    checks["extraction"] = json!(state.kb.extractor.stats());
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if up { "ready" } else { "not_ready" }, "checks": checks })),
    )
}

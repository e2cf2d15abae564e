//! Logging and request tracing. Log lines carry the request id; they never carry
//! headers, query strings or bodies, which is where secrets travel.

use std::io::IsTerminal as _;
use std::time::Duration;

use axum::http::{Request, Response};
use tower_http::classify::ServerErrorsFailureClass;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Logs go to standard error; standard output is kept
/// for what a command prints for its user.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A subscriber may already be installed (tests install their own): keep it.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

pub fn make_span<B>(req: &Request<B>) -> Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
    )
}

pub fn on_response<B>(resp: &Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = resp.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request done"
    );
}

pub fn on_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &Span) {
    tracing::warn!(%class, latency_ms = latency.as_secs_f64() * 1000.0, "request failed");
}

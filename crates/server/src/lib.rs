//! Cairn's server: HTTP API, CLI, background workers.
//!
//! `app(state)` builds the router; [`Server::build`] opens the store (migrating it),
//! bootstraps the first operator token and starts the audit writer; [`Server::serve`]
//! serves on a listener until shutdown. Tests use exactly these on port 0.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod error;
pub mod extract;
pub mod idp;
pub mod kb;
pub mod keys;
pub mod limits;
pub mod mcp;
pub mod oauth;
mod routes;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod usage;
pub mod webhooks_out;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use axum::Router;
use cairn_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::audit::AuditSink;
use crate::config::Config;
use crate::error::ApiError;
use crate::service::operator_tokens::{self, BootstrapError, IssuedToken};
pub use crate::state::AppState;

/// The whole HTTP application for `state`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let limits = BodyLimits {
        default: body_limit,
        documents: routes::kb::document_body_limit(&state),
    };
    let cors = cors_layer(&state.config);
    let request_id = HeaderName::from_static("x-request-id");
    routes::router(&state)
        .merge(mcp::router(state.clone()))
        .merge(oauth::router())
        .layer(axum::middleware::from_fn_with_state(limits, read_body_first))
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(telemetry::make_span)
                        .on_request(())
                        .on_response(telemetry::on_response)
                        .on_failure(telemetry::on_failure),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(|_| panic_response()))
                .option_layer(cors)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
}

#[derive(Clone, Copy)]
struct BodyLimits {
    default: usize,
    /// Knowledge-base document uploads (`kb.max_document_bytes` plus framing).
    documents: usize,
}

/// Reads a request body completely before the handler runs. An answer sent while the
/// client is still uploading (a 401 from an extractor, say) makes the server drop the
/// connection, and a client that reuses it then fails on its next request.
async fn read_body_first(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let limit = if path.starts_with("/api/v1/tenants/") && path.contains("/kb/") && path.ends_with("/documents") {
        limits.documents
    } else {
        limits.default
    };
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        // A webhook sender's oversized delivery still reaches its handler (empty, marked)
        // so the refusal is audited against the source like every other refusal.
        Err(_) if parts.uri.path().starts_with("/hooks/") => {
            let mut req = axum::extract::Request::from_parts(parts, axum::body::Body::empty());
            req.extensions_mut().insert(BodyTooLarge);
            next.run(req).await
        }
        Err(_) => ApiError::new(error::Code::PayloadTooLarge, "request body is too large").into_response(),
    }
}

/// Marks a request whose body was over the limit and was dropped (see `read_body_first`).
#[derive(Debug, Clone, Copy)]
pub struct BodyTooLarge;

fn panic_response() -> Response {
    ApiError::internal("handler panicked").into_response()
}

/// No allow-list, no CORS headers: browsers then permit same-origin calls only.
fn cors_layer(config: &Config) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = config
        .cors_origins()
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] cairn_store::StoreError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Secrets(String),
    #[error(transparent)]
    Embedder(#[from] kb::embed::EmbedError),
}

/// A built server, ready to serve.
pub struct Server {
    state: AppState,
    audit_task: JoinHandle<()>,
    usage_task: JoinHandle<()>,
    flusher: JoinHandle<()>,
    reencrypter: JoinHandle<()>,
    webhook_worker: JoinHandle<()>,
    bootstrap_token: Option<IssuedToken>,
}

impl Server {
    /// Validates the config, migrates and opens the database, creates the first operator
    /// token if there is none, and starts the background workers.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        config.validate()?;
        let store = Store::open(&config.store_config()).await?;
        // Inbound webhook events need this month's partition (PostgreSQL) before the first delivery.
        cairn_store::webhook_partitions::ensure_webhook_partitions(&config.store_config(), chrono::Utc::now(), 2)
            .await?;
        let bootstrap_token = operator_tokens::bootstrap(&store, &config.operator_token_path()).await?;
        let (alert_tx, alert_rx) = tokio::sync::mpsc::channel(alerts::QUEUE);
        let (audit, audit_task) = AuditSink::start_with_alerts(store.clone(), Some(alert_tx));
        let (usage, usage_task) = usage::UsageSink::start(store.clone());
        let state = AppState::new(store, audit, usage, config).map_err(StartupError::Secrets)?;
        state.verify().await.map_err(StartupError::Secrets)?;
        state.kb.warm()?;
        let rewrapped = state
            .keyring
            .rewrap_all(&state.store)
            .await
            .map_err(|e| StartupError::Secrets(e.to_string()))?;
        if rewrapped > 0 {
            tracing::info!(rewrapped, "data keys re-wrapped under the active master key");
        }
        let flusher = spawn_housekeeping(state.clone(), Duration::from_secs(30));
        let reencrypter = crypto::rotation::spawn_runner(state.clone());
        let webhook_worker = webhooks_out::spawn_worker(state.clone());
        // Ends by itself when the audit sink (its only sender) is gone.
        let _alerts = alerts::spawn_evaluator(state.clone(), alert_rx);
        Ok(Self {
            state,
            audit_task,
            usage_task,
            flusher,
            reencrypter,
            webhook_worker,
            bootstrap_token,
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The operator token minted at this start, if the database had none.
    pub fn take_bootstrap_token(&mut self) -> Option<IssuedToken> {
        self.bootstrap_token.take()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests and pending
    /// audit events.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Self {
            state,
            audit_task,
            usage_task,
            flusher,
            reencrypter,
            webhook_worker,
            ..
        } = self;
        // Without TCP_NODELAY small responses wait on Nagle's algorithm (~40 ms).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service).with_graceful_shutdown(shutdown).await?;
        state.usage.flush().await;
        state.audit.flush().await;
        flusher.abort();
        // A job cut off here resumes where it stopped (its progress is in the database).
        reencrypter.abort();
        // A delivery cut off mid-send is retried when its lease expires.
        webhook_worker.abort();
        if let Err(e) = state.keys.flush_last_used(&state.store).await {
            tracing::warn!(error = %e, "could not record API key last-use times at shutdown");
        }
        let timeout = Duration::from_secs(state.config.shutdown_timeout_secs);
        drop(state);
        let writers = async {
            let _ = tokio::join!(audit_task, usage_task);
        };
        if tokio::time::timeout(timeout, writers).await.is_err() {
            tracing::warn!("audit/usage writers did not finish before the shutdown timeout");
        }
        Ok(())
    }
}

/// Periodic in-process chores: record API-key last use, prune idle limiter state. The
/// server aborts it at shutdown and records last use once more.
fn spawn_housekeeping(state: AppState, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut kb_maintained = std::time::Instant::now();
        // The first purge runs at the first tick: a server restarted daily still purges.
        let mut audit_purged: Option<std::time::Instant> = None;
        loop {
            tick.tick().await;
            let hours = state.config.kb.maintain_interval_hours;
            if hours > 0 && kb_maintained.elapsed() >= Duration::from_secs(u64::from(hours) * 3600) {
                kb_maintained = std::time::Instant::now();
                match kb::stats::maintain(&state, false).await {
                    Ok(report) => tracing::info!(?report, "knowledge-base maintenance"),
                    // Another replica holds the maintenance lock: its run is this run.
                    Err(kb::KbError::Store(cairn_store::StoreError::Conflict(_))) => {
                        tracing::debug!("knowledge-base maintenance already running elsewhere");
                    }
                    Err(e) => tracing::warn!(error = %e, "knowledge-base maintenance failed"),
                }
            }
            if audit_purged.is_none_or(|t| t.elapsed() >= Duration::from_secs(24 * 3600)) {
                audit_purged = Some(std::time::Instant::now());
                // On its own task: a long purge must not hold up the chores below.
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = service::audit::purge(&state, chrono::Utc::now()).await {
                        tracing::warn!(error = ?e, "audit retention purge failed");
                    }
                    webhook_retention(&state).await;
                });
            }
            if let Err(e) = state.keys.flush_last_used(&state.store).await {
                tracing::warn!(error = %e, "could not record API key last-use times");
            }
            state.limits.prune();
            state.oauth.prune();
            if let Err(e) = state.store.purge_expired_oauth().await {
                tracing::warn!(error = %e, "could not purge expired OAuth codes and tokens");
            }
            if let Some(days) = state.config.key_rotation_interval_days {
                rotate_due(&state, days).await;
            }
            let retire_after = Duration::from_secs(u64::from(state.config.key_retire_after_hours) * 3600);
            if let Err(e) = crypto::rotation::retire_due(&state, retire_after).await {
                tracing::warn!(error = %e, "could not retire old data keys");
            }
            let retired_before = chrono::Utc::now() - chrono::Duration::days(1);
            if let Err(e) = state.store.purge_retired_signing_keys(retired_before).await {
                tracing::warn!(error = %e, "could not purge retired signing keys");
            }
        }
    })
}

/// Partitions for the coming months, expired events (whole partitions on PostgreSQL),
/// and message ids past the replay window.
async fn webhook_retention(state: &AppState) {
    use cairn_store::webhook_partitions::{ensure_webhook_partitions, expire_webhook_events};
    let now = chrono::Utc::now();
    let cfg = state.config.store_config();
    if let Err(e) = ensure_webhook_partitions(&cfg, now, 2).await {
        tracing::warn!(error = %e, "could not create webhook event partitions");
    }
    let before = now - chrono::Duration::days(service::webhooks::RETENTION_DAYS);
    match expire_webhook_events(&state.store, &cfg, before).await {
        Ok(done) => tracing::info!(?done, "webhook event retention"),
        Err(e) => tracing::warn!(error = %e, "webhook event retention failed"),
    }
    // Ids are kept as long as events: schemes without a timestamp (GitHub's) rely on them alone.
    if let Err(e) = state.store.purge_webhook_seen(before).await {
        tracing::warn!(error = %e, "could not forget old webhook message ids");
    }
}

/// Scheduled data-key rotation: tenants whose active key is older than `days`.
async fn rotate_due(state: &AppState, days: u32) {
    let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    match state.store.tenants_due_for_rotation(before).await {
        Ok(tenants) => {
            for tenant in tenants {
                if let Err(e) = crypto::rotation::rotate(state, tenant).await {
                    tracing::warn!(%tenant, error = %e, "scheduled data-key rotation failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for tenants due for key rotation"),
    }
}

/// Runs Cairn with `config` on `listener` until SIGINT/SIGTERM.
pub async fn run(mut config: Config, listener: TcpListener) -> Result<(), StartupError> {
    // Without a public URL, URLs this server hands out (OAuth issuer, resource) name the
    // address actually bound, also when the configured port was 0.
    if config.public_url.is_none() {
        config.listen = listener.local_addr()?;
    }
    Server::build(config).await?.serve(listener, shutdown_signal()).await
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

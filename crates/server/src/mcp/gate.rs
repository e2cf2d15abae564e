//! What stands in front of rmcp's transport on `/t/{slug}/mcp`: tenant resolution, API
//! key authentication, scope checks (403 `insufficient_scope`), rate limits (429),
//! and binding each MCP session to the tenant and key that opened it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_core::api_key::{self, ApiKey, Scope};
use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::tenant::{Tenant, TenantStatus};
use cairn_core::usage::UsageOutcome;
use moka::sync::Cache;
use serde_json::{json, Value};

use super::McpCaller;
use crate::error::{ApiError, Code};
use crate::extract::RequestMeta;
use crate::limits::{Decision, LimitScope};
use crate::state::{AppState, Ctx};

const SESSION_HEADER: &str = "mcp-session-id";

use super::Principal;

pub struct Gate {
    pub app: AppState,
    /// Session id → who opened it. A session is only usable by the same tenant and key.
    sessions: Cache<String, Principal>,
}

impl Gate {
    pub fn new(app: AppState) -> Self {
        Self {
            app,
            sessions: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

/// Facts about the HTTP request the handler needs for metering.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    pub started: Instant,
    pub request_bytes: usize,
    pub rate: Option<Decision>,
}

/// The scope a method needs, beyond a valid key.
fn required_scope(method: &str) -> Option<Scope> {
    match method {
        "tools/list" | "tools/call" => Some(Scope::McpTools),
        m if m.starts_with("resources/") => Some(Scope::McpResources),
        m if m.starts_with("prompts/") => Some(Scope::McpPrompts),
        _ => None,
    }
}

/// Methods that count against rate limits and quotas.
fn is_billable(method: &str) -> bool {
    matches!(method, "tools/call" | "resources/read" | "prompts/get")
}

pub async fn gate(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    // The body is already in memory (`read_body_first` in lib.rs), so a refusal here
    // never leaves an upload half-read.
    match admit(&gate, req).await {
        Ok((req, principal, is_initialize)) => {
            let rate = req.extensions().get::<RequestFacts>().and_then(|f| f.rate);
            let ending = (req.method() == Method::DELETE)
                .then(|| {
                    req.headers()
                        .get(SESSION_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .flatten();
            if let Some(id) = &ending {
                // Every session was opened through here; one this gate does not know
                // (never opened, already ended) is answered like any unknown session.
                if gate.sessions.get(id).is_none() {
                    return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
                }
            }
            let mut resp = next.run(req).await;
            if let Some(id) = ending.filter(|_| resp.status().is_success()) {
                gate.sessions.invalidate(&id);
            }
            add_rate_headers(resp.headers_mut(), rate);
            if is_initialize {
                if let Some(id) = resp.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
                    gate.sessions.insert(id.to_owned(), principal);
                }
            }
            resp
        }
        Err(resp) => resp,
    }
}

async fn admit(gate: &Gate, req: Request) -> Result<(Request, Principal, bool), Response> {
    let started = Instant::now();
    let app = &gate.app;
    let slug = req
        .uri()
        .path()
        .strip_prefix("/t/")
        .and_then(|p| p.strip_suffix("/mcp"))
        .unwrap_or_default()
        .to_owned();
    let slug = slug.as_str();
    // An unknown tenant answers exactly like a bad key: no hint that a slug exists.
    let tenant = app
        .tenants
        .get(&app.store, slug)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let Some(tenant) = tenant else {
        return Err(unauthorized(app, slug, None));
    };
    let own_issuer = crate::oauth::issuer(&app.config, slug);

    let caller = match crate::auth::bearer(req.headers()) {
        Some(token) if crate::idp::looks_like_jwt(token) && is_cairn_token(app, token) => {
            match access_token(app, &tenant, &own_issuer, slug, token).await {
                Ok(caller) => caller,
                Err(reason) => {
                    let ctx = Ctx {
                        state: app.clone(),
                        actor: Actor::Anonymous,
                        meta: request_meta(req.headers(), req.extensions()),
                    };
                    let event = ctx
                        .event("auth.failed", Outcome::Denied)
                        .tenant(tenant.id)
                        .details(json!({ "credential": "oauth_access_token", "reason": reason }));
                    ctx.audit(event).await;
                    return Err(unauthorized(app, slug, Some("invalid_token")));
                }
            }
        }
        Some(token) if crate::idp::looks_like_jwt(token) => {
            match crate::idp::authenticate(&app.idp, &app.store, tenant.id, token).await {
                Ok((user, role)) => McpCaller::member(tenant.clone(), user, role),
                Err(refusal) => {
                    let ctx = Ctx {
                        state: app.clone(),
                        actor: Actor::Anonymous,
                        meta: request_meta(req.headers(), req.extensions()),
                    };
                    let event = ctx
                        .event("auth.failed", Outcome::Denied)
                        .tenant(tenant.id)
                        .details(json!({ "credential": "idp_jwt", "reason": refusal.reason() }));
                    ctx.audit(event).await;
                    return Err(unauthorized(app, slug, Some("invalid_token")));
                }
            }
        }
        Some(token) => match app.keys.verify(&app.store, tenant.id, token).await {
            Ok(Ok(key)) => McpCaller {
                scopes: key.scopes.clone(),
                user: key.user_id,
                key: Some(key),
                tenant: tenant.clone(),
                trusted: false,
            },
            Ok(Err(refusal)) => {
                let ctx = Ctx {
                    state: app.clone(),
                    actor: Actor::Anonymous,
                    meta: request_meta(req.headers(), req.extensions()),
                };
                let public_id = api_key::parse(token).map(|p| p.public_id.to_owned());
                let owner = match (&refusal, &public_id) {
                    (crate::keys::Refusal::Unknown, Some(p)) => app.store.api_key_owner(p).await.ok().flatten(),
                    _ => None,
                };
                let reason = if owner.is_some() {
                    "key_of_another_tenant"
                } else {
                    refusal.as_str()
                };
                let event = ctx
                    .event("auth.failed", Outcome::Denied)
                    .tenant(tenant.id)
                    .details(json!({ "credential": "api_key", "reason": reason, "public_id": public_id }));
                ctx.audit(event).await;
                if let Some(owner) = owner {
                    cross_tenant_attempt(&ctx, owner, &tenant, public_id.as_deref()).await;
                }
                return Err(unauthorized(app, slug, Some("invalid_token")));
            }
            Err(e) => return Err(ApiError::from(e).into_response()),
        },
        None if tenant.conformance_fixtures => McpCaller::trusted(tenant.clone()),
        None => return Err(unauthorized(app, slug, None)),
    };
    if tenant.status == TenantStatus::Suspended {
        return Err(ApiError::new(Code::Forbidden, "this tenant is suspended").into_response());
    }
    let principal = caller.principal();
    if let Some(session) = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        if gate.sessions.get(session).is_some_and(|owner| owner != principal) {
            // Someone else's session: answer as if it did not exist.
            return Err((StatusCode::NOT_FOUND, "Not Found: Session not found").into_response());
        }
    }

    let (mut parts, body) = req.into_parts();
    let mut facts = RequestFacts {
        started,
        request_bytes: 0,
        rate: None,
    };
    let mut is_initialize = false;
    if parts.method == Method::POST {
        let limit = app.config.body_limit_bytes;
        let bytes: Bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::new(Code::PayloadTooLarge, "request body is too large").into_response())?;
        facts.request_bytes = bytes.len();
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32600,
                "batch requests are not supported",
                None,
            ));
        }
        // Unparseable bodies go through: rmcp answers them with the proper JSON-RPC error.
        let peek = cairn_core::mcp::peek(&bytes);
        if let Some(method) = peek.method.as_deref() {
            is_initialize = method == "initialize";
            let tool = peek.params.as_ref().and_then(|p| p.name.clone());
            if let Some(scope) = required_scope(method) {
                if !caller.has(scope) {
                    refused(app, &caller, method, tool, UsageOutcome::Denied, &facts).await;
                    return Err(insufficient_scope(app, slug, scope));
                }
            }
            let decision = match (is_billable(method), caller.key.as_ref()) {
                (true, Some(key)) => Some(app.limits.check(&app.store, key, tool.as_deref()).await),
                // OAuth and identity-provider callers: the tenant's burst.
                (true, None) if !caller.trusted => Some(app.limits.check_tenant(tenant.id)),
                _ => None,
            };
            if let Some(decision) = decision {
                if decision == Decision::Unavailable {
                    let id = peek.id.clone().unwrap_or(Value::Null);
                    let msg = "rate limiting is unavailable; retry shortly";
                    let mut resp = jsonrpc_error(StatusCode::SERVICE_UNAVAILABLE, id, -32603, msg, None);
                    resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                    return Err(resp);
                }
                if let Decision::Limited {
                    limit,
                    retry_after,
                    scope,
                } = decision
                {
                    let ctx = Ctx {
                        state: app.clone(),
                        actor: Actor::Anonymous,
                        meta: request_meta(&parts.headers, &parts.extensions),
                    };
                    let action = if scope == LimitScope::Quota {
                        "quota.exceeded"
                    } else {
                        "rate_limit.exceeded"
                    };
                    let event = ctx
                        .event(action, Outcome::Denied)
                        .tenant(tenant.id)
                        .target(caller.key.as_ref().map(|k| k.id.to_string()).unwrap_or_default())
                        .details(json!({ "method": method, "tool": peek.params.as_ref().and_then(|p| p.name.clone()), "limit": limit, "scope": scope.as_str() }));
                    ctx.audit(event).await;
                    refused(app, &caller, method, tool, UsageOutcome::RateLimited, &facts).await;
                    let id = peek.id.clone().unwrap_or(Value::Null);
                    return Err(rate_limited(id, limit, retry_after, scope.as_str()));
                }
                if let (Decision::Allowed { quota: Some(q), .. }, Some(key)) = (decision, caller.key.as_ref()) {
                    if let Some(percent) = q.crossed() {
                        announce_quota(app, key, q, percent).await;
                    }
                }
                facts.rate = Some(decision);
            }
        }
        parts.extensions.insert(caller);
        parts.extensions.insert(facts);
        let req = Request::from_parts(parts, Body::from(bytes));
        return Ok((req, principal, is_initialize));
    }
    parts.extensions.insert(caller);
    parts.extensions.insert(facts);
    Ok((Request::from_parts(parts, body), principal, false))
}

/// A key of `owner` was presented at `target`'s endpoint: the owner's trail records its
/// key was tried elsewhere (without naming where), the platform's records both.
async fn cross_tenant_attempt(ctx: &Ctx, owner: cairn_core::ids::TenantId, target: &Tenant, public_id: Option<&str>) {
    let event = ctx
        .event("auth.cross_tenant_denied", Outcome::Denied)
        .tenant(owner)
        .target(public_id.unwrap_or_default().to_owned())
        .details(json!({ "credential": "api_key", "public_id": public_id }));
    ctx.audit(event).await;
    let event = ctx
        .event("auth.cross_tenant_denied", Outcome::Denied)
        .target(public_id.unwrap_or_default().to_owned())
        .details(
            json!({ "credential": "api_key", "public_id": public_id, "owner_tenant": owner,
            "target_tenant": target.id }),
        );
    ctx.audit(event).await;
}

/// A key's monthly quota reached a threshold (80 %, 100 %): audited, and published as
/// `quota.threshold` to the tenant's webhook endpoints.
async fn announce_quota(app: &AppState, key: &ApiKey, q: crate::limits::QuotaUse, percent: u64) {
    let data = json!({ "key_id": key.id, "tier": key.tier, "used": q.used, "quota": q.limit, "percent": percent });
    let event = AuditEvent::new(Actor::System, "quota.threshold", Outcome::Success)
        .tenant(key.tenant_id)
        .target(key.id.to_string())
        .details(data.clone());
    app.audit.emit(event).await;
    crate::webhooks_out::publish(app, key.tenant_id, "quota.threshold", data).await;
}

/// Meters a request the gate refused (it never reaches the handler).
async fn refused(
    app: &AppState,
    caller: &McpCaller,
    method: &str,
    tool: Option<String>,
    outcome: UsageOutcome,
    facts: &RequestFacts,
) {
    let event = caller.usage(method, tool, outcome, facts.started, (facts.request_bytes, 0));
    app.usage.record(event).await;
}

/// Only failures are audited, so this is only computed on those paths.
fn request_meta(headers: &HeaderMap, extensions: &axum::http::Extensions) -> RequestMeta {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect())
    };
    RequestMeta {
        request_id: header("x-request-id"),
        user_agent: header("user-agent"),
        source_ip: extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
    }
}

/// 401 with the RFC 9728 / MCP challenge: where the resource metadata is and which
/// scopes to ask for.
fn unauthorized(app: &AppState, slug: &str, error: Option<&str>) -> Response {
    let mut resp = ApiError::unauthorized().into_response();
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}\", scope=\"{}\"",
        crate::oauth::resource_metadata_url(&app.config, slug),
        cairn_core::oauth::scope_string(&cairn_core::oauth::DEFAULT_SCOPES)
    );
    if let Some(e) = error {
        challenge.push_str(&format!(", error=\"{e}\""));
    }
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

fn insufficient_scope(app: &AppState, slug: &str, scope: Scope) -> Response {
    let mut resp = ApiError::new(
        Code::InsufficientScope,
        format!("this credential lacks the scope {scope}"),
    )
    .into_response();
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\"",
        crate::oauth::resource_metadata_url(&app.config, slug)
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

/// A JWT whose (unverified) issuer is one of this server's tenants: verified as an
/// access token of the addressed tenant, never handed to an external IdP verifier.
fn is_cairn_token(app: &AppState, token: &str) -> bool {
    let prefix = format!("{}/t/", app.config.public_base_url());
    crate::oauth::jwt::unverified_issuer(token).is_some_and(|iss| iss.starts_with(&prefix))
}

async fn access_token(
    app: &AppState,
    tenant: &std::sync::Arc<cairn_core::tenant::Tenant>,
    issuer: &str,
    slug: &str,
    token: &str,
) -> Result<McpCaller, String> {
    let resource = crate::oauth::resource(&app.config, slug);
    // Another tenant's token fails here on `iss` (and `aud`), and on its signing key.
    let claims = app
        .oauth
        .signer
        .verify(&app.store, tenant.id, token, issuer, &resource)
        .await?;
    let grant = uuid::Uuid::parse_str(&claims.gid).map_err(|_| "malformed_grant".to_owned())?;
    match app.oauth.grant_active(&app.store, tenant.id, grant).await {
        Ok(true) => {}
        Ok(false) => return Err("grant_revoked".into()),
        Err(e) => return Err(format!("store:{e}")),
    }
    Ok(McpCaller::oauth(tenant.clone(), &claims))
}

fn jsonrpc_error(status: StatusCode, id: Value, code: i64, message: &str, data: Option<Value>) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if let Some(d) = data {
        error["data"] = d;
    }
    (
        status,
        axum::Json(json!({ "jsonrpc": "2.0", "id": id, "error": error })),
    )
        .into_response()
}

/// JSON-RPC error code for "rate limited" (implementation-defined range).
pub const RATE_LIMITED: i64 = -32029;

fn rate_limited(id: Value, limit: u32, retry_after: Duration, scope: &str) -> Response {
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let data = json!({ "retry_after_secs": secs, "limit": limit, "window_secs": 60, "scope": scope });
    let mut resp = jsonrpc_error(
        StatusCode::TOO_MANY_REQUESTS,
        id,
        RATE_LIMITED,
        "rate limit exceeded",
        Some(data),
    );
    let headers = resp.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    set_rate_headers(headers, limit, 0, secs);
    resp
}

fn set_rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset_secs: u64) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset_secs));
}

/// Adds `RateLimit-*` headers to an allowed, rate-limited call's response.
pub fn add_rate_headers(headers: &mut HeaderMap, decision: Option<Decision>) {
    if let Some(Decision::Allowed {
        limit,
        remaining,
        reset,
        ..
    }) = decision
    {
        set_rate_headers(headers, limit, remaining, reset.as_secs_f64().ceil() as u64);
    }
}

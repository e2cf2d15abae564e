//! Inbound webhooks: tenants name sources with a verification scheme (Standard Webhooks or
//! a generic HMAC layout such as GitHub's or Stripe's); `POST /hooks/{tenant}/{source}`
//! verifies a delivery, refuses replays and records it. Secrets are sealed with the
//! tenant's data key and shown once, at creation.

use axum::http::HeaderMap;
use cairn_core::audit::{Actor, Outcome};
use cairn_core::ids::WebhookSourceId;
use cairn_core::webhook::generic::{verify_generic, HmacScheme};
use cairn_core::webhook::standard::{self, WebhookSecret};
use cairn_core::webhook::{SignatureError, DEFAULT_TOLERANCE_SECS};
use cairn_store::webhooks::{NewWebhookEvent, WebhookSource};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::crypto::Slot;
use crate::error::{ApiError, Code};
use crate::state::{AppState, Ctx};

/// Recorded events are kept this long (whole monthly partitions on PostgreSQL).
pub const RETENTION_DAYS: i64 = 90;

/// The largest delivery accepted (the server-wide body limit applies first).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How a source's deliveries are verified (stored as JSON with the source).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scheme {
    Standard,
    Hmac {
        scheme: HmacScheme,
        /// Header carrying a delivery id, for replay protection (GitHub: X-GitHub-Delivery).
        id_header: Option<String>,
        /// Header carrying the event type (GitHub: X-GitHub-Event); else the body's `type`.
        type_header: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SchemeInput {
    /// `standard`, `github` or `stripe`.
    Named(String),
    Hmac {
        hmac: HmacScheme,
        #[serde(default)]
        id_header: Option<String>,
        #[serde(default)]
        type_header: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub name: String,
    pub scheme: SchemeInput,
    /// A secret chosen by the sender (Stripe, GitHub); generated when absent.
    pub secret: Option<String>,
    /// What to do with events by type (see `webhook_handlers`); none: store only.
    pub handlers: Option<serde_json::Value>,
}

#[derive(Serialize)]
pub struct CreatedSource {
    #[serde(flatten)]
    pub source: WebhookSource,
    /// Shown once: configure it at the sender.
    pub secret: String,
    pub endpoint: String,
}

fn scheme_of(input: SchemeInput) -> Result<Scheme, ApiError> {
    Ok(match input {
        SchemeInput::Named(n) => match n.as_str() {
            "standard" => Scheme::Standard,
            "github" => Scheme::Hmac {
                scheme: HmacScheme::github(),
                id_header: Some("X-GitHub-Delivery".into()),
                type_header: Some("X-GitHub-Event".into()),
            },
            "stripe" => Scheme::Hmac {
                scheme: HmacScheme::stripe(),
                id_header: None,
                type_header: None,
            },
            _ => {
                return Err(ApiError::invalid_field(
                    "scheme",
                    "scheme: standard, github, stripe or {\"hmac\": {...}}",
                ))
            }
        },
        SchemeInput::Hmac {
            hmac,
            id_header,
            type_header,
        } => {
            hmac.validate()
                .map_err(|e| ApiError::invalid_field("scheme", e.reason))?;
            Scheme::Hmac {
                scheme: hmac,
                id_header,
                type_header,
            }
        }
    })
}

/// (bytes to seal, text to show once).
pub(super) fn secret_of(scheme: &Scheme, given: Option<String>) -> Result<(Vec<u8>, String), ApiError> {
    match (scheme, given) {
        (Scheme::Standard, Some(s)) => {
            let secret = WebhookSecret::parse(&s).map_err(|e| ApiError::invalid_field("secret", e.reason))?;
            Ok((secret.expose_bytes().to_vec(), s))
        }
        (Scheme::Standard, None) => {
            let secret = WebhookSecret::generate();
            Ok((
                secret.expose_bytes().to_vec(),
                secret.expose_encoded().expose_secret().to_owned(),
            ))
        }
        (Scheme::Hmac { .. }, Some(s)) => {
            if !(16..=256).contains(&s.len()) || s.chars().any(char::is_control) {
                return Err(ApiError::invalid_field(
                    "secret",
                    "secret: 16 to 256 characters, no control characters",
                ));
            }
            Ok((s.as_bytes().to_vec(), s))
        }
        (Scheme::Hmac { .. }, None) => {
            let hex: String = WebhookSecret::generate()
                .expose_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok((hex.as_bytes().to_vec(), hex))
        }
    }
}

/// Names of sources and alert rules: 1–64 lowercase letters, digits, `-`, `_`.
pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "name",
            "name: 1 to 64 lowercase letters, digits, '-' or '_'",
        ))
    }
}

pub async fn create_source(ctx: &Ctx, slug: &str, input: CreateSource) -> Result<CreatedSource, ApiError> {
    check_name(&input.name)?;
    let scheme = scheme_of(input.scheme)?;
    let handlers = super::webhook_handlers::parse_handlers(input.handlers)?;
    let handlers = serde_json::to_string(&handlers).map_err(ApiError::internal)?;
    let (bytes, shown) = secret_of(&scheme, input.secret)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let id = WebhookSourceId::new();
    let row = id.to_string();
    let slot = Slot {
        table: "webhook_sources",
        column: "secret",
        row: &row,
    };
    let sealed = ctx
        .state
        .keyring
        .encrypt(&ctx.state.store, tenant.id, slot, &bytes)
        .await?;
    let scheme_json = serde_json::to_string(&scheme).map_err(ApiError::internal)?;
    let source = ctx
        .store()
        .create_webhook_source(tenant.id, id, &input.name, &scheme_json, &handlers, &sealed)
        .await?;
    let event = ctx
        .event("webhook_source.created", Outcome::Success)
        .tenant(tenant.id)
        .target(source.id.to_string())
        .details(json!({ "name": source.name, "scheme": scheme_json }));
    ctx.audit(event).await;
    Ok(CreatedSource {
        endpoint: format!("/hooks/{}/{}", tenant.slug.as_str(), source.name),
        source,
        secret: shown,
    })
}

pub async fn list_sources(ctx: &Ctx, slug: &str) -> Result<Vec<WebhookSource>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    Ok(ctx.store().webhook_sources(tenant.id).await?)
}

pub async fn delete_source(ctx: &Ctx, slug: &str, name: &str) -> Result<(), ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    if !ctx.store().delete_webhook_source(tenant.id, name).await? {
        return Err(ApiError::new(Code::WebhookSourceNotFound, "no such webhook source"));
    }
    let event = ctx
        .event("webhook_source.deleted", Outcome::Success)
        .tenant(tenant.id)
        .details(json!({ "name": name }));
    ctx.audit(event).await;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Received {
    pub id: String,
    pub event_type: Option<String>,
    pub handled: super::webhook_handlers::Handled,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies and records one delivery. Every refusal is audited with its reason code.
/// `body` is `None` when it was over the server's body limit (and dropped).
pub async fn receive(
    ctx: &Ctx,
    slug: &str,
    name: &str,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<Received, ApiError> {
    let unknown = || ApiError::new(Code::WebhookSourceNotFound, "no such webhook source");
    let refused_unknown = |tenant: Option<cairn_core::ids::TenantId>| {
        let mut event = ctx
            .event("webhook.rejected", Outcome::Failure)
            .details(json!({ "tenant": slug.chars().take(64).collect::<String>(),
                "source": name.chars().take(64).collect::<String>(), "reason": "unknown_source" }));
        if let Some(t) = tenant {
            event = event.tenant(t);
        }
        event
    };
    // An unknown tenant and an unknown source look the same from outside.
    let Ok(tenant) = super::tenants::resolve(ctx, slug).await else {
        ctx.audit(refused_unknown(None)).await;
        return Err(unknown());
    };
    let Some(source) = ctx.store().webhook_source(tenant.id, name).await? else {
        ctx.audit(refused_unknown(Some(tenant.id))).await;
        return Err(unknown());
    };
    let refuse = |code: Code, reason: &str| {
        let event = ctx
            .event("webhook.rejected", Outcome::Failure)
            .tenant(tenant.id)
            .target(source.id.to_string())
            .details(json!({ "source": name, "reason": reason }));
        (event, ApiError::new(code, format!("webhook refused: {reason}")))
    };
    let Some(body) = body.filter(|b| b.len() <= MAX_BODY_BYTES) else {
        let (event, err) = refuse(Code::PayloadTooLarge, "body_too_large");
        ctx.audit(event).await;
        return Err(err);
    };
    let scheme: Scheme = serde_json::from_str(&source.scheme).map_err(ApiError::internal)?;
    let secrets = open_secrets(&ctx.state, &tenant, &source).await?;
    let now = chrono::Utc::now();
    let verified = verify(&scheme, &secrets, headers, body, now.timestamp());
    let message_id = match verified {
        Ok(id) => id,
        Err(e) => {
            let (event, err) = refuse(Code::WebhookVerificationFailed, e.code());
            ctx.audit(event).await;
            return Err(err);
        }
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let event_type = match &scheme {
        Scheme::Hmac {
            type_header: Some(h), ..
        } => header(headers, h).map(str::to_owned),
        _ => None,
    }
    .or_else(|| {
        parsed
            .as_ref()
            .and_then(|v| v.get("type"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
    });
    let payload = String::from_utf8_lossy(body);
    let record = NewWebhookEvent {
        source: source.id,
        message_id: message_id.as_deref(),
        event_type: event_type.as_deref(),
        payload: &payload,
        received_at: now,
    };
    let Some(id) = ctx.store().record_webhook_event(tenant.id, &record).await? else {
        let (event, err) = refuse(Code::WebhookReplayed, "replayed_message_id");
        ctx.audit(event).await;
        return Err(err);
    };
    let event = ctx
        .event("webhook.received", Outcome::Success)
        .tenant(tenant.id)
        .target(id.to_string())
        .details(json!({ "source": name, "event_type": event_type, "message_id": message_id }));
    ctx.audit(event).await;
    let stored = cairn_store::webhooks::StoredWebhookEvent {
        id: id.to_string(),
        source_id: source.id.to_string(),
        message_id,
        event_type: event_type.clone(),
        received_at: now,
        payload: Some(payload.into_owned()),
        status: "stored".into(),
        handler: None,
        result: None,
        handled_at: None,
    };
    let handled = super::webhook_handlers::dispatch(ctx, &tenant, &source, &stored).await;
    Ok(Received {
        id: id.to_string(),
        event_type,
        handled,
    })
}

/// The current secret, and the previous one while a rotation's grace period lasts.
async fn open_secrets(
    app: &AppState,
    tenant: &cairn_core::tenant::Tenant,
    source: &WebhookSource,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ApiError> {
    let row = source.id.to_string();
    let mut out = Vec::with_capacity(2);
    let slot = Slot {
        table: "webhook_sources",
        column: "secret",
        row: &row,
    };
    out.push(app.keyring.decrypt(&app.store, tenant.id, slot, &source.secret).await?);
    if let (Some(prev), Some(until)) = (&source.previous_secret, source.previous_until) {
        if until > chrono::Utc::now() {
            let slot = Slot {
                table: "webhook_sources",
                column: "previous_secret",
                row: &row,
            };
            out.push(app.keyring.decrypt(&app.store, tenant.id, slot, prev).await?);
        }
    }
    Ok(out)
}

/// The message id (for replay protection) of a verified delivery.
fn verify(
    scheme: &Scheme,
    secrets: &[Zeroizing<Vec<u8>>],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Option<String>, SignatureError> {
    match scheme {
        Scheme::Standard => {
            let keys: Vec<WebhookSecret> = secrets
                .iter()
                .filter_map(|s| WebhookSecret::from_bytes(s).ok())
                .collect();
            let id = header(headers, standard::HEADER_ID);
            standard::verify(
                &keys,
                id,
                header(headers, standard::HEADER_TIMESTAMP),
                header(headers, standard::HEADER_SIGNATURE),
                body,
                now,
                DEFAULT_TOLERANCE_SECS,
            )?;
            Ok(id.map(str::to_owned))
        }
        Scheme::Hmac { scheme, id_header, .. } => {
            let plain: Zeroizing<Vec<Vec<u8>>> = Zeroizing::new(secrets.iter().map(|s| s.to_vec()).collect());
            verify_generic(
                scheme,
                &plain,
                header(headers, &scheme.header),
                body,
                now,
                DEFAULT_TOLERANCE_SECS,
            )?;
            Ok(id_header.as_deref().and_then(|h| header(headers, h)).map(str::to_owned))
        }
    }
}

/// Drops audit noise: an anonymous sender's context for `receive`.
pub fn sender(app: &AppState, meta: crate::extract::RequestMeta) -> Ctx {
    Ctx {
        state: app.clone(),
        actor: Actor::Anonymous,
        meta,
    }
}

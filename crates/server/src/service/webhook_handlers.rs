//! What happens after an inbound webhook is verified and recorded: the source's first
//! handler matching the event type runs (built in: ingest a document into a knowledge
//! base), and the event records the outcome. Also the tenant's view of received events,
//! re-running a handler, and rotating a source's secret with a grace period.

use cairn_core::audit::{Actor, Outcome};
use cairn_core::ids::WebhookSourceId;
use cairn_core::tenant::Tenant;
use cairn_core::webhook::handler::{self, Handler, HandlerAction};
use cairn_store::webhooks::{EventQuery, HandledEvent, StoredWebhookEvent, WebhookSource};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::crypto::Slot;
use crate::error::{ApiError, Code};
use crate::kb::ingest::IngestInput;
use crate::service::List;
use crate::state::Ctx;

/// What the handler did, as returned to the sender and stored with the event.
#[derive(Debug, Clone, Serialize)]
pub struct Handled {
    /// `stored` (no handler matched), `processed` or `failed`.
    pub status: &'static str,
    pub handler: Option<&'static str>,
    pub result: Value,
}

pub fn parse_handlers(input: Option<Value>) -> Result<Vec<Handler>, ApiError> {
    let Some(v) = input else { return Ok(Vec::new()) };
    let handlers: Vec<Handler> = serde_json::from_value(v).map_err(|e| {
        ApiError::invalid_field(
            "handlers",
            format!("handlers: a list of {{event_type, action: store|kb_ingest, …}}: {e}"),
        )
    })?;
    handler::validate(&handlers).map_err(|e| ApiError::invalid_field("handlers", e.to_string()))?;
    Ok(handlers)
}

/// Runs the handler for a recorded event and stores its outcome. A failing handler never
/// un-records the event: the sender's delivery was genuine and is answered 200.
pub async fn dispatch(ctx: &Ctx, tenant: &Tenant, source: &WebhookSource, event: &StoredWebhookEvent) -> Handled {
    let handlers: Vec<Handler> = serde_json::from_value(source.handlers.clone()).unwrap_or_default();
    let handled = match handler::pick(&handlers, event.event_type.as_deref()) {
        None => Handled {
            status: "stored",
            handler: None,
            result: Value::Null,
        },
        Some(h) => run(ctx, tenant, source, h, event).await,
    };
    let record = HandledEvent {
        received_at: event.received_at,
        id: &event.id,
        status: handled.status,
        handler: handled.handler,
        result: &handled.result,
    };
    if let Err(e) = ctx.store().set_webhook_event_handled(tenant.id, &record).await {
        tracing::warn!(tenant = %tenant.id, event = %event.id, error = %e, "could not record a webhook handler's outcome");
    }
    if handled.handler.is_some() {
        let outcome = if handled.status == "processed" {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let audit = ctx
            .event("webhook.handled", outcome)
            .tenant(tenant.id)
            .target(event.id.clone())
            .details(json!({ "source": source.name, "event_type": event.event_type,
                "handler": handled.handler, "result": handled.result }));
        ctx.audit(audit).await;
    }
    handled
}

async fn run(ctx: &Ctx, tenant: &Tenant, source: &WebhookSource, h: &Handler, event: &StoredWebhookEvent) -> Handled {
    let name = Some(h.action.name());
    let failed = |code: &str, message: String| Handled {
        status: "failed",
        handler: name,
        result: json!({ "error": code, "message": message }),
    };
    // Internal details go to the log, not to the sender or the stored result.
    let api_failed = |e: ApiError| {
        if matches!(e.code, Code::Internal | Code::ServiceUnavailable) {
            tracing::warn!(event = %event.id, error = %e.message, "webhook handler failed");
            failed(e.code.as_str(), "the handler could not run; retry later".into())
        } else {
            failed(e.code.as_str(), e.message)
        }
    };
    match &h.action {
        HandlerAction::Store {} => Handled {
            status: "processed",
            handler: name,
            result: Value::Null,
        },
        HandlerAction::KbIngest {
            kb,
            source_id,
            content,
            title,
            content_type,
        } => {
            let Some(Ok(payload)) = event.payload.as_deref().map(serde_json::from_str::<Value>) else {
                return failed("invalid_payload", "the payload is not JSON".into());
            };
            let field = |p: &str| handler::field(&payload, p);
            let (Some(doc_id), Some(text)) = (field(source_id), field(content)) else {
                return failed(
                    "missing_field",
                    format!("the payload has no string at {source_id} or {content}"),
                );
            };
            let title = title.as_deref().and_then(field);
            let content_type = content_type
                .as_deref()
                .and_then(field)
                .unwrap_or_else(|| "text/markdown".into());
            let base = match super::kb::resolve_kb(&ctx.state, tenant.id, kb).await {
                Ok(b) => b,
                Err(e) => return api_failed(ApiError::from(e)),
            };
            let tags = vec![format!("webhook:{}", source.name)];
            let input = IngestInput {
                source_id: &doc_id,
                title: title.as_deref(),
                content_type: &content_type,
                content: text.as_bytes(),
                tags: &tags,
            };
            // Ingested by Cairn on the sender's behalf: the system is the actor.
            let system = Ctx {
                state: ctx.state.clone(),
                actor: Actor::System,
                meta: ctx.meta.clone(),
            };
            match super::kb::ingest_into(&ctx.state, tenant, &base, &system, input).await {
                Ok(done) => Handled {
                    status: "processed",
                    handler: name,
                    result: json!({ "kb": base.name, "document_id": done.document.id,
                        "source_id": doc_id, "outcome": done.outcome, "chunks": done.chunks }),
                },
                Err(e) => api_failed(e),
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// A source's name.
    pub source: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

fn bad_cursor() -> ApiError {
    ApiError::invalid_field("cursor", "cursor: a next_cursor from a previous page")
}

/// A tenant's received events, newest first, one page.
pub async fn events(ctx: &Ctx, slug: &str, q: EventsQuery) -> Result<List<StoredWebhookEvent>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "limit: 1 to 200"));
    }
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let source = match &q.source {
        None => None,
        Some(name) => Some(source_named(ctx, &tenant, name).await?.id),
    };
    // The cursor is "<rfc3339>|<id>" of the last event shown.
    let before = match &q.cursor {
        None => None,
        Some(c) => {
            let (at, id) = c.split_once('|').ok_or_else(bad_cursor)?;
            let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| bad_cursor())?;
            Some((at.with_timezone(&chrono::Utc), id))
        }
    };
    let query = EventQuery {
        source,
        before,
        limit: limit + 1,
    };
    let mut items = ctx.store().webhook_events(tenant.id, &query).await?;
    let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more {
        items.last().map(|e| format!("{}|{}", e.received_at.to_rfc3339(), e.id))
    } else {
        None
    };
    Ok(List {
        data: items,
        next_cursor,
    })
}

async fn source_named(ctx: &Ctx, tenant: &Tenant, name: &str) -> Result<WebhookSource, ApiError> {
    ctx.store()
        .webhook_source(tenant.id, name)
        .await?
        .ok_or_else(|| ApiError::new(Code::WebhookSourceNotFound, "no such webhook source"))
}

/// One received event with its payload.
pub async fn event(ctx: &Ctx, slug: &str, id: &str) -> Result<StoredWebhookEvent, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    ctx.store()
        .webhook_event(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such webhook event"))
}

/// Runs the current handler of an event's source again (after fixing a handler or a base).
pub async fn rerun(ctx: &Ctx, slug: &str, id: &str) -> Result<Handled, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let not_found = || ApiError::new(Code::NotFound, "no such webhook event");
    let event = ctx.store().webhook_event(tenant.id, id).await?.ok_or_else(not_found)?;
    let sources = ctx.store().webhook_sources(tenant.id).await?;
    let source = sources
        .into_iter()
        .find(|s| s.id.to_string() == event.source_id)
        .ok_or_else(|| ApiError::new(Code::WebhookSourceNotFound, "the event's source was deleted"))?;
    Ok(dispatch(ctx, &tenant, &source, &event).await)
}

pub async fn set_handlers(ctx: &Ctx, slug: &str, name: &str, body: Value) -> Result<WebhookSource, ApiError> {
    let handlers = parse_handlers(Some(body))?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let json = serde_json::to_string(&handlers).map_err(ApiError::internal)?;
    let source = ctx
        .store()
        .set_webhook_source_handlers(tenant.id, name, &json)
        .await?
        .ok_or_else(|| ApiError::new(Code::WebhookSourceNotFound, "no such webhook source"))?;
    let event = ctx
        .event("webhook_source.updated", Outcome::Success)
        .tenant(tenant.id)
        .target(source.id.to_string())
        .details(json!({ "name": name, "handlers": handlers.len() }));
    ctx.audit(event).await;
    Ok(source)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// How long the old secret keeps verifying (default one day, at most 7 days).
    pub grace_secs: Option<i64>,
    /// A secret chosen by the sender; generated when absent.
    pub secret: Option<String>,
}

#[derive(Serialize)]
pub struct Rotated {
    #[serde(flatten)]
    pub source: WebhookSource,
    /// Shown once.
    pub secret: String,
}

/// Replaces a source's secret; deliveries signed with the old one verify until the grace
/// period ends (Standard Webhooks senders may send both signatures meanwhile).
pub async fn rotate(ctx: &Ctx, slug: &str, name: &str, input: Rotate) -> Result<Rotated, ApiError> {
    let grace = input.grace_secs.unwrap_or(86_400);
    if !(0..=7 * 86_400).contains(&grace) {
        return Err(ApiError::invalid_field("grace_secs", "grace_secs: 0 to 604800"));
    }
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let source = source_named(ctx, &tenant, name).await?;
    let scheme: super::webhooks::Scheme = serde_json::from_str(&source.scheme).map_err(ApiError::internal)?;
    let (bytes, shown) = super::webhooks::secret_of(&scheme, input.secret)?;
    let row = source.id.to_string();
    let slot = |column| Slot {
        table: "webhook_sources",
        column,
        row: &row,
    };
    let (keyring, store) = (&ctx.state.keyring, &ctx.state.store);
    let old = keyring
        .decrypt(store, tenant.id, slot("secret"), &source.secret)
        .await?;
    let sealed_prev = keyring.encrypt(store, tenant.id, slot("previous_secret"), &old).await?;
    let sealed = keyring.encrypt(store, tenant.id, slot("secret"), &bytes).await?;
    let until = chrono::Utc::now() + chrono::Duration::seconds(grace);
    let id: WebhookSourceId = source.id;
    let source = ctx
        .store()
        .rotate_webhook_source_secret(tenant.id, id, &sealed, &sealed_prev, until)
        .await?
        .ok_or_else(|| ApiError::new(Code::WebhookSourceNotFound, "no such webhook source"))?;
    let event = ctx
        .event("webhook_source.secret_rotated", Outcome::Success)
        .tenant(tenant.id)
        .target(source.id.to_string())
        .details(json!({ "name": name, "previous_valid_until": until }));
    ctx.audit(event).await;
    Ok(Rotated { source, secret: shown })
}

//! Alerting: every audit batch written is handed to an evaluator (one task per server).
//! For each event, the rules whose pattern matches — its tenant's, and the platform's
//! (operator rules over every tenant) — count the matching events in their window (per
//! source IP, actor or tenant when grouped); at the threshold the rule fires — once per
//! cool-down per group, the rest counted as suppressed — and the alert goes out as a signed
//! webhook (`alert.fired` to the tenant's subscribed endpoints, or to the operator's
//! endpoint for platform rules) and as an e-mail rendered from a template. Alerts are
//! audited (`alert.fired`), and events named `alert.*` never trigger rules (no loops).

use cairn_core::alert::GroupBy;
use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_store::alerts::{AlertRule, AlertScope, FireDecision};
use serde_json::json;
use tokio::sync::mpsc;

use crate::state::AppState;

pub mod email;

/// Audit batches waiting for evaluation; alerting never slows the audit writer: a full
/// queue drops the batch for alerting (logged), the events themselves are stored.
pub const QUEUE: usize = 256;

/// The alert the templates and the webhook see.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fired {
    /// The tenant's slug; for a platform rule the event's tenant, or "platform".
    pub tenant: String,
    /// `tenant` or `platform`: whose rule fired.
    pub scope: &'static str,
    pub rule: String,
    pub severity: &'static str,
    pub action: String,
    pub count: i64,
    pub threshold: i64,
    pub window_secs: i64,
    pub group: Option<String>,
    pub suppressed_since_last: i64,
    pub fired_at: chrono::DateTime<chrono::Utc>,
}

pub fn spawn_evaluator(state: AppState, mut rx: mpsc::Receiver<Vec<AuditEvent>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            // Rules are read once per batch and scope, not once per event.
            let mut rules = Rules::new();
            for event in batch {
                if let Err(e) = evaluate(&state, &mut rules, &event).await {
                    tracing::warn!(error = %e, action = event.action, "alert evaluation failed");
                }
            }
        }
    })
}

fn group_of(rule: &AlertRule, event: &AuditEvent) -> Option<String> {
    match rule.group_by {
        GroupBy::None => None,
        GroupBy::SourceIp => Some(event.source_ip.clone().unwrap_or_default()),
        GroupBy::Actor => Some(format!(
            "{}:{}",
            event.actor.kind(),
            event.actor.id().unwrap_or_default()
        )),
        GroupBy::Tenant => Some(event.tenant.map(|t| t.to_string()).unwrap_or_default()),
    }
}

/// The event's tenant's rules, then the platform's.
async fn evaluate(state: &AppState, rules: &mut Rules, event: &AuditEvent) -> Result<(), String> {
    if event.action.starts_with("alert.") {
        return Ok(());
    }
    if let Some(tenant) = event.tenant {
        evaluate_scope(state, rules, AlertScope::Tenant(tenant), event).await?;
    }
    evaluate_scope(state, rules, AlertScope::Platform, event).await
}

/// The rules of each scope seen in the current batch.
type Rules = std::collections::HashMap<AlertScope, Vec<AlertRule>>;

async fn evaluate_scope(
    state: &AppState,
    rules: &mut Rules,
    scope: AlertScope,
    event: &AuditEvent,
) -> Result<(), String> {
    let rules = match rules.entry(scope) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(state.store.alert_rules(scope).await.map_err(|e| e.to_string())?)
        }
    };
    for rule in rules.iter().filter(|r| r.action.matches(event.action)) {
        if rule.outcome.as_deref().is_some_and(|o| o != event.outcome.as_str()) {
            continue;
        }
        let group = group_of(rule, event);
        let now = chrono::Utc::now();
        let at = event.occurred_at;
        let since = at - chrono::Duration::seconds(rule.window_secs);
        let count = state
            .store
            .count_for_alert(scope, rule, since, at, group.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        if count < rule.threshold {
            continue;
        }
        let decision = state
            .store
            .decide_alert(scope, rule, group.as_deref().unwrap_or(""), now)
            .await
            .map_err(|e| e.to_string())?;
        if let FireDecision::Fire { suppressed } = decision {
            let slug = match event.tenant {
                Some(t) => state
                    .store
                    .get_tenant_by_id(t)
                    .await
                    .map(|t| t.slug.as_str().to_owned())
                    .unwrap_or_default(),
                None => "platform".to_owned(),
            };
            let fired = Fired {
                tenant: slug,
                scope: match scope {
                    AlertScope::Tenant(_) => "tenant",
                    AlertScope::Platform => "platform",
                },
                rule: rule.name.clone(),
                severity: rule.severity.as_str(),
                action: event.action.to_owned(),
                count,
                threshold: rule.threshold,
                window_secs: rule.window_secs,
                group,
                suppressed_since_last: suppressed,
                fired_at: now,
            };
            deliver(state, scope, rule, &fired).await;
        }
    }
    Ok(())
}

async fn deliver(state: &AppState, scope: AlertScope, rule: &AlertRule, fired: &Fired) {
    let data = serde_json::to_value(fired).unwrap_or_default();
    let mut webhook = None;
    if rule.webhook {
        webhook = Some(match scope {
            AlertScope::Tenant(tenant) => {
                crate::webhooks_out::publish(state, tenant, "alert.fired", data.clone()).await;
                "queued"
            }
            AlertScope::Platform => {
                let payload = json!({ "type": "alert.fired", "timestamp": fired.fired_at.to_rfc3339(), "data": data });
                if crate::webhooks_out::operator::send(state, payload) {
                    "queued"
                } else {
                    "no operator endpoint configured"
                }
            }
        });
    }
    let mut emailed = None;
    if let Some(to) = &rule.email_to {
        emailed = Some(match email::send_alert(&state.config, to, fired).await {
            Ok(()) => "sent".to_owned(),
            Err(e) => {
                tracing::warn!(rule = %rule.name, error = %e, "alert e-mail failed");
                format!("failed: {e}")
            }
        });
    }
    let mut event = AuditEvent::new(Actor::System, "alert.fired", Outcome::Success)
        .target(rule.id.clone())
        .details(json!({ "alert": data, "email": emailed, "webhook": webhook }));
    if let AlertScope::Tenant(tenant) = scope {
        event = event.tenant(tenant);
    }
    state.audit.emit(event).await;
}

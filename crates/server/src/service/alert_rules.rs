//! Alert rules: counts of audit events over a window (see `crate::alerts`), a tenant's
//! (its own events) or the platform's (the operator's: every tenant's and the platform's).

use cairn_core::alert::{check_numbers, ActionPattern, GroupBy, Severity};
use cairn_core::audit::Outcome;
use cairn_store::alerts::{AlertRule, AlertScope};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::state::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    pub name: String,
    /// `auth.failed`, `api_key.*`, `*`.
    pub action: String,
    pub outcome: Option<String>,
    pub threshold: i64,
    pub window_secs: i64,
    #[serde(default = "none")]
    pub group_by: String,
    #[serde(default)]
    pub cooldown_secs: i64,
    #[serde(default = "warning")]
    pub severity: String,
    /// Send the alert by e-mail to this address (needs `[smtp]`).
    pub email_to: Option<String>,
    /// Send `alert.fired` to the tenant's webhook endpoints subscribed to it.
    #[serde(default = "yes")]
    pub webhook: bool,
}

fn none() -> String {
    "none".into()
}
fn warning() -> String {
    "warning".into()
}
fn yes() -> bool {
    true
}

fn rule_of(input: CreateRule, platform: bool) -> Result<AlertRule, ApiError> {
    super::webhooks::check_name(&input.name)?;
    let action = ActionPattern::parse(&input.action)?;
    check_numbers(input.threshold, input.window_secs, input.cooldown_secs)?;
    let group_by = GroupBy::parse(&input.group_by)
        .filter(|g| platform || *g != GroupBy::Tenant)
        .ok_or_else(|| {
            let msg = if platform {
                "group_by: none, source_ip, actor or tenant"
            } else {
                "group_by: none, source_ip or actor"
            };
            ApiError::invalid_field("group_by", msg)
        })?;
    let severity = Severity::parse(&input.severity)
        .ok_or_else(|| ApiError::invalid_field("severity", "severity: info, warning or critical"))?;
    if let Some(o) = &input.outcome {
        if !["success", "failure", "denied"].contains(&o.as_str()) {
            return Err(ApiError::invalid_field(
                "outcome",
                "outcome: success, failure or denied",
            ));
        }
    }
    if let Some(to) = &input.email_to {
        if to.parse::<lettre::Address>().is_err() {
            return Err(ApiError::invalid_field("email_to", "email_to: an e-mail address"));
        }
    }
    Ok(AlertRule {
        id: format!("alr_{}", uuid::Uuid::now_v7().simple()),
        name: input.name,
        action,
        outcome: input.outcome,
        threshold: input.threshold,
        window_secs: input.window_secs,
        group_by,
        cooldown_secs: input.cooldown_secs,
        severity,
        email_to: input.email_to,
        webhook: input.webhook,
        created_at: chrono::Utc::now(),
    })
}

async fn create_in(ctx: &Ctx, scope: AlertScope, rule: AlertRule) -> Result<AlertRule, ApiError> {
    let rule = ctx.store().create_alert_rule(scope, &rule).await?;
    let mut event = ctx
        .event("alert_rule.created", Outcome::Success)
        .target(rule.id.clone())
        .details(
            json!({ "name": rule.name, "action": rule.action, "threshold": rule.threshold,
            "window_secs": rule.window_secs, "platform": scope == AlertScope::Platform }),
        );
    if let AlertScope::Tenant(t) = scope {
        event = event.tenant(t);
    }
    ctx.audit(event).await;
    Ok(rule)
}

async fn delete_in(ctx: &Ctx, scope: AlertScope, name: &str) -> Result<(), ApiError> {
    if !ctx.store().delete_alert_rule(scope, name).await? {
        return Err(ApiError::new(Code::NotFound, "no such alert rule"));
    }
    let mut event = ctx
        .event("alert_rule.deleted", Outcome::Success)
        .details(json!({ "name": name, "platform": scope == AlertScope::Platform }));
    if let AlertScope::Tenant(t) = scope {
        event = event.tenant(t);
    }
    ctx.audit(event).await;
    Ok(())
}

pub async fn create(ctx: &Ctx, slug: &str, input: CreateRule) -> Result<AlertRule, ApiError> {
    let rule = rule_of(input, false)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    create_in(ctx, AlertScope::Tenant(tenant.id), rule).await
}

/// A rule with what it did lately.
#[derive(Debug, Serialize)]
pub struct RuleView {
    #[serde(flatten)]
    pub rule: AlertRule,
    pub last_fired_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Alerts its cool-down is holding back now (reported with its next alert).
    pub suppressed: i64,
}

async fn list_in(ctx: &Ctx, scope: AlertScope) -> Result<Vec<RuleView>, ApiError> {
    let rules = ctx.store().alert_rules(scope).await?;
    let states = ctx.store().alert_rule_states(scope).await?;
    Ok(rules
        .into_iter()
        .map(|rule| {
            let (last_fired_at, suppressed) = states
                .iter()
                .find(|(id, _, _)| *id == rule.id)
                .map_or((None, 0), |(_, at, n)| (*at, *n));
            RuleView {
                rule,
                last_fired_at,
                suppressed,
            }
        })
        .collect())
}

pub async fn list(ctx: &Ctx, slug: &str) -> Result<Vec<RuleView>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    list_in(ctx, AlertScope::Tenant(tenant.id)).await
}

pub async fn delete(ctx: &Ctx, slug: &str, name: &str) -> Result<(), ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    delete_in(ctx, AlertScope::Tenant(tenant.id), name).await
}

/// An operator's rule over every tenant's events and the platform's.
pub async fn create_platform(ctx: &Ctx, input: CreateRule) -> Result<AlertRule, ApiError> {
    create_in(ctx, AlertScope::Platform, rule_of(input, true)?).await
}

pub async fn list_platform(ctx: &Ctx) -> Result<Vec<RuleView>, ApiError> {
    list_in(ctx, AlertScope::Platform).await
}

pub async fn delete_platform(ctx: &Ctx, name: &str) -> Result<(), ApiError> {
    delete_in(ctx, AlertScope::Platform, name).await
}

//! Usage reports of a tenant, from the hourly and daily roll-ups.

use cairn_core::usage::{UsageGrouping, UsageRow};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Code};
use crate::state::Ctx;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Start (inclusive, RFC 3339). Default: 30 days before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339). Default: now.
    pub to: Option<DateTime<Utc>>,
    /// `key` (default), `tool`, `day` or `hour`.
    pub group_by: Option<UsageGrouping>,
}

#[derive(Debug, Serialize)]
pub struct UsageReport {
    pub tenant: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: UsageGrouping,
    pub data: Vec<UsageRow>,
    pub total_calls: u64,
}

const MAX_RANGE_DAYS: i64 = 400;

pub async fn report(ctx: &Ctx, slug: &str, query: UsageQuery) -> Result<UsageReport, ApiError> {
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or(to - Duration::days(30));
    let invalid = |field: &'static str, message: &str| ApiError {
        code: Code::InvalidField,
        message: message.into(),
        field: Some(field),
    };
    if from >= to {
        return Err(invalid("from", "from: must be before to"));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(invalid("from", "from: the range may span at most 400 days"));
    }
    let group_by = query.group_by.unwrap_or(UsageGrouping::Key);
    let tenant = super::tenants::resolve(ctx, slug).await?;
    // Make this replica's pending events visible to the report.
    ctx.state.usage.flush().await;
    let data = ctx.store().usage_report(tenant.id, from, to, group_by).await?;
    let total_calls = data.iter().map(|r| r.calls).sum();
    Ok(UsageReport {
        tenant: tenant.slug.to_string(),
        from,
        to,
        group_by,
        data,
        total_calls,
    })
}

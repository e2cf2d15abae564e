//! Usage metering: one event per MCP request, rolled up per hour and day.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{ApiKeyId, TenantId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageOutcome {
    /// Served.
    Ok,
    /// Served, but the tool reported an error (`isError`).
    ToolError,
    /// A JSON-RPC error.
    Error,
    /// Refused by a rate limit or quota.
    RateLimited,
    /// Refused for lack of a scope.
    Denied,
}

impl UsageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::Error => "error",
            Self::RateLimited => "rate_limited",
            Self::Denied => "denied",
        }
    }

    /// Whether the call counts as an error in roll-ups.
    pub fn is_error(self) -> bool {
        !matches!(self, Self::Ok)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageEvent {
    pub tenant: TenantId,
    pub key: Option<ApiKeyId>,
    pub user: Option<UserId>,
    pub occurred_at: DateTime<Utc>,
    /// JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// Tool, prompt or resource named by the request, if any.
    pub tool: Option<String>,
    pub outcome: UsageOutcome,
    pub latency_us: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// What the call produced in its own unit: chunks ingested, results returned.
    pub units: u64,
}

impl UsageEvent {
    /// Methods that consume rate-limit allowance and quota.
    pub fn is_billable_method(method: &str) -> bool {
        matches!(method, "tools/call" | "resources/read" | "prompts/get")
    }

    /// Whether this event consumed quota: a billable method that was served.
    pub fn billable(&self) -> bool {
        Self::is_billable_method(&self.method)
            && !matches!(self.outcome, UsageOutcome::RateLimited | UsageOutcome::Denied)
    }
}

/// How usage is grouped in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageGrouping {
    Key,
    Tool,
    Day,
    Hour,
}

/// One row of a usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// The key id, tool name, or period start (RFC 3339), depending on the grouping.
    pub group: String,
    pub calls: u64,
    pub errors: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub units: u64,
    pub avg_latency_ms: f64,
}

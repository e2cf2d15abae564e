//! Audit event model. The store persists these; the server emits them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{AuditEventId, OperatorTokenId, TenantId, UserId};

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// An operator authenticated with a token.
    Operator(OperatorTokenId),
    /// The operator CLI acting directly on the database (trusted by filesystem access).
    Cli,
    User(UserId),
    /// Unauthenticated caller (e.g. a failed login).
    Anonymous,
    /// Cairn itself (bootstrap, background jobs).
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Operator(_) => "operator",
            Self::Cli => "cli",
            Self::User(_) => "user",
            Self::Anonymous => "anonymous",
            Self::System => "system",
        }
    }

    pub fn id(&self) -> Option<String> {
        match self {
            Self::Operator(id) => Some(id.to_string()),
            Self::User(id) => Some(id.to_string()),
            Self::Cli | Self::Anonymous | Self::System => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One security-relevant event. `tenant` is `None` for platform-level events (operator
/// actions on users and tokens, failed operator authentication).
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub tenant: Option<TenantId>,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    /// Stable dotted name, e.g. `tenant.created`, `auth.failed`.
    pub action: &'static str,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Free-form context. Never put secrets here.
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(actor: Actor, action: &'static str, outcome: Outcome) -> Self {
        Self {
            id: AuditEventId::new(),
            tenant: None,
            occurred_at: Utc::now(),
            actor,
            action,
            target: None,
            outcome,
            request_id: None,
            source_ip: None,
            user_agent: None,
            details: serde_json::Value::Null,
        }
    }

    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

pub mod chain;

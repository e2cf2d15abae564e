//! Operations shared by the REST API and the CLI: validate input, call the store, emit
//! audit events. Handlers and CLI commands are thin wrappers around these.

pub mod alert_rules;
pub mod api_keys;
pub mod audit;
pub mod audit_query;
pub mod credentials;
pub mod encryption;
pub mod idp;
pub mod invitations;
pub mod kb;
pub mod members;
pub mod oauth_apps;
pub mod operator_tokens;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod webhook_endpoints;
pub mod webhook_handlers;
pub mod webhooks;

use serde::{Deserialize, Serialize};

/// Query parameters of every listing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl ListParams {
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The largest single page, for the CLI.
    pub fn all() -> Self {
        Self {
            limit: Some(cairn_store::Page::MAX_LIMIT),
            cursor: None,
        }
    }

    pub fn page(&self) -> cairn_store::Page {
        cairn_store::Page {
            limit: self.limit.unwrap_or(Self::DEFAULT_LIMIT),
            after: self.cursor.clone().filter(|c| !c.is_empty()),
        }
    }
}

/// A page of a listing as the API returns it.
#[derive(Debug, Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> From<cairn_store::Paged<T>> for List<T> {
    fn from(p: cairn_store::Paged<T>) -> Self {
        Self {
            data: p.items,
            next_cursor: p.next,
        }
    }
}

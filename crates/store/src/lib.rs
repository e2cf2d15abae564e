//! Cairn's storage layer: the only crate that speaks SQL.
//!
//! [`Store`] wraps an enum of pools ([`pool::Db`]): SQLite (embedded default) or
//! PostgreSQL. Each aggregate lives in its own module and writes its SQL once; the
//! [`with_conn!`] macro expands a body for each backend so the two are type-checked
//! separately but never drift apart. Where the dialects differ, a module matches on the
//! backend explicitly.
//!
//! Every query runs inside a *scope*: a tenant scope ([`Store::tenant_tx`]) or the
//! platform scope ([`Store::platform_tx`]). On PostgreSQL the scope is what row-level
//! security checks; on SQLite the tenant argument of each method is the guard.

#[macro_use]
mod macros;

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod audit_dead_letters;
pub mod audit_query;
pub mod audit_retention;
pub mod connected_accounts;
pub mod crypto_jobs;
pub mod data_keys;
pub mod error;
pub mod identity_providers;
pub mod invitations;
pub mod kb_search;
pub mod kb_stats;
pub mod knowledge;
pub mod memberships;
pub mod oauth_apps;
pub mod oauth_credentials;
pub mod oauth_grants;
pub mod operator_tokens;
pub mod pool;
pub mod scope;
pub mod signing_keys;
pub mod tenants;
mod types;
pub mod usage;
pub mod users;
pub mod webhook_endpoints;
pub mod webhook_partitions;
pub mod webhooks;

pub use error::StoreError;
pub use pool::{Backend, Store, StoreConfig};
pub use scope::{PlatformTx, TenantTx};

/// Keyset pagination: at most `limit` rows strictly after `after`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: u32,
    pub after: Option<String>,
}

impl Page {
    pub const MAX_LIMIT: u32 = 200;

    /// The limit to send to the database: clamped, plus one row to learn whether a
    /// next page exists.
    pub(crate) fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, Self::MAX_LIMIT)) + 1
    }
}

/// One page of results and the cursor for the next, if any.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Paged<T> {
    pub(crate) fn from_rows(mut rows: Vec<T>, page: &Page, cursor: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(page.limit.clamp(1, Page::MAX_LIMIT)).unwrap_or(usize::MAX);
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

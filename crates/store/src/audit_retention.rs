//! Audit retention: the oldest links of a chain are deleted in batches, always a prefix
//! of the chain, and the last deleted link is kept as the chain's checkpoint (in the same
//! transaction), so verification resumes there and the chain stays verifiable.

use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};

use crate::scope::Tx;
use crate::types::{DbTime, DbUuid};
use crate::{PlatformTx, Store, StoreError, TenantTx};

/// What one purge step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeStep {
    /// Chained rows deleted (0: nothing left to purge).
    pub deleted: u64,
    /// Rows written before chains existed, deleted by age.
    pub unchained: u64,
    /// The new checkpoint's position, if rows were deleted.
    pub through_seq: Option<i64>,
}

impl Store {
    /// The (seq, hash) a chain resumes from after a purge.
    pub async fn audit_checkpoint(&self, tenant: Option<TenantId>) -> Result<Option<(i64, String)>, StoreError> {
        let chain = DbUuid(tenant.map(|t| t.as_uuid()).unwrap_or_default());
        let mut tx = Scope::begin(self, tenant, false).await?;
        let row: Option<(i64, String)> = with_conn!(tx.tx(), conn => {
            sqlx::query_as("SELECT seq, hash FROM audit_chain_checkpoints WHERE chain_id = $1")
                .bind(chain).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes up to `batch` of a chain's oldest links written before `cutoff` — only those
    /// below the first link still inside retention, so what remains is a suffix of the chain.
    pub async fn purge_audit_prefix(
        &self,
        tenant: Option<TenantId>,
        cutoff: DateTime<Utc>,
        batch: i64,
    ) -> Result<PurgeStep, StoreError> {
        let chain = DbUuid(tenant.map(|t| t.as_uuid()).unwrap_or_default());
        let (table, filter) = match tenant {
            Some(_) => ("audit_events", "tenant_id = $1"),
            // The platform table has no tenant column; `$1 = $1` keeps the binds aligned.
            None => ("platform_audit_events", "$1 = $1"),
        };
        let mut tx = Scope::begin(self, tenant, true).await?;
        let cut = DbTime::new(cutoff);
        let bounds = format!(
            "SELECT (SELECT min(seq) FROM {table} WHERE {filter} AND seq IS NOT NULL), \
                    (SELECT max(seq) FROM {table} WHERE {filter} AND seq IS NOT NULL), \
                    (SELECT min(seq) FROM {table} WHERE {filter} AND seq IS NOT NULL AND occurred_at >= $2)"
        );
        let (lowest, highest, first_kept): (Option<i64>, Option<i64>, Option<i64>) = with_conn!(tx.tx(), conn => {
            sqlx::query_as(&bounds).bind(chain).bind(cut).fetch_one(conn).await
        })?;
        let unchained_sql = format!("DELETE FROM {table} WHERE {filter} AND seq IS NULL AND occurred_at < $2");
        let unchained = with_conn!(tx.tx(), conn => {
            sqlx::query(&unchained_sql).bind(chain).bind(cut).execute(conn).await.map(|r| r.rows_affected())
        })?;
        let mut step = PurgeStep {
            unchained,
            ..PurgeStep::default()
        };
        let upper = first_kept.map(|s| s - 1).or(highest);
        if let (Some(low), Some(up)) = (lowest, upper) {
            if low <= up {
                let through = up.min(low + batch.max(1) - 1);
                let link_sql = format!("SELECT hash FROM {table} WHERE {filter} AND seq = $2");
                let hash: String = with_conn!(tx.tx(), conn => {
                    sqlx::query_scalar(&link_sql).bind(chain).bind(through).fetch_one(conn).await
                })?;
                let delete = format!("DELETE FROM {table} WHERE {filter} AND seq >= $2 AND seq <= $3");
                step.deleted = with_conn!(tx.tx(), conn => {
                    sqlx::query(&delete).bind(chain).bind(low).bind(through).execute(conn).await
                        .map(|r| r.rows_affected())
                })?;
                with_conn!(tx.tx(), conn => {
                    sqlx::query(
                        "INSERT INTO audit_chain_checkpoints (chain_id, seq, hash, purged_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (chain_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
                         purged_at = excluded.purged_at",
                    )
                    .bind(chain).bind(through).bind(&hash).bind(DbTime::now())
                    .execute(conn).await.map(|r| r.rows_affected())
                })?;
                step.through_seq = Some(through);
            }
        }
        tx.commit().await?;
        Ok(step)
    }
}

/// A tenant's chain is read and purged under its tenant scope (row-level security on
/// PostgreSQL), the platform chain under the platform scope.
pub(crate) enum Scope {
    Tenant(TenantTx),
    Platform(PlatformTx),
}

impl Scope {
    pub(crate) async fn begin(store: &Store, tenant: Option<TenantId>, write: bool) -> Result<Self, StoreError> {
        Ok(match tenant {
            Some(t) => Self::Tenant(store.tenant_tx(t, write).await?),
            None => Self::Platform(store.platform_tx(write).await?),
        })
    }

    pub(crate) fn tx(&mut self) -> &mut Tx {
        match self {
            Self::Tenant(t) => &mut t.tx,
            Self::Platform(p) => &mut p.tx,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Tenant(t) => t.commit().await,
            Self::Platform(p) => p.commit().await,
        }
    }
}

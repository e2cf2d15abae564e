//! The audit writer's way out when a batch cannot be appended to its chains: events are
//! appended one at a time, and each one its chain refuses (an edited chain head makes
//! every insert collide with a stored link; a value the database rejects) is kept in
//! `audit_dead_letters` with the error instead of being retried forever or dropped. The
//! chain heads themselves are read here too, for `cairn audit verify`.

use cairn_core::audit::AuditEvent;
use cairn_core::ids::TenantId;
use chrono::Utc;

use crate::audit::append_chain;
use crate::scope::EitherTx;
use crate::scope::Tx;
use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

/// What [`Store::insert_audit_events_one_by_one`] could not chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAside {
    /// Events written to `audit_dead_letters` instead of their chain.
    pub events: usize,
    /// The first error a chain gave (for the log; it names no event content).
    pub error: Option<String>,
}

impl Store {
    /// Appends each event on its own (a savepoint each) in one transaction; an event whose
    /// chain refuses it goes to `audit_dead_letters` with the error. All or nothing: on
    /// `Err` (the database itself failing) nothing was written and the batch can be
    /// retried whole. Slower than [`Store::insert_audit_events`]: only for a batch that
    /// has already failed there.
    pub async fn insert_audit_events_one_by_one(&self, events: &[AuditEvent]) -> Result<SetAside, StoreError> {
        let mut out = SetAside::default();
        if events.is_empty() {
            return Ok(out);
        }
        let mut tx = self.platform_tx(true).await?;
        let now = DbTime::new(Utc::now());
        for e in events {
            let chain = e.tenant.map(|t| t.as_uuid()).unwrap_or_default();
            raw(&mut tx.tx, "SAVEPOINT audit_link").await?;
            let appended = append_chain(&mut tx.tx, chain, &[e]).await;
            let error = match appended {
                Ok(()) => {
                    raw(&mut tx.tx, "RELEASE SAVEPOINT audit_link").await?;
                    continue;
                }
                // The connection is gone: nothing here can be written, let the caller retry.
                Err(err @ StoreError::Unavailable(_)) => return Err(err),
                Err(err) => err.to_string(),
            };
            raw(&mut tx.tx, "ROLLBACK TO SAVEPOINT audit_link").await?;
            raw(&mut tx.tx, "RELEASE SAVEPOINT audit_link").await?;
            let json = serde_json::to_string(e).map_err(|x| StoreError::Corrupt(format!("audit event: {x}")))?;
            with_conn!(&mut tx.tx, conn => {
                sqlx::query(
                    "INSERT INTO audit_dead_letters (chain_id, id, occurred_at, action, event, error, set_aside_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chain_id, id) DO NOTHING",
                )
                .bind(DbUuid(chain)).bind(DbUuid(e.id.as_uuid())).bind(DbTime::new(e.occurred_at))
                .bind(e.action).bind(&json).bind(&error).bind(now)
                .execute(conn).await.map(|r| r.rows_affected())
            })?;
            out.events += 1;
            out.error.get_or_insert(error);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// How many of a chain's events (`None`: the platform chain) were set aside.
    pub async fn audit_dead_letter_count(&self, tenant: Option<TenantId>) -> Result<i64, StoreError> {
        let chain = DbUuid(tenant.map(|t| t.as_uuid()).unwrap_or_default());
        let mut tx = EitherTx::begin(self, tenant, false).await?;
        let n = with_conn!(tx.tx(), conn => {
            sqlx::query_scalar("SELECT count(*) FROM audit_dead_letters WHERE chain_id = $1")
                .bind(chain).fetch_one(conn).await
        })?;
        tx.commit().await?;
        Ok(n)
    }

    /// The chain's head as stored: (seq, hash) of the link the next event follows.
    pub async fn audit_chain_head(&self, tenant: Option<TenantId>) -> Result<Option<(i64, String)>, StoreError> {
        let chain = DbUuid(tenant.map(|t| t.as_uuid()).unwrap_or_default());
        let mut tx = EitherTx::begin(self, tenant, false).await?;
        let head = with_conn!(tx.tx(), conn => {
            sqlx::query_as("SELECT seq, hash FROM audit_chain_heads WHERE chain_id = $1")
                .bind(chain).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(head)
    }
}

/// A savepoint statement (both backends spell them alike).
async fn raw(tx: &mut Tx, sql: &'static str) -> Result<(), StoreError> {
    with_conn!(tx, conn => sqlx::query(sql).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(())
}

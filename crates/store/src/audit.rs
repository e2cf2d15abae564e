//! Audit events: batched inserts (the server's writer calls these off the request path)
//! and simple listings. Tenant events go to `audit_events`, platform events to
//! `platform_audit_events`.

use cairn_core::audit::AuditEvent;
use cairn_core::ids::{AuditEventId, TenantId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::scope::Tx;
use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};
use cairn_core::audit::chain::{link_hash, ChainFields, GENESIS};
use uuid::Uuid;

/// Rows per INSERT statement; well under both backends' bind-parameter limits.
const CHUNK: usize = 500;

/// An audit event as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredAuditEvent {
    pub id: AuditEventId,
    pub tenant_id: Option<TenantId>,
    pub occurred_at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: DbUuid,
    occurred_at: DbTime,
    actor_kind: String,
    actor_id: Option<String>,
    action: String,
    target: Option<String>,
    outcome: String,
    request_id: Option<String>,
    source_ip: Option<String>,
    user_agent: Option<String>,
    details: Json<serde_json::Value>,
}

impl AuditRow {
    pub(crate) fn into_event(self, tenant_id: Option<TenantId>) -> StoredAuditEvent {
        StoredAuditEvent {
            id: AuditEventId::from_uuid(self.id.0),
            tenant_id,
            occurred_at: self.occurred_at.0,
            actor_kind: self.actor_kind,
            actor_id: self.actor_id,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            request_id: self.request_id,
            source_ip: self.source_ip,
            user_agent: self.user_agent,
            details: self.details.0,
        }
    }
}

pub(crate) const COMMON: &str =
    "id, occurred_at, actor_kind, actor_id, action, target, outcome, request_id, source_ip, user_agent, details";

impl Store {
    /// Writes a batch of events in one transaction (one commit, one fsync), each appended
    /// to its tenant's chain (platform events to the platform chain). The chain head row
    /// is locked first, so writers on every replica append one after the other.
    pub async fn insert_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut chains: Vec<(Uuid, Vec<&AuditEvent>)> = Vec::new();
        for e in events {
            let chain = e.tenant.map(|t| t.as_uuid()).unwrap_or_default();
            match chains.iter_mut().find(|(c, _)| *c == chain) {
                Some((_, list)) => list.push(e),
                None => chains.push((chain, vec![e])),
            }
        }
        let mut tx = self.platform_tx(true).await?;
        for (chain, list) in chains {
            append_chain(&mut tx.tx, chain, &list).await?;
        }
        tx.commit().await
    }

    /// The newest `limit` events of a tenant, newest first.
    pub async fn recent_audit_events(&self, tenant: TenantId, limit: u32) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {COMMON} FROM audit_events WHERE tenant_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<AuditRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(i64::from(limit)).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|r| r.into_event(Some(tenant))).collect())
    }

    /// The newest `limit` platform events, newest first.
    pub async fn recent_platform_audit_events(&self, limit: u32) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let sql = format!("SELECT {COMMON} FROM platform_audit_events ORDER BY occurred_at DESC, id DESC LIMIT $1");
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<AuditRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(i64::from(limit)).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|r| r.into_event(None)).collect())
    }
}

/// Appends `list` to `chain` (the nil UUID: the platform chain) inside `tx`: locks the
/// chain's head, links each event to the one before and moves the head past them.
pub(crate) async fn append_chain(tx: &mut Tx, chain: Uuid, list: &[&AuditEvent]) -> Result<(), StoreError> {
    let (mut seq, mut prev) = lock_head(tx, chain).await?;
    let chain_name = chain.hyphenated().to_string();
    let mut links = Vec::with_capacity(list.len());
    for e in list {
        seq += 1;
        let id = e.id.as_uuid().hyphenated().to_string();
        let actor_id = e.actor.id();
        let fields = ChainFields {
            id: &id,
            occurred_at_micros: DbTime::new(e.occurred_at).0.timestamp_micros(),
            actor_kind: e.actor.kind(),
            actor_id: actor_id.as_deref(),
            action: e.action,
            target: e.target.as_deref(),
            outcome: e.outcome.as_str(),
            request_id: e.request_id.as_deref(),
            source_ip: e.source_ip.as_deref(),
            user_agent: e.user_agent.as_deref(),
            details: &e.details,
        };
        let hash = link_hash(&chain_name, seq, &prev, &fields);
        links.push((*e, seq, std::mem::replace(&mut prev, hash.clone()), hash));
    }
    let table = if chain.is_nil() {
        format!("platform_audit_events ({COMMON}, seq, prev_hash, hash)")
    } else {
        format!("audit_events (tenant_id, {COMMON}, seq, prev_hash, hash)")
    };
    for part in links.chunks(CHUNK) {
        with_conn!(&mut *tx, conn => {
            let mut qb = sqlx::QueryBuilder::new(format!("INSERT INTO {table} "));
            qb.push_values(part, |mut b, (e, seq, prev, hash)| {
                if !chain.is_nil() {
                    b.push_bind(DbUuid(chain));
                }
                push_common(&mut b, e);
                b.push_bind(*seq).push_bind(prev.as_str()).push_bind(hash.as_str());
            });
            qb.build().execute(conn).await.map(|r| r.rows_affected())
        })?;
    }
    with_conn!(&mut *tx, conn => {
        sqlx::query("UPDATE audit_chain_heads SET seq = $2, hash = $3 WHERE chain_id = $1")
            .bind(DbUuid(chain)).bind(seq).bind(&prev).execute(conn).await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

fn push_common<'a, DB>(b: &mut sqlx::query_builder::Separated<'_, 'a, DB, &'static str>, e: &'a AuditEvent)
where
    DB: sqlx::Database,
    DbUuid: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    DbTime: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Json<&'a serde_json::Value>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    b.push_bind(DbUuid(e.id.as_uuid()))
        .push_bind(DbTime::new(e.occurred_at))
        .push_bind(e.actor.kind())
        .push_bind(e.actor.id())
        .push_bind(e.action)
        .push_bind(e.target.as_deref())
        .push_bind(e.outcome.as_str())
        .push_bind(e.request_id.as_deref())
        .push_bind(e.source_ip.as_deref())
        .push_bind(e.user_agent.as_deref())
        .push_bind(Json(&e.details));
}

/// The chain's newest (seq, hash), created at (0, genesis) the first time, and locked
/// for the rest of the transaction on PostgreSQL (SQLite's write lock covers it).
async fn lock_head(tx: &mut Tx, chain: Uuid) -> Result<(i64, String), StoreError> {
    let select = match tx {
        Tx::Postgres(_) => "SELECT seq, hash FROM audit_chain_heads WHERE chain_id = $1 FOR UPDATE",
        Tx::Sqlite(_) => "SELECT seq, hash FROM audit_chain_heads WHERE chain_id = $1",
    };
    let head: (i64, String) = with_conn!(&mut *tx, conn => {
        sqlx::query("INSERT INTO audit_chain_heads (chain_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (chain_id) DO NOTHING")
            .bind(DbUuid(chain)).bind(GENESIS).execute(&mut *conn).await?;
        sqlx::query_as(select).bind(DbUuid(chain)).fetch_one(&mut *conn).await?
    });
    Ok(head)
}

/// One stored link of an audit chain, with every hashed field.
#[derive(Debug, Clone)]
pub struct AuditLink {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub event: StoredAuditEvent,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    #[sqlx(flatten)]
    row: AuditRow,
    seq: i64,
    prev_hash: String,
    hash: String,
}

impl Store {
    /// Up to `limit` links of a tenant's chain (or the platform chain) after `after_seq`,
    /// in chain order: what `cairn audit verify` walks.
    pub async fn audit_chain_page(
        &self,
        tenant: Option<TenantId>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditLink>, StoreError> {
        let rows: Vec<LinkRow> = match tenant {
            Some(t) => {
                let sql = format!(
                    "SELECT {COMMON}, seq, prev_hash, hash FROM audit_events \
                     WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                );
                let mut tx = self.tenant_tx(t, false).await?;
                let rows = with_conn!(&mut tx.tx, conn => {
                    sqlx::query_as(&sql).bind(DbUuid(t.as_uuid())).bind(after_seq).bind(limit).fetch_all(conn).await
                })?;
                tx.commit().await?;
                rows
            }
            None => {
                let sql = format!(
                    "SELECT {COMMON}, seq, prev_hash, hash FROM platform_audit_events \
                     WHERE seq > $1 ORDER BY seq LIMIT $2"
                );
                let mut tx = self.platform_tx(false).await?;
                let rows = with_conn!(&mut tx.tx, conn => {
                    sqlx::query_as(&sql).bind(after_seq).bind(limit).fetch_all(conn).await
                })?;
                tx.commit().await?;
                rows
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| AuditLink {
                seq: r.seq,
                prev_hash: r.prev_hash,
                hash: r.hash,
                event: r.row.into_event(tenant),
            })
            .collect())
    }

    /// Events written before the chain existed (no link): counted, not verifiable.
    pub async fn audit_unchained(&self, tenant: Option<TenantId>) -> Result<i64, StoreError> {
        match tenant {
            Some(t) => {
                let mut tx = self.tenant_tx(t, false).await?;
                let n = with_conn!(&mut tx.tx, conn => {
                    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND seq IS NULL")
                        .bind(DbUuid(t.as_uuid())).fetch_one(conn).await
                })?;
                tx.commit().await?;
                Ok(n)
            }
            None => {
                let mut tx = self.platform_tx(false).await?;
                let n = with_conn!(&mut tx.tx, conn => {
                    sqlx::query_scalar("SELECT count(*) FROM platform_audit_events WHERE seq IS NULL")
                        .fetch_one(conn).await
                })?;
                tx.commit().await?;
                Ok(n)
            }
        }
    }
}

//! Audit events: batched inserts (the server's writer calls these off the request path)
//! and simple listings. Tenant events go to `audit_events`, platform events to
//! `platform_audit_events`.

use cairn_core::audit::AuditEvent;
use cairn_core::ids::{AuditEventId, TenantId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

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
struct AuditRow {
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
    fn into_event(self, tenant_id: Option<TenantId>) -> StoredAuditEvent {
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

const COMMON: &str =
    "id, occurred_at, actor_kind, actor_id, action, target, outcome, request_id, source_ip, user_agent, details";

impl Store {
    /// Writes a batch of events in one transaction (one commit, one fsync).
    pub async fn insert_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let (tenant, platform): (Vec<&AuditEvent>, Vec<&AuditEvent>) = events.iter().partition(|e| e.tenant.is_some());
        let mut tx = self.platform_tx(true).await?;
        for chunk in tenant.chunks(CHUNK) {
            with_conn!(&mut tx.tx, conn => {
                let mut qb = sqlx::QueryBuilder::new(format!("INSERT INTO audit_events (tenant_id, {COMMON}) "));
                qb.push_values(chunk, |mut b, e| {
                    b.push_bind(DbUuid(e.tenant.map(|t| t.as_uuid()).unwrap_or_default()));
                    push_common(&mut b, e);
                });
                qb.build().execute(conn).await.map(|r| r.rows_affected())
            })?;
        }
        for chunk in platform.chunks(CHUNK) {
            with_conn!(&mut tx.tx, conn => {
                let mut qb = sqlx::QueryBuilder::new(format!("INSERT INTO platform_audit_events ({COMMON}) "));
                qb.push_values(chunk, |mut b, e| push_common(&mut b, e));
                qb.build().execute(conn).await.map(|r| r.rows_affected())
            })?;
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

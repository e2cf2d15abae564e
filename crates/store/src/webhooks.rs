//! Inbound webhooks: a tenant's named sources (scheme + sealed secrets, which this module
//! never opens), the verified events, and the message ids seen recently. An event and its
//! message id are recorded in one transaction, so a replay is refused atomically.

use cairn_core::ids::{TenantId, WebhookEventId, WebhookSourceId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::is_unique_violation;
use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Clone, Serialize)]
pub struct WebhookSource {
    pub id: WebhookSourceId,
    pub name: String,
    /// The verification scheme, JSON (interpreted by the server).
    pub scheme: String,
    #[serde(skip)]
    pub secret: Vec<u8>,
    #[serde(skip)]
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<DateTime<Utc>>,
    /// Handlers by event type (JSON list, interpreted by the server).
    pub handlers: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for WebhookSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSource")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scheme", &self.scheme)
            .field("secret", &"<sealed>")
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct SourceRow {
    id: String,
    name: String,
    scheme: String,
    secret: Vec<u8>,
    previous_secret: Option<Vec<u8>>,
    previous_until: Option<DbTime>,
    handlers: String,
    created_at: DbTime,
}

impl TryFrom<SourceRow> for WebhookSource {
    type Error = StoreError;
    fn try_from(r: SourceRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r
                .id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("webhook_sources: bad id {}", r.id)))?,
            name: r.name,
            scheme: r.scheme,
            secret: r.secret,
            previous_secret: r.previous_secret,
            previous_until: r.previous_until.map(|t| t.0),
            handlers: serde_json::from_str(&r.handlers)
                .map_err(|e| StoreError::Corrupt(format!("webhook_sources: handlers: {e}")))?,
            created_at: r.created_at.0,
        })
    }
}

const SOURCE_COLUMNS: &str = "id, name, scheme, secret, previous_secret, previous_until, handlers, created_at";

#[derive(Debug, Clone, Serialize)]
pub struct StoredWebhookEvent {
    pub id: String,
    pub source_id: String,
    pub message_id: Option<String>,
    pub event_type: Option<String>,
    pub received_at: DateTime<Utc>,
    /// Absent in lists (a page of 1 MiB payloads would be huge); see `webhook_event`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// `stored` (no handler), `processed` or `failed`.
    pub status: String,
    pub handler: Option<String>,
    /// What the handler did or why it failed (JSON).
    pub result: Option<serde_json::Value>,
    pub handled_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    source_id: String,
    message_id: Option<String>,
    event_type: Option<String>,
    received_at: DbTime,
    payload: Option<String>,
    status: String,
    handler: Option<String>,
    result: Option<String>,
    handled_at: Option<DbTime>,
}

impl From<EventRow> for StoredWebhookEvent {
    fn from(r: EventRow) -> Self {
        Self {
            id: r.id,
            source_id: r.source_id,
            message_id: r.message_id,
            event_type: r.event_type,
            received_at: r.received_at.0,
            payload: r.payload,
            status: r.status,
            handler: r.handler,
            result: r.result.and_then(|t| serde_json::from_str(&t).ok()),
            handled_at: r.handled_at.map(|t| t.0),
        }
    }
}

const EVENT_COLUMNS: &str =
    "id, source_id, message_id, event_type, received_at, payload, status, handler, result, handled_at";
const EVENT_COLUMNS_NO_PAYLOAD: &str = "id, source_id, message_id, event_type, received_at, \
    CAST(NULL AS TEXT) AS payload, status, handler, result, handled_at";

/// A page of a tenant's recorded events, newest first.
#[derive(Debug, Default)]
pub struct EventQuery<'a> {
    pub source: Option<WebhookSourceId>,
    /// Events strictly older than this (received_at, id): the previous page's last.
    pub before: Option<(DateTime<Utc>, &'a str)>,
    pub limit: i64,
}

/// What a handler did with an event.
pub struct HandledEvent<'a> {
    pub received_at: DateTime<Utc>,
    pub id: &'a str,
    pub status: &'a str,
    pub handler: Option<&'a str>,
    pub result: &'a serde_json::Value,
}

/// A verified event to record.
pub struct NewWebhookEvent<'a> {
    pub source: WebhookSourceId,
    pub message_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub payload: &'a str,
    pub received_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_webhook_source(
        &self,
        tenant: TenantId,
        id: WebhookSourceId,
        name: &str,
        scheme: &str,
        handlers: &str,
        sealed_secret: &[u8],
    ) -> Result<WebhookSource, StoreError> {
        let sql = format!(
            "INSERT INTO webhook_sources (tenant_id, id, name, scheme, secret, created_at, handlers) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SOURCE_COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Result<SourceRow, sqlx::Error> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid())).bind(id.to_string()).bind(name).bind(scheme)
                .bind(sealed_secret).bind(DbTime::now()).bind(handlers)
                .fetch_one(conn).await
        });
        let row = row.map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a webhook source named {name} exists"))
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn webhook_sources(&self, tenant: TenantId) -> Result<Vec<WebhookSource>, StoreError> {
        let sql = format!("SELECT {SOURCE_COLUMNS} FROM webhook_sources WHERE tenant_id = $1 ORDER BY name");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<SourceRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_all(conn).await
        })?;
        tx.commit().await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn webhook_source(&self, tenant: TenantId, name: &str) -> Result<Option<WebhookSource>, StoreError> {
        let sql = format!("SELECT {SOURCE_COLUMNS} FROM webhook_sources WHERE tenant_id = $1 AND name = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<SourceRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(name).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Deletes a source (its recorded events stay until retention removes them).
    pub async fn delete_webhook_source(&self, tenant: TenantId, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM webhook_sources WHERE tenant_id = $1 AND name = $2")
                .bind(DbUuid(tenant.as_uuid())).bind(name).execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Records a verified event. `None` when its message id was already seen from this
    /// source (a replay): nothing is written then.
    pub async fn record_webhook_event(
        &self,
        tenant: TenantId,
        event: &NewWebhookEvent<'_>,
    ) -> Result<Option<WebhookEventId>, StoreError> {
        let t = DbUuid(tenant.as_uuid());
        let at = DbTime::new(event.received_at);
        let mut tx = self.tenant_tx(tenant, true).await?;
        if let Some(msg) = event.message_id {
            let fresh = with_conn!(&mut tx.tx, conn => {
                sqlx::query(
                    "INSERT INTO webhook_seen (tenant_id, source_id, message_id, seen_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, source_id, message_id) DO NOTHING",
                )
                .bind(t).bind(event.source.to_string()).bind(msg).bind(at)
                .execute(conn).await.map(|r| r.rows_affected())
            })?;
            if fresh == 0 {
                return Ok(None);
            }
        }
        let id = WebhookEventId::new();
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO webhook_events (tenant_id, received_at, id, source_id, message_id, event_type, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(t).bind(at).bind(id.to_string()).bind(event.source.to_string())
            .bind(event.message_id).bind(event.event_type).bind(event.payload)
            .execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// A tenant's recorded events without their payloads, newest first (across
    /// partitions on PostgreSQL).
    pub async fn webhook_events(
        &self,
        tenant: TenantId,
        q: &EventQuery<'_>,
    ) -> Result<Vec<StoredWebhookEvent>, StoreError> {
        let (before_at, before_id) = match q.before {
            Some((at, id)) => (Some(DbTime::new(at)), Some(id)),
            None => (None, None),
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS_NO_PAYLOAD} FROM webhook_events WHERE tenant_id = $1 \
             AND ($2 IS NULL OR source_id = $2) \
             AND ($3 IS NULL OR received_at < $3 OR (received_at = $3 AND id < $4)) \
             ORDER BY received_at DESC, id DESC LIMIT $5"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<EventRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid())).bind(q.source.map(|s| s.to_string()))
                .bind(before_at).bind(before_id).bind(q.limit)
                .fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn webhook_event(&self, tenant: TenantId, id: &str) -> Result<Option<StoredWebhookEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE tenant_id = $1 AND id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<EventRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(id).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    /// Records what a handler did (the partition key narrows the update to one partition).
    pub async fn set_webhook_event_handled(&self, tenant: TenantId, h: &HandledEvent<'_>) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE webhook_events SET status = $4, handler = $5, result = $6, handled_at = $7 \
                 WHERE tenant_id = $1 AND received_at = $2 AND id = $3",
            )
            .bind(DbUuid(tenant.as_uuid())).bind(DbTime::new(h.received_at)).bind(h.id)
            .bind(h.status).bind(h.handler).bind(h.result.to_string()).bind(DbTime::now())
            .execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_webhook_source_handlers(
        &self,
        tenant: TenantId,
        name: &str,
        handlers: &str,
    ) -> Result<Option<WebhookSource>, StoreError> {
        let sql = format!(
            "UPDATE webhook_sources SET handlers = $3 WHERE tenant_id = $1 AND name = $2 RETURNING {SOURCE_COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Option<SourceRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(name).bind(handlers).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Replaces a source's secret; the old one (re-sealed for its new column) stays valid
    /// until `previous_until`.
    pub async fn rotate_webhook_source_secret(
        &self,
        tenant: TenantId,
        id: WebhookSourceId,
        sealed_secret: &[u8],
        sealed_previous: &[u8],
        previous_until: DateTime<Utc>,
    ) -> Result<Option<WebhookSource>, StoreError> {
        let sql = format!(
            "UPDATE webhook_sources SET secret = $3, previous_secret = $4, previous_until = $5 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {SOURCE_COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Option<SourceRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid())).bind(id.to_string()).bind(sealed_secret).bind(sealed_previous)
                .bind(DbTime::new(previous_until))
                .fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Forgets message ids seen before `before` (past the replay window).
    pub async fn purge_webhook_seen(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.platform_tx(true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM webhook_seen WHERE seen_at < $1")
                .bind(DbTime::new(before)).execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n)
    }
}

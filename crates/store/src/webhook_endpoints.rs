//! Outbound webhooks: endpoints, their deliveries and every attempt. Deliveries are
//! claimed by a lease (moving `next_attempt_at` forward; `SKIP LOCKED` on PostgreSQL) so
//! several replicas' workers never send the same attempt twice at once.

use cairn_core::ids::{TenantId, WebhookDeliveryId, WebhookEndpointId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Clone, Serialize)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(skip)]
    pub secret: Vec<u8>,
    pub status: String,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("status", &self.status)
            .field("secret", &"<sealed>")
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    url: String,
    event_types: String,
    secret: Vec<u8>,
    status: String,
    failing_since: Option<DbTime>,
    disabled_at: Option<DbTime>,
    created_at: DbTime,
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = StoreError;
    fn try_from(r: EndpointRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r
                .id
                .parse()
                .map_err(|_| StoreError::Corrupt("webhook_endpoints: bad id".into()))?,
            url: r.url,
            event_types: serde_json::from_str(&r.event_types)
                .map_err(|e| StoreError::Corrupt(format!("webhook_endpoints: {e}")))?,
            secret: r.secret,
            status: r.status,
            failing_since: r.failing_since.map(|t| t.0),
            disabled_at: r.disabled_at.map(|t| t.0),
            created_at: r.created_at.0,
        })
    }
}

const ENDPOINT_COLUMNS: &str = "id, url, event_types, secret, status, failing_since, disabled_at, created_at";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    #[serde(skip)]
    next_attempt_at: Option<DbTime>,
    #[serde(skip)]
    created_at: DbTime,
}

impl DeliveryRow {
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at.0
    }
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.next_attempt_at.map(|t| t.0)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    #[serde(skip)]
    attempted_at: DbTime,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub response: Option<String>,
    pub error: Option<String>,
}

impl AttemptRow {
    pub fn attempted_at(&self) -> DateTime<Utc> {
        self.attempted_at.0
    }
}

/// The result of one attempt, and what follows from it.
pub struct AttemptOutcome<'a> {
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub response: Option<&'a str>,
    pub error: Option<&'a str>,
    pub succeeded: bool,
    /// When to try again; `None` with `succeeded = false`: the schedule is exhausted.
    pub retry_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn create_webhook_endpoint(
        &self,
        tenant: TenantId,
        id: WebhookEndpointId,
        url: &str,
        event_types: &[String],
        sealed_secret: &[u8],
    ) -> Result<WebhookEndpoint, StoreError> {
        let sql = format!(
            "INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, secret, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'enabled', $6) RETURNING {ENDPOINT_COLUMNS}"
        );
        let types = serde_json::to_string(event_types).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: EndpointRow = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid())).bind(id.to_string()).bind(url).bind(&types)
                .bind(sealed_secret).bind(DbTime::now())
                .fetch_one(conn).await
        })?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn webhook_endpoints(&self, tenant: TenantId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<EndpointRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_all(conn).await
        })?;
        tx.commit().await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn webhook_endpoint(
        &self,
        tenant: TenantId,
        id: WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<EndpointRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(id.to_string()).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    pub async fn delete_webhook_endpoint(&self, tenant: TenantId, id: WebhookEndpointId) -> Result<bool, StoreError> {
        let t = DbUuid(tenant.as_uuid());
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'pending'")
                .bind(t).bind(id.to_string()).execute(&mut *conn).await?;
            sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
                .bind(t).bind(id.to_string()).execute(&mut *conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Re-enables a disabled endpoint with a clean failure record. `false`: no such endpoint.
    /// Deliveries that failed while it was disabled stay failed (replay them if wanted).
    pub async fn enable_webhook_endpoint(&self, tenant: TenantId, id: WebhookEndpointId) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE webhook_endpoints SET status = 'enabled', disabled_at = NULL, failing_since = NULL \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(DbUuid(tenant.as_uuid())).bind(id.to_string()).execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// One pending delivery per enabled endpoint subscribed to `event_type` (or `*`), due now.
    pub async fn enqueue_webhook_deliveries(
        &self,
        tenant: TenantId,
        event_type: &str,
        payload: &str,
    ) -> Result<Vec<WebhookDeliveryId>, StoreError> {
        let endpoints = self.webhook_endpoints(tenant).await?;
        let targets: Vec<&WebhookEndpoint> = endpoints
            .iter()
            .filter(|e| e.status == "enabled" && e.event_types.iter().any(|t| t == event_type || t == "*"))
            .collect();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let now = DbTime::now();
        let mut ids = Vec::with_capacity(targets.len());
        let mut tx = self.tenant_tx(tenant, true).await?;
        for e in targets {
            let id = WebhookDeliveryId::new();
            with_conn!(&mut tx.tx, conn => {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_type, payload, status, attempts, \
                     next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
                )
                .bind(DbUuid(tenant.as_uuid())).bind(id.to_string()).bind(e.id.to_string())
                .bind(event_type).bind(payload).bind(now)
                .execute(conn).await.map(|r| r.rows_affected())
            })?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Claims up to `limit` due deliveries across tenants by moving them `lease` ahead.
    pub async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(TenantId, WebhookDeliveryId)>, StoreError> {
        let mut tx = self.platform_tx(true).await?;
        // SQLite's write transaction is exclusive already; PostgreSQL replicas skip rows
        // another worker is claiming.
        let lock = match &tx.tx {
            crate::scope::Tx::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            crate::scope::Tx::Sqlite(_) => "",
        };
        let rows: Vec<(DbUuid, String)> = with_conn!(&mut tx.tx, conn => {
            let sql = format!(
                "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE (tenant_id, id) IN \
                 (SELECT tenant_id, id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
                  ORDER BY next_attempt_at LIMIT $3{lock}) RETURNING tenant_id, id"
            );
            sqlx::query_as(&sql).bind(DbTime::new(now)).bind(DbTime::new(lease_until)).bind(limit).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, id)| Some((TenantId::from_uuid(t.0), id.parse().ok()?)))
            .collect())
    }

    pub async fn webhook_delivery(
        &self,
        tenant: TenantId,
        id: WebhookDeliveryId,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<DeliveryRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(
                "SELECT id, endpoint_id, event_type, payload, status, attempts, next_attempt_at, created_at \
                 FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2",
            )
            .bind(DbUuid(tenant.as_uuid())).bind(id.to_string()).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row)
    }

    /// Records an attempt and its consequences on the delivery and the endpoint. Returns
    /// true when this attempt's failure disabled the endpoint (`disable_after` elapsed
    /// since its first failure without a success).
    pub async fn record_webhook_attempt(
        &self,
        tenant: TenantId,
        delivery: WebhookDeliveryId,
        endpoint: WebhookEndpointId,
        outcome: &AttemptOutcome<'_>,
        now: DateTime<Utc>,
        disable_after: chrono::Duration,
    ) -> Result<bool, StoreError> {
        let (t, at) = (DbUuid(tenant.as_uuid()), DbTime::new(now));
        let status = match (outcome.succeeded, outcome.retry_at) {
            (true, _) => "succeeded",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        let mut tx = self.tenant_tx(tenant, true).await?;
        let disabled = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, attempted_at, status_code, latency_ms, \
                 response, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(t).bind(delivery.to_string()).bind(outcome.attempt).bind(at).bind(outcome.status_code)
            .bind(outcome.latency_ms).bind(outcome.response).bind(outcome.error)
            .execute(&mut *conn).await?;
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, updated_at = $6 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(t).bind(delivery.to_string()).bind(status).bind(outcome.attempt)
            .bind(outcome.retry_at.map(DbTime::new)).bind(at)
            .execute(&mut *conn).await?;
            if outcome.succeeded {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE tenant_id = $1 AND id = $2")
                    .bind(t).bind(endpoint.to_string()).execute(&mut *conn).await?;
                false
            } else {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $3) \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(t).bind(endpoint.to_string()).bind(at).execute(&mut *conn).await?;
                let limit = DbTime::new(now - disable_after);
                let n = sqlx::query(
                    "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = $3 \
                     WHERE tenant_id = $1 AND id = $2 AND status = 'enabled' AND failing_since <= $4",
                )
                .bind(t).bind(endpoint.to_string()).bind(at).bind(limit)
                .execute(&mut *conn).await?.rows_affected();
                if n > 0 {
                    // Nothing more goes to a disabled endpoint until it is re-enabled.
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL \
                         WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'pending'",
                    )
                    .bind(t).bind(endpoint.to_string()).execute(&mut *conn).await?;
                }
                n > 0
            }
        });
        tx.commit().await?;
        Ok(disabled)
    }

    /// A delivery's attempts, oldest first.
    pub async fn webhook_attempts(
        &self,
        tenant: TenantId,
        delivery: WebhookDeliveryId,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<AttemptRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(
                "SELECT attempt, attempted_at, status_code, latency_ms, response, error FROM webhook_attempts \
                 WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY attempt",
            )
            .bind(DbUuid(tenant.as_uuid())).bind(delivery.to_string()).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Deliveries of an endpoint, newest first.
    pub async fn webhook_deliveries(
        &self,
        tenant: TenantId,
        endpoint: WebhookEndpointId,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<DeliveryRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(
                "SELECT id, endpoint_id, event_type, payload, status, attempts, next_attempt_at, created_at \
                 FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 ORDER BY created_at DESC, id DESC \
                 LIMIT $3",
            )
            .bind(DbUuid(tenant.as_uuid())).bind(endpoint.to_string()).bind(limit).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Sends a delivery again from now (its attempt log continues). False if unknown.
    pub async fn replay_webhook_delivery(
        &self,
        tenant: TenantId,
        delivery: WebhookDeliveryId,
    ) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(DbUuid(tenant.as_uuid())).bind(delivery.to_string()).bind(DbTime::now())
            .execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

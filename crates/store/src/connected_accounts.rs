//! Users' accounts at upstream providers, connected through Cairn. Tokens arrive here
//! already encrypted (envelopes); this module never sees them in clear.

use cairn_core::ids::{TenantId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Clone, Serialize)]
pub struct ConnectedAccount {
    /// Names the row in the tokens' associated data.
    pub id: String,
    pub user_id: UserId,
    pub provider: String,
    pub scopes: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub lifetime_secs: Option<i64>,
    /// `active`, or `needs_reconsent` after a failed refresh.
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub sealed_access: Vec<u8>,
    #[serde(skip)]
    pub sealed_refresh: Option<Vec<u8>>,
}

impl std::fmt::Debug for ConnectedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedAccount")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    user_id: DbUuid,
    provider: String,
    access_token: Vec<u8>,
    refresh_token: Option<Vec<u8>>,
    scopes: String,
    expires_at: Option<DbTime>,
    lifetime_secs: Option<i64>,
    status: String,
    last_error: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<Row> for ConnectedAccount {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            user_id: UserId::from_uuid(r.user_id.0),
            provider: r.provider,
            scopes: r.scopes,
            expires_at: r.expires_at.map(|t| t.0),
            lifetime_secs: r.lifetime_secs,
            status: r.status,
            last_error: r.last_error,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            sealed_access: r.access_token,
            sealed_refresh: r.refresh_token,
        }
    }
}

const COLUMNS: &str = "id, user_id, provider, access_token, refresh_token, scopes, expires_at, lifetime_secs, \
                       status, last_error, created_at, updated_at";

/// Fresh tokens to store (already encrypted for row `id`).
pub struct NewTokens<'a> {
    pub id: &'a str,
    pub access: &'a [u8],
    pub refresh: Option<&'a [u8]>,
    pub scopes: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub lifetime_secs: Option<i64>,
}

impl Store {
    /// The row id a user's connection to `provider` has, or will have.
    pub fn connection_id(user: UserId, provider: &str) -> String {
        format!("{}:{provider}", user.as_uuid().simple())
    }

    /// Creates or replaces a user's connection (after a completed authorization).
    pub async fn put_connection(
        &self,
        tenant: TenantId,
        user: UserId,
        provider: &str,
        t: &NewTokens<'_>,
    ) -> Result<ConnectedAccount, StoreError> {
        let sql = format!(
            "INSERT INTO connected_accounts (tenant_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', NULL, $10, $10) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET access_token = excluded.access_token, \
             refresh_token = excluded.refresh_token, scopes = excluded.scopes, expires_at = excluded.expires_at, \
             lifetime_secs = excluded.lifetime_secs, status = 'active', last_error = NULL, updated_at = excluded.updated_at \
             RETURNING {COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Row = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(t.id)
                .bind(DbUuid(user.as_uuid()))
                .bind(provider)
                .bind(t.access)
                .bind(t.refresh)
                .bind(t.scopes)
                .bind(t.expires_at.map(DbTime))
                .bind(t.lifetime_secs)
                .bind(DbTime::now())
                .fetch_one(conn)
                .await
        })?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub async fn get_connection(&self, tenant: TenantId, id: &str) -> Result<Option<ConnectedAccount>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM connected_accounts WHERE tenant_id = $1 AND id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(id).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    pub async fn list_connections(&self, tenant: TenantId, user: UserId) -> Result<Vec<ConnectedAccount>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM connected_accounts WHERE tenant_id = $1 AND user_id = $2 ORDER BY provider");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(user.as_uuid())).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Stores refreshed tokens, only if the row still holds the refresh token that was
    /// used (another refresher did not get there first). Returns whether it did.
    pub async fn refreshed_connection(
        &self,
        tenant: TenantId,
        used_refresh: &[u8],
        t: &NewTokens<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE connected_accounts SET access_token = $3, refresh_token = $4, scopes = $5, expires_at = $6, \
                 lifetime_secs = $7, status = 'active', last_error = NULL, updated_at = $8 \
                 WHERE tenant_id = $1 AND id = $2 AND refresh_token = $9",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(t.id)
            .bind(t.access)
            .bind(t.refresh)
            .bind(t.scopes)
            .bind(t.expires_at.map(DbTime))
            .bind(t.lifetime_secs)
            .bind(DbTime::now())
            .bind(used_refresh)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Marks a connection as needing the user to consent again (refresh failed).
    pub async fn connection_needs_reconsent(&self, tenant: TenantId, id: &str, error: &str) -> Result<(), StoreError> {
        self.connection_update(tenant, id, "UPDATE connected_accounts SET status = 'needs_reconsent', last_error = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2", Some(error)).await
    }

    /// Makes the stored access token count as expired (the next use refreshes it).
    pub async fn expire_connection(&self, tenant: TenantId, id: &str) -> Result<(), StoreError> {
        self.connection_update(tenant, id, "UPDATE connected_accounts SET expires_at = $4, updated_at = $4 WHERE tenant_id = $1 AND id = $2 AND $3 IS NULL", None).await
    }

    async fn connection_update(
        &self,
        tenant: TenantId,
        id: &str,
        sql: &str,
        text: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(id)
                .bind(text)
                .bind(DbTime::now())
                .execute(conn)
                .await
                .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_connection(&self, tenant: TenantId, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM connected_accounts WHERE tenant_id = $1 AND id = $2")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(id)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

//! A tenant's registrations at upstream OAuth providers. The client secret is stored as
//! an encrypted envelope; this module never sees it in clear.

use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Clone, Serialize)]
pub struct OAuthCredential {
    pub provider: String,
    pub client_id: String,
    pub secret_fingerprint: String,
    pub auth_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
    /// Sent as `resource` (RFC 8707) to providers that require it.
    pub resource: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The encrypted client secret (an envelope); never serialised.
    #[serde(skip)]
    pub sealed_secret: Vec<u8>,
}

impl std::fmt::Debug for OAuthCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthCredential")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("secret_fingerprint", &self.secret_fingerprint)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    provider: String,
    client_id: String,
    client_secret: Vec<u8>,
    secret_fingerprint: String,
    auth_url: String,
    token_url: String,
    scopes: Json<Vec<String>>,
    resource: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<Row> for OAuthCredential {
    fn from(r: Row) -> Self {
        Self {
            provider: r.provider,
            client_id: r.client_id,
            secret_fingerprint: r.secret_fingerprint,
            auth_url: r.auth_url,
            token_url: r.token_url,
            scopes: r.scopes.0,
            resource: r.resource,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            sealed_secret: r.client_secret,
        }
    }
}

const COLUMNS: &str =
    "provider, client_id, client_secret, secret_fingerprint, auth_url, token_url, scopes, resource, created_at, updated_at";

/// What to store; `sealed_secret` is already encrypted for its row.
pub struct PutCredential<'a> {
    pub provider: &'a str,
    pub client_id: &'a str,
    pub sealed_secret: &'a [u8],
    pub secret_fingerprint: &'a str,
    pub auth_url: &'a str,
    pub token_url: &'a str,
    pub scopes: &'a [String],
    pub resource: Option<&'a str>,
}

impl Store {
    /// Creates or replaces the tenant's credentials for a provider.
    pub async fn put_oauth_credential(
        &self,
        tenant: TenantId,
        c: &PutCredential<'_>,
    ) -> Result<OAuthCredential, StoreError> {
        let sql = format!(
            "INSERT INTO tenant_oauth_credentials (tenant_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9, $9) \
             ON CONFLICT (tenant_id, provider) DO UPDATE SET client_id = excluded.client_id, \
             client_secret = excluded.client_secret, secret_fingerprint = excluded.secret_fingerprint, \
             auth_url = excluded.auth_url, token_url = excluded.token_url, scopes = excluded.scopes, \
             resource = excluded.resource, \
             updated_at = excluded.updated_at RETURNING {COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Row = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(c.provider)
                .bind(c.client_id)
                .bind(c.sealed_secret)
                .bind(c.secret_fingerprint)
                .bind(c.auth_url)
                .bind(c.token_url)
                .bind(Json(c.scopes))
                .bind(DbTime::now())
                .bind(c.resource)
                .fetch_one(conn)
                .await
        })?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub async fn get_oauth_credential(
        &self,
        tenant: TenantId,
        provider: &str,
    ) -> Result<Option<OAuthCredential>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenant_oauth_credentials WHERE tenant_id = $1 AND provider = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(provider).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    pub async fn list_oauth_credentials(&self, tenant: TenantId) -> Result<Vec<OAuthCredential>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenant_oauth_credentials WHERE tenant_id = $1 ORDER BY provider");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// `false` if there was none.
    pub async fn delete_oauth_credential(&self, tenant: TenantId, provider: &str) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM tenant_oauth_credentials WHERE tenant_id = $1 AND provider = $2")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(provider)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

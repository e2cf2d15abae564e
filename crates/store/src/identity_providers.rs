//! The external identity provider a tenant trusts (one per tenant).

use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityProvider {
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
    /// The claim naming the user: `email` (matched to the user's e-mail) or `sub`.
    pub user_claim: String,
    /// Accepted JWS algorithms, e.g. `["RS256", "ES256"]`.
    pub algorithms: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    issuer: String,
    jwks_url: String,
    audience: String,
    user_claim: String,
    algorithms: Json<Vec<String>>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<Row> for IdentityProvider {
    fn from(r: Row) -> Self {
        Self {
            issuer: r.issuer,
            jwks_url: r.jwks_url,
            audience: r.audience,
            user_claim: r.user_claim,
            algorithms: r.algorithms.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        }
    }
}

const COLUMNS: &str = "issuer, jwks_url, audience, user_claim, algorithms, created_at, updated_at";

impl Store {
    /// Creates or replaces the tenant's identity provider.
    pub async fn put_identity_provider(
        &self,
        tenant: TenantId,
        issuer: &str,
        jwks_url: &str,
        audience: &str,
        user_claim: &str,
        algorithms: &[String],
    ) -> Result<IdentityProvider, StoreError> {
        let sql = format!(
            "INSERT INTO tenant_identity_providers (tenant_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (tenant_id) DO UPDATE SET issuer = excluded.issuer, jwks_url = excluded.jwks_url, \
             audience = excluded.audience, user_claim = excluded.user_claim, algorithms = excluded.algorithms, \
             updated_at = excluded.updated_at RETURNING {COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Row = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(issuer)
                .bind(jwks_url)
                .bind(audience)
                .bind(user_claim)
                .bind(Json(algorithms))
                .bind(DbTime::now())
                .fetch_one(conn)
                .await
        })?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub async fn get_identity_provider(&self, tenant: TenantId) -> Result<Option<IdentityProvider>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenant_identity_providers WHERE tenant_id = $1");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    /// Removes it; `false` if there was none.
    pub async fn delete_identity_provider(&self, tenant: TenantId) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM tenant_identity_providers WHERE tenant_id = $1")
                .bind(DbUuid(tenant.as_uuid()))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

//! Access-token signing keys of each tenant's authorization server. One key is active;
//! retired keys stay published (JWKS) until the tokens they signed have expired.

use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};
use secrecy::SecretBox;
use serde_json::Value;
use sqlx::types::Json;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

/// A key to store. `private_key` is the encrypted envelope of the PKCS#8 DER.
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub alg: &'a str,
    pub private_key: &'a [u8],
    pub public_jwk: &'a Value,
}

pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    /// The encrypted private key (an envelope; see the server's keyring).
    pub private_key: SecretBox<Vec<u8>>,
    pub public_jwk: Value,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    kid: String,
    alg: String,
    private_key: Vec<u8>,
    public_jwk: Json<Value>,
    state: String,
    created_at: DbTime,
    retired_at: Option<DbTime>,
}

impl From<Row> for SigningKey {
    fn from(r: Row) -> Self {
        Self {
            kid: r.kid,
            alg: r.alg,
            private_key: SecretBox::new(Box::new(r.private_key)),
            public_jwk: r.public_jwk.0,
            active: r.state == "active",
            created_at: r.created_at.0,
            retired_at: r.retired_at.map(|t| t.0),
        }
    }
}

const COLUMNS: &str = "kid, alg, private_key, public_jwk, state, created_at, retired_at";

impl Store {
    /// The active key and the retired keys retired after `retired_since`, active first.
    pub async fn signing_keys(
        &self,
        tenant: TenantId,
        retired_since: DateTime<Utc>,
    ) -> Result<Vec<SigningKey>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM oauth_signing_keys WHERE tenant_id = $1 AND (state = 'active' OR retired_at > $2) \
             ORDER BY state, created_at DESC"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbTime(retired_since)).fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Adds `key` as the active key unless the tenant already has one (a concurrent
    /// first use on another replica). Returns whether it was added.
    pub async fn add_first_signing_key(&self, tenant: TenantId, key: &NewSigningKey<'_>) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = insert(&mut tx, tenant, key).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Retires the active key and makes `key` active, atomically.
    pub async fn rotate_signing_key(&self, tenant: TenantId, key: &NewSigningKey<'_>) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE oauth_signing_keys SET state = 'retired', retired_at = $2 WHERE tenant_id = $1 AND state = 'active'",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbTime::now())
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        if insert(&mut tx, tenant, key).await? == 0 {
            return Err(StoreError::Conflict(
                "a signing key rotation is already in progress".into(),
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes retired keys retired before `before`, across tenants.
    pub async fn purge_retired_signing_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.platform_tx(true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM oauth_signing_keys WHERE state = 'retired' AND retired_at < $1")
                .bind(DbTime(before))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n)
    }
}

async fn insert(tx: &mut crate::TenantTx, tenant: TenantId, key: &NewSigningKey<'_>) -> Result<u64, StoreError> {
    let n = with_conn!(&mut tx.tx, conn => {
        sqlx::query(
            "INSERT INTO oauth_signing_keys (tenant_id, kid, alg, private_key, public_jwk, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6) ON CONFLICT DO NOTHING",
        )
        .bind(DbUuid(tenant.as_uuid()))
        .bind(key.kid)
        .bind(key.alg)
        .bind(key.private_key)
        .bind(Json(key.public_jwk))
        .bind(DbTime::now())
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(n)
}

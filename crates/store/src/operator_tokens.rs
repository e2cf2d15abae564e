//! Operator tokens: bearer credentials for the platform's admin API. Only digests are
//! stored.

use cairn_core::ids::OperatorTokenId;
use cairn_core::secret::TokenDigest;
use chrono::{DateTime, Utc};

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct OperatorToken {
    pub id: OperatorTokenId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    pub async fn create_operator_token(&self, name: &str, digest: &TokenDigest) -> Result<OperatorToken, StoreError> {
        let mut tx = self.platform_tx(true).await?;
        let token = insert(&mut tx, name, digest).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Creates a token only if no unrevoked token exists — the first-start bootstrap.
    /// Replicas starting together on PostgreSQL serialise on an advisory lock, so
    /// exactly one of them mints the token.
    pub async fn create_first_operator_token(
        &self,
        name: &str,
        digest: &TokenDigest,
    ) -> Result<Option<OperatorToken>, StoreError> {
        let mut tx = self.platform_tx(true).await?;
        if let crate::scope::Tx::Postgres(t) = &mut tx.tx {
            sqlx::query("SELECT pg_advisory_xact_lock(7243001)")
                .execute(&mut **t)
                .await?;
        }
        let existing: i64 = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM operator_tokens WHERE revoked_at IS NULL").fetch_one(conn).await
        })?;
        if existing > 0 {
            return Ok(None);
        }
        let token = insert(&mut tx, name, digest).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    /// Finds the unrevoked token with this digest.
    pub async fn find_operator_token(&self, digest: &TokenDigest) -> Result<Option<OperatorTokenId>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let row: Option<(DbUuid, String)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as("SELECT id, token_digest FROM operator_tokens WHERE token_digest = $1 AND revoked_at IS NULL")
                .bind(digest.as_str())
                .fetch_optional(conn)
                .await
        })?;
        tx.commit().await?;
        // The index lookup is by digest; comparing again in constant time keeps the
        // final decision free of timing differences.
        Ok(row
            .filter(|(_, stored)| TokenDigest::from_stored(stored.clone()).ct_eq(digest))
            .map(|(id, _)| OperatorTokenId::from_uuid(id.0)))
    }

    pub async fn revoke_operator_token(&self, id: OperatorTokenId) -> Result<bool, StoreError> {
        let mut tx = self.platform_tx(true).await?;
        let done = with_conn!(&mut tx.tx, conn => {
            sqlx::query("UPDATE operator_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(DbUuid(id.as_uuid()))
                .bind(DbTime::now())
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(done == 1)
    }
}

async fn insert(tx: &mut crate::PlatformTx, name: &str, digest: &TokenDigest) -> Result<OperatorToken, StoreError> {
    let id = OperatorTokenId::new();
    let now = DbTime::now();
    with_conn!(&mut tx.tx, conn => {
        sqlx::query("INSERT INTO operator_tokens (id, name, token_digest, created_at) VALUES ($1, $2, $3, $4)")
            .bind(DbUuid(id.as_uuid()))
            .bind(name)
            .bind(digest.as_str())
            .bind(now)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(OperatorToken {
        id,
        name: name.to_owned(),
        created_at: now.0,
    })
}

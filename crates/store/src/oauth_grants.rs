//! Authorization codes, grants and refresh tokens of a tenant's authorization server.
//!
//! A *grant* is one authorization and everything issued from it. Redeeming a code
//! deletes it and creates its grant in the same transaction, so a replayed code always
//! finds the grant it produced and can revoke it. Refresh tokens rotate on every use; a
//! used one presented again revokes its grant (RFC 9700 §4.14.2).

use cairn_core::api_key::Scope;
use cairn_core::ids::{TenantId, UserId};
use cairn_core::secret::TokenDigest;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

/// An authorization code as issued by the authorize endpoint.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub hash: &'a TokenDigest,
    pub client_id: &'a str,
    pub user: UserId,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub resource: &'a str,
    pub scopes: &'a [Scope],
    pub expires_at: DateTime<Utc>,
}

/// A redeemed code: what it was bound to.
#[derive(Debug, Clone)]
pub struct StoredCode {
    pub client_id: String,
    pub user: UserId,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    client_id: String,
    user_id: DbUuid,
    redirect_uri: String,
    code_challenge: String,
    resource: String,
    scopes: Json<Vec<Scope>>,
    expires_at: DbTime,
}

/// The outcome of presenting a code.
#[derive(Debug)]
pub enum Redemption {
    /// First use: the code is gone and `grant` exists (validate, then issue or revoke).
    Fresh {
        code: StoredCode,
        grant: Uuid,
    },
    /// The code was already used; the grant it produced has now been revoked.
    Replayed {
        grant: Uuid,
    },
    Unknown,
}

/// A grant's state as the resource server and introspection see it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: Uuid,
    pub client_id: String,
    pub user: Option<UserId>,
    pub scopes: Vec<Scope>,
    pub resource: String,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: DbUuid,
    client_id: String,
    user_id: Option<DbUuid>,
    scopes: Json<Vec<Scope>>,
    resource: String,
    expires_at: DbTime,
    revoked_at: Option<DbTime>,
}

impl From<GrantRow> for Grant {
    fn from(r: GrantRow) -> Self {
        Self {
            id: r.id.0,
            client_id: r.client_id,
            user: r.user_id.map(|u| UserId::from_uuid(u.0)),
            scopes: r.scopes.0,
            resource: r.resource,
            expires_at: r.expires_at.0,
            revoked: r.revoked_at.is_some(),
        }
    }
}

const GRANT_COLUMNS: &str = "id, client_id, user_id, scopes, resource, expires_at, revoked_at";

/// A grant without a code (client credentials).
pub struct NewGrant<'a> {
    pub client_id: &'a str,
    pub user: Option<UserId>,
    pub scopes: &'a [Scope],
    pub resource: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The old token is spent; the new one is stored. The grant as it stands.
    Rotated(Grant),
    /// The token was already used: its grant is now revoked.
    Reused { grant: Uuid },
    /// Unknown, expired, revoked, or another client's token: nothing changed.
    Refused,
}

impl Store {
    pub async fn create_oauth_code(&self, tenant: TenantId, code: &NewCode<'_>) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO oauth_codes (tenant_id, code_hash, client_id, user_id, redirect_uri, code_challenge, \
                 resource, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(code.hash.as_str())
            .bind(code.client_id)
            .bind(DbUuid(code.user.as_uuid()))
            .bind(code.redirect_uri)
            .bind(code.code_challenge)
            .bind(code.resource)
            .bind(Json(code.scopes))
            .bind(DbTime::now())
            .bind(DbTime(code.expires_at))
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Consumes a code. See [`Redemption`]. `grant_expires_at` is the lifetime of the
    /// grant (its refresh tokens) if the code is fresh.
    pub async fn redeem_oauth_code(
        &self,
        tenant: TenantId,
        hash: &TokenDigest,
        grant_expires_at: DateTime<Utc>,
    ) -> Result<Redemption, StoreError> {
        let t = DbUuid(tenant.as_uuid());
        let mut tx = self.tenant_tx(tenant, true).await?;
        let code: Option<CodeRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(
                "DELETE FROM oauth_codes WHERE tenant_id = $1 AND code_hash = $2 \
                 RETURNING client_id, user_id, redirect_uri, code_challenge, resource, scopes, expires_at",
            )
            .bind(t)
            .bind(hash.as_str())
            .fetch_optional(&mut *conn)
            .await
        })?;
        let outcome = match code {
            Some(c) => {
                let grant = Uuid::now_v7();
                with_conn!(&mut tx.tx, conn => {
                    sqlx::query(
                        "INSERT INTO oauth_grants (tenant_id, id, client_id, user_id, scopes, resource, code_hash, \
                         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(t)
                    .bind(DbUuid(grant))
                    .bind(&c.client_id)
                    .bind(c.user_id)
                    .bind(&c.scopes)
                    .bind(&c.resource)
                    .bind(hash.as_str())
                    .bind(DbTime::now())
                    .bind(DbTime(grant_expires_at))
                    .execute(&mut *conn)
                    .await
                    .map(|_| ())
                })?;
                let code = StoredCode {
                    client_id: c.client_id,
                    user: UserId::from_uuid(c.user_id.0),
                    redirect_uri: c.redirect_uri,
                    code_challenge: c.code_challenge,
                    resource: c.resource,
                    scopes: c.scopes.0,
                    expires_at: c.expires_at.0,
                };
                Redemption::Fresh { code, grant }
            }
            None => {
                let grant: Option<DbUuid> = with_conn!(&mut tx.tx, conn => {
                    sqlx::query_scalar(
                        "UPDATE oauth_grants SET revoked_at = COALESCE(revoked_at, $3), \
                         revoked_reason = COALESCE(revoked_reason, 'code_reuse') \
                         WHERE tenant_id = $1 AND code_hash = $2 RETURNING id",
                    )
                    .bind(t)
                    .bind(hash.as_str())
                    .bind(DbTime::now())
                    .fetch_optional(&mut *conn)
                    .await
                })?;
                grant.map_or(Redemption::Unknown, |g| Redemption::Replayed { grant: g.0 })
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn create_oauth_grant(&self, tenant: TenantId, new: &NewGrant<'_>) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO oauth_grants (tenant_id, id, client_id, user_id, scopes, resource, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(id))
            .bind(new.client_id)
            .bind(new.user.map(|u| DbUuid(u.as_uuid())))
            .bind(Json(new.scopes))
            .bind(new.resource)
            .bind(DbTime::now())
            .bind(DbTime(new.expires_at))
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn get_oauth_grant(&self, tenant: TenantId, id: Uuid) -> Result<Option<Grant>, StoreError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE tenant_id = $1 AND id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<GrantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(id)).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    /// Revokes a grant (idempotent); `false` if it did not exist.
    pub async fn revoke_oauth_grant(&self, tenant: TenantId, id: Uuid, reason: &str) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE oauth_grants SET revoked_at = COALESCE(revoked_at, $3), \
                 revoked_reason = COALESCE(revoked_reason, $4) WHERE tenant_id = $1 AND id = $2",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(id))
            .bind(DbTime::now())
            .bind(reason)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Revokes every grant of `user` in the tenant (the member was removed).
    pub async fn revoke_user_grants(&self, tenant: TenantId, user: UserId) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let ids: Vec<DbUuid> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(
                "UPDATE oauth_grants SET revoked_at = $3, revoked_reason = 'member_removed' \
                 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(user.as_uuid()))
            .bind(DbTime::now())
            .fetch_all(conn)
            .await
        })?;
        tx.commit().await?;
        Ok(ids.into_iter().map(|i| i.0).collect())
    }

    /// Stores a refresh token of `grant`.
    pub async fn add_refresh_token(
        &self,
        tenant: TenantId,
        grant: Uuid,
        hash: &TokenDigest,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO oauth_refresh_tokens (tenant_id, token_hash, grant_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(hash.as_str())
            .bind(DbUuid(grant))
            .bind(DbTime::now())
            .bind(DbTime(expires_at))
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// The grant a refresh token belongs to, if the token is known (used or not).
    pub async fn grant_of_refresh_token(
        &self,
        tenant: TenantId,
        hash: &TokenDigest,
    ) -> Result<Option<Grant>, StoreError> {
        let sql = "SELECT g.id, g.client_id, g.user_id, g.scopes, g.resource, g.expires_at, g.revoked_at \
             FROM oauth_refresh_tokens r JOIN oauth_grants g ON g.tenant_id = r.tenant_id AND g.id = r.grant_id \
             WHERE r.tenant_id = $1 AND r.token_hash = $2";
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<GrantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(sql).bind(DbUuid(tenant.as_uuid())).bind(hash.as_str()).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    /// Spends refresh token `old` of `client_id` and stores `new` in its place.
    pub async fn rotate_refresh_token(
        &self,
        tenant: TenantId,
        client_id: &str,
        old: &TokenDigest,
        new: &TokenDigest,
        new_expires_at: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let t = DbUuid(tenant.as_uuid());
        let now = DbTime::now();
        let mut tx = self.tenant_tx(tenant, true).await?;
        let found: Option<(DbUuid, Option<DbTime>, DbTime)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(
                "SELECT grant_id, used_at, expires_at FROM oauth_refresh_tokens WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(t)
            .bind(old.as_str())
            .fetch_optional(&mut *conn)
            .await
        })?;
        let Some((grant_id, used_at, expires_at)) = found else {
            return Ok(Rotation::Refused);
        };
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth_grants WHERE tenant_id = $1 AND id = $2");
        let grant: Option<GrantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(t).bind(grant_id).fetch_optional(&mut *conn).await
        })?;
        let Some(grant) = grant.map(Grant::from) else {
            return Ok(Rotation::Refused);
        };
        // Another client's token proves nothing about this one: refuse without side effects.
        if grant.client_id != client_id || grant.revoked || expires_at.0 <= now.0 {
            return Ok(Rotation::Refused);
        }
        // Spend it only if nobody else did in the meantime (concurrent replicas).
        let spent = match used_at {
            Some(_) => 0,
            None => with_conn!(&mut tx.tx, conn => {
                sqlx::query(
                    "UPDATE oauth_refresh_tokens SET used_at = $3 WHERE tenant_id = $1 AND token_hash = $2 AND used_at IS NULL",
                )
                .bind(t)
                .bind(old.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?,
        };
        if spent == 0 {
            with_conn!(&mut tx.tx, conn => {
                sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = COALESCE(revoked_at, $3), \
                     revoked_reason = COALESCE(revoked_reason, 'refresh_reuse') WHERE tenant_id = $1 AND id = $2",
                )
                .bind(t)
                .bind(grant_id)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map(|_| ())
            })?;
            tx.commit().await?;
            return Ok(Rotation::Reused { grant: grant.id });
        }
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO oauth_refresh_tokens (tenant_id, token_hash, grant_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(t)
            .bind(new.as_str())
            .bind(grant_id)
            .bind(now)
            .bind(DbTime(new_expires_at))
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(Rotation::Rotated(grant))
    }

    /// Deletes expired codes and refresh tokens, and grants expired for a day, across
    /// all tenants. Returns the number of rows removed.
    pub async fn purge_expired_oauth(&self) -> Result<u64, StoreError> {
        let now = DbTime::now();
        let day_ago = DbTime(now.0 - chrono::Duration::days(1));
        let mut tx = self.platform_tx(true).await?;
        let mut total = 0;
        for (sql, at) in [
            ("DELETE FROM oauth_codes WHERE expires_at < $1", now),
            ("DELETE FROM oauth_refresh_tokens WHERE expires_at < $1", now),
            ("DELETE FROM oauth_grants WHERE expires_at < $1", day_ago),
        ] {
            total += with_conn!(&mut tx.tx, conn => {
                sqlx::query(sql).bind(at).execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        Ok(total)
    }
}

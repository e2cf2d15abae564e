//! API keys (tenant-scoped). Secrets are never stored; only keyed hashes.

use cairn_core::api_key::{ApiKey, KeyEnv, KeyHashes, Scope};
use cairn_core::ids::{ApiKeyId, TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::types::{DbTime, DbUuid};
use crate::{Page, Paged, Store, StoreError};

const COLUMNS: &str = "tenant_id, id, public_id, name, user_id, environment, scopes, tier, expires_at, \
     created_at, rotated_at, previous_expires_at, last_used_at, revoked_at";

#[derive(sqlx::FromRow)]
struct KeyRow {
    tenant_id: DbUuid,
    id: DbUuid,
    public_id: String,
    name: String,
    user_id: Option<DbUuid>,
    environment: String,
    scopes: Json<Vec<String>>,
    tier: String,
    expires_at: Option<DbTime>,
    created_at: DbTime,
    rotated_at: Option<DbTime>,
    previous_expires_at: Option<DbTime>,
    last_used_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        let corrupt = |e: cairn_core::ValidationError| StoreError::Corrupt(format!("api_keys: {e}"));
        let environment = KeyEnv::parse(&r.environment).map_err(corrupt)?;
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(r.id.0),
            tenant_id: TenantId::from_uuid(r.tenant_id.0),
            display: ApiKey::display_for(environment, &r.public_id),
            public_id: r.public_id,
            name: r.name,
            user_id: r.user_id.map(|u| UserId::from_uuid(u.0)),
            environment,
            scopes: Scope::parse_list(&r.scopes.0).map_err(corrupt)?,
            tier: r.tier,
            expires_at: r.expires_at.map(|t| t.0),
            created_at: r.created_at.0,
            rotated_at: r.rotated_at.map(|t| t.0),
            previous_expires_at: r.previous_expires_at.map(|t| t.0),
            last_used_at: r.last_used_at.map(|t| t.0),
            revoked_at: r.revoked_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    key: KeyRow,
    secret_hash: Vec<u8>,
    previous_secret_hash: Option<Vec<u8>>,
}

/// Fields to create a key with; `secret_hash` is the keyed hash of the minted key.
#[derive(Clone)]
pub struct NewApiKey {
    pub public_id: String,
    pub name: String,
    pub user_id: Option<UserId>,
    pub environment: KeyEnv,
    pub scopes: Vec<Scope>,
    pub tier: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub secret_hash: Vec<u8>,
}

fn scope_names(scopes: &[Scope]) -> Json<Vec<&'static str>> {
    Json(scopes.iter().map(|s| s.as_str()).collect())
}

impl Store {
    pub async fn create_api_key(&self, tenant: TenantId, new: &NewApiKey) -> Result<ApiKey, StoreError> {
        let sql = format!(
            "INSERT INTO api_keys (tenant_id, id, public_id, name, user_id, environment, scopes, tier, \
             secret_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING {COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: KeyRow = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(ApiKeyId::new().as_uuid()))
                .bind(&new.public_id)
                .bind(&new.name)
                .bind(new.user_id.map(|u| DbUuid(u.as_uuid())))
                .bind(new.environment.as_str())
                .bind(scope_names(&new.scopes))
                .bind(&new.tier)
                .bind(&new.secret_hash)
                .bind(new.expires_at.map(DbTime::new))
                .bind(DbTime::now())
                .fetch_one(conn)
                .await
        })
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::MembershipNotFound
            } else if is_unique_violation(&e) {
                StoreError::Conflict("api key public id collision".into())
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        row.try_into()
    }

    /// Keys of a tenant, oldest first; the cursor is the last key id.
    pub async fn list_api_keys(&self, tenant: TenantId, page: &Page) -> Result<Paged<ApiKey>, StoreError> {
        let after = page
            .after
            .as_deref()
            .map(|c| ApiKeyId::parse("cursor", c).map(|k| DbUuid(k.as_uuid())))
            .transpose()
            .map_err(|_| StoreError::InvalidCursor)?;
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<KeyRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(after).bind(page.fetch_limit()).fetch_all(conn).await
        })?;
        tx.commit().await?;
        let keys = rows.into_iter().map(ApiKey::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Paged::from_rows(keys, page, |k| k.id.to_string()))
    }

    pub async fn get_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<KeyRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(id.as_uuid())).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::ApiKeyNotFound)?.try_into()
    }

    /// The key with this public id and its hashes, for authentication.
    pub async fn find_api_key(
        &self,
        tenant: TenantId,
        public_id: &str,
    ) -> Result<Option<(ApiKey, KeyHashes)>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, secret_hash, previous_secret_hash FROM api_keys WHERE tenant_id = $1 AND public_id = $2"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<AuthRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(public_id).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let previous_until = row.key.previous_expires_at.map(|t| t.0);
        let hashes = KeyHashes {
            current: row.secret_hash,
            previous: row.previous_secret_hash.zip(previous_until),
        };
        Ok(Some((row.key.try_into()?, hashes)))
    }

    /// The tenant that owns a key's public id, looked up across tenants (platform scope):
    /// only to tell a key presented at another tenant's endpoint from an unknown one.
    pub async fn api_key_owner(&self, public_id: &str) -> Result<Option<TenantId>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let row: Option<DbUuid> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT tenant_id FROM api_keys WHERE public_id = $1 LIMIT 1")
                .bind(public_id).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(|t| TenantId::from_uuid(t.0)))
    }

    /// Replaces the secret; the old one stays valid until `previous_valid_until`.
    pub async fn rotate_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        new_hash: &[u8],
        previous_valid_until: DateTime<Utc>,
    ) -> Result<ApiKey, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET previous_secret_hash = secret_hash, previous_expires_at = $3, secret_hash = $4, \
             rotated_at = $5 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Option<KeyRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(id.as_uuid()))
                .bind(DbTime::new(previous_valid_until))
                .bind(new_hash)
                .bind(DbTime::now())
                .fetch_optional(conn)
                .await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::ApiKeyNotFound)?.try_into()
    }

    /// Revokes a key (idempotent: revoking a revoked key keeps the first time).
    pub async fn revoke_api_key(&self, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3), previous_secret_hash = NULL \
             WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Option<KeyRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(id.as_uuid())).bind(DbTime::now()).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::ApiKeyNotFound)?.try_into()
    }

    /// Records last-use times collected in memory, in one transaction. Never moves a
    /// time backwards.
    pub async fn touch_api_keys(&self, uses: &[(TenantId, ApiKeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.platform_tx(true).await?;
        for (tenant, id, at) in uses {
            with_conn!(&mut tx.tx, conn => {
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2 \
                     AND (last_used_at IS NULL OR last_used_at < $3)",
                )
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(id.as_uuid()))
                .bind(DbTime::new(*at))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await
    }
}

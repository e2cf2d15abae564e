//! Master-key check values (platform) and each tenant's wrapped data keys.

use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeyState {
    Active,
    DecryptOnly,
    Retired,
}

impl DataKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::DecryptOnly => "decrypt_only",
            Self::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(Self::Active),
            "decrypt_only" => Ok(Self::DecryptOnly),
            "retired" => Ok(Self::Retired),
            other => Err(StoreError::Corrupt(format!("tenant_data_keys: state {other}"))),
        }
    }
}

/// A tenant data key as stored: wrapped, never in clear.
#[derive(Clone)]
pub struct DataKey {
    pub id: Uuid,
    pub version: i32,
    pub kek_version: i32,
    pub wrapped: Vec<u8>,
    pub state: DataKeyState,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("kek_version", &self.kek_version)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: DbUuid,
    version: i32,
    kek_version: i32,
    wrapped_key: Vec<u8>,
    state: String,
    created_at: DbTime,
}

impl TryFrom<Row> for DataKey {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id.0,
            version: r.version,
            kek_version: r.kek_version,
            wrapped: r.wrapped_key,
            state: DataKeyState::parse(&r.state)?,
            created_at: r.created_at.0,
        })
    }
}

const COLUMNS: &str = "id, version, kek_version, wrapped_key, state, created_at";

#[derive(sqlx::FromRow)]
struct TenantKeyRow {
    tenant_id: DbUuid,
    #[sqlx(flatten)]
    key: Row,
}

impl Store {
    /// Every master-key version this database has seen, with its check value.
    pub async fn kek_check_values(&self) -> Result<Vec<(i32, Vec<u8>)>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<(i32, Vec<u8>)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as("SELECT version, check_value FROM key_versions ORDER BY version").fetch_all(conn).await
        })?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Records a master-key version's check value unless one is recorded already.
    pub async fn record_kek_version(&self, version: i32, provider: &str, check: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.platform_tx(true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO key_versions (version, provider, check_value, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(version)
            .bind(provider)
            .bind(check)
            .bind(DbTime::now())
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Records which master-key versions are active / decrypt-only / retired now.
    pub async fn set_key_version_states(&self, states: &[(i32, &str)]) -> Result<(), StoreError> {
        // Every process start (each CLI command too) lands here; a write transaction when
        // nothing changed would queue behind a busy server for the write lock.
        let mut read = self.platform_tx(false).await?;
        let stored: Vec<(i32, String)> = with_conn!(&mut read.tx, conn => {
            sqlx::query_as("SELECT version, state FROM key_versions").fetch_all(&mut *conn).await?
        });
        read.commit().await?;
        if states
            .iter()
            .all(|(v, st)| stored.iter().any(|(sv, ss)| sv == v && ss == st))
        {
            return Ok(());
        }
        let mut tx = self.platform_tx(true).await?;
        for (version, state) in states {
            with_conn!(&mut tx.tx, conn => {
                sqlx::query("UPDATE key_versions SET state = $2 WHERE version = $1")
                    .bind(version)
                    .bind(*state)
                    .execute(&mut *conn)
                    .await
                    .map(|_| ())
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Master-key versions that still wrap a usable data key, across tenants.
    pub async fn key_versions_in_use(&self) -> Result<Vec<i32>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<i32> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(
                "SELECT DISTINCT kek_version FROM tenant_data_keys WHERE state <> 'retired' ORDER BY kek_version",
            )
            .fetch_all(conn)
            .await
        })?;
        tx.commit().await?;
        Ok(rows)
    }

    pub async fn data_keys(&self, tenant: TenantId) -> Result<Vec<DataKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenant_data_keys WHERE tenant_id = $1 ORDER BY version DESC");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_all(conn).await
        })?;
        tx.commit().await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn data_key(&self, tenant: TenantId, id: Uuid) -> Result<Option<DataKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenant_data_keys WHERE tenant_id = $1 AND id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(id)).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Adds the tenant's first data key (version 1, active) unless another replica did.
    pub async fn add_first_data_key(
        &self,
        tenant: TenantId,
        id: Uuid,
        kek_version: i32,
        wrapped: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO tenant_data_keys (tenant_id, id, version, kek_version, wrapped_key, state, created_at) \
                 VALUES ($1, $2, 1, $3, $4, 'active', $5) ON CONFLICT DO NOTHING",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(id))
            .bind(kek_version)
            .bind(wrapped)
            .bind(DbTime::now())
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes a new data key active; the previous active key becomes decrypt-only.
    /// Returns the new version.
    pub async fn rotate_data_key(
        &self,
        tenant: TenantId,
        id: Uuid,
        kek_version: i32,
        wrapped: &[u8],
    ) -> Result<i32, StoreError> {
        let t = DbUuid(tenant.as_uuid());
        let mut tx = self.tenant_tx(tenant, true).await?;
        let next: i32 = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM tenant_data_keys WHERE tenant_id = $1")
                .bind(t)
                .fetch_one(&mut *conn)
                .await
        })?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query("UPDATE tenant_data_keys SET state = 'decrypt_only' WHERE tenant_id = $1 AND state = 'active'")
                .bind(t)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "INSERT INTO tenant_data_keys (tenant_id, id, version, kek_version, wrapped_key, state, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6)",
            )
            .bind(t)
            .bind(DbUuid(id))
            .bind(next)
            .bind(kek_version)
            .bind(wrapped)
            .bind(DbTime::now())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(next)
    }
}

impl Store {
    /// Makes the newest non-retired key below the active one active again; the active
    /// key becomes decrypt-only. Returns the key now active, or `None` when there is
    /// nothing to roll back to.
    pub async fn rollback_data_key(&self, tenant: TenantId) -> Result<Option<Uuid>, StoreError> {
        let t = DbUuid(tenant.as_uuid());
        let mut tx = self.tenant_tx(tenant, true).await?;
        let previous: Option<DbUuid> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(
                "SELECT id FROM tenant_data_keys WHERE tenant_id = $1 AND state = 'decrypt_only' \
                 AND version < (SELECT version FROM tenant_data_keys WHERE tenant_id = $1 AND state = 'active') \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(t)
            .fetch_optional(&mut *conn)
            .await
        })?;
        let Some(previous) = previous else {
            return Ok(None);
        };
        with_conn!(&mut tx.tx, conn => {
            sqlx::query("UPDATE tenant_data_keys SET state = 'decrypt_only' WHERE tenant_id = $1 AND state = 'active'")
                .bind(t)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query("UPDATE tenant_data_keys SET state = 'active' WHERE tenant_id = $1 AND id = $2")
                .bind(t)
                .bind(previous)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(Some(previous.0))
    }

    /// Data keys wrapped under a master-key version other than `active`, across tenants.
    pub async fn data_keys_to_rewrap(&self, active: i32) -> Result<Vec<(TenantId, DataKey)>, StoreError> {
        let sql =
            format!("SELECT tenant_id, {COLUMNS} FROM tenant_data_keys WHERE kek_version <> $1 AND state <> 'retired'");
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<TenantKeyRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(active).fetch_all(conn).await
        })?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| Ok((TenantId::from_uuid(r.tenant_id.0), r.key.try_into()?)))
            .collect()
    }

    /// Replaces a data key's wrapping (same key, new master-key version).
    pub async fn rewrap_data_key(
        &self,
        tenant: TenantId,
        id: Uuid,
        kek_version: i32,
        wrapped: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        with_conn!(&mut tx.tx, conn => {
            sqlx::query("UPDATE tenant_data_keys SET kek_version = $3, wrapped_key = $4 WHERE tenant_id = $1 AND id = $2")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(id))
                .bind(kek_version)
                .bind(wrapped)
                .execute(conn)
                .await
                .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Tenants with decrypt-only keys whose successor became active before `before`,
    /// and no running job.
    pub async fn tenants_with_old_keys(&self, before: DateTime<Utc>) -> Result<Vec<TenantId>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<DbUuid> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(
                "SELECT DISTINCT d.tenant_id FROM tenant_data_keys d \
                 JOIN tenant_data_keys a ON a.tenant_id = d.tenant_id AND a.state = 'active' \
                 WHERE d.state = 'decrypt_only' AND a.created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM crypto_jobs j WHERE j.tenant_id = d.tenant_id AND j.state = 'running') \
                 LIMIT 100",
            )
            .bind(DbTime(before))
            .fetch_all(conn)
            .await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|t| TenantId::from_uuid(t.0)).collect())
    }

    /// Retires the tenant's decrypt-only keys (raises its minimum decryption version).
    pub async fn retire_decrypt_only_keys(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE tenant_data_keys SET state = 'retired', retired_at = $2 WHERE tenant_id = $1 AND state = 'decrypt_only'",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbTime::now())
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n)
    }

    /// Tenants whose active data key is older than `before` and who have no running
    /// re-encryption job (scheduled rotation).
    pub async fn tenants_due_for_rotation(&self, before: DateTime<Utc>) -> Result<Vec<TenantId>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<DbUuid> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(
                "SELECT k.tenant_id FROM tenant_data_keys k WHERE k.state = 'active' AND k.created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM crypto_jobs j WHERE j.tenant_id = k.tenant_id AND j.state = 'running') \
                 LIMIT 100",
            )
            .bind(DbTime(before))
            .fetch_all(conn)
            .await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|t| TenantId::from_uuid(t.0)).collect())
    }
}

//! Re-encryption after a data-key rotation: the registry of encrypted columns, batched
//! reads of rows not yet under a given data key, compare-and-swap writes, and the jobs
//! table with its lease.

use std::collections::BTreeMap;

use cairn_core::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

/// A column holding encrypted envelopes, and the column naming its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    pub key: &'static str,
}

impl SealedColumn {
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// Every encrypted column. A new one must be listed here or rotation skips it (the
/// envelope test in the server checks the list against the schema's sealed columns).
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "oauth_signing_keys",
        column: "private_key",
        key: "kid",
    },
    SealedColumn {
        table: "tenant_oauth_credentials",
        column: "client_secret",
        key: "provider",
    },
    SealedColumn {
        table: "connected_accounts",
        column: "access_token",
        key: "id",
    },
    SealedColumn {
        table: "connected_accounts",
        column: "refresh_token",
        key: "id",
    },
    SealedColumn {
        table: "kb_documents",
        column: "content_sealed",
        key: "row_key",
    },
    SealedColumn {
        table: "kb_chunks",
        column: "text_sealed",
        key: "row_key",
    },
    SealedColumn {
        table: "webhook_sources",
        column: "secret",
        key: "id",
    },
    SealedColumn {
        table: "webhook_sources",
        column: "previous_secret",
        key: "id",
    },
    SealedColumn {
        table: "webhook_endpoints",
        column: "secret",
        key: "id",
    },
];

/// Bytes 7..23 of an envelope (1-based 8, 16 long) are the id of its data key.
const DEK_ID_SQL: &str = "substr({col}, 8, 16)";

/// The job a batch of [`Store::replace_sealed`] belongs to, and its progress to update.
pub struct JobProgress<'a> {
    pub id: Uuid,
    pub owner: &'a str,
    pub progress: &'a mut BTreeMap<String, Progress>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CryptoJob {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub kind: String,
    pub target_key: Uuid,
    pub state: String,
    pub progress: BTreeMap<String, Progress>,
    pub lease_owner: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    tenant_id: DbUuid,
    id: DbUuid,
    kind: String,
    target_key: DbUuid,
    state: String,
    progress: Json<BTreeMap<String, Progress>>,
    lease_owner: Option<String>,
    error: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
    finished_at: Option<DbTime>,
}

impl From<JobRow> for CryptoJob {
    fn from(r: JobRow) -> Self {
        Self {
            id: r.id.0,
            tenant_id: TenantId::from_uuid(r.tenant_id.0),
            kind: r.kind,
            target_key: r.target_key.0,
            state: r.state,
            progress: r.progress.0,
            lease_owner: r.lease_owner,
            error: r.error,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            finished_at: r.finished_at.map(|t| t.0),
        }
    }
}

const JOB_COLUMNS: &str =
    "tenant_id, id, kind, target_key, state, progress, lease_owner, error, created_at, updated_at, finished_at";

fn to_i64(n: u32) -> i64 {
    i64::from(n)
}

impl Store {
    /// Rows of `col` in `tenant` not encrypted under data key `key`.
    pub async fn count_sealed_not_under(
        &self,
        tenant: TenantId,
        col: &SealedColumn,
        key: Uuid,
    ) -> Result<u64, StoreError> {
        let dek = DEK_ID_SQL.replace("{col}", col.column);
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE tenant_id = $1 AND {dek} <> $2",
            col.table
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let n: i64 = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(&sql).bind(DbUuid(tenant.as_uuid())).bind(key.as_bytes().as_slice()).fetch_one(conn).await
        })?;
        tx.commit().await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` (row key, envelope) pairs of `col` not under `key`, after `after`.
    pub async fn sealed_batch(
        &self,
        tenant: TenantId,
        col: &SealedColumn,
        key: Uuid,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let dek = DEK_ID_SQL.replace("{col}", col.column);
        let sql = format!(
            "SELECT {k}, {c} FROM {t} WHERE tenant_id = $1 AND {dek} <> $2 AND {k} > $3 ORDER BY {k} LIMIT $4",
            k = col.key,
            c = col.column,
            t = col.table
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<(String, Vec<u8>)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(key.as_bytes().as_slice())
                .bind(after)
                .bind(to_i64(limit))
                .fetch_all(conn)
                .await
        })?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Writes re-encrypted envelopes in one transaction, each only if the row still
    /// holds the envelope it was read with (a concurrent update wins), and adds the count
    /// to the job's progress in the same transaction — a crash can never separate the two.
    /// Returns how many were replaced.
    pub async fn replace_sealed(
        &self,
        tenant: TenantId,
        col: &SealedColumn,
        rows: &[(String, Vec<u8>, Vec<u8>)],
        job: JobProgress<'_>,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE {t} SET {c} = $4 WHERE tenant_id = $1 AND {k} = $2 AND {c} = $3",
            t = col.table,
            c = col.column,
            k = col.key
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let mut replaced = 0;
        for (row, old, new) in rows {
            replaced += with_conn!(&mut tx.tx, conn => {
                sqlx::query(&sql)
                    .bind(DbUuid(tenant.as_uuid()))
                    .bind(row)
                    .bind(old.as_slice())
                    .bind(new.as_slice())
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        job.progress.entry(col.name()).or_default().done += replaced;
        // A runner that lost its lease still keeps its (compare-and-swapped) rows, but
        // the progress is the new owner's to write.
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE crypto_jobs SET progress = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND state = 'running'",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(job.id))
            .bind(job.owner)
            .bind(Json(&*job.progress))
            .bind(DbTime::now())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(replaced)
    }

    pub async fn create_crypto_job(
        &self,
        tenant: TenantId,
        kind: &str,
        target_key: Uuid,
        progress: &BTreeMap<String, Progress>,
    ) -> Result<CryptoJob, StoreError> {
        let sql = format!(
            "INSERT INTO crypto_jobs (tenant_id, id, kind, target_key, state, progress, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $6) RETURNING {JOB_COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        // A newer job supersedes unfinished ones: they would re-encrypt to a stale key.
        with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE crypto_jobs SET state = 'failed', error = 'superseded by a newer rotation', finished_at = $2, \
                 updated_at = $2 WHERE tenant_id = $1 AND state = 'running'",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbTime::now())
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })?;
        let row: JobRow = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(Uuid::now_v7()))
                .bind(kind)
                .bind(DbUuid(target_key))
                .bind(Json(progress))
                .bind(DbTime::now())
                .fetch_one(&mut *conn)
                .await
        })?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Jobs of one tenant, or of all tenants, newest first.
    pub async fn crypto_jobs(&self, tenant: Option<TenantId>, limit: u32) -> Result<Vec<CryptoJob>, StoreError> {
        let rows: Vec<JobRow> = match tenant {
            Some(t) => {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM crypto_jobs WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT $2"
                );
                let mut tx = self.tenant_tx(t, false).await?;
                let rows = with_conn!(&mut tx.tx, conn => {
                    sqlx::query_as(&sql).bind(DbUuid(t.as_uuid())).bind(to_i64(limit)).fetch_all(conn).await
                })?;
                tx.commit().await?;
                rows
            }
            None => {
                let sql = format!("SELECT {JOB_COLUMNS} FROM crypto_jobs ORDER BY created_at DESC LIMIT $1");
                let mut tx = self.platform_tx(false).await?;
                let rows = with_conn!(&mut tx.tx, conn => {
                    sqlx::query_as(&sql).bind(to_i64(limit)).fetch_all(conn).await
                })?;
                tx.commit().await?;
                rows
            }
        };
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Running jobs whose lease is free or expired (across tenants).
    pub async fn claimable_crypto_jobs(&self) -> Result<Vec<(TenantId, Uuid)>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<(DbUuid, DbUuid)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(
                "SELECT tenant_id, id FROM crypto_jobs WHERE state = 'running' \
                 AND (lease_expires_at IS NULL OR lease_expires_at < $1) ORDER BY created_at LIMIT 100",
            )
            .bind(DbTime::now())
            .fetch_all(conn)
            .await
        })?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|(t, j)| (TenantId::from_uuid(t.0), j.0)).collect())
    }

    /// Takes or renews the lease of a running job; `false` if another runner holds it
    /// or the job is no longer running.
    pub async fn lease_crypto_job(
        &self,
        tenant: TenantId,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
        progress: Option<&BTreeMap<String, Progress>>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE crypto_jobs SET lease_owner = $3, lease_expires_at = $4, updated_at = $5, \
                 progress = COALESCE($6, progress) \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'running' \
                 AND (lease_owner IS NULL OR lease_owner = $3 OR lease_expires_at < $5)",
            )
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(id))
            .bind(owner)
            .bind(DbTime(until))
            .bind(DbTime::now())
            .bind(progress.map(Json))
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }

    pub async fn get_crypto_job(&self, tenant: TenantId, id: Uuid) -> Result<Option<CryptoJob>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM crypto_jobs WHERE tenant_id = $1 AND id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<JobRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(id)).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        Ok(row.map(Into::into))
    }

    /// Ends a job this runner holds.
    pub async fn finish_crypto_job(
        &self,
        tenant: TenantId,
        id: Uuid,
        owner: &str,
        outcome: Result<(), &str>,
    ) -> Result<bool, StoreError> {
        let t = DbUuid(tenant.as_uuid());
        let now = DbTime::now();
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query(
                "UPDATE crypto_jobs SET state = $4, error = $5, finished_at = $6, updated_at = $6, lease_expires_at = NULL \
                 WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND state = 'running'",
            )
            .bind(t)
            .bind(DbUuid(id))
            .bind(owner)
            .bind(if outcome.is_ok() { "done" } else { "failed" })
            .bind(outcome.err())
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

//! Knowledge-base monitoring: sizes and growth of one base (tenant scope), facts about the
//! shared indexes (catalog and statistics views), and maintenance (ANALYZE, REINDEX, FTS5
//! optimize) on a dedicated connection as the schema owner.

use std::str::FromStr;

use cairn_core::ids::{KbId, TenantId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::kb_search::{ChunkKey, INDEXED_DIMENSIONS};
use crate::knowledge::vector_from_bytes;
use crate::scope::Tx;
use crate::types::{DbTime, DbUuid};
use crate::{Backend, Store, StoreError};

mod maintain;
pub use maintain::{kb_maintain, MaintainOutcome, ReindexDone};

/// What one base holds. Byte figures are stored bytes: chunk text (clear or sealed),
/// vectors (4 bytes a component), document content (clear or sealed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KbCounts {
    pub documents: i64,
    pub chunks: i64,
    /// Chunks that carry a vector.
    pub vectors: i64,
    pub text_bytes: i64,
    pub vector_bytes: i64,
    pub document_bytes: i64,
}

/// Documents first ingested on one UTC day, at their current size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrowthDay {
    pub day: NaiveDate,
    pub documents: i64,
    pub chunks: i64,
    /// Document bytes as submitted (after decoding).
    pub bytes: i64,
}

/// A base with vectors, for platform-wide maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorBase {
    pub tenant: TenantId,
    pub kb: KbId,
}

/// One HNSW index of `kb_chunks` (PostgreSQL). Every tenant's vectors of that dimension
/// share it, so these figures describe the whole index, not one tenant's part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexFacts {
    pub name: String,
    pub dimension: usize,
    pub size_bytes: i64,
    /// Scans and entries returned since the statistics were last reset.
    pub idx_scan: i64,
    pub idx_tup_read: i64,
    /// The planner's entry count (`pg_class.reltuples`); `None` until VACUUM or ANALYZE
    /// has counted.
    pub entries: Option<i64>,
    pub m: u32,
    pub ef_construction: u32,
}

/// The chunk table as a whole: its lexical index and its health. Shared by all tenants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableFacts {
    /// "gin" (PostgreSQL tsvector) or "fts5" (SQLite).
    pub lexical_kind: &'static str,
    pub lexical_bytes: Option<i64>,
    /// Rows the lexical index covers, every tenant's.
    pub lexical_rows: Option<i64>,
    /// Whether planner statistics exist (SQLite: `sqlite_stat1` has rows for the table).
    pub analyzed: bool,
    pub last_analyze: Option<DateTime<Utc>>,
    pub last_autoanalyze: Option<DateTime<Utc>>,
    pub live_tuples: Option<i64>,
    pub dead_tuples: Option<i64>,
    /// The whole database on disk (SQLite: pages in use; PostgreSQL: `pg_database_size`).
    pub database_bytes: Option<i64>,
}

impl TableFacts {
    /// Dead rows over all rows; `None` when unknown or the table is empty.
    pub fn dead_ratio(&self) -> Option<f64> {
        let (live, dead) = (self.live_tuples?, self.dead_tuples?);
        (live + dead > 0).then(|| dead as f64 / (live + dead) as f64)
    }
}

/// The HNSW index of `dim` (migration 0011), if there is one.
pub fn hnsw_index_name(dim: usize) -> Option<String> {
    INDEXED_DIMENSIONS
        .contains(&dim)
        .then(|| format!("kb_chunks_hnsw_{dim}"))
}

/// `m` and `ef_construction` from `pg_class.reloptions` (`["m=16", …]`), with pgvector's
/// defaults for what the index was built without.
fn hnsw_options(reloptions: &[String]) -> (u32, u32) {
    let get = |key: &str, default: u32| {
        reloptions
            .iter()
            .filter_map(|o| o.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(default)
    };
    (get("m", 16), get("ef_construction", 64))
}

impl Store {
    pub async fn kb_counts(&self, tenant: TenantId, kb: KbId) -> Result<KbCounts, StoreError> {
        let vector_len = match self.backend() {
            Backend::Sqlite => "length(embedding)",
            // Logical f32 bytes, comparable with SQLite's BLOBs (pgvector adds 8 a row).
            Backend::Postgres => "CAST(dim AS BIGINT) * 4",
        };
        let chunks_sql = format!(
            "SELECT COUNT(*), CAST(COUNT(embedding) AS BIGINT), \
             CAST(COALESCE(SUM(COALESCE(octet_length(text), 0) + COALESCE(octet_length(text_sealed), 0)), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN embedding IS NULL THEN 0 ELSE {vector_len} END), 0) AS BIGINT) \
             FROM kb_chunks WHERE tenant_id = $1 AND kb_id = $2"
        );
        let docs_sql = "SELECT COUNT(*), CAST(COALESCE(SUM(COALESCE(octet_length(content), 0) \
                        + COALESCE(octet_length(content_sealed), 0)), 0) AS BIGINT) \
                        FROM kb_documents WHERE tenant_id = $1 AND kb_id = $2";
        let (t, k) = (DbUuid(tenant.as_uuid()), DbUuid(kb.as_uuid()));
        let mut tx = self.tenant_tx(tenant, false).await?;
        let (chunks, vectors, text_bytes, vector_bytes): (i64, i64, i64, i64) = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&chunks_sql).bind(t).bind(k).fetch_one(&mut *conn).await?
        });
        let (documents, document_bytes): (i64, i64) = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(docs_sql).bind(t).bind(k).fetch_one(&mut *conn).await?
        });
        tx.commit().await?;
        Ok(KbCounts {
            documents,
            chunks,
            vectors,
            text_bytes,
            vector_bytes,
            document_bytes,
        })
    }

    /// Per UTC day of the last `days`, the documents first ingested that day with their
    /// current chunks and bytes: net growth (a deleted document no longer counts; a
    /// replaced one counts on the day it first came).
    pub async fn kb_growth(&self, tenant: TenantId, kb: KbId, days: u32) -> Result<Vec<GrowthDay>, StoreError> {
        let day = match self.backend() {
            Backend::Sqlite => "substr(created_at, 1, 10)",
            Backend::Postgres => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        };
        let sql = format!(
            "SELECT {day} AS day, COUNT(*), CAST(SUM(chunk_count) AS BIGINT), CAST(SUM(bytes) AS BIGINT) \
             FROM kb_documents WHERE tenant_id = $1 AND kb_id = $2 AND created_at >= $3 GROUP BY 1 ORDER BY 1"
        );
        let since = DbTime::new(Utc::now() - chrono::Duration::days(i64::from(days)));
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<(String, i64, i64, i64)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid())).bind(DbUuid(kb.as_uuid())).bind(since)
                .fetch_all(conn).await?
        });
        tx.commit().await?;
        rows.into_iter()
            .map(|(d, documents, chunks, bytes)| {
                let day = NaiveDate::from_str(&d).map_err(|e| StoreError::Corrupt(format!("growth day {d}: {e}")))?;
                Ok(GrowthDay {
                    day,
                    documents,
                    chunks,
                    bytes,
                })
            })
            .collect()
    }

    /// Up to `n` stored vectors of dimension `dim`, picked at random (recall probes).
    pub async fn kb_sample_vectors(
        &self,
        tenant: TenantId,
        kb: KbId,
        dim: usize,
        n: usize,
    ) -> Result<Vec<Vec<f32>>, StoreError> {
        let sql = "SELECT embedding FROM kb_chunks WHERE tenant_id = $1 AND kb_id = $2 AND dim = $3 \
                   ORDER BY random() LIMIT $4";
        let (t, k) = (DbUuid(tenant.as_uuid()), DbUuid(kb.as_uuid()));
        let dim_i = i32::try_from(dim).unwrap_or(0);
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let mut tx = self.tenant_tx(tenant, false).await?;
        let out = match &mut tx.tx {
            Tx::Sqlite(conn) => {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(sql)
                    .bind(t)
                    .bind(k)
                    .bind(dim_i)
                    .bind(limit)
                    .fetch_all(&mut **conn)
                    .await?;
                rows.iter().map(|b| vector_from_bytes(b)).collect()
            }
            Tx::Postgres(conn) => {
                let rows: Vec<pgvector::Vector> = sqlx::query_scalar(sql)
                    .bind(t)
                    .bind(k)
                    .bind(dim_i)
                    .bind(limit)
                    .fetch_all(&mut **conn)
                    .await?;
                rows.into_iter().map(|v| v.to_vec()).collect()
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Facts about the HNSW index of `dim`; `None` on SQLite or for a dimension without
    /// one. Read from the catalog and statistics views, which any role may read: they
    /// describe the shared index, not the tenant's rows, so the tenant scope is only
    /// the connection it runs on.
    pub async fn kb_index_facts(&self, tenant: TenantId, dim: usize) -> Result<Option<IndexFacts>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let facts = index_facts(&mut tx.tx, dim).await?;
        tx.commit().await?;
        Ok(facts)
    }

    /// The chunk table's lexical index and health. Like [`Store::kb_index_facts`], these
    /// describe the table every tenant shares.
    pub async fn kb_table_facts(&self, tenant: TenantId) -> Result<TableFacts, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let facts = table_facts(&mut tx.tx).await?;
        tx.commit().await?;
        Ok(facts)
    }

    /// [`Store::kb_table_facts`] and the HNSW indexes of `dims`, in the platform scope
    /// (maintenance, which belongs to no tenant).
    pub async fn kb_platform_facts(&self, dims: &[usize]) -> Result<(TableFacts, Vec<IndexFacts>), StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let table = table_facts(&mut tx.tx).await?;
        let mut indexes = Vec::new();
        for &dim in dims {
            indexes.extend(index_facts(&mut tx.tx, dim).await?);
        }
        tx.commit().await?;
        Ok((table, indexes))
    }

    /// Every base whose vectors have dimension `dim`, at most `limit`, in random order.
    /// Platform scope: maintenance samples across tenants.
    pub async fn kb_bases_with_dimension(&self, dim: usize, limit: usize) -> Result<Vec<VectorBase>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<(DbUuid, DbUuid)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as("SELECT tenant_id, id FROM knowledge_bases WHERE dimension = $1 ORDER BY random() LIMIT $2")
                .bind(i32::try_from(dim).unwrap_or(0))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(conn)
                .await?
        });
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(t, k)| VectorBase {
                tenant: TenantId::from_uuid(t.0),
                kb: KbId::from_uuid(k.0),
            })
            .collect())
    }

    /// Nearest chunks by cosine through the HNSW index of `query.len()` with `ef_search`:
    /// what the recall probe measures. `None` on SQLite or for a dimension without an
    /// index.
    pub async fn kb_nearest_hnsw(
        &self,
        tenant: TenantId,
        kb: KbId,
        query: &[f32],
        limit: i64,
        ef_search: u32,
    ) -> Result<Option<Vec<(ChunkKey, f32)>>, StoreError> {
        if hnsw_index_name(query.len()).is_none() {
            return Ok(None);
        }
        // The search path itself: it forces the index (`enable_sort = off`).
        let ann = Some(crate::kb_search::AnnParams { ef_search });
        self.kb_nearest_pg(
            tenant,
            kb,
            query,
            &crate::kb_search::SearchFilter::default(),
            limit,
            ann,
        )
        .await
    }

    /// The vector dimensions bases use, platform-wide.
    pub async fn kb_dimensions(&self) -> Result<Vec<usize>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let dims: Vec<i32> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT DISTINCT dimension FROM knowledge_bases WHERE dimension IS NOT NULL ORDER BY 1")
                .fetch_all(conn)
                .await?
        });
        tx.commit().await?;
        Ok(dims.into_iter().filter_map(|d| usize::try_from(d).ok()).collect())
    }
}

async fn index_facts(tx: &mut Tx, dim: usize) -> Result<Option<IndexFacts>, StoreError> {
    let (Some(name), Tx::Postgres(conn)) = (hnsw_index_name(dim), tx) else {
        return Ok(None);
    };
    type Row = (i64, Option<i64>, Option<i64>, f64, Option<Vec<String>>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT pg_relation_size(c.oid), s.idx_scan, s.idx_tup_read, c.reltuples::float8, c.reloptions \
         FROM pg_class c LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = c.oid \
         WHERE c.oid = to_regclass($1)",
    )
    .bind(&name)
    .fetch_optional(&mut **conn)
    .await?;
    Ok(row.map(|(size_bytes, scans, read, reltuples, options)| {
        let (m, ef_construction) = hnsw_options(&options.unwrap_or_default());
        IndexFacts {
            name,
            dimension: dim,
            size_bytes,
            idx_scan: scans.unwrap_or(0),
            idx_tup_read: read.unwrap_or(0),
            // -1: never counted (PostgreSQL 14+).
            entries: (reltuples >= 0.0).then_some(reltuples as i64),
            m,
            ef_construction,
        }
    }))
}

async fn table_facts(tx: &mut Tx) -> Result<TableFacts, StoreError> {
    let conn = match tx {
        Tx::Sqlite(conn) => return sqlite_table_facts(conn).await,
        Tx::Postgres(conn) => conn,
    };
    type Row = (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let (gin, live, dead, last_analyze, last_autoanalyze): Row = sqlx::query_as(
        "SELECT pg_relation_size(to_regclass('kb_chunks_tsv')), s.n_live_tup, s.n_dead_tup, \
         s.last_analyze, s.last_autoanalyze \
         FROM (SELECT 1) one LEFT JOIN pg_stat_user_tables s ON s.relid = to_regclass('kb_chunks')",
    )
    .fetch_one(&mut **conn)
    .await?;
    // pg_database_size needs CONNECT, which PUBLIC has unless an operator revoked it.
    let size: Option<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN has_database_privilege(current_database(), 'CONNECT') \
         THEN pg_database_size(current_database()) END",
    )
    .fetch_one(&mut **conn)
    .await?;
    Ok(TableFacts {
        lexical_kind: "gin",
        lexical_bytes: gin,
        lexical_rows: live,
        analyzed: last_analyze.is_some() || last_autoanalyze.is_some(),
        last_analyze,
        last_autoanalyze,
        live_tuples: live,
        dead_tuples: dead,
        database_bytes: size,
    })
}

async fn sqlite_table_facts(conn: &mut sqlx::SqliteConnection) -> Result<TableFacts, StoreError> {
    // dbstat is compiled into the bundled SQLite; the shadow tables' blocks are the
    // fallback for a system library built without it. Both read every page of the
    // index: the cost of a stats call grows with the FTS index.
    let fts: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
        "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('kb_chunks_fts_data', 'kb_chunks_fts_idx', \
         'kb_chunks_fts_docsize', 'kb_chunks_fts_config') AND aggregate = TRUE",
    )
    .fetch_one(&mut *conn)
    .await;
    let lexical_bytes = match fts {
        Ok(size) => size,
        Err(_) => {
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(length(block)), 0) AS BIGINT) FROM kb_chunks_fts_data")
                .fetch_one(&mut *conn)
                .await?
        }
    };
    // One row per indexed chunk, far smaller than the chunk table to count.
    let lexical_rows: Option<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM kb_chunks_fts_docsize")
        .fetch_one(&mut *conn)
        .await
        .ok();
    let has_stat: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        .fetch_one(&mut *conn)
        .await?;
    let analyzed = if has_stat > 0 {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'kb_chunks'")
            .fetch_one(&mut *conn)
            .await?;
        rows > 0
    } else {
        false
    };
    let pages: i64 = sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
        .fetch_one(&mut *conn)
        .await?;
    let free: i64 =
        sqlx::query_scalar("SELECT freelist_count * page_size FROM pragma_freelist_count(), pragma_page_size()")
            .fetch_one(&mut *conn)
            .await?;
    Ok(TableFacts {
        lexical_kind: "fts5",
        lexical_bytes,
        lexical_rows,
        analyzed,
        last_analyze: None,
        last_autoanalyze: None,
        live_tuples: None,
        dead_tuples: None,
        database_bytes: Some(pages - free),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hnsw_options_fall_back_to_pgvector_defaults() {
        assert_eq!(hnsw_options(&[]), (16, 64));
        assert_eq!(
            hnsw_options(&["m=24".to_owned(), "ef_construction=200".to_owned()]),
            (24, 200)
        );
        assert_eq!(hnsw_options(&["ef_construction=128".to_owned()]), (16, 128));
        assert_eq!(hnsw_options(&["m=oops".to_owned()]), (16, 64));
    }

    #[test]
    fn only_migrated_dimensions_have_an_index() {
        assert_eq!(hnsw_index_name(256).as_deref(), Some("kb_chunks_hnsw_256"));
        assert_eq!(hnsw_index_name(100), None);
    }

    #[test]
    fn dead_ratio_needs_rows() {
        let mut f = TableFacts {
            lexical_kind: "gin",
            lexical_bytes: None,
            lexical_rows: None,
            analyzed: false,
            last_analyze: None,
            last_autoanalyze: None,
            live_tuples: Some(0),
            dead_tuples: Some(0),
            database_bytes: None,
        };
        assert_eq!(f.dead_ratio(), None);
        f.live_tuples = Some(75);
        f.dead_tuples = Some(25);
        assert_eq!(f.dead_ratio(), Some(0.25));
    }
}

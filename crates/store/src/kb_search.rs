//! Knowledge-base retrieval: lexical (FTS5 bm25 / tsvector), vectors (all of a base for
//! the exact in-memory scan; pgvector HNSW on PostgreSQL) and the chunk details of hits.
//! Every query is confined to one tenant and one base (and by RLS on PostgreSQL).

use std::collections::HashMap;

use cairn_core::ids::{DocumentId, KbId, TenantId};
use sqlx::types::Json;

use crate::knowledge::vector_from_bytes;
use crate::scope::Tx;
use crate::types::DbUuid;
use crate::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    pub document_id: DocumentId,
    pub ord: i32,
}

/// Restricts a search to documents carrying every tag and, if given, one of the source ids.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub tags: Vec<String>,
    pub source_ids: Vec<String>,
}

impl SearchFilter {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.source_ids.is_empty()
    }

    /// `AND c.document_id IN (…)` with placeholders from `$next` on, and their values.
    fn sql(&self, postgres: bool, next: usize) -> (String, Vec<String>) {
        if self.is_empty() {
            return (String::new(), Vec::new());
        }
        let mut binds = Vec::new();
        let mut sql = String::from(
            " AND c.document_id IN (SELECT d.id FROM kb_documents d WHERE d.tenant_id = c.tenant_id \
             AND d.kb_id = c.kb_id",
        );
        for tag in &self.tags {
            binds.push(tag.clone());
            let n = next + binds.len() - 1;
            if postgres {
                sql.push_str(&format!(" AND d.tags ? ${n}"));
            } else {
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM json_each(d.tags) WHERE value = ${n})"
                ));
            }
        }
        if !self.source_ids.is_empty() {
            let marks: Vec<String> = self
                .source_ids
                .iter()
                .map(|s| {
                    binds.push(s.clone());
                    format!("${}", next + binds.len() - 1)
                })
                .collect();
            sql.push_str(&format!(" AND d.source_id IN ({})", marks.join(", ")));
        }
        sql.push(')');
        (sql, binds)
    }
}

/// Every vector of a base, back to back, for an exact scan.
#[derive(Debug, Default)]
pub struct VectorSlab {
    pub keys: Vec<ChunkKey>,
    pub slab: Vec<f32>,
    pub dim: usize,
    pub generation: i64,
}

/// A chunk found by a search, with what a citation needs.
#[derive(Clone)]
pub struct ChunkHit {
    pub key: ChunkKey,
    pub source_id: String,
    pub title: String,
    pub heading_path: Vec<String>,
    pub start: i32,
    pub end: i32,
    pub text: Option<String>,
    pub text_sealed: Option<Vec<u8>>,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    document_id: DbUuid,
    ord: i32,
    source_id: String,
    title: String,
    heading_path: Json<Vec<String>>,
    start_offset: i32,
    end_offset: i32,
    text: Option<String>,
    text_sealed: Option<Vec<u8>>,
}

/// How an approximate (HNSW) query runs.
#[derive(Debug, Clone, Copy)]
pub struct AnnParams {
    pub ef_search: u32,
}

fn key(doc: DbUuid, ord: i32) -> ChunkKey {
    ChunkKey {
        document_id: DocumentId::from_uuid(doc.0),
        ord,
    }
}

/// The HNSW indexes exist for these dimensions only (migration 0011); other dimensions
/// are searched exactly.
pub const INDEXED_DIMENSIONS: [usize; 5] = [256, 384, 768, 1024, 1536];

impl Store {
    /// Bumped by every write to the base; an in-memory index is stale when it differs.
    pub async fn kb_generation(&self, tenant: TenantId, kb: KbId) -> Result<i64, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let g: Option<i64> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT generation FROM knowledge_bases WHERE tenant_id = $1 AND id = $2")
                .bind(DbUuid(tenant.as_uuid())).bind(DbUuid(kb.as_uuid())).fetch_optional(conn).await?
        });
        tx.commit().await?;
        Ok(g.unwrap_or(-1))
    }

    /// The base's chunk count, counted no further than `cap` (cheap for any size).
    pub async fn kb_chunks_upto(&self, tenant: TenantId, kb: KbId, cap: i64) -> Result<i64, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let n: i64 = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM kb_chunks WHERE tenant_id = $1 AND kb_id = $2 LIMIT $3) s",
            )
            .bind(DbUuid(tenant.as_uuid())).bind(DbUuid(kb.as_uuid())).bind(cap).fetch_one(conn).await?
        });
        tx.commit().await?;
        Ok(n)
    }

    /// Lexical search: any of `terms` (already reduced to plain words), best first.
    pub async fn kb_lexical(
        &self,
        tenant: TenantId,
        kb: KbId,
        terms: &[String],
        filter: &SearchFilter,
        limit: i64,
    ) -> Result<Vec<(ChunkKey, f64)>, StoreError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.tenant_tx(tenant, false).await?;
        let (t, k) = (DbUuid(tenant.as_uuid()), DbUuid(kb.as_uuid()));
        let rows: Vec<(DbUuid, i32, f64)> = match &mut tx.tx {
            Tx::Sqlite(conn) => {
                let expr: Vec<String> = terms.iter().map(|w| format!("\"{w}\"")).collect();
                let (f, binds) = filter.sql(false, 5);
                let sql = format!(
                    "SELECT c.document_id, c.ord, -bm25(kb_chunks_fts) AS s FROM kb_chunks_fts \
                     JOIN kb_chunks c ON c.seq = kb_chunks_fts.rowid \
                     WHERE kb_chunks_fts MATCH $1 AND c.tenant_id = $2 AND c.kb_id = $3{f} ORDER BY s DESC LIMIT $4"
                );
                let mut q = sqlx::query_as(&sql).bind(expr.join(" OR ")).bind(t).bind(k).bind(limit);
                for b in binds {
                    q = q.bind(b);
                }
                q.fetch_all(&mut **conn).await?
            }
            Tx::Postgres(conn) => {
                let (f, binds) = filter.sql(true, 5);
                let sql = format!(
                    "SELECT c.document_id, c.ord, ts_rank(c.tsv, q)::float8 AS s \
                     FROM kb_chunks c, to_tsquery('english', $1) q \
                     WHERE c.tenant_id = $2 AND c.kb_id = $3 AND c.tsv @@ q{f} ORDER BY s DESC LIMIT $4"
                );
                let mut q = sqlx::query_as(&sql).bind(terms.join(" | ")).bind(t).bind(k).bind(limit);
                for b in binds {
                    q = q.bind(b);
                }
                q.fetch_all(&mut **conn).await?
            }
        };
        tx.commit().await?;
        Ok(rows.into_iter().map(|(d, o, s)| (key(d, o), s)).collect())
    }

    /// Every vector of dimension `dim` in the base, for an exact scan (SQLite search;
    /// the recall baseline on PostgreSQL).
    pub async fn kb_vectors(&self, tenant: TenantId, kb: KbId, dim: usize) -> Result<VectorSlab, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let (t, k) = (DbUuid(tenant.as_uuid()), DbUuid(kb.as_uuid()));
        let dim_i = i32::try_from(dim).unwrap_or(0);
        let generation: i64 = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT generation FROM knowledge_bases WHERE tenant_id = $1 AND id = $2")
                .bind(t).bind(k).fetch_optional(conn).await?.unwrap_or(-1)
        });
        let mut out = VectorSlab {
            dim,
            generation,
            ..VectorSlab::default()
        };
        match &mut tx.tx {
            Tx::Sqlite(conn) => {
                let rows: Vec<(DbUuid, i32, Vec<u8>)> = sqlx::query_as(
                    "SELECT document_id, ord, embedding FROM kb_chunks \
                     WHERE tenant_id = $1 AND kb_id = $2 AND dim = $3 ORDER BY seq",
                )
                .bind(t)
                .bind(k)
                .bind(dim_i)
                .fetch_all(&mut **conn)
                .await?;
                out.slab.reserve(rows.len() * dim);
                for (d, o, bytes) in rows {
                    out.keys.push(key(d, o));
                    out.slab.extend(vector_from_bytes(&bytes));
                }
            }
            Tx::Postgres(conn) => {
                let rows: Vec<(DbUuid, i32, pgvector::Vector)> = sqlx::query_as(
                    "SELECT document_id, ord, embedding FROM kb_chunks \
                     WHERE tenant_id = $1 AND kb_id = $2 AND dim = $3 ORDER BY document_id, ord",
                )
                .bind(t)
                .bind(k)
                .bind(dim_i)
                .fetch_all(&mut **conn)
                .await?;
                out.slab.reserve(rows.len() * dim);
                for (d, o, v) in rows {
                    out.keys.push(key(d, o));
                    out.slab.extend_from_slice(v.as_slice());
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Nearest chunks by cosine through pgvector. `exact` writes the ordering so that no
    /// index can serve it (the recall baseline); otherwise the HNSW index of `dim` is
    /// used, with iterative scans so that the tenant filter still yields `limit` rows.
    /// `None` on SQLite, which searches in memory.
    #[allow(clippy::too_many_arguments)]
    pub async fn kb_nearest_pg(
        &self,
        tenant: TenantId,
        kb: KbId,
        query: &[f32],
        filter: &SearchFilter,
        limit: i64,
        ann: Option<AnnParams>,
    ) -> Result<Option<Vec<(ChunkKey, f32)>>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let Tx::Postgres(conn) = &mut tx.tx else {
            return Ok(None);
        };
        let dim = query.len();
        let (sql, binds) = nearest_sql(dim, filter, ann.is_none());
        if let Some(p) = ann {
            sqlx::query(&format!("SET LOCAL hnsw.ef_search = {}", p.ef_search.clamp(10, 1000)))
                .execute(&mut **conn)
                .await?;
            sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
                .execute(&mut **conn)
                .await?;
            // Without statistics (a fresh table) the planner takes the tenant index and a
            // sort; the HNSW index is the path we want whatever the estimates say. A
            // tenant too small for it to fill is caught by the caller's exact fallback.
            sqlx::query("SET LOCAL enable_sort = off").execute(&mut **conn).await?;
        }
        let mut q = sqlx::query_as(&sql)
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(kb.as_uuid()))
            .bind(pgvector::Vector::from(query.to_vec()))
            .bind(limit);
        for b in binds {
            q = q.bind(b);
        }
        let rows: Vec<(DbUuid, i32, f64)> = q.fetch_all(&mut **conn).await?;
        tx.commit().await?;
        let mut hits: Vec<(ChunkKey, f32)> = rows.into_iter().map(|(d, o, s)| (key(d, o), s as f32)).collect();
        // relaxed_order may return neighbours slightly out of order.
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(Some(hits))
    }

    /// The plan PostgreSQL picks for [`Store::kb_nearest_pg`] (stats, tests). `None` on SQLite.
    pub async fn kb_explain_nearest(
        &self,
        tenant: TenantId,
        kb: KbId,
        query: &[f32],
        limit: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let Tx::Postgres(conn) = &mut tx.tx else {
            return Ok(None);
        };
        let (sql, _) = nearest_sql(query.len(), &SearchFilter::default(), false);
        for set in [
            "SET LOCAL hnsw.iterative_scan = relaxed_order",
            "SET LOCAL enable_sort = off",
        ] {
            sqlx::query(set).execute(&mut **conn).await?;
        }
        let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}"))
            .bind(DbUuid(tenant.as_uuid()))
            .bind(DbUuid(kb.as_uuid()))
            .bind(pgvector::Vector::from(query.to_vec()))
            .bind(limit)
            .fetch_all(&mut **conn)
            .await?;
        tx.commit().await?;
        Ok(Some(lines.join("\n")))
    }

    /// Documents passing `filter`, for filtering an in-memory scan.
    pub async fn kb_filtered_documents(
        &self,
        tenant: TenantId,
        kb: KbId,
        filter: &SearchFilter,
    ) -> Result<Vec<DocumentId>, StoreError> {
        let postgres = matches!(self.backend(), crate::Backend::Postgres);
        let (f, binds) = filter.sql(postgres, 3);
        // The filter is written against chunk `c`; a document id stands in for it here.
        let sql = format!(
            "SELECT c.id FROM (SELECT id AS document_id, id, tenant_id, kb_id FROM kb_documents \
             WHERE tenant_id = $1 AND kb_id = $2) c WHERE 1 = 1{f}"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let ids: Vec<DbUuid> = with_conn!(&mut tx.tx, conn => {
            let mut q = sqlx::query_scalar(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(kb.as_uuid()));
            for b in &binds {
                q = q.bind(b);
            }
            q.fetch_all(conn).await?
        });
        tx.commit().await?;
        Ok(ids.into_iter().map(|d| DocumentId::from_uuid(d.0)).collect())
    }

    /// Text, place and document of the given chunks, in the order asked.
    pub async fn kb_chunks(&self, tenant: TenantId, kb: KbId, keys: &[ChunkKey]) -> Result<Vec<ChunkHit>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cond = Vec::with_capacity(keys.len());
        for i in 0..keys.len() {
            // The tenant in every term lets SQLite use the unique (tenant_id, document_id,
            // ord) index per term instead of reading the whole base (100× at 100k chunks).
            cond.push(format!(
                "(c.tenant_id = $1 AND c.document_id = ${} AND c.ord = ${})",
                3 + 2 * i,
                4 + 2 * i
            ));
        }
        let sql = format!(
            "SELECT c.document_id, c.ord, d.source_id, d.title, c.heading_path, c.start_offset, c.end_offset, \
             c.text, c.text_sealed FROM kb_chunks c JOIN kb_documents d ON d.tenant_id = c.tenant_id \
             AND d.id = c.document_id WHERE c.tenant_id = $1 AND c.kb_id = $2 AND ({})",
            cond.join(" OR ")
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<HitRow> = with_conn!(&mut tx.tx, conn => {
            let mut q = sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(kb.as_uuid()));
            for k in keys {
                q = q.bind(DbUuid(k.document_id.as_uuid())).bind(k.ord);
            }
            q.fetch_all(conn).await?
        });
        tx.commit().await?;
        let mut by_key: HashMap<ChunkKey, HitRow> = rows.into_iter().map(|r| (key(r.document_id, r.ord), r)).collect();
        Ok(keys
            .iter()
            .filter_map(|k| by_key.remove(k).map(|r| (k, r)))
            .map(|(k, r)| ChunkHit {
                key: *k,
                source_id: r.source_id,
                title: r.title,
                heading_path: r.heading_path.0,
                start: r.start_offset,
                end: r.end_offset,
                text: r.text,
                text_sealed: r.text_sealed,
            })
            .collect())
    }
}

/// Nearest-neighbour SQL for pgvector. The dimension is a literal (it is a type
/// modifier) taken from our own vectors, never from input text.
fn nearest_sql(dim: usize, filter: &SearchFilter, exact: bool) -> (String, Vec<String>) {
    let (f, binds) = filter.sql(true, 5);
    let expr = if INDEXED_DIMENSIONS.contains(&dim) {
        format!("c.embedding::vector({dim}) <=> $3")
    } else {
        "c.embedding <=> $3".to_owned()
    };
    // `+ 0` makes the ordering an expression no index provides: a true exact scan even
    // when a cached plan would otherwise pick the index.
    let order = if exact { format!("({expr}) + 0") } else { expr.clone() };
    (
        format!(
            "SELECT c.document_id, c.ord, 1 - ({expr}) AS s FROM kb_chunks c \
             WHERE c.tenant_id = $1 AND c.kb_id = $2 AND c.dim = {dim}{f} ORDER BY {order} LIMIT $4"
        ),
        binds,
    )
}

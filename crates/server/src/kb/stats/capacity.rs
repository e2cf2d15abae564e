//! The capacity report: bytes per chunk, growth over the last days, linear projections
//! and which limit (memory for the vector index, disk) comes first.

use cairn_core::ids::TenantId;
use cairn_store::kb_stats::{GrowthDay, IndexFacts, KbCounts, TableFacts};
use cairn_store::knowledge::KnowledgeBase;
use cairn_store::Backend;
use serde::Serialize;

use super::{dimension, uses_hnsw, GROWTH_WINDOW_DAYS};
use crate::kb::index::KEY_BYTES;
use crate::kb::KbError;
use crate::state::AppState;

/// Horizons of the projections, in months.
const HORIZONS: [u32; 2] = [6, 12];
const DAYS_PER_MONTH: f64 = 365.0 / 12.0;

#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    pub kb: String,
    pub backend: &'static str,
    pub documents: i64,
    pub chunks: i64,
    pub per_chunk: PerChunk,
    pub growth: Growth,
    /// `None` for a base without vectors, or whose dimension PostgreSQL scans unindexed.
    pub memory: Option<Resource>,
    pub disk: Resource,
    pub projections: Vec<Projection>,
    /// "memory" or "disk": the limit reached first at the current rate; `None` without growth.
    pub first_limit: Option<&'static str>,
}

/// Average bytes one chunk of this base costs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerChunk {
    pub text_bytes: f64,
    pub vector_bytes: f64,
    /// The document content a chunk stands for.
    pub document_bytes: f64,
    /// PostgreSQL: the HNSW index over its entries (on disk, and wanted in memory).
    /// SQLite: a row of the in-memory slab.
    pub vector_index_bytes: Option<f64>,
    /// The shared lexical index over the rows it covers (0 for an encrypted base).
    pub lexical_index_bytes: Option<f64>,
    /// Payload on disk: text, vector, document and index shares. Row headers and the
    /// B-tree indexes come on top.
    pub disk_bytes: f64,
    pub memory_bytes: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    pub window_days: u32,
    pub documents_added: i64,
    pub chunks_added: i64,
    pub documents_per_day: f64,
    pub chunks_per_day: f64,
    /// Document bytes as submitted, per day.
    pub source_bytes_per_day: f64,
    /// Net ingest per UTC day (documents at their current size, by the day they came).
    pub days: Vec<GrowthDay>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    /// "hnsw-index" (the whole shared index), "vector-slab" (this base's vectors in
    /// memory, SQLite) or "database" (the whole database on disk).
    pub measure: &'static str,
    pub used_bytes: i64,
    pub limit_bytes: u64,
    /// This base's growth only: other tenants' growth of a shared figure is not counted.
    pub bytes_per_day: f64,
    /// `None` when nothing grows; 0 when the limit is already reached.
    pub days_until_limit: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    pub months: u32,
    pub days: f64,
    pub chunks: f64,
    pub memory_bytes: Option<f64>,
    pub disk_bytes: f64,
}

/// Projects the base's growth over the last [`GROWTH_WINDOW_DAYS`] linearly. On
/// PostgreSQL an HNSW index serves only while the whole index (every tenant's vectors
/// of the dimension) stays in memory, so the memory figure is the whole index, not this
/// base's share of it; likewise the disk figure is the whole database.
pub async fn capacity(app: &AppState, tenant: TenantId, kb: &KnowledgeBase) -> Result<CapacityReport, KbError> {
    let counts = app.store.kb_counts(tenant, kb.id).await?;
    let table = app.store.kb_table_facts(tenant).await?;
    let days = app.store.kb_growth(tenant, kb.id, GROWTH_WINDOW_DAYS).await?;
    let dim = dimension(kb);
    let index = match dim {
        Some(d) if uses_hnsw(&app.store, d) => app.store.kb_index_facts(tenant, d).await?,
        _ => None,
    };
    let backend = app.store.backend();
    let per_chunk = per_chunk(&counts, &table, index.as_ref(), slab_row(backend, dim), kb.encrypted);
    let growth = growth(days);
    let cfg = &app.kb.config;
    let memory = match (backend, dim, &index) {
        (Backend::Postgres, _, Some(f)) => Some(("hnsw-index", f.size_bytes)),
        (Backend::Sqlite, Some(d), _) => Some(("vector-slab", counts.vectors.saturating_mul(row_bytes(d)))),
        _ => None,
    }
    .map(|(measure, used)| {
        let rate = growth.chunks_per_day * per_chunk.memory_bytes.unwrap_or(0.0);
        resource(measure, used, cfg.capacity_memory_bytes, rate)
    });
    let base_bytes = counts.text_bytes + counts.vector_bytes + counts.document_bytes;
    let disk = resource(
        "database",
        table.database_bytes.unwrap_or(base_bytes),
        cfg.capacity_disk_bytes,
        growth.chunks_per_day * per_chunk.disk_bytes,
    );
    let projections = HORIZONS
        .iter()
        .map(|&months| {
            let days = f64::from(months) * DAYS_PER_MONTH;
            Projection {
                months,
                days,
                chunks: counts.chunks as f64 + growth.chunks_per_day * days,
                memory_bytes: memory.as_ref().map(|m| m.used_bytes as f64 + m.bytes_per_day * days),
                disk_bytes: disk.used_bytes as f64 + disk.bytes_per_day * days,
            }
        })
        .collect();
    let first_limit = first_limit(memory.as_ref(), &disk);
    Ok(CapacityReport {
        kb: kb.name.clone(),
        backend: backend.as_str(),
        documents: counts.documents,
        chunks: counts.chunks,
        per_chunk,
        growth,
        memory,
        disk,
        projections,
        first_limit,
    })
}

fn row_bytes(dim: usize) -> i64 {
    i64::try_from(dim * 4 + KEY_BYTES).unwrap_or(i64::MAX)
}

/// Memory one chunk takes in SQLite's in-memory slab.
fn slab_row(backend: Backend, dim: Option<usize>) -> Option<f64> {
    match (backend, dim) {
        (Backend::Sqlite, Some(d)) => Some(row_bytes(d) as f64),
        _ => None,
    }
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn per_chunk(
    c: &KbCounts,
    table: &TableFacts,
    index: Option<&IndexFacts>,
    slab_row: Option<f64>,
    encrypted: bool,
) -> PerChunk {
    let text_bytes = ratio(c.text_bytes, c.chunks).unwrap_or(0.0);
    let vector_bytes = ratio(c.vector_bytes, c.chunks).unwrap_or(0.0);
    let document_bytes = ratio(c.document_bytes, c.chunks).unwrap_or(0.0);
    // The entry count is an estimate that only VACUUM and ANALYZE refresh; before either,
    // the table's live rows stand in (exact when one dimension is in use).
    let hnsw = index.and_then(|f| {
        let entries = f.entries.filter(|e| *e > 0).or(table.live_tuples);
        entries.and_then(|e| ratio(f.size_bytes, e))
    });
    let lexical_index_bytes = if encrypted {
        Some(0.0)
    } else {
        table
            .lexical_bytes
            .zip(table.lexical_rows)
            .and_then(|(b, r)| ratio(b, r))
    };
    let disk_bytes =
        text_bytes + vector_bytes + document_bytes + hnsw.unwrap_or(0.0) + lexical_index_bytes.unwrap_or(0.0);
    PerChunk {
        text_bytes,
        vector_bytes,
        document_bytes,
        vector_index_bytes: hnsw.or(slab_row),
        lexical_index_bytes,
        disk_bytes,
        memory_bytes: hnsw.or(slab_row),
    }
}

fn growth(days: Vec<GrowthDay>) -> Growth {
    let window = f64::from(GROWTH_WINDOW_DAYS);
    let documents_added: i64 = days.iter().map(|d| d.documents).sum();
    let chunks_added: i64 = days.iter().map(|d| d.chunks).sum();
    let bytes_added: i64 = days.iter().map(|d| d.bytes).sum();
    Growth {
        window_days: GROWTH_WINDOW_DAYS,
        documents_added,
        chunks_added,
        documents_per_day: documents_added as f64 / window,
        chunks_per_day: chunks_added as f64 / window,
        source_bytes_per_day: bytes_added as f64 / window,
        days,
    }
}

fn resource(measure: &'static str, used: i64, limit: u64, per_day: f64) -> Resource {
    Resource {
        measure,
        used_bytes: used,
        limit_bytes: limit,
        bytes_per_day: per_day,
        days_until_limit: days_until(used as f64, limit as f64, per_day),
    }
}

fn days_until(used: f64, limit: f64, per_day: f64) -> Option<f64> {
    if used >= limit {
        Some(0.0)
    } else if per_day > 0.0 {
        Some((limit - used) / per_day)
    } else {
        None
    }
}

fn first_limit(memory: Option<&Resource>, disk: &Resource) -> Option<&'static str> {
    let m = memory.and_then(|m| m.days_until_limit);
    match (m, disk.days_until_limit) {
        (Some(m), Some(d)) if m <= d => Some("memory"),
        (_, Some(_)) => Some("disk"),
        (Some(_), None) => Some("memory"),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(days: Option<f64>) -> Resource {
        Resource {
            measure: "x",
            used_bytes: 0,
            limit_bytes: 0,
            bytes_per_day: 0.0,
            days_until_limit: days,
        }
    }

    #[test]
    fn days_until_a_limit() {
        assert_eq!(days_until(100.0, 1100.0, 10.0), Some(100.0));
        assert_eq!(days_until(100.0, 1100.0, 0.0), None);
        assert_eq!(days_until(2000.0, 1100.0, 0.0), Some(0.0));
    }

    #[test]
    fn the_nearer_limit_comes_first() {
        assert_eq!(first_limit(Some(&res(Some(5.0))), &res(Some(9.0))), Some("memory"));
        assert_eq!(first_limit(Some(&res(Some(9.0))), &res(Some(5.0))), Some("disk"));
        assert_eq!(first_limit(Some(&res(None)), &res(Some(5.0))), Some("disk"));
        assert_eq!(first_limit(None, &res(None)), None);
        assert_eq!(first_limit(Some(&res(Some(1.0))), &res(None)), Some("memory"));
    }

    #[test]
    fn per_chunk_shares_the_indexes_over_their_entries() {
        let counts = KbCounts {
            documents: 2,
            chunks: 10,
            vectors: 10,
            text_bytes: 5_000,
            vector_bytes: 10_240,
            document_bytes: 8_000,
        };
        let table = TableFacts {
            lexical_kind: "gin",
            lexical_bytes: Some(40_000),
            lexical_rows: Some(100),
            analyzed: true,
            last_analyze: None,
            last_autoanalyze: None,
            live_tuples: Some(100),
            dead_tuples: Some(0),
            database_bytes: Some(1 << 20),
        };
        let index = IndexFacts {
            name: "kb_chunks_hnsw_256".into(),
            dimension: 256,
            size_bytes: 160_000,
            idx_scan: 0,
            idx_tup_read: 0,
            entries: None,
            m: 16,
            ef_construction: 64,
        };
        let p = per_chunk(&counts, &table, Some(&index), None, false);
        assert_eq!((p.text_bytes, p.vector_bytes, p.document_bytes), (500.0, 1024.0, 800.0));
        // No entry count yet: the table's live rows stand in.
        assert_eq!(p.vector_index_bytes, Some(1600.0));
        assert_eq!(p.lexical_index_bytes, Some(400.0));
        assert_eq!(p.disk_bytes, 500.0 + 1024.0 + 800.0 + 1600.0 + 400.0);
        let p = per_chunk(&counts, &table, None, slab_row(Backend::Sqlite, Some(256)), true);
        assert_eq!(p.memory_bytes, Some(1048.0));
        assert_eq!(p.lexical_index_bytes, Some(0.0));
        assert_eq!(p.disk_bytes, 500.0 + 1024.0 + 800.0);
    }
}

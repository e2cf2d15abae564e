//! Knowledge-base monitoring: what a base holds and what its indexes look like, recall
//! probes of the search path against exact search, maintenance (ANALYZE every run,
//! REINDEX when recall or dead rows call for it) and a capacity report.
//!
//! On PostgreSQL the vector and lexical indexes are shared by every tenant (one HNSW
//! index per dimension, one GIN index): their figures describe the whole index.

use std::collections::HashSet;
use std::sync::Arc;

use cairn_core::ids::{KbId, TenantId};
use cairn_store::kb_search::{ChunkKey, SearchFilter, VectorSlab, INDEXED_DIMENSIONS};
use cairn_store::kb_stats::{self, TableFacts};
use cairn_store::knowledge::KnowledgeBase;
use cairn_store::{Backend, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::KbError;
use crate::state::AppState;

mod capacity;
mod maintain;
pub use capacity::{capacity, CapacityReport, Growth, PerChunk, Projection, Resource};
pub use maintain::{maintain, IndexDecision, MaintainReport};

/// Recall is measured over this many neighbours.
pub const RECALL_K: usize = 10;
/// A result scoring within this of the k-th exact neighbour counts as found: repeated
/// passages have equal vectors, and either of two tied chunks may rank k-th.
const TIE: f32 = 1e-4;
const MAX_PROBE_QUERIES: usize = 1000;
/// Growth is the net ingest of this many days, as a daily rate.
pub const GROWTH_WINDOW_DAYS: u32 = 30;

#[derive(Debug, Clone, Serialize)]
pub struct KbStats {
    pub kb: String,
    pub backend: &'static str,
    pub model_id: Option<String>,
    pub dimension: Option<i32>,
    pub encrypted: bool,
    pub documents: i64,
    pub chunks: i64,
    pub bytes: ByteCounts,
    /// `None` for a base without vectors.
    pub vector_index: Option<VectorIndexStats>,
    pub lexical_index: LexicalIndexStats,
    pub table: TableHealth,
    /// `None` until the base has been searched since this server started.
    pub latency: Option<LatencyStats>,
    /// Only when asked for (`probe`): it runs searches.
    pub recall: Option<RecallReport>,
}

/// Stored bytes of the base: chunk text (clear or sealed), vectors, document content.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ByteCounts {
    pub text: i64,
    pub vectors: i64,
    pub documents: i64,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VectorIndexStats {
    /// "hnsw" (PostgreSQL, an indexed dimension) or "exact-scan" (SQLite's in-memory
    /// scan; PostgreSQL for a dimension without an index).
    pub kind: &'static str,
    pub dimension: usize,
    pub name: Option<String>,
    /// The figures below cover every tenant's vectors of this dimension.
    pub shared: bool,
    pub params: Option<HnswParams>,
    pub size_bytes: Option<i64>,
    pub entries: Option<i64>,
    pub idx_scan: Option<i64>,
    pub idx_tup_read: Option<i64>,
    /// SQLite: memory this base's vectors hold now (`None`: not loaded).
    pub loaded_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct HnswParams {
    pub m: u32,
    pub ef_construction: u32,
    /// What searches run with (`kb.hnsw_ef_search`).
    pub ef_search: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct LexicalIndexStats {
    /// "fts5" (SQLite) or "gin" (PostgreSQL tsvector).
    pub kind: &'static str,
    /// The whole index, shared by every tenant.
    pub size_bytes: Option<i64>,
    /// False for an encrypted base: its text is not indexed.
    pub covers_base: bool,
}

/// The chunk table every tenant shares.
#[derive(Debug, Clone, Serialize)]
pub struct TableHealth {
    pub analyzed: bool,
    pub last_analyze: Option<DateTime<Utc>>,
    pub last_autoanalyze: Option<DateTime<Utc>>,
    pub live_rows: Option<i64>,
    pub dead_rows: Option<i64>,
    pub dead_ratio: Option<f64>,
}

impl From<&TableFacts> for TableHealth {
    fn from(t: &TableFacts) -> Self {
        Self {
            analyzed: t.analyzed,
            last_analyze: t.last_analyze,
            last_autoanalyze: t.last_autoanalyze,
            live_rows: t.live_tuples,
            dead_rows: t.dead_tuples,
            dead_ratio: t.dead_ratio(),
        }
    }
}

/// Recent searches of the base on this server, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyStats {
    pub p50_us: u32,
    pub p95_us: u32,
    pub p99_us: u32,
    pub samples: usize,
}

/// Recall@k of the search path against exact search, over stored vectors as queries.
#[derive(Debug, Clone, Serialize)]
pub struct RecallReport {
    pub queries: usize,
    pub k: usize,
    /// Mean over the queries; `None` when there was nothing to query.
    pub recall_at_10: Option<f64>,
    pub worst: Option<f64>,
    /// "hnsw" (the HNSW index, queried with the searches' `ef_search`, against an exact
    /// scan in PostgreSQL) or "exact-scan" (the search path is itself exact: what is
    /// checked is the scan, 1.0 unless it is broken).
    pub method: &'static str,
    pub ef_search: Option<u32>,
    /// PostgreSQL: whether the planner sends this base's searches through the index. It
    /// scans a small base's rows exactly instead, and then its searches are exact.
    pub planner_uses_index: Option<bool>,
}

/// What `kb` holds, its indexes and their health, recent search latencies and, with
/// `probe`, a recall probe ([`recall_probe`] with `kb.recall_probe_queries` queries).
pub async fn stats(app: &AppState, tenant: TenantId, kb: &KnowledgeBase, probe: bool) -> Result<KbStats, KbError> {
    let counts = app.store.kb_counts(tenant, kb.id).await?;
    let table = app.store.kb_table_facts(tenant).await?;
    let vector_index = match dimension(kb) {
        Some(dim) => Some(vector_index(app, tenant, kb.id, dim).await?),
        None => None,
    };
    let recall = match (probe, &vector_index) {
        (true, Some(_)) => Some(recall_probe(app, tenant, kb, app.kb.config.recall_probe_queries).await?),
        _ => None,
    };
    let latency = app
        .kb
        .latency_percentiles(tenant, kb.id)
        .map(|(p50_us, p95_us, p99_us, samples)| LatencyStats {
            p50_us,
            p95_us,
            p99_us,
            samples,
        });
    Ok(KbStats {
        kb: kb.name.clone(),
        backend: app.store.backend().as_str(),
        model_id: kb.model_id.clone(),
        dimension: kb.dimension,
        encrypted: kb.encrypted,
        documents: counts.documents,
        chunks: counts.chunks,
        bytes: ByteCounts {
            text: counts.text_bytes,
            vectors: counts.vector_bytes,
            documents: counts.document_bytes,
            total: counts.text_bytes + counts.vector_bytes + counts.document_bytes,
        },
        vector_index,
        lexical_index: LexicalIndexStats {
            kind: table.lexical_kind,
            size_bytes: table.lexical_bytes,
            covers_base: !kb.encrypted,
        },
        table: TableHealth::from(&table),
        latency,
        recall,
    })
}

fn dimension(kb: &KnowledgeBase) -> Option<usize> {
    kb.dimension.and_then(|d| usize::try_from(d).ok()).filter(|&d| d > 0)
}

/// Whether searches of `dim` go through an HNSW index (see `search::nearest`).
fn uses_hnsw(store: &Store, dim: usize) -> bool {
    store.backend() == Backend::Postgres && INDEXED_DIMENSIONS.contains(&dim)
}

async fn vector_index(app: &AppState, tenant: TenantId, kb: KbId, dim: usize) -> Result<VectorIndexStats, KbError> {
    let exact = VectorIndexStats {
        kind: "exact-scan",
        dimension: dim,
        name: None,
        shared: false,
        params: None,
        size_bytes: None,
        entries: None,
        idx_scan: None,
        idx_tup_read: None,
        loaded_bytes: None,
    };
    if !uses_hnsw(&app.store, dim) {
        let loaded_bytes = match app.store.backend() {
            Backend::Sqlite => app.kb.index.loaded_bytes(tenant, kb),
            Backend::Postgres => None,
        };
        return Ok(VectorIndexStats { loaded_bytes, ..exact });
    }
    // An index dropped by hand leaves pgvector scanning the table.
    let Some(f) = app.store.kb_index_facts(tenant, dim).await? else {
        return Ok(exact);
    };
    Ok(VectorIndexStats {
        kind: "hnsw",
        dimension: dim,
        shared: true,
        params: Some(HnswParams {
            m: f.m,
            ef_construction: f.ef_construction,
            ef_search: app.kb.config.hnsw_ef_search,
        }),
        size_bytes: Some(f.size_bytes),
        entries: f.entries,
        idx_scan: Some(f.idx_scan),
        idx_tup_read: Some(f.idx_tup_read),
        name: Some(f.name),
        loaded_bytes: None,
    })
}

/// Samples up to `queries` stored vectors of the base and compares the search path's
/// top 10 for each with the exact top 10. PostgreSQL (indexed dimension): the HNSW index
/// with the searches' `ef_search`, made to serve even where the planner would scan the
/// base exactly, against the query written so no index can serve it. Where the search
/// path is an exact scan (SQLite's in-memory slab; an unindexed dimension), it is
/// checked against a scan in double precision over the same vectors.
pub async fn recall_probe(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    queries: usize,
) -> Result<RecallReport, KbError> {
    let Some(dim) = dimension(kb) else {
        return Err(KbError::Invalid(
            "kb",
            "this knowledge base has no vectors to probe".into(),
        ));
    };
    let samples = app
        .store
        .kb_sample_vectors(tenant, kb.id, dim, queries.clamp(1, MAX_PROBE_QUERIES))
        .await?;
    let mut acc = RecallAcc::default();
    if uses_hnsw(&app.store, dim) {
        let ef_search = app.kb.config.hnsw_ef_search;
        for q in &samples {
            acc.add(hnsw_recall(&app.store, tenant, kb.id, q, ef_search).await?);
        }
        let mut report = acc.report("hnsw", Some(ef_search));
        if let (Some(q), Some(index)) = (samples.first(), kb_stats::hnsw_index_name(dim)) {
            let plan = app.store.kb_explain_nearest(tenant, kb.id, q, RECALL_K as i64).await?;
            report.planner_uses_index = plan.map(|p| p.contains(&index));
        }
        return Ok(report);
    }
    if samples.is_empty() {
        return Ok(acc.report("exact-scan", None));
    }
    let slab: Arc<VectorSlab> = match app.store.backend() {
        Backend::Sqlite => {
            // The slab searches use: no second copy of the base in memory.
            let generation = app.store.kb_generation(tenant, kb.id).await?;
            app.kb.index.get(&app.store, tenant, kb.id, dim, generation).await?
        }
        Backend::Postgres => Arc::new(app.store.kb_vectors(tenant, kb.id, dim).await?),
    };
    for q in &samples {
        let found = super::search::nearest(app, tenant, kb, q, &SearchFilter::default(), RECALL_K).await?;
        acc.add(recall_of(&found, &exact_top_k(q, &slab, RECALL_K)));
    }
    Ok(acc.report("exact-scan", None))
}

async fn hnsw_recall(
    store: &Store,
    tenant: TenantId,
    kb: KbId,
    query: &[f32],
    ef_search: u32,
) -> Result<Option<f64>, KbError> {
    let (none, k) = (SearchFilter::default(), RECALL_K as i64);
    let ann = store
        .kb_nearest_hnsw(tenant, kb, query, k, ef_search)
        .await?
        .unwrap_or_default();
    let exact = store
        .kb_nearest_pg(tenant, kb, query, &none, k, None)
        .await?
        .unwrap_or_default();
    Ok(recall_of(&ann, &exact))
}

/// Share of the exact top k that `found` holds, ties at the k-th score counting as
/// found. `None` when the exact search found nothing.
fn recall_of(found: &[(ChunkKey, f32)], exact: &[(ChunkKey, f32)]) -> Option<f64> {
    let exact = &exact[..exact.len().min(RECALL_K)];
    let kth = exact.last()?.1;
    let wanted: HashSet<ChunkKey> = exact.iter().map(|e| e.0).collect();
    let hits = found
        .iter()
        .take(RECALL_K)
        .filter(|(key, score)| wanted.contains(key) || *score >= kth - TIE)
        .count();
    Some(hits.min(exact.len()) as f64 / exact.len() as f64)
}

/// Cosine top k in double precision, independent of the vectorised f32 scan.
fn exact_top_k(query: &[f32], slab: &VectorSlab, k: usize) -> Vec<(ChunkKey, f32)> {
    if slab.dim == 0 || query.len() != slab.dim {
        return Vec::new();
    }
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let qn = norm(query);
    let mut scored: Vec<(usize, f64)> = slab
        .slab
        .chunks_exact(slab.dim)
        .enumerate()
        .map(|(row, v)| {
            let dot: f64 = query.iter().zip(v).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let n = qn * norm(v);
            (row, if n > 0.0 { dot / n } else { 0.0 })
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
        .into_iter()
        .filter_map(|(row, s)| slab.keys.get(row).map(|key| (*key, s as f32)))
        .collect()
}

#[derive(Default)]
struct RecallAcc {
    sum: f64,
    n: usize,
    worst: Option<f64>,
}

impl RecallAcc {
    fn add(&mut self, recall: Option<f64>) {
        if let Some(r) = recall {
            self.sum += r;
            self.n += 1;
            self.worst = Some(self.worst.map_or(r, |w| w.min(r)));
        }
    }

    fn report(&self, method: &'static str, ef_search: Option<u32>) -> RecallReport {
        RecallReport {
            queries: self.n,
            k: RECALL_K,
            recall_at_10: (self.n > 0).then(|| self.sum / self.n as f64),
            worst: self.worst,
            method,
            ef_search,
            planner_uses_index: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_core::ids::DocumentId;

    use super::*;

    fn keys(n: usize) -> Vec<ChunkKey> {
        let doc = DocumentId::new();
        (0..n)
            .map(|i| ChunkKey {
                document_id: doc,
                ord: i32::try_from(i).unwrap(),
            })
            .collect()
    }

    #[test]
    fn recall_counts_the_exact_neighbours_found() {
        let k = keys(12);
        let exact: Vec<(ChunkKey, f32)> = (0..10).map(|i| (k[i], 1.0 - i as f32 * 0.01)).collect();
        assert_eq!(recall_of(&exact, &exact), Some(1.0));
        let mut found = exact[..8].to_vec();
        found.push((k[10], 0.5));
        found.push((k[11], 0.4));
        assert_eq!(recall_of(&found, &exact), Some(0.8));
        assert_eq!(recall_of(&[], &exact), Some(0.0));
        assert_eq!(recall_of(&found, &[]), None);
    }

    #[test]
    fn a_tie_at_the_kth_score_counts_as_found() {
        let k = keys(11);
        let exact: Vec<(ChunkKey, f32)> = (0..10).map(|i| (k[i], 1.0 - i as f32 * 0.01)).collect();
        let mut found = exact[..9].to_vec();
        // Another chunk with the same vector as the 10th.
        found.push((k[10], exact[9].1));
        assert_eq!(recall_of(&found, &exact), Some(1.0));
    }

    #[test]
    fn exact_top_k_ranks_by_cosine() {
        let slab = VectorSlab {
            keys: keys(3),
            slab: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
            dim: 2,
            generation: 0,
        };
        let top = exact_top_k(&[0.0, 2.0], &slab, 2);
        assert_eq!(top.iter().map(|t| t.0.ord).collect::<Vec<_>>(), [1, 2]);
        assert!((top[1].1 - 0.8).abs() < 1e-6);
        assert!(exact_top_k(&[1.0], &slab, 2).is_empty());
    }
}

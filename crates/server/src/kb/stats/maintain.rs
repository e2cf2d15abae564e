//! Platform maintenance of the knowledge-base tables: probe, decide, ANALYZE, REINDEX.

use std::time::Instant;

use cairn_store::kb_search::INDEXED_DIMENSIONS;
use cairn_store::kb_stats::{self, IndexFacts, MaintainOutcome};
use cairn_store::{Backend, StoreError};
use serde::Serialize;

use super::{hnsw_recall, RecallAcc, RecallReport, MAX_PROBE_QUERIES};
use crate::kb::KbError;
use crate::state::AppState;

/// One run of [`maintain`].
#[derive(Debug, Clone, Serialize)]
pub struct MaintainReport {
    pub backend: &'static str,
    pub forced: bool,
    pub min_recall: f64,
    pub max_dead_ratio: f64,
    /// The chunk table's dead rows over all its rows (PostgreSQL).
    pub dead_ratio: Option<f64>,
    /// One per HNSW index some base uses (none on SQLite: its scan is exact).
    pub indexes: Vec<IndexDecision>,
    pub outcome: MaintainOutcome,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexDecision {
    pub dimension: usize,
    pub index: String,
    /// After this run.
    pub size_bytes: i64,
    pub entries: Option<i64>,
    /// Sampled across the bases of this dimension, every tenant's.
    pub recall: RecallReport,
    pub reindex: bool,
    pub reasons: Vec<String>,
}

/// One run per process at a time; PostgreSQL also holds an advisory lock across replicas.
static RUNNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Platform maintenance of the knowledge-base tables. On PostgreSQL: probes the recall
/// of each HNSW index in use (`kb.recall_probe_queries` queries spread over random
/// bases of that dimension) and reads the chunk table's dead rows, rebuilds the indexes
/// whose recall is below `kb.min_recall`, all of them when dead rows exceed
/// `kb.max_dead_ratio`, every one with `force`; then ANALYZE. On SQLite: ANALYZE and an
/// FTS5 merge. With no bases the probes cost nothing and only ANALYZE runs.
pub async fn maintain(app: &AppState, force: bool) -> Result<MaintainReport, KbError> {
    let Ok(_running) = RUNNING.try_lock() else {
        return Err(StoreError::Conflict("knowledge-base maintenance is already running".into()).into());
    };
    let started = Instant::now();
    let cfg = &app.kb.config;
    let mut indexes = Vec::new();
    let mut dead_ratio = None;
    if app.store.backend() == Backend::Postgres {
        let dims: Vec<usize> = app
            .store
            .kb_dimensions()
            .await?
            .into_iter()
            .filter(|d| INDEXED_DIMENSIONS.contains(d))
            .collect();
        let (table, facts) = app.store.kb_platform_facts(&dims).await?;
        dead_ratio = table.dead_ratio();
        for f in facts {
            let recall = probe_dimension(app, f.dimension, cfg.recall_probe_queries).await?;
            let reasons = reindex_reasons(
                recall.recall_at_10,
                dead_ratio,
                cfg.min_recall,
                cfg.max_dead_ratio,
                force,
            );
            indexes.push(decision(f, recall, reasons));
        }
    }
    let rebuild: Vec<usize> = indexes.iter().filter(|d| d.reindex).map(|d| d.dimension).collect();
    let outcome = kb_stats::kb_maintain(&app.config.store_config(), &rebuild).await?;
    if !indexes.is_empty() {
        // Sizes change with a rebuild, and the entry count is only current after ANALYZE.
        let dims: Vec<usize> = indexes.iter().map(|d| d.dimension).collect();
        let (_, after) = app.store.kb_platform_facts(&dims).await?;
        for d in &mut indexes {
            if let Some(f) = after.iter().find(|f| f.dimension == d.dimension) {
                (d.size_bytes, d.entries) = (f.size_bytes, f.entries);
            }
        }
    }
    Ok(MaintainReport {
        backend: app.store.backend().as_str(),
        forced: force,
        min_recall: cfg.min_recall,
        max_dead_ratio: cfg.max_dead_ratio,
        dead_ratio,
        indexes,
        outcome,
        duration_ms: (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
    })
}

fn decision(f: IndexFacts, recall: RecallReport, reasons: Vec<String>) -> IndexDecision {
    IndexDecision {
        dimension: f.dimension,
        index: f.name,
        size_bytes: f.size_bytes,
        entries: f.entries,
        recall,
        reindex: !reasons.is_empty(),
        reasons,
    }
}

async fn probe_dimension(app: &AppState, dim: usize, queries: usize) -> Result<RecallReport, KbError> {
    let ef_search = app.kb.config.hnsw_ef_search;
    let queries = queries.clamp(1, MAX_PROBE_QUERIES);
    let bases = app.store.kb_bases_with_dimension(dim, queries).await?;
    let mut acc = RecallAcc::default();
    let per_base = queries.div_ceil(bases.len().max(1));
    let mut left = queries;
    for base in bases {
        if left == 0 {
            break;
        }
        let samples = app
            .store
            .kb_sample_vectors(base.tenant, base.kb, dim, per_base.min(left))
            .await?;
        left -= samples.len().min(left);
        for q in &samples {
            acc.add(hnsw_recall(&app.store, base.tenant, base.kb, q, ef_search).await?);
        }
    }
    Ok(acc.report("hnsw", Some(ef_search)))
}

/// Why an index should be rebuilt; empty: leave it.
fn reindex_reasons(
    recall: Option<f64>,
    dead_ratio: Option<f64>,
    min_recall: f64,
    max_dead_ratio: f64,
    force: bool,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if force {
        reasons.push("forced".to_owned());
    }
    if let Some(r) = recall.filter(|r| *r < min_recall) {
        reasons.push(format!("recall@10 {r:.3} is below kb.min_recall {min_recall}"));
    }
    if let Some(d) = dead_ratio.filter(|d| *d > max_dead_ratio) {
        reasons.push(format!("dead rows {d:.3} exceed kb.max_dead_ratio {max_dead_ratio}"));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindex_when_recall_or_dead_rows_call_for_it() {
        assert!(reindex_reasons(Some(0.99), Some(0.05), 0.95, 0.2, false).is_empty());
        assert!(reindex_reasons(None, None, 0.95, 0.2, false).is_empty());
        let low = reindex_reasons(Some(0.9), Some(0.05), 0.95, 0.2, false);
        assert_eq!(low.len(), 1);
        assert!(low[0].contains("recall@10 0.900"), "{low:?}");
        let dead = reindex_reasons(Some(0.99), Some(0.3), 0.95, 0.2, false);
        assert!(dead[0].contains("dead rows"), "{dead:?}");
        assert_eq!(reindex_reasons(Some(0.99), Some(0.0), 0.95, 0.2, true), ["forced"]);
    }
}

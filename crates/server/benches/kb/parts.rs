//! Where a search's time goes: the steps `kb::search::search` takes, each timed alone
//! through the same public APIs, on the same queries.

use std::time::{Duration, Instant};

use cairn_core::kb::{scan, text};
use cairn_server::kb::embed::BuiltinEmbedder;
use cairn_store::kb_search::{AnnParams, ChunkKey, SearchFilter, VectorSlab};
use cairn_store::knowledge::KnowledgeBase;
use cairn_store::Store;

use crate::backend::Bench;
use crate::report::RecallRow;

/// Candidates search takes from each list for k = 10 (`candidates(k)` in kb::search).
const CANDIDATES: usize = 50;

pub struct PartsRow {
    pub backend: &'static str,
    pub chunks: usize,
    /// (step, sorted durations).
    pub steps: Vec<(&'static str, Vec<Duration>)>,
}

impl PartsRow {
    pub fn p50(&self, step: usize) -> Duration {
        self.steps
            .get(step)
            .and_then(|(_, v)| v.get(v.len() / 2).copied())
            .unwrap_or_default()
    }
    pub fn p99(&self, step: usize) -> Duration {
        self.steps
            .get(step)
            .and_then(|(_, v)| v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1))).copied())
            .unwrap_or_default()
    }
}

async fn timed<T, F: std::future::Future<Output = T>>(f: F) -> (T, Duration) {
    let t = Instant::now();
    let out = f.await;
    (out, t.elapsed())
}

/// Times each step on `queries`: query embedding, generation check, lexical candidates,
/// vector candidates (in-memory scan of `slab` on SQLite, HNSW on PostgreSQL), chunk details.
pub async fn measure(
    bench: &Bench,
    kb: &KnowledgeBase,
    slab: &VectorSlab,
    queries: &[String],
    backend: &'static str,
) -> PartsRow {
    let (tenant, store): (_, &Store) = (bench.tenant.id, &bench.state.store);
    let embedder = BuiltinEmbedder::shared().unwrap();
    let postgres = matches!(store.backend(), cairn_store::Backend::Postgres);
    let names = [
        "embed query",
        "kb_generation",
        "kb_lexical (50)",
        if postgres {
            "kb_nearest_pg HNSW (50)"
        } else {
            "scan::top_k (50)"
        },
        "kb_chunks (10 keys)",
    ];
    let mut steps: Vec<Vec<Duration>> = vec![Vec::with_capacity(queries.len()); names.len()];
    let ef = bench.state.kb.config.hnsw_ef_search.max(CANDIDATES as u32);
    for q in queries {
        let t = Instant::now();
        let v = embedder.embed(std::slice::from_ref(q)).unwrap().remove(0);
        steps[0].push(t.elapsed());
        let (_, d) = timed(store.kb_generation(tenant, kb.id)).await;
        steps[1].push(d);
        let terms = text::query_terms(q);
        let filter = SearchFilter::default();
        let (lexical, d) = timed(store.kb_lexical(tenant, kb.id, &terms, &filter, CANDIDATES as i64)).await;
        steps[2].push(d);
        let lexical = lexical.unwrap();
        let keys: Vec<ChunkKey> = if postgres {
            let ann = Some(AnnParams { ef_search: ef });
            let (hits, d) = timed(store.kb_nearest_pg(tenant, kb.id, &v, &filter, CANDIDATES as i64, ann)).await;
            steps[3].push(d);
            hits.unwrap().unwrap_or_default().into_iter().map(|h| h.0).collect()
        } else {
            let t = Instant::now();
            let hits = scan::top_k(&v, &slab.slab, slab.dim, CANDIDATES);
            steps[3].push(t.elapsed());
            hits.into_iter().map(|(row, _)| slab.keys[row]).collect()
        };
        // Hybrid fetches the fused top 10: half from each list is a fair stand-in.
        let mut wanted: Vec<ChunkKey> = keys.iter().take(5).copied().collect();
        for k in lexical.iter().map(|h| h.0) {
            if wanted.len() < 10 && !wanted.contains(&k) {
                wanted.push(k);
            }
        }
        let (_, d) = timed(store.kb_chunks(tenant, kb.id, &wanted)).await;
        steps[4].push(d);
    }
    PartsRow {
        backend,
        chunks: slab.keys.len(),
        steps: names
            .into_iter()
            .zip(steps)
            .map(|(n, mut v)| {
                v.sort_unstable();
                (n, v)
            })
            .collect(),
    }
}

/// HNSW recall@10 against the exact scan of `slab`, at each `ef_search`, as search asks
/// (50 candidates, the first 10 kept). Also how far apart the corpus's vectors are: mean
/// exact score of the 1st and 10th neighbour and of the slab's centroid (the closer they
/// are, the harder approximate search is). Returns the rows and the last query vector.
pub async fn recall(
    bench: &Bench,
    kb: &KnowledgeBase,
    slab: &VectorSlab,
    queries: &[String],
    efs: &[u32],
) -> (Vec<RecallRow>, Vec<f32>) {
    let (tenant, store) = (bench.tenant.id, &bench.state.store);
    let embedder = BuiltinEmbedder::shared().unwrap();
    let rows = slab.keys.len().max(1);
    let mut centroid = vec![0f32; slab.dim];
    for v in slab.slab.chunks_exact(slab.dim) {
        centroid.iter_mut().zip(v).for_each(|(c, x)| *c += x / rows as f32);
    }
    let mut found = vec![0usize; efs.len()];
    let (mut total, mut top1, mut top10, mut mean) = (0usize, 0f64, 0f64, 0f64);
    let mut last = Vec::new();
    for q in queries {
        let v = embedder.embed(std::slice::from_ref(q)).unwrap().remove(0);
        let exact = scan::top_k(&v, &slab.slab, slab.dim, 10);
        top1 += f64::from(exact.first().map_or(0.0, |e| e.1));
        top10 += f64::from(exact.last().map_or(0.0, |e| e.1));
        mean += f64::from(scan::dot(&v, &centroid));
        total += exact.len();
        for (i, &ef) in efs.iter().enumerate() {
            let ann = Some(AnnParams { ef_search: ef });
            let filter = SearchFilter::default();
            let hits = store
                .kb_nearest_pg(tenant, kb.id, &v, &filter, CANDIDATES as i64, ann)
                .await;
            let hits: Vec<ChunkKey> = hits
                .unwrap()
                .unwrap_or_default()
                .into_iter()
                .take(10)
                .map(|h| h.0)
                .collect();
            found[i] += exact.iter().filter(|(row, _)| hits.contains(&slab.keys[*row])).count();
        }
        last = v;
    }
    let n = queries.len().max(1) as f64;
    let rows = efs
        .iter()
        .zip(found)
        .map(|(&ef_search, f)| RecallRow {
            backend: "",
            chunks: slab.keys.len(),
            ef_search,
            queries: queries.len(),
            recall: f as f64 / total.max(1) as f64,
            top1: top1 / n,
            top10: top10 / n,
            centroid: mean / n,
        })
        .collect();
    (rows, last)
}

//! Knowledge base: ingestion throughput, search latency, exact scan against memory bandwidth.
//!
//! `cargo bench -p cairn-server --bench kb` (see docs/performance.md). It prints figures and
//! never asserts timings. Everything runs in one process on the real server state
//! (`Server::build`, not listening): ingestion through `service::kb::ingest_into` (what REST
//! and MCP call: chunk, embed with the built-in model, store, audit, meter), search through
//! `kb::search::search`.
//!
//! Knobs (read with figment like the rest of Cairn's settings): `BENCH_PG_URL` (an admin URL;
//! adds PostgreSQL, in a database created and dropped by the run), `BENCH_KB_SIZES` (chunk
//! counts searched, default `10000,100000`), `BENCH_KB_BACKENDS` (`sqlite`, `postgres` or
//! both; default SQLite, plus PostgreSQL when `BENCH_PG_URL` is set), `BENCH_KB_QUERIES`
//! (measured queries per mode and size, default 200), `BENCH_KB_CONCURRENCY` (concurrent
//! ingests in the concurrent phases, default 4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod backend;
mod corpus;
mod parts;
mod report;
mod scanbench;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::kb::chunk::{self, ChunkConfig, Format};
use cairn_server::config::kb::KbConfig;
use cairn_server::kb::embed::BuiltinEmbedder;
use cairn_server::kb::ingest::IngestInput;
use cairn_server::kb::search::{self, Mode, SearchRequest};
use cairn_server::service::kb::{ingest_into, ingest_many_into, resolve_kb, DEFAULT_KB};
use cairn_store::knowledge::KnowledgeBase;
use tokio::task::JoinSet;

use backend::{Backend, Bench};
use corpus::{Rng, Vocabulary};
use report::{EmbedRow, IngestRow, LoadRow, Report, SearchRow};

const SEED: u64 = 0x00C4_1A2B_3C4D;
const VOCABULARY: usize = 4000;
const WARMUP_QUERIES: usize = 20;
/// Queries the per-step breakdown of search times.
const PARTS_QUERIES: usize = 50;
/// Document sizes: realistic ones for the first size, bigger ones to grow the base.
const SMALL_DOCS: (usize, usize) = (2 * 1024, 8 * 1024);
const BULK_DOCS: (usize, usize) = (16 * 1024, 48 * 1024);
const MODES: [Mode; 3] = [Mode::Hybrid, Mode::Lexical, Mode::Vector];

/// `BENCH_*` knobs, read like the rest of Cairn's settings (figment), never ad hoc.
#[derive(serde::Deserialize, Default)]
struct Knobs {
    pg_url: Option<String>,
    kb_sizes: Option<Levels>,
    kb_backends: Option<String>,
    kb_queries: Option<usize>,
    kb_concurrency: Option<usize>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Levels {
    One(usize),
    Many(String),
}

fn knobs() -> Knobs {
    figment::Figment::from(figment::providers::Env::prefixed("BENCH_"))
        .extract()
        .unwrap_or_default()
}

/// One batch of documents to ingest, with what chunking them yields.
struct Stage {
    label: String,
    docs: Arc<Vec<String>>,
    first_id: usize,
    chunks: usize,
    /// The texts the embedder sees (heading path + chunk), one list per document.
    texts: Vec<Vec<String>>,
}

fn chunk_texts(doc: &str, config: ChunkConfig) -> Vec<String> {
    chunk::chunk(doc, Format::Markdown, config)
        .into_iter()
        .map(|c| {
            if c.heading_path.is_empty() {
                c.text
            } else {
                format!("{}\n{}", c.heading_path.join(" > "), c.text)
            }
        })
        .collect()
}

/// Documents from `rng` until chunking them gives at least `chunks` chunks.
fn documents(vocab: &Vocabulary, rng: &mut Rng, chunks: usize, size: (usize, usize), config: ChunkConfig) -> Stage {
    let (mut docs, mut texts, mut n) = (Vec::new(), Vec::new(), 0);
    while n < chunks {
        let doc = vocab.document(rng, size.0, size.1);
        let t = chunk_texts(&doc, config);
        n += t.len();
        docs.push(doc);
        texts.push(t);
    }
    Stage {
        label: String::new(),
        docs: Arc::new(docs),
        first_id: 0,
        chunks: n,
        texts,
    }
}

/// Documents per batch and batches in flight in the batched phases, as `cairn kb ingest`.
pub const BATCH_DOCS: usize = 64;
pub const BATCHES_IN_FLIGHT: usize = 2;

/// Ingests `docs` through the service layer: `concurrency` tasks of single-document
/// ingests, or (0) batches through `ingest_many_into` like the CLI.
async fn ingest(bench: &Bench, kb: &KnowledgeBase, stage: &Stage, concurrency: usize) -> (usize, usize, usize, f64) {
    let batched = concurrency == 0;
    let (step, tasks_n) = if batched {
        (BATCH_DOCS, BATCHES_IN_FLIGHT)
    } else {
        (1, concurrency)
    };
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..tasks_n {
        let (state, tenant, ctx) = (bench.state.clone(), bench.tenant.clone(), bench.ctx.clone());
        let (kb, docs, next, first_id) = (kb.clone(), stage.docs.clone(), next.clone(), stage.first_id);
        tasks.spawn(async move {
            let (mut n, mut chunks, mut bytes) = (0, 0, 0);
            loop {
                let from = next.fetch_add(step, Ordering::Relaxed);
                let Some(batch) = docs.get(from..(from + step).min(docs.len())).filter(|b| !b.is_empty()) else {
                    break;
                };
                let ids: Vec<String> = (0..batch.len())
                    .map(|i| format!("doc-{}", first_id + from + i))
                    .collect();
                let inputs: Vec<IngestInput<'_>> = batch
                    .iter()
                    .zip(&ids)
                    .map(|(doc, source_id)| IngestInput {
                        source_id,
                        title: None,
                        content_type: "text/markdown",
                        content: doc.as_bytes(),
                        tags: &[],
                    })
                    .collect();
                let done = if batched {
                    ingest_many_into(&state, &tenant, &kb, &ctx, &inputs).await
                } else {
                    let mut one = Vec::new();
                    for input in inputs {
                        one.push(ingest_into(&state, &tenant, &kb, &ctx, input).await);
                    }
                    one
                };
                for (r, (doc, id)) in done.into_iter().zip(batch.iter().zip(&ids)) {
                    let r = r.unwrap_or_else(|e| panic!("ingest of {id} failed: {e:?}"));
                    (n, chunks, bytes) = (n + 1, chunks + r.chunks, bytes + doc.len());
                }
            }
            (n, chunks, bytes)
        });
    }
    let (mut n, mut chunks, mut bytes) = (0, 0, 0);
    while let Some(done) = tasks.join_next().await {
        let (a, b, c) = done.unwrap();
        (n, chunks, bytes) = (n + a, chunks + b, bytes + c);
    }
    (n, chunks, bytes, started.elapsed().as_secs_f64())
}

fn request(query: &str, mode: Mode) -> SearchRequest {
    SearchRequest {
        query: query.to_owned(),
        k: 10,
        mode,
        tags: Vec::new(),
        source_ids: Vec::new(),
    }
}

/// One search; (wall time, hits).
async fn search_once(bench: &Bench, kb: &KnowledgeBase, query: &str, mode: Mode) -> (Duration, usize) {
    let req = request(query, mode);
    let t = Instant::now();
    let found = search::search(&bench.state, bench.tenant.id, kb, &req).await.unwrap();
    (t.elapsed(), found.results.len())
}

struct Plan {
    backends: Vec<Backend>,
    stages: Vec<Stage>,
    queries: Vec<String>,
    concurrency: usize,
}

/// Everything measured on one backend: ingest stage by stage, search after each.
async fn run_backend(backend: &Backend, plan: &Plan, report: &mut Report, keep_slabs: bool) {
    let name = backend.name();
    eprintln!("[{name}] booting");
    let bench = Bench::start(backend).await;
    let kb = resolve_kb(&bench.state, bench.tenant.id, DEFAULT_KB).await.unwrap();
    for (i, stage) in plan.stages.iter().enumerate() {
        // The first stage in thirds: one document at a time, concurrently, in batches.
        let parts: Vec<(Stage, usize)> = if i == 0 {
            let third = stage.docs.len() / 3;
            let part = |range: std::ops::Range<usize>, c: usize, what: &str| {
                let docs: Vec<String> = stage.docs[range.clone()].to_vec();
                let label = format!("{} ({what})", stage.label);
                let stage = Stage {
                    label,
                    chunks: stage.texts[range.clone()].iter().map(Vec::len).sum(),
                    docs: Arc::new(docs),
                    first_id: stage.first_id + range.start,
                    texts: Vec::new(),
                };
                (stage, c)
            };
            vec![
                part(0..third, 1, "first third"),
                part(third..2 * third, plan.concurrency, "second third"),
                part(2 * third..stage.docs.len(), 0, "last third"),
            ]
        } else {
            let s = Stage {
                label: stage.label.clone(),
                docs: stage.docs.clone(),
                first_id: stage.first_id,
                chunks: stage.chunks,
                texts: Vec::new(),
            };
            vec![(s, 0)]
        };
        for (part, concurrency) in &parts {
            eprintln!(
                "[{name}] ingesting {} documents, ~{} chunks",
                part.docs.len(),
                part.chunks
            );
            let (docs, chunks, bytes, secs) = ingest(&bench, &kb, part, *concurrency).await;
            report.ingest.push(IngestRow {
                backend: name,
                phase: part.label.clone(),
                mode: if *concurrency == 0 {
                    "batch".into()
                } else {
                    concurrency.to_string()
                },
                docs,
                chunks,
                bytes,
                secs,
            });
        }
        search_at(&bench, &kb, plan, name, report, keep_slabs).await;
    }
    eprintln!("[{name}] dropping the database");
    bench.stop().await;
}

/// Latency of each mode at the current size, the first (cold) query apart; slab and recall.
async fn search_at(
    bench: &Bench,
    kb: &KnowledgeBase,
    plan: &Plan,
    name: &'static str,
    report: &mut Report,
    keep: bool,
) {
    let (tenant, store) = (bench.tenant.id, &bench.state.store);
    let queries = &plan.queries;
    // The first query after ingest: on SQLite it loads the in-memory slab.
    let (first, _) = search_once(bench, kb, &queries[0], Mode::Vector).await;
    let (second, _) = search_once(bench, kb, &queries[1], Mode::Vector).await;
    // The same load, alone: every vector of the base read from the database.
    let t = Instant::now();
    let slab = store
        .kb_vectors(tenant, kb.id, BuiltinEmbedder::DIMENSION)
        .await
        .unwrap();
    let load = t.elapsed();
    let chunks = slab.keys.len();
    eprintln!("[{name}] searching {chunks} chunks");
    report.loads.push(LoadRow {
        backend: name,
        chunks,
        first,
        second,
        kb_vectors: load,
        slab_bytes: slab.slab.len() * 4,
    });
    let measured = &queries[2..];
    for mode in MODES {
        for q in measured.iter().cycle().skip(measured.len() / 2).take(WARMUP_QUERIES) {
            search_once(bench, kb, q, mode).await;
        }
        let (mut lat, mut hits) = (Vec::with_capacity(measured.len()), 0);
        for q in measured {
            let (d, n) = search_once(bench, kb, q, mode).await;
            lat.push(d);
            hits += n;
        }
        lat.sort_unstable();
        report.search.push(SearchRow {
            backend: name,
            chunks,
            mode,
            lat,
            hits: hits as f64 / measured.len() as f64,
        });
    }
    let sample = &measured[..PARTS_QUERIES.min(measured.len())];
    report.parts.push(parts::measure(bench, kb, &slab, sample, name).await);
    if matches!(store.backend(), cairn_store::Backend::Postgres) {
        // HNSW against the exact scan, with the parameters search uses (50 candidates).
        let ef = bench.state.kb.config.hnsw_ef_search.max(50);
        let (rows, scan_query) = parts::recall(bench, kb, &slab, measured, &[ef, 400]).await;
        for mut row in rows {
            row.backend = name;
            report.recall.push(row);
        }
        let plan_text = store.kb_explain_nearest(tenant, kb.id, &scan_query, 50).await.unwrap();
        report.explain.push((chunks, plan_text.unwrap_or_default()));
    }
    if keep {
        report.slabs.push((chunks, slab.slab));
    }
}

/// Chunking and embedding alone, single thread, on the first stage's documents.
fn embed_only(stage: &Stage, config: ChunkConfig) -> EmbedRow {
    let t = Instant::now();
    let n: usize = stage.docs.iter().map(|d| chunk_texts(d, config).len()).sum();
    let chunk_secs = t.elapsed().as_secs_f64();
    let embedder = BuiltinEmbedder::shared().unwrap();
    let t = Instant::now();
    for texts in &stage.texts {
        std::hint::black_box(embedder.embed(texts).unwrap());
    }
    EmbedRow {
        docs: stage.docs.len(),
        texts: n,
        text_bytes: stage.texts.iter().flatten().map(String::len).sum(),
        doc_bytes: stage.docs.iter().map(String::len).sum(),
        chunk_secs,
        embed_secs: t.elapsed().as_secs_f64(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the long run there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kb bench: skipped (run it with `cargo bench -p cairn-server --bench kb`)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let knobs = knobs();
    let mut sizes: Vec<usize> = match knobs.kb_sizes {
        Some(Levels::One(n)) => vec![n],
        Some(Levels::Many(list)) => list.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        None => vec![10_000, 100_000],
    };
    sizes.retain(|&n| n > 0);
    sizes.sort_unstable();
    sizes.dedup();
    let wanted = knobs.kb_backends.unwrap_or_default().to_lowercase();
    let mut backends = Vec::new();
    if wanted.is_empty() || wanted.contains("sqlite") {
        backends.push(Backend::Sqlite);
    }
    if let Some(url) = knobs
        .pg_url
        .filter(|_| wanted.is_empty() || wanted.contains("postgres"))
    {
        backends.push(Backend::Postgres(url));
    }
    let concurrency = knobs.kb_concurrency.unwrap_or(4).max(1);
    let n_queries = knobs.kb_queries.unwrap_or(200).max(10);

    let config = KbConfig::default();
    let chunking = ChunkConfig {
        target_tokens: config.chunk_tokens,
        overlap_tokens: config.chunk_overlap_tokens,
    };
    eprintln!("generating the corpus");
    let vocab = Vocabulary::load(VOCABULARY);
    let mut rng = Rng::new(SEED);
    let mut stages = Vec::new();
    let (mut have, mut next_id) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let docs = if i == 0 { SMALL_DOCS } else { BULK_DOCS };
        let mut stage = documents(&vocab, &mut rng, size.saturating_sub(have), docs, chunking);
        stage.label = format!("to {size} chunks, {}–{} KB docs", docs.0 / 1024, docs.1 / 1024);
        stage.first_id = next_id;
        (have, next_id) = (have + stage.chunks, next_id + stage.docs.len());
        stages.push(stage);
    }
    let queries: Vec<String> = (0..n_queries + 2).map(|_| vocab.query(&mut rng)).collect();

    let mut report = Report::new(&vocab, &sizes, concurrency, n_queries, WARMUP_QUERIES);
    report.print_header(&backends);
    eprintln!("embedding alone (single thread)");
    if let Some(first) = stages.first() {
        report.embed = Some(embed_only(first, chunking));
    }
    let plan = Plan {
        backends,
        stages,
        queries,
        concurrency,
    };
    for (i, backend) in plan.backends.iter().enumerate() {
        run_backend(backend, &plan, &mut report, i == 0).await;
    }

    eprintln!("exact scan against memory bandwidth");
    let embedder = BuiltinEmbedder::shared().unwrap();
    let scan_queries = embedder.embed(&plan.queries[..64.min(plan.queries.len())]).unwrap();
    let slabs = std::mem::take(&mut report.slabs);
    for (_, slab) in &slabs {
        for k in [10, 50] {
            let row = scanbench::measure(
                slab,
                BuiltinEmbedder::DIMENSION,
                &scan_queries,
                k,
                Duration::from_secs(3),
            );
            report.scan.push(row);
        }
    }
    report.print();
}

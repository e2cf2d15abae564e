//! What the run measured, printed as one table per section and a Markdown summary.

use std::time::Duration;

use cairn_server::kb::search::Mode;

use crate::backend::Backend;
use crate::corpus::Vocabulary;
use crate::parts::PartsRow;
use crate::scanbench::ScanRow;

/// Chunking and embedding alone, single thread.
pub struct EmbedRow {
    pub docs: usize,
    pub texts: usize,
    pub text_bytes: usize,
    pub doc_bytes: usize,
    pub chunk_secs: f64,
    pub embed_secs: f64,
}

pub struct IngestRow {
    pub backend: &'static str,
    pub phase: String,
    /// How documents were sent: "1", "4" (concurrent single ingests) or "batch" (CLI path).
    pub mode: String,
    pub docs: usize,
    pub chunks: usize,
    pub bytes: usize,
    pub secs: f64,
}

pub struct LoadRow {
    pub backend: &'static str,
    pub chunks: usize,
    /// The first vector search after ingest (SQLite: includes loading the slab).
    pub first: Duration,
    pub second: Duration,
    /// `Store::kb_vectors` alone: what loading the slab reads.
    pub kb_vectors: Duration,
    pub slab_bytes: usize,
}

pub struct SearchRow {
    pub backend: &'static str,
    pub chunks: usize,
    pub mode: Mode,
    /// Sorted.
    pub lat: Vec<Duration>,
    pub hits: f64,
}

impl SearchRow {
    fn pct(&self, q: f64) -> Duration {
        let i = ((self.lat.len() as f64 * q) as usize).min(self.lat.len().saturating_sub(1));
        self.lat.get(i).copied().unwrap_or_default()
    }
    fn mean(&self) -> Duration {
        self.lat.iter().sum::<Duration>() / u32::try_from(self.lat.len().max(1)).unwrap_or(1)
    }
}

pub struct RecallRow {
    pub backend: &'static str,
    pub chunks: usize,
    pub ef_search: u32,
    pub queries: usize,
    pub recall: f64,
    /// Mean exact cosine of the 1st and the 10th neighbour, and of the slab's centroid.
    pub top1: f64,
    pub top10: f64,
    pub centroid: f64,
}

pub struct Report {
    vocab: (usize, String),
    sizes: Vec<usize>,
    concurrency: usize,
    queries: usize,
    warmup: usize,
    backends: Vec<&'static str>,
    pub embed: Option<EmbedRow>,
    pub ingest: Vec<IngestRow>,
    pub loads: Vec<LoadRow>,
    pub search: Vec<SearchRow>,
    pub recall: Vec<RecallRow>,
    pub parts: Vec<PartsRow>,
    /// (chunks, EXPLAIN) of the vector query on PostgreSQL.
    pub explain: Vec<(usize, String)>,
    pub scan: Vec<ScanRow>,
    /// Vectors of the first backend at each size, for the scan section.
    pub slabs: Vec<(usize, Vec<f32>)>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Hybrid => "hybrid",
        Mode::Lexical => "lexical",
        Mode::Vector => "vector",
    }
}

fn size_name(n: usize) -> String {
    if n >= 1000 {
        format!("{:.0}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `'[0.1,0.2,…]'::vector` → `'[…]'::vector`.
fn elide_vector(line: &str) -> String {
    match (line.find("'["), line.find("]'")) {
        (Some(a), Some(b)) if b > a => format!("{}'[…]'{}", &line[..a], &line[b + 2..]),
        _ => line.to_owned(),
    }
}

fn section(title: &str) {
    println!();
    println!("{title}");
    println!("{}", "-".repeat(title.chars().count()));
}

impl Report {
    pub fn new(vocab: &Vocabulary, sizes: &[usize], concurrency: usize, queries: usize, warmup: usize) -> Self {
        let sample: Vec<String> = vocab.words.iter().take(12).cloned().collect();
        Self {
            vocab: (vocab.words.len(), sample.join(", ")),
            sizes: sizes.to_vec(),
            concurrency,
            queries,
            warmup,
            backends: Vec::new(),
            embed: None,
            ingest: Vec::new(),
            loads: Vec::new(),
            search: Vec::new(),
            recall: Vec::new(),
            parts: Vec::new(),
            explain: Vec::new(),
            scan: Vec::new(),
            slabs: Vec::new(),
        }
    }

    pub fn print_header(&mut self, backends: &[Backend]) {
        self.backends = backends.iter().map(Backend::name).collect();
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!("Cairn knowledge-base benchmark (built-in model potion-base-8M, 256 dimensions)");
        println!("machine: nproc {nproc}, CPU {}", cpu_model());
        println!("backends: {}", self.backends.join(", "));
        println!(
            "corpus: synthetic Markdown from a seeded PRNG; {} real English words (the model's WordPiece \
             vocabulary, commonest first: {}, …), Zipf-distributed, 12 % inflected;",
            self.vocab.0, self.vocab.1
        );
        println!(
            "        64 topics of 48 content words: 30 % of a document's running text and 60 % of its heading \
             and query words come from its topic"
        );
        println!(
            "sizes: {} chunks; queries: 2–6 words from the vocabulary, {} warm-up + {} measured per mode \
             and size, one at a time",
            self.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            self.warmup,
            self.queries
        );
    }

    pub fn print(&self) {
        self.print_ingest();
        self.print_search();
        self.print_scan();
        self.print_explain();
        self.print_summary();
    }

    fn print_ingest(&self) {
        section("1. Ingestion end to end (service::kb::ingest_into: extract, chunk, embed, store, audit, meter)");
        println!(
            "The first size is ingested from 2–8 KB documents: a third one document at a time (REST/MCP), a \
             third from {} concurrent tasks, a third in batches of {} documents, {} batches in flight \
             (service::kb::ingest_many_into, what `cairn kb ingest` does);",
            self.concurrency,
            crate::BATCH_DOCS,
            crate::BATCHES_IN_FLIGHT
        );
        println!(
            "larger sizes are reached with 16–48 KB documents in batches. `mode` is the number of concurrent \
             single-document ingests or `batch`."
        );
        println!(
            "{:<11} {:<44} {:>5} {:>6} {:>7} {:>7} {:>7} {:>9} {:>6} {:>7}",
            "backend", "phase", "mode", "docs", "chunks", "MB", "secs", "chunks/s", "MB/s", "docs/s"
        );
        for r in &self.ingest {
            let mb = r.bytes as f64 / 1e6;
            println!(
                "{:<11} {:<44} {:>5} {:>6} {:>7} {:>7.1} {:>7.2} {:>9.0} {:>6.2} {:>7.0}",
                r.backend,
                r.phase,
                r.mode,
                r.docs,
                r.chunks,
                mb,
                r.secs,
                r.chunks as f64 / r.secs,
                mb / r.secs,
                r.docs as f64 / r.secs
            );
        }
        if let Some(e) = &self.embed {
            println!();
            println!(
                "chunking alone (cairn_core::kb::chunk, 1 thread): {} docs, {} chunks in {:.3} s = {:.0} chunks/s, \
                 {:.1} MB/s",
                e.docs,
                e.texts,
                e.chunk_secs,
                e.texts as f64 / e.chunk_secs,
                e.doc_bytes as f64 / 1e6 / e.chunk_secs
            );
            println!(
                "embedding alone (BuiltinEmbedder::embed, 1 thread, one call per document as ingest makes): \
                 {} texts, {:.1} MB in {:.2} s = {:.0} texts/s, {:.2} MB/s",
                e.texts,
                e.text_bytes as f64 / 1e6,
                e.embed_secs,
                e.texts as f64 / e.embed_secs,
                e.text_bytes as f64 / 1e6 / e.embed_secs
            );
            let embed_rate = e.texts as f64 / e.embed_secs;
            for r in &self.ingest {
                let rate = r.chunks as f64 / r.secs;
                println!(
                    "  {:<11} {:<44} {:>5}: ingest/embed-only = {:.2}  (mode 1: ≈ share of ingest time in the model)",
                    r.backend,
                    r.phase,
                    r.mode,
                    rate / embed_rate
                );
            }
        }
        println!("target (brief §7 / task): ≥ 5 000 chunks/s on SQLite");
    }

    fn print_search(&self) {
        section("2. Search latency (kb::search::search, k = 10, one query at a time, wall clock per query)");
        println!(
            "{:<11} {:>7} {:>14} {:>15} {:>17} {:>8}",
            "backend", "chunks", "1st query ms", "2nd query ms", "kb_vectors ms", "slab MB"
        );
        for l in &self.loads {
            println!(
                "{:<11} {:>7} {:>14.1} {:>15.1} {:>17.1} {:>8.1}",
                l.backend,
                l.chunks,
                ms(l.first),
                ms(l.second),
                ms(l.kb_vectors),
                l.slab_bytes as f64 / 1e6
            );
        }
        println!(
            "(1st = first vector query after ingest; on SQLite it loads the in-memory slab, and is excluded \
             from the percentiles below; kb_vectors = that load alone)"
        );
        println!();
        println!(
            "{:<11} {:>7} {:<8} {:>8} {:>8} {:>8} {:>8} {:>6}",
            "backend", "chunks", "mode", "p50 ms", "p99 ms", "mean ms", "max ms", "hits"
        );
        for r in &self.search {
            println!(
                "{:<11} {:>7} {:<8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6.1}",
                r.backend,
                r.chunks,
                mode_name(r.mode),
                ms(r.pct(0.50)),
                ms(r.pct(0.99)),
                ms(r.mean()),
                ms(r.lat.last().copied().unwrap_or_default()),
                r.hits
            );
        }
        self.print_search_ratios();
        self.print_parts();
        if !self.recall.is_empty() {
            println!();
            for r in &self.recall {
                println!(
                    "{} {} chunks: HNSW recall@10 against the exact scan = {:.3} ({} queries, 50 candidates, \
                     ef_search {}); mean exact cosine of neighbour 1 {:.3}, neighbour 10 {:.3}, centroid {:.3}",
                    r.backend, r.chunks, r.recall, r.queries, r.ef_search, r.top1, r.top10, r.centroid
                );
            }
        }
    }

    fn print_parts(&self) {
        if self.parts.is_empty() {
            return;
        }
        println!();
        println!(
            "Where the time goes: each step of a search timed alone (same public APIs, first {} measured \
             queries; k = 10, 50 candidates per list):",
            self.parts
                .first()
                .map_or(0, |p| p.steps.first().map_or(0, |s| s.1.len()))
        );
        println!(
            "{:<11} {:>7} {:<24} {:>8} {:>8}",
            "backend", "chunks", "step", "p50 ms", "p99 ms"
        );
        for p in &self.parts {
            for (i, (name, _)) in p.steps.iter().enumerate() {
                println!(
                    "{:<11} {:>7} {:<24} {:>8.3} {:>8.3}",
                    p.backend,
                    p.chunks,
                    name,
                    ms(p.p50(i)),
                    ms(p.p99(i))
                );
            }
        }
    }

    fn row(&self, backend: &str, size_index: usize, mode: Mode) -> Option<&SearchRow> {
        let sizes: Vec<usize> = self.sizes_of(backend);
        let chunks = *sizes.get(size_index)?;
        self.search
            .iter()
            .find(|r| r.backend == backend && r.chunks == chunks && r.mode == mode)
    }

    fn sizes_of(&self, backend: &str) -> Vec<usize> {
        self.loads
            .iter()
            .filter(|l| l.backend == backend)
            .map(|l| l.chunks)
            .collect()
    }

    fn print_search_ratios(&self) {
        println!();
        let n = self.sizes.len();
        for mode in [Mode::Hybrid, Mode::Lexical, Mode::Vector] {
            for &b in &self.backends {
                if let (Some(small), Some(big)) = (self.row(b, 0, mode), self.row(b, n.saturating_sub(1), mode)) {
                    if n > 1 {
                        println!(
                            "{b:<11} {:<8} p50 at {} / at {} = {:.2}",
                            mode_name(mode),
                            size_name(big.chunks),
                            size_name(small.chunks),
                            ms(big.pct(0.5)) / ms(small.pct(0.5))
                        );
                    }
                }
            }
            if let [a, b] = self.backends[..] {
                for i in 0..n {
                    if let (Some(x), Some(y)) = (self.row(a, i, mode), self.row(b, i, mode)) {
                        println!(
                            "{:<8} at {}: p50 {b} / {a} = {:.2}",
                            mode_name(mode),
                            size_name(x.chunks),
                            ms(y.pct(0.5)) / ms(x.pct(0.5))
                        );
                    }
                }
            }
        }
    }

    fn print_scan(&self) {
        section("3. Exact scan (cairn_core::kb::scan::top_k) against memory bandwidth, one thread");
        println!(
            "Each run reads the whole slab once. bound = the faster of two plain sums over the same slab (8 and \
             32 accumulators), timed alternately with the scan; medians."
        );
        println!(
            "{:>7} {:>4} {:>3} {:>5} {:>9} {:>9} {:>10} {:>11} {:>11} {:>12}",
            "rows", "dim", "k", "runs", "scan ms", "scan GB/s", "sum8 GB/s", "sum32 GB/s", "bound ms", "scan/bound"
        );
        for r in &self.scan {
            println!(
                "{:>7} {:>4} {:>3} {:>5} {:>9.3} {:>9.1} {:>10.1} {:>11.1} {:>11.3} {:>12.2}",
                r.rows,
                r.dim,
                r.k,
                r.runs,
                ms(r.scan),
                r.gbs(r.scan),
                r.gbs(r.sum8),
                r.gbs(r.sum32),
                ms(r.bound()),
                r.ratio()
            );
        }
        println!("target: scan/bound ≤ 1.3");
    }

    fn print_explain(&self) {
        if self.explain.is_empty() {
            return;
        }
        section("4. PostgreSQL: EXPLAIN of the vector query (Store::kb_explain_nearest, 50 candidates)");
        for (chunks, plan) in &self.explain {
            println!("at {chunks} chunks (query vector elided):");
            for line in plan.lines() {
                println!("    {}", elide_vector(line));
            }
            let uses = plan.contains("kb_chunks_hnsw");
            println!(
                "HNSW index used at {chunks} chunks: {}",
                if uses { "yes" } else { "NO" }
            );
        }
    }

    fn print_summary(&self) {
        section("Summary (Markdown, for docs/performance.md)");
        let mut lines: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |label: String, cell: &dyn Fn(&str) -> Option<String>| {
            let cells: Vec<String> = self
                .backends
                .iter()
                .map(|b| cell(b).unwrap_or_else(|| "–".into()))
                .collect();
            lines.push((label, cells));
        };
        let phases: Vec<(String, String)> = {
            let mut p: Vec<(String, String)> = Vec::new();
            for r in &self.ingest {
                if !p.iter().any(|(l, _)| *l == r.phase) {
                    p.push((r.phase.clone(), r.mode.clone()));
                }
            }
            p
        };
        for (phase, c) in &phases {
            add(format!("ingest chunks/s, {phase}, mode {c}"), &|b| {
                let r = self.ingest.iter().find(|r| r.backend == b && r.phase == *phase)?;
                Some(format!(
                    "{:.0} ({:.2} MB/s)",
                    r.chunks as f64 / r.secs,
                    r.bytes as f64 / 1e6 / r.secs
                ))
            });
        }
        if let Some(e) = &self.embed {
            let v = format!("{:.0} (1 thread)", e.texts as f64 / e.embed_secs);
            add("embed-only texts/s".into(), &|_| Some(v.clone()));
        }
        let n = self.sizes.len();
        for i in 0..n {
            for mode in [Mode::Hybrid, Mode::Lexical, Mode::Vector] {
                let label = self
                    .backends
                    .iter()
                    .find_map(|b| self.row(b, i, mode))
                    .map(|r| format!("search {} at {} chunks, p50 / p99 ms", mode_name(mode), r.chunks));
                let Some(label) = label else { continue };
                add(label, &|b| {
                    let r = self.row(b, i, mode)?;
                    Some(format!("{:.2} / {:.2}", ms(r.pct(0.5)), ms(r.pct(0.99))))
                });
            }
            add(format!("first vector query after ingest, size #{} ms", i + 1), &|b| {
                let chunks = *self.sizes_of(b).get(i)?;
                let l = self.loads.iter().find(|l| l.backend == b && l.chunks == chunks)?;
                Some(format!("{:.1} ({} chunks)", ms(l.first), l.chunks))
            });
        }
        for r in &self.recall {
            add(
                format!("HNSW recall@10 at {} chunks, ef_search {}", r.chunks, r.ef_search),
                &|b| (b == r.backend).then(|| format!("{:.3}", r.recall)),
            );
        }
        println!("| figure | {} |", self.backends.join(" | "));
        println!("|---|{}", "---|".repeat(self.backends.len()));
        for (label, cells) in lines {
            println!("| {label} | {} |", cells.join(" | "));
        }
        if !self.scan.is_empty() {
            println!();
            println!("| exact scan, dim 256 | scan GB/s | bandwidth bound GB/s | scan / bound |");
            println!("|---|---|---|---|");
            for r in &self.scan {
                println!(
                    "| {} rows, k = {} | {:.1} | {:.1} | {:.2} |",
                    r.rows,
                    r.k,
                    r.gbs(r.scan),
                    r.gbs(r.bound()),
                    r.ratio()
                );
            }
        }
    }
}

//! Knowledge-base settings (`[kb]` in cairn.toml, `CAIRN_KB__<KEY>` in the environment).

use serde::{Deserialize, Serialize};

/// Which embedder new knowledge bases use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderChoice {
    /// potion-base-8M compiled into the binary (default; no download, no service).
    Builtin,
    /// An OpenAI-compatible `/v1/embeddings` endpoint (`kb.http`).
    Http,
    /// No vectors: lexical search only.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KbConfig {
    pub embedder: EmbedderChoice,
    /// The OpenAI-compatible endpoint, when `embedder = "http"`.
    pub http: Option<crate::kb::http_embed::HttpEmbedderConfig>,
    /// Largest document accepted, in bytes (after decoding).
    pub max_document_bytes: usize,
    /// Target chunk size and overlap, in estimated tokens.
    pub chunk_tokens: usize,
    pub chunk_overlap_tokens: usize,
    /// Hybrid search: reciprocal-rank fusion constant and the weight of the vector list
    /// (the lexical list weighs 1). Defaults chosen on the development half of the
    /// retrieval evaluation; see docs/knowledge-base.md.
    pub rrf_k: f64,
    pub vector_weight: f64,
    /// `hnsw.ef_search` for PostgreSQL queries (recall against latency).
    pub hnsw_ef_search: u32,
    /// `cairn kb maintain` reindexes when the recall probe falls below this.
    pub min_recall: f64,
    /// ... or when this share of the chunk table's rows are dead (PostgreSQL).
    pub max_dead_ratio: f64,
    /// Queries the recall probe samples.
    pub recall_probe_queries: usize,
    /// How often the maintenance job runs on its own (0: never).
    pub maintain_interval_hours: u32,
    /// Memory for the in-memory vector indexes of SQLite deployments (least recently
    /// used bases are dropped and reloaded on their next search).
    pub vector_cache_bytes: u64,
    /// The memory and disk the capacity report projects against.
    pub capacity_memory_bytes: u64,
    pub capacity_disk_bytes: u64,
    /// How documents are turned into text (`[kb.extract]`).
    pub extract: ExtractConfig,
}

/// Where HTML (and later PDF, Office) extraction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractIsolation {
    /// Worker processes (`cairn extract-worker`): a parser crash fails one document.
    Process,
    /// A thread of the server with its own stack: the limits hold, a crash does not.
    Thread,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractConfig {
    pub isolation: ExtractIsolation,
    /// Worker processes (and documents extracted at once).
    pub workers: usize,
    /// A document still in a worker after this is killed with it.
    pub timeout_secs: u64,
    /// Memory ceiling of each worker process (its data segment), in MiB.
    pub memory_mb: u64,
    /// Deepest HTML element nesting accepted.
    pub max_depth: usize,
    /// Most nodes in one HTML document's tree.
    pub max_nodes: usize,
    /// The binary started as the worker (default: this executable).
    pub worker_exe: Option<std::path::PathBuf>,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            isolation: ExtractIsolation::Process,
            workers: 2,
            timeout_secs: 30,
            memory_mb: 1024,
            max_depth: 256,
            max_nodes: 2_000_000,
            worker_exe: None,
        }
    }
}

impl ExtractConfig {
    fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.workers) || !(1..=3600).contains(&self.timeout_secs) {
            return Err("kb.extract.workers: 1–64; kb.extract.timeout_secs: 1–3600".into());
        }
        if !(128..=1024 * 1024).contains(&self.memory_mb) {
            return Err("kb.extract.memory_mb: 128 MiB to 1 TiB".into());
        }
        // Beyond ~4 000 levels the converter's recursion would need more than the
        // worker's 64 MiB stack in an unoptimised build.
        if !(16..=4096).contains(&self.max_depth) || !(1000..=100_000_000).contains(&self.max_nodes) {
            return Err("kb.extract.max_depth: 16–4096; kb.extract.max_nodes: 1 000–100 000 000".into());
        }
        Ok(())
    }
}

impl Default for KbConfig {
    fn default() -> Self {
        Self {
            embedder: EmbedderChoice::Builtin,
            http: None,
            max_document_bytes: 10 * 1024 * 1024,
            chunk_tokens: 200,
            chunk_overlap_tokens: 30,
            rrf_k: 2.0,
            vector_weight: 0.3,
            hnsw_ef_search: 200,
            min_recall: 0.95,
            max_dead_ratio: 0.2,
            recall_probe_queries: 50,
            maintain_interval_hours: 24,
            vector_cache_bytes: 1024 * 1024 * 1024,
            capacity_memory_bytes: 8 * 1024 * 1024 * 1024,
            capacity_disk_bytes: 100 * 1024 * 1024 * 1024,
            extract: ExtractConfig::default(),
        }
    }
}

impl KbConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_document_bytes == 0 || self.max_document_bytes > 256 * 1024 * 1024 {
            return Err("kb.max_document_bytes: 1 byte to 256 MiB".into());
        }
        if !(16..=8192).contains(&self.chunk_tokens) || self.chunk_overlap_tokens >= self.chunk_tokens {
            return Err("kb.chunk_tokens: 16–8192, and more than kb.chunk_overlap_tokens".into());
        }
        if !(0.0..=1.0).contains(&self.min_recall) || !(0.0..=1.0).contains(&self.max_dead_ratio) {
            return Err("kb.min_recall and kb.max_dead_ratio: between 0 and 1".into());
        }
        if !(0.0..=1000.0).contains(&self.rrf_k) || !(0.0..=10.0).contains(&self.vector_weight) {
            return Err("kb.rrf_k: 0–1000; kb.vector_weight: 0–10".into());
        }
        if self.embedder == EmbedderChoice::Http && self.http.is_none() {
            return Err("kb.embedder = \"http\" needs [kb.http] (url, model, dimension)".into());
        }
        self.extract.validate()
    }
}

//! Hybrid search: lexical (FTS5 / tsvector) and vector (exact in-memory scan on SQLite,
//! pgvector HNSW on PostgreSQL) candidates fused by reciprocal rank; hits carry what a
//! citation needs.

use std::collections::HashSet;
use std::time::Instant;

use cairn_core::ids::{DocumentId, TenantId};
use cairn_core::kb::{fuse, scan, text};
use cairn_store::kb_search::{AnnParams, ChunkHit, ChunkKey, SearchFilter, INDEXED_DIMENSIONS};
use cairn_store::knowledge::KnowledgeBase;
use serde::{Deserialize, Serialize};

use super::ingest::{chunk_row, embed_blocking, SealedChunk};
use super::KbError;
use crate::crypto::Slot;
use crate::state::AppState;

pub const MAX_K: usize = 100;
/// PostgreSQL bases with fewer chunks than this skip the HNSW index (exact cosine order).
pub const EXACT_BELOW_CHUNKS: i64 = 5_000;
const MAX_QUERY_CHARS: usize = 2000;
const SNIPPET_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Hybrid,
    Lexical,
    Vector,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default)]
    pub mode: Mode,
    /// Only documents carrying every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only documents with one of these source ids.
    #[serde(default)]
    pub source_ids: Vec<String>,
}

fn default_k() -> usize {
    10
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub document_id: DocumentId,
    pub source_id: String,
    pub title: String,
    pub heading_path: Vec<String>,
    /// Byte offsets of the chunk in the document's stored text.
    pub start: i32,
    pub end: i32,
    pub snippet: String,
    pub text: String,
    pub score: f64,
}

#[derive(Debug, Serialize)]
pub struct SearchResponse {
    pub kb: String,
    pub mode: Mode,
    pub results: Vec<SearchHit>,
}

impl SearchRequest {
    fn check(&self) -> Result<SearchFilter, KbError> {
        if !(1..=MAX_K).contains(&self.k) {
            return Err(KbError::Invalid("k", format!("k: 1 to {MAX_K}")));
        }
        let chars = self.query.chars().count();
        if self.query.trim().is_empty() || chars > MAX_QUERY_CHARS {
            return Err(KbError::Invalid(
                "query",
                format!("query: 1 to {MAX_QUERY_CHARS} characters"),
            ));
        }
        if self.tags.len() > 16 || self.source_ids.len() > 100 {
            return Err(KbError::Invalid(
                "filters",
                "filters: at most 16 tags and 100 source ids".into(),
            ));
        }
        Ok(SearchFilter {
            tags: self.tags.clone(),
            source_ids: self.source_ids.clone(),
        })
    }
}

/// Candidates taken from each list before fusion.
fn candidates(k: usize) -> usize {
    (k * 5).clamp(50, 500)
}

pub async fn search(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    req: &SearchRequest,
) -> Result<SearchResponse, KbError> {
    let filter = req.check()?;
    let started = Instant::now();
    let terms = text::query_terms(&req.query);
    let embedder = app.kb.embedder_for(kb)?;
    if req.mode == Mode::Vector && embedder.is_none() {
        return Err(KbError::Invalid(
            "mode",
            "this knowledge base has no embedding model; use lexical".into(),
        ));
    }
    let n = candidates(req.k);
    let lexical = if req.mode == Mode::Vector {
        Vec::new()
    } else {
        app.store.kb_lexical(tenant, kb.id, &terms, &filter, n as i64).await?
    };
    let vector = match (&embedder, req.mode) {
        (Some(e), Mode::Hybrid | Mode::Vector) => {
            let q = embed_blocking(e.clone(), vec![req.query.clone()]).await?;
            let q = q.into_iter().next().unwrap_or_default();
            nearest(app, tenant, kb, &q, &filter, n).await?
        }
        _ => Vec::new(),
    };
    let ranked: Vec<(ChunkKey, f64)> = match req.mode {
        Mode::Lexical => lexical.into_iter().take(req.k).collect(),
        Mode::Vector => vector.into_iter().take(req.k).map(|(c, s)| (c, f64::from(s))).collect(),
        Mode::Hybrid => {
            let l: Vec<ChunkKey> = lexical.iter().map(|h| h.0).collect();
            let v: Vec<ChunkKey> = vector.iter().map(|h| h.0).collect();
            let cfg = &app.kb.config;
            fuse::reciprocal_rank(&[(&l, 1.0), (&v, cfg.vector_weight)], cfg.rrf_k, req.k)
        }
    };
    let keys: Vec<ChunkKey> = ranked.iter().map(|r| r.0).collect();
    let details = app.store.kb_chunks(tenant, kb.id, &keys).await?;
    let mut results = Vec::with_capacity(details.len());
    for (hit, (_, score)) in details.into_iter().zip(ranked) {
        results.push(to_hit(app, tenant, hit, score, &terms).await?);
    }
    let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    app.kb.record_latency(tenant, kb.id, micros);
    Ok(SearchResponse {
        kb: kb.name.clone(),
        mode: req.mode,
        results,
    })
}

/// Vector candidates: pgvector's index on PostgreSQL, the exact in-memory scan on
/// SQLite.
pub(crate) async fn nearest(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    query: &[f32],
    filter: &SearchFilter,
    n: usize,
) -> Result<Vec<(ChunkKey, f32)>, KbError> {
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    // A small base is searched exactly on PostgreSQL too: the scan costs a few
    // milliseconds there, and HNSW's approximate graph can miss an outlier among many
    // near-identical chunks (seen once with a folder of generated pages).
    let small = app.store.backend() == cairn_store::Backend::Postgres
        && app.store.kb_chunks_upto(tenant, kb.id, EXACT_BELOW_CHUNKS).await? < EXACT_BELOW_CHUNKS;
    let indexed = INDEXED_DIMENSIONS.contains(&query.len()) && !small;
    let ann = indexed.then_some(AnnParams {
        ef_search: app.kb.config.hnsw_ef_search.max(u32::try_from(n).unwrap_or(u32::MAX)),
    });
    if let Some(hits) = app
        .store
        .kb_nearest_pg(tenant, kb.id, query, filter, limit, ann)
        .await?
    {
        // The iterative scan stops at hnsw.max_scan_tuples: a small tenant in a big
        // table may come back short; the exact query is cheap for exactly those.
        if hits.len() < n && ann.is_some() {
            let exact = app
                .store
                .kb_nearest_pg(tenant, kb.id, query, filter, limit, None)
                .await?;
            return Ok(exact.unwrap_or(hits));
        }
        return Ok(hits);
    }
    let generation = app.store.kb_generation(tenant, kb.id).await?;
    let slab = app
        .kb
        .index
        .get(&app.store, tenant, kb.id, query.len(), generation)
        .await?;
    let allowed: Option<HashSet<DocumentId>> = if filter.is_empty() {
        None
    } else {
        Some(
            app.store
                .kb_filtered_documents(tenant, kb.id, filter)
                .await?
                .into_iter()
                .collect(),
        )
    };
    let hits = match allowed {
        None => scan::top_k(query, &slab.slab, slab.dim, n),
        Some(allowed) => {
            let rows: Vec<usize> = (0..slab.keys.len())
                .filter(|&i| allowed.contains(&slab.keys[i].document_id))
                .collect();
            let mut sub = Vec::with_capacity(rows.len() * slab.dim);
            for &i in &rows {
                sub.extend_from_slice(&slab.slab[i * slab.dim..(i + 1) * slab.dim]);
            }
            scan::top_k(query, &sub, slab.dim, n)
                .into_iter()
                .map(|(r, s)| (rows[r], s))
                .collect()
        }
    };
    Ok(hits.into_iter().map(|(row, s)| (slab.keys[row], s)).collect())
}

async fn to_hit(
    app: &AppState,
    tenant: TenantId,
    hit: ChunkHit,
    score: f64,
    terms: &[String],
) -> Result<SearchHit, KbError> {
    let mut heading_path = hit.heading_path;
    let body = match (hit.text, &hit.text_sealed) {
        (Some(t), _) => t,
        (None, Some(sealed)) => {
            let row = chunk_row(hit.key.document_id, usize::try_from(hit.key.ord).unwrap_or(0));
            let slot = Slot {
                table: "kb_chunks",
                column: "text_sealed",
                row: &row,
            };
            let clear = app.keyring.decrypt(&app.store, tenant, slot, sealed).await?;
            let chunk: SealedChunk =
                serde_json::from_slice(&clear).map_err(|e| KbError::Corrupt(format!("sealed chunk: {e}")))?;
            heading_path = chunk.heading_path;
            chunk.text
        }
        (None, None) => String::new(),
    };
    Ok(SearchHit {
        document_id: hit.key.document_id,
        source_id: hit.source_id,
        title: hit.title,
        heading_path,
        start: hit.start,
        end: hit.end,
        snippet: text::snippet(&body, terms, SNIPPET_CHARS),
        text: body,
        score,
    })
}

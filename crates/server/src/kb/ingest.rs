//! Ingestion: validate, extract, chunk, embed, (seal), store — the document and all its
//! chunks in one transaction, so a failure at any step leaves nothing behind.

use std::sync::Arc;

use cairn_core::ids::{DocumentId, TenantId};
use cairn_core::kb::chunk::{self, ChunkConfig};
use cairn_store::knowledge::{Document, KnowledgeBase, NewChunk, NewDocument, PutOutcome};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::embed::Embedder;
use super::extract::{self, ContentType};
use super::KbError;
use crate::crypto::Slot;
use crate::state::AppState;

/// One document as submitted (REST JSON or upload, CLI file, MCP tool).
pub struct IngestInput<'a> {
    pub source_id: &'a str,
    pub title: Option<&'a str>,
    pub content_type: &'a str,
    pub content: &'a [u8],
    pub tags: &'a [String],
}

#[derive(Debug, Serialize)]
pub struct IngestResult {
    pub document: Document,
    pub outcome: PutOutcome,
    pub chunks: usize,
}

fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), KbError> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(KbError::Invalid(
            field,
            format!("{field}: 1–{max} characters, no control characters"),
        ));
    }
    Ok(())
}

/// The input checked; returns its type and its text, not yet extracted.
fn check<'a>(input: &IngestInput<'a>, max_bytes: usize) -> Result<(ContentType, &'a str), KbError> {
    check_name("source_id", input.source_id, 512)?;
    if let Some(t) = input.title {
        check_name("title", t, 500)?;
    }
    if input.tags.len() > 32 {
        return Err(KbError::Invalid("tags", "tags: at most 32".into()));
    }
    for tag in input.tags {
        check_name("tags", tag, 64)?;
    }
    let ty = ContentType::parse(input.content_type)?;
    if input.content.len() > max_bytes {
        return Err(KbError::TooLarge(input.content.len(), max_bytes));
    }
    let raw = std::str::from_utf8(input.content).map_err(|_| KbError::NotUtf8)?;
    // PostgreSQL text cannot hold NUL; no real document needs one.
    if raw.contains('\0') {
        return Err(KbError::NotUtf8);
    }
    if raw.trim().is_empty() {
        return Err(KbError::Empty);
    }
    Ok((ty, raw))
}

fn content_hash(ty: ContentType, title: &str, tags: &[String], content: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [ty.as_str().as_bytes(), title.as_bytes(), tags.join("\u{1f}").as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(content);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Embeds on a blocking thread: model inference must not stall the async executor.
pub async fn embed_blocking(embedder: Arc<dyn Embedder>, texts: Vec<String>) -> Result<Vec<Vec<f32>>, KbError> {
    tokio::task::spawn_blocking(move || embedder.embed(&texts))
        .await
        .map_err(|e| KbError::Embed(super::embed::EmbedError::Failed(e.to_string())))?
        .map_err(KbError::from)
}

/// What an encrypted base seals per chunk.
#[derive(Serialize, serde::Deserialize)]
pub struct SealedChunk {
    pub heading_path: Vec<String>,
    pub text: String,
}

/// Chunk-row name in the associated data of sealed chunk text (the `row_key` column).
pub fn chunk_row(doc: DocumentId, ord: usize) -> String {
    format!("{}:{ord}", doc.as_uuid().hyphenated())
}

/// A document checked, extracted and chunked, before embedding.
struct Fresh {
    id: DocumentId,
    title: String,
    ty: ContentType,
    hash: String,
    text: String,
    pieces: Vec<chunk::Chunk>,
}

enum Prepared {
    Unchanged(Document),
    Fresh(Fresh),
}

/// Everything that can be decided before the model runs: bad input fails here, and an
/// unchanged document is answered without embedding anything.
async fn prepare(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    input: &IngestInput<'_>,
) -> Result<Prepared, KbError> {
    let cfg = &app.kb.config;
    let (ty, raw) = check(input, cfg.max_document_bytes)?;
    let text = app.kb.extractor.extract(raw, ty).await?;
    let title = match input.title {
        Some(t) => t.to_owned(),
        None => Some(extract::guess_title(&text))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| input.source_id.to_owned()),
    };
    let hash = content_hash(ty, &title, input.tags, input.content);
    let existing = app.store.document_by_source(tenant, kb.id, input.source_id).await?;
    if let Some(doc) = existing.as_ref().filter(|d| d.content_hash == hash) {
        return Ok(Prepared::Unchanged(doc.clone()));
    }
    // A base whose model this server does not run refuses before any work.
    app.kb.embedder_for(kb)?;
    let config = ChunkConfig {
        target_tokens: cfg.chunk_tokens,
        overlap_tokens: cfg.chunk_overlap_tokens,
    };
    let pieces = chunk::chunk(&text, ty.format(), config);
    if pieces.is_empty() {
        return Err(KbError::Empty);
    }
    Ok(Prepared::Fresh(Fresh {
        id: existing.as_ref().map_or_else(DocumentId::new, |d| d.id),
        title,
        ty,
        hash,
        text,
        pieces,
    }))
}

/// What the model sees of a chunk: the heading path gives it context ("Billing > Refunds").
fn model_text(c: &chunk::Chunk) -> String {
    if c.heading_path.is_empty() {
        c.text.clone()
    } else {
        format!("{}\n{}", c.heading_path.join(" > "), c.text)
    }
}

/// A document ready to store (chunks embedded, text sealed for an encrypted base).
struct Ready {
    fresh: Fresh,
    sealed_content: Option<Vec<u8>>,
    chunks: Vec<NewChunk>,
}

async fn assemble(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    mut fresh: Fresh,
    vectors: Option<Vec<Vec<f32>>>,
) -> Result<Ready, KbError> {
    let id = fresh.id;
    let pieces = std::mem::take(&mut fresh.pieces);
    let mut chunks = Vec::with_capacity(pieces.len());
    let mut vectors = vectors.map(Vec::into_iter);
    for (ord, c) in pieces.into_iter().enumerate() {
        let v = vectors.as_mut().and_then(Iterator::next);
        let (clear, sealed, heading_path) = if kb.encrypted {
            // Section titles are content too: sealed along with the text.
            let row = chunk_row(id, ord);
            let slot = Slot {
                table: "kb_chunks",
                column: "text_sealed",
                row: &row,
            };
            let payload = serde_json::to_vec(&SealedChunk {
                heading_path: c.heading_path,
                text: c.text,
            })
            .map_err(|e| KbError::Corrupt(e.to_string()))?;
            let sealed = app.keyring.encrypt(&app.store, tenant, slot, &payload).await?;
            (None, Some(sealed), Vec::new())
        } else {
            (Some(c.text), None, c.heading_path)
        };
        chunks.push(NewChunk {
            text: clear,
            text_sealed: sealed,
            heading_path,
            start: i32::try_from(c.start).unwrap_or(i32::MAX),
            end: i32::try_from(c.end).unwrap_or(i32::MAX),
            embedding: v,
        });
    }
    let sealed_content = if kb.encrypted {
        let row = id.as_uuid().hyphenated().to_string();
        let slot = Slot {
            table: "kb_documents",
            column: "content_sealed",
            row: &row,
        };
        Some(
            app.keyring
                .encrypt(&app.store, tenant, slot, fresh.text.as_bytes())
                .await?,
        )
    } else {
        None
    };
    Ok(Ready {
        fresh,
        sealed_content,
        chunks,
    })
}

fn new_document<'a>(kb: &KnowledgeBase, input: &'a IngestInput<'a>, ready: &'a Ready) -> NewDocument<'a> {
    let f = &ready.fresh;
    NewDocument {
        id: f.id,
        source_id: input.source_id,
        title: &f.title,
        content_type: f.ty.as_str(),
        content_hash: &f.hash,
        content: (!kb.encrypted).then_some(f.text.as_str()),
        content_sealed: ready.sealed_content.as_deref(),
        tags: input.tags,
        bytes: i64::try_from(input.content.len()).unwrap_or(i64::MAX),
        chunks: &ready.chunks,
    }
}

/// One document: the document and all its chunks in one transaction.
pub async fn ingest(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    input: IngestInput<'_>,
) -> Result<IngestResult, KbError> {
    let mut done = ingest_batch(app, tenant, kb, std::slice::from_ref(&input)).await;
    done.pop()
        .unwrap_or_else(|| Err(KbError::Corrupt("a one-document ingest returned nothing".into())))
}

/// Several documents (bulk ingestion): one embedding call for all their chunks, so the
/// model runs on every core, and one transaction for all of them. Each document still
/// gets its own result: bad input fails only that document, and if the shared write or
/// embedding fails, the documents are retried one by one so one failure never takes the
/// others down and nothing is half-ingested.
pub async fn ingest_batch(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    inputs: &[IngestInput<'_>],
) -> Vec<Result<IngestResult, KbError>> {
    let mut results: Vec<Option<Result<IngestResult, KbError>>> = inputs.iter().map(|_| None).collect();
    let mut fresh = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match prepare(app, tenant, kb, input).await {
            Ok(Prepared::Unchanged(document)) => {
                results[i] = Some(Ok(IngestResult {
                    chunks: usize::try_from(document.chunk_count).unwrap_or(0),
                    document,
                    outcome: PutOutcome::Unchanged,
                }));
            }
            Ok(Prepared::Fresh(f)) => fresh.push((i, f)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let vectors = embed_all(app, kb, &fresh).await;
    let mut ready = Vec::with_capacity(fresh.len());
    for ((i, f), v) in fresh.into_iter().zip(vectors) {
        match v {
            Ok(v) => match assemble(app, tenant, kb, f, v).await {
                Ok(r) => ready.push((i, r)),
                Err(e) => results[i] = Some(Err(e)),
            },
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    store_all(app, tenant, kb, inputs, ready, &mut results).await;
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(KbError::Corrupt("a document was left without a result".into()))))
        .collect()
}

/// Vectors per fresh document (`None` for a lexical-only base): one model call for the
/// whole batch; if it fails, one call per document so each gets its own error.
async fn embed_all(
    app: &AppState,
    kb: &KnowledgeBase,
    fresh: &[(usize, Fresh)],
) -> Vec<Result<Option<Vec<Vec<f32>>>, KbError>> {
    let embedder = match app.kb.embedder_for(kb) {
        Ok(Some(e)) => e,
        Ok(None) => return fresh.iter().map(|_| Ok(None)).collect(),
        Err(_) => {
            return fresh
                .iter()
                .map(|_| Err(KbError::ModelMismatch(kb.model_id.clone().unwrap_or_default())))
                .collect()
        }
    };
    if fresh.is_empty() {
        return Vec::new();
    }
    let texts: Vec<String> = fresh
        .iter()
        .flat_map(|(_, f)| f.pieces.iter().map(model_text))
        .collect();
    if let Ok(mut all) = embed_blocking(embedder.clone(), texts).await {
        let mut out = Vec::with_capacity(fresh.len());
        for (_, f) in fresh.iter().rev() {
            let rest = all.split_off(all.len().saturating_sub(f.pieces.len()));
            out.push(Ok(Some(rest)));
        }
        out.reverse();
        return out;
    }
    let mut out = Vec::with_capacity(fresh.len());
    for (_, f) in fresh {
        let texts = f.pieces.iter().map(model_text).collect();
        out.push(embed_blocking(embedder.clone(), texts).await.map(Some));
    }
    out
}

async fn store_all(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    inputs: &[IngestInput<'_>],
    ready: Vec<(usize, Ready)>,
    results: &mut [Option<Result<IngestResult, KbError>>],
) {
    if ready.len() > 1 {
        let docs: Vec<NewDocument<'_>> = ready
            .iter()
            .filter_map(|(i, r)| Some(new_document(kb, inputs.get(*i)?, r)))
            .collect();
        match app.store.put_documents(tenant, kb, &docs).await {
            Ok(written) if written.len() == ready.len() => {
                for ((i, r), (document, outcome)) in ready.iter().zip(written) {
                    let chunks = r.chunks.len();
                    results[*i] = Some(Ok(IngestResult {
                        document,
                        outcome,
                        chunks,
                    }));
                }
                return;
            }
            Ok(_) => tracing::warn!("batched document write returned a different count; retrying one by one"),
            Err(e) => tracing::debug!(error = %e, "batched document write failed; retrying one by one"),
        }
    }
    for (i, r) in &ready {
        let Some(input) = inputs.get(*i) else { continue };
        let done = app.store.put_document(tenant, kb, new_document(kb, input, r)).await;
        results[*i] = Some(
            done.map(|(document, outcome)| IngestResult {
                document,
                outcome,
                chunks: r.chunks.len(),
            })
            .map_err(KbError::from),
        );
    }
}

/// The stored text of a document (decrypted for an encrypted base).
pub async fn document_text(app: &AppState, tenant: TenantId, doc: &Document) -> Result<String, KbError> {
    if let Some(t) = &doc.content {
        return Ok(t.clone());
    }
    let Some(sealed) = &doc.content_sealed else {
        return Ok(String::new());
    };
    let row = doc.id.as_uuid().hyphenated().to_string();
    let slot = Slot {
        table: "kb_documents",
        column: "content_sealed",
        row: &row,
    };
    let clear = app.keyring.decrypt(&app.store, tenant, slot, sealed).await?;
    Ok(String::from_utf8_lossy(&clear).into_owned())
}

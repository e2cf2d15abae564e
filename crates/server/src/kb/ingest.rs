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

fn check(input: &IngestInput<'_>, max_bytes: usize) -> Result<(ContentType, String), KbError> {
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
    Ok((ty, extract::extract(raw, ty)?))
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

pub async fn ingest(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    input: IngestInput<'_>,
) -> Result<IngestResult, KbError> {
    let cfg = &app.kb.config;
    let (ty, text) = check(&input, cfg.max_document_bytes)?;
    let title = match input.title {
        Some(t) => t.to_owned(),
        None => Some(extract::guess_title(&text))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| input.source_id.to_owned()),
    };
    let hash = content_hash(ty, &title, input.tags, input.content);
    let existing = app.store.document_by_source(tenant, kb.id, input.source_id).await?;
    if let Some(doc) = existing.as_ref().filter(|d| d.content_hash == hash) {
        return Ok(IngestResult {
            chunks: usize::try_from(doc.chunk_count).unwrap_or(0),
            document: doc.clone(),
            outcome: PutOutcome::Unchanged,
        });
    }
    let embedder = app.kb.embedder_for(kb)?;
    let config = ChunkConfig {
        target_tokens: cfg.chunk_tokens,
        overlap_tokens: cfg.chunk_overlap_tokens,
    };
    let pieces = chunk::chunk(&text, ty.format(), config);
    if pieces.is_empty() {
        return Err(KbError::Empty);
    }
    let vectors = match embedder {
        Some(e) => {
            // The heading path gives a chunk its context ("Billing > Refunds").
            let texts = pieces
                .iter()
                .map(|c| {
                    if c.heading_path.is_empty() {
                        c.text.clone()
                    } else {
                        format!("{}\n{}", c.heading_path.join(" > "), c.text)
                    }
                })
                .collect();
            Some(embed_blocking(e, texts).await?)
        }
        None => None,
    };
    let id = existing.as_ref().map_or_else(DocumentId::new, |d| d.id);
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
    let n = chunks.len();
    let sealed_content = if kb.encrypted {
        let row = id.as_uuid().hyphenated().to_string();
        let slot = Slot {
            table: "kb_documents",
            column: "content_sealed",
            row: &row,
        };
        Some(app.keyring.encrypt(&app.store, tenant, slot, text.as_bytes()).await?)
    } else {
        None
    };
    let (document, outcome) = app
        .store
        .put_document(
            tenant,
            kb,
            NewDocument {
                id,
                source_id: input.source_id,
                title: &title,
                content_type: ty.as_str(),
                content_hash: &hash,
                content: (!kb.encrypted).then_some(text.as_str()),
                content_sealed: sealed_content.as_deref(),
                tags: input.tags,
                bytes: i64::try_from(input.content.len()).unwrap_or(i64::MAX),
                chunks,
            },
        )
        .await?;
    Ok(IngestResult {
        document,
        outcome,
        chunks: n,
    })
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

//! Knowledge bases and documents for REST and the CLI: resolve, validate, audit, meter,
//! then hand over to [`crate::kb`].

use cairn_core::audit::Outcome;
use cairn_core::ids::{DocumentId, TenantId};
use cairn_core::tenant::Tenant;
use cairn_store::knowledge::{Document, KnowledgeBase, PutOutcome};
use cairn_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::kb::ingest::{self, IngestInput, IngestResult};
use crate::kb::search::{self, SearchRequest, SearchResponse};
use crate::kb::KbError;
use crate::state::{AppState, Ctx};

pub const DEFAULT_KB: &str = "default";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKb {
    pub name: String,
    /// Store document and chunk text encrypted (no lexical index then).
    #[serde(default)]
    pub encrypted: bool,
    /// `false`: no embedding model, lexical search only.
    #[serde(default = "yes")]
    pub vectors: bool,
}

fn yes() -> bool {
    true
}

/// A document as posted in JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBody {
    pub source_id: String,
    pub title: Option<String>,
    #[serde(default = "markdown")]
    pub content_type: String,
    pub content: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn markdown() -> String {
    "text/markdown".into()
}

impl std::fmt::Debug for IngestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestBody")
            .field("source_id", &self.source_id)
            .field("bytes", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// A document with its stored text.
#[derive(Debug, Serialize)]
pub struct DocumentWithText {
    #[serde(flatten)]
    pub document: Document,
    pub text: String,
}

fn check_kb_name(name: &str) -> Result<(), KbError> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(KbError::Invalid("name", "name: 1–63 of a-z, 0-9, - and _".into()))
    }
}

/// The base called `name`; `default` is created on first use.
pub async fn resolve_kb(app: &AppState, tenant: TenantId, name: &str) -> Result<KnowledgeBase, KbError> {
    if let Some(kb) = app.store.knowledge_base(tenant, name).await? {
        return Ok(kb);
    }
    if name != DEFAULT_KB {
        return Err(KbError::UnknownKb(name.chars().take(63).collect()));
    }
    match create_base(app, tenant, name, true, false).await {
        Ok(kb) => Ok(kb),
        // Another request created it first.
        Err(KbError::Store(StoreError::Conflict(_))) => app
            .store
            .knowledge_base(tenant, name)
            .await?
            .ok_or_else(|| KbError::UnknownKb(name.to_owned())),
        Err(e) => Err(e),
    }
}

async fn create_base(
    app: &AppState,
    tenant: TenantId,
    name: &str,
    vectors: bool,
    encrypted: bool,
) -> Result<KnowledgeBase, KbError> {
    check_kb_name(name)?;
    let model = match (&app.kb.embedder, vectors) {
        (Some(e), true) => Some((e.model_id().to_owned(), i32::try_from(e.dimension()).unwrap_or(0))),
        _ => None,
    };
    let model = model.as_ref().map(|(m, d)| (m.as_str(), *d));
    Ok(app.store.create_knowledge_base(tenant, name, model, encrypted).await?)
}

async fn tenant_and_kb(ctx: &Ctx, slug: &str, kb: &str) -> Result<(Tenant, KnowledgeBase), ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let kb = resolve_kb(&ctx.state, tenant.id, kb).await?;
    Ok((tenant, kb))
}

pub async fn create(ctx: &Ctx, slug: &str, input: CreateKb) -> Result<KnowledgeBase, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let kb = create_base(&ctx.state, tenant.id, &input.name, input.vectors, input.encrypted).await?;
    let event = ctx
        .event("kb.created", Outcome::Success)
        .tenant(tenant.id)
        .target(kb.id.to_string())
        .details(json!({ "name": kb.name, "model": kb.model_id, "encrypted": kb.encrypted }));
    ctx.audit(event).await;
    Ok(kb)
}

pub async fn list(ctx: &Ctx, slug: &str) -> Result<Vec<KnowledgeBase>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    resolve_kb(&ctx.state, tenant.id, DEFAULT_KB).await?;
    Ok(ctx.store().list_knowledge_bases(tenant.id).await?)
}

pub async fn delete(ctx: &Ctx, slug: &str, name: &str) -> Result<(), ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, name).await?;
    ctx.store().delete_knowledge_base(tenant.id, kb.id).await?;
    let event = ctx
        .event("kb.deleted", Outcome::Success)
        .tenant(tenant.id)
        .target(kb.id.to_string())
        .details(json!({ "name": kb.name }));
    ctx.audit(event).await;
    Ok(())
}

/// Ingests one document (REST JSON or upload, CLI); audited and metered.
pub async fn ingest(ctx: &Ctx, slug: &str, kb: &str, input: IngestInput<'_>) -> Result<IngestResult, ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, kb).await?;
    ingest_into(&ctx.state, &tenant, &kb, ctx, input).await
}

/// Ingest for an already resolved base (also the MCP tool's path).
pub async fn ingest_into(
    app: &AppState,
    tenant: &Tenant,
    kb: &KnowledgeBase,
    ctx: &Ctx,
    input: IngestInput<'_>,
) -> Result<IngestResult, ApiError> {
    let mut done = ingest_many_into(app, tenant, kb, ctx, std::slice::from_ref(&input)).await;
    done.pop()
        .unwrap_or_else(|| Err(ApiError::internal("a one-document ingest returned nothing")))
}

/// Bulk ingest (the CLI's folder path): one model call and one transaction for the
/// batch, audited and metered per document like single ingests.
pub async fn ingest_many_into(
    app: &AppState,
    tenant: &Tenant,
    kb: &KnowledgeBase,
    ctx: &Ctx,
    inputs: &[IngestInput<'_>],
) -> Vec<Result<IngestResult, ApiError>> {
    let started = std::time::Instant::now();
    let done = ingest::ingest_batch(app, tenant.id, kb, inputs).await;
    let mut out = Vec::with_capacity(done.len());
    for (input, result) in inputs.iter().zip(done) {
        let source_id = input.source_id.chars().take(512).collect::<String>();
        let bytes = input.content.len();
        out.push(match result {
            Ok(done) => {
                if done.outcome != PutOutcome::Unchanged {
                    let event = ctx
                        .event("kb.document_ingested", Outcome::Success)
                        .tenant(tenant.id)
                        .target(done.document.id.to_string())
                        .details(json!({ "kb": kb.name, "source_id": source_id, "outcome": done.outcome,
                            "chunks": done.chunks, "bytes": bytes }));
                    ctx.audit(event).await;
                    let data = json!({ "kb": kb.name, "source_id": source_id, "document_id": done.document.id,
                        "outcome": done.outcome, "chunks": done.chunks });
                    crate::webhooks_out::publish(app, tenant.id, "kb.ingest.completed", data).await;
                }
                crate::usage::kb_event(app, tenant.id, ctx, "kb/ingest", &kb.name, started, bytes, done.chunks).await;
                Ok(done)
            }
            Err(e) => {
                let err = ApiError::from(e);
                if err.code != Code::Internal && err.code != Code::ServiceUnavailable {
                    let event = ctx
                        .event("kb.document_ingested", Outcome::Failure)
                        .tenant(tenant.id)
                        .details(json!({ "kb": kb.name, "source_id": source_id, "reason": err.code.as_str() }));
                    ctx.audit(event).await;
                }
                Err(err)
            }
        });
    }
    out
}

pub async fn ingest_json(ctx: &Ctx, slug: &str, kb: &str, body: IngestBody) -> Result<IngestResult, ApiError> {
    let input = IngestInput {
        source_id: &body.source_id,
        title: body.title.as_deref(),
        content_type: &body.content_type,
        content: body.content.as_bytes(),
        tags: &body.tags,
    };
    ingest(ctx, slug, kb, input).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

pub async fn documents(ctx: &Ctx, slug: &str, kb: &str, q: DocumentQuery) -> Result<Vec<Document>, ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, kb).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) || q.offset.is_some_and(|o| o < 0) {
        return Err(KbError::Invalid("limit", "limit: 1 to 1000; offset: 0 or more".into()).into());
    }
    Ok(ctx
        .store()
        .list_documents(tenant.id, kb.id, limit, q.offset.unwrap_or(0))
        .await?)
}

fn document_id(id: &str) -> Result<DocumentId, KbError> {
    DocumentId::parse("document_id", id).map_err(|_| KbError::UnknownDocument)
}

/// One document and its stored text (decrypted for an encrypted base).
pub async fn get_document(
    app: &AppState,
    tenant: TenantId,
    kb: &KnowledgeBase,
    id: &str,
) -> Result<DocumentWithText, KbError> {
    let doc = app
        .store
        .document(tenant, kb.id, document_id(id)?)
        .await?
        .ok_or(KbError::UnknownDocument)?;
    let text = ingest::document_text(app, tenant, &doc).await?;
    Ok(DocumentWithText { document: doc, text })
}

pub async fn document(ctx: &Ctx, slug: &str, kb: &str, id: &str) -> Result<DocumentWithText, ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, kb).await?;
    Ok(get_document(&ctx.state, tenant.id, &kb, id).await?)
}

pub async fn delete_document(ctx: &Ctx, slug: &str, kb: &str, id: &str) -> Result<(), ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, kb).await?;
    let id = document_id(id)?;
    if !ctx.store().delete_document(tenant.id, kb.id, id).await? {
        return Err(KbError::UnknownDocument.into());
    }
    let event = ctx
        .event("kb.document_deleted", Outcome::Success)
        .tenant(tenant.id)
        .target(id.to_string())
        .details(json!({ "kb": kb.name }));
    ctx.audit(event).await;
    Ok(())
}

pub async fn search(ctx: &Ctx, slug: &str, kb: &str, req: SearchRequest) -> Result<SearchResponse, ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, kb).await?;
    let started = std::time::Instant::now();
    let out = search::search(&ctx.state, tenant.id, &kb, &req).await?;
    crate::usage::kb_event(
        &ctx.state,
        tenant.id,
        ctx,
        "kb/search",
        &kb.name,
        started,
        req.query.len(),
        out.results.len(),
    )
    .await;
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Also run the recall probe (samples stored chunks as queries).
    #[serde(default)]
    pub probe: bool,
}

pub async fn stats(ctx: &Ctx, slug: &str, kb: &str, q: StatsQuery) -> Result<crate::kb::stats::KbStats, ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, kb).await?;
    Ok(crate::kb::stats::stats(&ctx.state, tenant.id, &kb, q.probe).await?)
}

pub async fn capacity(ctx: &Ctx, slug: &str, kb: &str) -> Result<crate::kb::stats::CapacityReport, ApiError> {
    let (tenant, kb) = tenant_and_kb(ctx, slug, kb).await?;
    Ok(crate::kb::stats::capacity(&ctx.state, tenant.id, &kb).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainQuery {
    /// Reindex even when the probes find no drift.
    #[serde(default)]
    pub force: bool,
}

/// ANALYZE, and REINDEX where the index drifted (operator only; every tenant's bases).
pub async fn maintain(ctx: &Ctx, q: MaintainQuery) -> Result<crate::kb::stats::MaintainReport, ApiError> {
    let report = crate::kb::stats::maintain(&ctx.state, q.force).await?;
    let event = ctx
        .event("kb.maintained", Outcome::Success)
        .details(json!({ "force": q.force, "report": report }));
    ctx.audit(event).await;
    Ok(report)
}

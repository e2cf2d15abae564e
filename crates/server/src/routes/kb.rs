use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, StatusCode};
use axum::Json;
use cairn_store::knowledge::{Document, KnowledgeBase};

use super::Created;
use crate::auth::{OperatorCtx, TenantAdminCtx};
use crate::error::{ApiError, Code};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::kb::ingest::{IngestInput, IngestResult};
use crate::kb::search::{SearchRequest, SearchResponse};
use crate::kb::stats::{CapacityReport, KbStats, MaintainReport};
use crate::service::kb::{self, CreateKb, DocumentQuery, DocumentWithText, IngestBody, MaintainQuery, StatsQuery};
use crate::service::List;
use crate::state::AppState;

fn list<T>(data: Vec<T>) -> Json<List<T>> {
    Json(List {
        data,
        next_cursor: None,
    })
}

pub async fn create(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKb>,
) -> Result<Created<KnowledgeBase>, ApiError> {
    kb::create(&ctx, &slug, body).await.map(Created)
}

pub async fn index(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<List<KnowledgeBase>>, ApiError> {
    kb::list(&ctx, &slug).await.map(list)
}

pub async fn delete(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    kb::delete(&ctx, &slug, &name).await.map(|()| StatusCode::NO_CONTENT)
}

/// A document as JSON (`{source_id, title, content_type, content, tags}`) or as a
/// multipart upload (a `file` part, plus optional `source_id`, `title`, `content_type`
/// and `tags` fields; tags comma-separated).
pub async fn ingest(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    req: Request,
) -> Result<Created<IngestResult>, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let ApiJson(body) = ApiJson::<IngestBody>::from_request(req, &()).await?;
        return kb::ingest_json(&ctx, &slug, &name, body).await.map(Created);
    }
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|_| ApiError::new(Code::InvalidRequest, "multipart body could not be read"))?;
    let upload = Upload::read(&mut form).await?;
    let content_type = upload.content_type.clone().unwrap_or_else(|| "text/markdown".into());
    let source_id = upload
        .source_id
        .clone()
        .or(upload.file_name.clone())
        .unwrap_or_default();
    let input = IngestInput {
        source_id: &source_id,
        title: upload.title.as_deref(),
        content_type: &content_type,
        content: &upload.content,
        tags: &upload.tags,
    };
    kb::ingest(&ctx, &slug, &name, input).await.map(Created)
}

#[derive(Default)]
struct Upload {
    content: Vec<u8>,
    file_name: Option<String>,
    source_id: Option<String>,
    title: Option<String>,
    content_type: Option<String>,
    tags: Vec<String>,
}

impl Upload {
    async fn read(form: &mut Multipart) -> Result<Self, ApiError> {
        let bad = |_| ApiError::new(Code::InvalidRequest, "multipart body could not be read");
        let mut up = Upload::default();
        let mut seen_file = false;
        while let Some(field) = form.next_field().await.map_err(bad)? {
            match field.name().unwrap_or_default() {
                "file" => {
                    seen_file = true;
                    up.file_name = field.file_name().map(str::to_owned);
                    if up.content_type.is_none() {
                        up.content_type = field
                            .content_type()
                            .filter(|c| *c != "application/octet-stream")
                            .map(str::to_owned)
                            .or_else(|| {
                                up.file_name
                                    .as_deref()
                                    .and_then(|n| n.rsplit_once('.'))
                                    .map(|(_, ext)| ext.to_owned())
                            });
                    }
                    up.content = field.bytes().await.map_err(bad)?.to_vec();
                }
                "source_id" => up.source_id = Some(field.text().await.map_err(bad)?),
                "title" => up.title = Some(field.text().await.map_err(bad)?),
                "content_type" => up.content_type = Some(field.text().await.map_err(bad)?),
                "tags" => {
                    let t = field.text().await.map_err(bad)?;
                    up.tags
                        .extend(t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
                }
                other => {
                    return Err(ApiError {
                        code: Code::InvalidField,
                        message: format!("unknown form field {}", other.chars().take(40).collect::<String>()),
                        field: None,
                    })
                }
            }
        }
        if !seen_file {
            return Err(ApiError {
                code: Code::InvalidField,
                message: "a `file` part is required".into(),
                field: Some("file"),
            });
        }
        Ok(up)
    }
}

pub async fn documents(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<DocumentQuery>,
) -> Result<Json<List<Document>>, ApiError> {
    kb::documents(&ctx, &slug, &name, q).await.map(list)
}

pub async fn document(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name, id)): ApiPath<(String, String, String)>,
) -> Result<Json<DocumentWithText>, ApiError> {
    kb::document(&ctx, &slug, &name, &id).await.map(Json)
}

pub async fn delete_document(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name, id)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    kb::delete_document(&ctx, &slug, &name, &id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

pub async fn search(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    kb::search(&ctx, &slug, &name, body).await.map(Json)
}

pub async fn stats(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<KbStats>, ApiError> {
    kb::stats(&ctx, &slug, &name, q).await.map(Json)
}

pub async fn capacity(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<CapacityReport>, ApiError> {
    kb::capacity(&ctx, &slug, &name).await.map(Json)
}

pub async fn maintain(
    OperatorCtx(ctx): OperatorCtx,
    ApiQuery(q): ApiQuery<MaintainQuery>,
) -> Result<Json<MaintainReport>, ApiError> {
    kb::maintain(&ctx, q).await.map(Json)
}

/// The largest request body the documents route accepts: the document limit, with room
/// for JSON escaping and multipart framing.
pub fn document_body_limit(state: &AppState) -> usize {
    let doc = state.config.kb.max_document_bytes;
    doc.saturating_mul(2)
        .saturating_add(64 * 1024)
        .max(state.config.body_limit_bytes)
}

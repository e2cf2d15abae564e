//! The audit trail: filtered listings and streamed exports, of a tenant (its admins and
//! operators) or of the platform (operators).

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_store::audit_query::AuditRecord;

use crate::auth::{OperatorCtx, TenantAdminCtx};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::service::audit_query::{self, AuditQuery, Export, ExportQuery};
use crate::service::List;

pub async fn list(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<List<AuditRecord>>, ApiError> {
    audit_query::list(&ctx, Some(&slug), query).await.map(Json)
}

pub async fn platform_list(
    OperatorCtx(ctx): OperatorCtx,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<List<AuditRecord>>, ApiError> {
    audit_query::list(&ctx, None, query).await.map(Json)
}

pub async fn export(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Download, ApiError> {
    audit_query::export(&ctx, Some(&slug), query).await.map(Download)
}

pub async fn platform_export(
    OperatorCtx(ctx): OperatorCtx,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Download, ApiError> {
    audit_query::export(&ctx, None, query).await.map(Download)
}

/// An export as a file download, streamed page by page as the client reads it.
pub struct Download(Export);

impl IntoResponse for Download {
    fn into_response(self) -> Response {
        let headers = [
            (header::CONTENT_TYPE, self.0.format().content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", self.0.file_name),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ];
        (headers, Body::from_stream(self.0.into_stream())).into_response()
    }
}

use axum::http::StatusCode;
use axum::Json;
use cairn_core::tenant::Tenant;

use super::Created;
use crate::auth::{OperatorCtx, TenantAdminCtx};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::tenants::{self, CreateTenant, TenantQuery, UpdateTenant};
use crate::service::List;

pub async fn create(
    OperatorCtx(ctx): OperatorCtx,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<Created<Tenant>, ApiError> {
    tenants::create(&ctx, body).await.map(Created)
}

pub async fn list(
    OperatorCtx(ctx): OperatorCtx,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> Result<Json<List<serde_json::Value>>, ApiError> {
    tenants::list(&ctx, query).await.map(Json)
}

pub async fn show(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Tenant>, ApiError> {
    tenants::resolve(&ctx, &slug).await.map(Json)
}

pub async fn update(
    OperatorCtx(ctx): OperatorCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Json<Tenant>, ApiError> {
    tenants::update(&ctx, &slug, body).await.map(Json)
}

pub async fn delete(OperatorCtx(ctx): OperatorCtx, ApiPath(slug): ApiPath<String>) -> Result<StatusCode, ApiError> {
    tenants::delete(&ctx, &slug).await.map(|()| StatusCode::NO_CONTENT)
}

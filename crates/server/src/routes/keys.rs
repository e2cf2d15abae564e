use axum::Json;
use cairn_core::api_key::ApiKey;

use super::Created;
use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, MaybeJson};
use crate::service::api_keys::{self, CreateKey, IssuedKey, RotateKey};
use crate::service::{List, ListParams};

pub async fn create(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Created<IssuedKey>, ApiError> {
    api_keys::create(&ctx, &slug, body).await.map(Created)
}

pub async fn list(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<List<ApiKey>>, ApiError> {
    api_keys::list(&ctx, &slug, &params).await.map(Json)
}

pub async fn show(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    api_keys::get(&ctx, &slug, &id).await.map(Json)
}

pub async fn rotate(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, id)): ApiPath<(String, String)>,
    MaybeJson(body): MaybeJson<RotateKey>,
) -> Result<Json<IssuedKey>, ApiError> {
    api_keys::rotate(&ctx, &slug, &id, body.unwrap_or_default())
        .await
        .map(Json)
}

pub async fn revoke(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    api_keys::revoke(&ctx, &slug, &id).await.map(Json)
}

use axum::http::StatusCode;
use axum::Json;
use cairn_store::identity_providers::IdentityProvider;

use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::service::idp::{self, PutIdentityProvider};

pub async fn put(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<PutIdentityProvider>,
) -> Result<Json<IdentityProvider>, ApiError> {
    idp::put(&ctx, &slug, body).await.map(Json)
}

pub async fn show(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<IdentityProvider>, ApiError> {
    idp::get(&ctx, &slug).await.map(Json)
}

pub async fn delete(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    idp::delete(&ctx, &slug).await.map(|()| StatusCode::NO_CONTENT)
}

use axum::http::StatusCode;
use axum::Json;
use cairn_store::oauth_credentials::OAuthCredential;

use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::service::credentials::{self, PutOAuthCredential};
use crate::service::List;

pub async fn put(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, provider)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutOAuthCredential>,
) -> Result<Json<OAuthCredential>, ApiError> {
    credentials::put(&ctx, &slug, &provider, body).await.map(Json)
}

pub async fn list(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<List<OAuthCredential>>, ApiError> {
    let data = credentials::list(&ctx, &slug).await?;
    Ok(Json(List {
        data,
        next_cursor: None,
    }))
}

pub async fn show(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, provider)): ApiPath<(String, String)>,
) -> Result<Json<OAuthCredential>, ApiError> {
    credentials::get(&ctx, &slug, &provider).await.map(Json)
}

pub async fn delete(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, provider)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    credentials::delete(&ctx, &slug, &provider)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

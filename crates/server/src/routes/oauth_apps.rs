use axum::http::StatusCode;
use axum::Json;
use cairn_store::oauth_apps::OAuthApp;

use super::Created;
use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::oauth::register::CreatedClient;
use crate::service::oauth_apps::{self, AppQuery, CreateOAuthApp, RotatedKey};
use crate::service::List;

pub async fn create(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateOAuthApp>,
) -> Result<Created<CreatedClient>, ApiError> {
    oauth_apps::create(&ctx, &slug, body).await.map(Created)
}

pub async fn list(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<AppQuery>,
) -> Result<Json<List<OAuthApp>>, ApiError> {
    let data = oauth_apps::list(&ctx, &slug, query).await?;
    Ok(Json(List {
        data,
        next_cursor: None,
    }))
}

pub async fn show(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, client_id)): ApiPath<(String, String)>,
) -> Result<Json<OAuthApp>, ApiError> {
    oauth_apps::show(&ctx, &slug, &client_id).await.map(Json)
}

pub async fn delete(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, client_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    oauth_apps::delete(&ctx, &slug, &client_id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

pub async fn rotate_key(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<RotatedKey>, ApiError> {
    oauth_apps::rotate_signing_key(&ctx, &slug).await.map(Json)
}

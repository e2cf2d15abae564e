use axum::http::StatusCode;
use axum::Json;
use cairn_core::user::Member;

use super::Created;
use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::members::{self, AddMember, RemoveMember};
use crate::service::{List, ListParams};

pub async fn add(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<Created<Member>, ApiError> {
    members::add(&ctx, &slug, body).await.map(Created)
}

pub async fn list(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<List<Member>>, ApiError> {
    members::list(&ctx, &slug, &params).await.map(Json)
}

pub async fn remove(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, user)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    members::remove(&ctx, &slug, &user)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

pub async fn remove_by_body(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<RemoveMember>,
) -> Result<StatusCode, ApiError> {
    members::remove(&ctx, &slug, &body.user_id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

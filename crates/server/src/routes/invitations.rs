use axum::http::StatusCode;
use axum::Json;
use cairn_store::invitations::Invitation;

use super::Created;
use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::service::invitations::{self, CreateInvitation, IssuedInvitation};
use crate::service::List;

pub async fn create(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<Created<IssuedInvitation>, ApiError> {
    invitations::create(&ctx, &slug, body).await.map(Created)
}

pub async fn list(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<List<Invitation>>, ApiError> {
    invitations::list(&ctx, &slug).await.map(super::unpaged)
}

pub async fn revoke(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    invitations::revoke(&ctx, &slug, &id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

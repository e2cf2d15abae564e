use axum::Json;
use cairn_store::crypto_jobs::CryptoJob;

use super::Created;
use crate::auth::{OperatorCtx, TenantAdminCtx};
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::service::encryption::{self, EncryptionStatus};
use crate::service::List;

pub async fn status(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<EncryptionStatus>, ApiError> {
    encryption::status(&ctx, &slug).await.map(Json)
}

pub async fn rotate(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Created<CryptoJob>, ApiError> {
    encryption::rotate(&ctx, &slug).await.map(Created)
}

pub async fn rollback(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Created<CryptoJob>, ApiError> {
    encryption::rollback(&ctx, &slug).await.map(Created)
}

pub async fn rotate_all(OperatorCtx(ctx): OperatorCtx) -> Result<Created<List<CryptoJob>>, ApiError> {
    let data = encryption::rotate_all(&ctx).await?;
    Ok(Created(List {
        data,
        next_cursor: None,
    }))
}

pub async fn jobs(OperatorCtx(ctx): OperatorCtx) -> Result<Json<List<CryptoJob>>, ApiError> {
    let data = encryption::jobs(&ctx).await?;
    Ok(Json(List {
        data,
        next_cursor: None,
    }))
}

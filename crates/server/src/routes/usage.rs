use axum::Json;

use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::service::usage::{self, UsageQuery, UsageReport};

pub async fn report(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    usage::report(&ctx, &slug, query).await.map(Json)
}

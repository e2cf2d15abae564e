use axum::Json;
use cairn_core::user::{User, UserTenant};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::Created;
use crate::auth::OperatorCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::users::{self, CreateUser};
use crate::service::{operator_tokens, tenants, List, ListParams};

pub async fn create(
    OperatorCtx(ctx): OperatorCtx,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Created<User>, ApiError> {
    users::create(&ctx, body).await.map(Created)
}

pub async fn list(
    OperatorCtx(ctx): OperatorCtx,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<List<User>>, ApiError> {
    users::list(&ctx, &params).await.map(Json)
}

pub async fn show(OperatorCtx(ctx): OperatorCtx, ApiPath(id): ApiPath<String>) -> Result<Json<User>, ApiError> {
    users::get(&ctx, &id).await.map(Json)
}

pub async fn tenants(
    OperatorCtx(ctx): OperatorCtx,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<List<UserTenant>>, ApiError> {
    tenants::list_for_user(&ctx, &id, &params).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorToken {
    pub name: String,
}

/// The only response that carries an operator token in clear; it is not stored.
#[derive(serde::Serialize)]
pub struct IssuedTokenBody {
    id: cairn_core::ids::OperatorTokenId,
    token: String,
}

pub async fn create_operator_token(
    OperatorCtx(ctx): OperatorCtx,
    ApiJson(body): ApiJson<CreateOperatorToken>,
) -> Result<Created<IssuedTokenBody>, ApiError> {
    operator_tokens::create(&ctx, &body.name).await.map(|t| {
        Created(IssuedTokenBody {
            id: t.id,
            token: t.token.expose_secret().to_owned(),
        })
    })
}

//! Authentication extractors. A handler's signature says who may call it: taking an
//! [`OperatorCtx`] means "operators only".

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use cairn_core::audit::{Actor, Outcome};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::RequestMeta;
use crate::service::operator_tokens;
use crate::state::{AppState, Ctx};

/// A request authenticated with an operator token.
pub struct OperatorCtx(pub Ctx);

impl FromRequestParts<AppState> for OperatorCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Ok(meta) = RequestMeta::from_request_parts(parts, state).await;
        let Some(token) = bearer(&parts.headers) else {
            return Err(ApiError::unauthorized());
        };
        match operator_tokens::verify(&state.store, token).await? {
            Some(id) => Ok(Self(Ctx {
                state: state.clone(),
                actor: Actor::Operator(id),
                meta,
            })),
            None => {
                let ctx = Ctx {
                    state: state.clone(),
                    actor: Actor::Anonymous,
                    meta,
                };
                let event = ctx
                    .event("auth.failed", Outcome::Denied)
                    .details(json!({ "credential": "operator_token", "reason": "unknown or revoked token" }));
                ctx.audit(event).await;
                Err(ApiError::unauthorized())
            }
        }
    }
}

/// The credential of an `Authorization: Bearer …` header (scheme case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

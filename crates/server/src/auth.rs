//! Authentication extractors. A handler's signature says who may call it: taking an
//! [`OperatorCtx`] means "operators only"; [`TenantAdminCtx`] "operators, or admins of
//! the tenant in the path".

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use cairn_core::audit::{Actor, Outcome};
use serde_json::json;

use cairn_core::user::Role;

use crate::error::{ApiError, Code};
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

/// A request on a tenant's resources (`/tenants/{slug}/…`) by an operator, or by an
/// admin or owner of that tenant signed in through the tenant's identity provider.
/// Plain members are refused (403).
pub struct TenantAdminCtx(pub Ctx);

impl FromRequestParts<AppState> for TenantAdminCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(&parts.headers).filter(|t| crate::idp::looks_like_jwt(t)) else {
            return OperatorCtx::from_request_parts(parts, state).await.map(|o| Self(o.0));
        };
        let token = token.to_owned();
        let Ok(meta) = RequestMeta::from_request_parts(parts, state).await;
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::unauthorized())?;
        let slug = params
            .iter()
            .find(|(k, _)| *k == "slug")
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let Some(tenant) = state.tenants.get(&state.store, &slug).await? else {
            return Err(ApiError::unauthorized());
        };
        let ctx = |actor| Ctx {
            state: state.clone(),
            actor,
            meta: meta.clone(),
        };
        match crate::idp::authenticate(&state.idp, &state.store, tenant.id, &token).await {
            Ok((user, Role::Admin | Role::Owner)) => Ok(Self(ctx(Actor::User(user)))),
            Ok((user, Role::Member)) => {
                let c = ctx(Actor::User(user));
                let event = c
                    .event("auth.forbidden", Outcome::Denied)
                    .tenant(tenant.id)
                    .details(json!({ "credential": "idp_jwt", "reason": "tenant admins only" }));
                c.audit(event).await;
                Err(ApiError::new(
                    Code::Forbidden,
                    "only admins and owners of this tenant may do this",
                ))
            }
            Err(refusal) => {
                let c = ctx(Actor::Anonymous);
                let event = c
                    .event("auth.failed", Outcome::Denied)
                    .tenant(tenant.id)
                    .details(json!({ "credential": "idp_jwt", "reason": refusal.reason() }));
                c.audit(event).await;
                Err(ApiError::unauthorized())
            }
        }
    }
}

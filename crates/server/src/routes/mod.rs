//! HTTP routes. Handlers only extract, call one service function and wrap the result.

mod audit;
mod credentials;
mod encryption;
mod health;
mod idp;
mod invitations;
pub mod kb;
mod keys;
mod members;
mod oauth_apps;
mod tenants;
mod usage;
mod users;
mod webhooks;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::error::{ApiError, Code};
use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let documents = post(kb::ingest)
        .get(kb::documents)
        .layer(axum::extract::DefaultBodyLimit::max(kb::document_body_limit(state)));
    let api = Router::new()
        .route("/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/tenants/{slug}",
            get(tenants::show).patch(tenants::update).delete(tenants::delete),
        )
        .route(
            "/tenants/{slug}/members",
            post(members::add).get(members::list).delete(members::remove_by_body),
        )
        .route(
            "/tenants/{slug}/members/{user_id}",
            axum::routing::delete(members::remove),
        )
        .route(
            "/tenants/{slug}/invitations",
            post(invitations::create).get(invitations::list),
        )
        .route(
            "/tenants/{slug}/invitations/{id}",
            axum::routing::delete(invitations::revoke),
        )
        .route("/tenants/{slug}/keys", post(keys::create).get(keys::list))
        .route("/tenants/{slug}/keys/{id}", get(keys::show).delete(keys::revoke))
        .route("/tenants/{slug}/keys/{id}/rotate", post(keys::rotate))
        .route("/tenants/{slug}/usage", get(usage::report))
        .route("/tenants/{slug}/audit", get(audit::list))
        .route("/tenants/{slug}/audit/export", get(audit::export))
        .route("/audit", get(audit::platform_list))
        .route("/audit/export", get(audit::platform_export))
        .route(
            "/tenants/{slug}/identity-provider",
            get(idp::show).put(idp::put).delete(idp::delete),
        )
        .route(
            "/tenants/{slug}/oauth/apps",
            post(oauth_apps::create).get(oauth_apps::list),
        )
        .route(
            "/tenants/{slug}/oauth/apps/{client_id}",
            get(oauth_apps::show).delete(oauth_apps::delete),
        )
        .route(
            "/tenants/{slug}/oauth/signing-keys/rotate",
            post(oauth_apps::rotate_key),
        )
        .route("/tenants/{slug}/oauth-credentials", get(credentials::list))
        .route(
            "/tenants/{slug}/oauth-credentials/{provider}",
            get(credentials::show).put(credentials::put).delete(credentials::delete),
        )
        .route("/tenants/{slug}/kb", post(kb::create).get(kb::index))
        .route("/tenants/{slug}/kb/{kb}", axum::routing::delete(kb::delete))
        .route("/tenants/{slug}/kb/{kb}/documents", documents)
        .route(
            "/tenants/{slug}/kb/{kb}/documents/{id}",
            get(kb::document).delete(kb::delete_document),
        )
        .route("/tenants/{slug}/kb/{kb}/search", post(kb::search))
        .route("/tenants/{slug}/kb/{kb}/stats", get(kb::stats))
        .route("/tenants/{slug}/kb/{kb}/capacity", get(kb::capacity))
        .route("/kb/maintain", post(kb::maintain))
        .route("/tenants/{slug}/encryption", get(encryption::status))
        .route("/tenants/{slug}/encryption/rotate", post(encryption::rotate))
        .route("/tenants/{slug}/encryption/rollback", post(encryption::rollback))
        .route("/encryption/rotate", post(encryption::rotate_all))
        .route("/encryption/jobs", get(encryption::jobs))
        .route("/users", post(users::create).get(users::list))
        .route("/users/{id}", get(users::show))
        .route("/users/{id}/tenants", get(users::tenants))
        .route("/operator/tokens", post(users::create_operator_token));
    let api = api.merge(webhooks::routes());
    Router::new()
        .nest("/api/v1", api)
        .route("/hooks/{tenant}/{source}", post(webhooks::receive))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A complete list in the API's list shape (no further page).
pub(super) fn unpaged<T>(data: Vec<T>) -> axum::Json<crate::service::List<T>> {
    axum::Json(crate::service::List {
        data,
        next_cursor: None,
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "method not allowed on this resource")
}

/// 201 with the created resource.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

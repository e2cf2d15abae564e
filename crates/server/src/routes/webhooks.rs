use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use cairn_store::webhooks::WebhookSource;

use super::Created;
use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RequestMeta};
use crate::service::webhooks::{self, CreateSource, CreatedSource, Received};
use crate::service::List;
use crate::state::AppState;

/// A delivery from a sender: no credentials but its signature.
pub async fn receive(
    State(app): State<AppState>,
    meta: RequestMeta,
    ApiPath((slug, source)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let ctx = webhooks::sender(&app, meta);
    webhooks::receive(&ctx, &slug, &source, &headers, &body).await.map(Json)
}

pub async fn create(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateSource>,
) -> Result<Created<CreatedSource>, ApiError> {
    webhooks::create_source(&ctx, &slug, body).await.map(Created)
}

pub async fn index(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<List<WebhookSource>>, ApiError> {
    webhooks::list_sources(&ctx, &slug).await.map(super::unpaged)
}

pub async fn delete(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    webhooks::delete_source(&ctx, &slug, &name)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

pub mod endpoints {
    use axum::http::StatusCode;
    use axum::Json;
    use cairn_store::webhook_endpoints::WebhookEndpoint;

    use super::Created;
    use crate::auth::TenantAdminCtx;
    use crate::error::ApiError;
    use crate::extract::{ApiJson, ApiPath};
    use crate::service::webhook_endpoints::{self as svc, CreateEndpoint, CreatedEndpoint, DeliveryReport};
    use crate::service::List;

    pub async fn create(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath(slug): ApiPath<String>,
        ApiJson(body): ApiJson<CreateEndpoint>,
    ) -> Result<Created<CreatedEndpoint>, ApiError> {
        svc::create(&ctx, &slug, body).await.map(Created)
    }

    pub async fn index(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath(slug): ApiPath<String>,
    ) -> Result<Json<List<WebhookEndpoint>>, ApiError> {
        svc::list(&ctx, &slug).await.map(super::super::unpaged)
    }

    pub async fn delete(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath((slug, id)): ApiPath<(String, String)>,
    ) -> Result<StatusCode, ApiError> {
        svc::delete(&ctx, &slug, &id).await.map(|()| StatusCode::NO_CONTENT)
    }

    pub async fn deliveries(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath((slug, id)): ApiPath<(String, String)>,
    ) -> Result<Json<List<DeliveryReport>>, ApiError> {
        svc::deliveries(&ctx, &slug, &id).await.map(super::super::unpaged)
    }

    pub async fn replay(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath((slug, id, delivery)): ApiPath<(String, String, String)>,
    ) -> Result<StatusCode, ApiError> {
        svc::replay(&ctx, &slug, &id, &delivery)
            .await
            .map(|()| StatusCode::ACCEPTED)
    }
}

pub mod alert_rules {
    use axum::http::StatusCode;
    use axum::Json;
    use cairn_store::alerts::AlertRule;

    use super::Created;
    use crate::auth::TenantAdminCtx;
    use crate::error::ApiError;
    use crate::extract::{ApiJson, ApiPath};
    use crate::service::alert_rules::{self as svc, CreateRule};
    use crate::service::List;

    pub async fn create(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath(slug): ApiPath<String>,
        ApiJson(body): ApiJson<CreateRule>,
    ) -> Result<Created<AlertRule>, ApiError> {
        svc::create(&ctx, &slug, body).await.map(Created)
    }

    pub async fn index(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath(slug): ApiPath<String>,
    ) -> Result<Json<List<AlertRule>>, ApiError> {
        svc::list(&ctx, &slug).await.map(super::super::unpaged)
    }

    pub async fn delete(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath((slug, name)): ApiPath<(String, String)>,
    ) -> Result<StatusCode, ApiError> {
        svc::delete(&ctx, &slug, &name).await.map(|()| StatusCode::NO_CONTENT)
    }
}

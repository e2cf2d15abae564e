//! Webhooks (inbound sources and events, outbound endpoints) and alert rules.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete as del, get, post, put};
use axum::{Json, Router};
use cairn_store::webhooks::WebhookSource;

use super::Created;
use crate::auth::TenantAdminCtx;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestMeta};
use crate::service::webhook_handlers::{self as handlers, EventsQuery, Handled, Rotate, Rotated};
use crate::service::webhooks::{self, CreateSource, CreatedSource, Received};
use crate::service::List;
use crate::state::AppState;

/// The `/api/v1` routes of this module (`/hooks/…` is mounted at the root).
pub fn routes() -> Router<AppState> {
    let t = "/tenants/{slug}";
    Router::new()
        .route(&format!("{t}/webhook-sources"), post(create).get(index))
        .route(&format!("{t}/webhook-sources/{{name}}"), del(delete))
        .route(&format!("{t}/webhook-sources/{{name}}/handlers"), put(set_handlers))
        .route(&format!("{t}/webhook-sources/{{name}}/rotate-secret"), post(rotate))
        .route(&format!("{t}/webhook-events"), get(events))
        .route(&format!("{t}/webhook-events/{{id}}"), get(event))
        .route(&format!("{t}/webhook-events/{{id}}/rerun"), post(rerun))
        .route(
            &format!("{t}/alert-rules"),
            post(alert_rules::create).get(alert_rules::index),
        )
        .route(&format!("{t}/alert-rules/{{name}}"), del(alert_rules::delete))
        .route(
            "/alert-rules",
            post(alert_rules::create_platform).get(alert_rules::index_platform),
        )
        .route("/alert-rules/{name}", del(alert_rules::delete_platform))
        .route(
            &format!("{t}/webhook-endpoints"),
            post(endpoints::create).get(endpoints::index),
        )
        .route(&format!("{t}/webhook-endpoints/{{id}}"), del(endpoints::delete))
        .route(&format!("{t}/webhook-endpoints/{{id}}/enable"), post(endpoints::enable))
        .route(
            &format!("{t}/webhook-endpoints/{{id}}/deliveries"),
            get(endpoints::deliveries),
        )
        .route(
            &format!("{t}/webhook-endpoints/{{id}}/deliveries/{{delivery}}/replay"),
            post(endpoints::replay),
        )
}

/// A delivery from a sender: no credentials but its signature.
pub async fn receive(
    State(app): State<AppState>,
    meta: RequestMeta,
    ApiPath((slug, source)): ApiPath<(String, String)>,
    headers: HeaderMap,
    too_large: Option<axum::Extension<crate::BodyTooLarge>>,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let ctx = webhooks::sender(&app, meta);
    let body = if too_large.is_some() { None } else { Some(&body[..]) };
    webhooks::receive(&ctx, &slug, &source, &headers, body).await.map(Json)
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

pub async fn set_handlers(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<WebhookSource>, ApiError> {
    handlers::set_handlers(&ctx, &slug, &name, body).await.map(Json)
}

pub async fn rotate(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Rotate>,
) -> Result<Json<Rotated>, ApiError> {
    handlers::rotate(&ctx, &slug, &name, body).await.map(Json)
}

pub async fn events(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<List<cairn_store::webhooks::StoredWebhookEvent>>, ApiError> {
    handlers::events(&ctx, &slug, q).await.map(Json)
}

pub async fn event(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<Json<cairn_store::webhooks::StoredWebhookEvent>, ApiError> {
    handlers::event(&ctx, &slug, &id).await.map(Json)
}

pub async fn rerun(
    TenantAdminCtx(ctx): TenantAdminCtx,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<Json<Handled>, ApiError> {
    handlers::rerun(&ctx, &slug, &id).await.map(Json)
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

    pub async fn enable(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath((slug, id)): ApiPath<(String, String)>,
    ) -> Result<Json<WebhookEndpoint>, ApiError> {
        svc::enable(&ctx, &slug, &id).await.map(Json)
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
    use crate::auth::{OperatorCtx, TenantAdminCtx};
    use crate::error::ApiError;
    use crate::extract::{ApiJson, ApiPath};
    use crate::service::alert_rules::{self as svc, CreateRule, RuleView};
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
    ) -> Result<Json<List<RuleView>>, ApiError> {
        svc::list(&ctx, &slug).await.map(super::super::unpaged)
    }

    pub async fn delete(
        TenantAdminCtx(ctx): TenantAdminCtx,
        ApiPath((slug, name)): ApiPath<(String, String)>,
    ) -> Result<StatusCode, ApiError> {
        svc::delete(&ctx, &slug, &name).await.map(|()| StatusCode::NO_CONTENT)
    }

    pub async fn create_platform(
        OperatorCtx(ctx): OperatorCtx,
        ApiJson(body): ApiJson<CreateRule>,
    ) -> Result<Created<AlertRule>, ApiError> {
        svc::create_platform(&ctx, body).await.map(Created)
    }

    pub async fn index_platform(OperatorCtx(ctx): OperatorCtx) -> Result<Json<List<RuleView>>, ApiError> {
        svc::list_platform(&ctx).await.map(super::super::unpaged)
    }

    pub async fn delete_platform(
        OperatorCtx(ctx): OperatorCtx,
        ApiPath(name): ApiPath<String>,
    ) -> Result<StatusCode, ApiError> {
        svc::delete_platform(&ctx, &name).await.map(|()| StatusCode::NO_CONTENT)
    }
}

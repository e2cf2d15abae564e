//! OAuth clients: dynamic registration (RFC 7591) at `/t/{slug}/oauth/register`, and
//! the admin operations behind REST and the CLI.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_core::audit::{Actor, Outcome};
use cairn_core::ids::{TenantId, UserId};
use cairn_core::oauth::{ClientMetadata, Source, ValidClient, CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX};
use cairn_core::secret::mint_token;
use cairn_store::oauth_apps::{NewOAuthApp, OAuthApp, Registration};
use cairn_store::{Store, StoreError};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::json;

use super::error::OAuthError;
use super::AuthServer;

/// A client as created, with its secret (confidential clients) shown this once.
#[derive(Serialize)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub app: OAuthApp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// RFC 7591 echoes the registered metadata: `scope` as a string, `response_types`.
    pub scope: String,
    pub response_types: [&'static str; 1],
    pub client_id_issued_at: i64,
    /// RFC 7591: 0 = the secret does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
}

impl std::fmt::Debug for CreatedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedClient")
            .field("client_id", &self.app.client_id)
            .finish_non_exhaustive()
    }
}

/// Stores a validated client under a fresh id, minting a secret if it is confidential.
pub async fn create_client(
    store: &Store,
    tenant: TenantId,
    client: &ValidClient,
    registration: Registration,
    created_by: Option<UserId>,
) -> Result<CreatedClient, StoreError> {
    let client_id = format!("{CLIENT_ID_PREFIX}{}", uuid::Uuid::now_v7().simple());
    let secret = (!client.is_public()).then(|| mint_token(CLIENT_SECRET_PREFIX));
    let app = store
        .create_oauth_app(
            tenant,
            &NewOAuthApp {
                client_id: &client_id,
                client,
                secret_hash: secret.as_ref().map(|s| &s.digest),
                registration,
                created_by,
            },
        )
        .await?;
    Ok(CreatedClient {
        scope: cairn_core::oauth::scope_string(&app.client.scopes),
        response_types: ["code"],
        client_id_issued_at: app.created_at.timestamp(),
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret.map(|s| s.plaintext.expose_secret().to_owned()),
        app,
    })
}

/// `POST /t/{slug}/oauth/register` (RFC 7591). Open registration, as the MCP spec
/// expects, but rate-limited per address and switchable per tenant.
pub async fn register(server: AuthServer, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    if !server.tenant.oauth_dynamic_registration {
        let mut e = OAuthError::new(
            "access_denied",
            "dynamic client registration is disabled for this tenant",
        );
        e.status = StatusCode::FORBIDDEN;
        return Err(e);
    }
    if !is_json(&headers) {
        let mut e = OAuthError::new(
            "invalid_request",
            "client metadata is sent as application/json (RFC 7591)",
        );
        e.status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return Err(e);
    }
    let ip: IpAddr = server
        .meta
        .source_ip
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if server.oauth().registrations.check_key(&(server.tenant.id, ip)).is_err() {
        let mut e = OAuthError::new(
            "too_many_requests",
            "too many registrations from this address; retry later",
        );
        e.status = StatusCode::TOO_MANY_REQUESTS;
        return Err(e);
    }
    let meta: ClientMetadata = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::new(
            "invalid_client_metadata",
            format!("the body is not valid client metadata: {e}"),
        )
    })?;
    let client = match meta.validate(Source::Registration, None) {
        Ok(c) => c,
        Err(e) => {
            let event = server
                .event(Actor::Anonymous, "oauth.client_registration", Outcome::Denied)
                .details(json!({ "reason": e.to_string() }));
            server.audit(event).await;
            return Err(OAuthError::new(e.code(), e.to_string()));
        }
    };
    let created = create_client(
        &server.state.store,
        server.tenant.id,
        &client,
        Registration::Dynamic,
        None,
    )
    .await?;
    let event = server
        .event(Actor::Anonymous, "oauth.client_registered", Outcome::Success)
        .target(created.app.client_id.clone())
        .details(json!({
            "registration": "dynamic",
            "client_name": created.app.client.client_name,
            "redirect_uris": created.app.client.redirect_uris,
            "confidential": created.client_secret.is_some(),
        }));
    server.audit(event).await;
    let mut resp = (StatusCode::CREATED, Json(created)).into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `Content-Type: application/json`, parameters (charset) aside.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

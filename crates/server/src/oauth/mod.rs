//! Each tenant's OAuth 2.1 authorization server (issuer `{public_url}/t/{slug}`) and the
//! resource-server side of the MCP endpoint (`{public_url}/t/{slug}/mcp`).
//!
//! - [`metadata`]: RFC 9728 / RFC 8414 discovery documents and the JWKS;
//! - [`register`]: dynamic client registration (RFC 7591) and admin-created clients;
//! - [`cimd`]: clients identified by a Client ID Metadata Document URL;
//! - [`authorize`]: the authorization endpoint with login and consent pages;
//! - [`token`]: token, revocation (RFC 7009) and introspection (RFC 7662) endpoints;
//! - [`jwt`]: access-token signing keys and verification.

mod authorize;
pub mod cimd;
pub mod error;
pub mod invitation;
pub mod jwt;
mod metadata;
mod pages;
pub use pages::{escape, html as pages_html};
pub mod register;
mod token;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderName, Method, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::ids::TenantId;
use cairn_core::oauth::ValidClient;
use cairn_core::secret::TokenDigest;
use cairn_core::tenant::{Tenant, TenantStatus};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::sync::Cache;
use tower_http::cors::{Any, CorsLayer};
use uuid::Uuid;

use crate::config::Config;
use crate::extract::RequestMeta;
use crate::state::AppState;
use error::OAuthError;

/// The authorization server's shared parts, one per process.
pub struct OAuth {
    pub signer: jwt::Signer,
    pub cimd: cimd::CimdFetcher,
    sealer: pages::Sealer,
    registrations: DefaultKeyedRateLimiter<(TenantId, IpAddr)>,
    /// Login attempts per tenant and e-mail (password guessing).
    logins: DefaultKeyedRateLimiter<(TenantId, String)>,
    /// Grant id → still active. Revocations on this replica evict at once; others
    /// notice within the TTL.
    grants: Cache<(TenantId, Uuid), bool>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth").finish_non_exhaustive()
    }
}

impl OAuth {
    pub fn new(config: &Config, secret: &[u8; 32], keyring: Arc<crate::crypto::Keyring>) -> Self {
        let per_minute = NonZeroU32::new(config.oauth_registrations_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            signer: jwt::Signer::new(Duration::from_secs(config.oauth_access_token_ttl_secs), keyring),
            cimd: cimd::CimdFetcher::new(config.oauth_cimd_allow_http_loopback),
            sealer: pages::Sealer::new(secret),
            registrations: RateLimiter::keyed(Quota::per_minute(per_minute)),
            logins: RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN))),
            grants: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
        }
    }

    /// Whether the grant behind an access token is still active (not revoked).
    pub async fn grant_active(
        &self,
        store: &cairn_store::Store,
        tenant: TenantId,
        grant: Uuid,
    ) -> Result<bool, cairn_store::StoreError> {
        if let Some(active) = self.grants.get(&(tenant, grant)) {
            return Ok(active);
        }
        let active = store.get_oauth_grant(tenant, grant).await?.is_some_and(|g| !g.revoked);
        self.grants.insert((tenant, grant), active);
        Ok(active)
    }

    pub fn forget_grant(&self, tenant: TenantId, grant: Uuid) {
        self.grants.insert((tenant, grant), false);
    }

    pub fn prune(&self) {
        self.registrations.retain_recent();
        self.logins.retain_recent();
    }
}

pub fn issuer(config: &Config, slug: &str) -> String {
    format!("{}/t/{slug}", config.public_base_url())
}

pub fn resource(config: &Config, slug: &str) -> String {
    format!("{}/t/{slug}/mcp", config.public_base_url())
}

pub fn resource_metadata_url(config: &Config, slug: &str) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/t/{slug}/mcp",
        config.public_base_url()
    )
}

pub fn router() -> Router<AppState> {
    // Browser-based MCP clients (the Inspector, web apps) discover, register and fetch
    // tokens with fetch(): these endpoints take no cookies, so any origin may call them.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(Duration::from_secs(600));
    let api = Router::new()
        .route(
            "/.well-known/oauth-protected-resource/t/{slug}/mcp",
            get(metadata::protected_resource),
        )
        .route(
            "/t/{slug}/mcp/.well-known/oauth-protected-resource",
            get(metadata::protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server/t/{slug}",
            get(metadata::authorization_server),
        )
        .route(
            "/.well-known/openid-configuration/t/{slug}",
            get(metadata::authorization_server),
        )
        .route(
            "/t/{slug}/.well-known/oauth-authorization-server",
            get(metadata::authorization_server),
        )
        .route(
            "/t/{slug}/.well-known/openid-configuration",
            get(metadata::authorization_server),
        )
        .route("/t/{slug}/jwks.json", get(metadata::jwks))
        .route("/t/{slug}/oauth/token", post(token::token))
        .route("/t/{slug}/oauth/revoke", post(token::revoke))
        .route("/t/{slug}/oauth/introspect", post(token::introspect))
        .route("/t/{slug}/oauth/register", post(register::register))
        .layer(cors);
    // The pages carry cookies and forms: same origin only.
    let pages = Router::new()
        .route("/t/{slug}/connections/callback", get(crate::connections::callback))
        .route("/t/{slug}/oauth/authorize", get(authorize::start))
        .route("/t/{slug}/oauth/login", post(authorize::login))
        .route("/t/{slug}/oauth/consent", post(authorize::consent))
        .route(
            "/t/{slug}/invitations/{token}",
            get(invitation::show).post(invitation::accept),
        );
    api.merge(pages)
}

/// The tenant whose authorization server a request addresses, with the request facts
/// the audit trail needs. Unknown or suspended tenants are refused here.
pub struct AuthServer {
    pub state: AppState,
    pub tenant: Arc<Tenant>,
    pub issuer: String,
    pub resource: String,
    pub meta: RequestMeta,
}

impl FromRequestParts<AppState> for AuthServer {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OAuthError> {
        let Path(slug) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| OAuthError::invalid_request("malformed path"))?;
        let meta = RequestMeta::from_request_parts(parts, state).await.unwrap_or_default();
        let tenant = state.tenants.get(&state.store, &slug).await?;
        let Some(tenant) = tenant else {
            let mut e = OAuthError::invalid_request("no such tenant");
            e.status = StatusCode::NOT_FOUND;
            return Err(e);
        };
        if tenant.status == TenantStatus::Suspended {
            let mut e = OAuthError::new("access_denied", "this tenant is suspended");
            e.status = StatusCode::FORBIDDEN;
            return Err(e);
        }
        Ok(Self {
            issuer: issuer(&state.config, &slug),
            resource: resource(&state.config, &slug),
            state: state.clone(),
            tenant,
            meta,
        })
    }
}

impl AuthServer {
    pub fn oauth(&self) -> &OAuth {
        &self.state.oauth
    }

    pub fn event(&self, actor: Actor, action: &'static str, outcome: Outcome) -> AuditEvent {
        let ctx = crate::state::Ctx {
            state: self.state.clone(),
            actor,
            meta: self.meta.clone(),
        };
        ctx.event(action, outcome).tenant(self.tenant.id)
    }

    pub async fn audit(&self, event: AuditEvent) {
        self.state.audit.emit(event).await;
    }

    /// A registered client or a metadata-document client. `Ok(None)`: unknown client.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        if cimd::CimdFetcher::is_document_id(client_id) {
            let meta = self
                .oauth()
                .cimd
                .resolve(client_id)
                .await
                .map_err(|e| OAuthError::new("invalid_client", e))?;
            return Ok(Some(Client {
                id: client_id.to_owned(),
                meta,
                secret_hash: None,
            }));
        }
        if client_id.is_empty() || client_id.len() > 200 {
            return Ok(None);
        }
        let app = self.state.store.get_oauth_app(self.tenant.id, client_id).await?;
        Ok(app.map(|a| Client {
            id: a.client_id,
            meta: Arc::new(a.client),
            secret_hash: a.secret_hash,
        }))
    }
}

/// A client as the endpoints see it, wherever it came from.
pub struct Client {
    pub id: String,
    pub meta: Arc<ValidClient>,
    pub secret_hash: Option<TokenDigest>,
}

impl Client {
    pub fn display_name(&self) -> &str {
        self.meta.client_name.as_deref().unwrap_or(&self.id)
    }
}

//! The MCP endpoint of each tenant: `/t/{slug}/mcp` (Streamable HTTP, via rmcp) and
//! `cairn mcp --tenant …` (stdio). Protocol decisions are recorded in README.md here.
//!
//! The transport is rmcp's; Cairn adds, in front of it, the [`gate`] (tenant, API key,
//! scope, session binding) and, behind it, a [`handler::CairnMcp`] that serves the
//! tenant's catalogue: providers of tools, resources and prompts ([`catalog`]).

pub mod catalog;
mod fixtures;
pub mod gate;
pub mod handler;
mod whoami;

use std::sync::Arc;

use cairn_core::api_key::{ApiKey, Scope};
use cairn_core::tenant::Tenant;

/// Who opened an MCP session: tenant, key, user. A session only serves its principal.
pub type Principal = (
    cairn_core::ids::TenantId,
    Option<cairn_core::ids::ApiKeyId>,
    Option<cairn_core::ids::UserId>,
);

/// Who is calling, as established by the gate (HTTP) or the CLI (stdio).
#[derive(Debug, Clone)]
pub struct McpCaller {
    pub tenant: Arc<Tenant>,
    /// `None` for stdio (local trust), the anonymous conformance tenant and users
    /// signed in through the tenant's identity provider.
    pub key: Option<ApiKey>,
    /// The user behind the call: the key's user, or the identity provider's.
    pub user: Option<cairn_core::ids::UserId>,
    pub scopes: Vec<Scope>,
    /// Local trust (stdio, the conformance tenant): not rate limited.
    pub trusted: bool,
}

impl McpCaller {
    /// A caller with every scope: stdio, or the unauthenticated conformance tenant.
    pub fn trusted(tenant: Arc<Tenant>) -> Self {
        Self {
            tenant,
            key: None,
            user: None,
            scopes: Scope::ALL.to_vec(),
            trusted: true,
        }
    }

    /// A member signed in with an identity-provider token: scopes follow the role.
    pub fn member(tenant: Arc<Tenant>, user: cairn_core::ids::UserId, role: cairn_core::user::Role) -> Self {
        let scopes = match role {
            cairn_core::user::Role::Member => vec![Scope::McpTools, Scope::McpResources, Scope::McpPrompts],
            cairn_core::user::Role::Admin | cairn_core::user::Role::Owner => Scope::ALL.to_vec(),
        };
        Self {
            tenant,
            key: None,
            user: Some(user),
            scopes,
            trusted: false,
        }
    }

    /// A client holding an OAuth access token of this tenant: the token's scopes, and its
    /// user unless it is a client-credentials token.
    pub fn oauth(tenant: Arc<Tenant>, claims: &crate::oauth::jwt::AccessClaims) -> Self {
        let scopes = claims.scope.split(' ').filter_map(|s| Scope::parse(s).ok()).collect();
        Self {
            tenant,
            key: None,
            user: cairn_core::ids::UserId::parse("sub", &claims.sub).ok(),
            scopes,
            trusted: false,
        }
    }

    pub fn principal(&self) -> Principal {
        (self.tenant.id, self.key.as_ref().map(|k| k.id), self.user)
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The usage event of one request of this caller, started at `started`.
    pub fn usage(
        &self,
        method: &str,
        tool: Option<String>,
        outcome: cairn_core::usage::UsageOutcome,
        started: std::time::Instant,
        bytes: (usize, usize),
    ) -> cairn_core::usage::UsageEvent {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        cairn_core::usage::UsageEvent {
            tenant: self.tenant.id,
            key: self.key.as_ref().map(|k| k.id),
            user: self.user,
            occurred_at: chrono::Utc::now(),
            method: method.to_owned(),
            tool,
            outcome,
            latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            request_bytes: count(bytes.0),
            response_bytes: count(bytes.1),
            units: 0,
        }
    }
}

/// The MCP routes: rmcp's Streamable HTTP service behind the [`gate`].
pub fn router(app: crate::state::AppState) -> axum::Router<crate::state::AppState> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(app.config.mcp_hosts())
        .with_allowed_origins(app.config.mcp_origins())
        // No allowed origin configured means no browser origin is allowed (DNS rebinding).
        .enforce_origin_validation()
        .with_max_request_body_bytes(app.config.body_limit_bytes);
    let factory_app = app.clone();
    let service = StreamableHttpService::new(
        move || Ok(handler::CairnMcp::http(factory_app.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let gate = Arc::new(gate::Gate::new(app));
    axum::Router::new()
        .route_service("/t/{slug}/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(gate, gate::gate))
}

use std::sync::Arc;

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::tenant::{Slug, Tenant};
use cairn_store::{Store, StoreError};
use moka::sync::Cache;

use crate::audit::AuditSink;
use crate::config::Config;
use crate::extract::RequestMeta;
use crate::keys::KeyVerifier;
use crate::limits::Limits;
use crate::usage::UsageSink;

/// Shared by every handler, the CLI and the workers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub audit: AuditSink,
    pub usage: UsageSink,
    pub config: Arc<Config>,
    pub keys: Arc<KeyVerifier>,
    pub limits: Arc<Limits>,
    pub tenants: TenantCache,
    pub idp: Arc<crate::idp::IdpVerifier>,
    pub oauth: Arc<crate::oauth::OAuth>,
    pub keyring: Arc<crate::crypto::Keyring>,
    pub connections: Arc<crate::connections::Connections>,
    pub kb: Arc<crate::kb::Knowledge>,
}

/// Slug → tenant for the MCP hot path, for a few seconds. Updates and deletions on this
/// replica evict at once; other replicas notice within the TTL.
#[derive(Clone, Debug)]
pub struct TenantCache(Cache<String, Option<Arc<Tenant>>>);

impl TenantCache {
    fn new() -> Self {
        Self(
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(10))
                .build(),
        )
    }

    pub async fn get(&self, store: &Store, slug: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
        if let Some(hit) = self.0.get(slug) {
            return Ok(hit);
        }
        let Ok(parsed) = Slug::parse(slug) else { return Ok(None) };
        let tenant = match store.get_tenant_by_slug(&parsed).await {
            Ok(t) => Some(Arc::new(t)),
            Err(StoreError::TenantNotFound) => None,
            Err(e) => return Err(e),
        };
        self.0.insert(slug.to_owned(), tenant.clone());
        Ok(tenant)
    }

    pub fn evict(&self, slug: &str) {
        self.0.invalidate(slug);
    }
}

impl AppState {
    /// Assembles the shared state: loads the API-key pepper and builds the key cache.
    pub fn new(store: Store, audit: AuditSink, usage: UsageSink, config: Config) -> Result<Self, String> {
        let pepper = crate::keys::load_or_create_pepper(config.api_key_pepper.as_deref(), &config.data_dir)?;
        let ttl = std::time::Duration::from_secs(config.api_key_cache_ttl_secs);
        let keks = crate::crypto::ConfigKeks::load(&config)?;
        let keyring = Arc::new(crate::crypto::Keyring::new(Arc::new(keks)));
        let oauth = Arc::new(crate::oauth::OAuth::new(&config, &pepper, keyring.clone()));
        let keys = Arc::new(KeyVerifier::new(cairn_core::api_key::KeyHasher::new(pepper), ttl));
        let limits = Arc::new(Limits::new(&config)?);
        let kb = Arc::new(crate::kb::Knowledge::new(&config.kb).map_err(|e| e.to_string())?);
        Ok(Self {
            store,
            audit,
            usage,
            config: Arc::new(config),
            keys,
            limits,
            tenants: TenantCache::new(),
            idp: Arc::new(crate::idp::IdpVerifier::new()),
            oauth,
            keyring,
            connections: Arc::new(crate::connections::Connections::default()),
            kb,
        })
    }
}

impl AppState {
    /// Start-up checks that need the database: the master keys match the database.
    pub async fn verify(&self) -> Result<(), String> {
        self.keyring.verify(&self.store).await
    }
}

/// Who is acting, on whose behalf, from where: what a service call needs besides its
/// input. Built by an authenticating extractor (REST) or by the CLI.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub state: AppState,
    pub actor: Actor,
    pub meta: RequestMeta,
}

impl Ctx {
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// An audit event pre-filled with this context's actor and request facts.
    pub fn event(&self, action: &'static str, outcome: Outcome) -> AuditEvent {
        let mut e = AuditEvent::new(self.actor.clone(), action, outcome);
        e.request_id.clone_from(&self.meta.request_id);
        e.source_ip.clone_from(&self.meta.source_ip);
        e.user_agent.clone_from(&self.meta.user_agent);
        e
    }

    pub async fn audit(&self, event: AuditEvent) {
        self.state.audit.emit(event).await;
    }
}

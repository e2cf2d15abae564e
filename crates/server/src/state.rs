use std::sync::Arc;

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_store::Store;

use crate::audit::AuditSink;
use crate::config::Config;
use crate::extract::RequestMeta;
use crate::keys::KeyVerifier;

/// Shared by every handler, the CLI and the workers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub audit: AuditSink,
    pub config: Arc<Config>,
    pub keys: Arc<KeyVerifier>,
}

impl AppState {
    /// Assembles the shared state: loads the API-key pepper and builds the key cache.
    pub fn new(store: Store, audit: AuditSink, config: Config) -> Result<Self, String> {
        let pepper = crate::keys::load_or_create_pepper(config.api_key_pepper.as_deref(), &config.data_dir)?;
        let ttl = std::time::Duration::from_secs(config.api_key_cache_ttl_secs);
        let keys = Arc::new(KeyVerifier::new(cairn_core::api_key::KeyHasher::new(pepper), ttl));
        Ok(Self {
            store,
            audit,
            config: Arc::new(config),
            keys,
        })
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

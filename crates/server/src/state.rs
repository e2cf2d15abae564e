use std::sync::Arc;

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_store::Store;

use crate::audit::AuditSink;
use crate::config::Config;
use crate::extract::RequestMeta;

/// Shared by every handler, the CLI and the workers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub audit: AuditSink,
    pub config: Arc<Config>,
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

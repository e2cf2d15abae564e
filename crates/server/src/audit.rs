//! The audit writer: requests enqueue events; a [`Batcher`] writes them in batches.

use cairn_core::audit::AuditEvent;
use cairn_store::Store;
use tokio::task::JoinHandle;

use crate::batch::Batcher;

/// Handle to enqueue audit events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink(Batcher<AuditEvent>);

impl AuditSink {
    pub fn start(store: Store) -> (Self, JoinHandle<()>) {
        let (batcher, task) = Batcher::start("audit", move |events: Vec<AuditEvent>| {
            let store = store.clone();
            async move { store.insert_audit_events(&events).await.map_err(|e| e.to_string()) }
        });
        (Self(batcher), task)
    }

    pub async fn emit(&self, event: AuditEvent) {
        self.0.push(event).await;
    }

    /// Waits until every event enqueued before this call has been written.
    pub async fn flush(&self) {
        self.0.flush().await;
    }
}

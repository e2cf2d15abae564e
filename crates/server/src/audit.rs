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
        Self::start_with_alerts(store, None)
    }

    /// Also hands every written batch to the alert evaluator (never blocking: a full
    /// queue skips alerting for that batch, the events themselves are stored).
    pub fn start_with_alerts(
        store: Store,
        alerts: Option<tokio::sync::mpsc::Sender<Vec<AuditEvent>>>,
    ) -> (Self, JoinHandle<()>) {
        let (batcher, task) = Batcher::start("audit", move |events: Vec<AuditEvent>| {
            let (store, alerts) = (store.clone(), alerts.clone());
            async move {
                store.insert_audit_events(&events).await.map_err(|e| e.to_string())?;
                if let Some(tx) = alerts {
                    if tx.try_send(events).is_err() {
                        tracing::warn!("alert queue full: a batch of audit events was not evaluated");
                    }
                }
                Ok(())
            }
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

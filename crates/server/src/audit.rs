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
    ///
    /// A batch the database keeps refusing (a few attempts, see `batch.rs`) is written
    /// again one event at a time; events their chain still refuses are set aside in
    /// `audit_dead_letters` and logged as an error, so the writer — and every `flush`
    /// waiting behind it — moves on, and `cairn audit verify` reports the chain.
    pub fn start_with_alerts(
        store: Store,
        alerts: Option<tokio::sync::mpsc::Sender<Vec<AuditEvent>>>,
    ) -> (Self, JoinHandle<()>) {
        let (store2, alerts2) = (store.clone(), alerts.clone());
        let write = move |events: Vec<AuditEvent>| {
            let (store, alerts) = (store.clone(), alerts.clone());
            async move {
                store.insert_audit_events(&events).await.map_err(|e| e.to_string())?;
                evaluate(alerts.as_ref(), events);
                Ok(())
            }
        };
        let fallback = move |events: Vec<AuditEvent>| {
            let (store, alerts) = (store2.clone(), alerts2.clone());
            async move {
                let set_aside = store
                    .insert_audit_events_one_by_one(&events)
                    .await
                    .map_err(|e| e.to_string())?;
                if set_aside.events > 0 {
                    tracing::error!(
                        set_aside = set_aside.events,
                        chained = events.len() - set_aside.events,
                        error = set_aside.error.as_deref().unwrap_or_default(),
                        "audit events could not be appended to their chain; they are kept in \
                         audit_dead_letters (run `cairn audit verify`)"
                    );
                }
                evaluate(alerts.as_ref(), events);
                Ok(())
            }
        };
        let (batcher, task) = Batcher::start_with_fallback("audit", write, fallback);
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

/// Alerting sees every event that happened, chained or set aside.
fn evaluate(alerts: Option<&tokio::sync::mpsc::Sender<Vec<AuditEvent>>>, events: Vec<AuditEvent>) {
    if let Some(tx) = alerts {
        if tx.try_send(events).is_err() {
            tracing::warn!("alert queue full: a batch of audit events was not evaluated");
        }
    }
}

//! The audit writer: requests enqueue events and move on; one background task writes
//! them in batches (one transaction per batch), so auditing never adds a commit to a
//! request's latency.

use std::time::Duration;

use cairn_core::audit::AuditEvent;
use cairn_store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Queue depth before `emit` starts to wait (back-pressure, never dropping).
const QUEUE: usize = 8192;
/// Most events written in one transaction.
const BATCH: usize = 1000;

enum Msg {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// Handle to enqueue audit events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
}

impl AuditSink {
    /// Starts the writer task. It ends once every sink clone is dropped and the queue
    /// is drained.
    pub fn start(store: Store) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(writer(store, rx));
        (Self { tx }, task)
    }

    pub async fn emit(&self, event: AuditEvent) {
        if self.tx.send(Msg::Event(Box::new(event))).await.is_err() {
            tracing::error!("audit writer has stopped; event not recorded");
        }
    }

    /// Waits until every event enqueued before this call has been written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Msg>) {
    let mut msgs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut msgs, BATCH).await > 0 {
        let mut events = Vec::with_capacity(msgs.len());
        let mut flushes = Vec::new();
        for msg in msgs.drain(..) {
            match msg {
                Msg::Event(e) => events.push(*e),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        write_with_retry(&store, &events, rx.is_closed()).await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Retries with capped back-off while the database is unreachable. Once the server is
/// shutting down it gives up after a few attempts and logs how many events were lost.
async fn write_with_retry(store: &Store, events: &[AuditEvent], shutting_down: bool) {
    if events.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 1u32.. {
        match store.insert_audit_events(events).await {
            Ok(()) => return,
            Err(e) if shutting_down && attempt >= 3 => {
                tracing::error!(error = %e, lost = events.len(), "audit batch could not be written");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, pending = events.len(), "audit batch write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

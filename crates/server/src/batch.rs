//! A queue drained by one background task that writes items in batches: the shared
//! machinery of the audit and usage writers. Requests only enqueue, so a record never
//! adds a database commit to a request; under load batches grow and commits stay few.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Queue depth before `push` waits (back-pressure rather than dropping records).
const QUEUE: usize = 8192;
/// Most items written in one transaction.
const BATCH: usize = 1000;
/// After the first item of a batch arrives, wait this long for more before writing:
/// under load this turns many small transactions into few large ones (the profile showed
/// per-transaction cost dominating metering). A flush request cuts the wait short.
const LINGER: Duration = Duration::from_millis(50);
/// Attempts of the normal write before a writer with a fallback hands the batch to it.
const WRITE_ATTEMPTS: u32 = 3;

enum Msg<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

type WriteFn<T> =
    Arc<dyn Fn(Vec<T>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync + 'static>;

/// Handle to enqueue items. Cheap to clone.
pub struct Batcher<T> {
    tx: mpsc::Sender<Msg<T>>,
    name: &'static str,
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            name: self.name,
        }
    }
}

impl<T> std::fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> Batcher<T> {
    /// Starts the writer task; it ends when every handle is dropped and the queue is
    /// drained. `write` gets each batch; it is retried while it fails (the database being
    /// unreachable is the failure this is for).
    pub fn start<F, Fut>(name: &'static str, write: F) -> (Self, JoinHandle<()>)
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self::spawn(name, Arc::new(move |items| Box::pin(write(items))), None)
    }

    /// Like [`Batcher::start`], but a batch `write` refuses [`WRITE_ATTEMPTS`] times in a
    /// row goes to `fallback`, which must store or set aside what it can: a batch that
    /// can never be written (a constraint it violates) then does not stop the writer and
    /// every `flush` behind it. `fallback` is retried while it fails.
    pub fn start_with_fallback<F, Fut, G, GFut>(name: &'static str, write: F, fallback: G) -> (Self, JoinHandle<()>)
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
        G: Fn(Vec<T>) -> GFut + Send + Sync + 'static,
        GFut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let fallback: WriteFn<T> = Arc::new(move |items| Box::pin(fallback(items)));
        Self::spawn(name, Arc::new(move |items| Box::pin(write(items))), Some(fallback))
    }

    fn spawn(name: &'static str, write: WriteFn<T>, fallback: Option<WriteFn<T>>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(drain(name, rx, write, fallback));
        (Self { tx, name }, task)
    }

    pub async fn push(&self, item: T) {
        if self.tx.send(Msg::Item(item)).await.is_err() {
            tracing::error!(writer = self.name, "writer has stopped; record not written");
        }
    }

    /// Waits until everything enqueued before this call has been written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn drain<T: Clone + Send + 'static>(
    name: &'static str,
    mut rx: mpsc::Receiver<Msg<T>>,
    write: WriteFn<T>,
    fallback: Option<WriteFn<T>>,
) {
    let mut msgs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut msgs, BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + LINGER;
        while msgs.len() < BATCH && !msgs.iter().any(|m| matches!(m, Msg::Flush(_))) {
            let room = BATCH - msgs.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut msgs, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut items = Vec::with_capacity(msgs.len());
        let mut flushes = Vec::new();
        for msg in msgs.drain(..) {
            match msg {
                Msg::Item(item) => items.push(item),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        write_with_retry(name, &write, fallback.as_ref(), items, rx.is_closed()).await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Retries with capped back-off while the database is unreachable; after
/// [`WRITE_ATTEMPTS`] failures the fallback (if any) takes over the attempts. Once the
/// server is shutting down it gives up after a few attempts (at least one of them the
/// fallback's) and logs how many records were lost.
async fn write_with_retry<T: Clone>(
    name: &'static str,
    write: &WriteFn<T>,
    fallback: Option<&WriteFn<T>>,
    items: Vec<T>,
    shutting_down: bool,
) {
    if items.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 1u32.. {
        let (result, last_resort) = match fallback {
            Some(f) if attempt > WRITE_ATTEMPTS => (f(items.clone()).await, true),
            _ => (write(items.clone()).await, fallback.is_none()),
        };
        match result {
            Ok(()) => return,
            Err(e) if shutting_down && attempt >= 3 && last_resort => {
                tracing::error!(writer = name, error = %e, lost = items.len(), "batch could not be written");
                return;
            }
            Err(e) => {
                tracing::warn!(writer = name, error = %e, attempt, pending = items.len(), "batch write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

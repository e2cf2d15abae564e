//! The usage writer: one event per MCP request, written in batches with their roll-ups.

use cairn_core::usage::UsageEvent;
use cairn_store::Store;
use tokio::task::JoinHandle;

use crate::batch::Batcher;

#[derive(Clone, Debug)]
pub struct UsageSink(Batcher<UsageEvent>);

impl UsageSink {
    pub fn start(store: Store) -> (Self, JoinHandle<()>) {
        let (batcher, task) = Batcher::start("usage", move |events: Vec<UsageEvent>| {
            let store = store.clone();
            async move { store.insert_usage_events(&events).await.map_err(|e| e.to_string()) }
        });
        (Self(batcher), task)
    }

    pub async fn record(&self, event: UsageEvent) {
        self.0.push(event).await;
    }

    pub async fn flush(&self) {
        self.0.flush().await;
    }
}

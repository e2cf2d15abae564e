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

/// Meters knowledge-base work done outside MCP (REST, CLI): `tool` is `kb.<verb>:<kb>`.
#[allow(clippy::too_many_arguments)]
pub async fn kb_event(
    app: &crate::state::AppState,
    tenant: cairn_core::ids::TenantId,
    ctx: &crate::state::Ctx,
    method: &str,
    kb: &str,
    started: std::time::Instant,
    bytes: usize,
    units: usize,
) {
    let user = match &ctx.actor {
        cairn_core::audit::Actor::User(u) => Some(*u),
        _ => None,
    };
    let verb = method.trim_start_matches("kb/");
    app.usage
        .record(UsageEvent {
            tenant,
            key: None,
            user,
            occurred_at: chrono::Utc::now(),
            method: method.to_owned(),
            tool: Some(format!("kb.{verb}:{kb}")),
            outcome: cairn_core::usage::UsageOutcome::Ok,
            latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            request_bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
            response_bytes: 0,
            units: u64::try_from(units).unwrap_or(u64::MAX),
        })
        .await;
}

//! Seeds a tenant's audit trail with N events for `scripts/audit-export-memory`:
//!
//! ```sh
//! cargo run --release -p cairn-server --example audit_seed -- DATABASE_URL TENANT_SLUG EVENTS
//! ```
//!
//! The tenant must exist (`cairn tenant create`). Events go through
//! `Store::insert_audit_events`, the audit writer's own call, 1 000 per transaction, so
//! they are chained exactly as in production (`cairn audit verify` passes) — only without
//! the request path in front. They are varied like real traffic (key lifecycle, failed
//! logins, credential reads; addresses, user agents, request ids) and spread over the
//! hours before now, so an export without `--from`/`--to` returns all of them. Not part of
//! the `cairn` binary: an operator's trail should only ever hold what happened.

use std::error::Error;
use std::time::{Duration, Instant};

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::tenant::Slug;
use cairn_store::{Store, StoreConfig};
use serde_json::json;

const BATCH: usize = 1000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, slug, events] = args.as_slice() else {
        return Err("usage: audit_seed DATABASE_URL TENANT_SLUG EVENTS".into());
    };
    let events: usize = events.parse()?;
    let store = Store::open(&StoreConfig {
        url: url.clone(),
        max_connections: 2,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(1800),
        tenant_max_concurrency: 2,
    })
    .await?;
    let slug = Slug::parse(slug).map_err(|e| e.reason)?;
    let tenant = store.get_tenant_by_slug(&slug).await?.id;
    let started = Instant::now();
    // One event per 10 ms, ending a second ago.
    let first = chrono::Utc::now() - chrono::Duration::milliseconds(10 * i64::try_from(events)? + 1000);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..events {
        let n = i64::try_from(i)?;
        let mut e = event(i).tenant(tenant);
        e.occurred_at = first + chrono::Duration::milliseconds(10 * n);
        batch.push(e);
        if batch.len() == BATCH || i + 1 == events {
            store.insert_audit_events(&batch).await?;
            batch.clear();
        }
    }
    store.close().await;
    eprintln!(
        "seeded {events} audit events into {} in {:.1} s",
        slug.as_str(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The i-th event: a rotation through the kinds a busy tenant's trail is made of.
fn event(i: usize) -> AuditEvent {
    let ip = format!("203.0.113.{}", i % 250 + 1);
    let e = match i % 4 {
        0 => AuditEvent::new(Actor::System, "auth.failed", Outcome::Failure)
            .details(json!({"credential": "api_key", "reason": "unknown_key", "path": "/t/acme/mcp"})),
        1 => AuditEvent::new(Actor::Cli, "api_key.created", Outcome::Success)
            .target(format!("key_{i:026}"))
            .details(json!({"name": format!("ci-runner-{}", i % 97), "tier": "pro", "scopes": ["mcp:tools"]})),
        2 => AuditEvent::new(Actor::Anonymous, "rate_limit.exceeded", Outcome::Denied)
            .details(json!({"limit": "key_burst", "retry_after_secs": 2, "tool": "search_kb"})),
        _ => AuditEvent::new(Actor::System, "oauth_credential.read", Outcome::Success)
            .target(format!("github:user-{}", i % 1000))
            .details(json!({"provider": "github", "purpose": "tool_call", "tool": "list_issues"})),
    };
    let mut e = e;
    e.source_ip = Some(ip);
    e.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) cairn-seed/1.0".into());
    e.request_id = Some(format!("req_{i:020}"));
    e
}

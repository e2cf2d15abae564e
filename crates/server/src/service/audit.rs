//! Audit-chain verification: walks each chain in order and reports the first row where
//! it breaks (edited, deleted or reordered rows, or a chain head that does not name the
//! newest row), and how many events were set aside outside the chain. Used by
//! `cairn audit verify`.

use cairn_core::audit::chain::{Break, ChainFields, StoredLink, Verifier};
use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::ids::TenantId;
use cairn_store::Page;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::{AppState, Ctx};

/// Links read per query: memory stays bounded whatever the chain's length.
const PAGE: i64 = 1000;

#[derive(Debug, Serialize)]
pub struct ChainReport {
    /// The tenant's slug, or `platform`.
    pub chain: String,
    /// No break and nothing set aside.
    pub ok: bool,
    pub verified: u64,
    /// Events written before chains existed (migration 0012): not covered.
    pub unchained: i64,
    /// Events the writer could not append to this chain, kept in `audit_dead_letters`.
    pub set_aside: i64,
    pub first_break: Option<Break>,
}

/// Verifies one chain (`None`: the platform chain).
pub async fn verify_chain(ctx: &Ctx, tenant: Option<TenantId>, name: &str) -> Result<ChainReport, ApiError> {
    let store = ctx.store();
    let chain = tenant.map(|t| t.as_uuid()).unwrap_or_default().hyphenated().to_string();
    // After a purge the chain starts at its checkpoint (the last purged link).
    let start = store.audit_checkpoint(tenant).await?;
    let mut after = start.as_ref().map_or(0, |(seq, _)| *seq);
    let head = store.audit_chain_head(tenant).await?;
    let mut verifier = Verifier::new(&chain, start).expect_head(head);
    let mut first_break = None;
    'pages: loop {
        let page = store.audit_chain_page(tenant, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for link in &page {
            let e = &link.event;
            let id = e.id.as_uuid().hyphenated().to_string();
            let stored = StoredLink {
                seq: link.seq,
                prev_hash: &link.prev_hash,
                hash: &link.hash,
                fields: ChainFields {
                    id: &id,
                    occurred_at_micros: e.occurred_at.timestamp_micros(),
                    actor_kind: &e.actor_kind,
                    actor_id: e.actor_id.as_deref(),
                    action: &e.action,
                    target: e.target.as_deref(),
                    outcome: &e.outcome,
                    request_id: e.request_id.as_deref(),
                    source_ip: e.source_ip.as_deref(),
                    user_agent: e.user_agent.as_deref(),
                    details: &e.details,
                },
            };
            if let Err(b) = verifier.check(&stored) {
                first_break = Some(b);
                break 'pages;
            }
        }
    }
    if first_break.is_none() {
        let head_now = store.audit_chain_head(tenant).await?;
        first_break = verifier.finish(head_now.map(|(seq, _)| seq)).err();
    }
    let set_aside = store.audit_dead_letter_count(tenant).await?;
    Ok(ChainReport {
        chain: name.to_owned(),
        ok: first_break.is_none() && set_aside == 0,
        verified: verifier.verified,
        unchained: store.audit_unchained(tenant).await?,
        set_aside,
        first_break,
    })
}

/// One tenant's chain, or every tenant's and the platform's.
pub async fn verify(ctx: &Ctx, tenant: Option<&str>) -> Result<Vec<ChainReport>, ApiError> {
    if let Some(slug) = tenant {
        let t = crate::service::tenants::resolve(ctx, slug).await?;
        return Ok(vec![verify_chain(ctx, Some(t.id), t.slug.as_str()).await?]);
    }
    let mut out = vec![verify_chain(ctx, None, "platform").await?];
    let mut page = Page {
        limit: Page::MAX_LIMIT,
        after: None,
    };
    loop {
        let tenants = ctx.store().list_tenants(&page).await?;
        for t in &tenants.items {
            out.push(verify_chain(ctx, Some(t.id), t.slug.as_str()).await?);
        }
        match tenants.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    Ok(out)
}

/// Rows deleted per purge transaction: short transactions, writers never wait long.
pub const PURGE_BATCH: i64 = 1000;
/// Platform events are kept this long; tenants choose their own (at least 90 days).
pub const PLATFORM_RETENTION_DAYS: i64 = 365;

#[derive(Debug, Serialize)]
pub struct PurgeReport {
    pub chain: String,
    pub retention_days: i64,
    pub deleted: u64,
    /// Events from before chains existed, deleted by age alone.
    pub unchained: u64,
    /// The chain's new checkpoint, if anything was deleted.
    pub through_seq: Option<i64>,
}

/// Purges one chain down to its retention, in batches, then records `audit.purged` in
/// that same chain (so the purge itself is part of the verifiable trail).
pub async fn purge_chain(
    app: &AppState,
    tenant: Option<TenantId>,
    name: &str,
    retention_days: i64,
    now: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<PurgeReport, ApiError> {
    let cutoff = now - chrono::Duration::days(retention_days);
    let mut report = PurgeReport {
        chain: name.to_owned(),
        retention_days,
        deleted: 0,
        unchained: 0,
        through_seq: None,
    };
    loop {
        let step = app.store.purge_audit_prefix(tenant, cutoff, batch).await?;
        report.deleted += step.deleted;
        report.unchained += step.unchained;
        report.through_seq = step.through_seq.or(report.through_seq);
        if step.deleted == 0 {
            break;
        }
    }
    if report.deleted + report.unchained > 0 {
        let mut event = AuditEvent::new(Actor::System, "audit.purged", Outcome::Success).details(serde_json::json!({
            "retention_days": retention_days,
            "deleted": report.deleted + report.unchained,
            "checkpoint_seq": report.through_seq,
        }));
        if let Some(t) = tenant {
            event = event.tenant(t);
        }
        app.audit.emit(event).await;
    }
    Ok(report)
}

/// Every tenant's chain by its own retention, and the platform chain.
pub async fn purge(app: &AppState, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<PurgeReport>, ApiError> {
    let mut out = vec![purge_chain(app, None, "platform", PLATFORM_RETENTION_DAYS, now, PURGE_BATCH).await?];
    let mut page = Page {
        limit: Page::MAX_LIMIT,
        after: None,
    };
    loop {
        let tenants = app.store.list_tenants(&page).await?;
        for t in &tenants.items {
            let days = i64::from(t.audit_retention_days);
            out.push(purge_chain(app, Some(t.id), t.slug.as_str(), days, now, PURGE_BATCH).await?);
        }
        match tenants.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    Ok(out)
}

//! Data-key rotation, rollback and status for operators and tenant admins (REST + CLI).

use cairn_core::audit::Outcome;
use cairn_store::crypto_jobs::CryptoJob;
use cairn_store::data_keys::DataKeyState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::crypto::rotation;
use crate::error::{ApiError, Code};
use crate::state::Ctx;

#[derive(Debug, Serialize)]
pub struct DataKeyView {
    pub id: Uuid,
    pub version: i32,
    pub kek_version: i32,
    pub state: &'static str,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct EncryptionStatus {
    pub data_keys: Vec<DataKeyView>,
    /// The oldest data-key version that still decrypts; older ones are retired.
    pub min_decryption_version: Option<i32>,
    pub active_master_key_version: u32,
    pub jobs: Vec<CryptoJob>,
}

pub async fn status(ctx: &Ctx, slug: &str) -> Result<EncryptionStatus, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let keys = ctx.store().data_keys(tenant.id).await?;
    let min_decryption_version = keys
        .iter()
        .filter(|k| k.state != DataKeyState::Retired)
        .map(|k| k.version)
        .min();
    Ok(EncryptionStatus {
        data_keys: keys
            .iter()
            .map(|k| DataKeyView {
                id: k.id,
                version: k.version,
                kek_version: k.kek_version,
                state: k.state.as_str(),
                created_at: k.created_at,
            })
            .collect(),
        min_decryption_version,
        active_master_key_version: ctx.state.keyring.provider().active_version(),
        jobs: ctx.store().crypto_jobs(Some(tenant.id), 20).await?,
    })
}

pub async fn rotate(ctx: &Ctx, slug: &str) -> Result<CryptoJob, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let job = rotation::rotate(&ctx.state, tenant.id).await?;
    let event = ctx
        .event("key_rotation.requested", Outcome::Success)
        .tenant(tenant.id)
        .target(job.id.to_string());
    ctx.audit(event).await;
    Ok(job)
}

/// Rotates every tenant's data key.
pub async fn rotate_all(ctx: &Ctx) -> Result<Vec<CryptoJob>, ApiError> {
    let mut jobs = Vec::new();
    let mut page = cairn_store::Page {
        limit: cairn_store::Page::MAX_LIMIT,
        after: None,
    };
    loop {
        let tenants = ctx.store().list_tenants(&page).await?;
        for tenant in &tenants.items {
            jobs.push(rotation::rotate(&ctx.state, tenant.id).await?);
        }
        match tenants.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let event = ctx
        .event("key_rotation.requested", Outcome::Success)
        .details(serde_json::json!({ "tenants": jobs.len() }));
    ctx.audit(event).await;
    Ok(jobs)
}

pub async fn rollback(ctx: &Ctx, slug: &str) -> Result<CryptoJob, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let Some(job) = rotation::rollback(&ctx.state, tenant.id).await? else {
        return Err(ApiError::new(
            Code::Conflict,
            "there is no previous data key that can still decrypt (never rotated, or already retired)",
        ));
    };
    let event = ctx
        .event("key_rotation.rollback_requested", Outcome::Success)
        .tenant(tenant.id)
        .target(job.id.to_string());
    ctx.audit(event).await;
    Ok(job)
}

pub async fn jobs(ctx: &Ctx) -> Result<Vec<CryptoJob>, ApiError> {
    Ok(ctx.store().crypto_jobs(None, 100).await?)
}

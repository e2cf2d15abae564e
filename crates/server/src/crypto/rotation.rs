//! Data-key rotation and rollback, and the background job that re-encrypts every
//! sealed column of a tenant under the new key, in batches, with progress persisted
//! and a lease so that one replica works on a job at a time. A job killed mid-way is
//! picked up again when its lease expires; rows already done are skipped because the
//! batch query only returns rows not yet under the target key.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::crypto::{self, Key32};
use cairn_core::ids::TenantId;
use cairn_store::crypto_jobs::{CryptoJob, JobProgress, Progress, SealedColumn, SEALED_COLUMNS};
use serde_json::json;
use uuid::Uuid;

use super::{KeyringError, Slot, ACTIVE_TTL};
use crate::state::AppState;

const LEASE: Duration = Duration::from_secs(15);

/// Creates a new active data key for `tenant` and the job that moves its rows to it.
pub async fn rotate(state: &AppState, tenant: TenantId) -> Result<CryptoJob, KeyringError> {
    let store = &state.store;
    // Make sure there is a key to rotate from (a tenant that never encrypted anything).
    let kek = state.keyring.provider().active_version();
    let key = state.keyring.provider().key(kek).ok_or(KeyringError::MissingKek(kek))?;
    let (id, dek) = (Uuid::now_v7(), Key32::generate());
    let wrapped = crypto::wrap_dek(key, kek, tenant.as_uuid(), id, &dek)?;
    let version = store
        .rotate_data_key(tenant, id, i32::try_from(kek).unwrap_or(i32::MAX), &wrapped)
        .await?;
    state.keyring.forget(tenant);
    let job = start_job(state, tenant, "rotate", id).await?;
    audit(
        state,
        AuditEvent::new(Actor::System, "key_rotation.started", Outcome::Success)
            .tenant(tenant)
            .target(job.id.to_string())
            .details(json!({ "data_key_version": version, "rows": total(&job.progress) })),
    )
    .await;
    Ok(job)
}

/// Returns to the previous data key while it is still decryptable, and re-encrypts back.
/// `Ok(None)`: there is no previous key (never rotated, or it is retired already).
pub async fn rollback(state: &AppState, tenant: TenantId) -> Result<Option<CryptoJob>, KeyringError> {
    let Some(previous) = state.store.rollback_data_key(tenant).await? else {
        return Ok(None);
    };
    state.keyring.forget(tenant);
    let job = start_job(state, tenant, "rollback", previous).await?;
    audit(
        state,
        AuditEvent::new(Actor::System, "key_rotation.rolled_back", Outcome::Success)
            .tenant(tenant)
            .target(job.id.to_string())
            .details(json!({ "data_key": previous.to_string(), "rows": total(&job.progress) })),
    )
    .await;
    Ok(Some(job))
}

async fn start_job(state: &AppState, tenant: TenantId, kind: &str, target: Uuid) -> Result<CryptoJob, KeyringError> {
    let mut progress = BTreeMap::new();
    for col in SEALED_COLUMNS {
        let total = state.store.count_sealed_not_under(tenant, col, target).await?;
        progress.insert(col.name(), Progress { done: 0, total });
    }
    Ok(state.store.create_crypto_job(tenant, kind, target, &progress).await?)
}

fn total(progress: &BTreeMap<String, Progress>) -> u64 {
    progress.values().map(|p| p.total).sum()
}

async fn audit(state: &AppState, event: AuditEvent) {
    state.audit.emit(event).await;
}

/// Runs every claimable job to its end. Returns how many jobs finished.
pub async fn run_pending(state: &AppState, owner: &str, batch: u32) -> Result<usize, KeyringError> {
    let mut finished = 0;
    for (tenant, id) in state.store.claimable_crypto_jobs().await? {
        if run_job(state, tenant, id, owner, batch).await? {
            finished += 1;
        }
    }
    Ok(finished)
}

/// Works on one job while this runner holds its lease. `true` when it finished it.
pub async fn run_job(
    state: &AppState,
    tenant: TenantId,
    id: Uuid,
    owner: &str,
    batch: u32,
) -> Result<bool, KeyringError> {
    let store = &state.store;
    let lease_until = || chrono::Utc::now() + LEASE;
    if !store.lease_crypto_job(tenant, id, owner, lease_until(), None).await? {
        return Ok(false);
    }
    let Some(job) = store.get_crypto_job(tenant, id).await? else {
        return Ok(false);
    };
    let mut progress = job.progress.clone();
    loop {
        for col in SEALED_COLUMNS {
            if !reencrypt_column(state, &job, col, owner, batch, &mut progress).await? {
                return Ok(false); // lease lost: another runner goes on
            }
        }
        // Replicas may encrypt under the old key for up to ACTIVE_TTL after the switch:
        // finish only once that window has passed and nothing is left behind.
        let age = (chrono::Utc::now() - job.created_at).to_std().unwrap_or_default();
        let mut left = 0;
        for col in SEALED_COLUMNS {
            left += store.count_sealed_not_under(tenant, col, job.target_key).await?;
        }
        if left == 0 && age > ACTIVE_TTL * 2 {
            break;
        }
        if !store
            .lease_crypto_job(tenant, id, owner, lease_until(), Some(&progress))
            .await?
        {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let done = store.finish_crypto_job(tenant, id, owner, Ok(())).await?;
    if done {
        state.keyring.forget(tenant);
        let action = "key_rotation.finished";
        audit(
            state,
            AuditEvent::new(Actor::System, action, Outcome::Success)
                .tenant(tenant)
                .target(id.to_string())
                .details(json!({ "kind": job.kind, "rows": progress.values().map(|p| p.done).sum::<u64>() })),
        )
        .await;
    }
    Ok(done)
}

/// One column, batch by batch. `false` when the lease was lost.
async fn reencrypt_column(
    state: &AppState,
    job: &CryptoJob,
    col: &SealedColumn,
    owner: &str,
    batch: u32,
    progress: &mut BTreeMap<String, Progress>,
) -> Result<bool, KeyringError> {
    let (store, tenant) = (&state.store, job.tenant_id);
    let mut after = String::new();
    loop {
        let rows = store.sealed_batch(tenant, col, job.target_key, &after, batch).await?;
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            return Ok(true);
        };
        let mut out = Vec::with_capacity(rows.len());
        for (row, sealed) in rows {
            let slot = Slot {
                table: col.table,
                column: col.column,
                row: &row,
            };
            match state.keyring.decrypt(store, tenant, slot, &sealed).await {
                Ok(plain) => {
                    let new = state
                        .keyring
                        .seal_with(store, tenant, job.target_key, slot, &plain)
                        .await?;
                    out.push((row, sealed, new));
                }
                // A row that no key opens stays as it is (and is reported); it must not
                // stop every other row from moving on.
                Err(e) => tracing::error!(table = col.table, row = %row, error = %e, "cannot re-encrypt a row"),
            }
        }
        let job_progress = JobProgress {
            id: job.id,
            owner,
            progress,
        };
        store.replace_sealed(tenant, col, &out, job_progress).await?;
        after = last;
        let until = chrono::Utc::now() + LEASE;
        if !store
            .lease_crypto_job(tenant, job.id, owner, until, Some(progress))
            .await?
        {
            return Ok(false);
        }
    }
}

/// Retires the tenant's decrypt-only keys once nothing is encrypted under them any more
/// (raising its minimum decryption version). `Ok(0)` when rows still need them.
pub async fn retire_old_keys(state: &AppState, tenant: TenantId) -> Result<u64, KeyringError> {
    let Some(active) = state
        .store
        .data_keys(tenant)
        .await?
        .into_iter()
        .find(|k| k.state == cairn_store::data_keys::DataKeyState::Active)
    else {
        return Ok(0);
    };
    for col in SEALED_COLUMNS {
        if state.store.count_sealed_not_under(tenant, col, active.id).await? > 0 {
            return Ok(0);
        }
    }
    let n = state.store.retire_decrypt_only_keys(tenant).await?;
    if n > 0 {
        state.keyring.forget(tenant);
        let event = AuditEvent::new(Actor::System, "key_rotation.old_keys_retired", Outcome::Success)
            .tenant(tenant)
            .details(json!({ "retired": n, "min_decryption_version": active.version }));
        audit(state, event).await;
    }
    Ok(n)
}

/// Housekeeping: retire old keys of tenants whose rotation ended `after` ago.
pub async fn retire_due(state: &AppState, after: Duration) -> Result<(), KeyringError> {
    let before = chrono::Utc::now() - chrono::Duration::from_std(after).unwrap_or_default();
    for tenant in state.store.tenants_with_old_keys(before).await? {
        retire_old_keys(state, tenant).await?;
    }
    Ok(())
}

/// The background runner of a server: picks up jobs (new, or left by a dead replica).
pub fn spawn_runner(state: AppState) -> tokio::task::JoinHandle<()> {
    let owner = format!("{}-{}", std::process::id(), Uuid::now_v7().simple());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_pending(&state, &owner, state.config.reencrypt_batch_size).await {
                tracing::warn!(error = %e, "re-encryption job failed; it will be retried");
            }
        }
    })
}

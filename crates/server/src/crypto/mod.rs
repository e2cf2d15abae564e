//! The keyring: envelope encryption of secret columns with per-tenant data keys wrapped
//! under the master key (see `cairn_core::crypto` for the format, docs/security.md for
//! the hierarchy). Unwrapped data keys are cached in memory (zeroized when evicted).

pub mod provider;
pub mod rotation;

use std::sync::Arc;
use std::time::Duration;

use cairn_core::crypto::{self, Context, CryptoError, Key32};
use cairn_core::ids::TenantId;
use cairn_store::data_keys::DataKeyState;
use cairn_store::{Store, StoreError};
use moka::sync::Cache;
use uuid::Uuid;
use zeroize::Zeroizing;

pub use provider::{ConfigKeks, KekProvider};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("no master key of version {0} is configured")]
    MissingKek(u32),
    #[error("the data key that encrypted this value is retired or unknown")]
    KeyUnavailable,
}

impl From<KeyringError> for crate::error::ApiError {
    fn from(e: KeyringError) -> Self {
        match e {
            KeyringError::Store(s) => s.into(),
            other => crate::error::ApiError::internal(other),
        }
    }
}

/// Where a ciphertext lives: it only decrypts there.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

pub struct Keyring {
    kek: Arc<dyn KekProvider>,
    /// (tenant, data key id) → unwrapped data key.
    deks: Cache<(TenantId, Uuid), Arc<Key32>>,
    /// tenant → its active data key id, for [`ACTIVE_TTL`]: a rotation on another replica
    /// shows up within it (the re-encryption job waits that long before it finishes).
    active: Cache<TenantId, Uuid>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("provider", &self.kek.name())
            .field("active_kek", &self.kek.active_version())
            .finish_non_exhaustive()
    }
}

/// How long a replica may keep encrypting under a data key after it stopped being active.
pub const ACTIVE_TTL: Duration = Duration::from_secs(5);

fn version_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl Keyring {
    pub fn new(kek: Arc<dyn KekProvider>) -> Self {
        Self {
            kek,
            deks: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            active: Cache::builder().max_capacity(100_000).time_to_live(ACTIVE_TTL).build(),
        }
    }

    pub fn provider(&self) -> &dyn KekProvider {
        self.kek.as_ref()
    }

    /// At start: every configured master key must match the check value recorded when it
    /// was first used, and every master-key version still wrapping data keys must be
    /// configured. A wrong key is caught here, not at the first decryption.
    pub async fn verify(&self, store: &Store) -> Result<(), String> {
        let recorded = store.kek_check_values().await.map_err(|e| e.to_string())?;
        for version in self.kek.versions() {
            let Some(key) = self.kek.key(version) else { continue };
            let check = key.check_value();
            match recorded.iter().find(|(v, _)| *v == version_i32(version)) {
                Some((_, stored)) if stored.as_slice() != check.as_slice() => {
                    return Err(format!(
                        "master key version {version} is not the key this database was encrypted with \
                         (check value mismatch); refusing to start. Restore the original key \
                         (CAIRN_MASTER_KEY or <data_dir>/master.key)"
                    ));
                }
                Some(_) => {}
                None => store
                    .record_kek_version(version_i32(version), self.kek.name(), &check)
                    .await
                    .map_err(|e| e.to_string())?,
            }
        }
        let missing: Vec<i32> = store
            .key_versions_in_use()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|v| u32::try_from(*v).map_or(true, |v| self.kek.key(v).is_none()))
            .collect();
        let active = version_i32(self.kek.active_version());
        let configured: Vec<i32> = self.kek.versions().into_iter().map(version_i32).collect();
        let states: Vec<(i32, &str)> = store
            .kek_check_values()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(v, _)| {
                let state = match v {
                    v if v == active => "active",
                    v if configured.contains(&v) => "decrypt_only",
                    _ => "retired",
                };
                (v, state)
            })
            .collect();
        store.set_key_version_states(&states).await.map_err(|e| e.to_string())?;
        if !missing.is_empty() {
            return Err(format!(
                "data keys are wrapped under master key version(s) {missing:?}, which are not configured \
                 (set them in previous_master_keys)"
            ));
        }
        Ok(())
    }

    fn unwrap(&self, tenant: TenantId, key: &cairn_store::data_keys::DataKey) -> Result<Arc<Key32>, KeyringError> {
        let kek_version = u32::try_from(key.kek_version).unwrap_or(u32::MAX);
        let kek = self.kek.key(kek_version).ok_or(KeyringError::MissingKek(kek_version))?;
        let dek = crypto::unwrap_dek(kek, tenant.as_uuid(), key.id, &key.wrapped)?;
        let dek = Arc::new(dek);
        self.deks.insert((tenant, key.id), dek.clone());
        Ok(dek)
    }

    /// The tenant's active data key, created on first use.
    async fn active_key(&self, store: &Store, tenant: TenantId) -> Result<(Uuid, Arc<Key32>), KeyringError> {
        if let Some(id) = self.active.get(&tenant) {
            if let Some(dek) = self.deks.get(&(tenant, id)) {
                return Ok((id, dek));
            }
        }
        let mut keys = store.data_keys(tenant).await?;
        if !keys.iter().any(|k| k.state == DataKeyState::Active) {
            let (id, dek) = (Uuid::now_v7(), Key32::generate());
            let version = self.kek.active_version();
            let kek = self.kek.key(version).ok_or(KeyringError::MissingKek(version))?;
            let wrapped = crypto::wrap_dek(kek, version, tenant.as_uuid(), id, &dek)?;
            // Another replica may have won: either way there is an active key afterwards.
            store
                .add_first_data_key(tenant, id, version_i32(version), &wrapped)
                .await?;
            keys = store.data_keys(tenant).await?;
        }
        let key = keys
            .iter()
            .find(|k| k.state == DataKeyState::Active)
            .ok_or(KeyringError::KeyUnavailable)?;
        let dek = self.unwrap(tenant, key)?;
        self.active.insert(tenant, key.id);
        Ok((key.id, dek))
    }

    pub(crate) async fn key_by_id(
        &self,
        store: &Store,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Arc<Key32>, KeyringError> {
        if let Some(dek) = self.deks.get(&(tenant, id)) {
            return Ok(dek);
        }
        match store.data_key(tenant, id).await? {
            Some(k) if k.state != DataKeyState::Retired => self.unwrap(tenant, &k),
            _ => Err(KeyringError::KeyUnavailable),
        }
    }

    pub async fn encrypt(
        &self,
        store: &Store,
        tenant: TenantId,
        slot: Slot<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let (id, dek) = self.active_key(store, tenant).await?;
        let ctx = context(tenant, slot);
        Ok(crypto::seal(&dek, self.kek.active_version(), id, &ctx, plaintext)?)
    }

    pub async fn decrypt(
        &self,
        store: &Store,
        tenant: TenantId,
        slot: Slot<'_>,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let header = crypto::header(envelope)?;
        let dek = self.key_by_id(store, tenant, header.dek_id).await?;
        Ok(crypto::open(&dek, &context(tenant, slot), envelope)?)
    }

    /// Encrypts under a given data key (the re-encryption job's target).
    pub async fn seal_with(
        &self,
        store: &Store,
        tenant: TenantId,
        key_id: Uuid,
        slot: Slot<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let dek = self.key_by_id(store, tenant, key_id).await?;
        let ctx = context(tenant, slot);
        Ok(crypto::seal(&dek, self.kek.active_version(), key_id, &ctx, plaintext)?)
    }

    /// Re-wraps every data key still wrapped under an older master-key version with the
    /// active one (after the master key was replaced). Returns how many were re-wrapped.
    pub async fn rewrap_all(&self, store: &Store) -> Result<usize, KeyringError> {
        let active = self.kek.active_version();
        let kek = self.kek.key(active).ok_or(KeyringError::MissingKek(active))?;
        let stale = store.data_keys_to_rewrap(version_i32(active)).await?;
        for (tenant, key) in &stale {
            let dek = self.unwrap(*tenant, key)?;
            let wrapped = crypto::wrap_dek(kek, active, tenant.as_uuid(), key.id, &dek)?;
            store
                .rewrap_data_key(*tenant, key.id, version_i32(active), &wrapped)
                .await?;
        }
        Ok(stale.len())
    }

    /// Forgets cached keys of `tenant` (after a rotation or rollback on this replica).
    pub fn forget(&self, tenant: TenantId) {
        self.active.invalidate(&tenant);
    }
}

fn context(tenant: TenantId, slot: Slot<'_>) -> Context<'_> {
    Context {
        tenant: tenant.as_uuid(),
        table: slot.table,
        column: slot.column,
        row: slot.row,
    }
}

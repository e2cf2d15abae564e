//! API-key verification with a warm in-memory cache, and coalesced last-use tracking.
//!
//! A warm verification is a cache lookup plus one HMAC: no database round trip. The
//! cache holds the stored hashes (never a plaintext key) for `api_key_cache_ttl_secs`;
//! revocation and rotation on this replica evict at once, other replicas notice within
//! the TTL.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_core::api_key::{self, ApiKey, KeyHasher, KeyHashes};
use cairn_core::ids::{ApiKeyId, TenantId};
use cairn_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use moka::sync::Cache;

/// Why a presented key was refused. All of them answer 401 to the client; the reason
/// is for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Unknown,
    Mismatch,
    Revoked,
    Expired,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown_key",
            Self::Mismatch => "secret_mismatch",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

type Entry = Option<Arc<(ApiKey, KeyHashes)>>;

pub struct KeyVerifier {
    hasher: KeyHasher,
    cache: Cache<(TenantId, String), Entry>,
    last_used: Mutex<HashMap<(TenantId, ApiKeyId), DateTime<Utc>>>,
}

impl std::fmt::Debug for KeyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVerifier")
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl KeyVerifier {
    pub fn new(hasher: KeyHasher, ttl: Duration) -> Self {
        Self {
            hasher,
            cache: Cache::builder().max_capacity(100_000).time_to_live(ttl).build(),
            last_used: Mutex::new(HashMap::new()),
        }
    }

    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// Checks `token` as a key of `tenant`.
    pub async fn verify(
        &self,
        store: &Store,
        tenant: TenantId,
        token: &str,
    ) -> Result<Result<ApiKey, Refusal>, StoreError> {
        let Some(parts) = api_key::parse(token) else {
            return Ok(Err(Refusal::Malformed));
        };
        let cache_key = (tenant, parts.public_id.to_owned());
        let entry = match self.cache.get(&cache_key) {
            Some(entry) => entry,
            None => {
                let found = store.find_api_key(tenant, parts.public_id).await?.map(Arc::new);
                self.cache.insert(cache_key, found.clone());
                found
            }
        };
        Ok(self.check(entry.as_deref(), parts.env, token, Utc::now()))
    }

    fn check(
        &self,
        entry: Option<&(ApiKey, KeyHashes)>,
        env: api_key::KeyEnv,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKey, Refusal> {
        let Some((key, hashes)) = entry else {
            return Err(Refusal::Unknown);
        };
        if key.environment != env || !hashes.accepts(&self.hasher, token, now) {
            return Err(Refusal::Mismatch);
        }
        if key.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(Refusal::Expired);
        }
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((key.tenant_id, key.id), now);
        Ok(key.clone())
    }

    /// Forgets a key so the next verification reads the database.
    pub fn evict(&self, tenant: TenantId, public_id: &str) {
        self.cache.invalidate(&(tenant, public_id.to_owned()));
    }

    /// Writes the collected last-use times (one transaction for all of them).
    pub async fn flush_last_used(&self, store: &Store) -> Result<(), StoreError> {
        let batch: Vec<_> = {
            let mut map = self.last_used.lock().unwrap_or_else(PoisonError::into_inner);
            map.drain().map(|((t, k), at)| (t, k, at)).collect()
        };
        store.touch_api_keys(&batch).await
    }
}

/// The pepper from config, or from `{data_dir}/api-key-pepper`, created on first use.
pub fn load_or_create_pepper(configured: Option<&str>, data_dir: &Path) -> Result<[u8; 32], String> {
    if let Some(value) = configured {
        return crate::config::decode_key32(value).map_err(|e| format!("api_key_pepper {e}"));
    }
    let path = data_dir.join("api-key-pepper");
    match std::fs::read_to_string(&path) {
        Ok(text) => crate::config::decode_key32(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use base64::Engine as _;
            use rand_core::RngCore as _;
            let mut pepper = [0u8; 32];
            rand_core::OsRng.fill_bytes(&mut pepper);
            let text = base64::engine::general_purpose::STANDARD.encode(pepper);
            crate::service::operator_tokens::write_secret_file(&path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::warn!(path = %path.display(), "generated a new API key pepper; set api_key_pepper on every replica of a shared database");
            Ok(pepper)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

//! Access tokens: ES256 JWTs signed with the tenant's active key; verification against
//! the active and recently retired keys. Keys are cached per tenant for a minute; a
//! token naming an unknown `kid` reloads them (at most once a second per tenant), so a
//! rotation on another replica is picked up at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cairn_core::ids::TenantId;
use cairn_core::oauth::GeneratedKey;
use cairn_store::signing_keys::NewSigningKey;
use cairn_store::{Store, StoreError};

use crate::crypto::{Keyring, KeyringError, Slot};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use moka::sync::Cache;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Clock skew tolerated on `exp` / `nbf`.
const LEEWAY_SECS: u64 = 30;
const CACHE_TTL: Duration = Duration::from_secs(60);
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The claims of a Cairn access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id (`usr_…`), or the client id for client-credentials tokens.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
    /// The grant the token was issued from (revocation is checked against it).
    pub gid: String,
}

struct TenantKeys {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    jwks: Vec<Value>,
}

pub struct Signer {
    keyring: Arc<Keyring>,
    keys: Cache<TenantId, Arc<TenantKeys>>,
    reloaded: Mutex<HashMap<TenantId, Instant>>,
    /// How long retired keys stay published: the access-token lifetime plus leeway.
    publish_retired_for: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

impl Signer {
    pub fn new(access_ttl: Duration, keyring: Arc<Keyring>) -> Self {
        Self {
            keyring,
            keys: Cache::builder().max_capacity(100_000).time_to_live(CACHE_TTL).build(),
            reloaded: Mutex::new(HashMap::new()),
            publish_retired_for: access_ttl + Duration::from_secs(LEEWAY_SECS * 2),
        }
    }

    async fn load(&self, store: &Store, tenant: TenantId) -> Result<Arc<TenantKeys>, StoreError> {
        let since = chrono::Utc::now() - self.publish_retired_for;
        let rows = store.signing_keys(tenant, since).await?;
        let mut keys = TenantKeys {
            signing: None,
            verifying: HashMap::new(),
            jwks: Vec::new(),
        };
        for row in rows {
            if row.alg != "ES256" {
                continue;
            }
            let (Some(x), Some(y)) = (row.public_jwk["x"].as_str(), row.public_jwk["y"].as_str()) else {
                continue;
            };
            let Ok(decoding) = DecodingKey::from_ec_components(x, y) else {
                tracing::warn!(kid = %row.kid, "unusable public signing key");
                continue;
            };
            if row.active && keys.signing.is_none() {
                let slot = slot(&row.kid);
                match self
                    .keyring
                    .decrypt(store, tenant, slot, row.private_key.expose_secret())
                    .await
                {
                    Ok(der) => keys.signing = Some((row.kid.clone(), EncodingKey::from_ec_der(&der))),
                    // Verification with the public half still works; signing makes a new key.
                    Err(e) => tracing::error!(kid = %row.kid, error = %e, "cannot decrypt the signing key"),
                }
            }
            keys.verifying.insert(row.kid.clone(), decoding);
            keys.jwks.push(row.public_jwk);
        }
        let keys = Arc::new(keys);
        self.keys.insert(tenant, keys.clone());
        Ok(keys)
    }

    async fn cached(&self, store: &Store, tenant: TenantId) -> Result<Arc<TenantKeys>, StoreError> {
        match self.keys.get(&tenant) {
            Some(k) => Ok(k),
            None => self.load(store, tenant).await,
        }
    }

    /// Signs `claims` with the tenant's active key, creating the tenant's first key on
    /// first use.
    pub async fn sign(&self, store: &Store, tenant: TenantId, claims: &AccessClaims) -> Result<String, SignError> {
        let mut keys = self.cached(store, tenant).await?;
        if keys.signing.is_none() {
            let key = GeneratedKey::es256().map_err(SignError::Crypto)?;
            let sealed = self.seal(store, tenant, &key).await?;
            // Another replica may win the race; either way there is an active key now.
            store.add_first_signing_key(tenant, &new_key(&key, &sealed)).await?;
            keys = self.load(store, tenant).await?;
        }
        let Some((kid, encoding)) = &keys.signing else {
            return Err(SignError::Crypto("no active signing key".into()));
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, encoding).map_err(|e| SignError::Crypto(e.to_string()))
    }

    /// Verifies a token of this tenant: signature (ES256 only), `iss`, `aud`, `exp`,
    /// `nbf`. The error is a reason for the audit trail.
    pub async fn verify(
        &self,
        store: &Store,
        tenant: TenantId,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<AccessClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed".to_owned())?;
        if header.alg != Algorithm::ES256 {
            return Err(format!("algorithm_not_allowed:{:?}", header.alg));
        }
        let kid = header.kid.ok_or_else(|| "no_kid".to_owned())?;
        let mut keys = self.cached(store, tenant).await.map_err(|e| format!("store:{e}"))?;
        if !keys.verifying.contains_key(&kid) && self.may_reload(tenant) {
            keys = self.load(store, tenant).await.map_err(|e| format!("store:{e}"))?;
        }
        let key = keys.verifying.get(&kid).ok_or_else(|| "unknown_kid".to_owned())?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| format!("invalid:{:?}", e.kind()))
    }

    fn may_reload(&self, tenant: TenantId) -> bool {
        let mut last = self.reloaded.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last
            .get(&tenant)
            .is_some_and(|t| now.duration_since(*t) < RELOAD_INTERVAL)
        {
            return false;
        }
        if last.len() > 100_000 {
            last.clear();
        }
        last.insert(tenant, now);
        true
    }

    /// The published keys: active and recently retired.
    pub async fn jwks(&self, store: &Store, tenant: TenantId) -> Result<Vec<Value>, StoreError> {
        Ok(self.cached(store, tenant).await?.jwks.clone())
    }

    /// Makes a new key active; the old one stays published until its tokens expire.
    pub async fn rotate(&self, store: &Store, tenant: TenantId) -> Result<String, SignError> {
        let key = GeneratedKey::es256().map_err(SignError::Crypto)?;
        let sealed = self.seal(store, tenant, &key).await?;
        store.rotate_signing_key(tenant, &new_key(&key, &sealed)).await?;
        self.keys.invalidate(&tenant);
        Ok(key.kid)
    }
}

impl Signer {
    /// The private key, encrypted for its row (`oauth_signing_keys.private_key`, kid).
    async fn seal(&self, store: &Store, tenant: TenantId, key: &GeneratedKey) -> Result<Vec<u8>, SignError> {
        let plain = key.private_pkcs8.expose_secret();
        Ok(self.keyring.encrypt(store, tenant, slot(&key.kid), plain).await?)
    }
}

fn slot(kid: &str) -> Slot<'_> {
    Slot {
        table: "oauth_signing_keys",
        column: "private_key",
        row: kid,
    }
}

fn new_key<'a>(key: &'a GeneratedKey, sealed: &'a [u8]) -> NewSigningKey<'a> {
    NewSigningKey {
        kid: &key.kid,
        alg: key.alg.as_str(),
        private_key: sealed,
        public_jwk: &key.public_jwk,
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

/// Reads `iss` from a JWT without verifying it, to route the token to the right
/// verifier. Never trusted beyond that.
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

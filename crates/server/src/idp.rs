//! JWTs from a tenant's external identity provider (Clerk, Auth0, Keycloak, …).
//!
//! The provider's JWKS is fetched and cached; a token with an unknown `kid` triggers at
//! most one refetch per interval (key rollover without letting bogus tokens hammer the
//! provider). Only asymmetric algorithms from the tenant's allow-list are accepted —
//! never `none`, never HS* (which would let the *public* key be used as an HMAC secret).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cairn_core::ids::{TenantId, UserId};
use cairn_core::user::{Email, Role};
use cairn_store::identity_providers::IdentityProvider;
use cairn_store::{Store, StoreError};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::sync::Cache;
use serde_json::{Map, Value};

/// Asymmetric algorithms a tenant may allow.
pub const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];
/// Allowed clock skew for `exp` / `nbf`.
const LEEWAY_SECS: u64 = 30;
/// A token with an unknown `kid` refetches the JWKS at most this often.
const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const JWKS_TTL: Duration = Duration::from_secs(3600);
const JWKS_MAX_BYTES: usize = 512 * 1024;

/// Why a token was refused (for the audit trail; the client always sees 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Algorithm(String),
    UnknownKey,
    Invalid(String),
    NoUser,
    NotMember,
    NoProvider,
    JwksUnavailable,
}

impl Refusal {
    pub fn reason(&self) -> String {
        match self {
            Self::Malformed => "malformed".into(),
            Self::Algorithm(a) => format!("algorithm_not_allowed:{a}"),
            Self::UnknownKey => "unknown_kid".into(),
            Self::Invalid(why) => format!("invalid:{why}"),
            Self::NoUser => "no_user_claim".into(),
            Self::NotMember => "not_a_member".into(),
            Self::NoProvider => "no_identity_provider".into(),
            Self::JwksUnavailable => "jwks_unavailable".into(),
        }
    }
}

pub struct IdpVerifier {
    http: reqwest::Client,
    jwks: Cache<String, Arc<JwkSet>>,
    last_fetch: Mutex<HashMap<String, Instant>>,
    providers: Cache<TenantId, Option<Arc<IdentityProvider>>>,
}

impl std::fmt::Debug for IdpVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpVerifier").finish_non_exhaustive()
    }
}

impl IdpVerifier {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Self {
            http,
            jwks: Cache::builder().max_capacity(10_000).time_to_live(JWKS_TTL).build(),
            last_fetch: Mutex::new(HashMap::new()),
            providers: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
        }
    }

    /// The tenant's provider, cached for a few seconds.
    pub async fn provider(&self, store: &Store, tenant: TenantId) -> Result<Option<Arc<IdentityProvider>>, StoreError> {
        if let Some(hit) = self.providers.get(&tenant) {
            return Ok(hit);
        }
        let found = store.get_identity_provider(tenant).await?.map(Arc::new);
        self.providers.insert(tenant, found.clone());
        Ok(found)
    }

    pub fn evict(&self, tenant: TenantId) {
        self.providers.invalidate(&tenant);
    }

    /// Verifies signature, algorithm, issuer, audience and lifetime; returns the claims.
    pub async fn verify(&self, idp: &IdentityProvider, token: &str) -> Result<Map<String, Value>, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        let alg = algorithm_name(header.alg);
        if !idp.algorithms.iter().any(|a| a == alg) || !ALGORITHMS.contains(&alg) {
            return Err(Refusal::Algorithm(alg.to_owned()));
        }
        let kid = header.kid.ok_or(Refusal::UnknownKey)?;
        let set = self.key_set(&idp.jwks_url, &kid).await?;
        let jwk = set.find(&kid).ok_or(Refusal::UnknownKey)?;
        if jwk.common.key_algorithm.is_some_and(|ka| ka.to_string() != alg) {
            return Err(Refusal::Algorithm(alg.to_owned()));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[idp.issuer.as_str()]);
        validation.set_audience(&[idp.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| Refusal::Invalid(format!("{:?}", e.kind()).to_lowercase()))
    }

    /// The JWKS holding `kid`: from the cache, or fetched (again, if the cached set lacks
    /// `kid` and the last fetch is older than the refetch interval).
    async fn key_set(&self, url: &str, kid: &str) -> Result<Arc<JwkSet>, Refusal> {
        if let Some(set) = self.jwks.get(url) {
            if set.find(kid).is_some() {
                return Ok(set);
            }
            // An unknown kid: the provider may have rolled its keys. Look again, but at
            // most once per interval, so made-up kids cannot make us hammer it.
            let recently = self.lock().get(url).is_some_and(|t| t.elapsed() < REFETCH_INTERVAL);
            if recently {
                return Ok(set);
            }
            self.lock().insert(url.to_owned(), Instant::now());
        } else if self.lock().get(url).is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
            // The last attempt failed and nothing is cached: do not retry on every token.
            return Err(Refusal::JwksUnavailable);
        }
        let set = match self.fetch(url).await {
            Ok(set) => Arc::new(set),
            Err(e) => {
                self.lock().insert(url.to_owned(), Instant::now());
                return Err(e);
            }
        };
        self.jwks.insert(url.to_owned(), set.clone());
        Ok(set)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last_fetch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, Refusal> {
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(%url, error = %e, "could not fetch JWKS");
            Refusal::JwksUnavailable
        };
        let resp = self.http.get(url).send().await.map_err(|e| unavailable(&e))?;
        if !resp.status().is_success() {
            return Err(unavailable(&resp.status()));
        }
        if resp.content_length().is_some_and(|n| n > JWKS_MAX_BYTES as u64) {
            return Err(unavailable(&"JWKS too large"));
        }
        let body = resp.bytes().await.map_err(|e| unavailable(&e))?;
        if body.len() > JWKS_MAX_BYTES {
            return Err(unavailable(&"JWKS too large"));
        }
        serde_json::from_slice(&body).map_err(|e| unavailable(&e))
    }
}

impl Default for IdpVerifier {
    fn default() -> Self {
        Self::new()
    }
}

fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // Algorithms added to the library later are not on anyone's allow-list.
        _ => "unsupported",
    }
}

/// Authenticates `token` as a member of `tenant`: verifies it against the tenant's
/// provider, maps the user claim (an e-mail address) to a user, and requires a
/// membership. Returns the user and their role.
pub async fn authenticate(
    verifier: &IdpVerifier,
    store: &Store,
    tenant: TenantId,
    token: &str,
) -> Result<(UserId, Role), Refusal> {
    let idp = verifier
        .provider(store, tenant)
        .await
        .map_err(|_| Refusal::JwksUnavailable)?;
    let idp = idp.ok_or(Refusal::NoProvider)?;
    let claims = verifier.verify(&idp, token).await?;
    // A provider that says the address is unverified does not get to name a user by it.
    if claims.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(Refusal::NoUser);
    }
    let email = claims
        .get(&idp.user_claim)
        .and_then(Value::as_str)
        .and_then(|s| Email::parse(s).ok())
        .ok_or(Refusal::NoUser)?;
    // An address with no account is refused exactly like an account that is not a
    // member: this tenant's trail (which its admins read) must not tell which e-mail
    // addresses have accounts on the platform.
    let user = match store.get_user_by_email(&email).await {
        Ok(user) => user,
        Err(StoreError::UserNotFound) => return Err(Refusal::NotMember),
        Err(_) => return Err(Refusal::JwksUnavailable),
    };
    match store.member_role(tenant, user.id).await {
        Ok(Some(role)) => Ok((user.id, role)),
        Ok(None) => Err(Refusal::NotMember),
        Err(_) => Err(Refusal::JwksUnavailable),
    }
}

/// Whether a bearer credential has the shape of a JWS compact token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with("ck_")
}

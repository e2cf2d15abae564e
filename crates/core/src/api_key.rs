//! API keys: format, scopes, and keyed hashing.
//!
//! A key reads `ck_<env>_<public id>_<secret>`: `ck_live_` / `ck_test_` make leaked keys
//! recognisable, the 12-character public id names the key without revealing it (logs,
//! lookups), and the secret carries 256 random bits. Only an HMAC-SHA256 of the whole key
//! under a server-side secret (the *pepper*) is stored, so a copy of the database alone
//! does not allow checking guesses offline.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEnv {
    Live,
    Test,
}

impl KeyEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "live" => Ok(Self::Live),
            "test" => Ok(Self::Test),
            _ => Err(ValidationError::new("environment", "must be 'live' or 'test'")),
        }
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "mcp:tools")]
    McpTools,
    #[serde(rename = "mcp:resources")]
    McpResources,
    #[serde(rename = "mcp:prompts")]
    McpPrompts,
    #[serde(rename = "kb:write")]
    KbWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Self::McpTools,
        Self::McpResources,
        Self::McpPrompts,
        Self::KbWrite,
        Self::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::McpTools => "mcp:tools",
            Self::McpResources => "mcp:resources",
            Self::McpPrompts => "mcp:prompts",
            Self::KbWrite => "kb:write",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL.into_iter().find(|sc| sc.as_str() == s).ok_or_else(|| {
            ValidationError::new(
                "scopes",
                format!("unknown scope '{s}' (known: mcp:tools, mcp:resources, mcp:prompts, kb:write, admin)"),
            )
        })
    }

    /// Parses, sorts and de-duplicates; an empty list is an error (a key that can do
    /// nothing is a mistake).
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Scope>, ValidationError> {
        let mut scopes = items
            .iter()
            .map(|s| Self::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        scopes.sort_unstable();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(ValidationError::new("scopes", "must name at least one scope"));
        }
        Ok(scopes)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Length of the public id: 12 characters of lowercase base32 (60 random bits).
pub const PUBLIC_ID_LEN: usize = 12;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A freshly minted key: the plaintext (shown once) and its public id.
pub struct MintedKey {
    pub plaintext: SecretString,
    pub public_id: String,
}

pub fn mint(env: KeyEnv) -> MintedKey {
    let mut id_bytes = [0u8; PUBLIC_ID_LEN];
    OsRng.fill_bytes(&mut id_bytes);
    let public_id: String = id_bytes
        .iter()
        .map(|b| char::from(BASE32[usize::from(b & 31)]))
        .collect();
    MintedKey {
        plaintext: SecretString::from(with_secret(env, &public_id)),
        public_id,
    }
}

/// A new secret for an existing public id (rotation keeps the id).
pub fn remint(env: KeyEnv, public_id: &str) -> SecretString {
    SecretString::from(with_secret(env, public_id))
}

fn with_secret(env: KeyEnv, public_id: &str) -> String {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    format!("ck_{}_{public_id}_{}", env.as_str(), URL_SAFE_NO_PAD.encode(secret))
}

/// The parts of a presented key, if it has the shape of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub env: KeyEnv,
    pub public_id: &'a str,
}

pub fn parse(token: &str) -> Option<KeyParts<'_>> {
    let rest = token.strip_prefix("ck_")?;
    let (env, rest) = rest.split_once('_')?;
    let env = KeyEnv::parse(env).ok()?;
    let (public_id, secret) = rest.split_at_checked(PUBLIC_ID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let ok_id = public_id.bytes().all(|b| BASE32.contains(&b));
    (ok_id && secret.len() == 43).then_some(KeyParts { env, public_id })
}

/// HMAC-SHA256 under the server's pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: [u8; 32],
}

impl KeyHasher {
    pub fn new(pepper: [u8; 32]) -> Self {
        Self { pepper }
    }

    pub fn hash(&self, token: &str) -> [u8; 32] {
        // new_from_slice only fails for invalid key lengths, which HMAC does not have.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.pepper) else {
            return [0u8; 32];
        };
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of `token` against a stored hash.
    pub fn verify(&self, token: &str, stored: &[u8]) -> bool {
        stored.len() == 32 && bool::from(self.hash(token).ct_eq(stored))
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn minted_keys_parse_and_verify() {
        let key = mint(KeyEnv::Live);
        let text = key.plaintext.expose_secret();
        assert!(text.starts_with("ck_live_"));
        let parts = parse(text).expect("parses");
        assert_eq!(parts.env, KeyEnv::Live);
        assert_eq!(parts.public_id, key.public_id);
        let hasher = KeyHasher::new([7; 32]);
        let stored = hasher.hash(text);
        assert!(hasher.verify(text, &stored));
        assert!(
            !KeyHasher::new([8; 32]).verify(text, &stored),
            "another pepper must not verify"
        );
        let rotated = remint(KeyEnv::Live, &key.public_id);
        assert!(!hasher.verify(rotated.expose_secret(), &stored));
        assert_eq!(
            parse(rotated.expose_secret()).map(|p| p.public_id),
            Some(key.public_id.as_str())
        );
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let good = mint(KeyEnv::Test);
        let text = good.plaintext.expose_secret();
        for bad in [
            "",
            "ck_",
            "ck_prod_aaaaaaaaaaaa_x",
            &text[..text.len() - 1],
            &text.replace("ck_test_", "ck_live"),
            "cairn_op_x",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(
            Scope::parse_list(&["kb:write", "mcp:tools", "mcp:tools"]).ok(),
            Some(vec![Scope::McpTools, Scope::KbWrite])
        );
        assert!(Scope::parse_list::<&str>(&[]).is_err());
        assert!(Scope::parse_list(&["root"]).is_err());
    }
}

/// An API key as stored (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: crate::ids::ApiKeyId,
    pub tenant_id: crate::ids::TenantId,
    pub public_id: String,
    /// What a key looks like without its secret, for people to recognise it.
    pub display: String,
    pub name: String,
    pub user_id: Option<crate::ids::UserId>,
    pub environment: KeyEnv,
    pub scopes: Vec<Scope>,
    pub tier: String,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub rotated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Until when the secret replaced by the last rotation is still accepted.
    pub previous_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ApiKey {
    pub fn display_for(env: KeyEnv, public_id: &str) -> String {
        format!("ck_{}_{public_id}_…", env.as_str())
    }
}

/// The stored hashes of a key, for verification.
#[derive(Clone)]
pub struct KeyHashes {
    pub current: Vec<u8>,
    pub previous: Option<(Vec<u8>, chrono::DateTime<chrono::Utc>)>,
}

impl fmt::Debug for KeyHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHashes(<hidden>)")
    }
}

impl KeyHashes {
    /// Whether `token` matches the current secret, or the previous one inside its
    /// overlap window.
    pub fn accepts(&self, hasher: &KeyHasher, token: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
        let digest = hasher.hash(token);
        let current = bool::from(digest.ct_eq(self.current.as_slice()));
        let previous = self
            .previous
            .as_ref()
            .is_some_and(|(hash, until)| now < *until && bool::from(digest.ct_eq(hash.as_slice())));
        current | previous
    }
}

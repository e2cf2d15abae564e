//! Secrets: password hashing (argon2id) and high-entropy bearer tokens.
//!
//! Passwords are low-entropy, so they get a slow, salted hash. Tokens are 256 random
//! bits, so a fast SHA-256 digest is enough to make a stolen table useless and lets the
//! server find a token by its digest with an index.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ValidationError;

/// A password as received from a client. Wrapping it keeps it out of `Debug` output.
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.chars().count() < Self::MIN_CHARS {
            return Err(ValidationError::new("password", "must be at least 8 characters"));
        }
        if s.len() > Self::MAX_BYTES {
            return Err(ValidationError::new("password", "must be at most 1024 bytes"));
        }
        Ok(Self(SecretString::from(s)))
    }

    /// Hashes with argon2id and a random salt into a PHC string. CPU-heavy: call it off
    /// the async executor.
    pub fn hash(&self) -> Result<String, SecretError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| SecretError::Hash)
    }

    /// Checks this password against a stored PHC string.
    pub fn verify(&self, phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(self.0.expose_secret().as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("password hashing failed")]
    Hash,
}

/// A freshly minted bearer token: the plaintext (shown to its owner once) and the digest
/// that is stored.
pub struct NewToken {
    pub plaintext: SecretString,
    pub digest: TokenDigest,
}

/// SHA-256 of a token, hex-encoded. Comparisons are constant-time.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest(String);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        let d = Sha256::digest(token.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in d {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Self(hex)
    }

    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn ct_eq(&self, other: &TokenDigest) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(<hidden>)")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Mints a token `<prefix>_<43 chars of base64url>` carrying 256 random bits. The prefix
/// makes leaked tokens recognisable to secret scanners and to people.
pub fn mint_token(prefix: &str) -> NewToken {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let plaintext = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = TokenDigest::of(&plaintext);
    NewToken {
        plaintext: SecretString::from(plaintext),
        digest,
    }
}

/// Prefix of operator tokens.
pub const OPERATOR_TOKEN_PREFIX: &str = "cairn_op";

/// Prefix of invitation tokens (the secret part of an invitation link).
pub const INVITATION_TOKEN_PREFIX: &str = "cairn_inv";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_and_rejects() -> Result<(), Box<dyn std::error::Error>> {
        let pw = Password::parse("correct horse battery")?;
        let phc = pw.hash()?;
        assert!(phc.starts_with("$argon2id$"));
        assert!(pw.verify(&phc));
        assert!(!Password::parse("wrong horse battery")?.verify(&phc));
        assert!(!pw.verify("not a phc string"));
        assert!(Password::parse("short").is_err());
        assert_eq!(format!("{pw:?}"), "Password(<hidden>)");
        Ok(())
    }

    #[test]
    fn tokens_are_unique_prefixed_and_digest_matches() {
        let a = mint_token(OPERATOR_TOKEN_PREFIX);
        let b = mint_token(OPERATOR_TOKEN_PREFIX);
        let pa = a.plaintext.expose_secret();
        assert!(pa.starts_with("cairn_op_"));
        assert_eq!(pa.len(), "cairn_op_".len() + 43);
        assert_ne!(pa, b.plaintext.expose_secret());
        assert!(TokenDigest::of(pa).ct_eq(&a.digest));
        assert!(!a.digest.ct_eq(&b.digest));
        assert_eq!(a.digest.as_str().len(), 64);
        assert!(!format!("{:?}", a.digest).contains(a.digest.as_str()));
    }
}

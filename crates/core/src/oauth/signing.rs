//! Access-token signing keys. ES256 (P-256): compact tokens, fast verification, and
//! supported by every JOSE library a resource server might use.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use rand_core::OsRng;
use secrecy::SecretBox;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Es256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        (s == "ES256").then_some(Self::Es256)
    }
}

/// A new key pair. The private half is PKCS#8 DER, kept out of `Debug`.
pub struct GeneratedKey {
    /// The RFC 7638 JWK thumbprint: stable, derived from the public key.
    pub kid: String,
    pub alg: SigningAlg,
    pub private_pkcs8: SecretBox<Vec<u8>>,
    /// The public JWK as published (with `kid`, `alg`, `use`).
    pub public_jwk: Value,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl GeneratedKey {
    pub fn es256() -> Result<Self, String> {
        let key = SigningKey::random(&mut OsRng);
        let der = key
            .to_pkcs8_der()
            .map_err(|e| format!("could not encode the signing key: {e}"))?;
        let point = key.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err("could not encode the public key".into());
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let public_jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        Ok(Self {
            kid,
            alg: SigningAlg::Es256,
            private_pkcs8: SecretBox::new(Box::new(der.as_bytes().to_vec())),
            public_jwk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn keys_are_distinct_and_self_describing() -> Result<(), String> {
        let a = GeneratedKey::es256()?;
        let b = GeneratedKey::es256()?;
        assert_ne!(a.kid, b.kid);
        assert_eq!(a.public_jwk["kid"], a.kid.as_str());
        assert_eq!(a.public_jwk["crv"], "P-256");
        assert!(a.private_pkcs8.expose_secret().len() > 100);
        assert!(!format!("{a:?}").contains(&a.public_jwk["x"].to_string()));
        Ok(())
    }
}

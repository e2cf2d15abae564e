//! Envelope encryption (pure; no I/O). A master key (KEK, from configuration or a KMS)
//! wraps per-tenant data keys (DEKs); DEKs encrypt column values. Every ciphertext is a
//! self-describing envelope and is bound, through AES-GCM associated data, to the tenant,
//! table, column and row it belongs to: copied elsewhere, it does not decrypt.
//!
//! Envelope layout (bytes):
//! `b"CE"` · format (1) · KEK version (u32 BE) · DEK id (16, UUID) · nonce (12) · ciphertext+tag.
//! Wrapped DEKs use the same layout with the nil UUID as DEK id and AD naming the DEK.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const MAGIC: &[u8; 2] = b"CE";
const FORMAT: u8 = 1;
const HEADER: usize = 2 + 1 + 4 + 16 + 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not a Cairn ciphertext envelope")]
    Malformed,
    #[error("unsupported envelope format {0}")]
    Format(u8),
    /// Wrong key, or a ciphertext moved to another row, column or tenant, or tampered with.
    #[error("decryption failed: wrong key or the ciphertext does not belong to this row")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("a key must be 32 bytes")]
    KeyLength,
}

/// 256 bits of key material, wiped from memory on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Self(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
        Ok(Self(arr))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A value stored next to wrapped keys: a different master key is detected at start,
    /// not at the first decryption. Reveals nothing about the key (HMAC, domain-separated).
    pub fn check_value(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            mac.update(b"cairn/kek-check/v1");
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<hidden>)")
    }
}

/// What a ciphertext is bound to. Encoded length-prefixed, so no two contexts collide.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub tenant: Uuid,
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

impl Context<'_> {
    fn encode(&self, kek_version: u32, dek_id: Uuid) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.table.len() + self.column.len() + self.row.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&kek_version.to_be_bytes());
        out.extend_from_slice(dek_id.as_bytes());
        out.extend_from_slice(self.tenant.as_bytes());
        for part in [self.table, self.column, self.row] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// The readable header of an envelope: which keys open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kek_version: u32,
    pub dek_id: Uuid,
}

pub fn header(envelope: &[u8]) -> Result<Header, CryptoError> {
    if envelope.len() < HEADER + 16 || &envelope[..2] != MAGIC {
        return Err(CryptoError::Malformed);
    }
    if envelope[2] != FORMAT {
        return Err(CryptoError::Format(envelope[2]));
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&envelope[3..7]);
    let dek_id = Uuid::from_slice(&envelope[7..23]).map_err(|_| CryptoError::Malformed)?;
    Ok(Header {
        kek_version: u32::from_be_bytes(v),
        dek_id,
    })
}

/// Encrypts `plaintext` under `key` into an envelope naming `kek_version` and `dek_id`.
pub fn seal(
    key: &Key32,
    kek_version: u32,
    dek_id: Uuid,
    ctx: &Context<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| CryptoError::KeyLength)?;
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let aad = ctx.encode(kek_version, dek_id);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Encrypt)?;
    let mut out = Vec::with_capacity(HEADER + ct.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&kek_version.to_be_bytes());
    out.extend_from_slice(dek_id.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens an envelope with `key` for the row described by `ctx`.
pub fn open(key: &Key32, ctx: &Context<'_>, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let h = header(envelope)?;
    let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| CryptoError::KeyLength)?;
    let aad = ctx.encode(h.kek_version, h.dek_id);
    cipher
        .decrypt(
            Nonce::from_slice(&envelope[23..HEADER]),
            Payload {
                msg: &envelope[HEADER..],
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Decrypt)
}

/// Wraps a tenant's data key under the master key (version `kek_version`).
pub fn wrap_dek(
    kek: &Key32,
    kek_version: u32,
    tenant: Uuid,
    dek_id: Uuid,
    dek: &Key32,
) -> Result<Vec<u8>, CryptoError> {
    let row = dek_id.to_string();
    let ctx = Context {
        tenant,
        table: "tenant_data_keys",
        column: "wrapped_key",
        row: &row,
    };
    seal(kek, kek_version, Uuid::nil(), &ctx, dek.expose())
}

pub fn unwrap_dek(kek: &Key32, tenant: Uuid, dek_id: Uuid, wrapped: &[u8]) -> Result<Key32, CryptoError> {
    let row = dek_id.to_string();
    let ctx = Context {
        tenant,
        table: "tenant_data_keys",
        column: "wrapped_key",
        row: &row,
    };
    let plain = open(kek, &ctx, wrapped)?;
    Key32::from_slice(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(tenant: Uuid, row: &'a str) -> Context<'a> {
        Context {
            tenant,
            table: "tenant_oauth_credentials",
            column: "client_secret",
            row,
        }
    }

    #[test]
    fn round_trip_and_header() -> Result<(), CryptoError> {
        let key = Key32::generate();
        let (t, d) = (Uuid::now_v7(), Uuid::now_v7());
        let env = seal(&key, 3, d, &ctx(t, "github"), b"s3cr3t")?;
        assert_eq!(
            header(&env)?,
            Header {
                kek_version: 3,
                dek_id: d
            }
        );
        assert_eq!(open(&key, &ctx(t, "github"), &env)?.as_slice(), b"s3cr3t");
        assert!(!env.windows(6).any(|w| w == b"s3cr3t"), "no plaintext in the envelope");
        Ok(())
    }

    #[test]
    fn moved_or_tampered_ciphertexts_do_not_open() -> Result<(), CryptoError> {
        let key = Key32::generate();
        let (t1, t2, d) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let env = seal(&key, 1, d, &ctx(t1, "row-a"), b"value")?;
        assert_eq!(
            open(&key, &ctx(t1, "row-b"), &env).err(),
            Some(CryptoError::Decrypt),
            "other row"
        );
        assert_eq!(
            open(&key, &ctx(t2, "row-a"), &env).err(),
            Some(CryptoError::Decrypt),
            "other tenant"
        );
        let other_column = Context {
            column: "access_token",
            ..ctx(t1, "row-a")
        };
        assert_eq!(
            open(&key, &other_column, &env).err(),
            Some(CryptoError::Decrypt),
            "other column"
        );
        assert_eq!(
            open(&Key32::generate(), &ctx(t1, "row-a"), &env).err(),
            Some(CryptoError::Decrypt),
            "other key"
        );
        let mut flipped = env.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            open(&key, &ctx(t1, "row-a"), &flipped).err(),
            Some(CryptoError::Decrypt)
        );
        let mut relabelled = env.clone();
        relabelled[6] ^= 1; // KEK version in the header is authenticated too
        assert_eq!(
            open(&key, &ctx(t1, "row-a"), &relabelled).err(),
            Some(CryptoError::Decrypt)
        );
        assert_eq!(header(b"garbage").err(), Some(CryptoError::Malformed));
        Ok(())
    }

    #[test]
    fn data_keys_wrap_under_the_master_key_only_for_their_tenant() -> Result<(), CryptoError> {
        let (kek, dek) = (Key32::generate(), Key32::generate());
        let (t, id) = (Uuid::now_v7(), Uuid::now_v7());
        let wrapped = wrap_dek(&kek, 7, t, id, &dek)?;
        assert_eq!(unwrap_dek(&kek, t, id, &wrapped)?.expose(), dek.expose());
        assert!(unwrap_dek(&kek, Uuid::now_v7(), id, &wrapped).is_err());
        assert!(unwrap_dek(&Key32::generate(), t, id, &wrapped).is_err());
        assert_ne!(kek.check_value(), Key32::generate().check_value());
        assert_eq!(format!("{kek:?}"), "Key32(<hidden>)");
        Ok(())
    }
}

//! Webhook signatures (pure; no I/O, no HTTP). Two families:
//!
//! - [`standard`]: the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64>`), used for every outbound delivery and offered for inbound
//!   sources. Interoperates with the official `standardwebhooks` libraries and Svix.
//! - [`generic`]: provider HMAC schemes described as data (header, algorithm, encoding, prefix,
//!   signed payload), enough for GitHub's `X-Hub-Signature-256` and Stripe's `Stripe-Signature`.
//!
//! Both return a [`SignatureError`] whose [`code`](SignatureError::code) is stable, so the HTTP
//! layer can answer with it and the audit log can record it. Errors never carry secret material,
//! nor the signature received: an attacker learns nothing from them beyond which check failed.

pub mod generic;
pub mod handler;
pub mod standard;

pub use generic::{sign_generic, verify_generic, HmacAlgorithm, HmacScheme, SignatureEncoding, SignedPayload};
pub use standard::{sign, verify, WebhookSecret};

use base64::alphabet::STANDARD as STANDARD_ALPHABET;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq};

/// The tolerance the Standard Webhooks libraries apply, in both directions.
pub const DEFAULT_TOLERANCE_SECS: u32 = 300;

/// Far above any legitimate header (a few signatures during rotation), low enough that parsing
/// an attacker's header costs nothing.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 4096;

/// Standard base64 that decodes with or without padding: senders and secret issuers differ, and
/// the reference libraries accept both.
pub(crate) const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD_ALPHABET,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook was refused. Each variant has a stable [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The named header is absent or empty.
    #[error("missing or empty header {0}")]
    MissingHeader(String),
    #[error("malformed message id")]
    MalformedId,
    #[error("timestamp is not a whole number of seconds since the epoch")]
    MalformedTimestamp,
    #[error("timestamp is older than the tolerance allows")]
    TimestampTooOld,
    #[error("timestamp is further in the future than the tolerance allows")]
    TimestampInFuture,
    #[error("malformed signature header")]
    MalformedSignature,
    /// The header parsed, but carried no signature of a version this scheme checks.
    #[error("no signature of a supported version")]
    NoSupportedSignature,
    /// A configuration problem on our side, not the sender's: nothing can verify.
    #[error("no signing secret configured")]
    NoSecretConfigured,
    #[error("signature does not match")]
    SignatureMismatch,
}

impl SignatureError {
    /// A stable, machine-readable code for API responses and audit records.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedId => "malformed_id",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TimestampInFuture => "timestamp_in_future",
            Self::MalformedSignature => "malformed_signature",
            Self::NoSupportedSignature => "no_supported_signature",
            Self::NoSecretConfigured => "no_secret_configured",
            Self::SignatureMismatch => "signature_mismatch",
        }
    }
}

/// A header value, or `MissingHeader` when absent or blank: senders that emit an empty header
/// have not signed anything, and the libraries treat both cases alike.
pub(crate) fn required<'a>(value: Option<&'a str>, header: &str) -> Result<&'a str, SignatureError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(SignatureError::MissingHeader(header.to_owned())),
    }
}

/// Seconds since the epoch, digits only: signs, fractions and spaces are refused rather than
/// interpreted, so a value means one thing to us and to the signer.
pub(crate) fn parse_timestamp(s: &str) -> Result<i64, SignatureError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedTimestamp);
    }
    s.parse::<i64>().map_err(|_| SignatureError::MalformedTimestamp)
}

/// Refuses timestamps outside `now ± tolerance`; the bounds themselves are accepted, as in the
/// reference libraries. i128 so that extreme values cannot overflow.
pub(crate) fn check_timestamp(ts: i64, now_secs: i64, tolerance_secs: u32) -> Result<(), SignatureError> {
    let age = i128::from(now_secs) - i128::from(ts);
    let tolerance = i128::from(tolerance_secs);
    if age > tolerance {
        Err(SignatureError::TimestampTooOld)
    } else if -age > tolerance {
        Err(SignatureError::TimestampInFuture)
    } else {
        Ok(())
    }
}

/// HMAC over the concatenation of `parts`, without building the concatenation (bodies can be
/// large).
pub(crate) fn hmac_tag(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        HmacAlgorithm::Sha256 => tag::<Hmac<Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => tag::<Hmac<Sha512>>(key, parts),
    }
}

fn tag<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails; if it did, the empty tag could not
    // equal any received signature, whose length is checked against the digest size first.
    let Ok(mut mac) = <M as Mac>::new_from_slice(key) else {
        return Vec::new();
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether any received tag equals any expected one. Every pair is compared in constant time and
/// the loop never exits early, so timing reveals neither which secret nor which entry matched.
pub(crate) fn any_match(expected: &[Vec<u8>], received: &[Vec<u8>]) -> bool {
    let mut found = Choice::from(0);
    for e in expected {
        for r in received {
            found |= e.as_slice().ct_eq(r.as_slice());
        }
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let all = [
            SignatureError::MissingHeader("x".into()),
            SignatureError::MalformedId,
            SignatureError::MalformedTimestamp,
            SignatureError::TimestampTooOld,
            SignatureError::TimestampInFuture,
            SignatureError::MalformedSignature,
            SignatureError::NoSupportedSignature,
            SignatureError::NoSecretConfigured,
            SignatureError::SignatureMismatch,
        ];
        let mut codes: Vec<_> = all.iter().map(SignatureError::code).collect();
        assert_eq!(codes[0], "missing_header");
        assert_eq!(codes[8], "signature_mismatch");
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn timestamps_are_digits_only() {
        assert_eq!(parse_timestamp("1614265330"), Ok(1_614_265_330));
        for bad in [
            "",
            " 1",
            "1 ",
            "+1",
            "-1",
            "1.5",
            "1e9",
            "abc",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_timestamp(bad), Err(SignatureError::MalformedTimestamp), "{bad:?}");
        }
    }

    #[test]
    fn tolerance_is_inclusive_and_directional() {
        let now = 1_000_000;
        assert_eq!(check_timestamp(now - 300, now, 300), Ok(()));
        assert_eq!(check_timestamp(now + 300, now, 300), Ok(()));
        assert_eq!(
            check_timestamp(now - 301, now, 300),
            Err(SignatureError::TimestampTooOld)
        );
        assert_eq!(
            check_timestamp(now + 301, now, 300),
            Err(SignatureError::TimestampInFuture)
        );
        assert_eq!(
            check_timestamp(i64::MAX, i64::MIN, 300),
            Err(SignatureError::TimestampInFuture)
        );
        assert_eq!(
            check_timestamp(i64::MIN, i64::MAX, u32::MAX),
            Err(SignatureError::TimestampTooOld)
        );
    }

    #[test]
    fn any_match_needs_equal_length_and_content() {
        let a = vec![1u8; 32];
        assert!(any_match(&[vec![0; 32], a.clone()], &[vec![2; 32], a.clone()]));
        assert!(!any_match(std::slice::from_ref(&a), &[a[..31].to_vec()]));
        assert!(!any_match(std::slice::from_ref(&a), &[]));
        assert!(!any_match(&[], &[a]));
    }

    #[test]
    fn missing_and_blank_headers_are_alike() {
        assert_eq!(required(None, "h"), Err(SignatureError::MissingHeader("h".into())));
        assert_eq!(
            required(Some("  "), "h"),
            Err(SignatureError::MissingHeader("h".into()))
        );
        assert_eq!(required(Some(" v "), "h"), Ok("v"));
    }
}

//! Standard Webhooks (<https://www.standardwebhooks.com>): HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, sent as `webhook-signature: v1,<base64>`. The header
//! may list several space-separated signatures so that a sender can sign with the old and the new
//! secret while a rotation is under way; any one match is enough.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use secrecy::SecretString;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{any_match, check_timestamp, hmac_tag, parse_timestamp, required, HmacAlgorithm, SignatureError};
use super::{LENIENT, MAX_SIGNATURE_HEADER_LEN};
use crate::ValidationError;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Message ids are used as replay-protection keys; a bound keeps that store small.
pub const MAX_ID_LEN: usize = 256;

/// A Standard Webhooks signing secret: 24 to 64 random bytes, written `whsec_<base64>`.
/// Wiped from memory on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    pub const PREFIX: &'static str = "whsec_";
    pub const MIN_BYTES: usize = 24;
    pub const MAX_BYTES: usize = 64;
    /// Above the spec's minimum: a SHA-256 HMAC key gains nothing past 64 bytes, and 32 is the
    /// hash's own strength.
    pub const GENERATED_BYTES: usize = 32;

    pub fn generate() -> Self {
        let mut key = vec![0u8; Self::GENERATED_BYTES];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// Parses `whsec_<base64>`. The error never quotes the input.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let Some(b64) = s.trim().strip_prefix(Self::PREFIX) else {
            return Err(ValidationError::new("secret", "must start with whsec_"));
        };
        let key = LENIENT
            .decode(b64)
            .map_err(|_| ValidationError::new("secret", "must be whsec_ followed by base64"))?;
        Self::from_vec(key)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValidationError> {
        Self::from_vec(bytes.to_vec())
    }

    fn from_vec(key: Vec<u8>) -> Result<Self, ValidationError> {
        let key = Self(key);
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&key.0.len()) {
            return Err(ValidationError::new("secret", "must decode to between 24 and 64 bytes"));
        }
        Ok(key)
    }

    /// The `whsec_…` form, to show the owner once or to encrypt for storage.
    pub fn expose_encoded(&self) -> SecretString {
        let b64 = Zeroizing::new(STANDARD.encode(&self.0));
        SecretString::from(format!("{}{}", Self::PREFIX, b64.as_str()))
    }

    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<hidden>)")
    }
}

/// The `webhook-signature` value for one secret: `v1,<base64>`. A sender rotating secrets joins
/// the values for the old and new secret with a space.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let tag = tag(secret, msg_id, timestamp_secs, body);
    format!("v1,{}", STANDARD.encode(tag))
}

/// Verifies a request against any of `secrets` (several during rotation). Header values are
/// passed as received, `None` when absent; `now_secs` is the receiver's clock.
///
/// Checks run cheapest first (headers, timestamp, header syntax) so a stale or garbled request
/// costs no HMAC.
pub fn verify(
    secrets: &[WebhookSecret],
    msg_id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u32,
) -> Result<(), SignatureError> {
    let msg_id = required(msg_id, HEADER_ID)?;
    let timestamp = required(timestamp, HEADER_TIMESTAMP)?;
    let signature = required(signature, HEADER_SIGNATURE)?;
    if msg_id.len() > MAX_ID_LEN || msg_id.chars().any(char::is_control) {
        return Err(SignatureError::MalformedId);
    }
    let ts = parse_timestamp(timestamp)?;
    check_timestamp(ts, now_secs, tolerance_secs)?;
    let received = parse_signature_header(signature)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let expected: Vec<Vec<u8>> = secrets.iter().map(|s| tag(s, msg_id, ts, body)).collect();
    if any_match(&expected, &received) {
        Ok(())
    } else {
        Err(SignatureError::SignatureMismatch)
    }
}

/// The timestamp is re-rendered from the parsed integer, as the reference libraries do, so that
/// both sides sign the same bytes even if a sender pads it with zeros.
fn tag(secret: &WebhookSecret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp_secs.to_string();
    let parts: [&[u8]; 5] = [msg_id.as_bytes(), b".", ts.as_bytes(), b".", body];
    hmac_tag(HmacAlgorithm::Sha256, &secret.0, &parts)
}

/// The decoded `v1` signatures of a header. Entries of other versions (e.g. `v1a`, asymmetric)
/// are skipped, as the spec asks; an entry that is not `version,signature` makes the whole
/// header malformed, rather than letting its position decide the outcome.
fn parse_signature_header(header: &str) -> Result<Vec<Vec<u8>>, SignatureError> {
    if header.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(SignatureError::MalformedSignature);
    }
    let mut v1 = Vec::new();
    for entry in header.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, sig)) = entry.split_once(',') else {
            return Err(SignatureError::MalformedSignature);
        };
        if version.is_empty() || sig.is_empty() {
            return Err(SignatureError::MalformedSignature);
        }
        if version != "v1" {
            continue;
        }
        let bytes = LENIENT.decode(sig).map_err(|_| SignatureError::MalformedSignature)?;
        if bytes.len() != HmacAlgorithm::Sha256.output_len() {
            return Err(SignatureError::MalformedSignature);
        }
        v1.push(bytes);
    }
    if v1.is_empty() {
        return Err(SignatureError::NoSupportedSignature);
    }
    Ok(v1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const NOW: i64 = 1_614_265_330;
    const TOL: u32 = super::super::DEFAULT_TOLERANCE_SECS;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

    fn secret() -> WebhookSecret {
        WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    fn check(secrets: &[WebhookSecret], ts: &str, sig: &str, body: &[u8]) -> Result<(), SignatureError> {
        verify(secrets, Some(ID), Some(ts), Some(sig), body, NOW, TOL)
    }

    /// Produced with the official Python library, standardwebhooks 1.1.0:
    /// `Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").sign("msg_p5jXN8AQM9LWM0D4loKWxJek",
    /// datetime.fromtimestamp(1614265330, tz=timezone.utc), '{"test": 2432232314}')`.
    /// It is also the example in the Svix documentation.
    const PYTHON_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_reference_library() {
        assert_eq!(sign(&secret(), ID, NOW, BODY), PYTHON_SIGNATURE);
        assert_eq!(check(&[secret()], "1614265330", PYTHON_SIGNATURE, BODY), Ok(()));
    }

    #[test]
    fn round_trip_with_a_generated_secret() {
        let s = WebhookSecret::generate();
        let parsed = WebhookSecret::parse(s.expose_encoded().expose_secret()).unwrap();
        assert_eq!(parsed.expose_bytes(), s.expose_bytes());
        let sig = sign(&s, ID, NOW - 10, b"payload");
        assert_eq!(check(&[parsed], &(NOW - 10).to_string(), &sig, b"payload"), Ok(()));
    }

    #[test]
    fn tampered_body_and_wrong_secret_are_refused() {
        let sig = sign(&secret(), ID, NOW, BODY);
        let mismatch = Err(SignatureError::SignatureMismatch);
        assert_eq!(
            check(&[secret()], "1614265330", &sig, br#"{"test": 2432232315}"#),
            mismatch
        );
        assert_eq!(check(&[WebhookSecret::generate()], "1614265330", &sig, BODY), mismatch);
        // The timestamp is signed: moving it inside the tolerance does not help.
        assert_eq!(check(&[secret()], "1614265331", &sig, BODY), mismatch);
        let other_id = verify(
            &[secret()],
            Some("msg_other"),
            Some("1614265330"),
            Some(&sig),
            BODY,
            NOW,
            TOL,
        );
        assert_eq!(other_id, mismatch);
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let old = NOW - 6 * 60;
        let sig = sign(&secret(), ID, old, BODY);
        assert_eq!(
            check(&[secret()], &old.to_string(), &sig, BODY),
            Err(SignatureError::TimestampTooOld)
        );
        let future = NOW + 6 * 60;
        let sig = sign(&secret(), ID, future, BODY);
        let res = check(&[secret()], &future.to_string(), &sig, BODY);
        assert_eq!(res, Err(SignatureError::TimestampInFuture));
        let edge = NOW - 5 * 60;
        let sig = sign(&secret(), ID, edge, BODY);
        assert_eq!(check(&[secret()], &edge.to_string(), &sig, BODY), Ok(()));
        assert_eq!(
            check(&[secret()], "16142653.30", &sig, BODY),
            Err(SignatureError::MalformedTimestamp)
        );
    }

    #[test]
    fn any_signature_against_any_secret_during_rotation() {
        let (old, new) = (secret(), WebhookSecret::generate());
        let header = format!("{} {}", sign(&old, ID, NOW, BODY), sign(&new, ID, NOW, BODY));
        assert_eq!(check(std::slice::from_ref(&new), "1614265330", &header, BODY), Ok(()));
        assert_eq!(check(std::slice::from_ref(&old), "1614265330", &header, BODY), Ok(()));
        let only_new = sign(&new, ID, NOW, BODY);
        assert_eq!(check(&[old, new], "1614265330", &only_new, BODY), Ok(()));
        let unrelated = WebhookSecret::generate();
        assert_eq!(
            check(&[unrelated], "1614265330", &header, BODY),
            Err(SignatureError::SignatureMismatch)
        );
    }

    #[test]
    fn other_versions_are_skipped() {
        let header = format!("v1a,c29tZXRoaW5nIGVsc2U= {PYTHON_SIGNATURE}  v2,xyz");
        assert_eq!(check(&[secret()], "1614265330", &header, BODY), Ok(()));
        let res = check(&[secret()], "1614265330", "v1a,c29tZXRoaW5nIGVsc2U=", BODY);
        assert_eq!(res, Err(SignatureError::NoSupportedSignature));
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let huge = format!("v1,{}", "A".repeat(MAX_SIGNATURE_HEADER_LEN));
        let cases = [
            "v1g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned(),
            format!("{PYTHON_SIGNATURE} garbage"),
            "v1,not*base64!".to_owned(),
            "v1,".to_owned(),
            ",abc".to_owned(),
            "v1,AAAA".to_owned(),
            "v1,,,,".to_owned(),
            huge,
        ];
        for header in &cases {
            let res = check(&[secret()], "1614265330", header, BODY);
            assert_eq!(res, Err(SignatureError::MalformedSignature), "{header:.40}");
        }
        let res = check(&[secret()], "1614265330", "   ", BODY);
        assert_eq!(res, Err(SignatureError::MissingHeader(HEADER_SIGNATURE.into())));
    }

    #[test]
    fn missing_headers_and_secrets_are_reported() {
        let s = [secret()];
        let sig = Some(PYTHON_SIGNATURE);
        let ts = Some("1614265330");
        let missing = |h: &str| Err(SignatureError::MissingHeader(h.into()));
        assert_eq!(verify(&s, None, ts, sig, BODY, NOW, TOL), missing(HEADER_ID));
        assert_eq!(
            verify(&s, Some(ID), Some(""), sig, BODY, NOW, TOL),
            missing(HEADER_TIMESTAMP)
        );
        assert_eq!(
            verify(&s, Some(ID), ts, None, BODY, NOW, TOL),
            missing(HEADER_SIGNATURE)
        );
        let long_id = "m".repeat(MAX_ID_LEN + 1);
        let res = verify(&s, Some(&long_id), ts, sig, BODY, NOW, TOL);
        assert_eq!(res, Err(SignatureError::MalformedId));
        let res = verify(&[], Some(ID), ts, sig, BODY, NOW, TOL);
        assert_eq!(res, Err(SignatureError::NoSecretConfigured));
    }

    #[test]
    fn secrets_parse_strictly_and_stay_hidden() {
        let unpadded = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(unpadded.expose_bytes().len(), 24);
        let generated = WebhookSecret::generate();
        let encoded = generated.expose_encoded();
        assert!(encoded.expose_secret().starts_with("whsec_"));
        assert_eq!(generated.expose_bytes().len(), WebhookSecret::GENERATED_BYTES);
        assert_eq!(format!("{generated:?}"), "WebhookSecret(<hidden>)");
        let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_***", &short, &long] {
            let err = WebhookSecret::parse(bad).unwrap_err();
            assert!(!err.to_string().contains("MfKQ9r8"), "{err}");
        }
        assert!(WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 64]))).is_ok());
    }
}

//! Provider HMAC schemes described as data, so a tenant can configure a source without code:
//! which header, which hash, how the tag is written, and what was signed.
//!
//! Secrets here are raw bytes, used exactly as the provider uses them: GitHub and Stripe both key
//! the HMAC with the secret string's UTF-8 bytes (for Stripe, `whsec_` included — unlike
//! Standard Webhooks, whose `whsec_` secrets are base64 to be decoded).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{any_match, check_timestamp, hmac_tag, parse_timestamp, required, SignatureError};
use super::{LENIENT, MAX_SIGNATURE_HEADER_LEN};
use crate::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    Sha256,
    Sha512,
}

impl HmacAlgorithm {
    /// Tag length in bytes; a received tag of another length is malformed, not a mismatch.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Either case is accepted; lower case is produced.
    Hex,
    /// Standard alphabet, padding optional.
    Base64,
}

/// What the HMAC covers and how the header is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedPayload {
    /// The raw body; the header is `<prefix><tag>`. No timestamp, so no tolerance and no replay
    /// protection from the signature alone.
    Body,
    /// Stripe's layout: header `t=<ts>,v1=<tag>[,v1=<tag>…]` (other keys ignored), HMAC over
    /// `{t}.{body}`, tolerance applied to `t`. Several `v1` entries appear during secret rolls.
    Stripe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacScheme {
    /// Header name; HTTP header names are case-insensitive, so matching it is the caller's job.
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: SignatureEncoding,
    /// Text before the tag, e.g. `sha256=`; only meaningful for [`SignedPayload::Body`].
    pub prefix: Option<String>,
    pub payload: SignedPayload,
}

impl HmacScheme {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    pub fn github() -> Self {
        Self {
            header: "X-Hub-Signature-256".to_owned(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: Some("sha256=".to_owned()),
            payload: SignedPayload::Body,
        }
    }

    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256 of "{t}.{body}">`.
    pub fn stripe() -> Self {
        Self {
            header: "Stripe-Signature".to_owned(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: None,
            payload: SignedPayload::Stripe,
        }
    }

    /// Checks a tenant-supplied scheme before it is stored.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if self.header.is_empty() || self.header.len() > 64 || !self.header.chars().all(token_char) {
            return Err(ValidationError::new(
                "header",
                "must be an HTTP header name of at most 64 characters",
            ));
        }
        if let Some(prefix) = &self.prefix {
            if self.payload == SignedPayload::Stripe {
                return Err(ValidationError::new(
                    "prefix",
                    "is not used by the stripe payload layout",
                ));
            }
            if prefix.is_empty() || prefix.len() > 32 || !prefix.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ValidationError::new(
                    "prefix",
                    "must be 1 to 32 printable ASCII characters",
                ));
            }
        }
        Ok(())
    }
}

/// Verifies `header_value` (the value of `scheme.header`, `None` when absent) against any of
/// `secrets`. `now_secs` and `tolerance_secs` apply only to timestamped layouts.
pub fn verify_generic(
    scheme: &HmacScheme,
    secrets: &[Vec<u8>],
    header_value: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u32,
) -> Result<(), SignatureError> {
    let value = required(header_value, &scheme.header)?;
    if value.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(SignatureError::MalformedSignature);
    }
    let (timestamp, received) = match scheme.payload {
        SignedPayload::Body => (None, vec![decode_body_header(scheme, value)?]),
        SignedPayload::Stripe => {
            let (ts, tags) = split_stripe_header(value)?;
            check_timestamp(ts, now_secs, tolerance_secs)?;
            let tags = tags
                .into_iter()
                .map(|t| decode_tag(scheme, t))
                .collect::<Result<Vec<_>, _>>()?;
            if tags.is_empty() {
                return Err(SignatureError::NoSupportedSignature);
            }
            (Some(ts), tags)
        }
    };
    // An empty key is public knowledge: anyone could sign with it.
    let usable: Vec<&Vec<u8>> = secrets.iter().filter(|s| !s.is_empty()).collect();
    if usable.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let expected: Vec<Vec<u8>> = usable.iter().map(|s| tag(scheme, s, timestamp, body)).collect();
    if any_match(&expected, &received) {
        Ok(())
    } else {
        Err(SignatureError::SignatureMismatch)
    }
}

/// The header value a sender using `scheme` would send, mainly for tests and for documenting a
/// source's expected input. `timestamp_secs` is ignored by [`SignedPayload::Body`].
pub fn sign_generic(scheme: &HmacScheme, secret: &[u8], body: &[u8], timestamp_secs: i64) -> String {
    match scheme.payload {
        SignedPayload::Body => {
            let prefix = scheme.prefix.as_deref().unwrap_or("");
            format!("{prefix}{}", encode(scheme.encoding, &tag(scheme, secret, None, body)))
        }
        SignedPayload::Stripe => {
            let t = tag(scheme, secret, Some(timestamp_secs), body);
            format!("t={timestamp_secs},v1={}", encode(scheme.encoding, &t))
        }
    }
}

fn tag(scheme: &HmacScheme, secret: &[u8], timestamp: Option<i64>, body: &[u8]) -> Vec<u8> {
    match timestamp {
        None => hmac_tag(scheme.algorithm, secret, &[body]),
        Some(ts) => {
            let ts = ts.to_string();
            hmac_tag(scheme.algorithm, secret, &[ts.as_bytes(), b".", body])
        }
    }
}

/// Strips the prefix (ASCII case-insensitively: some senders capitalise it) and decodes the tag.
fn decode_body_header(scheme: &HmacScheme, value: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = match scheme.prefix.as_deref() {
        None | Some("") => value,
        Some(prefix) => match value.get(..prefix.len()) {
            Some(head) if head.eq_ignore_ascii_case(prefix) => &value[prefix.len()..],
            _ => return Err(SignatureError::MalformedSignature),
        },
    };
    decode_tag(scheme, encoded)
}

/// The timestamp and the raw `v1` values of a Stripe-style header. A second `t` is refused:
/// which one was signed would be ambiguous.
fn split_stripe_header(value: &str) -> Result<(i64, Vec<&str>), SignatureError> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, val)) = item.split_once('=') else {
            return Err(SignatureError::MalformedSignature);
        };
        match key.trim() {
            "t" if timestamp.is_some() => return Err(SignatureError::MalformedSignature),
            "t" => timestamp = Some(parse_timestamp(val.trim())?),
            "v1" => tags.push(val.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MalformedTimestamp)?;
    Ok((timestamp, tags))
}

fn decode_tag(scheme: &HmacScheme, encoded: &str) -> Result<Vec<u8>, SignatureError> {
    let bytes = match scheme.encoding {
        SignatureEncoding::Hex => hex_decode(encoded),
        SignatureEncoding::Base64 => LENIENT.decode(encoded).ok(),
    };
    match bytes {
        Some(b) if b.len() == scheme.algorithm.output_len() => Ok(b),
        _ => Err(SignatureError::MalformedSignature),
    }
}

fn encode(encoding: SignatureEncoding, bytes: &[u8]) -> String {
    match encoding {
        SignatureEncoding::Hex => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut out = String::with_capacity(bytes.len() * 2);
            for b in bytes {
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
            out
        }
        SignatureEncoding::Base64 => STANDARD.encode(bytes),
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    s.chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const TOL: u32 = super::super::DEFAULT_TOLERANCE_SECS;

    /// From GitHub's documentation ("Validating webhook deliveries"), also checked with Python's
    /// `hmac.new(b"It's a Secret to Everybody", b"Hello, World!", hashlib.sha256).hexdigest()`.
    const GITHUB_SECRET: &[u8] = b"It's a Secret to Everybody";
    const GITHUB_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    /// Python: `hmac.new(b"whsec_stripe_example_secret",
    /// b'1700000000.{"id":"evt_1","object":"event"}', hashlib.sha256).hexdigest()`.
    const STRIPE_SECRET: &[u8] = b"whsec_stripe_example_secret";
    const STRIPE_BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    const STRIPE_HEX: &str = "dad4146684ca57bd50511112511988c79316d01f182f279f06d19067458c0907";

    fn github(value: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify_generic(&HmacScheme::github(), &[GITHUB_SECRET.to_vec()], value, body, NOW, TOL)
    }

    fn stripe(value: &str, now: i64) -> Result<(), SignatureError> {
        verify_generic(
            &HmacScheme::stripe(),
            &[STRIPE_SECRET.to_vec()],
            Some(value),
            STRIPE_BODY,
            now,
            TOL,
        )
    }

    #[test]
    fn github_documentation_example() {
        assert_eq!(
            sign_generic(&HmacScheme::github(), GITHUB_SECRET, b"Hello, World!", 0),
            GITHUB_SIG
        );
        assert_eq!(github(Some(GITHUB_SIG), b"Hello, World!"), Ok(()));
        assert_eq!(github(Some(&GITHUB_SIG.to_uppercase()), b"Hello, World!"), Ok(()));
        assert_eq!(
            github(Some(GITHUB_SIG), b"Hello, World?"),
            Err(SignatureError::SignatureMismatch)
        );
        let wrong = verify_generic(
            &HmacScheme::github(),
            &[b"nope".to_vec()],
            Some(GITHUB_SIG),
            b"Hello, World!",
            0,
            0,
        );
        assert_eq!(wrong, Err(SignatureError::SignatureMismatch));
    }

    #[test]
    fn github_malformed_headers() {
        let missing = Err(SignatureError::MissingHeader("X-Hub-Signature-256".into()));
        assert_eq!(github(None, b"x"), missing);
        assert_eq!(github(Some(""), b"x"), missing);
        let malformed = Err(SignatureError::MalformedSignature);
        let bare_hex = &GITHUB_SIG["sha256=".len()..];
        let huge = format!("sha256={}", "a".repeat(MAX_SIGNATURE_HEADER_LEN));
        for bad in [
            bare_hex,
            "sha1=757107ea",
            "sha256=",
            "sha256=zz",
            "sha256=abc",
            "sha256=757107ea",
            &huge,
            "é",
        ] {
            assert_eq!(github(Some(bad), b"x"), malformed, "{bad:.40}");
        }
    }

    #[test]
    fn stripe_example_and_rotation() {
        let header =
            format!("t=1700000000,v1={STRIPE_HEX},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39");
        assert_eq!(stripe(&header, NOW), Ok(()));
        assert_eq!(
            sign_generic(&HmacScheme::stripe(), STRIPE_SECRET, STRIPE_BODY, NOW),
            format!("t={NOW},v1={STRIPE_HEX}")
        );
        let other = sign_generic(&HmacScheme::stripe(), b"whsec_other", STRIPE_BODY, NOW);
        let other_hex = other.rsplit_once('=').map(|(_, h)| h).unwrap();
        assert_eq!(
            stripe(&format!("t={NOW}, v1={other_hex}, v1={STRIPE_HEX}"), NOW),
            Ok(())
        );
        assert_eq!(stripe(&other, NOW), Err(SignatureError::SignatureMismatch));
        let both = [b"whsec_other".to_vec(), STRIPE_SECRET.to_vec()];
        let res = verify_generic(&HmacScheme::stripe(), &both, Some(&other), STRIPE_BODY, NOW, TOL);
        assert_eq!(res, Ok(()));
    }

    #[test]
    fn stripe_timestamps() {
        let header = format!("t={NOW},v1={STRIPE_HEX}");
        assert_eq!(stripe(&header, NOW + 6 * 60), Err(SignatureError::TimestampTooOld));
        assert_eq!(stripe(&header, NOW - 6 * 60), Err(SignatureError::TimestampInFuture));
        assert_eq!(stripe(&header, NOW + 5 * 60), Ok(()));
        // The timestamp is signed: a replay with a fresh `t` fails.
        assert_eq!(
            stripe(&format!("t={},v1={STRIPE_HEX}", NOW + 1), NOW),
            Err(SignatureError::SignatureMismatch)
        );
    }

    #[test]
    fn stripe_malformed_headers() {
        let cases: [(&str, SignatureError); 7] = [
            ("v1=abc", SignatureError::MalformedTimestamp),
            ("t=abc,v1=00", SignatureError::MalformedTimestamp),
            ("t=1700000000", SignatureError::NoSupportedSignature),
            ("t=1700000000,v0=00", SignatureError::NoSupportedSignature),
            ("t=1700000000,t=1700000001,v1=00", SignatureError::MalformedSignature),
            ("t=1700000000,v1", SignatureError::MalformedSignature),
            ("t=1700000000,v1=xyz", SignatureError::MalformedSignature),
        ];
        for (header, err) in cases {
            assert_eq!(stripe(header, NOW), Err(err), "{header}");
        }
    }

    #[test]
    fn sha512_base64_round_trip() {
        let scheme = HmacScheme {
            header: "X-Signature".into(),
            algorithm: HmacAlgorithm::Sha512,
            encoding: SignatureEncoding::Base64,
            prefix: None,
            payload: SignedPayload::Body,
        };
        assert_eq!(scheme.validate(), Ok(()));
        let sig = sign_generic(&scheme, b"k", b"body", 0);
        let ok = verify_generic(&scheme, &[b"x".to_vec(), b"k".to_vec()], Some(&sig), b"body", 0, 0);
        assert_eq!(ok, Ok(()));
        let sha256_sized = STANDARD.encode([0u8; 32]);
        let res = verify_generic(&scheme, &[b"k".to_vec()], Some(&sha256_sized), b"body", 0, 0);
        assert_eq!(res, Err(SignatureError::MalformedSignature));
    }

    #[test]
    fn empty_secrets_verify_nothing() {
        let sig = sign_generic(&HmacScheme::github(), b"", b"body", 0);
        let res = verify_generic(&HmacScheme::github(), &[Vec::new()], Some(&sig), b"body", 0, 0);
        assert_eq!(res, Err(SignatureError::NoSecretConfigured));
        let res = verify_generic(&HmacScheme::github(), &[], Some(&sig), b"body", 0, 0);
        assert_eq!(res, Err(SignatureError::NoSecretConfigured));
    }

    #[test]
    fn schemes_serialise_and_validate() {
        let json = serde_json::to_string(&HmacScheme::github()).unwrap();
        assert_eq!(
            json,
            r#"{"header":"X-Hub-Signature-256","algorithm":"sha256","encoding":"hex","prefix":"sha256=","payload":"body"}"#
        );
        assert_eq!(serde_json::from_str::<HmacScheme>(&json).unwrap(), HmacScheme::github());
        assert_eq!(HmacScheme::stripe().validate(), Ok(()));
        let bad_header = HmacScheme {
            header: "X Sig".into(),
            ..HmacScheme::github()
        };
        assert!(bad_header.validate().is_err());
        let stripe_prefix = HmacScheme {
            prefix: Some("v1=".into()),
            ..HmacScheme::stripe()
        };
        assert!(stripe_prefix.validate().is_err());
        let long_prefix = HmacScheme {
            prefix: Some("p".repeat(33)),
            ..HmacScheme::github()
        };
        assert!(long_prefix.validate().is_err());
    }
}

//! Oracles shared by the fuzz targets. They recompute what the code under test should have
//! computed straight from the primitives (HMAC, base64, hex), so that a target can assert
//! that a verifier accepts exactly the signatures it should, not merely that it returns.

use base64::alphabet::STANDARD as STANDARD_ALPHABET;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// HMAC-SHA256 of the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().to_vec()
}

/// HMAC-SHA512 of the concatenation of `parts`.
pub fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().to_vec()
}

/// Standard-alphabet base64, padding optional: what both webhook schemes accept.
pub fn base64_lenient(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &STANDARD_ALPHABET,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).ok()
}

pub fn base64_standard(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn base64url_no_pad(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex in either case.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    // from_str_radix alone would also take a sign ("+1").
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Flips one bit of `bytes` (a one-byte change at `at`, wrapped into range). No-op on empty input.
pub fn flip_bit(bytes: &mut [u8], at: usize, bit: u8) {
    if !bytes.is_empty() {
        let i = at % bytes.len();
        bytes[i] ^= 1 << (bit % 8);
    }
}

/// A tolerance window and a timestamp inside it, both within the digits-only range a
/// header can carry (non-negative i64).
pub fn timestamp_within(now: i64, tolerance: u32, offset: u32, future: bool) -> (i64, i64) {
    let now = now.checked_abs().unwrap_or(i64::MAX);
    let delta = i64::from(offset % tolerance.saturating_add(1).max(1));
    let ts = if future {
        now.saturating_add(delta)
    } else {
        (now - delta).max(0)
    };
    (now, ts)
}

/// A fuzz input in a readable, HTTP-like layout, so that seeds are real messages:
/// `name: value` lines, a blank line, then the body (any bytes).
pub struct Message<'a> {
    fields: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl<'a> Message<'a> {
    /// `None` when the part before the blank line is not UTF-8. A value keeps everything after
    /// `name:` and one space, leading and trailing blanks included, so they can be fuzzed.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let split = data.windows(2).position(|w| w == b"\n\n");
        let (head, body) = match split {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &data[data.len()..]),
        };
        let head = std::str::from_utf8(head).ok()?;
        let fields = head
            .split('\n')
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim(), value.strip_prefix(' ').unwrap_or(value)))
            .collect();
        Some(Self { fields, body })
    }

    /// The first value of `name` (names are case-sensitive here: they are fuzz knobs).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.fields.iter().filter(move |(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// A number knob: `default` when absent or not a number.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    }
}

//! Provider HMAC schemes, `cairn_core::webhook::generic::verify_generic`: GitHub
//! (`X-Hub-Signature-256: sha256=<hex>`), Stripe (`Stripe-Signature: t=…,v1=<hex>`), and a
//! tenant-defined scheme.
//!
//! Input: `name: value` lines, a blank line, then the body:
//!   scheme: github | stripe | custom;
//!   signature: the signature header's value (absent if no line);
//!   secret: a raw secret, used as its UTF-8 bytes (repeatable: several during a roll);
//!   now / tolerance: the receiver's clock and tolerance in seconds (Stripe);
//!   algorithm (sha256|sha512), encoding (hex|base64), prefix, payload (body|stripe): the
//!   custom scheme, used only when `HmacScheme::validate` accepts it.
//!
//! Invariants: an accepted request carries, for one non-empty secret, the HMAC of the body
//! (or of "{t}.{body}" with `t` within the tolerance, for Stripe) recomputed here from the
//! primitives; `sign_generic` output verifies, and a one-bit change of the body, the
//! secret or (Stripe) the timestamp is a mismatch; a one-bit change of the header is only
//! accepted when it still carries the right tag.
#![no_main]

use cairn_core::webhook::generic::{
    sign_generic, verify_generic, HmacAlgorithm, HmacScheme, SignatureEncoding, SignedPayload,
};
use cairn_core::webhook::{SignatureError, DEFAULT_TOLERANCE_SECS};
use cairn_fuzz::{base64_lenient, flip_bit, hex_decode, hmac_sha256, hmac_sha512, timestamp_within, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(msg) = Message::parse(data) else {
        return;
    };
    let Some(scheme) = scheme(&msg) else {
        return;
    };
    let secrets: Vec<Vec<u8>> = msg.all("secret").map(|s| s.as_bytes().to_vec()).collect();
    let now: i64 = msg.number("now", 1_700_000_000);
    let tolerance: u32 = msg.number("tolerance", DEFAULT_TOLERANCE_SECS);
    let header = msg.get("signature");

    // 1. Arbitrary requests: acceptance implies the right tag was presented.
    if verify_generic(&scheme, &secrets, header, msg.body, now, tolerance).is_ok() {
        assert_accepted_rightly(&scheme, &secrets, header, msg.body, now, tolerance);
    }

    // 2. Sign, then verify, then break one bit at a time.
    let Some(secret) = secrets.iter().find(|s| !s.is_empty()) else {
        return;
    };
    let (now, ts) = timestamp_within(now, tolerance, data.len() as u32, data.len() % 2 == 0);
    let signed = sign_generic(&scheme, secret, msg.body, ts);
    let check = |secret: &[u8], header: &str, body: &[u8]| {
        verify_generic(&scheme, &[secret.to_vec()], Some(header), body, now, tolerance)
    };
    assert_eq!(
        check(secret, &signed, msg.body),
        Ok(()),
        "a signed request verifies: {signed}"
    );
    let mismatch = Err(SignatureError::SignatureMismatch);
    for at in [0, msg.body.len() / 2, msg.body.len().saturating_sub(1)] {
        let mut body = msg.body.to_vec();
        flip_bit(&mut body, at, data.len() as u8);
        if body != msg.body {
            assert_eq!(check(secret, &signed, &body), mismatch, "body bit {at} changed");
        }
    }
    let mut key = secret.clone();
    flip_bit(&mut key, data.len(), 5);
    assert_eq!(check(&key, &signed, msg.body), mismatch, "secret changed");
    if scheme.payload == SignedPayload::Stripe {
        // A header carries no sign, so the other timestamp stays non-negative.
        let other = if ts < i64::MAX { ts + 1 } else { ts - 1 };
        let changed = signed.replacen(&format!("t={ts},"), &format!("t={other},"), 1);
        let res = verify_generic(&scheme, &[secret.clone()], Some(&changed), msg.body, other, 0);
        assert_eq!(res, mismatch, "timestamp changed: {changed}");
    }
    for at in 0..signed.len() {
        let mut bytes = signed.clone().into_bytes();
        flip_bit(&mut bytes, at, data.len() as u8 ^ at as u8);
        let Ok(changed) = String::from_utf8(bytes) else {
            continue;
        };
        if check(secret, &changed, msg.body).is_ok() {
            assert_accepted_rightly(
                &scheme,
                std::slice::from_ref(secret),
                Some(&changed),
                msg.body,
                now,
                tolerance,
            );
        }
    }
});

fn scheme(msg: &Message<'_>) -> Option<HmacScheme> {
    match msg.get("scheme").map(str::trim) {
        Some("github") | None => Some(HmacScheme::github()),
        Some("stripe") => Some(HmacScheme::stripe()),
        Some(_) => {
            let scheme = HmacScheme {
                header: msg.get("header").unwrap_or("X-Signature").to_owned(),
                algorithm: match msg.get("algorithm") {
                    Some("sha512") => HmacAlgorithm::Sha512,
                    _ => HmacAlgorithm::Sha256,
                },
                encoding: match msg.get("encoding") {
                    Some("base64") => SignatureEncoding::Base64,
                    _ => SignatureEncoding::Hex,
                },
                prefix: msg.get("prefix").map(str::to_owned),
                payload: match msg.get("payload") {
                    Some("stripe") => SignedPayload::Stripe,
                    _ => SignedPayload::Body,
                },
            };
            scheme.validate().is_ok().then_some(scheme)
        }
    }
}

fn decode(scheme: &HmacScheme, tag: &str) -> Option<Vec<u8>> {
    match scheme.encoding {
        SignatureEncoding::Hex => hex_decode(tag),
        SignatureEncoding::Base64 => base64_lenient(tag),
    }
}

fn mac(scheme: &HmacScheme, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match scheme.algorithm {
        HmacAlgorithm::Sha256 => hmac_sha256(key, parts),
        HmacAlgorithm::Sha512 => hmac_sha512(key, parts),
    }
}

/// The oracle for an accepted request, from the providers' documentation rather than from the
/// code under test.
fn assert_accepted_rightly(
    scheme: &HmacScheme,
    secrets: &[Vec<u8>],
    header: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: u32,
) {
    let value = header.map(str::trim).expect("accepted without a signature header");
    let keys: Vec<&Vec<u8>> = secrets.iter().filter(|s| !s.is_empty()).collect();
    assert!(!keys.is_empty(), "accepted with no usable secret");
    let found = match scheme.payload {
        SignedPayload::Body => {
            let prefix = scheme.prefix.as_deref().unwrap_or("");
            let head = value.get(..prefix.len()).expect("accepted without the prefix");
            assert!(
                head.eq_ignore_ascii_case(prefix),
                "accepted without the prefix {prefix:?}"
            );
            let tag = decode(scheme, &value[prefix.len()..]).expect("accepted an undecodable tag");
            keys.iter().any(|k| mac(scheme, k, &[body]) == tag)
        }
        SignedPayload::Stripe => {
            let items: Vec<(&str, &str)> = value
                .split(',')
                .filter_map(|i| i.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            let times: Vec<&str> = items.iter().filter(|(k, _)| *k == "t").map(|(_, v)| *v).collect();
            assert_eq!(times.len(), 1, "accepted {} timestamps", times.len());
            assert!(
                times[0].bytes().all(|b| b.is_ascii_digit()),
                "accepted t={:?}",
                times[0]
            );
            let t: i64 = times[0].parse().expect("accepted an out-of-range timestamp");
            assert!(
                (i128::from(now) - i128::from(t)).abs() <= i128::from(tolerance),
                "accepted a stale t"
            );
            let canonical = t.to_string();
            let tags: Vec<Vec<u8>> = items
                .iter()
                .filter(|(k, _)| *k == "v1")
                .filter_map(|(_, v)| decode(scheme, v))
                .collect();
            keys.iter()
                .any(|k| tags.contains(&mac(scheme, k, &[canonical.as_bytes(), b".", body])))
        }
    };
    assert!(found, "accepted a signature it did not compute: {value:?}");
}

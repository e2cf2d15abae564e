//! Standard Webhooks verification, `cairn_core::webhook::standard::verify`.
//!
//! Input: a delivery as `name: value` lines, a blank line, then the body:
//!   webhook-id / webhook-timestamp / webhook-signature: the three headers (absent if no line);
//!   secret: a `whsec_…` secret (repeatable: several during a rotation);
//!   now / tolerance: the receiver's clock and tolerance in seconds.
//!
//! Invariants:
//! - whatever the input, an accepted delivery has a well-formed id, a timestamp within the
//!   tolerance, and a `v1` entry equal to HMAC-SHA256(secret, "{id}.{ts}.{body}") for one of
//!   the secrets, recomputed here from the primitives;
//! - a secret round-trips through its `whsec_` form;
//! - what `sign` produces verifies, and equals the recomputed HMAC; changing one bit of the
//!   body, the id, the timestamp or the secret makes it a mismatch; changing one bit of the
//!   signature header is only accepted when the header still carries the right tag.
#![no_main]

use cairn_core::webhook::standard::{sign, verify, WebhookSecret, MAX_ID_LEN};
use cairn_core::webhook::{SignatureError, DEFAULT_TOLERANCE_SECS};
use cairn_fuzz::{base64_lenient, base64_standard, flip_bit, hmac_sha256, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(msg) = Message::parse(data) else {
        return;
    };
    let secrets: Vec<WebhookSecret> = msg.all("secret").filter_map(|s| WebhookSecret::parse(s).ok()).collect();
    for s in &secrets {
        let len = s.expose_bytes().len();
        assert!((WebhookSecret::MIN_BYTES..=WebhookSecret::MAX_BYTES).contains(&len));
        let encoded = s.expose_encoded();
        let again = WebhookSecret::parse(secrecy::ExposeSecret::expose_secret(&encoded));
        assert!(
            again.is_ok_and(|a| a.expose_bytes() == s.expose_bytes()),
            "whsec_ round trip"
        );
    }
    let now: i64 = msg.number("now", 1_614_265_330);
    let tolerance: u32 = msg.number("tolerance", DEFAULT_TOLERANCE_SECS);
    let (id, ts, sig) = (
        msg.get("webhook-id"),
        msg.get("webhook-timestamp"),
        msg.get("webhook-signature"),
    );

    // 1. Arbitrary deliveries: acceptance implies the right tag was presented.
    let result = verify(&secrets, id, ts, sig, msg.body, now, tolerance);
    if result.is_ok() {
        assert_accepted_rightly(&secrets, id, ts, sig, msg.body, now, tolerance);
    }

    // 2. Sign, then verify, then break one bit at a time.
    let Some(secret) = secrets.first() else {
        return;
    };
    let id = id.map(str::trim).filter(|i| valid_id(i)).unwrap_or("msg_fuzz");
    let ts: i64 = ts
        .and_then(|t| t.trim().parse().ok())
        .filter(|t| *t >= 0)
        .unwrap_or(now.max(0));
    let header = sign(secret, id, ts, msg.body);
    let expected = hmac_sha256(
        secret.expose_bytes(),
        &[id.as_bytes(), b".", ts.to_string().as_bytes(), b".", msg.body],
    );
    assert_eq!(
        header,
        format!("v1,{}", base64_standard(&expected)),
        "sign is HMAC-SHA256 of id.ts.body"
    );
    let ts_str = ts.to_string();
    let check = |id: &str, ts: &str, sig: &str, body: &[u8]| {
        verify(
            std::slice::from_ref(secret),
            Some(id),
            Some(ts),
            Some(sig),
            body,
            ts_now(ts),
            0,
        )
    };
    assert_eq!(
        check(id, &ts_str, &header, msg.body),
        Ok(()),
        "a signed delivery verifies"
    );

    let mismatch = Err(SignatureError::SignatureMismatch);
    for at in [0, msg.body.len() / 2, msg.body.len().saturating_sub(1)] {
        let mut body = msg.body.to_vec();
        flip_bit(&mut body, at, data.len() as u8);
        if body != msg.body {
            assert_eq!(check(id, &ts_str, &header, &body), mismatch, "body bit {at} changed");
        }
    }
    let mut id_bytes = id.as_bytes().to_vec();
    flip_bit(&mut id_bytes, data.len(), 0);
    if let Ok(other) = String::from_utf8(id_bytes) {
        if other != id && valid_id(&other) && other.trim() == other {
            assert_eq!(check(&other, &ts_str, &header, msg.body), mismatch, "id changed");
        }
    }
    if let Some(later) = ts.checked_add(1) {
        assert_eq!(
            check(id, &later.to_string(), &header, msg.body),
            mismatch,
            "timestamp changed"
        );
    }
    let mut key = secret.expose_bytes().to_vec();
    flip_bit(&mut key, data.len(), 3);
    if let Ok(other) = WebhookSecret::from_bytes(&key) {
        let res = verify(
            &[other],
            Some(id),
            Some(&ts_str),
            Some(&header),
            msg.body,
            ts_now(&ts_str),
            0,
        );
        assert_eq!(res, mismatch, "secret changed");
    }
    for at in 0..header.len() {
        let mut bytes = header.clone().into_bytes();
        flip_bit(&mut bytes, at, data.len() as u8 ^ at as u8);
        let Ok(changed) = String::from_utf8(bytes) else {
            continue;
        };
        if check(id, &ts_str, &changed, msg.body).is_ok() {
            assert_accepted_rightly(
                std::slice::from_ref(secret),
                Some(id),
                Some(&ts_str),
                Some(&changed),
                msg.body,
                ts_now(&ts_str),
                0,
            );
        }
    }
});

/// The receiver's clock for a self-signed check: the timestamp itself, so the tolerance is 0.
fn ts_now(ts: &str) -> i64 {
    ts.parse().unwrap_or(0)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control)
}

/// The oracle for an accepted delivery, from the spec rather than from the code under test.
fn assert_accepted_rightly(
    secrets: &[WebhookSecret],
    id: Option<&str>,
    ts: Option<&str>,
    sig: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: u32,
) {
    let id = id.map(str::trim).expect("accepted without a webhook-id");
    assert!(valid_id(id), "accepted a malformed id {id:?}");
    let ts = ts.map(str::trim).expect("accepted without a timestamp");
    assert!(
        !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()),
        "accepted timestamp {ts:?}"
    );
    let ts: i64 = ts.parse().expect("accepted an out-of-range timestamp");
    assert!(
        (i128::from(now) - i128::from(ts)).abs() <= i128::from(tolerance),
        "accepted a stale timestamp"
    );
    let canonical = ts.to_string();
    let expected: Vec<Vec<u8>> = secrets
        .iter()
        .map(|s| {
            hmac_sha256(
                s.expose_bytes(),
                &[id.as_bytes(), b".", canonical.as_bytes(), b".", body],
            )
        })
        .collect();
    let sig = sig.expect("accepted without a signature").trim();
    let presented = sig
        .split(' ')
        .filter_map(|e| e.strip_prefix("v1,"))
        .filter_map(base64_lenient);
    let found = presented.into_iter().any(|tag| expected.contains(&tag));
    assert!(found, "accepted a signature it did not compute: {sig:?}");
}

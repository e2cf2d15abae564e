//! API keys: `cairn_core::api_key::parse`, `Scope::parse_list`, `KeyHasher::verify` and
//! `KeyHashes::accepts`, and `mint` → `parse`.
//!
//! Input: a presented token (any UTF-8), e.g. `ck_live_abcdefghijkl_<43 characters>`; the
//! same text, split at whitespace and commas, is also read as a scope list.
//!
//! Invariants: a token that parses has exactly the documented shape and its parts are
//! where `parse` says; scopes parse to a sorted, de-duplicated, non-empty list that
//! round-trips through `as_str`; a hash verifies only its own token (a one-bit change, or
//! another pepper, does not) and only at the right length; a previous hash is accepted only
//! inside its window; minted keys (and keys built from the input's bytes) parse back to
//! their public id and environment.
#![no_main]

use cairn_core::api_key::{mint, parse, remint, KeyEnv, KeyHasher, KeyHashes, Scope, PUBLIC_ID_LEN};
use cairn_fuzz::{base64url_no_pad, flip_bit};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(parts) = parse(token) {
        let env = parts.env.as_str();
        let head = format!("ck_{env}_{}_", parts.public_id);
        assert!(token.starts_with(&head), "{token:?} parsed as {parts:?}");
        assert_eq!(token.len(), head.len() + 43, "secret length");
        assert_eq!(parts.public_id.len(), PUBLIC_ID_LEN);
        assert!(parts.public_id.bytes().all(|b| BASE32.contains(&b)));
    }

    let items: Vec<&str> = token
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .collect();
    if let Ok(scopes) = Scope::parse_list(&items) {
        assert!(
            !scopes.is_empty() && scopes.windows(2).all(|w| w[0] < w[1]),
            "sorted, unique: {scopes:?}"
        );
        assert!(scopes.iter().all(|s| items.contains(&s.as_str())));
        assert!(
            items.iter().all(|i| scopes.iter().any(|s| s.as_str() == *i)),
            "every item is a scope"
        );
        let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            Scope::parse_list(&names).ok(),
            Some(scopes.clone()),
            "as_str round trip"
        );
    }

    let hasher = KeyHasher::new([7; 32]);
    let stored = hasher.hash(token);
    assert!(hasher.verify(token, &stored));
    assert!(!KeyHasher::new([8; 32]).verify(token, &stored), "another pepper");
    assert!(!hasher.verify(token, &stored[..31]) && !hasher.verify(token, &[stored.as_slice(), &[0]].concat()));
    // The input's first 32 bytes as a stored hash: accepted only if it is the hash.
    if hasher.verify(token, &data[..data.len().min(32)]) {
        assert_eq!(&data[..32], &stored);
    }
    let mut other = data.to_vec();
    flip_bit(&mut other, data.len() / 2, data.len() as u8);
    if let Ok(other) = std::str::from_utf8(&other) {
        if other != token {
            assert!(!hasher.verify(other, &stored), "a changed token verified");
        }
    }
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
    let until = now + chrono::Duration::seconds(60);
    let rotated = KeyHashes {
        current: vec![0; 32],
        previous: Some((stored.to_vec(), until)),
    };
    assert!(
        rotated.accepts(&hasher, token, now),
        "previous secret inside its window"
    );
    assert!(
        !rotated.accepts(&hasher, token, until),
        "previous secret after its window"
    );

    // Keys of the right shape, from the input's bytes and from the minting code.
    let env = if data.len() % 2 == 0 {
        KeyEnv::Live
    } else {
        KeyEnv::Test
    };
    let id: String = (0..PUBLIC_ID_LEN)
        .map(|i| char::from(BASE32[usize::from(data.get(i).copied().unwrap_or(0) & 31)]))
        .collect();
    let secret: Vec<u8> = (0..32)
        .map(|i| data.get(i + PUBLIC_ID_LEN).copied().unwrap_or(0))
        .collect();
    let built = format!("ck_{}_{id}_{}", env.as_str(), base64url_no_pad(&secret));
    let parts = parse(&built).expect("a well-formed key parses");
    assert_eq!((parts.env, parts.public_id), (env, id.as_str()));
    let minted = mint(env);
    let parts = parse(minted.plaintext.expose_secret()).expect("a minted key parses");
    assert_eq!((parts.env, parts.public_id), (env, minted.public_id.as_str()));
    let again = remint(env, &minted.public_id);
    assert_ne!(again.expose_secret(), minted.plaintext.expose_secret());
    assert_eq!(
        parse(again.expose_secret()).map(|p| p.public_id),
        Some(minted.public_id.as_str())
    );
});

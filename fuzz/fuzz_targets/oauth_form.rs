//! The OAuth endpoints' form bodies (`cairn_core::oauth::form`), decoded with
//! serde_urlencoded as axum's `Form` (token, revoke, introspect, login, consent) and
//! `Query` (authorize) extractors do; then the checks the token endpoint runs on them:
//! `Authorization: Basic` client credentials, scope narrowing on refresh, PKCE.
//!
//! Input: a form body, e.g. `grant_type=authorization_code&code=…&code_verifier=…`.
//!
//! Invariants: a decoded field is exactly what `application/x-www-form-urlencoded` decoding
//! of its (single) pair gives; re-encoding the decoded form and decoding it again gives the
//! same form; client credentials survive the Basic encoding of RFC 6749 §2.3.1; a refresh
//! never widens the granted scopes; a PKCE verifier is accepted only against its own S256
//! challenge.
#![no_main]

use std::collections::HashMap;

use cairn_core::api_key::Scope;
use cairn_core::oauth::form::{basic_credentials, narrow_scope, ConsentForm, LoginForm, TokenForm};
use cairn_core::oauth::{valid_challenge, valid_verifier, verify_pkce, DEFAULT_SCOPES, GRANTABLE};
use cairn_fuzz::{base64_standard, base64url_no_pad};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().collect();
    let single = |key: &str| {
        let mut values = pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone());
        let first = values.next();
        assert!(values.next().is_none(), "a duplicated {key} was accepted");
        first
    };

    if let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(data) {
        let fields = token_fields(&form);
        for (key, value) in &fields {
            assert_eq!(value.as_deref(), single(key).as_deref(), "{key}");
        }
        let again = serde_urlencoded::from_str::<TokenForm>(&encode(&fields)).expect("re-encoded form decodes");
        assert!(token_fields(&again) == fields, "token form round trip");
        check_token_form(&form);
    }
    if let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(data) {
        let fields = [
            ("request", &form.request),
            ("csrf_token", &form.csrf_token),
            ("email", &form.email),
            ("password", &form.password),
        ];
        for (key, value) in fields {
            assert_eq!(value, &single(key).unwrap_or_default(), "{key}");
        }
    }
    if let Ok(form) = serde_urlencoded::from_bytes::<ConsentForm>(data) {
        for (key, value) in [
            ("request", &form.request),
            ("csrf_token", &form.csrf_token),
            ("decision", &form.decision),
        ] {
            assert_eq!(value, &single(key).unwrap_or_default(), "{key}");
        }
    }
    // The authorization endpoint reads its query into a map: the last value of a key wins.
    if let Ok(query) = std::str::from_utf8(data) {
        if let Ok(map) = serde_urlencoded::from_str::<HashMap<String, String>>(query) {
            for (k, v) in &map {
                assert_eq!(pairs.iter().rev().find(|(pk, _)| pk == k).map(|(_, pv)| pv), Some(v));
            }
        }
        // Any Authorization header value: Basic or not, never a panic; Basic only when it says so.
        if basic_credentials(query).is_some() {
            assert!(query.starts_with("Basic ") || query.starts_with("basic "));
        }
    }
});

fn token_fields(f: &TokenForm) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("grant_type", f.grant_type.clone()),
        ("code", f.code.clone()),
        ("redirect_uri", f.redirect_uri.clone()),
        ("code_verifier", f.code_verifier.clone()),
        ("refresh_token", f.refresh_token.clone()),
        ("scope", f.scope.clone()),
        ("resource", f.resource.clone()),
        ("client_id", f.client_id.clone()),
        ("client_secret", f.client_secret.clone()),
        ("token", f.token.clone()),
        ("token_type_hint", f.token_type_hint.clone()),
    ]
}

fn encode(fields: &[(&str, Option<String>)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        if let Some(v) = v {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

fn check_token_form(form: &TokenForm) {
    // client_secret_basic: each part form-urlencoded, joined by ':', base64.
    let id = form.client_id.clone().unwrap_or_default();
    let secret = form.client_secret.clone().unwrap_or_default();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let header = format!(
        "Basic {}",
        base64_standard(format!("{}:{}", enc(&id), enc(&secret)).as_bytes())
    );
    assert_eq!(basic_credentials(&header), Some(Ok((id, secret))), "Basic round trip");

    for granted in [&GRANTABLE[..], &DEFAULT_SCOPES[..], &[Scope::McpTools][..], &[][..]] {
        match narrow_scope(granted, form.scope.as_deref()) {
            Ok(scopes) => {
                assert!(
                    scopes.iter().all(|s| granted.contains(s)),
                    "{scopes:?} widens {granted:?}"
                );
                let blank = form.scope.as_deref().is_none_or(|s| s.trim().is_empty());
                assert!(blank || !scopes.is_empty(), "a non-blank scope narrowed to nothing");
            }
            Err(e) => assert!(!e.is_empty()),
        }
    }

    if let Some(verifier) = &form.code_verifier {
        let own = base64url_no_pad(&Sha256::digest(verifier.as_bytes()));
        assert!(valid_challenge(&own));
        assert_eq!(verify_pkce(verifier, &own), valid_verifier(verifier), "own challenge");
        // The code (any text) as a challenge: accepted only if it is the verifier's own.
        if let Some(challenge) = &form.code {
            if verify_pkce(verifier, challenge) {
                assert_eq!(challenge, &own, "PKCE accepted another challenge");
            }
        }
        if valid_verifier(verifier) {
            assert!(verifier.len() >= 43 && verifier.len() <= 128);
        }
    }
}

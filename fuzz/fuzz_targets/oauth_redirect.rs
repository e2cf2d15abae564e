//! Redirect URIs and client metadata: `cairn_core::oauth::redirect_matches` and
//! `ClientMetadata` → `validate`, exactly as the server runs them on a dynamic registration
//! body (`Source::Registration`) and on a fetched Client ID Metadata Document
//! (`serde_json::from_slice::<ClientMetadata>` then `validate(Source::Document, Some(url))`).
//!
//! Input: a JSON document (RFC 7591 metadata or a CIMD). Unknown members are ignored by
//! `ClientMetadata`, so seeds may add `"x_presented": [...]`: redirect URIs a client might
//! present at the authorization endpoint, matched against the registered ones. Input that is
//! not JSON is read as `registered\npresented` and only matched.
//!
//! Invariants: a URI matches itself; a match between different strings is only a loopback
//! `http` redirect on another port, with the registered host, path and query, and the
//! Location the server builds from it still points at that host; accepted metadata only has
//! 1–10 redirect URIs that are https, loopback http or (native) reverse-domain schemes,
//! without fragment or credentials; documents are public clients named by their URL; no
//! public client gets client_credentials; no scope beyond the grantable ones.
#![no_main]

use cairn_core::oauth::{redirect_matches, ApplicationType, ClientMetadata, Source, ValidClient, GRANTABLE};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use url::Url;

const LOOPBACK: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];
const OTHER_URL: &str = "https://other.example/client.json";

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = serde_json::from_slice::<ClientMetadata>(data) else {
        let text = String::from_utf8_lossy(data);
        let (registered, presented) = text.split_once('\n').unwrap_or((&text, ""));
        check_match(registered, presented);
        check_match(presented, registered);
        return;
    };
    let presented: Vec<String> = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.get("x_presented").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();

    // A CIMD names itself: the URL it was fetched from must equal its client_id.
    let url = meta
        .client_id
        .clone()
        .unwrap_or_else(|| "https://client.example/meta.json".to_owned());
    if let Ok(client) = meta.validate(Source::Document, Some(&url)) {
        assert_eq!(meta.client_id.as_deref(), Some(url.as_str()));
        assert!(client.is_public(), "a metadata document made a confidential client");
        check_client(&client, &presented);
    }
    if url != OTHER_URL {
        assert!(
            meta.validate(Source::Document, Some(OTHER_URL)).is_err(),
            "a document for another URL"
        );
    }
    match meta.validate(Source::Registration, None) {
        Ok(client) => {
            assert!(meta.application_type.is_some(), "registration without application_type");
            check_client(&client, &presented);
        }
        Err(e) => assert!(matches!(e.code(), "invalid_redirect_uri" | "invalid_client_metadata")),
    }
    if let Ok(client) = meta.validate(Source::Admin, None) {
        check_client(&client, &presented);
    }
    for r in meta.redirect_uris.iter().flatten() {
        for p in &presented {
            check_match(r, p);
        }
    }
});

fn check_client(client: &ValidClient, presented: &[String]) {
    assert!((1..=10).contains(&client.redirect_uris.len()));
    for r in &client.redirect_uris {
        assert!(r.len() <= 2000);
        let u = Url::parse(r).expect("accepted a redirect URI that does not parse");
        assert!(
            u.fragment().is_none() && u.username().is_empty() && u.password().is_none(),
            "{r}"
        );
        let ok = match u.scheme() {
            "https" => u.host().is_some(),
            "http" => u.host_str().is_some_and(|h| LOOPBACK.contains(&h)),
            s => s.contains('.') && client.application_type == ApplicationType::Native,
        };
        assert!(
            ok,
            "accepted redirect URI {r:?} for a {:?} client",
            client.application_type
        );
        // The first registered URI that matches: with any-port loopback matching, maybe another.
        let first = client.redirect_uri(r).expect("a registered URI matches itself");
        assert!(redirect_matches(first, r));
    }
    assert!(!client.grant_types.is_empty());
    assert!(
        !(client.is_public() && client.allows_grant("client_credentials")),
        "a public client with client_credentials"
    );
    assert!(
        client.scopes.iter().all(|s| GRANTABLE.contains(s)),
        "{:?}",
        client.scopes
    );
    if let Some(name) = &client.client_name {
        assert!(!name.is_empty() && name.chars().count() <= 200 && !name.chars().any(char::is_control));
    }
    for p in presented {
        if let Some(r) = client.redirect_uri(p) {
            assert!(client.redirect_uris.iter().any(|x| x == r));
            check_match(r, p);
        }
    }
}

fn check_match(registered: &str, presented: &str) {
    assert!(
        redirect_matches(registered, registered),
        "{registered:?} does not match itself"
    );
    if !redirect_matches(registered, presented) || registered == presented {
        return;
    }
    let r = Url::parse(registered).expect("matched an unparseable registered URI");
    let p = Url::parse(presented).expect("matched an unparseable presented URI");
    assert_eq!(
        (r.scheme(), p.scheme()),
        ("http", "http"),
        "{registered:?} ~ {presented:?}"
    );
    let host = r.host_str().expect("loopback host");
    assert!(LOOPBACK.contains(&host), "matched a non-loopback host {host:?}");
    assert_eq!(p.host_str(), Some(host));
    assert_eq!((r.path(), r.query()), (p.path(), p.query()));
    assert!(p.fragment().is_none() && p.username().is_empty() && p.password().is_none());
    // What the authorization endpoint does with a presented URI: append the answer to its
    // query and send it as Location. A browser re-parses it; it must land on the same host.
    let mut location = p.clone();
    location
        .query_pairs_mut()
        .append_pair("code", "cac_x")
        .append_pair("state", "s&t=1#x");
    let reparsed = Url::parse(location.as_str()).expect("the Location does not parse");
    assert_eq!(
        reparsed.host_str(),
        Some(host),
        "Location {location} left the loopback host"
    );
    assert_eq!(reparsed, location, "the Location is not stable under re-parsing");
}

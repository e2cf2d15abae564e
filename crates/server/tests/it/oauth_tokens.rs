//! Access tokens at the MCP endpoint: forged, foreign, expired and under-scoped ones are
//! refused; client credentials, introspection and revocation; signing-key rotation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cairn_core::ids::TenantId;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::mcp_client::{call_tool, open_session, post};
use crate::oauth::*;
use crate::oauth_refusals::refused;

/// Part `i` (0 header, 1 claims) of a JWT, decoded.
fn part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The tenant's active signing key, read from the store: (kid, private key).
async fn real_key(app: &TestApp, slug: &str) -> (String, EncodingKey) {
    let (_, tenant) = app.get(&format!("/api/v1/tenants/{slug}")).await;
    let id = TenantId::parse("id", s(&tenant["id"])).unwrap();
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    let keys = app.state.store.signing_keys(id, since).await.unwrap();
    let key = keys.iter().find(|k| k.active).unwrap();
    // Stored encrypted: open it the way the server does.
    let slot = cairn_server::crypto::Slot {
        table: "oauth_signing_keys",
        column: "private_key",
        row: &key.kid,
    };
    let der = app
        .state
        .keyring
        .decrypt(&app.state.store, id, slot, key.private_key.expose_secret())
        .await
        .unwrap();
    (key.kid.clone(), EncodingKey::from_ec_der(&der))
}

/// Asserts the MCP endpoint of `slug` refuses `token` with the RFC 6750 / 9728 challenge.
async fn assert_refused(app: &TestApp, slug: &str, token: &str, case: &str) {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = post(app, slug, Some(token), None, &init).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {}", reply.text);
    let challenge = reply.headers[WWW_AUTHENTICATE].to_str().unwrap();
    let metadata = app.url(&format!("/.well-known/oauth-protected-resource/t/{slug}/mcp"));
    assert!(challenge.starts_with("Bearer "), "{case}: {challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata}\"")),
        "{case}: {challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{case}: {challenge}");
    assert!(reply.headers.get("mcp-session-id").is_none(), "{case}");
}

/// A form post to an OAuth endpoint of acme, with optional HTTP Basic client credentials.
async fn oauth_post(
    app: &TestApp,
    endpoint: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/t/acme/oauth/{endpoint}")))
        .form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    assert_eq!(resp.headers()["cache-control"], "no-store", "{endpoint}");
    (status, resp.json().await.unwrap())
}

async fn setup() -> (TestApp, String, Value) {
    let app = TestApp::start().await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    app.tenant("globex").await;
    let (client_id, body) = full_flow(&app, "acme", "alice@example.com").await;
    (app, client_id, body)
}

#[tokio::test]
async fn foreign_forged_and_expired_access_tokens_are_refused() {
    let (app, _, body) = setup().await;
    let access = s(&body["access_token"]).to_owned();
    let (kid, key) = real_key(&app, "acme").await;
    assert_eq!(part(&access, 0)["kid"], kid.as_str());
    let now = chrono::Utc::now().timestamp();
    let claims = |patch: Value| {
        let mut c = part(&access, 1);
        c["jti"] = json!(uuid::Uuid::new_v4().simple().to_string());
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // Control: the real key with the real claims is accepted, so every refusal below is
    // down to the one thing each case changes.
    let control = sign(Algorithm::ES256, &kid, &key, &claims(json!({})));
    assert_eq!(mcp_status(&app, "acme", &control).await, StatusCode::OK);

    // Valid for acme, and only for acme.
    assert_refused(&app, "globex", &access, "acme token on globex").await;

    let jwks: Value = app
        .client
        .get(app.url("/t/acme/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"][0].clone();
    assert_eq!(jwk["kid"], kid.as_str());
    let mut xy = URL_SAFE_NO_PAD.decode(s(&jwk["x"])).unwrap();
    xy.extend(URL_SAFE_NO_PAD.decode(s(&jwk["y"])).unwrap());
    let stranger = SigningKey::random(&mut rand_core::OsRng);
    let stranger = EncodingKey::from_ec_der(stranger.to_pkcs8_der().unwrap().as_bytes());
    let payload = access.split('.').nth(1).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!(
                "{}.{payload}.",
                b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid}))
            ),
            "malformed",
        ),
        (
            "HS256 keyed with the JWK JSON",
            sign(
                Algorithm::HS256,
                &kid,
                &EncodingKey::from_secret(jwk.to_string().as_bytes()),
                &claims(json!({})),
            ),
            "algorithm_not_allowed:HS256",
        ),
        (
            "HS256 keyed with x||y",
            sign(
                Algorithm::HS256,
                &kid,
                &EncodingKey::from_secret(&xy),
                &claims(json!({})),
            ),
            "algorithm_not_allowed:HS256",
        ),
        (
            "wrong aud",
            sign(
                Algorithm::ES256,
                &kid,
                &key,
                &claims(json!({"aud": app.url("/t/globex/mcp")})),
            ),
            "invalid:InvalidAudience",
        ),
        (
            "wrong iss",
            sign(
                Algorithm::ES256,
                &kid,
                &key,
                &claims(json!({"iss": app.url("/t/globex")})),
            ),
            "invalid:InvalidIssuer",
        ),
        (
            "expired beyond the leeway",
            sign(
                Algorithm::ES256,
                &kid,
                &key,
                &claims(json!({"exp": now - 120, "iat": now - 720, "nbf": now - 720})),
            ),
            "invalid:ExpiredSignature",
        ),
        (
            "unknown kid",
            sign(Algorithm::ES256, "k-unknown", &stranger, &claims(json!({}))),
            "unknown_kid",
        ),
        (
            "real kid, another key",
            sign(Algorithm::ES256, &kid, &stranger, &claims(json!({}))),
            "invalid:InvalidSignature",
        ),
    ];
    for (case, token, _) in &cases {
        assert_refused(&app, "acme", token, case).await;
    }
    // Each refusal happened in the access-token verifier, for the expected reason.
    let events = app.tenant_events("acme").await;
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "auth.failed" && e.details["credential"] == "oauth_access_token")
        .map(|e| e.details["reason"].as_str().unwrap_or_default())
        .collect();
    for (case, _, reason) in &cases {
        assert!(reasons.contains(reason), "{case}: {reason} not in {reasons:?}");
    }
    assert_eq!(reasons.len(), cases.len(), "{reasons:?}");
    // The genuine token still works: none of the above disturbed it.
    assert_eq!(mcp_status(&app, "acme", &access).await, StatusCode::OK);
}

#[tokio::test]
async fn a_token_without_mcp_tools_may_not_call_tools() {
    let (app, client_id, body) = setup().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", s(&body["refresh_token"])),
        ("client_id", client_id.as_str()),
        ("scope", "mcp:resources"),
    ];
    let (status, narrowed) = token(&app, "acme", &form).await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert_eq!(narrowed["scope"], "mcp:resources");
    let access = s(&narrowed["access_token"]);
    assert_eq!(part(access, 1)["scope"], "mcp:resources");
    let session = open_session(&app, "acme", Some(access)).await;
    for (id, msg) in [
        (1, call_tool(1, "whoami")),
        (2, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})),
    ] {
        let reply = post(&app, "acme", Some(access), Some(&session), &msg).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{id}: {}", reply.text);
        let challenge = reply.headers[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
        assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
        assert!(challenge.contains("resource_metadata="), "{challenge}");
        assert!(reply.response(id).is_none_or(|r| r.get("result").is_none()));
    }
    // What the token does carry still works.
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"});
    let reply = post(&app, "acme", Some(access), Some(&session), &list).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

async fn confidential_client(app: &TestApp, name: &str) -> (String, String) {
    let body = json!({"client_name": name, "redirect_uris": [REDIRECT], "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic"});
    let (status, created) = app.post("/api/v1/tenants/acme/oauth/apps", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        s(&created["client_id"]).to_owned(),
        s(&created["client_secret"]).to_owned(),
    )
}

#[tokio::test]
async fn client_credentials_introspection_and_revocation() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let (id, secret) = confidential_client(&app, "Backend").await;
    let cc = [("grant_type", "client_credentials")];
    let (status, issued) = oauth_post(&app, "token", Some((&id, &secret)), &cc).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert!(issued.get("refresh_token").is_none());
    let access = s(&issued["access_token"]).to_owned();
    assert_eq!(mcp_status(&app, "acme", &access).await, StatusCode::OK);

    let wrong = oauth_post(&app, "token", Some((&id, "ccs_wrong")), &cc).await;
    refused(&wrong, StatusCode::UNAUTHORIZED, "invalid_client");

    let ask = [("token", access.as_str())];
    let (status, info) = oauth_post(&app, "introspect", Some((&id, &secret)), &ask).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["active"], true);
    assert_eq!(info["scope"], "mcp:tools mcp:resources mcp:prompts");
    assert_eq!(info["client_id"], id.as_str());

    // Introspection is for confidential clients only.
    let public = register(&app, "acme").await;
    let answer = oauth_post(&app, "introspect", None, &[("token", &access), ("client_id", &public)]).await;
    refused(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(answer.1.get("active").is_none());

    // Another client cannot revoke this client's token (answered 200 all the same).
    let (other, other_secret) = confidential_client(&app, "Other").await;
    let (status, _) = oauth_post(&app, "revoke", Some((&other, &other_secret)), &ask).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mcp_status(&app, "acme", &access).await, StatusCode::OK);

    let (status, body) = oauth_post(&app, "revoke", Some((&id, &secret)), &ask).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, info) = oauth_post(&app, "introspect", Some((&id, &secret)), &ask).await;
    assert_eq!(info, json!({"active": false}));
    assert_refused(&app, "acme", &access, "revoked").await;

    for unknown in ["crt_unknown", "not-a-token-at-all"] {
        let (status, _) = oauth_post(&app, "revoke", Some((&id, &secret)), &[("token", unknown)]).await;
        assert_eq!(status, StatusCode::OK, "{unknown}");
    }
    let events = app.tenant_events("acme").await;
    assert_eq!(events.iter().filter(|e| e.action == "oauth.token_revoked").count(), 1);
}

#[tokio::test]
async fn old_tokens_outlive_a_signing_key_rotation() {
    let (app, client_id, body) = setup().await;
    let access = s(&body["access_token"]).to_owned();
    let old_kid = s(&part(&access, 0)["kid"]).to_owned();
    let (status, rotated) = app
        .post("/api/v1/tenants/acme/oauth/signing-keys/rotate", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_kid = s(&rotated["kid"]).to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(mcp_status(&app, "acme", &access).await, StatusCode::OK);

    let jwks: Value = app
        .client
        .get(app.url("/t/acme/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| s(&k["kid"])).collect();
    kids.sort_unstable();
    let mut expected = vec![old_kid.as_str(), new_kid.as_str()];
    expected.sort_unstable();
    assert_eq!(kids, expected);

    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", s(&body["refresh_token"])),
        ("client_id", client_id.as_str()),
    ];
    let (status, fresh) = token(&app, "acme", &form).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let fresh = s(&fresh["access_token"]);
    assert_eq!(part(fresh, 0)["kid"], new_kid.as_str());
    assert_eq!(mcp_status(&app, "acme", fresh).await, StatusCode::OK);
}

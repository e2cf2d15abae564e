//! JWTs of a tenant's external identity provider, verified against a JWKS served on
//! loopback, with real ES256 keys.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::routing::get;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::mcp_client::{call_tool, open_session, post};

pub(crate) const ISSUER: &str = "https://idp.example.test";
pub(crate) const AUDIENCE: &str = "cairn-acme";

pub(crate) struct Idp {
    pub(crate) url: String,
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<AtomicUsize>,
}

pub(crate) struct Key {
    kid: String,
    signing: SigningKey,
}

impl Key {
    pub(crate) fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            signing: SigningKey::random(&mut rand_core::OsRng),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.signing.verifying_key().to_encoded_point(false);
        json!({ "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()) })
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        let der = self.signing.to_pkcs8_der().unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(der.as_bytes())).unwrap()
    }
}

pub(crate) async fn serve_jwks(keys: &[&Key]) -> Idp {
    let jwks = Arc::new(RwLock::new(
        json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (j, f) = (jwks.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        get(move || {
            let (j, f) = (j.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(j.read().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Idp {
        url: format!("http://{addr}/jwks.json"),
        jwks,
        fetches,
    }
}

pub(crate) fn claims(email: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "user_123", "email": email, "iat": now, "exp": now + 600 })
}

async fn setup() -> (TestApp, Idp, Key) {
    let app = TestApp::start_with(|c| c.idp_allow_http_loopback = true).await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    let ada = app.user("ada@example.com").await;
    app.post(
        "/api/v1/tenants/acme/members",
        json!({"user_id": s(&ada["id"]), "role": "member"}),
    )
    .await;
    app.user("eve@example.com").await;
    let key = Key::new("k1");
    let idp = serve_jwks(&[&key]).await;
    let body = json!({"issuer": ISSUER, "jwks_url": idp.url, "audience": AUDIENCE, "algorithms": ["ES256"]});
    let (status, configured) = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/tenants/acme/identity-provider",
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{configured}");
    (app, idp, key)
}

async fn status_of(app: &TestApp, slug: &str, token: &str) -> StatusCode {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    post(app, slug, Some(token), None, &init).await.status
}

#[tokio::test]
async fn a_member_signs_in_with_the_tenant_idp() {
    let (app, _idp, key) = setup().await;
    let token = key.sign(&claims("Ada@Example.com"));
    let session = open_session(&app, "acme", Some(&token)).await;
    let reply = post(&app, "acme", Some(&token), Some(&session), &call_tool(1, "whoami")).await;
    let info: Value = serde_json::from_str(s(&reply.result(1)["content"][0]["text"])).unwrap();
    assert!(s(&info["user"]).starts_with("usr_"));
    assert!(info["key"].is_null());
    assert_eq!(
        info["scopes"],
        json!(["mcp:tools", "mcp:resources", "mcp:prompts"]),
        "a member's scopes"
    );
    // Not on another tenant, which trusts no provider.
    assert_eq!(status_of(&app, "globex", &token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let (app, _idp, key) = setup().await;
    let now = chrono::Utc::now().timestamp();
    let mut cases: Vec<(&str, String)> = Vec::new();
    let with = |patch: Value| {
        let mut c = claims("ada@example.com");
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    cases.push(("wrong aud", key.sign(&with(json!({"aud": "someone-else"})))));
    cases.push(("wrong iss", key.sign(&with(json!({"iss": "https://evil.test"})))));
    cases.push(("expired", key.sign(&with(json!({"exp": now - 3600})))));
    cases.push(("not yet valid", key.sign(&with(json!({"nbf": now + 3600})))));
    cases.push(("unverified email", key.sign(&with(json!({"email_verified": false})))));
    cases.push(("not a member", key.sign(&claims("eve@example.com"))));
    cases.push(("unknown user", key.sign(&claims("nobody@example.com"))));
    cases.push(("unknown kid", Key::new("k-unknown").sign(&claims("ada@example.com"))));
    // Same kid, another key: the signature does not verify.
    cases.push(("forged signature", Key::new("k1").sign(&claims("ada@example.com"))));
    // alg none.
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "k1"})),
            b64(&claims("ada@example.com"))
        ),
    ));
    // HS256 with the public key as the HMAC secret.
    let public = key.signing.verifying_key().to_encoded_point(false);
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let hs_token = jsonwebtoken::encode(
        &hs,
        &claims("ada@example.com"),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    cases.push(("HS256 with the public key", hs_token));
    for (name, token) in &cases {
        assert_eq!(status_of(&app, "acme", token).await, StatusCode::UNAUTHORIZED, "{name}");
    }
    let events = app.tenant_events("acme").await;
    let reasons: Vec<String> = events
        .iter()
        .filter(|e| e.action == "auth.failed" && e.details["credential"] == "idp_jwt")
        .map(|e| e.details["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reasons.len(), cases.len(), "{reasons:?}");
    for expected in [
        "unknown_kid",
        "not_a_member",
        "no_user_claim",
        "algorithm_not_allowed:HS256",
        "malformed",
    ] {
        assert!(reasons.iter().any(|r| r == expected), "missing {expected}: {reasons:?}");
    }
    assert!(reasons.iter().any(|r| r.starts_with("invalid:")), "{reasons:?}");
}

#[tokio::test]
async fn key_rollover_refetches_once() {
    let (app, idp, key) = setup().await;
    assert_eq!(
        status_of(&app, "acme", &key.sign(&claims("ada@example.com"))).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    // The provider publishes a new key; a token signed with it triggers one refetch.
    let next = Key::new("k2");
    idp.jwks.write().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(next.jwk());
    assert_eq!(
        status_of(&app, "acme", &next.sign(&claims("ada@example.com"))).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Unknown kids right after do not make Cairn hammer the provider.
    for i in 0..5 {
        let stranger = Key::new(&format!("bogus-{i}"));
        assert_eq!(
            status_of(&app, "acme", &stranger.sign(&claims("ada@example.com"))).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn provider_configuration_is_validated() {
    let (app, idp, _) = setup().await;
    for (body, field) in [
        (
            json!({"issuer": ISSUER, "jwks_url": idp.url, "audience": AUDIENCE, "algorithms": ["HS256"]}),
            "algorithms",
        ),
        (
            json!({"issuer": ISSUER, "jwks_url": "ftp://example.test/jwks", "audience": AUDIENCE}),
            "jwks_url",
        ),
        (
            json!({"issuer": ISSUER, "jwks_url": "http://example.test/jwks", "audience": AUDIENCE}),
            "jwks_url",
        ),
        (
            json!({"issuer": "", "jwks_url": idp.url, "audience": AUDIENCE}),
            "issuer",
        ),
    ] {
        let (status, err) = app
            .call(
                reqwest::Method::PUT,
                "/api/v1/tenants/acme/identity-provider",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["error"]["field"], field);
    }
    let (status, shown) = app.get("/api/v1/tenants/acme/identity-provider").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["algorithms"], json!(["ES256"]), "refused updates changed nothing");
    let (status, _) = app
        .call(reqwest::Method::DELETE, "/api/v1/tenants/acme/identity-provider", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/tenants/acme/identity-provider").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Identity-provider tokens on the REST API: a tenant admin manages the tenant's OAuth
/// clients and keys; a plain member may not; the token means nothing on another tenant.
#[tokio::test]
async fn tenant_admins_use_the_rest_api_with_their_idp_token() {
    let (app, _idp, key) = setup().await;
    let boss = app.user("boss@example.com").await;
    app.post(
        "/api/v1/tenants/acme/members",
        json!({"user_id": s(&boss["id"]), "role": "admin"}),
    )
    .await;
    let as_user = |email: &str, method: reqwest::Method, path: &str, body: Option<Value>| {
        let token = key.sign(&claims(email));
        let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let app_body = json!({"client_name": "Boss's tool", "redirect_uris": ["https://tool.example/cb"]});
    let (status, created) = as_user(
        "boss@example.com",
        reqwest::Method::POST,
        "/api/v1/tenants/acme/oauth/apps",
        Some(app_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(s(&created["client_secret"]).starts_with("ccs_"));
    let (status, keys) = as_user(
        "boss@example.com",
        reqwest::Method::GET,
        "/api/v1/tenants/acme/keys",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{keys}");

    let (status, _) = as_user(
        "ada@example.com",
        reqwest::Method::POST,
        "/api/v1/tenants/acme/oauth/apps",
        Some(app_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members are not admins");
    let (status, _) = as_user(
        "boss@example.com",
        reqwest::Method::POST,
        "/api/v1/tenants/globex/oauth/apps",
        Some(app_body),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another tenant");
    let (status, _) = as_user("boss@example.com", reqwest::Method::GET, "/api/v1/tenants", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "platform routes stay operator-only");

    let events = app.tenant_events("acme").await;
    let registered = events.iter().find(|e| e.action == "oauth.client_registered").unwrap();
    assert_eq!(registered.actor_id.as_deref(), Some(s(&boss["id"])));
}

//! The tenant's OAuth 2.1 authorization server driven like a client would: discovery,
//! registration, the login and consent forms, PKCE, tokens, then the MCP endpoint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{s, TestApp};
use crate::mcp_client::{call_tool, open_session, post};

pub const PASSWORD: &str = "correct horse battery";
pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";

/// A client that does not follow redirects (the test reads them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Tenant `slug` with member `email` (password [`PASSWORD`]).
pub async fn tenant_with_member(app: &TestApp, slug: &str, email: &str, role: &str) -> String {
    app.tenant(slug).await;
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"email": email, "display_name": "Alice", "password": PASSWORD}),
        )
        .await;
    let user_id = if status == StatusCode::CREATED {
        s(&user["id"]).to_owned()
    } else {
        let (_, list) = app.get("/api/v1/users?limit=200").await;
        let found = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap();
        s(&found["id"]).to_owned()
    };
    let (status, body) = app
        .post(
            &format!("/api/v1/tenants/{slug}/members"),
            json!({"user_id": user_id, "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    user_id
}

/// Registers a public native client through RFC 7591.
pub async fn register(app: &TestApp, slug: &str) -> String {
    let resp = app
        .client
        .post(app.url(&format!("/t/{slug}/oauth/register")))
        .json(
            &json!({"client_name": "Test Client", "redirect_uris": [REDIRECT], "application_type": "native",
            "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("client_secret").is_none(), "public clients get no secret");
    s(&body["client_id"]).to_owned()
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b
}

/// The query of a standard authorization request for `client_id`.
pub fn auth_params(app: &TestApp, slug: &str, client_id: &str, challenge: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", "xyz-state"),
        ("scope", "mcp:tools mcp:resources mcp:prompts"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("resource".to_owned(), app.url(&format!("/t/{slug}/mcp")))])
    .collect()
}

pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&quot;", "\"").replace("&amp;", "&")
}

fn cookies(resp: &reqwest::Response, jar: &mut Vec<String>) {
    for c in resp.headers().get_all(SET_COOKIE) {
        let pair = c.to_str().unwrap().split(';').next().unwrap().to_owned();
        let name = pair.split('=').next().unwrap().to_owned();
        jar.retain(|p| !p.starts_with(&format!("{name}=")));
        jar.push(pair);
    }
}

/// Runs the browser part: authorize → login → consent (allow). Returns the redirect.
pub async fn consent(app: &TestApp, slug: &str, params: &[(String, String)], email: &str) -> url::Url {
    let b = browser();
    let mut jar = Vec::new();
    let page = b
        .get(app.url(&format!("/t/{slug}/oauth/authorize")))
        .query(params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    cookies(&page, &mut jar);
    let html = page.text().await.unwrap();
    let form = [
        ("request", hidden(&html, "request")),
        ("csrf_token", hidden(&html, "csrf_token")),
        ("email", email.to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let resp = b
        .post(app.url(&format!("/t/{slug}/oauth/login")))
        .header("cookie", jar.join("; "))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    cookies(&resp, &mut jar);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Allow access"), "{html}");
    let form = [
        ("request", hidden(&html, "request")),
        ("csrf_token", hidden(&html, "csrf_token")),
        ("decision", "allow".to_owned()),
    ];
    let resp = b
        .post(app.url(&format!("/t/{slug}/oauth/consent")))
        .header("cookie", jar.join("; "))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    url::Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap()
}

pub fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

pub async fn token(app: &TestApp, slug: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(&format!("/t/{slug}/oauth/token")))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.unwrap())
}

/// The whole flow for a fresh public client: returns (client_id, token response).
pub async fn full_flow(app: &TestApp, slug: &str, email: &str) -> (String, Value) {
    let client_id = register(app, slug).await;
    let p = pkce();
    let back = consent(app, slug, &auth_params(app, slug, &client_id, &p.challenge), email).await;
    let code = query(&back, "code").unwrap();
    let resource = app.url(&format!("/t/{slug}/mcp"));
    let (status, body) = token(
        app,
        slug,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
            ("client_id", &client_id),
            ("resource", &resource),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (client_id, body)
}

pub async fn mcp_status(app: &TestApp, slug: &str, token: &str) -> StatusCode {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    post(app, slug, Some(token), None, &init).await.status
}

#[tokio::test]
async fn discovery_documents_carry_every_required_field() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let base = app.url("");
    let unauth = app
        .client
        .post(app.url("/t/acme/mcp"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    let challenge = unauth.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    let prm_url = format!("{base}/.well-known/oauth-protected-resource/t/acme/mcp");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{prm_url}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"mcp:tools mcp:resources mcp:prompts\""),
        "{challenge}"
    );

    let prm: Value = app.client.get(&prm_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(prm["resource"], format!("{base}/t/acme/mcp"));
    assert_eq!(prm["authorization_servers"], json!([format!("{base}/t/acme")]));
    assert!(prm["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("mcp:tools")));
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));

    let issuer = format!("{base}/t/acme");
    for path in [
        "/.well-known/oauth-authorization-server/t/acme",
        "/.well-known/openid-configuration/t/acme",
        "/t/acme/.well-known/openid-configuration",
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let m: Value = resp.json().await.unwrap();
        // RFC 8414 §2 required members, plus what the MCP authorization spec relies on.
        assert_eq!(m["issuer"], issuer.as_str());
        for (k, suffix) in [
            ("authorization_endpoint", "/oauth/authorize"),
            ("token_endpoint", "/oauth/token"),
            ("registration_endpoint", "/oauth/register"),
            ("revocation_endpoint", "/oauth/revoke"),
            ("introspection_endpoint", "/oauth/introspect"),
            ("jwks_uri", "/jwks.json"),
        ] {
            assert_eq!(m[k], format!("{issuer}{suffix}"), "{k}");
        }
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["client_id_metadata_document_supported"], true);
        let grants = m["grant_types_supported"].as_array().unwrap();
        assert!(grants.contains(&json!("authorization_code")) && grants.contains(&json!("refresh_token")));
        assert!(!m["scopes_supported"].as_array().unwrap().contains(&json!("admin")));
    }
    // Browser-based clients may discover, register and fetch tokens from any origin …
    let origin = "https://inspector.example";
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/t/acme/oauth/register"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let meta = app.client.get(&prm_url).header("origin", origin).send().await.unwrap();
    assert_eq!(meta.headers().get_all("access-control-allow-origin").iter().count(), 1);
    // … but the cookie-carrying pages are same-origin only.
    let page = app
        .client
        .get(app.url("/t/acme/oauth/authorize"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("access-control-allow-origin").is_none());

    let unknown = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server/t/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_member_authorizes_a_registered_client_which_then_calls_a_tool() {
    let app = TestApp::start().await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let (client_id, body) = full_flow(&app, "acme", "alice@example.com").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "mcp:tools mcp:resources mcp:prompts");
    let access = s(&body["access_token"]).to_owned();

    // The token is an ES256 JWT bound to this tenant's MCP resource.
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let jwks: Value = app
        .client
        .get(app.url("/t/acme/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], app.url("/t/acme/mcp"));
    assert_eq!(claims["iss"], app.url("/t/acme"));
    assert_eq!(claims["client_id"], client_id.as_str());

    let session = open_session(&app, "acme", Some(&access)).await;
    let reply = post(&app, "acme", Some(&access), Some(&session), &call_tool(1, "whoami")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.contains("acme"), "{}", reply.text);

    let events = app.tenant_events("acme").await;
    for action in [
        "oauth.client_registered",
        "oauth.login",
        "oauth.consent",
        "oauth.token_issued",
    ] {
        assert!(events.iter().any(|e| e.action == action), "missing {action}");
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replayed_one_revokes_the_grant() {
    let app = TestApp::start().await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let (client_id, first) = full_flow(&app, "acme", "alice@example.com").await;
    let r1 = s(&first["refresh_token"]).to_owned();
    let form = |r: &str| {
        vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), r.to_owned()),
            ("client_id".to_owned(), client_id.clone()),
        ]
    };
    let send = |f: Vec<(String, String)>| {
        let app = &app;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            token(app, "acme", &f).await
        }
    };
    let (status, second) = send(form(&r1)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let r2 = s(&second["refresh_token"]).to_owned();
    assert_ne!(r1, r2);
    let access2 = s(&second["access_token"]).to_owned();
    assert_eq!(mcp_status(&app, "acme", &access2).await, StatusCode::OK);

    // r1 again: reuse. The whole family dies: r2 and the access tokens too.
    let (status, body) = send(form(&r1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = send(form(&r2)).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    assert_eq!(mcp_status(&app, "acme", &access2).await, StatusCode::UNAUTHORIZED);
    let events = app.tenant_events("acme").await;
    assert!(events.iter().any(|e| e.action == "oauth.refresh_reuse_detected"));
}

#[tokio::test]
async fn a_refused_refresh_leaves_the_token_unspent() {
    let app = TestApp::start().await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let (client_id, first) = full_flow(&app, "acme", "alice@example.com").await;
    let r1 = s(&first["refresh_token"]).to_owned();
    let globex = app.url("/t/globex/mcp");
    for (extra, error) in [
        (("scope", "kb:write"), "invalid_scope"),
        (("resource", globex.as_str()), "invalid_target"),
    ] {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", &client_id),
            extra,
        ];
        let (status, body) = token(&app, "acme", &form).await;
        assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, error));
    }
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", r1.as_str()),
        ("client_id", &client_id),
    ];
    let (status, body) = token(&app, "acme", &form).await;
    assert_eq!(status, StatusCode::OK, "the refused attempts did not spend it: {body}");
}

#[tokio::test]
async fn the_registered_scope_bounds_what_a_client_gets() {
    let app = TestApp::start().await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let (status, created) = app
        .post(
            "/api/v1/tenants/acme/oauth/apps",
            json!({"client_name": "Reader", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                "scope": "mcp:resources"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let client_id = s(&created["client_id"]).to_owned();
    let p = pkce();
    let mut params = auth_params(&app, "acme", &client_id, &p.challenge);
    params.retain(|(k, _)| k != "scope");
    params.push(("scope".into(), "mcp:tools".into()));
    let resp = browser()
        .get(app.url("/t/acme/oauth/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let back = url::Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_scope"));

    // Asking for more than registered is trimmed to what is registered.
    let back = consent(
        &app,
        "acme",
        &auth_params(&app, "acme", &client_id, &p.challenge),
        "alice@example.com",
    )
    .await;
    let code = query(&back, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &p.verifier),
        ("client_id", &client_id),
    ];
    let (status, body) = token(&app, "acme", &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:resources");
}

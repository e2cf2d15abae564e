//! The tenant's authorization server refusing what it must: bad authorization requests,
//! bad logins and forged forms, bad code exchanges, bad registrations and bad client
//! metadata documents. Each refusal is checked to issue nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{s, TestApp};
use crate::oauth::*;

/// The authorize endpoint's answer to `params` (redirects are not followed).
pub async fn authorize(app: &TestApp, slug: &str, params: &[(String, String)]) -> reqwest::Response {
    browser()
        .get(app.url(&format!("/t/{slug}/oauth/authorize")))
        .query(params)
        .send()
        .await
        .unwrap()
}

/// `params` with `key` replaced by `value`, or removed if `value` is `None`.
pub fn with(params: &[(String, String)], key: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<_> = params.iter().filter(|(k, _)| k != key).cloned().collect();
    if let Some(v) = value {
        out.push((key.to_owned(), v.to_owned()));
    }
    out
}

/// Checks an error redirect to the client (RFC 6749 §4.1.2.1 with RFC 9207 `iss`) that
/// carries no code; returns its `error`.
async fn error_redirect(app: &TestApp, slug: &str, resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let back = url::Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(&format!("{REDIRECT}?")), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("xyz-state"), "{back}");
    assert_eq!(query(&back, "iss"), Some(app.url(&format!("/t/{slug}"))), "{back}");
    assert_eq!(query(&back, "code"), None, "a refusal carries no code: {back}");
    query(&back, "error").unwrap_or_else(|| panic!("no error in {back}"))
}

/// Checks an HTML error page shown instead of redirecting anywhere.
async fn error_page(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(LOCATION).is_none(), "an error page never redirects");
    assert!(resp.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("Authorization error"), "{html}");
    assert!(!html.contains("name=\"password\""), "no login form: {html}");
    html
}

/// Adds the cookies a response sets to `jar` (`name=value` pairs).
pub fn keep_cookies(resp: &reqwest::Response, jar: &mut Vec<String>) {
    for c in resp.headers().get_all(SET_COOKIE) {
        let pair = c.to_str().unwrap().split(';').next().unwrap().to_owned();
        let name = pair.split('=').next().unwrap().to_owned();
        jar.retain(|p| !p.starts_with(&format!("{name}=")));
        jar.push(pair);
    }
}

fn sets_session(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("cairn_session="))
}

/// The login page for `params`, with the cookies it set.
pub async fn login_page(app: &TestApp, slug: &str, params: &[(String, String)]) -> (String, Vec<String>) {
    let resp = authorize(app, slug, params).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut jar = Vec::new();
    keep_cookies(&resp, &mut jar);
    let html = resp.text().await.unwrap();
    assert!(html.contains("name=\"password\""), "{html}");
    (html, jar)
}

/// Posts a browser form with the cookies of `jar`.
pub async fn post_form(app: &TestApp, path: &str, jar: &[String], form: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(app.url(path))
        .header("cookie", jar.join("; "))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// A fresh authorization code for `client_id` (alice allows): (code, verifier).
pub async fn code_for(app: &TestApp, client_id: &str) -> (String, String) {
    let p = pkce();
    let back = consent(
        app,
        "acme",
        &auth_params(app, "acme", client_id, &p.challenge),
        "alice@example.com",
    )
    .await;
    (query(&back, "code").unwrap(), p.verifier)
}

/// Exchanges `code` at acme's token endpoint.
pub async fn exchange(
    app: &TestApp,
    client_id: &str,
    code: &str,
    verifier: &str,
    redirect: &str,
) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", verifier),
        ("client_id", client_id),
    ];
    token(app, "acme", &form).await
}

/// Checks an OAuth error answer that issued nothing.
#[track_caller]
pub fn refused(answer: &(StatusCode, Value), status: StatusCode, error: &str) {
    let (got, body) = answer;
    assert_eq!((*got, s(&body["error"])), (status, error), "{body}");
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{body}"
    );
}

/// The reasons of acme's refused token requests, oldest first.
async fn token_refusals(app: &TestApp) -> Vec<String> {
    let events = app.tenant_events("acme").await;
    let mut reasons: Vec<String> = events
        .iter()
        .filter(|e| e.action == "oauth.token" && e.outcome == "denied")
        .map(|e| e.details["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    reasons.reverse();
    reasons
}

async fn acme_with_client() -> (TestApp, String) {
    let app = TestApp::start().await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let client_id = register(&app, "acme").await;
    (app, client_id)
}

#[tokio::test]
async fn bad_authorization_requests_go_back_to_the_client_with_the_error() {
    let (app, client_id) = acme_with_client().await;
    app.tenant("globex").await;
    let p = pkce();
    let params = auth_params(&app, "acme", &client_id, &p.challenge);
    let globex = app.url("/t/globex/mcp");
    for (key, value, expected) in [
        ("code_challenge", None, "invalid_request"),
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("resource", None, "invalid_target"),
        ("resource", Some(globex.as_str()), "invalid_target"),
        ("scope", Some("admin"), "invalid_scope"),
        ("scope", Some("mcp:tools admin"), "invalid_scope"),
    ] {
        let resp = authorize(&app, "acme", &with(&params, key, value)).await;
        assert_eq!(error_redirect(&app, "acme", resp).await, expected, "{key}={value:?}");
    }
    // The same request, well-formed, gets the login page: the refusals were the parameters.
    login_page(&app, "acme", &params).await;
}

#[tokio::test]
async fn an_unknown_client_or_redirect_uri_gets_a_page_not_a_redirect() {
    let (app, client_id) = acme_with_client().await;
    let p = pkce();
    let params = auth_params(&app, "acme", &client_id, &p.challenge);
    for uri in [
        "https://evil.example/callback",
        "http://127.0.0.1:7777/other",
        "http://evil.example:7777/callback",
    ] {
        let html = error_page(authorize(&app, "acme", &with(&params, "redirect_uri", Some(uri))).await).await;
        assert!(html.contains("redirect URI is not registered"), "{uri}: {html}");
    }
    for id in [Some("cli_0123456789abcdef0123456789abcdef"), Some("nobody"), None] {
        let html = error_page(authorize(&app, "acme", &with(&params, "client_id", id)).await).await;
        assert!(html.contains("client"), "{id:?}: {html}");
    }
}

#[tokio::test]
async fn denying_consent_sends_access_denied_and_no_code() {
    let (app, client_id) = acme_with_client().await;
    let p = pkce();
    let params = auth_params(&app, "acme", &client_id, &p.challenge);
    let (html, mut jar) = login_page(&app, "acme", &params).await;
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    let form = [
        ("request", request.as_str()),
        ("csrf_token", csrf.as_str()),
        ("email", "alice@example.com"),
        ("password", PASSWORD),
    ];
    let resp = post_form(&app, "/t/acme/oauth/login", &jar, &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    keep_cookies(&resp, &mut jar);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Allow access"), "{html}");
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    let form = [
        ("request", request.as_str()),
        ("csrf_token", csrf.as_str()),
        ("decision", "deny"),
    ];
    let resp = post_form(&app, "/t/acme/oauth/consent", &jar, &form).await;
    assert_eq!(error_redirect(&app, "acme", resp).await, "access_denied");
    let events = app.tenant_events("acme").await;
    let consents: Vec<_> = events.iter().filter(|e| e.action == "oauth.consent").collect();
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].outcome, "denied");
}

#[tokio::test]
async fn a_wrong_password_or_a_non_member_is_refused_at_login() {
    let (app, client_id) = acme_with_client().await;
    tenant_with_member(&app, "globex", "bob@example.com", "member").await;
    let p = pkce();
    let params = auth_params(&app, "acme", &client_id, &p.challenge);
    let cases = [
        ("alice@example.com", "not the right password", "bad_credentials"),
        ("bob@example.com", PASSWORD, "not_a_member"),
        ("nobody@example.com", PASSWORD, "bad_credentials"),
    ];
    for (email, password, _) in cases {
        let (html, jar) = login_page(&app, "acme", &params).await;
        let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
        let form = [
            ("request", request.as_str()),
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ];
        let resp = post_form(&app, "/t/acme/oauth/login", &jar, &form).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert!(!sets_session(&resp), "{email}: no session for a refused login");
        let html = resp.text().await.unwrap();
        assert!(html.contains("Wrong e-mail or password."), "{html}");
        assert!(
            html.contains("action=\"/t/acme/oauth/login\""),
            "the form again: {html}"
        );
        assert!(
            !hidden(&html, "request").is_empty() && !html.contains("Allow access"),
            "{html}"
        );
    }
    let events = app.tenant_events("acme").await;
    let mut logins: Vec<_> = events
        .iter()
        .filter(|e| e.action == "auth.failed" && e.details["credential"] == "password")
        .collect();
    logins.reverse();
    let seen: Vec<(&str, &str)> = logins
        .iter()
        .map(|e| (e.outcome.as_str(), e.details["reason"].as_str().unwrap_or_default()))
        .collect();
    let expected: Vec<(&str, &str)> = cases.iter().map(|c| ("denied", c.2)).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn forms_without_the_matching_csrf_token_are_forbidden() {
    let (app, client_id) = acme_with_client().await;
    let p = pkce();
    let params = auth_params(&app, "acme", &client_id, &p.challenge);
    let (html, jar) = login_page(&app, "acme", &params).await;
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf_token"));
    let other_cookie = vec![format!("cairn_csrf={}", "A".repeat(43))];
    for (jar, token) in [
        (jar.clone(), "not-the-token"),
        (jar.clone(), ""),
        (Vec::new(), csrf.as_str()),
        (other_cookie, csrf.as_str()),
    ] {
        let form = [
            ("request", request.as_str()),
            ("csrf_token", token),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
        ];
        let resp = post_form(&app, "/t/acme/oauth/login", &jar, &form).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{jar:?} / {token:?}");
        assert!(!sets_session(&resp));
        let form = [
            ("request", request.as_str()),
            ("csrf_token", token),
            ("decision", "allow"),
        ];
        let resp = post_form(&app, "/t/acme/oauth/consent", &jar, &form).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "consent {jar:?} / {token:?}");
        assert!(resp.headers().get(LOCATION).is_none());
    }
    let events = app.tenant_events("acme").await;
    assert!(!events
        .iter()
        .any(|e| e.action.starts_with("oauth.login") || e.action == "oauth.consent" || e.action == "auth.failed"));
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_and_spends_the_code() {
    let (app, client_id) = acme_with_client().await;
    let (code, verifier) = code_for(&app, &client_id).await;
    let answer = exchange(&app, &client_id, &code, &pkce().verifier, REDIRECT).await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    let answer = exchange(&app, &client_id, &code, &verifier, REDIRECT).await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    let reasons = token_refusals(&app).await;
    assert!(reasons[0].contains("code_verifier does not match"), "{reasons:?}");
    assert!(reasons[1].contains("already used"), "{reasons:?}");
}

#[tokio::test]
async fn a_replayed_code_revokes_what_its_first_exchange_issued() {
    let (app, client_id) = acme_with_client().await;
    let (code, verifier) = code_for(&app, &client_id).await;
    let (status, first) = exchange(&app, &client_id, &code, &verifier, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = s(&first["access_token"]);
    assert_eq!(mcp_status(&app, "acme", access).await, StatusCode::OK);
    let again = exchange(&app, &client_id, &code, &verifier, REDIRECT).await;
    refused(&again, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(mcp_status(&app, "acme", access).await, StatusCode::UNAUTHORIZED);
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", s(&first["refresh_token"])),
        ("client_id", &client_id),
    ];
    refused(
        &token(&app, "acme", &form).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let events = app.tenant_events("acme").await;
    assert!(events.iter().any(|e| e.action == "oauth.code_reuse_detected"));
}

#[tokio::test]
async fn a_code_is_bound_to_its_redirect_uri_and_its_client() {
    let (app, client_id) = acme_with_client().await;
    let other_client = register(&app, "acme").await;
    let (code, verifier) = code_for(&app, &client_id).await;
    let answer = exchange(&app, &client_id, &code, &verifier, "http://127.0.0.1:7777/other").await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");

    let (code, verifier) = code_for(&app, &client_id).await;
    let answer = exchange(&app, &other_client, &code, &verifier, REDIRECT).await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    // The code is spent: its rightful client cannot use it either.
    let answer = exchange(&app, &client_id, &code, &verifier, REDIRECT).await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    let reasons = token_refusals(&app).await;
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("redirect_uri does not match"), "{reasons:?}");
    assert!(reasons[1].contains("issued to another client"), "{reasons:?}");
    assert!(reasons[2].contains("already used"), "{reasons:?}");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::start_with(|c| c.oauth_code_ttl_secs = 1).await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let client_id = register(&app, "acme").await;
    let (code, verifier) = code_for(&app, &client_id).await;
    // A real sleep on purpose: the thing under test is the code's expiry (TTL 1 s), which
    // the server checks against the wall clock.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = exchange(&app, &client_id, &code, &verifier, REDIRECT).await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    let reasons = token_refusals(&app).await;
    assert!(reasons.len() == 1 && reasons[0].contains("expired"), "{reasons:?}");
}

#[tokio::test]
async fn unknown_grant_types_and_public_clients_with_secrets_are_refused() {
    let (app, client_id) = acme_with_client().await;
    for grant in ["password", "urn:ietf:params:oauth:grant-type:device_code"] {
        let form = [
            ("grant_type", grant),
            ("client_id", &client_id),
            ("username", "alice@example.com"),
        ];
        refused(
            &token(&app, "acme", &form).await,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        );
    }
    let (code, verifier) = code_for(&app, &client_id).await;
    let resp = app
        .client
        .post(app.url("/t/acme/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
            ("client_secret", "ccs_guessed"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get(WWW_AUTHENTICATE).is_some());
    let answer = (resp.status(), resp.json::<Value>().await.unwrap());
    refused(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    // Refused before the code was looked at: the genuine exchange still works.
    let (status, body) = exchange(&app, &client_id, &code, &verifier, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn register_raw(app: &TestApp, slug: &str, body: Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(&format!("/t/{slug}/oauth/register")))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

fn registration() -> Value {
    json!({"client_name": "Test Client", "redirect_uris": [REDIRECT], "application_type": "native",
        "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]})
}

async fn app_count(app: &TestApp, slug: &str) -> usize {
    let (status, list) = app.get(&format!("/api/v1/tenants/{slug}/oauth/apps")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn registration_validates_client_metadata() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let mut no_type = registration();
    no_type.as_object_mut().unwrap().remove("application_type");
    let answer = register_raw(&app, "acme", no_type).await;
    assert_eq!(
        (answer.0, s(&answer.1["error"])),
        (StatusCode::BAD_REQUEST, "invalid_client_metadata")
    );
    let mut evil = registration();
    evil["redirect_uris"] = json!(["http://evil.example/cb"]);
    let answer = register_raw(&app, "acme", evil).await;
    assert_eq!(
        (answer.0, s(&answer.1["error"])),
        (StatusCode::BAD_REQUEST, "invalid_redirect_uri")
    );
    assert!(answer.1.get("client_id").is_none());
    assert_eq!(app_count(&app, "acme").await, 0);
}

#[tokio::test]
async fn registration_can_be_switched_off_per_tenant() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    let metadata = |app: &TestApp| {
        let url = app.url("/.well-known/oauth-authorization-server/t/acme");
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert!(metadata(&app).await.get("registration_endpoint").is_some());
    let patch = json!({"oauth_dynamic_registration": false});
    let (status, body) = app.call(Method::PATCH, "/api/v1/tenants/acme", Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = register_raw(&app, "acme", registration()).await;
    assert_eq!(
        (answer.0, s(&answer.1["error"])),
        (StatusCode::FORBIDDEN, "access_denied")
    );
    assert!(metadata(&app).await.get("registration_endpoint").is_none());
    assert_eq!(app_count(&app, "acme").await, 0);
}

#[tokio::test]
async fn registrations_are_rate_limited() {
    let app = TestApp::start_with(|c| c.oauth_registrations_per_minute = 2).await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    for _ in 0..2 {
        assert_eq!(register_raw(&app, "acme", registration()).await.0, StatusCode::CREATED);
    }
    let (status, body) = register_raw(&app, "acme", registration()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.get("client_id").is_none());
    assert_eq!(app_count(&app, "acme").await, 2);
    // Per tenant: another tenant's budget is untouched.
    assert_eq!(
        register_raw(&app, "globex", registration()).await.0,
        StatusCode::CREATED
    );
}

/// Serves a client metadata document on loopback at `/client.json`; `doc` builds it from
/// its own URL. Returns the URL and a fetch counter.
async fn serve_document(doc: impl FnOnce(&str) -> Value) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/client.json", listener.local_addr().unwrap());
    let body = doc(&url);
    let fetches = Arc::new(AtomicUsize::new(0));
    let f = fetches.clone();
    let router = axum::Router::new().route(
        "/client.json",
        get(move || {
            f.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, fetches)
}

fn document(client_id: &str) -> Value {
    json!({"client_id": client_id, "client_name": "Document Client", "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none"})
}

#[tokio::test]
async fn a_metadata_document_client_completes_the_flow() {
    let app = TestApp::start_with(|c| c.oauth_cimd_allow_http_loopback = true).await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let (url, fetches) = serve_document(document).await;
    let (code, verifier) = code_for(&app, &url).await;
    assert!(fetches.load(Ordering::SeqCst) >= 1);
    let resource = app.url("/t/acme/mcp");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", url.as_str()),
        ("resource", resource.as_str()),
    ];
    let (status, body) = token(&app, "acme", &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(mcp_status(&app, "acme", s(&body["access_token"])).await, StatusCode::OK);
    let events = app.tenant_events("acme").await;
    assert!(events
        .iter()
        .any(|e| e.action == "oauth.token_issued" && e.target.as_deref() == Some(url.as_str())));
}

#[tokio::test]
async fn metadata_documents_that_lie_or_are_not_allowed_are_refused() {
    let app = TestApp::start_with(|c| c.oauth_cimd_allow_http_loopback = true).await;
    tenant_with_member(&app, "acme", "alice@example.com", "member").await;
    let (url, fetches) = serve_document(|u| document(&u.replace("client.json", "other.json"))).await;
    let p = pkce();
    error_page(authorize(&app, "acme", &auth_params(&app, "acme", &url, &p.challenge)).await).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched, then refused");

    // Default configuration: http on loopback is not a document URL; nothing is fetched.
    let strict = TestApp::start().await;
    tenant_with_member(&strict, "acme", "alice@example.com", "member").await;
    let (url, fetches) = serve_document(document).await;
    let params = auth_params(&strict, "acme", &url, &p.challenge);
    error_page(authorize(&strict, "acme", &params).await).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 0);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "cac_x"),
        ("client_id", url.as_str()),
    ];
    refused(
        &token(&strict, "acme", &form).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
}

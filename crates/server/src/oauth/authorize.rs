//! The authorization endpoint (`GET /t/{slug}/oauth/authorize`) and its two forms:
//! login (`POST …/oauth/login`) and consent (`POST …/oauth/consent`).
//!
//! Between requests the validated authorization request travels sealed in a hidden
//! field; the signed-in user in a sealed, HttpOnly session cookie; CSRF protection is a
//! double-submit token (cookie + hidden field) on top of SameSite=Lax cookies.

use std::collections::HashMap;

use axum::extract::{Form, Query};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cairn_core::api_key::Scope;
use cairn_core::audit::{Actor, Outcome};
use cairn_core::ids::UserId;
use cairn_core::oauth::form::{ConsentForm, LoginForm};
use cairn_core::oauth::{parse_scope, scope_string, valid_challenge, CODE_PREFIX};
use cairn_core::secret::mint_token;
use cairn_core::user::{Email, Role};
use cairn_store::oauth_grants::NewCode;
use rand_core::{OsRng, RngCore};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::pages::{self, ConsentPage, LoginPage};
use super::{AuthServer, Client};

const CSRF_COOKIE: &str = "cairn_csrf";
const SESSION_COOKIE: &str = "cairn_session";
const REQUEST_TTL_SECS: i64 = 600;
const SESSION_TTL_SECS: i64 = 900;

/// A validated authorization request, sealed into the forms.
#[derive(Debug, Serialize, Deserialize)]
struct AuthRequest {
    tenant: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    code_challenge: String,
    resource: String,
    exp: i64,
}

#[derive(Serialize, Deserialize)]
struct Session {
    tenant: String,
    user: UserId,
    email: String,
    exp: i64,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `GET /t/{slug}/oauth/authorize`.
pub async fn start(server: AuthServer, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id") else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "The request names no client (client_id is missing).",
        );
    };
    let client = match server.client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return pages::error_page(StatusCode::BAD_REQUEST, "This client is not registered here."),
        Err(e) => return pages::error_page(StatusCode::BAD_REQUEST, &e.description),
    };
    // Until the redirect URI is known good, errors are shown here, never redirected.
    let redirect_uri = match get("redirect_uri") {
        Some(r) => match client.meta.redirect_uri(r) {
            Some(_) => r.to_owned(),
            None => {
                return pages::error_page(
                    StatusCode::BAD_REQUEST,
                    "The redirect URI is not registered for this client.",
                )
            }
        },
        None if client.meta.redirect_uris.len() == 1 => client.meta.redirect_uris[0].clone(),
        None => return pages::error_page(StatusCode::BAD_REQUEST, "redirect_uri is required for this client."),
    };
    let state = get("state").map(str::to_owned);
    let fail =
        |error: &str, description: &str| redirect_error(&server, &redirect_uri, state.as_deref(), error, description);
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    if !client.meta.allows_grant("authorization_code") {
        return fail(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        );
    }
    let Some(challenge) = get("code_challenge") else {
        return fail("invalid_request", "PKCE is required: code_challenge is missing");
    };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "PKCE code_challenge_method must be S256");
    }
    if !valid_challenge(challenge) {
        return fail("invalid_request", "code_challenge is not a valid S256 challenge");
    }
    match get("resource") {
        None => {
            return fail(
                "invalid_target",
                "resource is required (RFC 8707): this tenant's MCP endpoint URL",
            )
        }
        Some(r) if r.trim_end_matches('/') != server.resource => {
            return fail("invalid_target", "resource is not this tenant's MCP endpoint")
        }
        Some(_) => {}
    }
    if state.as_ref().is_some_and(|s| s.len() > 2048) {
        return fail("invalid_request", "state is too long");
    }
    // What the client registered bounds what it gets; asking for less narrows it, asking
    // for more is partially ignored (RFC 6749 §3.3) unless nothing is left.
    let scopes: Vec<Scope> = match get("scope") {
        None => client.meta.scopes.clone(),
        Some(asked) => match parse_scope(Some(asked)) {
            Ok(s) => s.into_iter().filter(|sc| client.meta.scopes.contains(sc)).collect(),
            Err(e) => return fail("invalid_scope", &e),
        },
    };
    if scopes.is_empty() {
        return fail(
            "invalid_scope",
            "none of the requested scopes is registered for this client",
        );
    }
    let request = AuthRequest {
        tenant: server.tenant.id.to_string(),
        client_id: client.id.clone(),
        redirect_uri,
        scope: scope_string(&scopes),
        state,
        code_challenge: challenge.to_owned(),
        resource: server.resource.clone(),
        exp: now() + REQUEST_TTL_SECS,
    };
    let (csrf, new_cookie) = match cookie(&headers, CSRF_COOKIE) {
        Some(c) if c.len() == 43 => (c.to_owned(), false),
        _ => (random_token(), true),
    };
    let mut resp = match session(&server, &headers) {
        Some(s) => consent_page(&server, &client, &request, &s, &csrf),
        None => login_page(&server, &client, &request, &csrf, "", None, StatusCode::OK),
    };
    if new_cookie {
        set_cookie(&mut resp, &server, CSRF_COOKIE, &csrf, REQUEST_TTL_SECS * 6);
    }
    resp
}

/// `POST /t/{slug}/oauth/login`.
pub async fn login(server: AuthServer, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let (request, client, csrf) = match reopen(&server, &headers, &form.request, &form.csrf_token).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let (srv, cl, req, tok, typed) = (&server, &client, &request, &csrf, &form.email);
    let refuse = |reason: &'static str| async move {
        let (server, client, request, csrf) = (srv, cl, req, tok);
        // A failed login is a failed authentication like a bad key or token: one action
        // (`auth.failed`) for alert rules to count, the credential kind in the details.
        let event = server
            .event(Actor::Anonymous, "auth.failed", Outcome::Denied)
            .details(json!({ "credential": "password", "reason": reason, "client_id": client.id }));
        server.audit(event).await;
        login_page(
            server,
            client,
            request,
            csrf,
            typed,
            Some("Wrong e-mail or password."),
            StatusCode::UNAUTHORIZED,
        )
    };
    let Ok(email) = Email::parse(&form.email) else {
        return refuse("malformed_email").await;
    };
    if server
        .oauth()
        .logins
        .check_key(&(server.tenant.id, email.as_str().to_owned()))
        .is_err()
    {
        return refuse("throttled").await;
    }
    let found = crate::service::users::sign_in(&server.state.store, &email, form.password.clone()).await;
    let user = match found {
        Ok(Some(u)) => u,
        Ok(None) => return refuse("bad_credentials").await,
        Err(e) => return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &store_message(&e)),
    };
    match server.state.store.member_role(server.tenant.id, user).await {
        Ok(Some(_)) => {}
        Ok(None) => return refuse("not_a_member").await,
        Err(e) => return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &store_message(&e)),
    }
    let event = server
        .event(Actor::User(user), "oauth.login", Outcome::Success)
        .details(json!({ "client_id": client.id }));
    server.audit(event).await;
    let session = Session {
        tenant: server.tenant.id.to_string(),
        user,
        email: email.as_str().to_owned(),
        exp: now() + SESSION_TTL_SECS,
    };
    let mut resp = consent_page(&server, &client, &request, &session, &csrf);
    let sealed = server.oauth().sealer.seal(&session);
    set_cookie(&mut resp, &server, SESSION_COOKIE, &sealed, SESSION_TTL_SECS);
    resp
}

/// `POST /t/{slug}/oauth/consent`.
pub async fn consent(server: AuthServer, headers: HeaderMap, Form(form): Form<ConsentForm>) -> Response {
    let (request, client, csrf) = match reopen(&server, &headers, &form.request, &form.csrf_token).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(session) = session(&server, &headers) else {
        let msg = Some("Your sign-in expired. Please sign in again.");
        return login_page(&server, &client, &request, &csrf, "", msg, StatusCode::UNAUTHORIZED);
    };
    let role = match server.state.store.member_role(server.tenant.id, session.user).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            let msg = Some("This account is not a member of this workspace.");
            return login_page(&server, &client, &request, &csrf, "", msg, StatusCode::FORBIDDEN);
        }
        Err(e) => return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &store_message(&e)),
    };
    let state = request.state.as_deref();
    if form.decision != "allow" {
        let event = server
            .event(Actor::User(session.user), "oauth.consent", Outcome::Denied)
            .target(client.id.clone());
        server.audit(event).await;
        return redirect_error(
            &server,
            &request.redirect_uri,
            state,
            "access_denied",
            "the user denied access",
        );
    }
    let scopes: Vec<Scope> = parse_scope(Some(&request.scope))
        .unwrap_or_default()
        .into_iter()
        .filter(|s| role_allows(role, *s))
        .collect();
    let code = mint_token(CODE_PREFIX);
    let expires_at = chrono::Utc::now()
        + chrono::Duration::seconds(i64::try_from(server.state.config.oauth_code_ttl_secs).unwrap_or(60));
    let stored = server
        .state
        .store
        .create_oauth_code(
            server.tenant.id,
            &NewCode {
                hash: &code.digest,
                client_id: &client.id,
                user: session.user,
                redirect_uri: &request.redirect_uri,
                code_challenge: &request.code_challenge,
                resource: &request.resource,
                scopes: &scopes,
                expires_at,
            },
        )
        .await;
    if let Err(e) = stored {
        return redirect_error(
            &server,
            &request.redirect_uri,
            state,
            "temporarily_unavailable",
            &store_message(&e),
        );
    }
    let event = server
        .event(Actor::User(session.user), "oauth.consent", Outcome::Success)
        .target(client.id.clone())
        .details(json!({ "scope": scope_string(&scopes) }));
    server.audit(event).await;
    let mut params = vec![("code", code.plaintext.expose_secret().to_owned())];
    if let Some(s) = state {
        params.push(("state", s.to_owned()));
    }
    params.push(("iss", server.issuer.clone()));
    redirect(&request.redirect_uri, &params)
}

/// What a member of each role may be granted: `kb:write` is for admins and owners.
fn role_allows(role: Role, scope: Scope) -> bool {
    scope != Scope::KbWrite || matches!(role, Role::Admin | Role::Owner)
}

/// Checks the CSRF token and opens the sealed request; the error is a page to show.
async fn reopen(
    server: &AuthServer,
    headers: &HeaderMap,
    sealed: &str,
    csrf: &str,
) -> Result<(AuthRequest, Client, String), Response> {
    let cookie_token = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    if cookie_token.is_empty() || !bool::from(cookie_token.as_bytes().ct_eq(csrf.as_bytes())) {
        let msg = "This form could not be verified (CSRF check failed). Start the sign-in again from the application.";
        return Err(pages::error_page(StatusCode::FORBIDDEN, msg));
    }
    let request: AuthRequest = server
        .oauth()
        .sealer
        .open(sealed)
        .filter(|r: &AuthRequest| r.tenant == server.tenant.id.to_string() && r.exp > now())
        .ok_or_else(|| {
            let msg = "This sign-in request has expired or is invalid. Start again from the application.";
            pages::error_page(StatusCode::BAD_REQUEST, msg)
        })?;
    let client = match server.client(&request.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(pages::error_page(
                StatusCode::BAD_REQUEST,
                "This client is no longer registered.",
            ))
        }
        Err(e) => return Err(pages::error_page(StatusCode::BAD_REQUEST, &e.description)),
    };
    Ok((request, client, cookie_token.to_owned()))
}

fn session(server: &AuthServer, headers: &HeaderMap) -> Option<Session> {
    let raw = cookie(headers, SESSION_COOKIE)?;
    let s: Session = server.oauth().sealer.open(raw)?;
    (s.tenant == server.tenant.id.to_string() && s.exp > now()).then_some(s)
}

fn login_page(
    server: &AuthServer,
    client: &Client,
    request: &AuthRequest,
    csrf: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let action = format!("/t/{}/oauth/login", server.tenant.slug.as_str());
    let sealed = server.oauth().sealer.seal(request);
    pages::login(
        status,
        &LoginPage {
            tenant_name: server.tenant.name.as_str(),
            client_name: client.display_name(),
            action: &action,
            request: &sealed,
            csrf,
            email,
            error,
        },
    )
}

fn consent_page(server: &AuthServer, client: &Client, request: &AuthRequest, s: &Session, csrf: &str) -> Response {
    let action = format!("/t/{}/oauth/consent", server.tenant.slug.as_str());
    let sealed = server.oauth().sealer.seal(request);
    let scopes: Vec<(&str, &str)> = parse_scope(Some(&request.scope))
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.as_str(), describe(s)))
        .collect();
    let host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    pages::consent(&ConsentPage {
        tenant_name: server.tenant.name.as_str(),
        user_email: &s.email,
        client_name: client.display_name(),
        client_id: &client.id,
        redirect_host: &host,
        scopes: &scopes,
        action: &action,
        request: &sealed,
        csrf,
    })
}

fn describe(scope: Scope) -> &'static str {
    match scope {
        Scope::McpTools => "list and call tools",
        Scope::McpResources => "read resources",
        Scope::McpPrompts => "use prompts",
        Scope::KbWrite => "add and change knowledge-base documents",
        Scope::Admin => "administer the workspace",
    }
}

/// Sends the user back to the client with an error (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
fn redirect_error(
    server: &AuthServer,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut params = vec![
        ("error", error.to_owned()),
        ("error_description", description.to_owned()),
    ];
    if let Some(s) = state {
        params.push(("state", s.to_owned()));
    }
    params.push(("iss", server.issuer.clone()));
    redirect(redirect_uri, &params)
}

fn redirect(redirect_uri: &str, params: &[(&str, String)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "The redirect URI is not a valid URL.");
    };
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in params {
            pairs.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(resp: &mut Response, server: &AuthServer, name: &str, value: &str, max_age: i64) {
    let secure = if server.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let c = format!(
        "{name}={value}; Path=/t/{}/oauth; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        server.tenant.slug.as_str()
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn store_message(e: &cairn_store::StoreError) -> String {
    tracing::warn!(error = %e, "authorization step failed");
    "The service is temporarily unavailable. Please try again.".into()
}

//! The token endpoint (authorization_code, refresh_token, client_credentials),
//! revocation (RFC 7009) and introspection (RFC 7662).

use axum::extract::Form;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_core::api_key::Scope;
use cairn_core::audit::{Actor, Outcome};
use cairn_core::ids::UserId;
use cairn_core::oauth::form::{basic_credentials, narrow_scope, TokenForm};
use cairn_core::oauth::{parse_scope, scope_string, verify_pkce, REFRESH_PREFIX};
use cairn_core::secret::{mint_token, TokenDigest};
use cairn_store::oauth_grants::{NewGrant, Redemption, Rotation};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::OAuthError;
use super::jwt::AccessClaims;
use super::{AuthServer, Client};

fn no_store(body: Value) -> Response {
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert("pragma", HeaderValue::from_static("no-cache"));
    resp
}

/// Client authentication: `client_secret_basic`, `client_secret_post`, or a public
/// client naming itself. A public client presenting a secret is refused.
async fn authenticate(
    server: &AuthServer,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<(Client, bool), OAuthError> {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials)
        .transpose()
        .map_err(|_| OAuthError::invalid_client("malformed Basic credentials"))?;
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if form.client_id.as_deref().is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, Some(secret))
        }
        None => (form.client_id.clone().unwrap_or_default(), form.client_secret.clone()),
    };
    if client_id.is_empty() {
        return Err(OAuthError::invalid_client("client authentication is required"));
    }
    let client = server
        .client(&client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    match (&client.secret_hash, secret) {
        (None, None) => Ok((client, false)),
        (None, Some(_)) => Err(OAuthError::invalid_client("this is a public client; it has no secret")),
        (Some(_), None) => Err(OAuthError::invalid_client(
            "this client must authenticate with its secret",
        )),
        (Some(hash), Some(secret)) if TokenDigest::of(&secret).ct_eq(hash) => Ok((client, true)),
        (Some(_), Some(_)) => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

/// `POST /t/{slug}/oauth/token`.
pub async fn token(
    server: AuthServer,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, OAuthError> {
    let (client, _) = match authenticate(&server, &headers, &form).await {
        Ok(c) => c,
        Err(e) => {
            let event = server
                .event(Actor::Anonymous, "oauth.token", Outcome::Denied)
                .details(json!({ "reason": e.error, "client_id": form.client_id }));
            server.audit(event).await;
            return Err(e);
        }
    };
    let grant_type = form.grant_type.as_deref().unwrap_or_default();
    if !client.meta.allows_grant(grant_type)
        && matches!(
            grant_type,
            "authorization_code" | "refresh_token" | "client_credentials"
        )
    {
        return Err(OAuthError::new(
            "unauthorized_client",
            format!("this client may not use {grant_type}"),
        ));
    }
    let result = match grant_type {
        "authorization_code" => authorization_code(&server, &client, &form).await,
        "refresh_token" => refresh(&server, &client, &form).await,
        "client_credentials" => client_credentials(&server, &client, &form).await,
        "" => Err(OAuthError::invalid_request("grant_type is required")),
        _ => Err(OAuthError::new(
            "unsupported_grant_type",
            "supported: authorization_code, refresh_token, client_credentials",
        )),
    };
    if let Err(e) = &result {
        let event = server
            .event(Actor::Anonymous, "oauth.token", Outcome::Denied)
            .target(client.id.clone())
            .details(json!({ "grant_type": grant_type, "error": e.error, "reason": e.description }));
        server.audit(event).await;
    }
    result
}

async fn authorization_code(server: &AuthServer, client: &Client, form: &TokenForm) -> Result<Response, OAuthError> {
    let code = form
        .code
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let store = &server.state.store;
    let tenant = server.tenant.id;
    let refresh_until = chrono::Utc::now() + secs(server.state.config.oauth_refresh_token_ttl_secs);
    let (stored, grant) = match store
        .redeem_oauth_code(tenant, &TokenDigest::of(code), refresh_until)
        .await?
    {
        Redemption::Fresh { code, grant } => (code, grant),
        Redemption::Replayed { grant } => {
            server.oauth().forget_grant(tenant, grant);
            let event = server
                .event(Actor::Anonymous, "oauth.code_reuse_detected", Outcome::Denied)
                .target(client.id.clone())
                .details(json!({ "grant": grant.to_string(), "action": "grant_revoked" }));
            server.audit(event).await;
            return Err(OAuthError::invalid_grant(
                "authorization code was already used; its tokens are revoked",
            ));
        }
        Redemption::Unknown => return Err(OAuthError::invalid_grant("unknown or expired authorization code")),
    };
    // The code is spent now; any mismatch also kills the grant it just created.
    let refuse = |e: OAuthError| async move {
        let _ = store.revoke_oauth_grant(tenant, grant, "invalid_exchange").await;
        server.oauth().forget_grant(tenant, grant);
        Err(e)
    };
    if stored.client_id != client.id {
        return refuse(OAuthError::invalid_grant("the code was issued to another client")).await;
    }
    if stored.expires_at <= chrono::Utc::now() {
        return refuse(OAuthError::invalid_grant("the authorization code has expired")).await;
    }
    if form.redirect_uri.as_deref() != Some(stored.redirect_uri.as_str()) {
        return refuse(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ))
        .await;
    }
    let verifier = form.code_verifier.as_deref().unwrap_or_default();
    if verifier.is_empty() {
        return refuse(OAuthError::invalid_request("code_verifier is required (PKCE)")).await;
    }
    if !verify_pkce(verifier, &stored.code_challenge) {
        return refuse(OAuthError::invalid_grant(
            "code_verifier does not match the code challenge",
        ))
        .await;
    }
    if form
        .resource
        .as_deref()
        .is_some_and(|r| r.trim_end_matches('/') != stored.resource)
    {
        return refuse(OAuthError::new(
            "invalid_target",
            "resource differs from the authorization request",
        ))
        .await;
    }
    let refresh = if client.meta.allows_grant("refresh_token") {
        let t = mint_token(REFRESH_PREFIX);
        store.add_refresh_token(tenant, grant, &t.digest, refresh_until).await?;
        Some(t.plaintext.expose_secret().to_owned())
    } else {
        None
    };
    let body = issue(server, client, &stored.user.to_string(), &stored.scopes, grant, refresh).await?;
    let event = server
        .event(Actor::User(stored.user), "oauth.token_issued", Outcome::Success)
        .target(client.id.clone())
        .details(json!({ "grant_type": "authorization_code", "grant": grant.to_string(), "scope": scope_string(&stored.scopes) }));
    server.audit(event).await;
    Ok(no_store(body))
}

async fn refresh(server: &AuthServer, client: &Client, form: &TokenForm) -> Result<Response, OAuthError> {
    let old = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let store = &server.state.store;
    let tenant = server.tenant.id;
    let new = mint_token(REFRESH_PREFIX);
    let old_digest = TokenDigest::of(old);
    // Refresh tokens live as long as their grant: re-consent after the grant lifetime.
    let Some(current) = store
        .grant_of_refresh_token(tenant, &old_digest)
        .await?
        .filter(|g| g.client_id == client.id)
    else {
        return Err(OAuthError::invalid_grant("unknown refresh token"));
    };
    // A refused request must leave the token unspent (RFC 6749 §6): check before rotating.
    if form
        .resource
        .as_deref()
        .is_some_and(|r| r.trim_end_matches('/') != current.resource)
    {
        return Err(OAuthError::new("invalid_target", "resource differs from the grant"));
    }
    let scopes =
        narrow_scope(&current.scopes, form.scope.as_deref()).map_err(|e| OAuthError::new("invalid_scope", e))?;
    let grant = match store
        .rotate_refresh_token(tenant, &client.id, &old_digest, &new.digest, current.expires_at)
        .await?
    {
        Rotation::Rotated(g) => g,
        Rotation::Reused { grant } => {
            server.oauth().forget_grant(tenant, grant);
            let event = server
                .event(Actor::Anonymous, "oauth.refresh_reuse_detected", Outcome::Denied)
                .target(client.id.clone())
                .details(json!({ "grant": grant.to_string(), "action": "grant_revoked" }));
            server.audit(event).await;
            return Err(OAuthError::invalid_grant(
                "refresh token was already used; the whole grant is revoked",
            ));
        }
        Rotation::Refused => {
            return Err(OAuthError::invalid_grant(
                "refresh token is invalid, expired or revoked",
            ))
        }
    };
    let Some(user) = grant.user else {
        return Err(OAuthError::invalid_grant("this grant has no user"));
    };
    // A member removed since the grant loses it at the next refresh.
    if store.member_role(tenant, user).await?.is_none() {
        store.revoke_oauth_grant(tenant, grant.id, "member_removed").await?;
        server.oauth().forget_grant(tenant, grant.id);
        return Err(OAuthError::invalid_grant(
            "the user is no longer a member of this tenant",
        ));
    }
    let refresh = Some(new.plaintext.expose_secret().to_owned());
    let body = issue(server, client, &user.to_string(), &scopes, grant.id, refresh).await?;
    let event = server
        .event(Actor::User(user), "oauth.token_refreshed", Outcome::Success)
        .target(client.id.clone())
        .details(json!({ "grant": grant.id.to_string() }));
    server.audit(event).await;
    Ok(no_store(body))
}

async fn client_credentials(server: &AuthServer, client: &Client, form: &TokenForm) -> Result<Response, OAuthError> {
    if client.secret_hash.is_none() {
        return Err(OAuthError::new(
            "unauthorized_client",
            "client_credentials needs a confidential client",
        ));
    }
    if form
        .resource
        .as_deref()
        .is_some_and(|r| r.trim_end_matches('/') != server.resource)
    {
        return Err(OAuthError::new(
            "invalid_target",
            "resource is not this tenant's MCP endpoint",
        ));
    }
    let requested = parse_scope(form.scope.as_deref()).map_err(|e| OAuthError::new("invalid_scope", e))?;
    if requested.iter().any(|s| !client.meta.scopes.contains(s)) {
        return Err(OAuthError::new(
            "invalid_scope",
            "the client may not ask for these scopes",
        ));
    }
    let ttl = server.state.config.oauth_access_token_ttl_secs;
    let grant = server
        .state
        .store
        .create_oauth_grant(
            server.tenant.id,
            &NewGrant {
                client_id: &client.id,
                user: None,
                scopes: &requested,
                resource: &server.resource,
                expires_at: chrono::Utc::now() + secs(ttl),
            },
        )
        .await?;
    let body = issue(server, client, &client.id, &requested, grant, None).await?;
    let event = server
        .event(Actor::Anonymous, "oauth.token_issued", Outcome::Success)
        .target(client.id.clone())
        .details(json!({ "grant_type": "client_credentials", "grant": grant.to_string(), "scope": scope_string(&requested) }));
    server.audit(event).await;
    Ok(no_store(body))
}

fn secs(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

/// Signs an access token and builds the RFC 6749 §5.1 response body.
async fn issue(
    server: &AuthServer,
    client: &Client,
    sub: &str,
    scopes: &[Scope],
    grant: Uuid,
    refresh: Option<String>,
) -> Result<Value, OAuthError> {
    let ttl = server.state.config.oauth_access_token_ttl_secs;
    let now = chrono::Utc::now().timestamp();
    let claims = AccessClaims {
        iss: server.issuer.clone(),
        sub: sub.to_owned(),
        aud: server.resource.clone(),
        exp: now + i64::try_from(ttl).unwrap_or(600),
        iat: now,
        nbf: now,
        jti: Uuid::now_v7().simple().to_string(),
        scope: scope_string(scopes),
        client_id: client.id.clone(),
        gid: grant.simple().to_string(),
    };
    let jwt = server
        .oauth()
        .signer
        .sign(&server.state.store, server.tenant.id, &claims)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not sign an access token");
            OAuthError::new("server_error", "could not issue a token")
        })?;
    let mut body = json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": claims.scope,
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    Ok(body)
}

/// `POST /t/{slug}/oauth/revoke` (RFC 7009): revokes the grant behind a refresh or
/// access token of the calling client. Unknown tokens are not an error.
pub async fn revoke(
    server: AuthServer,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, OAuthError> {
    let (client, _) = authenticate(&server, &headers, &form).await?;
    let token = form
        .token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let tenant = server.tenant.id;
    let grant = if crate::idp::looks_like_jwt(token) {
        let claims = server
            .oauth()
            .signer
            .verify(&server.state.store, tenant, token, &server.issuer, &server.resource)
            .await
            .ok();
        claims
            .filter(|c| c.client_id == client.id)
            .and_then(|c| Uuid::parse_str(&c.gid).ok())
    } else {
        server
            .state
            .store
            .grant_of_refresh_token(tenant, &TokenDigest::of(token))
            .await?
            .filter(|g| g.client_id == client.id)
            .map(|g| g.id)
    };
    if let Some(grant) = grant {
        server.state.store.revoke_oauth_grant(tenant, grant, "revoked").await?;
        server.oauth().forget_grant(tenant, grant);
        let event = server
            .event(Actor::Anonymous, "oauth.token_revoked", Outcome::Success)
            .target(client.id.clone())
            .details(json!({ "grant": grant.to_string(), "token_type_hint": form_hint(&form) }));
        server.audit(event).await;
    }
    Ok(no_store(json!({})))
}

fn form_hint(form: &TokenForm) -> Option<&str> {
    form.token_type_hint.as_deref()
}

/// `POST /t/{slug}/oauth/introspect` (RFC 7662), for confidential clients.
pub async fn introspect(
    server: AuthServer,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, OAuthError> {
    let (_, confidential) = authenticate(&server, &headers, &form).await?;
    if !confidential {
        return Err(OAuthError::invalid_client("introspection is for confidential clients"));
    }
    let token = form
        .token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let inactive = || Ok(no_store(json!({ "active": false })));
    if !crate::idp::looks_like_jwt(token) {
        return inactive();
    }
    let tenant = server.tenant.id;
    let Ok(claims) = server
        .oauth()
        .signer
        .verify(&server.state.store, tenant, token, &server.issuer, &server.resource)
        .await
    else {
        return inactive();
    };
    let Ok(grant) = Uuid::parse_str(&claims.gid) else {
        return inactive();
    };
    if !server.oauth().grant_active(&server.state.store, tenant, grant).await? {
        return inactive();
    }
    let username = UserId::parse("sub", &claims.sub).ok().map(|u| u.to_string());
    Ok(no_store(json!({
        "active": true,
        "scope": claims.scope,
        "client_id": claims.client_id,
        "username": username,
        "token_type": "Bearer",
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.nbf,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "jti": claims.jti,
    })))
}

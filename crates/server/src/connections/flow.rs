//! The authorization-code flow against the upstream provider: the link a user opens,
//! the callback that stores the tokens, and the token-endpoint requests.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::ids::{TenantId, UserId};
use cairn_store::connected_accounts::NewTokens;
use cairn_store::Store;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{expiry, seal_tokens, ConnectionError, TokenResponse};
use crate::crypto::Slot;
use crate::oauth::AuthServer;
use crate::state::AppState;

const STATE_TTL_SECS: i64 = 600;

/// What travels in `state`: encrypted with the tenant's data key, so the PKCE verifier
/// inside stays secret although the browser and the provider see the value.
#[derive(Serialize, Deserialize)]
struct FlowState {
    user: UserId,
    provider: String,
    verifier: String,
    exp: i64,
}

fn state_slot() -> Slot<'static> {
    Slot {
        table: "connected_accounts",
        column: "oauth_state",
        row: "authorization",
    }
}

fn callback_url(app: &AppState, slug: &str) -> String {
    format!("{}/t/{slug}/connections/callback", app.config.public_base_url())
}

/// POSTs a token request; the error text is safe to store and show (no secrets).
pub(super) async fn token_request(app: &AppState, url: &str, form: &[(&str, String)]) -> Result<TokenResponse, String> {
    let resp = app
        .connections
        .http
        .post(url)
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .map_err(|_| "the provider's token endpoint could not be reached".to_owned())?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|_| format!("the provider answered HTTP {} without JSON", status.as_u16()))?;
    if !status.is_success() {
        let error = body["error"].as_str().unwrap_or("error");
        return Err(format!("the provider answered HTTP {}: {error}", status.as_u16()));
    }
    serde_json::from_value(body).map_err(|_| "the provider's token response has no access_token".to_owned())
}

/// The URL `user` opens to connect `provider` (valid for ten minutes).
pub async fn start(
    app: &AppState,
    tenant: TenantId,
    slug: &str,
    user: UserId,
    provider: &str,
) -> Result<String, ConnectionError> {
    let cred = app
        .store
        .get_oauth_credential(tenant, provider)
        .await?
        .ok_or_else(|| ConnectionError::NoCredentials(provider.to_owned()))?;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let payload = FlowState {
        user,
        provider: provider.to_owned(),
        verifier,
        exp: chrono::Utc::now().timestamp() + STATE_TTL_SECS,
    };
    let plain = serde_json::to_vec(&payload).map_err(|e| ConnectionError::Upstream(e.to_string()))?;
    let sealed = app.keyring.encrypt(&app.store, tenant, state_slot(), &plain).await?;
    let mut url = url::Url::parse(&cred.auth_url).map_err(|_| ConnectionError::Upstream("bad auth_url".into()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &cred.client_id)
            .append_pair("redirect_uri", &callback_url(app, slug))
            .append_pair("state", &URL_SAFE_NO_PAD.encode(sealed))
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if !cred.scopes.is_empty() {
            q.append_pair("scope", &cred.scopes.join(" "));
        }
        if let Some(r) = &cred.resource {
            q.append_pair("resource", r);
        }
    }
    Ok(url.to_string())
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /t/{slug}/connections/callback`: where the provider sends the user back.
pub async fn callback(server: AuthServer, Query(q): Query<CallbackQuery>) -> Response {
    let page = |status: StatusCode, title: &str, text: &str| {
        crate::oauth::pages_html(
            status,
            title,
            &format!(
                "<h1>{}</h1><p>{}</p>",
                crate::oauth::escape(title),
                crate::oauth::escape(text)
            ),
        )
    };
    let app = &server.state;
    let tenant = server.tenant.id;
    let flow = q
        .state
        .as_deref()
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .map(|sealed| async move {
            app.keyring
                .decrypt(&app.store, tenant, state_slot(), &sealed)
                .await
                .ok()
        });
    let flow: Option<FlowState> = match flow {
        Some(f) => f.await.and_then(|p| serde_json::from_slice(&p).ok()),
        None => None,
    };
    let Some(flow) = flow.filter(|f| f.exp > chrono::Utc::now().timestamp()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Connection failed",
            "This link is invalid or has expired. Start again.",
        );
    };
    if let Some(e) = q.error {
        return page(
            StatusCode::BAD_REQUEST,
            "Connection cancelled",
            &format!("The provider answered: {e}"),
        );
    }
    let Some(code) = q.code else {
        return page(
            StatusCode::BAD_REQUEST,
            "Connection failed",
            "The provider sent no authorization code.",
        );
    };
    match finish(app, tenant, server.tenant.slug.as_str(), &flow, &code).await {
        Ok(()) => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "Your {} account is connected. You can close this window.",
                flow.provider
            ),
        ),
        Err(e) => {
            let event = AuditEvent::new(Actor::User(flow.user), "connection.failed", Outcome::Failure)
                .tenant(tenant)
                .target(flow.provider.clone())
                .details(json!({ "reason": e.to_string() }));
            app.audit.emit(event).await;
            page(StatusCode::BAD_GATEWAY, "Connection failed", &e.to_string())
        }
    }
}

async fn finish(
    app: &AppState,
    tenant: TenantId,
    slug: &str,
    flow: &FlowState,
    code: &str,
) -> Result<(), ConnectionError> {
    let (cred, secret) = crate::service::credentials::open_secret(app, tenant, &flow.provider)
        .await?
        .ok_or_else(|| ConnectionError::NoCredentials(flow.provider.clone()))?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", callback_url(app, slug)),
        ("code_verifier", flow.verifier.clone()),
        ("client_id", cred.client_id.clone()),
        ("client_secret", secret.to_string()),
    ];
    if let Some(r) = &cred.resource {
        form.push(("resource", r.clone()));
    }
    let tokens = token_request(app, &cred.token_url, &form)
        .await
        .map_err(ConnectionError::Upstream)?;
    let id = Store::connection_id(flow.user, &flow.provider);
    let (access, refresh) = seal_tokens(app, tenant, &id, &tokens, None).await?;
    let (expires_at, lifetime_secs) = expiry(&tokens);
    let scopes = tokens.scope.clone().unwrap_or_else(|| cred.scopes.join(" "));
    app.store
        .put_connection(
            tenant,
            flow.user,
            &flow.provider,
            &NewTokens {
                id: &id,
                access: &access,
                refresh: refresh.as_deref(),
                scopes: &scopes,
                expires_at,
                lifetime_secs,
            },
        )
        .await?;
    let event = AuditEvent::new(Actor::User(flow.user), "connection.connected", Outcome::Success)
        .tenant(tenant)
        .target(flow.provider.clone())
        .details(json!({ "scopes": scopes }));
    app.audit.emit(event).await;
    Ok(())
}

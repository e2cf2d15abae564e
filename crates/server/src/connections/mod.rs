//! Connected accounts: a user of a tenant connects an upstream account (GitHub, a
//! second Cairn, …) through Cairn, which is the OAuth *client* here, using the tenant's
//! credentials (`service::credentials`). Authorization code + PKCE; tokens encrypted at
//! rest; before expiry a token is refreshed once however many requests need it at the
//! same moment (single-flight), the new tokens are stored before use, and a failed
//! refresh marks the connection as needing consent again.

mod flow;
pub mod tool;

use std::sync::Arc;
use std::time::Duration;

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::ids::{TenantId, UserId};
use cairn_store::connected_accounts::{ConnectedAccount, NewTokens};
use cairn_store::Store;
use moka::sync::Cache;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

pub use flow::{callback, start};

use crate::crypto::{KeyringError, Slot};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("no {0} account is connected")]
    NotConnected(String),
    #[error("the {0} connection needs the user to consent again")]
    NeedsReconsent(String),
    #[error("this tenant has no credentials for {0}")]
    NoCredentials(String),
    #[error("the upstream provider refused: {0}")]
    Upstream(String),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
}

/// Per-process state: an HTTP client for upstream token endpoints and one lock per
/// connection, so that concurrent callers share a single refresh.
pub struct Connections {
    http: reqwest::Client,
    locks: Cache<(TenantId, String), Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            locks: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }
}

/// A token response (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
}

pub(crate) fn token_slot<'a>(id: &'a str, column: &'static str) -> Slot<'a> {
    Slot {
        table: "connected_accounts",
        column,
        row: id,
    }
}

/// Still usable for a while: at least a minute, or half its lifetime when shorter.
fn fresh(account: &ConnectedAccount) -> bool {
    let Some(expires_at) = account.expires_at else {
        return true;
    };
    let lifetime = account.lifetime_secs.unwrap_or(3600).max(1);
    let margin = chrono::Duration::seconds(lifetime.min(120) / 2);
    expires_at - margin > chrono::Utc::now()
}

/// Encrypts a token response for row `id`.
async fn seal_tokens(
    app: &AppState,
    tenant: TenantId,
    id: &str,
    t: &TokenResponse,
    keep_refresh: Option<&[u8]>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), KeyringError> {
    let (ring, store) = (&app.keyring, &app.store);
    let access = ring
        .encrypt(store, tenant, token_slot(id, "access_token"), t.access_token.as_bytes())
        .await?;
    let refresh = match &t.refresh_token {
        Some(r) => Some(
            ring.encrypt(store, tenant, token_slot(id, "refresh_token"), r.as_bytes())
                .await?,
        ),
        None => keep_refresh.map(<[u8]>::to_vec),
    };
    Ok((access, refresh))
}

fn expiry(t: &TokenResponse) -> (Option<chrono::DateTime<chrono::Utc>>, Option<i64>) {
    match t.expires_in {
        Some(secs) if secs > 0 => (Some(chrono::Utc::now() + chrono::Duration::seconds(secs)), Some(secs)),
        _ => (None, None),
    }
}

/// A usable access token of `user`'s `provider` connection, refreshed if needed.
pub async fn access_token(
    app: &AppState,
    tenant: TenantId,
    user: UserId,
    provider: &str,
) -> Result<Zeroizing<String>, ConnectionError> {
    let id = Store::connection_id(user, provider);
    let load = || async {
        app.store
            .get_connection(tenant, &id)
            .await?
            .ok_or_else(|| ConnectionError::NotConnected(provider.to_owned()))
    };
    let mut account = load().await?;
    if account.status != "active" {
        return Err(ConnectionError::NeedsReconsent(provider.to_owned()));
    }
    if !fresh(&account) {
        let lock = app
            .connections
            .locks
            .get_with((tenant, id.clone()), || Arc::new(tokio::sync::Mutex::new(())));
        let _guard = lock.lock().await;
        // Whoever held the lock before us may have refreshed already.
        account = load().await?;
        if account.status != "active" {
            return Err(ConnectionError::NeedsReconsent(provider.to_owned()));
        }
        if !fresh(&account) {
            account = refresh(app, tenant, &account).await?;
        }
    }
    let plain = app
        .keyring
        .decrypt(
            &app.store,
            tenant,
            token_slot(&id, "access_token"),
            &account.sealed_access,
        )
        .await?;
    Ok(Zeroizing::new(String::from_utf8_lossy(&plain).into_owned()))
}

async fn refresh(
    app: &AppState,
    tenant: TenantId,
    account: &ConnectedAccount,
) -> Result<ConnectedAccount, ConnectionError> {
    let provider = account.provider.as_str();
    let fail = |reason: String| async move {
        app.store
            .connection_needs_reconsent(tenant, &account.id, &reason)
            .await?;
        let event = AuditEvent::new(
            Actor::User(account.user_id),
            "connection.refresh_failed",
            Outcome::Failure,
        )
        .tenant(tenant)
        .target(provider.to_owned())
        .details(json!({ "reason": reason }));
        app.audit.emit(event).await;
        Err(ConnectionError::NeedsReconsent(provider.to_owned()))
    };
    let Some(sealed_refresh) = &account.sealed_refresh else {
        return fail("no refresh token".into()).await;
    };
    let refresh_token = app
        .keyring
        .decrypt(
            &app.store,
            tenant,
            token_slot(&account.id, "refresh_token"),
            sealed_refresh,
        )
        .await?;
    let Some((cred, secret)) = crate::service::credentials::open_secret(app, tenant, provider).await? else {
        return fail("the tenant's credentials for this provider are gone".into()).await;
    };
    let mut form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", String::from_utf8_lossy(&refresh_token).into_owned()),
        ("client_id", cred.client_id.clone()),
        ("client_secret", secret.to_string()),
    ];
    if let Some(r) = &cred.resource {
        form.push(("resource", r.clone()));
    }
    let tokens = match flow::token_request(app, &cred.token_url, &form).await {
        Ok(t) => t,
        Err(e) => return fail(e).await,
    };
    let (access, refresh) = seal_tokens(app, tenant, &account.id, &tokens, Some(sealed_refresh)).await?;
    let (expires_at, lifetime_secs) = expiry(&tokens);
    let scopes = tokens.scope.clone().unwrap_or_else(|| account.scopes.clone());
    // Stored before it is used: a crash after this line loses nothing.
    app.store
        .refreshed_connection(
            tenant,
            sealed_refresh,
            &NewTokens {
                id: &account.id,
                access: &access,
                refresh: refresh.as_deref(),
                scopes: &scopes,
                expires_at,
                lifetime_secs,
            },
        )
        .await?;
    let event = AuditEvent::new(Actor::User(account.user_id), "connection.refreshed", Outcome::Success)
        .tenant(tenant)
        .target(provider.to_owned());
    app.audit.emit(event).await;
    app.store
        .get_connection(tenant, &account.id)
        .await?
        .ok_or_else(|| ConnectionError::NotConnected(provider.to_owned()))
}

//! Operator tokens: minted here, shown once, stored as digests.

use std::io::Write as _;
use std::path::Path;

use cairn_core::audit::{Actor, AuditEvent, Outcome};
use cairn_core::ids::OperatorTokenId;
use cairn_core::secret::{mint_token, TokenDigest, OPERATOR_TOKEN_PREFIX};
use cairn_store::Store;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::error::ApiError;
use crate::state::Ctx;

/// A new token and its id; the plaintext exists only in this value.
pub struct IssuedToken {
    pub id: OperatorTokenId,
    pub token: SecretString,
}

pub async fn create(ctx: &Ctx, name: &str) -> Result<IssuedToken, ApiError> {
    let name = cairn_core::validate_text("name", name, 100)?;
    let minted = mint_token(OPERATOR_TOKEN_PREFIX);
    let record = ctx.store().create_operator_token(&name, &minted.digest).await?;
    let event = ctx
        .event("operator_token.created", Outcome::Success)
        .target(record.id.to_string())
        .details(json!({ "name": name }));
    ctx.audit(event).await;
    Ok(IssuedToken {
        id: record.id,
        token: minted.plaintext,
    })
}

/// On a database with no operator token, mints one, writes it to `path` (mode 0600)
/// and returns it so the caller can print it once. `None` when tokens already exist.
pub async fn bootstrap(store: &Store, path: &Path) -> Result<Option<IssuedToken>, BootstrapError> {
    let minted = mint_token(OPERATOR_TOKEN_PREFIX);
    let Some(record) = store.create_first_operator_token("bootstrap", &minted.digest).await? else {
        return Ok(None);
    };
    write_secret_file(path, minted.plaintext.expose_secret())
        .map_err(|e| BootstrapError::File(path.display().to_string(), e))?;
    let event = AuditEvent::new(Actor::System, "operator_token.created", Outcome::Success)
        .target(record.id.to_string())
        .details(json!({ "name": "bootstrap" }));
    store.insert_audit_events(&[event]).await?;
    Ok(Some(IssuedToken {
        id: record.id,
        token: minted.plaintext,
    }))
}

/// Checks a bearer token; `None` if it is not a live operator token.
pub async fn verify(store: &Store, token: &str) -> Result<Option<OperatorTokenId>, ApiError> {
    if !token.starts_with(OPERATOR_TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    Ok(store.find_operator_token(&TokenDigest::of(token)).await?)
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    #[error("cannot write operator token file {0}: {1}")]
    File(String, #[source] std::io::Error),
}

pub(crate) fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    // The mode above only applies when the file is created; tighten an existing one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{contents}")?;
    file.sync_all()
}

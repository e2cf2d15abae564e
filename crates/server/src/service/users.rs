use cairn_core::audit::Outcome;
use cairn_core::ids::UserId;
use cairn_core::secret::Password;
use cairn_core::user::{DisplayName, Email, User};
use cairn_store::users::NewUser;
use serde::Deserialize;
use serde_json::json;

use super::{List, ListParams};
use crate::error::ApiError;
use crate::state::Ctx;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    pub display_name: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

pub async fn create(ctx: &Ctx, input: CreateUser) -> Result<User, ApiError> {
    let email = Email::parse(&input.email)?;
    let display_name = DisplayName::parse(&input.display_name)?;
    let password = input.password.as_deref().map(Password::parse).transpose()?;
    let password_hash = match password {
        // argon2 is deliberately CPU-heavy: keep it off the async workers.
        Some(pw) => Some(
            tokio::task::spawn_blocking(move || pw.hash())
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let user = ctx
        .store()
        .create_user(&NewUser {
            email,
            display_name,
            password_hash,
        })
        .await?;
    let event = ctx
        .event("user.created", Outcome::Success)
        .target(user.id.to_string())
        .details(json!({ "email": user.email, "has_password": user.has_password }));
    ctx.audit(event).await;
    Ok(user)
}

pub async fn get(ctx: &Ctx, id: &str) -> Result<User, ApiError> {
    let id = UserId::parse("user_id", id).map_err(|_| ApiError::from(cairn_store::StoreError::UserNotFound))?;
    Ok(ctx.store().get_user(id).await?)
}

pub async fn list(ctx: &Ctx, params: &ListParams) -> Result<List<User>, ApiError> {
    Ok(ctx.store().list_users(&params.page()).await?.into())
}

/// The user whose account is `email` with `password`, or `None`. The same argon2 work
/// is spent whether or not the address has an account, so neither the answer nor its
/// timing tells which e-mail addresses exist. Store errors are returned as such (a
/// database outage is not a wrong password).
pub async fn sign_in(
    store: &cairn_store::Store,
    email: &Email,
    password: String,
) -> Result<Option<UserId>, cairn_store::StoreError> {
    let (user, phc) = match store.password_hash_by_email(email).await? {
        Some((user, Some(phc))) => (Some(user), Some(phc)),
        _ => (None, None),
    };
    let ok = tokio::task::spawn_blocking(move || {
        let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
        Password::parse(&password).is_ok_and(|p| p.verify(&phc))
    })
    .await
    .unwrap_or(false);
    Ok(user.filter(|_| ok))
}

/// A valid argon2id hash of a random password, to spend the same time on unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = cairn_core::secret::mint_token("dummy");
        Password::parse(secrecy::ExposeSecret::expose_secret(&random.plaintext))
            .ok()
            .and_then(|p| p.hash().ok())
            .unwrap_or_default()
    })
}

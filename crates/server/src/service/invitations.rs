//! Invitations: how tenant admins add people. Users are global records shared by
//! tenants, so a tenant admin never names a user id or learns whether an address has an
//! account. The admin invites an e-mail address; the person joins by signing in with
//! their own account at the invitation link (`/t/{slug}/invitations/{token}`). The link
//! alone is not enough, so whoever sees it (the admin, a forwarded mail) cannot join
//! someone else. Operators keep the direct path (`POST …/members`).

use cairn_core::audit::{Actor, Outcome};
use cairn_core::ids::{InvitationId, UserId};
use cairn_core::secret::{mint_token, TokenDigest, INVITATION_TOKEN_PREFIX};
use cairn_core::tenant::Tenant;
use cairn_core::user::{Email, Member, Role};
use cairn_store::invitations::{Accepted, Invitation, NewInvitation};
use cairn_store::StoreError;
use chrono::{Duration, Utc};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::state::Ctx;

/// How long a link works unless the admin says otherwise: a week.
const DEFAULT_HOURS: u32 = 168;
/// At most thirty days.
const MAX_HOURS: u32 = 720;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    pub email: String,
    pub role: String,
    pub expires_in_hours: Option<u32>,
}

/// A new invitation with its link, shown once.
#[derive(Serialize)]
pub struct IssuedInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    pub accept_url: String,
    /// Whether the link was e-mailed to the address (an `[smtp]` relay is configured
    /// and accepted the message); otherwise the admin passes the link on.
    pub emailed: bool,
}

impl std::fmt::Debug for IssuedInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedInvitation")
            .field("invitation", &self.invitation)
            .field("accept_url", &"<hidden>")
            .finish()
    }
}

pub async fn create(ctx: &Ctx, slug: &str, input: CreateInvitation) -> Result<IssuedInvitation, ApiError> {
    let email = Email::parse(&input.email)?;
    let role = Role::parse(&input.role)?;
    let hours = input.expires_in_hours.unwrap_or(DEFAULT_HOURS);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ApiError::invalid_field(
            "expires_in_hours",
            format!("expires_in_hours: 1 to {MAX_HOURS}"),
        ));
    }
    // Making owners stays with the platform's operators.
    if role == Role::Owner && matches!(ctx.actor, Actor::User(_)) {
        return Err(ApiError::new(
            Code::Forbidden,
            "only operators may invite owners; invite an admin or a member",
        ));
    }
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let token = mint_token(INVITATION_TOKEN_PREFIX);
    let invited_by = actor_label(&ctx.actor);
    let invitation = ctx
        .store()
        .create_invitation(
            tenant.id,
            &NewInvitation {
                email: &email,
                role,
                digest: &token.digest,
                invited_by: &invited_by,
                expires_at: Utc::now() + Duration::hours(i64::from(hours)),
            },
        )
        .await?;
    let event = ctx
        .event("invitation.sent", Outcome::Success)
        .tenant(tenant.id)
        .target(invitation.id.to_string())
        .details(json!({ "email": invitation.email, "role": role, "expires_at": invitation.expires_at }));
    ctx.audit(event).await;
    let accept_url = format!(
        "{}/invitations/{}",
        crate::oauth::issuer(&ctx.state.config, tenant.slug.as_str()),
        token.plaintext.expose_secret()
    );
    let emailed = send(ctx, &tenant, &invitation, &accept_url).await;
    Ok(IssuedInvitation {
        invitation,
        accept_url,
        emailed,
    })
}

/// E-mails the link when a relay is configured. A failure is logged and audited; the
/// invitation stands (the admin still has the link).
async fn send(ctx: &Ctx, tenant: &Tenant, invitation: &Invitation, url: &str) -> bool {
    let Some(smtp) = &ctx.state.config.smtp else {
        return false;
    };
    let subject = format!("You are invited to join {}", tenant.name.as_str());
    let body = format!(
        "You are invited to join {} as {}.\n\nOpen this link and sign in with your account ({}) to accept:\n\n{url}\n\n\
         The link works once, until {}. If you did not expect it, ignore this message.\n",
        tenant.name.as_str(),
        invitation.role.as_str(),
        invitation.email.as_str(),
        invitation.expires_at.format("%Y-%m-%d %H:%M UTC"),
    );
    match crate::alerts::email::send(smtp, invitation.email.as_str(), subject, body).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, invitation = %invitation.id, "invitation e-mail not sent");
            let event = ctx
                .event("invitation.email_failed", Outcome::Failure)
                .tenant(tenant.id)
                .target(invitation.id.to_string())
                .details(json!({ "error": e }));
            ctx.audit(event).await;
            false
        }
    }
}

pub async fn list(ctx: &Ctx, slug: &str) -> Result<Vec<Invitation>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    expire(ctx, &tenant).await?;
    Ok(ctx.store().list_invitations(tenant.id).await?)
}

pub async fn revoke(ctx: &Ctx, slug: &str, id: &str) -> Result<(), ApiError> {
    let id = InvitationId::parse("id", id)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    if !ctx.store().revoke_invitation(tenant.id, id).await? {
        return Err(ApiError::new(Code::NotFound, "no pending invitation with this id"));
    }
    let event = ctx
        .event("invitation.revoked", Outcome::Success)
        .tenant(tenant.id)
        .target(id.to_string());
    ctx.audit(event).await;
    Ok(())
}

/// Marks the tenant's overdue invitations expired, auditing each once.
async fn expire(ctx: &Ctx, tenant: &Tenant) -> Result<(), StoreError> {
    for gone in ctx.store().expire_invitations(tenant.id, Utc::now()).await? {
        let event = Ctx {
            actor: Actor::System,
            ..ctx.clone()
        }
        .event("invitation.expired", Outcome::Success)
        .tenant(tenant.id)
        .target(gone.id.to_string())
        .details(json!({ "email": gone.email, "role": gone.role }));
        ctx.audit(event).await;
    }
    Ok(())
}

/// Why an acceptance did not go through.
#[derive(Debug)]
pub enum Refused {
    /// Unknown, used, revoked or expired link.
    Unusable,
    /// The e-mail and password are not those of the invited person's account (the
    /// invitation, still pending, offers this role).
    BadCredentials(Role),
    Unavailable(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e)
    }
}

/// The invitation behind `token`, if it can still be used (overdue ones are expired
/// and audited on the way).
pub async fn pending(ctx: &Ctx, tenant: &Tenant, token: &str) -> Result<Invitation, Refused> {
    expire(ctx, tenant).await?;
    match ctx
        .store()
        .invitation_by_token(tenant.id, &TokenDigest::of(token))
        .await?
    {
        Some(inv) if inv.status == "pending" => Ok(inv),
        _ => Err(Refused::Unusable),
    }
}

/// The invited person signs in with their account and joins. `ctx` carries the
/// request facts; its actor is the anonymous visitor until the sign-in succeeds.
pub async fn accept(ctx: &Ctx, tenant: &Tenant, token: &str, email: &str, password: String) -> Result<Member, Refused> {
    let invitation = pending(ctx, tenant, token).await?;
    let typed = Email::parse(email).ok();
    let user = match &typed {
        Some(e) => crate::service::users::sign_in(ctx.store(), e, password).await?,
        None => None,
    };
    // Another account than the invited address: refused like a wrong password.
    let Some(user) = user.filter(|_| typed.as_ref() == Some(&invitation.email)) else {
        let event = ctx
            .event("auth.failed", Outcome::Denied)
            .tenant(tenant.id)
            .target(invitation.id.to_string())
            .details(json!({ "credential": "password", "reason": "bad_credentials", "invitation": invitation.id }));
        ctx.audit(event).await;
        return Err(Refused::BadCredentials(invitation.role));
    };
    joined(ctx, tenant, &invitation, user).await
}

async fn joined(ctx: &Ctx, tenant: &Tenant, invitation: &Invitation, user: UserId) -> Result<Member, Refused> {
    let member = match ctx
        .store()
        .accept_invitation(tenant.id, invitation.id, user, Utc::now())
        .await?
    {
        Accepted::Joined(member) => member,
        Accepted::Unusable => return Err(Refused::Unusable),
    };
    let event = Ctx {
        actor: Actor::User(user),
        ..ctx.clone()
    }
    .event("invitation.accepted", Outcome::Success)
    .tenant(tenant.id)
    .target(invitation.id.to_string())
    .details(json!({ "role": member.role, "user_id": user }));
    ctx.audit(event).await;
    Ok(member)
}

fn actor_label(actor: &Actor) -> String {
    match actor {
        Actor::Operator(id) => format!("operator:{id}"),
        Actor::User(id) => format!("user:{id}"),
        Actor::Cli => "cli".into(),
        Actor::Anonymous => "anonymous".into(),
        Actor::System => "system".into(),
    }
}

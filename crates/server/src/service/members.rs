use cairn_core::audit::{Actor, Outcome};
use cairn_core::ids::UserId;
use cairn_core::user::{Member, Role};
use serde::Deserialize;
use serde_json::json;

use super::{List, ListParams};
use crate::error::{ApiError, Code};
use crate::state::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: String,
    pub role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveMember {
    pub user_id: String,
}

/// Operators (and the CLI) add an existing user directly. A tenant admin is refused
/// whatever the id names, so the answer says nothing about other tenants' users: they
/// invite by e-mail instead ([`super::invitations`]).
pub async fn add(ctx: &Ctx, slug: &str, input: AddMember) -> Result<Member, ApiError> {
    if matches!(ctx.actor, Actor::User(_)) {
        return Err(ApiError::new(
            Code::Forbidden,
            "tenant admins add people by invitation: POST /api/v1/tenants/{slug}/invitations {email, role}",
        ));
    }
    let user = UserId::parse("user_id", &input.user_id)?;
    let role = Role::parse(&input.role)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    let member = ctx.store().add_member(tenant.id, user, role).await?;
    let event = ctx
        .event("member.added", Outcome::Success)
        .tenant(tenant.id)
        .target(user.to_string())
        .details(json!({ "role": role }));
    ctx.audit(event).await;
    Ok(member)
}

pub async fn remove(ctx: &Ctx, slug: &str, user: &str) -> Result<(), ApiError> {
    let user = UserId::parse("user_id", user)?;
    let tenant = super::tenants::resolve(ctx, slug).await?;
    ctx.store().remove_member(tenant.id, user).await?;
    // Their OAuth grants go with the membership (access tokens die with the grant).
    for grant in ctx.store().revoke_user_grants(tenant.id, user).await? {
        ctx.state.oauth.forget_grant(tenant.id, grant);
    }
    let event = ctx
        .event("member.removed", Outcome::Success)
        .tenant(tenant.id)
        .target(user.to_string());
    ctx.audit(event).await;
    Ok(())
}

pub async fn list(ctx: &Ctx, slug: &str, params: &ListParams) -> Result<List<Member>, ApiError> {
    let tenant = super::tenants::resolve(ctx, slug).await?;
    Ok(ctx.store().list_members(tenant.id, &params.page()).await?.into())
}

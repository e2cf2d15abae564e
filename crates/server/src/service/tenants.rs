use cairn_core::audit::Outcome;
use cairn_core::ids::UserId;
use cairn_core::tenant::{NewTenant, Plan, Region, Slug, Tenant, TenantName, TenantPatch, TenantStatus};
use cairn_core::user::UserTenant;
use serde::Deserialize;
use serde_json::json;

use super::{List, ListParams};
use crate::error::{ApiError, Code};
use crate::state::Ctx;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub slug: String,
    pub name: String,
    pub plan: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<String>,
    pub plan: Option<String>,
    pub status: Option<String>,
    /// Serve the MCP conformance fixtures without authentication.
    pub conformance_fixtures: Option<bool>,
    /// Let OAuth clients register themselves (RFC 7591).
    pub oauth_dynamic_registration: Option<bool>,
    /// Days audit events are kept (90 to 36 500).
    pub audit_retention_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// Only tenants this user belongs to.
    pub user_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub async fn create(ctx: &Ctx, input: CreateTenant) -> Result<Tenant, ApiError> {
    let new = NewTenant {
        slug: Slug::parse(&input.slug)?,
        name: TenantName::parse(&input.name)?,
        plan: input.plan.as_deref().map(Plan::parse).transpose()?.unwrap_or_default(),
        region: input.region.as_deref().map(Region::parse).transpose()?,
    };
    let tenant = ctx.store().create_tenant(&new).await?;
    let event = ctx
        .event("tenant.created", Outcome::Success)
        .tenant(tenant.id)
        .target(tenant.id.to_string())
        .details(json!({ "slug": tenant.slug, "plan": tenant.plan }));
    ctx.audit(event).await;
    Ok(tenant)
}

/// Resolves a slug from a URL or the CLI. A malformed slug cannot name a tenant, so it
/// is reported as not found rather than as a validation error.
pub async fn resolve(ctx: &Ctx, slug: &str) -> Result<Tenant, ApiError> {
    let slug = Slug::parse(slug).map_err(|_| ApiError::new(Code::TenantNotFound, "tenant not found"))?;
    Ok(ctx.store().get_tenant_by_slug(&slug).await?)
}

pub async fn list(ctx: &Ctx, query: TenantQuery) -> Result<List<serde_json::Value>, ApiError> {
    let params = ListParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    match query.user_id {
        Some(user) => {
            let list = list_for_user(ctx, &user, &params).await?;
            Ok(List {
                data: to_values(&list.data)?,
                next_cursor: list.next_cursor,
            })
        }
        None => {
            let page = ctx.store().list_tenants(&params.page()).await?;
            Ok(List {
                data: to_values(&page.items)?,
                next_cursor: page.next,
            })
        }
    }
}

pub async fn list_for_user(ctx: &Ctx, user: &str, params: &ListParams) -> Result<List<UserTenant>, ApiError> {
    let user = UserId::parse("user_id", user)?;
    Ok(ctx.store().list_tenants_for_user(user, &params.page()).await?.into())
}

fn to_values<T: serde::Serialize>(items: &[T]) -> Result<Vec<serde_json::Value>, ApiError> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).map_err(ApiError::internal))
        .collect()
}

pub async fn update(ctx: &Ctx, slug: &str, input: UpdateTenant) -> Result<Tenant, ApiError> {
    let patch = TenantPatch {
        name: input.name.as_deref().map(TenantName::parse).transpose()?,
        plan: input.plan.as_deref().map(Plan::parse).transpose()?,
        status: input.status.as_deref().map(TenantStatus::parse).transpose()?,
        conformance_fixtures: input.conformance_fixtures,
        oauth_dynamic_registration: input.oauth_dynamic_registration,
        audit_retention_days: input
            .audit_retention_days
            .map(cairn_core::tenant::audit_retention_days)
            .transpose()?,
    };
    let before = resolve(ctx, slug).await?;
    let after = ctx.store().update_tenant(before.id, &patch).await?;
    ctx.state.tenants.evict(after.slug.as_str());
    let action = match (before.status, after.status) {
        (TenantStatus::Active, TenantStatus::Suspended) => "tenant.suspended",
        (TenantStatus::Suspended, TenantStatus::Active) => "tenant.reactivated",
        _ => "tenant.updated",
    };
    let event = ctx
        .event(action, Outcome::Success)
        .tenant(after.id)
        .target(after.id.to_string())
        .details(
            json!({ "name": input.name.is_some(), "plan": after.plan, "status": after.status,
            "audit_retention_days": after.audit_retention_days }),
        );
    ctx.audit(event).await;
    Ok(after)
}

pub async fn delete(ctx: &Ctx, slug: &str) -> Result<(), ApiError> {
    let tenant = resolve(ctx, slug).await?;
    ctx.store().delete_tenant(tenant.id).await?;
    ctx.state.tenants.evict(tenant.slug.as_str());
    let event = ctx
        .event("tenant.deleted", Outcome::Success)
        .tenant(tenant.id)
        .target(tenant.id.to_string())
        .details(json!({ "slug": tenant.slug }));
    ctx.audit(event).await;
    Ok(())
}

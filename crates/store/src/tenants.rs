//! The tenants aggregate.

use cairn_core::ids::{TenantId, UserId};
use cairn_core::tenant::{NewTenant, Plan, Region, Slug, Tenant, TenantName, TenantPatch, TenantStatus};
use cairn_core::user::{Role, UserTenant};

use crate::error::is_unique_violation;
use crate::types::{DbTime, DbUuid};
use crate::{Page, Paged, Store, StoreError};

const COLUMNS: &str =
    "id, slug, name, plan, region, status, conformance_fixtures, oauth_dynamic_registration, audit_retention_days, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: DbUuid,
    slug: String,
    name: String,
    plan: String,
    region: Option<String>,
    status: String,
    conformance_fixtures: bool,
    oauth_dynamic_registration: bool,
    audit_retention_days: i32,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> Result<Self, StoreError> {
        let corrupt = |e: cairn_core::ValidationError| StoreError::Corrupt(format!("tenants: {e}"));
        Ok(Tenant {
            id: TenantId::from_uuid(r.id.0),
            slug: Slug::parse(&r.slug).map_err(corrupt)?,
            name: TenantName::parse(&r.name).map_err(corrupt)?,
            plan: Plan::parse(&r.plan).map_err(corrupt)?,
            region: r.region.as_deref().map(Region::parse).transpose().map_err(corrupt)?,
            status: TenantStatus::parse(&r.status).map_err(corrupt)?,
            conformance_fixtures: r.conformance_fixtures,
            oauth_dynamic_registration: r.oauth_dynamic_registration,
            audit_retention_days: r.audit_retention_days,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UserTenantRow {
    #[sqlx(flatten)]
    tenant: TenantRow,
    role: String,
}

impl Store {
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, StoreError> {
        let now = DbTime::now();
        let sql = format!(
            "INSERT INTO tenants ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, true, 365, $8, $8) RETURNING {COLUMNS}"
        );
        let mut tx = self.platform_tx(true).await?;
        let row: TenantRow = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(TenantId::new().as_uuid()))
                .bind(new.slug.as_str())
                .bind(new.name.as_str())
                .bind(new.plan.as_str())
                .bind(new.region.as_ref().map(Region::as_str))
                .bind(TenantStatus::Active.as_str())
                .bind(false)
                .bind(now)
                .fetch_one(conn)
                .await
        })
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::SlugTaken
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        row.try_into()
    }

    /// Reads a tenant inside its own scope (row-level security lets a tenant see itself).
    pub async fn get_tenant_by_id(&self, tenant: TenantId) -> Result<Tenant, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<TenantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::TenantNotFound)?.try_into()
    }

    /// Resolves a slug. Platform scope: the tenant is not known until this returns.
    pub async fn get_tenant_by_slug(&self, slug: &Slug) -> Result<Tenant, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE slug = $1");
        let mut tx = self.platform_tx(false).await?;
        let row: Option<TenantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(slug.as_str()).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::TenantNotFound)?.try_into()
    }

    /// All tenants, ordered by slug; the cursor is the last slug of the previous page.
    pub async fn list_tenants(&self, page: &Page) -> Result<Paged<Tenant>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE ($1 IS NULL OR slug > $1) ORDER BY slug LIMIT $2");
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<TenantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(page.after.as_deref()).bind(page.fetch_limit()).fetch_all(conn).await
        })?;
        tx.commit().await?;
        let tenants = rows.into_iter().map(Tenant::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Paged::from_rows(tenants, page, |t| t.slug.to_string()))
    }

    /// The tenants `user` belongs to, with the user's role in each, ordered by slug.
    pub async fn list_tenants_for_user(&self, user: UserId, page: &Page) -> Result<Paged<UserTenant>, StoreError> {
        let sql = "SELECT t.id, t.slug, t.name, t.plan, t.region, t.status, t.conformance_fixtures, t.oauth_dynamic_registration, t.audit_retention_days, t.created_at, t.updated_at, m.role \
                   FROM memberships m JOIN tenants t ON t.id = m.tenant_id \
                   WHERE m.user_id = $1 AND ($2 IS NULL OR t.slug > $2) ORDER BY t.slug LIMIT $3";
        let mut tx = self.platform_tx(false).await?;
        let exists: Option<i32> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1").bind(DbUuid(user.as_uuid())).fetch_optional(conn).await
        })?;
        if exists.is_none() {
            return Err(StoreError::UserNotFound);
        }
        let rows: Vec<UserTenantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(sql)
                .bind(DbUuid(user.as_uuid()))
                .bind(page.after.as_deref())
                .bind(page.fetch_limit())
                .fetch_all(conn)
                .await
        })?;
        tx.commit().await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let role = Role::parse(&r.role).map_err(|e| StoreError::Corrupt(format!("memberships: {e}")))?;
                Ok(UserTenant {
                    tenant: r.tenant.try_into()?,
                    role,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Paged::from_rows(items, page, |t| t.tenant.slug.to_string()))
    }

    pub async fn update_tenant(&self, tenant: TenantId, patch: &TenantPatch) -> Result<Tenant, StoreError> {
        let sql = format!(
            "UPDATE tenants SET name = COALESCE($2, name), plan = COALESCE($3, plan), \
             status = COALESCE($4, status), conformance_fixtures = COALESCE($6, conformance_fixtures), \
             oauth_dynamic_registration = COALESCE($7, oauth_dynamic_registration), \
             audit_retention_days = COALESCE($8, audit_retention_days), \
             updated_at = $5 WHERE id = $1 RETURNING {COLUMNS}"
        );
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Option<TenantRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(patch.name.as_ref().map(TenantName::as_str))
                .bind(patch.plan.as_ref().map(Plan::as_str))
                .bind(patch.status.map(TenantStatus::as_str))
                .bind(DbTime::now())
                .bind(patch.conformance_fixtures)
                .bind(patch.oauth_dynamic_registration)
                .bind(patch.audit_retention_days)
                .fetch_optional(conn)
                .await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::TenantNotFound)?.try_into()
    }

    pub async fn suspend_tenant(&self, tenant: TenantId) -> Result<Tenant, StoreError> {
        let patch = TenantPatch {
            status: Some(TenantStatus::Suspended),
            ..TenantPatch::default()
        };
        self.update_tenant(tenant, &patch).await
    }

    /// Deletes a tenant and, by cascade, everything it owns (audit events excepted).
    pub async fn delete_tenant(&self, tenant: TenantId) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let done = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM tenants WHERE id = $1").bind(DbUuid(tenant.as_uuid())).execute(conn).await.map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        if done == 0 {
            return Err(StoreError::TenantNotFound);
        }
        Ok(())
    }
}

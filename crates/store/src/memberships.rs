//! Memberships: which users belong to a tenant, and in which role.

use cairn_core::ids::{TenantId, UserId};
use cairn_core::user::{DisplayName, Email, Member, Role};

use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::types::{DbTime, DbUuid};
use crate::{Page, Paged, Store, StoreError};

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    user_id: DbUuid,
    email: String,
    display_name: String,
    role: String,
    created_at: DbTime,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self, StoreError> {
        let corrupt = |e: cairn_core::ValidationError| StoreError::Corrupt(format!("memberships: {e}"));
        Ok(Member {
            user_id: UserId::from_uuid(r.user_id.0),
            email: Email::parse(&r.email).map_err(corrupt)?,
            display_name: DisplayName::parse(&r.display_name).map_err(corrupt)?,
            role: Role::parse(&r.role).map_err(corrupt)?,
            joined_at: r.created_at.0,
        })
    }
}

pub(crate) const SELECT_MEMBER: &str = "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at \
     FROM memberships m JOIN users u ON u.id = m.user_id";

impl Store {
    /// Adds `user` to `tenant`. A missing user is `UserNotFound`; an existing membership
    /// is `MembershipExists`.
    pub async fn add_member(&self, tenant: TenantId, user: UserId, role: Role) -> Result<Member, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let inserted = with_conn!(&mut tx.tx, conn => {
            sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(user.as_uuid()))
                .bind(role.as_str())
                .bind(DbTime::now())
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        });
        if let Err(e) = inserted {
            return Err(if is_unique_violation(&e) {
                StoreError::MembershipExists
            } else if is_foreign_key_violation(&e) {
                StoreError::UserNotFound
            } else {
                e.into()
            });
        }
        let sql = format!("{SELECT_MEMBER} WHERE m.tenant_id = $1 AND m.user_id = $2");
        let row: MemberRow = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(user.as_uuid())).fetch_one(conn).await
        })?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn remove_member(&self, tenant: TenantId, user: UserId) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let done = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(user.as_uuid()))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        if done == 0 {
            return Err(StoreError::MembershipNotFound);
        }
        Ok(())
    }

    /// Members of `tenant` ordered by user id; the cursor is the last user id.
    pub async fn list_members(&self, tenant: TenantId, page: &Page) -> Result<Paged<Member>, StoreError> {
        let after = page
            .after
            .as_deref()
            .map(|c| UserId::parse("cursor", c).map(|u| DbUuid(u.as_uuid())))
            .transpose()
            .map_err(|_| StoreError::InvalidCursor)?;
        let sql = format!(
            "{SELECT_MEMBER} WHERE m.tenant_id = $1 AND ($2 IS NULL OR m.user_id > $2) ORDER BY m.user_id LIMIT $3"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<MemberRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(after)
                .bind(page.fetch_limit())
                .fetch_all(conn)
                .await
        })?;
        tx.commit().await?;
        let members = rows.into_iter().map(Member::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Paged::from_rows(members, page, |m| m.user_id.to_string()))
    }

    /// The role of `user` in `tenant`, if a member.
    pub async fn member_role(&self, tenant: TenantId, user: UserId) -> Result<Option<Role>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let role: Option<String> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(user.as_uuid()))
                .fetch_optional(conn)
                .await
        })?;
        tx.commit().await?;
        role.map(|r| Role::parse(&r).map_err(|e| StoreError::Corrupt(format!("memberships: {e}"))))
            .transpose()
    }
}

//! Invitations to join a tenant. A tenant admin names an e-mail address; the person
//! joins by signing in with their own account. Tokens are stored as digests.

use cairn_core::ids::{InvitationId, TenantId, UserId};
use cairn_core::secret::TokenDigest;
use cairn_core::user::{Email, Member, Role};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::memberships::{MemberRow, SELECT_MEMBER};
use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: Email,
    pub role: Role,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// Who invited: `operator:otk_…`, `user:usr_…`, `cli`.
    pub invited_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<UserId>,
}

pub struct NewInvitation<'a> {
    pub email: &'a Email,
    pub role: Role,
    pub digest: &'a TokenDigest,
    pub invited_by: &'a str,
    pub expires_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: DbUuid,
    email: String,
    role: String,
    status: String,
    invited_by: String,
    created_at: DbTime,
    expires_at: DbTime,
    ended_at: Option<DbTime>,
    accepted_by: Option<DbUuid>,
}

impl TryFrom<Row> for Invitation {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let corrupt = |e: cairn_core::ValidationError| StoreError::Corrupt(format!("invitations: {e}"));
        Ok(Invitation {
            id: InvitationId::from_uuid(r.id.0),
            email: Email::parse(&r.email).map_err(corrupt)?,
            role: Role::parse(&r.role).map_err(corrupt)?,
            status: r.status,
            invited_by: r.invited_by,
            created_at: r.created_at.0,
            expires_at: r.expires_at.0,
            ended_at: r.ended_at.map(|t| t.0),
            accepted_by: r.accepted_by.map(|u| UserId::from_uuid(u.0)),
        })
    }
}

const COLUMNS: &str = "id, email, role, status, invited_by, created_at, expires_at, ended_at, accepted_by";

/// What became of an acceptance.
#[derive(Debug)]
pub enum Accepted {
    /// The person joined (or already was a member: the invitation is used up either way).
    Joined(Member),
    /// No pending, unexpired invitation has this token.
    Unusable,
}

impl Store {
    /// Records an invitation; a pending invitation to the same address is revoked in the
    /// same transaction (the newest link is the only one that works).
    pub async fn create_invitation(&self, tenant: TenantId, new: &NewInvitation<'_>) -> Result<Invitation, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let now = DbTime::now();
        with_conn!(&mut tx.tx, conn => {
            sqlx::query("UPDATE invitations SET status = 'revoked', ended_at = $3 \
                 WHERE tenant_id = $1 AND email = $2 AND status = 'pending'")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(new.email.as_str())
                .bind(now)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        let id = InvitationId::new();
        let sql = format!(
            "INSERT INTO invitations (tenant_id, {COLUMNS}, token_digest) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, NULL, NULL, $8) RETURNING {COLUMNS}"
        );
        let row: Row = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(id.as_uuid()))
                .bind(new.email.as_str())
                .bind(new.role.as_str())
                .bind(new.invited_by)
                .bind(now)
                .bind(DbTime(new.expires_at))
                .bind(new.digest.as_str())
                .fetch_one(conn)
                .await
        })?;
        tx.commit().await?;
        row.try_into()
    }

    /// The tenant's invitations, newest first (at most 500).
    pub async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let sql =
            format!("SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT 500");
        let rows: Vec<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).fetch_all(conn).await
        })?;
        tx.commit().await?;
        rows.into_iter().map(Invitation::try_from).collect()
    }

    /// The invitation behind a token, whatever its status.
    pub async fn invitation_by_token(
        &self,
        tenant: TenantId,
        digest: &TokenDigest,
    ) -> Result<Option<Invitation>, StoreError> {
        let mut tx = self.tenant_tx(tenant, false).await?;
        let sql = format!("SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 AND token_digest = $2");
        let row: Option<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(digest.as_str()).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.map(Invitation::try_from).transpose()
    }

    /// Revokes a pending invitation; `false` when there is none with this id.
    pub async fn revoke_invitation(&self, tenant: TenantId, id: InvitationId) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let done = with_conn!(&mut tx.tx, conn => {
            sqlx::query("UPDATE invitations SET status = 'revoked', ended_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(id.as_uuid()))
                .bind(DbTime::now())
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(done > 0)
    }

    /// Marks pending invitations past their expiry as expired and returns them, so that
    /// each expiry is reported exactly once (the UPDATE claims each row once).
    pub async fn expire_invitations(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let sql = format!(
            "UPDATE invitations SET status = 'expired', ended_at = $2 \
             WHERE tenant_id = $1 AND status = 'pending' AND expires_at <= $2 RETURNING {COLUMNS}"
        );
        let rows: Vec<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbTime(now)).fetch_all(conn).await
        })?;
        tx.commit().await?;
        rows.into_iter().map(Invitation::try_from).collect()
    }

    /// Uses the invitation `id` for `user`: the membership and the invitation's new
    /// status are written in one transaction, and only while it is still pending and
    /// unexpired (two acceptances of one link cannot both succeed).
    pub async fn accept_invitation(
        &self,
        tenant: TenantId,
        id: InvitationId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Accepted, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let role: Option<String> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_scalar("UPDATE invitations SET status = 'accepted', ended_at = $3, accepted_by = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND status = 'pending' AND expires_at > $3 RETURNING role")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(id.as_uuid()))
                .bind(DbTime(now))
                .bind(DbUuid(user.as_uuid()))
                .fetch_optional(conn)
                .await
        })?;
        let Some(role) = role else {
            return Ok(Accepted::Unusable);
        };
        // Already a member: the invitation is used up, the existing role stays.
        with_conn!(&mut tx.tx, conn => {
            sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, user_id) DO NOTHING")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(DbUuid(user.as_uuid()))
                .bind(&role)
                .bind(DbTime(now))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        let sql = format!("{SELECT_MEMBER} WHERE m.tenant_id = $1 AND m.user_id = $2");
        let row: MemberRow = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(DbUuid(user.as_uuid())).fetch_one(conn).await
        })?;
        tx.commit().await?;
        Ok(Accepted::Joined(row.try_into()?))
    }
}

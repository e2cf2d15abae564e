//! OAuth clients registered with a tenant's authorization server (by an admin or through
//! dynamic registration). The client secret is stored as a SHA-256 digest.

use cairn_core::api_key::Scope;
use cairn_core::ids::{TenantId, UserId};
use cairn_core::oauth::{ApplicationType, ValidClient};
use cairn_core::secret::TokenDigest;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use crate::error::is_unique_violation;
use crate::types::{DbTime, DbUuid};
use crate::{Store, StoreError};

/// How a client came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Admin,
    Dynamic,
}

impl Registration {
    fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Dynamic => "dynamic",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OAuthApp {
    pub client_id: String,
    #[serde(flatten)]
    pub client: ValidClient,
    pub registration: Registration,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub secret_hash: Option<TokenDigest>,
}

#[derive(sqlx::FromRow)]
struct Row {
    client_id: String,
    client_name: Option<String>,
    client_uri: Option<String>,
    redirect_uris: Json<Vec<String>>,
    grant_types: Json<Vec<String>>,
    scopes: Json<Vec<Scope>>,
    application_type: String,
    token_endpoint_auth_method: String,
    secret_hash: Option<String>,
    registration: String,
    created_by: Option<DbUuid>,
    created_at: DbTime,
}

impl TryFrom<Row> for OAuthApp {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let application_type = match r.application_type.as_str() {
            "web" => ApplicationType::Web,
            "native" => ApplicationType::Native,
            other => return Err(StoreError::Corrupt(format!("oauth_apps: application_type {other}"))),
        };
        let registration = match r.registration.as_str() {
            "admin" => Registration::Admin,
            _ => Registration::Dynamic,
        };
        Ok(Self {
            client_id: r.client_id,
            client: ValidClient {
                redirect_uris: r.redirect_uris.0,
                application_type,
                token_endpoint_auth_method: r.token_endpoint_auth_method,
                grant_types: r.grant_types.0,
                client_name: r.client_name,
                client_uri: r.client_uri,
                scopes: r.scopes.0,
            },
            registration,
            created_by: r.created_by.map(|u| UserId::from_uuid(u.0)),
            created_at: r.created_at.0,
            secret_hash: r.secret_hash.map(TokenDigest::from_stored),
        })
    }
}

const COLUMNS: &str = "client_id, client_name, client_uri, redirect_uris, grant_types, scopes, application_type, \
                       token_endpoint_auth_method, secret_hash, registration, created_by, created_at";

/// A client to store.
pub struct NewOAuthApp<'a> {
    pub client_id: &'a str,
    pub client: &'a ValidClient,
    pub secret_hash: Option<&'a TokenDigest>,
    pub registration: Registration,
    pub created_by: Option<UserId>,
}

impl Store {
    pub async fn create_oauth_app(&self, tenant: TenantId, new: &NewOAuthApp<'_>) -> Result<OAuthApp, StoreError> {
        let sql = format!(
            "INSERT INTO oauth_apps (tenant_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             RETURNING {COLUMNS}"
        );
        let c = new.client;
        let mut tx = self.tenant_tx(tenant, true).await?;
        let row: Row = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(new.client_id)
                .bind(c.client_name.as_deref())
                .bind(c.client_uri.as_deref())
                .bind(Json(&c.redirect_uris))
                .bind(Json(&c.grant_types))
                .bind(Json(&c.scopes))
                .bind(c.application_type.as_str())
                .bind(c.token_endpoint_auth_method.as_str())
                .bind(new.secret_hash.map(TokenDigest::as_str))
                .bind(new.registration.as_str())
                .bind(new.created_by.map(|u| DbUuid(u.as_uuid())))
                .bind(DbTime::now())
                .fetch_one(conn)
                .await
        })
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("an OAuth client with this id already exists".into())
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn get_oauth_app(&self, tenant: TenantId, client_id: &str) -> Result<Option<OAuthApp>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM oauth_apps WHERE tenant_id = $1 AND client_id = $2");
        let mut tx = self.tenant_tx(tenant, false).await?;
        let row: Option<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(tenant.as_uuid())).bind(client_id).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.map(TryInto::try_into).transpose()
    }

    /// The tenant's clients, newest first; only those `created_by` a user if given.
    pub async fn list_oauth_apps(
        &self,
        tenant: TenantId,
        created_by: Option<UserId>,
    ) -> Result<Vec<OAuthApp>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM oauth_apps WHERE tenant_id = $1 AND ($2 IS NULL OR created_by = $2) \
             ORDER BY created_at DESC, client_id LIMIT 1000"
        );
        let mut tx = self.tenant_tx(tenant, false).await?;
        let rows: Vec<Row> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(tenant.as_uuid()))
                .bind(created_by.map(|u| DbUuid(u.as_uuid())))
                .fetch_all(conn)
                .await
        })?;
        tx.commit().await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Deletes a client and revokes every grant it holds; `false` if there was none.
    pub async fn delete_oauth_app(&self, tenant: TenantId, client_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant, true).await?;
        let n = with_conn!(&mut tx.tx, conn => {
            sqlx::query("DELETE FROM oauth_apps WHERE tenant_id = $1 AND client_id = $2")
                .bind(DbUuid(tenant.as_uuid()))
                .bind(client_id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n > 0 {
            with_conn!(&mut tx.tx, conn => {
                sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = $3, revoked_reason = 'client_deleted' \
                     WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL",
                )
                .bind(DbUuid(tenant.as_uuid()))
                .bind(client_id)
                .bind(DbTime::now())
                .execute(&mut *conn)
                .await
                .map(|_| ())
            })?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}

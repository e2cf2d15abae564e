//! The users aggregate. Users are platform-level: one person, several tenants.

use cairn_core::ids::UserId;
use cairn_core::user::{DisplayName, Email, User};

use crate::error::is_unique_violation;
use crate::types::{DbTime, DbUuid};
use crate::{Page, Paged, Store, StoreError};

const COLUMNS: &str = "id, email, display_name, password_hash IS NOT NULL AS has_password, created_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: DbUuid,
    email: String,
    display_name: String,
    has_password: bool,
    created_at: DbTime,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        let corrupt = |e: cairn_core::ValidationError| StoreError::Corrupt(format!("users: {e}"));
        Ok(User {
            id: UserId::from_uuid(r.id.0),
            email: Email::parse(&r.email).map_err(corrupt)?,
            display_name: DisplayName::parse(&r.display_name).map_err(corrupt)?,
            has_password: r.has_password,
            created_at: r.created_at.0,
        })
    }
}

/// Fields to create a user with. `password_hash` is an argon2id PHC string.
#[derive(Clone)]
pub struct NewUser {
    pub email: Email,
    pub display_name: DisplayName,
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Store {
    pub async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        let now = DbTime::now();
        let sql = format!(
            "INSERT INTO users (id, email, display_name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
        );
        let mut tx = self.platform_tx(true).await?;
        let row: UserRow = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql)
                .bind(DbUuid(UserId::new().as_uuid()))
                .bind(new.email.as_str())
                .bind(new.display_name.as_str())
                .bind(new.password_hash.as_deref())
                .bind(now)
                .fetch_one(conn)
                .await
        })
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::EmailTaken
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        row.try_into()
    }

    pub async fn get_user(&self, user: UserId) -> Result<User, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let mut tx = self.platform_tx(false).await?;
        let row: Option<UserRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(DbUuid(user.as_uuid())).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::UserNotFound)?.try_into()
    }

    pub async fn get_user_by_email(&self, email: &Email) -> Result<User, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
        let mut tx = self.platform_tx(false).await?;
        let row: Option<UserRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(email.as_str()).fetch_optional(conn).await
        })?;
        tx.commit().await?;
        row.ok_or(StoreError::UserNotFound)?.try_into()
    }

    /// The id and password hash (argon2id PHC) of the user with `email`, for a login
    /// form. The hash never leaves the server.
    pub async fn password_hash_by_email(&self, email: &Email) -> Result<Option<(UserId, Option<String>)>, StoreError> {
        let mut tx = self.platform_tx(false).await?;
        let row: Option<(DbUuid, Option<String>)> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
                .bind(email.as_str())
                .fetch_optional(conn)
                .await
        })?;
        tx.commit().await?;
        Ok(row.map(|(id, hash)| (UserId::from_uuid(id.0), hash)))
    }

    /// All users ordered by e-mail; the cursor is the last e-mail of the previous page.
    pub async fn list_users(&self, page: &Page) -> Result<Paged<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE ($1 IS NULL OR email > $1) ORDER BY email LIMIT $2");
        let mut tx = self.platform_tx(false).await?;
        let rows: Vec<UserRow> = with_conn!(&mut tx.tx, conn => {
            sqlx::query_as(&sql).bind(page.after.as_deref()).bind(page.fetch_limit()).fetch_all(conn).await
        })?;
        tx.commit().await?;
        let users = rows.into_iter().map(User::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Paged::from_rows(users, page, |u| u.email.to_string()))
    }
}

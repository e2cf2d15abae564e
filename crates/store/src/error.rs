use std::time::Duration;

/// Errors of the storage layer. Constraint violations that callers act on get their own
/// variant; everything else is `Database`, whose detail is for the log, not the client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant slug is already taken")]
    SlugTaken,
    #[error("e-mail address is already registered")]
    EmailTaken,
    #[error("user is already a member of this tenant")]
    MembershipExists,
    #[error("tenant not found")]
    TenantNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error("membership not found")]
    MembershipNotFound,
    #[error("api key not found")]
    ApiKeyNotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too many concurrent database operations for this tenant (waited {0:?})")]
    TenantBusy(Duration),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid pagination cursor")]
    InvalidCursor,
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            other => Self::Database(other),
        }
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

//! Connecting, migrating and health-checking the database.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::ids::TenantId;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Executor, PgPool, SqlitePool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::StoreError;

pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The role every application statement runs as on PostgreSQL. Created by the first
/// migration; it has no BYPASSRLS, so row-level security always applies to it.
pub const APP_ROLE: &str = "cairn_app";
const SET_APP_ROLE: &str = "SET ROLE cairn_app";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from the URL scheme.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Config(
                "database URL must start with sqlite:, postgres:// or postgresql://".into(),
            ))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What the store needs to know; the server maps its config onto this.
#[derive(Clone)]
pub struct StoreConfig {
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Most database operations one tenant may have in flight at once.
    pub tenant_max_concurrency: usize,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("tenant_max_concurrency", &self.tenant_max_concurrency)
            .finish_non_exhaustive()
    }
}

/// Replaces the password of a database URL with `<hidden>` for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:<hidden>{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The storage handle. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    pub(crate) limiter: Arc<TenantLimiter>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Applies pending migrations, then opens the pool.
    pub async fn open(cfg: &StoreConfig) -> Result<Self, StoreError> {
        migrate(cfg).await?;
        Self::connect(cfg).await
    }

    /// Opens the pool without migrating. Connections are created lazily, so this works
    /// (and the server can start and report "not ready") while the database is down.
    pub async fn connect(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let db = match Backend::from_url(&cfg.url)? {
            Backend::Sqlite => {
                let opts = sqlite_options(&cfg.url)?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(cfg.max_connections)
                    .min_connections(cfg.min_connections)
                    .acquire_timeout(cfg.acquire_timeout)
                    .idle_timeout(cfg.idle_timeout)
                    .max_lifetime(cfg.max_lifetime)
                    .connect_with(opts)
                    .await?;
                Db::Sqlite(pool)
            }
            Backend::Postgres => {
                let opts = postgres_options(&cfg.url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(cfg.max_connections)
                    .min_connections(cfg.min_connections)
                    .acquire_timeout(cfg.acquire_timeout)
                    .idle_timeout(cfg.idle_timeout)
                    .max_lifetime(cfg.max_lifetime)
                    // A connection that died while idle (database restart) is noticed
                    // here and replaced instead of failing the caller's query.
                    .test_before_acquire(true)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(SET_APP_ROLE).await?;
                            Ok(())
                        })
                    })
                    .connect_lazy_with(opts);
                Db::Postgres(pool)
            }
        };
        Ok(Self {
            db,
            limiter: Arc::new(TenantLimiter::new(cfg.tenant_max_concurrency, cfg.acquire_timeout)),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(p) => p.acquire().await?.ping().await?,
            Db::Postgres(p) => p.acquire().await?.ping().await?,
        }
        Ok(())
    }

    /// Pool figures for health and metrics: (open connections, idle connections).
    pub fn pool_usage(&self) -> (u32, usize) {
        match &self.db {
            Db::Sqlite(p) => (p.size(), p.num_idle()),
            Db::Postgres(p) => (p.size(), p.num_idle()),
        }
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Applies pending migrations on a dedicated connection as the connecting user (which
/// owns the schema), not as the application role.
pub async fn migrate(cfg: &StoreConfig) -> Result<Vec<i64>, StoreError> {
    let applied_before: Vec<i64>;
    match Backend::from_url(&cfg.url)? {
        Backend::Sqlite => {
            let mut conn = sqlite_options(&cfg.url)?.connect().await?;
            ensure_wal(&mut conn).await?;
            applied_before = applied_versions_sqlite(&mut conn).await;
            // Every CLI command opens the store. With nothing pending, running the migrator
            // would still issue `CREATE TABLE IF NOT EXISTS` — a write that fails at once
            // with "database is locked" when a running server commits in between (a read
            // snapshot cannot be upgraded), so a schema that is current is left alone.
            if SQLITE_MIGRATOR.iter().any(|m| !applied_before.contains(&m.version)) {
                SQLITE_MIGRATOR.run(&mut conn).await?;
            }
            conn.close().await?;
        }
        Backend::Postgres => {
            let mut conn = postgres_options(&cfg.url)?.connect().await?;
            applied_before = applied_versions_postgres(&mut conn).await;
            check_pgvector(&mut conn).await?;
            POSTGRES_MIGRATOR.run(&mut conn).await?;
            conn.close().await?;
        }
    }
    let migrator = match Backend::from_url(&cfg.url)? {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    };
    Ok(migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied_before.contains(v))
        .collect())
}

/// The oldest pgvector with `hnsw.iterative_scan` (tenant-filtered vector search).
const PGVECTOR_MIN: (u32, u32) = (0, 8);

/// Refuses, with a message an operator can act on, a server without pgvector >= 0.8
/// (installed, or available to `CREATE EXTENSION`), instead of a raw migration error.
async fn check_pgvector(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let versions: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT installed_version::text, default_version::text FROM pg_available_extensions WHERE name = 'vector'",
    )
    .fetch_optional(conn)
    .await?;
    let version = versions.and_then(|(installed, default)| installed.or(default));
    let parsed = version.as_deref().and_then(|v| {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    });
    match parsed {
        Some(v) if v >= PGVECTOR_MIN => Ok(()),
        _ => Err(StoreError::Config(format!(
            "PostgreSQL needs the pgvector extension, version 0.8 or later (found: {}); install pgvector >= 0.8 \
             for this server, see docs/storage.md",
            version.as_deref().unwrap_or("not installed")
        ))),
    }
}

async fn applied_versions_sqlite(conn: &mut sqlx::SqliteConnection) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(conn)
        .await
        .unwrap_or_default()
}

async fn applied_versions_postgres(conn: &mut sqlx::PgConnection) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(conn)
        .await
        .unwrap_or_default()
}

/// WAL is a property of the database file, set once. Setting it on every connection, as
/// `journal_mode` in the connect options would, needs an exclusive lock that the busy
/// timeout does not wait for: a CLI command opened beside a busy server then failed with
/// "database is locked". So it is read first and only ever set on a database without it.
async fn ensure_wal(conn: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await?;
    if !mode.eq_ignore_ascii_case("wal") {
        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
    }
    Ok(())
}

/// How much of a SQLite database file each connection maps into memory, and its page
/// cache (KiB). Both fill up with whatever a connection reads: mapped pages count in the
/// process's resident memory (file-backed, reclaimable), cached ones are heap. A scan of a
/// large table — an audit export — would turn both bounds, times the connections it
/// happens to use, into resident size; such scans shrink them for their own statements
/// (`audit_query`).
pub(crate) const SQLITE_MMAP_BYTES: i64 = 1 << 30;
pub(crate) const SQLITE_CACHE_KIB: i64 = 64 * 1024;

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let opts =
        SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?;
    let opts = opts
        .create_if_missing(true)
        // NORMAL in WAL mode: durable across application crashes, one fsync per checkpoint.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // SQLite's default page cache is 2 MB: ingestion and search of a knowledge base of a
        // few thousand chunks then re-read B-tree and FTS pages through pread all the time.
        // Memory-mapped reads plus a 64 MB cache per connection keep the hot pages in memory.
        .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
        .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
        .pragma("temp_store", "memory");
    if let Some(parent) = opts.get_filename().parent() {
        create_dir(parent)?;
    }
    Ok(opts)
}

fn create_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Config(format!("cannot create database folder {}: {e}", dir.display())))
}

fn postgres_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let opts =
        PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
    Ok(opts.application_name("cairn"))
}

/// One semaphore per tenant bounds how many database operations a tenant can have in
/// flight, so one busy tenant cannot take every pooled connection.
pub(crate) struct TenantLimiter {
    permits: usize,
    wait: Duration,
    semaphores: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

impl TenantLimiter {
    fn new(permits: usize, wait: Duration) -> Self {
        Self {
            permits: permits.max(1),
            wait,
            semaphores: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn acquire(&self, tenant: TenantId) -> Result<OwnedSemaphorePermit, StoreError> {
        let sem = {
            let mut map = self
                .semaphores
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(tenant)
                .or_insert_with(|| Arc::new(Semaphore::new(self.permits)))
                .clone()
        };
        match tokio::time::timeout(self.wait, sem.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout if it ever is.
            Ok(Err(_)) | Err(_) => Err(StoreError::TenantBusy(self.wait)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_migration_trees_have_the_same_versions() {
        let sqlite: Vec<_> = SQLITE_MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.clone()))
            .collect();
        let postgres: Vec<_> = POSTGRES_MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.clone()))
            .collect();
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
    }

    #[test]
    fn url_password_is_redacted() {
        assert_eq!(
            redact_url("postgres://cairn:s3cret@db:5432/cairn"),
            "postgres://cairn:<hidden>@db:5432/cairn"
        );
        assert_eq!(redact_url("postgres://cairn@db/cairn"), "postgres://cairn@db/cairn");
        assert_eq!(
            redact_url("sqlite://./cairn-data/cairn.db"),
            "sqlite://./cairn-data/cairn.db"
        );
    }

    #[test]
    fn backend_from_scheme() {
        assert_eq!(Backend::from_url("sqlite::memory:").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgresql://x/y").ok(), Some(Backend::Postgres));
        assert!(Backend::from_url("mysql://x/y").is_err());
    }
}

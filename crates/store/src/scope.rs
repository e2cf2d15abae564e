//! Transaction scopes. A tenant scope tells PostgreSQL's row-level security which tenant
//! the transaction may see; the platform scope is for operator actions across tenants.

use cairn_core::ids::TenantId;
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::sync::OwnedSemaphorePermit;

use crate::pool::Db;
use crate::{Store, StoreError};

pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    async fn begin(db: &Db, write: bool) -> Result<Self, StoreError> {
        Ok(match db {
            // IMMEDIATE takes the write lock up front, so a writer waits (busy_timeout)
            // instead of failing when it upgrades a read lock mid-transaction.
            Db::Sqlite(p) if write => Self::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Sqlite(p) => Self::Sqlite(p.begin().await?),
            Db::Postgres(p) => Self::Postgres(p.begin().await?),
        })
    }

    async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A transaction confined to one tenant. Holds one of the tenant's concurrency permits.
pub struct TenantTx {
    pub(crate) tx: Tx,
    tenant: TenantId,
    _permit: OwnedSemaphorePermit,
}

impl TenantTx {
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await
    }

    /// The raw PostgreSQL connection of this scope, for diagnostics and the isolation
    /// tests: whatever SQL runs here is still confined by row-level security.
    pub fn postgres_connection(&mut self) -> Option<&mut sqlx::PgConnection> {
        match &mut self.tx {
            Tx::Postgres(tx) => Some(&mut **tx),
            Tx::Sqlite(_) => None,
        }
    }
}

/// A transaction in the operator (platform) scope.
pub struct PlatformTx {
    pub(crate) tx: Tx,
}

impl PlatformTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await
    }
}

impl Store {
    /// Begins a transaction scoped to `tenant`. Waits for one of the tenant's
    /// concurrency permits first (up to the acquire timeout).
    pub async fn tenant_tx(&self, tenant: TenantId, write: bool) -> Result<TenantTx, StoreError> {
        let permit = self.limiter.acquire(tenant).await?;
        let mut tx = Tx::begin(&self.db, write).await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                .bind(tenant.as_uuid().to_string())
                .execute(&mut **t)
                .await?;
        }
        Ok(TenantTx {
            tx,
            tenant,
            _permit: permit,
        })
    }

    /// Begins a transaction in the platform scope.
    pub async fn platform_tx(&self, write: bool) -> Result<PlatformTx, StoreError> {
        let mut tx = Tx::begin(&self.db, write).await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SELECT set_config('app.platform', 'on', true)")
                .execute(&mut **t)
                .await?;
        }
        Ok(PlatformTx { tx })
    }
}

/// A tenant's transaction or the platform's, for code that serves both (a tenant's audit
/// chain or the platform's; a tenant's alert rules or the platform's).
pub(crate) enum EitherTx {
    Tenant(TenantTx),
    Platform(PlatformTx),
}

impl EitherTx {
    /// The tenant's scope, or the platform's for `None`.
    pub(crate) async fn begin(store: &Store, tenant: Option<TenantId>, write: bool) -> Result<Self, StoreError> {
        Ok(match tenant {
            Some(t) => Self::Tenant(store.tenant_tx(t, write).await?),
            None => Self::Platform(store.platform_tx(write).await?),
        })
    }

    pub(crate) fn tx(&mut self) -> &mut Tx {
        match self {
            Self::Tenant(t) => &mut t.tx,
            Self::Platform(p) => &mut p.tx,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Tenant(t) => t.commit().await,
            Self::Platform(p) => p.commit().await,
        }
    }
}

//! The real server's state on SQLite (a temporary directory) or on PostgreSQL (a
//! database created for this run and dropped after it), with one tenant.

use std::net::SocketAddr;

use cairn_core::audit::Actor;
use cairn_core::tenant::Tenant;
use cairn_server::config::Config;
use cairn_server::extract::RequestMeta;
use cairn_server::service::tenants::{self, CreateTenant};
use cairn_server::state::Ctx;
use cairn_server::{AppState, Server};
use sqlx::Connection as _;

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The administrative URL (any database); the bench creates its own next to it.
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A booted server (not listening: the bench calls the library directly) and a tenant.
pub struct Bench {
    pub state: AppState,
    pub ctx: Ctx,
    pub tenant: Tenant,
    server: Server,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Bench {
    pub async fn start(backend: &Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("cairn.db").display()), None),
            Backend::Postgres(admin) => {
                let name = format!("cairn_bench_kb_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                (with_database(admin, &name), Some((admin.clone(), name)))
            }
        };
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: Some(url),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let server = Server::build(config).await.unwrap();
        let state = server.state().clone();
        let ctx = Ctx {
            state: state.clone(),
            actor: Actor::Cli,
            meta: RequestMeta::default(),
        };
        let input = CreateTenant {
            slug: "bench".into(),
            name: "Bench".into(),
            plan: None,
            region: None,
        };
        let tenant = tenants::create(&ctx, input).await.unwrap();
        Self {
            state,
            ctx,
            tenant,
            server,
            _dir: dir,
            pg,
        }
    }

    /// Flushes the audit and usage writers, closes the pool, drops the database.
    pub async fn stop(self) {
        let Self {
            state, ctx, server, pg, ..
        } = self;
        state.audit.flush().await;
        state.usage.flush().await;
        let store = state.store.clone();
        drop((ctx, state, server));
        store.close().await;
        if let Some((admin, name)) = pg {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                if let Err(e) = dropped {
                    eprintln!("could not drop the bench database {name}: {e}");
                }
            }
        }
    }
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

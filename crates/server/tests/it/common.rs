//! Test harness: unique databases, a booted server, an HTTP client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_server::config::Config;
use cairn_server::{AppState, Server};
use cairn_store::Backend;
use figment::providers::Env;
use figment::Figment;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;

#[derive(Debug, Deserialize)]
struct TestEnv {
    backend: Option<String>,
    pg_url: Option<String>,
    redis_url: Option<String>,
    /// Folder of the PostgreSQL client programs matching the server (pg_dump).
    pg_bin: Option<String>,
    /// Base URL of `scripts/embed-server` (an OpenAI-compatible embeddings server).
    embed_url: Option<String>,
    /// A python3 with the official `standardwebhooks` library (scripts/test makes one).
    python: Option<String>,
}

fn test_env() -> TestEnv {
    Figment::from(Env::prefixed("CAIRN_TEST_"))
        .extract()
        .unwrap_or_else(|e| panic!("bad CAIRN_TEST_* environment: {e}"))
}

/// The backend this run tests. Defaults to SQLite so `cargo nextest run` works alone;
/// `scripts/test` always sets it explicitly.
pub fn backend() -> Backend {
    match test_env().backend.as_deref() {
        None | Some("sqlite") => Backend::Sqlite,
        Some("postgres") => Backend::Postgres,
        Some(other) => panic!("CAIRN_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
    }
}

/// The loopback embeddings server (`CAIRN_TEST_EMBED_URL`). Never skipped: a run
/// without it is a failed run.
/// A python3 that can import `standardwebhooks`; fails loudly when absent.
pub fn python() -> String {
    test_env().python.unwrap_or_else(|| {
        panic!(
            "CAIRN_TEST_PYTHON is not set: point it at a python3 with `pip install standardwebhooks==1.1.0` \
             (scripts/test makes one under $CAIRN_TOOLS_DIR/sw-venv)"
        )
    })
}

pub fn embed_url() -> String {
    test_env().embed_url.unwrap_or_else(|| {
        panic!(
            "CAIRN_TEST_EMBED_URL is not set: start the test embeddings server with \
             `export CAIRN_TEST_EMBED_URL=$(scripts/embed-server start)` (scripts/test does this)"
        )
    })
}

/// The Redis the shared-limit tests use (`CAIRN_TEST_REDIS_URL`, default the machine's).
pub fn redis_url() -> String {
    test_env()
        .redis_url
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned())
}

/// Everything stored in the test database, as bytes: the SQLite files (database and
/// WAL) or a `pg_dump` of the PostgreSQL database. For "no plaintext at rest" checks.
pub fn raw_dump(db: &TestDb) -> Vec<u8> {
    match backend() {
        Backend::Sqlite => {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(db.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.to_string_lossy().contains("cairn.db") {
                    out.extend(std::fs::read(&path).unwrap());
                }
            }
            assert!(!out.is_empty(), "no SQLite files found");
            out
        }
        Backend::Postgres => {
            let bin = test_env()
                .pg_bin
                .map_or_else(|| "pg_dump".to_owned(), |d| format!("{d}/pg_dump"));
            let out = std::process::Command::new(&bin)
                .args(["--data-only", "--no-owner", &db.url])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {bin} (set CAIRN_TEST_PG_BIN): {e}"));
            assert!(
                out.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("cairn-test-{}", uuid::Uuid::new_v4().simple())
}

/// A database created for one test and dropped after it.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn create() -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend() {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
                Self { url, dir, pg: None }
            }
            Backend::Postgres => {
                let admin = test_env().pg_url.unwrap_or_else(|| {
                    panic!("CAIRN_TEST_BACKEND=postgres needs CAIRN_TEST_PG_URL (run scripts/test)")
                });
                let name = format!("cairn_it_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let url = with_database(&admin, &name);
                Self {
                    url,
                    dir,
                    pg: Some((admin, name)),
                }
            }
        }
    }
}

impl TestDb {
    /// A placeholder that owns nothing (for replica handles).
    fn none() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: String::new(),
            dir,
            pg: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee, so use a private one on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Replaces the database name of a PostgreSQL URL.
pub fn with_database(url: &str, db: &str) -> String {
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

/// A configuration for a test server on an ephemeral port.
pub fn config_for(db: &TestDb) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: Some(db.url.clone()),
        data_dir: db.dir.path().join("data"),
        db_acquire_timeout_secs: 3,
        ready_timeout_ms: 1000,
        kb: with_extract_worker(Config::default().kb),
        ..Config::default()
    }
}

/// The server under test runs inside this test binary, so the extraction workers it
/// starts are the real `cairn` binary, named here.
pub fn with_extract_worker(mut kb: cairn_server::config::kb::KbConfig) -> cairn_server::config::kb::KbConfig {
    kb.extract.worker_exe = Some(env!("CARGO_BIN_EXE_cairn").into());
    kb
}

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub token: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub db: TestDb,
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::create().await;
        let mut config = config_for(&db);
        tweak(&mut config);
        Self::start_on(db, config).await
    }

    pub async fn start_on(db: TestDb, mut config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        config.listen = listener.local_addr().unwrap();
        let mut server = Server::build(config.clone()).await.unwrap();
        let token = server
            .take_bootstrap_token()
            .map(|t| t.token.expose_secret().to_owned())
            .unwrap_or_default();
        let state = server.state().clone();
        let addr = config.listen;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            addr,
            token,
            state,
            client,
            config,
            shutdown: Some(tx),
            task: Some(task),
            db,
        }
    }

    /// A handle on a server started elsewhere (a second replica); stopping it is not
    /// supported and it owns no database.
    pub fn shell(addr: SocketAddr, state: AppState, client: reqwest::Client, config: Config) -> Self {
        Self {
            addr,
            token: String::new(),
            state,
            client,
            config,
            shutdown: None,
            task: None,
            db: TestDb::none(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with the operator token; returns status and JSON body (Null if
    /// the body is empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates a tenant and returns its JSON.
    pub async fn tenant(&self, slug: &str) -> Value {
        let (status, body) = self
            .post("/api/v1/tenants", serde_json::json!({"slug": slug, "name": slug}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Creates a user and returns its JSON.
    pub async fn user(&self, email: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/users",
                serde_json::json!({"email": email, "display_name": "Test User"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Stops the server (graceful: drains requests and audit events).
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let TestApp { state, task, db, .. } = self;
        let store = state.store.clone();
        // The server's audit writer ends when the last sink (this one included) is gone.
        drop(state);
        if let Some(task) = task {
            task.await.unwrap();
        }
        store.close().await;
        db
    }

    /// The newest audit events of tenant `slug`, after flushing the writer.
    pub async fn tenant_events(&self, slug: &str) -> Vec<cairn_store::audit::StoredAuditEvent> {
        self.state.audit.flush().await;
        let (_, tenant) = self.get(&format!("/api/v1/tenants/{slug}")).await;
        self.state
            .store
            .recent_audit_events(s(&tenant["id"]).parse().unwrap(), 200)
            .await
            .unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

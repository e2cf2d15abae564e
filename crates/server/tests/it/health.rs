use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::Backend;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::{backend, config_for, TestApp, TestDb};

#[tokio::test]
async fn live_and_ready() {
    let app = TestApp::start().await;
    let resp = app.client.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "up");
    let expected = match backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["checks"]["database"]["backend"], expected);
}

/// A TCP proxy in front of PostgreSQL that can cut the database off (dropping every
/// open connection and refusing new ones) and restore it: a database outage as the
/// server sees it, without stopping the PostgreSQL that other tests share.
struct Outage {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Outage {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let (down2, cut2) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if down2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self { addr, down, cut }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

async fn wait_for_ready_status(app: &TestApp, want: StatusCode, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = app.client.get(app.url("/health/ready")).send().await.unwrap().status();
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/health/ready did not become {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ready_follows_a_postgres_outage_and_recovers_without_restart() {
    if backend() != Backend::Postgres {
        // SQLite is an embedded file: it has no outage to survive.
        return;
    }
    let db = TestDb::create().await;
    let url = url::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
        .parse()
        .unwrap();
    let proxy = Outage::start(upstream).await;
    let mut config = config_for(&db);
    // Migrate directly, then let the server reach the database only through the proxy.
    cairn_store::pool::migrate(&config.store_config()).await.unwrap();
    let mut via_proxy = url.clone();
    via_proxy.set_port(Some(proxy.addr.port())).unwrap();
    config.database_url = Some(via_proxy.to_string());
    let app = TestApp::start_on(db, config).await;
    app.tenant("acme").await;
    wait_for_ready_status(&app, StatusCode::OK, Duration::from_secs(5)).await;

    proxy.set_down(true);
    let took = wait_for_ready_status(&app, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)).await;
    eprintln!("not ready after {took:?}");
    let body: Value = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["checks"]["database"]["status"], "down");
    let (status, err) = app.get("/api/v1/tenants/acme").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert!(
        !err.to_string().contains("127.0.0.1"),
        "error body must not leak internals: {err}"
    );

    proxy.set_down(false);
    let took = wait_for_ready_status(&app, StatusCode::OK, Duration::from_secs(15)).await;
    eprintln!("ready again after {took:?}");
    let (status, body) = app.get("/api/v1/tenants/acme").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

//! The rotation drill: many encrypted rows, a rotation under a load of reads and writes
//! against a real `cairn serve` process, `kill -9` of that process half-way, a restart,
//! and a check that every row is readable and under the new key.
//!
//! Rows: `CAIRN_TEST_DRILL_ROWS` (default 2000; `scripts/test` runs 100 000 in its own
//! step). Figures (rows/s) go to stderr.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::ids::TenantId;
use cairn_server::crypto::Slot;
use cairn_store::crypto_jobs::SEALED_COLUMNS;
use cairn_store::oauth_credentials::PutCredential;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{config_for, s, TestApp, TestDb};

fn rows() -> usize {
    figment::Figment::from(figment::providers::Env::prefixed("CAIRN_TEST_"))
        .extract_inner::<usize>("drill_rows")
        .unwrap_or(2000)
}

fn slot(row: &str) -> Slot<'_> {
    Slot {
        table: "tenant_oauth_credentials",
        column: "client_secret",
        row,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(db: &TestDb, key: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("DATABASE_URL")
        .env("CAIRN_DATABASE_URL", &db.url)
        .env("CAIRN_DATA_DIR", db.dir.path().join("data"))
        .env("CAIRN_MASTER_KEY", key)
        .env("CAIRN_REENCRYPT_BATCH_SIZE", "500")
        .env("CAIRN_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cairn serve did not become ready");
}

async fn job(client: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    let st: Value = client
        .get(format!("{base}/api/v1/tenants/acme/encryption"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    st["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .cloned()
        .unwrap()
}

fn done_of(job: &Value) -> u64 {
    job["progress"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["done"].as_u64().unwrap())
        .sum()
}

/// Reads and writes until told to stop; counts failures.
fn load(
    client: reqwest::Client,
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let path = format!("{base}/api/v1/tenants/acme/oauth-credentials/live{:03}", n % 100);
            let body = json!({"client_id": "c", "client_secret": format!("live-{n}"), "auth_url": "https://a.example/a", "token_url": "https://a.example/t"});
            let put = client.put(&path).bearer_auth(&token).json(&body).send().await;
            let get = client.get(&path).bearer_auth(&token).send().await;
            if !put.is_ok_and(|r| r.status() == StatusCode::OK) || !get.is_ok_and(|r| r.status() == StatusCode::OK) {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_survives_kill_9_under_load() {
    let n = rows();
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    let db = TestDb::create().await;
    let mut config = config_for(&db);
    config.master_key = Some(key.clone());
    // Seed in process (the same database, master key and data folder as the child).
    let app = TestApp::start_on(db, config).await;
    let t = app.tenant("acme").await;
    let tenant = TenantId::parse("id", s(&t["id"])).unwrap();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for part in 0..4 {
        let state = app.state.clone();
        tasks.spawn(async move {
            for i in (part..n).step_by(4) {
                let provider = format!("p{i:06}");
                let secret = format!("secret-{i}");
                let sealed = state
                    .keyring
                    .encrypt(&state.store, tenant, slot(&provider), secret.as_bytes())
                    .await
                    .unwrap();
                let put = PutCredential {
                    provider: &provider,
                    client_id: "c",
                    sealed_secret: &sealed,
                    secret_fingerprint: "fp_drill",
                    auth_url: "https://a.example/a",
                    token_url: "https://a.example/t",
                    scopes: &[],
                    resource: None,
                };
                state.store.put_oauth_credential(tenant, &put).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
    eprintln!(
        "drill: seeded {n} encrypted rows in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // Baseline for the rate below: the cryptography alone (open + seal), in process.
    let sample = app.state.store.list_oauth_credentials(tenant).await.unwrap();
    let sample = &sample[..sample.len().min(5000)];
    let active = app.state.store.data_keys(tenant).await.unwrap()[0].id;
    let t = Instant::now();
    for c in sample {
        let plain = app
            .state
            .keyring
            .decrypt(&app.state.store, tenant, slot(&c.provider), &c.sealed_secret)
            .await
            .unwrap();
        app.state
            .keyring
            .seal_with(&app.state.store, tenant, active, slot(&c.provider), &plain)
            .await
            .unwrap();
    }
    let crypto_rate = sample.len() as f64 / t.elapsed().as_secs_f64().max(0.000_001);
    eprintln!("drill: baseline, cryptography only: {crypto_rate:.0} rows/s");
    let token = app.token.clone();
    let db = app.stop().await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = serve(&db, &key, port);
    wait_ready(&client, &base).await;

    let (stop, errors) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let loader = load(
        client.clone(),
        base.clone(),
        token.clone(),
        stop.clone(),
        errors.clone(),
    );
    let resp = client
        .post(format!("{base}/api/v1/tenants/acme/encryption/rotate"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let id = s(&created["id"]).to_owned();
    // The rate is measured from the first batch on (the runner polls every 2 s).
    let mut first: Option<(Instant, u64)> = None;
    let half = (n / 2) as u64;
    let mid = loop {
        let j = job(&client, &base, &token, &id).await;
        if first.is_none() && done_of(&j) > 0 {
            first = Some((Instant::now(), done_of(&j)));
        }
        if done_of(&j) >= half || j["state"] != "running" {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (t0, d0) = first.unwrap_or((Instant::now(), 0));
    let elapsed = t0.elapsed().as_secs_f64();
    let rate = (done_of(&mid) - d0) as f64 / elapsed.max(0.001);
    // The load stops first, so no request is in flight when the process dies.
    stop.store(true, Ordering::Relaxed);
    let before_kill = loader.await.unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let load_errors = errors.load(Ordering::Relaxed);
    eprintln!(
        "drill: {} rows re-encrypted before kill -9, {rate:.0} rows/s under load = {:.3} of the crypto-only baseline \
         ({before_kill} load requests, {load_errors} errors)",
        done_of(&mid),
        rate / crypto_rate
    );
    assert_eq!(mid["state"], "running", "killed half-way, not after the end: {mid}");

    // Restart: the job resumes once the dead process's lease has expired.
    let mut child = serve(&db, &key, port);
    wait_ready(&client, &base).await;
    let (stop, errors2) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let loader = load(
        client.clone(),
        base.clone(),
        token.clone(),
        stop.clone(),
        errors2.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let end = loop {
        let j = job(&client, &base, &token, &id).await;
        if j["state"] != "running" {
            break j;
        }
        assert!(Instant::now() < deadline, "job did not finish after the restart: {j}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let after = loader.await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(end["state"], "done", "{end}");
    let total_errors = load_errors + errors2.load(Ordering::Relaxed);
    eprintln!("drill: finished after restart; {after} more load requests; {total_errors} load errors in all");
    assert_eq!(total_errors, 0, "reads and writes during the rotation all succeeded");

    // Every row readable, every row under the new key.
    let mut config = config_for(&db);
    config.master_key = Some(key);
    let mut app = TestApp::start_on(db, config).await;
    app.token = token;
    let (_, st) = app.get("/api/v1/tenants/acme/encryption").await;
    let active = st["data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap()
        .clone();
    let active_id: uuid::Uuid = s(&active["id"]).parse().unwrap();
    assert_eq!(active["version"], 2);
    for col in SEALED_COLUMNS {
        let left = app
            .state
            .store
            .count_sealed_not_under(tenant, col, active_id)
            .await
            .unwrap();
        assert_eq!(left, 0, "{} rows not under the new key", col.name());
    }
    let creds = app.state.store.list_oauth_credentials(tenant).await.unwrap();
    assert!(creds.len() >= n);
    for c in &creds {
        let plain = app
            .state
            .keyring
            .decrypt(&app.state.store, tenant, slot(&c.provider), &c.sealed_secret)
            .await
            .unwrap();
        if let Some(i) = c.provider.strip_prefix('p') {
            let i: usize = i.parse().unwrap();
            assert_eq!(plain.as_slice(), format!("secret-{i}").as_bytes());
        }
    }
}

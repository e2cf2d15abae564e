//! Outbound webhooks against a real receiver on loopback: deliveries are signed so that
//! the official `standardwebhooks` library verifies them; a failing receiver gets retries
//! on the (shortened) schedule, every attempt logged, and its endpoint is then disabled
//! and audited; a delivery can be replayed; private addresses are refused by default.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{python, TestApp};
use crate::kb::ingest;

/// What the receiver got, and the status it answers with.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<(HeaderMap, String, Instant)>>>,
    pub status: Arc<Mutex<u16>>,
}

pub async fn receiver(status: u16) -> (Receiver, String) {
    let r = Receiver::default();
    *r.status.lock().unwrap() = status;
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                state.got.lock().unwrap().push((headers, body, Instant::now()));
                let code = *state.status.lock().unwrap();
                (StatusCode::from_u16(code).unwrap(), "receiver says hi")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

/// Waits (bounded) until `cond` holds; the worker polls every 100 ms in these tests.
async fn until<F: Fn() -> bool>(what: &str, cond: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn app_with(schedule: Vec<u64>, disable_after_secs: u64) -> TestApp {
    let app = TestApp::start_with(|c| {
        c.webhooks.allow_private_addresses = true;
        c.webhooks.retry_schedule_secs = schedule;
        c.webhooks.disable_after_secs = disable_after_secs;
        c.webhooks.poll_interval_ms = 100;
        c.webhooks.timeout_secs = 5;
    })
    .await;
    app.tenant("acme").await;
    app
}

pub fn python_verifies(secret: &str, headers: &HeaderMap, body: &str) -> Value {
    let script = "import sys, json\nfrom standardwebhooks.webhooks import Webhook\n\
secret, wid, ts, sig = sys.argv[1:5]\nbody = sys.stdin.read()\n\
print(json.dumps(Webhook(secret).verify(body, {'webhook-id': wid, 'webhook-timestamp': ts, 'webhook-signature': sig})))\n";
    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    let mut child = std::process::Command::new(python())
        .args([
            "-c",
            script,
            secret,
            &h("webhook-id"),
            &h("webhook-timestamp"),
            &h("webhook-signature"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn deliveries_are_signed_so_the_official_library_verifies_them() {
    let app = app_with(vec![0, 1], 3600).await;
    let (rx, url) = receiver(200).await;
    let (status, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-endpoints",
            json!({"url": url, "event_types": ["kb.ingest.completed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (_, listed) = app.get("/api/v1/tenants/acme/webhook-endpoints").await;
    assert!(!listed.to_string().contains(&secret[6..]), "the secret is shown once");

    let (status, _) = ingest(&app, "acme", "default", "refunds.md", crate::kb::BILLING).await;
    assert_eq!(status, StatusCode::CREATED);
    until("a delivery", || !rx.got.lock().unwrap().is_empty()).await;
    let (headers, body, _) = rx.got.lock().unwrap()[0].clone();
    let payload = python_verifies(&secret, &headers, &body);
    assert_eq!(payload["type"], "kb.ingest.completed", "{payload}");
    assert_eq!(payload["data"]["source_id"], "refunds.md", "{payload}");

    // The attempt is logged with its status and the receiver's (truncated) answer.
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/tenants/acme/webhook-endpoints/{id}/deliveries");
    let mut deliveries = Value::Null;
    for _ in 0..100 {
        deliveries = app.get(&path).await.1;
        if deliveries["data"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = &deliveries["data"][0];
    assert_eq!(d["status"], "succeeded", "{deliveries}");
    assert_eq!(d["attempts_log"][0]["status_code"], 200, "{d}");
    assert_eq!(d["attempts_log"][0]["response"], "receiver says hi", "{d}");
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_on_schedule_then_its_endpoint_is_disabled() {
    let app = app_with(vec![0, 1, 1, 1, 1], 2).await;
    let (rx, url) = receiver(500).await;
    let (_, created) = app
        .post(
            "/api/v1/tenants/acme/webhook-endpoints",
            json!({"url": url, "event_types": ["*"]}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = ingest(&app, "acme", "default", "a.md", crate::kb::GARDEN).await;
    assert_eq!(status, StatusCode::CREATED);

    // Attempts at 0, +1 s, +1 s: the third comes 2 s after the first failure → disabled.
    let path = format!("/api/v1/tenants/acme/webhook-endpoints/{id}/deliveries");
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivery = loop {
        let (_, list) = app.get(&path).await;
        if list["data"][0]["status"] == "failed" {
            break list["data"][0].clone();
        }
        assert!(Instant::now() < deadline, "no final failure: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = delivery["attempts_log"].as_array().unwrap();
    assert_eq!(log.len(), 3, "{delivery}");
    assert!(log.iter().all(|a| a["status_code"] == 500), "{delivery}");
    let times = rx.got.lock().unwrap().iter().map(|(_, _, t)| *t).collect::<Vec<_>>();
    assert_eq!(times.len(), 3);
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= Duration::from_millis(900), "retried before its delay: {gap:?}");
    }
    let (_, endpoints) = app.get("/api/v1/tenants/acme/webhook-endpoints").await;
    assert_eq!(endpoints["data"][0]["status"], "disabled", "{endpoints}");
    app.state.audit.flush().await;
    let audit = app.tenant_events("acme").await;
    assert!(
        audit.iter().any(|e| e.action == "webhook_endpoint.disabled"),
        "the tenant is told"
    );

    // Fixed receiver, replayed delivery: the log continues and it succeeds.
    *rx.status.lock().unwrap() = 204;
    let did = delivery["id"].as_str().unwrap();
    let (status, _) = app
        .call(Method::POST, &format!("{path}/{did}/replay"), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    until("the replayed attempt", || rx.got.lock().unwrap().len() == 4).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = app.get(&path).await;
        if list["data"][0]["status"] == "succeeded" {
            assert_eq!(list["data"][0]["attempts_log"].as_array().unwrap().len(), 4, "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Re-enabled by API: new events reach it again.
    let (status, enabled) = app
        .post(
            &format!("/api/v1/tenants/acme/webhook-endpoints/{id}/enable"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["status"], "enabled");
    assert_eq!(enabled["failing_since"], Value::Null);
    let (status, _) = ingest(&app, "acme", "default", "b.md", crate::kb::GARDEN).await;
    assert_eq!(status, StatusCode::CREATED);
    until("a delivery to the re-enabled endpoint", || {
        rx.got.lock().unwrap().len() == 5
    })
    .await;
    let (status, _) = app
        .post("/api/v1/tenants/acme/webhook-endpoints/whep_nope/enable", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = app.tenant_events("acme").await;
    assert!(audit.iter().any(|e| e.action == "webhook_endpoint.enabled"));
}

#[tokio::test]
async fn private_and_loopback_endpoints_are_refused_by_default() {
    let app = TestApp::start().await;
    app.tenant("acme").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
        "ftp://example.com/x",
        "not a url",
    ] {
        let (status, body) = app
            .post(
                "/api/v1/tenants/acme/webhook-endpoints",
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["field"], "url", "{body}");
    }
    let (status, body) = app
        .post(
            "/api/v1/tenants/acme/webhook-endpoints",
            json!({"url": "https://hooks.example.com/cairn", "event_types": ["key.rotated"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .post(
            "/api/v1/tenants/acme/webhook-endpoints",
            json!({"url": "https://a.example", "event_types": []}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
